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
        StatusCode::OK
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
