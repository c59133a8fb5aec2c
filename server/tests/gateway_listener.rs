//! The gateway on a listener of its own: `/v1` answers there (and still on the main listener); the portal and the
//! management API do not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use reqwest::StatusCode;
use support::TestApp;
use tollgate_store::testing::Flavor;

#[tokio::test]
async fn the_gateway_can_have_its_own_listener() {
    let app = TestApp::start_with(Flavor::Sqlite, |c| {
        c.gateway_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let gateway = format!(
        "http://{}",
        app.server
            .gateway_addr
            .unwrap_or_else(|| panic!("no gateway listener"))
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };

    let models = get(format!("{gateway}/v1/models")).await;
    assert_eq!(
        models.status(),
        StatusCode::UNAUTHORIZED,
        "the gateway answers, asking for a key"
    );
    let body: serde_json::Value = models.json().await.unwrap_or_default();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("API key")),
        "{body}"
    );
    assert_eq!(
        get(format!("{gateway}/metrics")).await.status(),
        StatusCode::NOT_FOUND,
        "no metrics on a public listener without a metrics token"
    );
    assert_eq!(
        get(format!("{gateway}/api/v1/openapi.json")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(format!("{gateway}/login")).await.status(),
        StatusCode::NOT_FOUND
    );
    // The main listener keeps serving /v1 as well.
    assert_eq!(
        get(app.url("/v1/models")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_stay_off_public_listeners_unless_a_token_is_presented() {
    let app = TestApp::start_with(Flavor::Sqlite, |c| {
        c.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        c.metrics_token = Some("metrics-secret-token".into());
    })
    .await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let status = |url: String, token: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut request = client.get(url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .status()
        }
    };
    assert_eq!(
        status(app.url("/metrics"), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(app.url("/metrics"), Some("wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(app.url("/metrics"), Some("metrics-secret-token")).await,
        StatusCode::OK
    );
    let metrics = format!(
        "http://{}/metrics",
        app.server
            .metrics_addr
            .unwrap_or_else(|| panic!("no metrics listener"))
    );
    assert_eq!(
        status(metrics.clone(), None).await,
        StatusCode::OK,
        "the metrics listener is for monitoring"
    );
    let body = client
        .get(metrics)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(body.contains("tollgate_gateway_limiter_mode"), "{body}");
    app.stop().await;

    // Without a token, the portal's port has no /metrics at all: it is just a page that needs signing in.
    let app = TestApp::start(Flavor::Sqlite).await;
    let r = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(app.url("/metrics"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!r
        .text()
        .await
        .unwrap_or_default()
        .contains("tollgate_gateway_"));
    app.stop().await;
}
