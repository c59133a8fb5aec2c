//! The playground over real HTTP: a signed-in developer calls a subscribed model through `POST /playground/api/...`
//! with their session (no API key), and the gateway serves it under the subscription: streamed, rate-limited,
//! metered as playground traffic. Outsiders get 404, viewers are refused, a stop cuts the engine's stream.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::{Browser, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use tollgate_server::api::TENANT_HEADER;
use tollgate_store::{testing::Flavor, RecordScan};

const MODEL: &str = "play";

/// An engine simulator on loopback serving `MODEL`, slow enough (30 ms a token) that a stream can be stopped.
async fn engine() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tollgate_sim::cli::Cli::parse_vllm_style([
        "tollgate-sim",
        MODEL,
        "--served-model-name",
        MODEL,
        "--sim-decode-ms",
        "30",
    ])
    .unwrap()
    .into_config()
    .unwrap();
    tokio::spawn(async move {
        let _ = tollgate_sim::serve(config, listener).await;
    });
    format!("http://{addr}")
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Value,
    ) -> Value {
        let mut req = self
            .client
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        if let Some(t) = tenant {
            req = req.header(TENANT_HEADER, t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }
}

async fn token(browser: &Browser) -> String {
    let (status, body) = browser
        .call(
            "/api/tokens/create",
            &[("name", "ci"), ("scope", "write"), ("expiry_days", "30")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["secret"].as_str().unwrap().to_string()
}

/// Invites `email` into `tenant` with `role` (in `team` when given) and returns their signed-in browser.
async fn member(
    app: &TestApp,
    api: &Api,
    root: &str,
    tenant: &str,
    team: Option<&str>,
    email: &str,
    role: &str,
) -> Browser {
    let invite = api
        .send(
            Method::POST,
            "/invitations",
            root,
            Some(tenant),
            json!({ "email": email, "role": role, "team_id": team }),
        )
        .await;
    let token = invite["link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let b = app.browser();
    let r = b
        .post_form(
            "/api/invitations/sign-up",
            &[
                ("token", token.as_str()),
                ("email", email),
                ("name", email),
                ("password", "long-enough-pw"),
            ],
        )
        .await;
    assert!(
        r.status().is_redirection() && support::form_error(&r).is_none(),
        "sign-up of {email}: {:?}",
        support::form_error(&r)
    );
    b
}

/// A playground call as the page makes it: same origin, the session cookie, an OpenAI body.
async fn call(b: &Browser, endpoint: &str, subscription: &str, body: Value) -> reqwest::Response {
    b.client
        .post(format!(
            "{}/playground/api/{endpoint}?subscription={subscription}",
            b.base
        ))
        .header(header::ORIGIN, &b.base)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A GET server function, as the page calls it.
async fn get_json(b: &Browser, path: &str) -> (StatusCode, Value) {
    let r = b
        .client
        .get(format!("{}{path}", b.base))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn chat(stream: bool, max_tokens: u32) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
        "max_tokens": max_tokens,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn the_playground_serves_a_session_under_its_subscription() {
    let engine = engine().await;
    let app = TestApp::start_with(Flavor::Sqlite, |c| {
        c.engines = [(MODEL.to_string(), vec![engine.clone()])]
            .into_iter()
            .collect();
    })
    .await;
    let api = Api {
        base: app.server.url(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let admin = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let root = token(&admin).await;
    api.send(
        Method::POST,
        "/models",
        &root,
        None,
        json!({ "id": MODEL, "display_name": "Play", "family": "F", "provider": "P", "context_length": 4096,
            "task": "chat", "status": "available", "visibility": "open", "upstream_name": MODEL,
            "input_price": "1.00", "output_price": "2.00" }),
    )
    .await;
    let plan = api
        .send(
            Method::POST,
            "/plans",
            &root,
            None,
            json!({ "name": "Three a minute", "requests_per_minute": "3", "monthly_tokens": "1000000" }),
        )
        .await;
    let acme = api
        .send(
            Method::POST,
            "/tenants",
            &root,
            None,
            json!({ "name": "Acme" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let team = api
        .send(
            Method::POST,
            "/teams",
            &root,
            Some(&acme),
            json!({ "name": "Search" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dev = member(
        &app,
        &api,
        &root,
        &acme,
        Some(&team),
        "dev@acme.test",
        "developer",
    )
    .await;
    let viewer = member(
        &app,
        &api,
        &root,
        &acme,
        Some(&team),
        "viewer@acme.test",
        "viewer",
    )
    .await;
    let other = api
        .send(
            Method::POST,
            "/tenants",
            &root,
            None,
            json!({ "name": "Other" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let outsider = member(&app, &api, &root, &other, None, "out@other.test", "admin").await;
    let dev_token = token(&dev).await;
    let sub = api
        .send(
            Method::POST,
            "/subscriptions",
            &dev_token,
            None,
            json!({ "team_id": team, "model_id": MODEL, "plan_id": plan["id"], "note": "" }),
        )
        .await;
    assert_eq!(sub["state"], "active", "{sub}");
    let sub = sub["id"].as_str().unwrap().to_string();

    // The page's setup offers the model under that subscription, and says nothing is missing for it.
    let (status, setup) = get_json(&dev, "/api/playground/setup").await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let choice = setup["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model_id"] == MODEL)
        .cloned()
        .unwrap();
    assert_eq!(
        (choice["subscription_id"].as_str(), choice["why"].as_str()),
        (Some(sub.as_str()), Some(""))
    );
    assert!(setup["api_base"].as_str().unwrap().ends_with("/v1"));
    let (_, viewer_setup) = get_json(&viewer, "/api/playground/setup").await;
    assert!(
        viewer_setup["choices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["why"].as_str().unwrap().contains("Viewers")),
        "{viewer_setup}"
    );

    // Outsiders learn nothing, viewers are refused, a cross-site page is refused, signed-out callers too.
    let (status, code, _) = error_of(call(&outsider, "chat", &sub, chat(false, 5)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, code, message) = error_of(call(&viewer, "chat", &sub, chat(false, 5)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{message}"
    );
    assert!(message.contains("viewers"), "{message}");
    let cross_site = dev
        .client
        .post(format!(
            "{}/playground/api/chat?subscription={sub}",
            dev.base
        ))
        .header(header::ORIGIN, "https://evil.example")
        .json(&chat(false, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let anonymous = call(&app.browser(), "chat", &sub, chat(false, 5)).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, code, _) = error_of(call(&dev, "chat", "sub_nope", chat(false, 5)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // Requests count per clock minute: start the four calls early in one, so they all land in it.
    let into_minute = tollgate_store::now_millis() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis((60_100 - into_minute) as u64)).await;
    }

    // 1: a streamed reply, with the gateway's rate-limit headers.
    let r = call(&dev, "chat", &sub, chat(true, 8)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "2");
    // The monthly quota the page shows, from the same headers (this call's reservation already counted).
    assert_eq!(r.headers()["x-ratelimit-limit-tokens-month"], "1000000");
    let month_left: u64 = r.headers()["x-ratelimit-remaining-tokens-month"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((900_000..1_000_000).contains(&month_left), "{month_left}");
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("\"usage\"") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );
    assert!(text.contains(&format!("\"model\":\"{MODEL}\"")), "{text}");

    // 2: a stop: the client leaves mid-stream; the gateway cuts the engine's stream and meters it as cut.
    let mut r = call(
        &dev,
        "chat",
        &sub,
        json!({
            "model": MODEL, "messages": [{"role": "user", "content": "Talk for a while"}],
            "stream": true, "max_tokens": 400, "ignore_eos": true,
        }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = r.chunk().await.unwrap().unwrap_or_default();
    assert!(!first.is_empty());
    let running = || async {
        let text = api
            .client
            .get(format!("{engine}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("vllm:num_requests_running"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(running().await, 1.0, "the engine is generating");
    drop(r);
    // 400 tokens take the engine 12 s; cut, it stops at once.
    let cut = async {
        while running().await != 0.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), cut)
        .await
        .expect("the engine's stream is cut when the page stops");

    // 3: a whole answer; 4: the plan's RPM of 3 refuses it, in words, with when to retry.
    let r = call(&dev, "chat", &sub, chat(false, 4)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    let r = call(&dev, "chat", &sub, chat(false, 4)).await;
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    let (status, code, message) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
    );
    assert!(
        message.contains("requests per minute") && message.contains("Retry in"),
        "{message}"
    );

    // Every call is on the subscription's record as playground traffic, with no key; the stop as cut.
    let records = async {
        loop {
            app.server.state.gateway.flush_usage().await;
            let rows = app
                .server
                .state
                .store
                .scan_usage(
                    &RecordScan {
                        until: i64::MAX,
                        subscription_id: Some(sub.clone()),
                        ..RecordScan::default()
                    },
                    None,
                    50,
                )
                .await
                .unwrap();
            if rows.len() >= 4 {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut rows = tokio::time::timeout(Duration::from_secs(10), records)
        .await
        .expect("four usage records");
    rows.sort_by_key(|r| r.at);
    assert_eq!(rows.len(), 4, "the refusal is on the record too: {rows:?}");
    for r in &rows {
        assert_eq!(
            (r.source.as_str(), r.key_id.as_deref()),
            ("playground", None),
            "{r:?}"
        );
        assert_eq!(r.tenant_id, acme);
    }
    let statuses: Vec<i64> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let stopped = &rows[1];
    assert_eq!(
        (stopped.streamed, stopped.client_disconnected),
        (1, 1),
        "{stopped:?}"
    );
    assert!(
        stopped.completion_tokens < 400,
        "cut before the engine finished: {stopped:?}"
    );
    assert!(rows[0].completion_tokens > 0 && rows[0].client_disconnected == 0);

    // The records are the tenant's usage like any other: the usage API shows them with their source.
    let usage = api
        .send(
            Method::GET,
            &format!("/usage?subscription_id={sub}"),
            &root,
            Some(&acme),
            Value::Null,
        )
        .await;
    assert_eq!(usage["items"].as_array().map(Vec::len), Some(4), "{usage}");
    assert_eq!(usage["next"], Value::Null, "one page holds them all");
    app.stop().await;
}
