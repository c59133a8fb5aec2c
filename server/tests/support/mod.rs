//! Test harness: the real server on a random port over a throwaway database, and a cookie-keeping
//! client that behaves like a browser (forms, redirects not followed, Origin sent on posts).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails
#![allow(dead_code)]

pub mod oidc;

use reqwest::{header, redirect::Policy, Client, Response, StatusCode};
use tollgate_server::{start, Config, RunningServer};
use tollgate_store::testing::{Flavor, TestDatabase};

pub const ADMIN_EMAIL: &str = "root@tollgate.test";
pub const ADMIN_PASSWORD: &str = "root-password-123";

pub struct TestApp {
    pub server: RunningServer,
    pub db: TestDatabase,
}

impl TestApp {
    pub async fn start(flavor: Flavor) -> Self {
        Self::start_with(flavor, |_| {}).await
    }

    pub async fn start_with(flavor: Flavor, adjust: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        Self::start_on(flavor, listener, adjust).await
    }

    pub async fn start_on(
        flavor: Flavor,
        listener: tokio::net::TcpListener,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        // The server's warnings and errors go to the test's captured output, so a failure shows its cause.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,sqlx=error".into()))
            .try_init();
        let db = TestDatabase::new(flavor)
            .await
            .unwrap_or_else(|e| panic!("test database: {e}"));
        let mut config = Config::for_tests(&db.url);
        config.admin_email = ADMIN_EMAIL.into();
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.public_url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        adjust(&mut config);
        let server = start(config, listener)
            .await
            .unwrap_or_else(|e| panic!("server start: {e:#}"));
        Self { server, db }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self.server.url())
    }

    pub async fn stop(self) {
        self.server
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
        self.db
            .cleanup()
            .await
            .unwrap_or_else(|e| panic!("cleanup: {e}"));
    }
}

pub struct Browser {
    pub client: Client,
    pub base: String,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new(base: String) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .no_proxy()
            .user_agent("tollgate-tests")
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Self { client, base, jar }
    }

    pub async fn get(&self, path: &str) -> Response {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.client
            .get(url)
            .header(header::ACCEPT, "text/html")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A form post as the browser sends it from one of our pages.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header(header::ORIGIN, &self.base)
            .header(header::REFERER, format!("{}/", self.base))
            .header(header::ACCEPT, "text/html")
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// A server function called as the hydrated page does (JSON answers, errors with their status).
    pub async fn call(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, serde_json::Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::ORIGIN, &self.base)
            .header(header::ACCEPT, "application/json")
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_form(
            "/api/auth/login",
            &[("email", email), ("password", password), ("next", "/")],
        )
        .await
    }

    /// Signed in as the given user, or panics.
    pub async fn signed_in(base: String, email: &str, password: &str) -> Self {
        let b = Self::new(base);
        let r = b.login(email, password).await;
        let location = location(&r);
        assert!(
            r.status().is_redirection() && !location.contains("__err"),
            "login of {email} failed: {location}"
        );
        b
    }

    /// The Cookie header this browser sends to our server.
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.base.parse().unwrap_or_else(|e| panic!("{e}"));
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn me(&self) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}/api/me", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("me: {e}"));
        r.json().await.unwrap_or(serde_json::Value::Null)
    }
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The error message a form post was answered with (decoded from the `__err` redirect), if any.
pub fn form_error(r: &Response) -> Option<String> {
    use base64::Engine;
    // A browser only follows the redirect back to the form when it is a redirect.
    assert!(
        r.status().is_redirection(),
        "a form post must answer with a redirect, got {}",
        r.status()
    );
    let loc = location(r);
    let url = reqwest::Url::parse(&loc).ok()?;
    let raw = url.query_pairs().find(|(k, _)| k == "__err")?.1.to_string();
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw.as_bytes())
        .ok()?;
    let err: tollgate_app::error::AppError = serde_json::from_slice(&bytes).ok()?;
    Some(err.to_string())
}
