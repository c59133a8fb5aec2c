//! Single sign-on against a REAL OpenID Connect provider (npm's certified `oidc-provider`, started on
//! loopback by the test): the whole browser flow through our server, group claims mapped to roles,
//! sign-out at the provider, and every rejection the issue lists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use support::{location, oidc::OidcProvider, TestApp};
use tollgate_identity::oidc::{Oidc, OidcConfig, OidcError};
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
    })
    .unwrap_or_else(|e| panic!("{e}"))
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

#[tokio::test]
async fn browser_sign_in_maps_groups_to_roles_and_sign_out_reaches_the_provider() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let callback = format!("{base}/auth/oidc/callback");
    let provider = OidcProvider::start(json!([client("tollgate", &callback, &base)]), accounts())
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
    assert!(authorize.starts_with(&provider.issuer), "{authorize}");
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            !query_param(&authorize, p).is_empty(),
            "{p} missing from {authorize}"
        );
    }
    assert_eq!(query_param(&authorize, "code_challenge_method"), "S256");
    let back = provider
        .login(&authorize, "alice", "test", &callback)
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
    let authorize = location(&bob.get("/auth/oidc/start").await);
    let back = provider
        .login(&authorize, "bob", "test", &callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A tampered state is refused with a clear message.
    let tampered = back.replace(&query_param(&back, "state"), "forged-state");
    let refused = bob.get(&tampered).await;
    let msg = query_param(&format!("http://x{}", location(&refused)), "sso_error");
    assert!(msg.contains("state mismatch"), "{msg}");

    // Sign-out ends our session and sends the browser to the provider's end_session_endpoint.
    let out = browser.post_form("/api/auth/logout", &[]).await;
    let end = location(&out);
    assert!(
        end.starts_with(&format!("{}/session/end", provider.issuer)),
        "{end}"
    );
    assert!(!query_param(&end, "id_token_hint").is_empty());
    assert_eq!(browser.me().await, serde_json::Value::Null);
    app.stop().await;
}

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
    let (url, p2) = theirs.begin("/").await.unwrap_or_else(|e| panic!("{e}"));
    let back = provider
        .login(&url, "bob", "test", callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw_other = theirs
        .exchange(&p2, &p2.state, &query_param(&back, "code"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
    let (url, p3) = foreign.begin("/").await.unwrap_or_else(|e| panic!("{e}"));
    let back = stranger
        .login(&url, "alice", "test", callback)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw_foreign = foreign
        .exchange(&p3, &p3.state, &query_param(&back, "code"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
