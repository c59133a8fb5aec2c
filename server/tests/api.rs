//! The management API over real HTTP, on SQLite and PostgreSQL: every documented route exists and refuses
//! anonymous callers, personal access tokens and their scopes, the catalog-to-key flow as JSON, error bodies for
//! bad input, and tenant isolation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::{Browser, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use tollgate_domain::{grant::KeyRejection, time::Millis};
use tollgate_server::api::{openapi, TENANT_HEADER};
use tollgate_store::testing::Flavor;

struct Api<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), self.app.url(&format!("/api/v1{path}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(t) = tenant {
            req = req.header(TENANT_HEADER, t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn error_type(v: &Value) -> &str {
    v["error"]["type"].as_str().unwrap_or("<no error body>")
}

/// A personal access token created through the portal, as a user does on their account page.
async fn token(browser: &Browser, scope: &str) -> String {
    let (status, body) = browser
        .call(
            "/api/tokens/create",
            &[("name", "ci"), ("scope", scope), ("expiry_days", "30")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {body}"))
        .to_string()
}

/// Signs up through an invitation link and returns the new user's browser.
async fn join(app: &TestApp, link: &str, email: &str) -> Browser {
    let token = link.rsplit('/').next().unwrap_or_default();
    let b = app.browser();
    let r = b
        .post_form(
            "/api/invitations/sign-up",
            &[
                ("token", token),
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

async fn suite(flavor: Flavor) {
    let app = TestApp::start(flavor).await;
    let api = Api::new(&app);

    // The document is public and every route in it exists and refuses anonymous callers with a JSON 401.
    let (status, doc) = api
        .send(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let operations = openapi::operations();
    assert!(operations.len() >= 34, "{} operations", operations.len());
    for (method_name, full_path, takes_body) in operations {
        let path = full_path
            .trim_start_matches(openapi::PREFIX)
            .replace("{id}", "x")
            .replace("{user_id}", "y")
            .replace("{model_id}", "z")
            .replace("{email}", "e");
        let method = Method::from_bytes(method_name.to_uppercase().as_bytes())
            .unwrap_or_else(|err| panic!("{err}"));
        let body = takes_body.then(|| json!({}));
        let (status, body) = api.send(method, &path, None, None, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method_name} {full_path}: {body}"
        );
        assert_eq!(
            error_type(&body),
            "unauthenticated",
            "{method_name} {full_path}"
        );
        assert!(doc["paths"][&full_path][&method_name].is_object());
    }
    let (status, body) = api
        .send(Method::GET, "/no-such-route", None, None, None)
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = api
        .send(
            Method::GET,
            "/me",
            Some("tgp-abcdefghijkl0123456789012345678901234567"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a forged token");

    // The platform admin automates: a tenant, a team, an invitation.
    let admin_browser = Browser::signed_in(app.server.url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let root = token(&admin_browser, "write").await;
    let (status, me) = api.send(Method::GET, "/me", Some(&root), None, None).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (StatusCode::OK, Some(ADMIN_EMAIL))
    );
    let (status, acme) = api
        .send(
            Method::POST,
            "/tenants",
            Some(&root),
            None,
            Some(json!({ "name": "Acme" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{acme}");
    let acme = acme["id"].as_str().unwrap_or_default().to_string();
    let (status, team) = api
        .send(
            Method::POST,
            "/teams",
            Some(&root),
            Some(&acme),
            Some(json!({ "name": "Search", "description": "ranking" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team = team["id"].as_str().unwrap_or_default().to_string();
    let (status, invite) = api
        .send(
            Method::POST,
            "/invitations",
            Some(&root),
            Some(&acme),
            Some(json!({ "email": "dev@acme.test", "role": "developer", "team_id": team })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let dev_browser = join(
        &app,
        invite["link"].as_str().unwrap_or_default(),
        "dev@acme.test",
    )
    .await;
    let dev = token(&dev_browser, "write").await;
    let dev_read = token(&dev_browser, "read").await;

    // A developer may not do what admins do: each answers 403 with the JSON error body.
    let model = json!({ "id": "m", "display_name": "M", "family": "F", "provider": "P", "context_length": 1024,
        "task": "chat", "status": "available", "visibility": "open" });
    for (method, path, body) in [
        (Method::POST, "/models".to_string(), Some(model.clone())),
        (Method::PUT, "/models/bge-m3".to_string(), Some(model)),
        (
            Method::POST,
            "/plans".to_string(),
            Some(json!({ "name": "Mine" })),
        ),
        (
            Method::POST,
            "/tenants".to_string(),
            Some(json!({ "name": "Mine" })),
        ),
        (Method::GET, "/tenants".to_string(), None),
        (
            Method::POST,
            "/teams".to_string(),
            Some(json!({ "name": "Mine" })),
        ),
        (Method::DELETE, format!("/teams/{team}"), None),
        (
            Method::POST,
            "/invitations".to_string(),
            Some(json!({ "role": "admin" })),
        ),
        (Method::GET, "/audit".to_string(), None),
        (Method::GET, "/approvals".to_string(), None),
    ] {
        let (status, body) = api
            .send(method.clone(), &path, Some(&dev), Some(&acme), body)
            .await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {path}: {body}"
        );
    }

    // Bad input: clear 4xx bodies, nothing created.
    let raw = |body: &'static str, content_type: &'static str| {
        api.client
            .post(app.url("/api/v1/teams"))
            .bearer_auth(&root)
            .header(TENANT_HEADER, &acme)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let r = raw("{not json", "application/json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_type(&r.json().await.unwrap_or_default()),
        "invalid_request"
    );
    let r = raw("{}", "application/json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.text().await.unwrap_or_default().contains("name"),
        "missing field named"
    );
    let r = raw("name=x", "application/x-www-form-urlencoded")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
    let r = api
        .client
        .post(app.url("/api/v1/teams"))
        .bearer_auth(&root)
        .header(TENANT_HEADER, &acme)
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = api
        .send(
            Method::POST,
            "/teams",
            Some(&root),
            Some(&acme),
            Some(json!({ "name": "   " })),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    let (_, teams) = api
        .send(Method::GET, "/teams", Some(&root), Some(&acme), None)
        .await;
    assert_eq!(teams["total"], 1, "no team was created by bad input");

    // The developer browses and subscribes; a read token may look but not change.
    let (status, models) = api
        .send(
            Method::GET,
            "/models?task=embeddings&per_page=5",
            Some(&dev_read),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{models}");
    assert_eq!(models["items"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(models["items"][0]["id"], "bge-m3");
    let (status, _) = api
        .send(Method::GET, "/models/no-such-model", Some(&dev), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, plans) = api
        .send(Method::GET, "/plans", Some(&dev), None, None)
        .await;
    let plan_id = |name: &str| {
        plans
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .map(|p| p["id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no plan {name}"))
    };
    let request = json!({ "team_id": team, "model_id": "llama-3.1-8b-instruct", "plan_id": plan_id("Team"), "note": "search" });
    let (status, body) = api
        .send(
            Method::POST,
            "/subscriptions",
            Some(&dev_read),
            None,
            Some(request.clone()),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let (status, sub) = api
        .send(
            Method::POST,
            "/subscriptions",
            Some(&dev),
            None,
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["state"], "pending_tenant");
    let sub_id = sub["id"].as_str().unwrap_or_default().to_string();
    let (status, _) = api
        .send(
            Method::POST,
            "/subscriptions",
            Some(&dev),
            None,
            Some(request),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one live subscription per team and model"
    );

    // Approval: the developer cannot; the admin can.
    let decide = |change: &str| json!({ "change": change, "reason": "" });
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/subscriptions/{sub_id}/decision"),
            Some(&dev),
            None,
            Some(decide("approve")),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (_, queue) = api
        .send(Method::GET, "/approvals", Some(&root), None, None)
        .await;
    assert!(
        queue["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["id"] == sub_id.as_str())),
        "{queue}"
    );
    let (status, approved) = api
        .send(
            Method::POST,
            &format!("/subscriptions/{sub_id}/decision"),
            Some(&root),
            None,
            Some(decide("approve")),
        )
        .await;
    assert_eq!(
        (status, approved["state"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/subscriptions/{sub_id}/decision"),
            Some(&root),
            None,
            Some(json!({ "change": "explode" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A key, shown once; the gateway snapshot resolves it until it is revoked.
    let (status, created) = api
        .send(
            Method::POST,
            &format!("/subscriptions/{sub_id}/keys"),
            Some(&dev),
            None,
            Some(json!({ "name": "backend", "expires_in_days": 30 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap_or_default().to_string();
    let key_id = created["key"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(secret.starts_with("tg-"));
    let (_, detail) = api
        .send(
            Method::GET,
            &format!("/subscriptions/{sub_id}"),
            Some(&dev_read),
            None,
            None,
        )
        .await;
    assert_eq!(detail["keys"][0]["prefix"], format!("tg-{key_id}"));
    assert!(
        !detail.to_string().contains(&secret),
        "the secret is never shown again"
    );
    let resolves = || {
        app.server
            .state
            .gateway
            .keys()
            .load()
            .resolve(Some(&secret), Millis(tollgate_store::now_millis()))
            .map(|(_, g)| g.subscription_id.clone())
    };
    // The call that created the key returns only once this server's snapshot has it.
    assert_eq!(
        resolves(),
        Ok(sub_id.clone()),
        "usable as soon as the API answered"
    );

    // Per-model limits under a plan reach the gateway's grant; only platform admins set them.
    let overrides = format!("/plans/{}/models/llama-3.1-8b-instruct", plan_id("Team"));
    let (status, _) = api
        .send(
            Method::PUT,
            &overrides,
            Some(&dev),
            None,
            Some(json!({ "tokens_per_minute": "5000" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api
        .send(
            Method::PUT,
            &overrides,
            Some(&root),
            None,
            Some(json!({ "tokens_per_minute": 0 })),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Limits are JSON numbers; the strings the API took before are still accepted.
    let (status, plan) = api
        .send(
            Method::PUT,
            &overrides,
            Some(&root),
            None,
            Some(json!({ "tokens_per_minute": "5,000" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let (status, plan) = api
        .send(
            Method::PUT,
            &overrides,
            Some(&root),
            None,
            Some(json!({ "tokens_per_minute": 5000, "max_concurrent": null })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let limits = || {
        app.server
            .state
            .gateway
            .keys()
            .load()
            .resolve(Some(&secret), Millis(tollgate_store::now_millis()))
            .map(|(_, g)| g.limits)
    };
    assert!(
        limits()
            .is_ok_and(|l| l.tokens_per_minute == Some(5000) && l.requests_per_minute == Some(120)),
        "the override is in the grant when the API answers: {:?}",
        limits()
    );
    let (status, revoked) = api
        .send(
            Method::DELETE,
            &format!("/keys/{key_id}"),
            Some(&dev),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, revoked["state"]["state"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    assert_eq!(
        resolves(),
        Err(KeyRejection::Revoked),
        "revoked as soon as the API answered"
    );

    // Another tenant's admin sees nothing of Acme's.
    let (_, globex) = api
        .send(
            Method::POST,
            "/tenants",
            Some(&root),
            None,
            Some(json!({ "name": "Globex" })),
        )
        .await;
    let globex = globex["id"].as_str().unwrap_or_default().to_string();
    let (_, invite) = api
        .send(
            Method::POST,
            "/invitations",
            Some(&root),
            Some(&globex),
            Some(json!({ "role": "admin" })),
        )
        .await;
    let other = token(
        &join(
            &app,
            invite["link"].as_str().unwrap_or_default(),
            "boss@globex.test",
        )
        .await,
        "write",
    )
    .await;
    for (method, path) in [
        (Method::GET, format!("/subscriptions/{sub_id}")),
        (Method::DELETE, format!("/keys/{key_id}")),
        (Method::GET, format!("/teams/{team}")),
    ] {
        let (status, body) = api
            .send(method.clone(), &path, Some(&other), None, None)
            .await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}"
        );
    }
    let (status, _) = api
        .send(
            Method::GET,
            "/subscriptions",
            Some(&other),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "naming Acme in the header does not help"
    );
    let (_, theirs) = api
        .send(Method::GET, "/subscriptions", Some(&other), None, None)
        .await;
    assert_eq!(theirs["total"], 0);

    // A product owner: a viewer in Globex whom the platform admin makes a platform viewer. They read usage in
    // Acme and across tenants, and every write anywhere is refused; a developer reads neither.
    let (_, invite) = api
        .send(
            Method::POST,
            "/invitations",
            Some(&root),
            Some(&globex),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    let po_browser = join(
        &app,
        invite["link"].as_str().unwrap_or_default(),
        "po@globex.test",
    )
    .await;
    let po = token(&po_browser, "write").await;
    let (status, _) = api
        .send(
            Method::GET,
            "/usage/summary?range=day",
            Some(&po),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not yet a platform viewer");
    let (status, body) = api
        .send(
            Method::PUT,
            "/platform/viewers/po@globex.test",
            Some(&dev),
            None,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only platform admins grant it: {body}"
    );
    let (status, body) = api
        .send(
            Method::PUT,
            "/platform/viewers/po@globex.test",
            Some(&root),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["email"].as_str()),
        (StatusCode::OK, Some("po@globex.test"))
    );
    let (_, me) = api.send(Method::GET, "/me", Some(&po), None, None).await;
    assert_eq!(me["platform_viewer"], true, "{me}");
    for path in [
        "/usage/summary?range=day&group_by=team",
        "/usage/series?range=hour",
        "/usage/summary?range=30d&all_tenants=true&group_by=tenant",
    ] {
        let (status, body) = api
            .send(Method::GET, path, Some(&po), Some(&acme), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _) = api
        .send(
            Method::GET,
            "/usage/summary?range=day&all_tenants=true",
            Some(&dev),
            None,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a developer reads no other tenant's figures"
    );
    let mut forbidden = 0;
    for (method_name, full_path, takes_body) in openapi::operations() {
        if method_name == "get" {
            continue;
        }
        let path = full_path
            .trim_start_matches(openapi::PREFIX)
            .replace("{id}", &sub_id)
            .replace("{user_id}", "y")
            .replace("{model_id}", "bge-m3")
            .replace("{email}", "po@globex.test");
        let method = Method::from_bytes(method_name.to_uppercase().as_bytes()).unwrap();
        let body = takes_body.then(|| json!({ "name": "x", "role": "admin", "change": "approve" }));
        for tenant in [&acme, &globex] {
            let (status, body) = api
                .send(
                    method.clone(),
                    &path,
                    Some(&po),
                    Some(tenant.as_str()),
                    body.clone(),
                )
                .await;
            assert!(
                !status.is_success(),
                "{method_name} {full_path} in {tenant}: a platform viewer changed something: {body}"
            );
            forbidden += usize::from(status == StatusCode::FORBIDDEN);
        }
    }
    assert!(forbidden >= 10, "refused as forbidden {forbidden} times");

    // The audit log has the API's actions; a revoked token stops working.
    let (_, audit) = api
        .send(
            Method::GET,
            "/audit?action=subscription.approved",
            Some(&root),
            None,
            None,
        )
        .await;
    assert!(audit["total"].as_u64().unwrap_or(0) >= 1, "{audit}");
    let tokens: Value = dev_browser
        .client
        .get(app.url("/api/tokens/list"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let read_id = tokens
        .as_array()
        .and_then(|a| a.iter().find(|t| t["scope"] == "read"))
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let (status, _) = dev_browser
        .call("/api/tokens/revoke", &[("token_id", &read_id)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send(Method::GET, "/me", Some(&dev_read), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token");

    app.stop().await;
}

#[tokio::test]
async fn management_api_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn management_api_on_postgres() {
    suite(Flavor::Postgres).await;
}
