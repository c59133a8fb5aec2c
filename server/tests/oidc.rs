//! Single sign-on against a REAL OpenID Connect provider (npm's certified `oidc-provider`, started on
//! loopback by the test): the whole browser flow through our server, group claims mapped to roles,
//! sign-out at the provider, and every rejection the issue lists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use support::{location, oidc::OidcProvider, Browser, TestApp};
use tollgate_identity::oidc::{Oidc, OidcConfig, OidcError, PendingLogin};
use tollgate_store::testing::Flavor;

const SECRET: &str = "tollgate-secret";

fn accounts() -> serde_json::Value {
    json!({
        "alice": { "email": "alice@acme.test", "name": "Alice Admin", "groups": ["tollgate:acme:admin"] },
        "bob": { "email": "bob@acme.test", "name": "Bob Builder", "groups": ["tollgate:acme:developer", "tollgate:unknown:admin"] }
    })
}

fn client(id: &str, callback: &str, base: &str) -> serde_json::Value {
    json!({ "client_id": id, "client_secret": SECRET, "redirect_uris": [callback],
            "post_logout_redirect_uris": [format!("{base}/login?signed_out=1")] })
}

fn oidc_for(provider: &OidcProvider, client_id: &str, callback: &str) -> Oidc {
    Oidc::new(OidcConfig {
        issuer_url: provider.issuer.clone(),
        client_id: client_id.into(),
        client_secret: SECRET.into(),
        scopes: vec!["email".into(), "profile".into(), "groups".into()],
        groups_claim: "groups".into(),
        group_prefix: "tollgate:".into(),
        display_name: "Test SSO".into(),
        redirect_url: callback.into(),
        post_logout_redirect_url: "http://127.0.0.1/".into(),
        key_refresh: Default::default(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Signs `user` in at `provider` through `oidc` alone (no server): begins a sign-in, logs in at the provider and
/// exchanges the code. The pending sign-in and the raw ID token, not yet verified.
async fn raw_id_token(
    oidc: &Oidc,
    provider: &OidcProvider,
    user: &str,
    callback: &str,
) -> (PendingLogin, String) {
    let (url, pending) = oidc.begin("/").await.unwrap_or_else(|e| panic!("{e}"));
    let back = provider
        .login(&url, user, "test", callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = oidc
        .exchange(&pending, &pending.state, &query_param(&back, "code"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (pending, raw)
}

/// Our server signing users in through a real provider: the provider knows it as client `tollgate` (our callback,
/// and `<base>/login?signed_out=1` after sign-out), and it offers "Test SSO" with the provider's `groups` claim
/// mapped through the prefix `tollgate:`.
struct SsoApp {
    provider: OidcProvider,
    app: TestApp,
    /// Our server, e.g. `http://127.0.0.1:41234`.
    base: String,
    /// Our redirect URI at the provider: `<base>/auth/oidc/callback`.
    callback: String,
}

impl SsoApp {
    /// Starts the provider with `accounts` (and `provider_env` for its script, e.g. an accounts file), then our
    /// server (SQLite) on the address the provider was given.
    async fn start(accounts: serde_json::Value, provider_env: &[(&str, &str)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let callback = format!("{base}/auth/oidc/callback");
        let provider = OidcProvider::start_with_env(
            json!([client("tollgate", &callback, &base)]),
            accounts,
            provider_env,
        )
        .await
        .unwrap_or_else(|e| panic!("provider: {e}"));
        let issuer = provider.issuer.clone();
        let app = TestApp::start_on(Flavor::Sqlite, listener, |c| {
            c.oidc = Some(tollgate_server::config::OidcSettings {
                issuer_url: issuer,
                client_id: "tollgate".into(),
                client_secret: SECRET.into(),
                scopes: vec!["email".into(), "profile".into(), "groups".into()],
                groups_claim: "groups".into(),
                group_prefix: "tollgate:".into(),
                display_name: "Test SSO".into(),
            });
        })
        .await;
        Self {
            provider,
            app,
            base,
            callback,
        }
    }

    /// `browser` opens `start` (our `/auth/oidc/start`, maybe with `?next=`) and `user` logs in at the provider:
    /// the URL the provider sends the browser back to (our callback with a code and the state).
    async fn login_at_provider(&self, browser: &Browser, start: &str, user: &str) -> String {
        let authorize = location(&browser.get(start).await);
        self.provider
            .login(&authorize, user, "test", &self.callback)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn query_param(url: &str, key: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default()
}

/// The whole browser flow through our server: sign-in (with state, nonce and PKCE) maps the provider's groups to
/// roles, a replayed or tampered callback is refused, and sign-out ends the session at the provider too.
#[tokio::test]
async fn browser_sign_in_maps_groups_to_roles_and_sign_out_reaches_the_provider() {
    let sso = SsoApp::start(accounts(), &[]).await;
    let app = &sso.app;
    app.server
        .state
        .store
        .create_tenant("acme", "ACME")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The sign-in page offers single sign-on.
    let login_page = app
        .browser()
        .get("/login")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(login_page.contains("Sign in with Test SSO"));

    let browser = app.browser();
    let start = browser.get("/auth/oidc/start?next=/teams").await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start);
    assert!(authorize.starts_with(&sso.provider.issuer), "{authorize}");
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            !query_param(&authorize, p).is_empty(),
            "{p} missing from {authorize}"
        );
    }
    assert_eq!(query_param(&authorize, "code_challenge_method"), "S256");
    let back = sso
        .provider
        .login(&authorize, "alice", "test", &sso.callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = browser.get(&back).await;
    assert_eq!(
        location(&done),
        "/teams",
        "signed in and sent where the user wanted to go"
    );
    let me = browser.me().await;
    assert_eq!(me["email"], "alice@acme.test");
    assert_eq!(me["name"], "Alice Admin");
    assert_eq!(me["tenant"]["slug"], "acme");
    assert_eq!(
        me["tenant"]["role"], "Admin",
        "the group tollgate:acme:admin grants the role"
    );

    // Replaying the same callback (same code and state) finds no sign-in in progress.
    let replay = browser.get(&back).await;
    assert!(
        location(&replay).starts_with("/login?sso_error="),
        "{}",
        location(&replay)
    );

    // A second user: a developer; a group for an unknown tenant is ignored.
    let bob = app.browser();
    let back = sso.login_at_provider(&bob, "/auth/oidc/start", "bob").await;
    // A tampered state is refused with a clear message.
    let tampered = back.replace(&query_param(&back, "state"), "forged-state");
    let refused = bob.get(&tampered).await;
    let msg = query_param(&format!("http://x{}", location(&refused)), "sso_error");
    assert!(msg.contains("state mismatch"), "{msg}");

    // Sign-out ends our session and sends the browser to the provider's end_session_endpoint.
    let out = browser.post_form("/api/auth/logout", &[]).await;
    let end = location(&out);
    assert!(
        end.starts_with(&format!("{}/session/end", sso.provider.issuer)),
        "{end}"
    );
    assert!(!query_param(&end, "id_token_hint").is_empty());
    assert_eq!(browser.me().await, serde_json::Value::Null);
    sso.app.stop().await;
}

/// Anonymous sign-in starts write nothing on the server: the pending sign-in lives in a short-lived cookie, so
/// 10,000 starts leave the sessions table as it was, and a real sign-in through the provider still works.
#[tokio::test]
async fn anonymous_sign_in_starts_do_not_grow_the_sessions_table() {
    let sso = SsoApp::start(accounts(), &[]).await;
    let app = &sso.app;
    let store = app.server.state.store.clone();
    store
        .create_tenant("acme", "ACME")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = store
        .count_sessions()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // 10,000 anonymous starts from clients that keep no cookies, 16 at a time.
    const STARTS: usize = 10_000;
    const CLIENTS: usize = 16;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let url = format!("{}/auth/oidc/start?next=/teams", sso.base);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..STARTS / CLIENTS {
                let r = http
                    .get(&url)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.status(), StatusCode::SEE_OTHER);
                let cookies: Vec<_> = r
                    .headers()
                    .get_all(reqwest::header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                assert!(
                    cookies.iter().all(|c| !c.starts_with("tollgate_session=")),
                    "no session for an anonymous start: {cookies:?}"
                );
                assert!(
                    cookies.iter().any(|c| c.starts_with("tollgate_oidc=")
                        && c.contains("HttpOnly")
                        && c.contains("Path=/auth/oidc")
                        && c.contains("Max-Age=600")),
                    "{cookies:?}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        store
            .count_sessions()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        before,
        "10,000 anonymous sign-in starts wrote no session"
    );

    // The whole sign-in still works, and only it writes a session.
    let browser = app.browser();
    let back = sso
        .login_at_provider(&browser, "/auth/oidc/start?next=/teams", "alice")
        .await;
    assert_eq!(
        store
            .count_sessions()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        before,
        "nothing stored while the user is at the provider"
    );
    let done = browser.get(&back).await;
    assert_eq!(location(&done), "/teams");
    assert_eq!(browser.me().await["email"], "alice@acme.test");
    assert_eq!(
        store
            .count_sessions()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        before + 1
    );

    // A callback with a genuine code but from a browser that never started a sign-in is refused.
    let other = app.browser();
    let back = sso
        .login_at_provider(&other, "/auth/oidc/start", "alice")
        .await;
    let stranger = app.browser();
    let refused = stranger.get(&back).await;
    assert!(
        location(&refused).starts_with("/login?sso_error="),
        "{}",
        location(&refused)
    );
    assert_eq!(stranger.me().await, serde_json::Value::Null);
    sso.app.stop().await;
}

/// At each sign-in, the roles that came from the provider's groups follow the groups: platform admin goes with
/// its group, a tenant role is lowered and then removed with its group; the hand-made admin stays.
#[tokio::test]
async fn sso_roles_follow_the_provider_groups_at_each_sign_in() {
    let accounts_file = std::env::temp_dir().join(format!(
        "tollgate-oidc-accounts-{}.json",
        tollgate_store::new_id("t")
    ));
    let groups = |g: &[&str]| {
        std::fs::write(
            &accounts_file,
            json!({ "alice": { "email": "alice@acme.test", "name": "Alice", "groups": g } })
                .to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    groups(&["tollgate:acme:admin", "tollgate:platform-admin"]);
    let sso = SsoApp::start(
        json!({}),
        &[(
            "OIDC_ACCOUNTS_FILE",
            accounts_file.to_str().unwrap_or_default(),
        )],
    )
    .await;
    let app = &sso.app;
    let store = app.server.state.store.clone();
    let acme = store
        .create_tenant("acme", "ACME")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The platform admin made at first start is also acme's admin, by hand.
    let root = store
        .user_by_email(support::ADMIN_EMAIL)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("root"));
    store
        .add_membership(&acme.id, &root.id, "admin")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let sign_in = || async {
        let browser = app.browser();
        let back = sso
            .login_at_provider(&browser, "/auth/oidc/start", "alice")
            .await;
        let done = browser.get(&back).await;
        assert_eq!(location(&done), "/", "signed in");
        browser.me().await
    };
    let me = sign_in().await;
    assert_eq!(me["tenant"]["role"], "Admin");
    assert_eq!(me["platform_admin"], true, "{me}");

    groups(&["tollgate:acme:developer"]);
    let me = sign_in().await;
    assert_eq!(me["tenant"]["role"], "Developer", "lowered with the group");
    assert_eq!(
        me["platform_admin"], false,
        "platform admin went with its group"
    );

    groups(&[]);
    let me = sign_in().await;
    assert!(me["tenant"].is_null(), "removed with the group: {me}");
    assert_eq!(
        store
            .membership_role(&acme.id, &root.id)
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some("admin"),
        "the hand-made admin is untouched"
    );
    let _ = std::fs::remove_file(&accounts_file);
    sso.app.stop().await;
}

/// An ID token signed by a key we do not know makes us fetch the provider's keys again, at most once per
/// `min_interval` however many such tokens arrive; a real key rotation at the provider is followed without a
/// restart.
#[tokio::test]
async fn unknown_signing_keys_refetch_the_jwks_at_most_once_per_interval() {
    let callback = "http://127.0.0.1:9/auth/oidc/callback";
    let mut provider = OidcProvider::start(
        json!([client("tollgate", callback, "http://127.0.0.1:9")]),
        accounts(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let interval = std::time::Duration::from_millis(1500);
    let ours = Oidc::new(OidcConfig {
        key_refresh: tollgate_identity::oidc::KeyRefresh {
            max_age: std::time::Duration::from_secs(3600),
            min_interval: interval,
        },
        ..oidc_for(&provider, "tollgate", callback).config
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (url, pending) = ours.begin("/").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.metadata_fetches(), 1);
    let back = provider
        .login(&url, "alice", "test", callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = ours
        .exchange(&pending, &pending.state, &query_param(&back, "code"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ours.verify(&raw, &pending.nonce, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.metadata_fetches(), 1, "a known key needs no fetch");

    // Forged tokens naming keys nobody has: each would want newer keys, one fetch per interval is made.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = raw.split('.').nth(1).unwrap_or_default().to_string();
    let forged = |i: usize| {
        let header = b64.encode(format!(
            r#"{{"alg":"RS256","typ":"JWT","kid":"unknown-{i}"}}"#
        ));
        format!("{header}.{payload}.{}", b64.encode([7u8; 256]))
    };
    tokio::time::sleep(interval).await;
    for i in 0..50 {
        let refused = ours.verify(&forged(i), &pending.nonce, Utc::now()).await;
        assert!(
            matches!(refused, Err(OidcError::InvalidIdToken(_))),
            "{refused:?}"
        );
    }
    assert_eq!(
        ours.metadata_fetches(),
        2,
        "50 tokens with unknown keys caused one fetch"
    );
    tokio::time::sleep(interval).await;
    for i in 50..100 {
        assert!(ours
            .verify(&forged(i), &pending.nonce, Utc::now())
            .await
            .is_err());
    }
    assert_eq!(ours.metadata_fetches(), 3, "one more in the next interval");

    // The provider rotates its signing key (a restart makes a new one): the next sign-in fetches the new keys.
    provider
        .restart()
        .await
        .unwrap_or_else(|e| panic!("restart: {e}"));
    tokio::time::sleep(interval).await;
    let (pending, raw_new) = raw_id_token(&ours, &provider, "alice", callback).await;
    let identity = ours
        .verify(&raw_new, &pending.nonce, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("after the rotation: {e}"));
    assert_eq!(identity.email.as_deref(), Some("alice@acme.test"));
    assert_eq!(ours.metadata_fetches(), 4);
}

/// Through the whole server: the provider rotates its key, and users sign in again without restarting Tollgate.
#[tokio::test]
async fn sign_in_survives_a_key_rotation_at_the_provider() {
    let mut sso = SsoApp::start(accounts(), &[]).await;
    for round in 0..2 {
        if round == 1 {
            sso.provider
                .restart()
                .await
                .unwrap_or_else(|e| panic!("restart: {e}"));
            // Past the minimum interval since the keys were last fetched.
            tokio::time::sleep(
                tollgate_identity::oidc::KeyRefresh::default().min_interval
                    + std::time::Duration::from_millis(200),
            )
            .await;
        }
        let browser = sso.app.browser();
        let back = sso
            .login_at_provider(&browser, "/auth/oidc/start", "alice")
            .await;
        let done = browser.get(&back).await;
        assert_eq!(location(&done), "/", "round {round}");
        assert_eq!(browser.me().await["email"], "alice@acme.test");
    }
    sso.app.stop().await;
}

/// Straight against the provider, without our server: a replayed code, a wrong state or nonce, an expired token,
/// a token for another client or from another issuer, and a provider that is not there are each refused.
#[tokio::test]
async fn tokens_are_rejected_for_replay_nonce_audience_expiry_and_issuer() {
    let callback = "http://127.0.0.1:9/auth/oidc/callback";
    let clients = json!([
        client("tollgate", callback, "http://127.0.0.1:9"),
        client("other-app", callback, "http://127.0.0.1:9")
    ]);
    let provider = OidcProvider::start(clients.clone(), accounts())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = oidc_for(&provider, "tollgate", callback);

    // A good exchange, then the same code again: the provider refuses the replay.
    let (url, pending) = ours.begin("/").await.unwrap_or_else(|e| panic!("{e}"));
    let back = provider
        .login(&url, "alice", "test", callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = query_param(&back, "code");
    let raw = ours
        .exchange(&pending, &pending.state, &code)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let identity = ours
        .verify(&raw, &pending.nonce, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(identity.email.as_deref(), Some("alice@acme.test"));
    assert_eq!(identity.groups, vec!["tollgate:acme:admin".to_string()]);
    assert!(matches!(
        ours.exchange(&pending, &pending.state, &code).await,
        Err(OidcError::CodeRejected(_))
    ));

    // Wrong state never reaches the provider.
    assert_eq!(
        ours.exchange(&pending, "other-state", &code).await,
        Err(OidcError::StateMismatch)
    );

    // A nonce other than ours.
    let bad_nonce = ours.verify(&raw, "someone-elses-nonce", Utc::now()).await;
    assert!(
        matches!(&bad_nonce, Err(OidcError::InvalidIdToken(m)) if m.to_lowercase().contains("nonce")),
        "{bad_nonce:?}"
    );

    // Expired: the same genuine token, checked two hours later.
    let expired = ours
        .verify(&raw, &pending.nonce, Utc::now() + Duration::hours(2))
        .await;
    assert!(
        matches!(&expired, Err(OidcError::InvalidIdToken(m)) if m.to_lowercase().contains("expire")),
        "{expired:?}"
    );

    // A genuine token issued to another client of the same provider.
    let theirs = oidc_for(&provider, "other-app", callback);
    let (p2, raw_other) = raw_id_token(&theirs, &provider, "bob", callback).await;
    let audience = ours.verify(&raw_other, &p2.nonce, Utc::now()).await;
    assert!(
        matches!(&audience, Err(OidcError::InvalidIdToken(m)) if m.to_lowercase().contains("audience")),
        "{audience:?}"
    );

    // A genuine token from another provider (same client id there): unknown issuer.
    let stranger = OidcProvider::start(clients, accounts())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let foreign = oidc_for(&stranger, "tollgate", callback);
    let (p3, raw_foreign) = raw_id_token(&foreign, &stranger, "alice", callback).await;
    let issuer = ours.verify(&raw_foreign, &p3.nonce, Utc::now()).await;
    assert!(
        matches!(&issuer, Err(OidcError::InvalidIdToken(m)) if m.to_lowercase().contains("issuer")),
        "{issuer:?}"
    );

    // A provider that is not there: a clear message, no panic.
    let nowhere = Oidc::new(OidcConfig {
        issuer_url: "http://127.0.0.1:9".into(),
        ..ours.config.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        nowhere.begin("/").await,
        Err(OidcError::Discovery(..))
    ));
}
