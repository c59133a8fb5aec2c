//! The portal over real HTTP: sign-in, the sign-in guard, sessions, CSRF defence, forged cookies,
//! throttling, invitations and sign-out. The server runs on a random port over SQLite (one smoke run on
//! PostgreSQL checks that sessions live in the shared database).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use reqwest::StatusCode;
use support::{form_error, location, Browser, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use tollgate_store::testing::Flavor;

#[tokio::test]
async fn probes_answer() {
    let app = TestApp::start(Flavor::Sqlite).await;
    let b = app.browser();
    assert_eq!(b.get("/healthz").await.status(), StatusCode::OK);
    let ready = b.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap_or_default();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "up");
    assert_eq!(body["limiter"]["mode"], "in_process", "no Redis configured");
    app.stop().await;
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_and_back() {
    let app = TestApp::start(Flavor::Sqlite).await;
    let b = app.browser();
    let r = b.get("/teams?q=x").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fteams%3Fq%3Dx");
    let login_page = b.get("/login").await;
    assert_eq!(login_page.status(), StatusCode::OK);
    assert!(login_page
        .text()
        .await
        .unwrap_or_default()
        .contains("Sign in"));

    let wrong = b.login(ADMIN_EMAIL, "not the password").await;
    assert_eq!(
        form_error(&wrong).as_deref(),
        Some("wrong email or password")
    );
    let unknown = b.login("nobody@tollgate.test", "whatever-password").await;
    assert_eq!(
        form_error(&unknown).as_deref(),
        Some("wrong email or password"),
        "unknown emails answer alike"
    );

    let ok = b
        .post_form(
            "/api/auth/login",
            &[
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "/teams"),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert_eq!(location(&ok), "/teams");
    let cookie = ok
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let page = b.get("/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap_or_default().contains(ADMIN_EMAIL));
    assert_eq!(b.me().await["email"], ADMIN_EMAIL);

    // An open redirect in `next` is ignored.
    let b2 = app.browser();
    let evil = b2
        .post_form(
            "/api/auth/login",
            &[
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(location(&evil), "/");
    // Targets a browser reads as another site, or that no header can carry, are ignored too: no panic.
    for hostile in [
        "/\t/evil.example",
        "/\n",
        "/%2f%2fevil.example",
        "/\\evil.example",
    ] {
        let r = app
            .browser()
            .post_form(
                "/api/auth/login",
                &[
                    ("email", ADMIN_EMAIL),
                    ("password", ADMIN_PASSWORD),
                    ("next", hostile),
                ],
            )
            .await;
        assert_eq!(location(&r), "/", "{hostile:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn forged_and_cross_site_requests_are_refused() {
    let app = TestApp::start_with(Flavor::Sqlite, |c| c.demo_tenant = true).await;
    let b = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // A cookie nobody issued is just a signed-out visitor.
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let r = forged
        .get(app.url("/teams"))
        .header("cookie", "tollgate_session=AAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await;
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, body) = Browser::new(app.server.url())
        .call("/api/teams/create", &[("name", "x"), ("description", "")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A signed-in browser tricked by another site: refused before any server function runs.
    let cross = b
        .client
        .post(app.url("/api/teams/create"))
        .header("origin", "http://evil.example")
        .form(&[("name", "Evil team"), ("description", "")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let listed = b
        .client
        .get(app.url("/api/teams/list?search=Evil&page=1"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: serde_json::Value = listed.json().await.unwrap_or_default();
    assert_eq!(listed["total"], 0, "no team was created: {listed}");

    // Malformed input to a server function gets a clear 4xx, not a crash.
    let (status, _) = b.call("/api/teams/create", &[("wrong_field", "x")]).await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status}"
    );
    let (status, body) = b
        .call("/api/teams/create", &[("name", "   "), ("description", "")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("Team name is required"), "{body}");
    app.stop().await;
}

/// Server functions, sign-in included (anyone may call it), read at most 256 KiB of body: a larger one is refused
/// with 413 before the handler runs, whether its length is declared or it comes chunked; smaller ones still work.
#[tokio::test]
async fn server_function_bodies_are_bounded() {
    let app = TestApp::start(Flavor::Sqlite).await;
    let b = app.browser();
    let big = b
        .post_form(
            "/api/auth/login",
            &[
                ("email", ADMIN_EMAIL),
                ("password", &"x".repeat(1024 * 1024)),
            ],
        )
        .await;
    assert_eq!(
        big.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a declared 1 MiB body"
    );
    let under = b
        .post_form(
            "/api/auth/login",
            &[
                ("email", ADMIN_EMAIL),
                ("password", &"x".repeat(100 * 1024)),
            ],
        )
        .await;
    assert_eq!(
        form_error(&under).as_deref(),
        Some("wrong email or password"),
        "100 KiB reaches the handler"
    );

    // The same without a length: chunked, 1 MiB in 64 KiB chunks, over a raw connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = b.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nAccept: text/html\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        b.base
    );
    tcp.write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
    let first = "email=a%40b.test&password=";
    let _ = tcp
        .write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes())
        .await;
    for _ in 0..16 {
        // The server may answer and stop reading before the end: a failed write is expected then.
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a chunked 1 MiB body: {}",
        answer.lines().next().unwrap_or_default()
    );

    // Signing in still works.
    let ok = Browser::signed_in(b.base.clone(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(ok.me().await["email"], ADMIN_EMAIL);
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_for_a_while() {
    let app = TestApp::start_with(Flavor::Sqlite, |c| c.login_max_failures = 3).await;
    let b = app.browser();
    for _ in 0..3 {
        assert_eq!(
            form_error(&b.login(ADMIN_EMAIL, "wrong-password").await).as_deref(),
            Some("wrong email or password")
        );
    }
    let locked = b.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let msg = form_error(&locked).unwrap_or_default();
    assert!(msg.starts_with("too many attempts"), "{msg}");
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_revocable_and_sign_out_ends_them() {
    let app = TestApp::start(Flavor::Postgres).await;
    let laptop = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let phone = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let sessions: serde_json::Value = laptop
        .client
        .get(app.url("/api/account/sessions"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let list = sessions.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2, "{sessions}");
    // Neither the page nor the database holds a session id: only its hash, which no cookie can be made from.
    let cookies = {
        use reqwest::cookie::CookieStore;
        laptop
            .jar
            .cookies(&app.url("/").parse().unwrap_or_else(|e| panic!("{e}")))
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let session_id = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("tollgate_session="))
        .unwrap_or_else(|| panic!("no session cookie in {cookies}"))
        .to_string();
    let me = laptop.me().await;
    let stored: Vec<String> = app
        .server
        .state
        .store
        .sessions_of_user(me["user_id"].as_str().unwrap_or_default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(
        !stored.contains(&session_id),
        "the database holds the raw session id"
    );
    assert!(
        !sessions.to_string().contains(&session_id),
        "the page shows the raw session id"
    );
    let hashed = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(session_id.as_bytes()))
    };
    assert!(stored.contains(&hashed), "stored under its SHA-256");
    let other = list
        .iter()
        .find(|s| s["current"] == false)
        .unwrap_or_else(|| panic!("no other session: {sessions}"));
    let other_id = other["id"].as_str().unwrap_or_default();
    let (status, body) = laptop
        .call("/api/account/revoke-session", &[("session_id", other_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        phone.me().await,
        serde_json::Value::Null,
        "the revoked browser is signed out"
    );
    assert_eq!(laptop.me().await["email"], ADMIN_EMAIL);

    // Sessions live in the database: a second server on the same database knows the laptop.
    let mut second = tollgate_server::Config::for_tests(&app.db.url);
    second.admin_email = ADMIN_EMAIL.into();
    second.admin_password = Some(ADMIN_PASSWORD.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let replica = tollgate_server::start(second, listener)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let jar_cookie = laptop.cookie_header();
    assert!(jar_cookie.contains("tollgate_session="), "{jar_cookie}");
    let via_replica = reqwest::Client::new()
        .get(format!("{}/api/me", replica.url()))
        .header("cookie", jar_cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let me: serde_json::Value = via_replica.json().await.unwrap_or_default();
    assert_eq!(me["email"], ADMIN_EMAIL, "the replica accepts the session");
    replica.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    let out = laptop.post_form("/api/auth/logout", &[]).await;
    assert_eq!(location(&out), "/login?signed_out=1");
    assert_eq!(laptop.me().await, serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_brings_a_new_member_in_once() {
    let app = TestApp::start(Flavor::Sqlite).await;
    let admin = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, tenant) = admin
        .call(
            "/api/tenants/create",
            &[("name", "Acme Corp"), ("slug", "")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["slug"], "acme-corp");
    let tenant_id = tenant["id"].as_str().unwrap_or_default().to_string();
    let switched = admin
        .post_form("/api/auth/switch-tenant", &[("tenant_id", &tenant_id)])
        .await;
    assert_eq!(location(&switched), "/");
    let (status, created) = admin
        .call(
            "/api/invitations/create",
            &[
                ("email", "dana@acme.test"),
                ("role", "developer"),
                ("team_id", ""),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{created} / me: {}",
        admin.me().await
    );
    let link = created["link"].as_str().unwrap_or_default().to_string();
    assert!(
        link.starts_with(&format!("{}/invite/", app.server.url())),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap_or_default().to_string();

    let dana = app.browser();
    let page = dana.get(&format!("/invite/{token}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Acme Corp") && html.contains("dana@acme.test"),
        "the invitation page names tenant and invitee"
    );
    let wrong_email = dana
        .post_form(
            "/api/invitations/sign-up",
            &[
                ("token", &token),
                ("email", "eve@acme.test"),
                ("name", "Eve"),
                ("password", "long-enough-pw"),
            ],
        )
        .await;
    assert!(form_error(&wrong_email)
        .unwrap_or_default()
        .contains("dana@acme.test"));
    let joined = dana
        .post_form(
            "/api/invitations/sign-up",
            &[
                ("token", &token),
                ("email", "dana@acme.test"),
                ("name", "Dana"),
                ("password", "long-enough-pw"),
            ],
        )
        .await;
    assert_eq!(location(&joined), "/", "{:?}", form_error(&joined));
    let me = dana.me().await;
    assert_eq!(me["tenant"]["name"], "Acme Corp");
    assert_eq!(me["tenant"]["role"], "Developer");

    let again = app.browser();
    let reuse = again
        .post_form(
            "/api/invitations/sign-up",
            &[
                ("token", &token),
                ("email", "dana@acme.test"),
                ("name", "Dana"),
                ("password", "long-enough-pw"),
            ],
        )
        .await;
    assert!(
        form_error(&reuse).is_some(),
        "a used link does not work twice"
    );

    let audit: serde_json::Value = admin
        .client
        .get(app.url("/api/audit/list?action=&actor=&from=&until=&all_tenants=false&page=1"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for expected in [
        "tenant.created",
        "member.invited",
        "member.invitation_accepted",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn with_a_public_url_configured_writes_must_come_from_it() {
    // Behind a proxy that rewrites Host to the server's own address: the browser's Origin is the public URL.
    let app = TestApp::start_with(Flavor::Sqlite, |c| {
        c.settings.public_url = Some("https://portal.example".into());
        c.public_url = "https://portal.example".into();
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let login = |origin: &'static str| {
        client
            .post(app.url("/api/auth/login"))
            .header("origin", origin)
            .header("accept", "text/html")
            .form(&[
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "/teams"),
            ])
            .send()
    };
    let from_public = login("https://portal.example")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        from_public.status().is_redirection(),
        "the public origin is ours whatever Host says: {}",
        from_public.status()
    );
    let direct = format!("http://{}", app.server.url().trim_start_matches("http://"));
    let from_direct = client
        .post(app.url("/api/auth/login"))
        .header("origin", direct)
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        from_direct.status(),
        StatusCode::FORBIDDEN,
        "with a public URL set, a matching Host alone is not enough"
    );
    let evil = login("https://evil.example")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}
