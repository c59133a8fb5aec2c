//! A real OpenID Connect provider for integration tests.
//!
//! [`OidcProvider::start`] runs `node end2end/oidc/provider.mjs` (npm's
//! `oidc-provider`, OpenID Certified) on a random loopback port, and
//! [`OidcProvider::login`] drives its login page the way a browser without
//! JavaScript would, returning the redirect back to our callback.
//!
//! Needs `node` (override with `$NODE`) and `npm ci` having been run at the
//! repository root (for `node_modules/oidc-provider`).
//!
//! Provider behaviour (see the header of `end2end/oidc/provider.mjs`):
//! - issuer `http://127.0.0.1:<port>`; discovery at
//!   `<issuer>/.well-known/openid-configuration`;
//! - PKCE (S256) required; `client_secret_basic` and `client_secret_post` both work;
//! - scopes `openid email profile groups`; `email`, `email_verified`, `name`,
//!   `preferred_username`, `groups` are in the ID token itself;
//! - unknown logins and wrong passwords are rejected (the password is `test`
//!   unless `OIDC_PASSWORD` / an account's `"password"` says otherwise);
//! - consent is automatic;
//! - the authorization response carries `code`, `state` and `iss` (RFC 9207).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

const LISTENING_PREFIX: &str = "oidc-provider listening on ";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_STEPS: usize = 20;

pub struct OidcProvider {
    /// e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub issuer: String,
    /// Killed on drop (`kill_on_drop`).
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// What it was started with, for [`OidcProvider::restart`].
    clients: serde_json::Value,
    accounts: serde_json::Value,
    env: Vec<(String, String)>,
}

impl OidcProvider {
    /// Starts `node end2end/oidc/provider.mjs` on a random port with the given
    /// `OIDC_CLIENTS` (JSON array) and `OIDC_ACCOUNTS` (JSON object), and waits
    /// (up to 20 s) for its `oidc-provider listening on <issuer>` line.
    pub async fn start(clients: serde_json::Value, accounts: serde_json::Value) -> Result<Self> {
        Self::start_with_env(clients, accounts, &[]).await
    }

    /// Like [`OidcProvider::start`], with extra environment variables for the
    /// script (e.g. `("OIDC_PASSWORD", "hunter2")`).
    pub async fn start_with_env(
        clients: serde_json::Value,
        accounts: serde_json::Value,
        extra_env: &[(&str, &str)],
    ) -> Result<Self> {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let repo_root = manifest_dir
            .parent()
            .ok_or_else(|| {
                anyhow!(
                    "CARGO_MANIFEST_DIR {} has no parent",
                    manifest_dir.display()
                )
            })?
            .to_path_buf();
        let script = repo_root.join("end2end").join("oidc").join("provider.mjs");
        if !script.is_file() {
            bail!("OIDC provider script not found at {}", script.display());
        }
        if !repo_root
            .join("node_modules")
            .join("oidc-provider")
            .is_dir()
        {
            bail!(
                "node_modules/oidc-provider is missing under {}; run `npm ci` there first",
                repo_root.display()
            );
        }

        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_string());
        let mut cmd = Command::new(&node);
        cmd.arg(&script)
            .current_dir(&repo_root)
            .env("OIDC_PORT", "0")
            .env("OIDC_HOST", "127.0.0.1")
            .env_remove("OIDC_ISSUER")
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_ACCOUNTS", accounts.to_string());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning `{node} {}`", script.display()))?;

        // Collect stderr (for error messages) and echo it into the test output.
        let stderr_buf = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let buf = Arc::clone(&stderr_buf);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[oidc-provider] {line}");
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&line);
                        b.push('\n');
                    }
                }
            });
        }

        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("child stdout was not captured"))?;
        let mut stdout_lines = BufReader::new(stdout).lines();

        let wait_for_line = async {
            loop {
                match stdout_lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.strip_prefix(LISTENING_PREFIX) {
                            return Ok::<String, anyhow::Error>(
                                rest.trim().trim_end_matches('/').to_string(),
                            );
                        }
                        eprintln!("[oidc-provider stdout] {line}");
                    }
                    Ok(None) => {
                        return Err(anyhow!("provider closed stdout (exited?) before listening"))
                    }
                    Err(e) => return Err(anyhow!("reading provider stdout: {e}")),
                }
            }
        };

        let outcome = match tokio::time::timeout(START_TIMEOUT, wait_for_line).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!(
                "timed out after {START_TIMEOUT:?} waiting for `{LISTENING_PREFIX}...`"
            )),
        };

        match outcome {
            Ok(issuer) => {
                // Keep draining stdout so the child never blocks on a full pipe.
                tokio::spawn(async move {
                    while let Ok(Some(line)) = stdout_lines.next_line().await {
                        eprintln!("[oidc-provider stdout] {line}");
                    }
                });
                Ok(Self {
                    issuer,
                    child,
                    stderr: stderr_buf,
                    clients,
                    accounts,
                    env: extra_env
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                })
            }
            Err(e) => {
                let _ = child.start_kill();
                // Give the stderr reader a moment to collect the last lines.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let status = child.try_wait().ok().flatten();
                let stderr = stderr_buf.lock().map(|s| s.clone()).unwrap_or_default();
                Err(e.context(format!(
                    "starting OIDC provider ({}); exit status: {status:?}; stderr:\n{stderr}",
                    script.display()
                )))
            }
        }
    }

    /// Stops the provider and starts it again on the same port, so with the same issuer, clients and accounts but
    /// a new signing key (it makes one at every start) and no sessions: a key rotation, as a provider does it.
    pub async fn restart(&mut self) -> Result<()> {
        let port = Url::parse(&self.issuer)?
            .port()
            .ok_or_else(|| anyhow!("issuer {} has no port", self.issuer))?
            .to_string();
        self.child.kill().await.context("stopping the provider")?;
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "OIDC_PORT")
            .cloned()
            .collect();
        env.push(("OIDC_PORT".into(), port));
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut last = None;
        // The port may take a moment to be free again.
        for _ in 0..50 {
            match Self::start_with_env(self.clients.clone(), self.accounts.clone(), &env_refs).await
            {
                Ok(mut fresh) => {
                    if fresh.issuer != self.issuer {
                        bail!("restarted as {}, not {}", fresh.issuer, self.issuer);
                    }
                    // `fresh` now holds the stopped process, dropped here.
                    std::mem::swap(self, &mut fresh);
                    self.env.retain(|(k, _)| k != "OIDC_PORT");
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("the provider did not restart")))
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Everything the provider has written to stderr so far (errors it
    /// rejected requests with, e.g. `grant.error: invalid_grant ...`).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Drives the provider's own login page like a browser would (fresh cookie
    /// jar per call, i.e. a new browser with no provider session):
    ///
    /// 1. `GET authorize_url` -> 303 to `/interaction/<uid>`;
    /// 2. `GET /interaction/<uid>` -> 200 login form;
    /// 3. `POST /interaction/<uid>/login` (`login`, `password`, `prompt=login`)
    ///    -> 303 to `<issuer>/auth/<uid>` (401 + the form again when rejected:
    ///    this returns an error mentioning "login rejected");
    /// 4. `GET /auth/<uid>` -> 303 to `<redirect_uri>?code=..&state=..&iss=..`
    ///    (consent is automatic; any other provider form is submitted as is).
    ///
    /// Stops at the first redirect whose `Location` starts with
    /// `redirect_prefix` and returns that URL (absolute). An authorization
    /// error (e.g. `?error=invalid_request` for a missing PKCE challenge) is
    /// also returned this way, not as an `Err`.
    pub async fn login(
        &self,
        authorize_url: &str,
        login: &str,
        password: &str,
        redirect_prefix: &str,
    ) -> Result<String> {
        self.drive(authorize_url, Some((login, password)), redirect_prefix)
            .await
            .with_context(|| format!("logging in as {login:?} at the OIDC provider"))
    }

    /// Follows an RP-initiated logout URL (the provider's `end_session_endpoint`
    /// with `id_token_hint` and `post_logout_redirect_uri`, as our server
    /// redirects to it) like a browser without JavaScript: submits the
    /// provider's auto-submitting confirmation form (`xsrf`, `logout=yes`) to
    /// `/session/end/confirm`, and returns the first redirect whose `Location`
    /// starts with `redirect_prefix` (`post_logout_redirect_uri`, plus
    /// `?state=` when one was sent). Uses a fresh cookie jar, so it signs out
    /// nobody at the provider; it checks the provider accepts the request.
    pub async fn logout(&self, end_session_url: &str, redirect_prefix: &str) -> Result<String> {
        self.drive(end_session_url, None, redirect_prefix)
            .await
            .context("following the OIDC provider's end_session flow")
    }

    async fn drive(
        &self,
        start_url: &str,
        credentials: Option<(&str, &str)>,
        redirect_prefix: &str,
    ) -> Result<String> {
        let issuer =
            Url::parse(&self.issuer).with_context(|| format!("issuer {:?}", self.issuer))?;
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .context("building reqwest client")?;

        let mut url = Url::parse(start_url).with_context(|| format!("URL {start_url:?}"))?;
        // Some(fields) => POST the fields as a form; None => GET.
        let mut post_body: Option<Vec<(String, String)>> = None;
        let mut credentials_sent = false;
        let mut trail: Vec<String> = Vec::new();

        for _ in 0..MAX_STEPS {
            if url.origin() != issuer.origin() {
                bail!(
                    "left the provider's origin at {url} (expected a redirect starting with {redirect_prefix:?}); steps: {trail:#?}"
                );
            }
            let method = if post_body.is_some() { "POST" } else { "GET" };
            let request = match post_body.take() {
                Some(fields) => client.post(url.as_str()).form(&fields),
                None => client.get(url.as_str()),
            };
            let response = request
                .send()
                .await
                .with_context(|| format!("{method} {url}"))?;
            let status = response.status();

            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .ok_or_else(|| anyhow!("{method} {url} -> {status} without a Location header"))?
                    .to_str()
                    .with_context(|| format!("{method} {url}: non-ASCII Location header"))?
                    .to_string();
                trail.push(format!("{method} {url} -> {status} {location}"));
                let next = url
                    .join(&location)
                    .with_context(|| format!("{method} {url}: bad Location {location:?}"))?;
                if location.starts_with(redirect_prefix) {
                    return Ok(location);
                }
                if next.as_str().starts_with(redirect_prefix) {
                    return Ok(next.to_string());
                }
                url = next;
                continue;
            }

            let body = response
                .text()
                .await
                .with_context(|| format!("{method} {url}: reading body"))?;
            trail.push(format!("{method} {url} -> {status}"));

            let Some(form) = parse_form(&body) else {
                bail!(
                    "{method} {url} -> {status} with no form to submit; steps: {trail:#?}; body: {}",
                    snippet(&body)
                );
            };
            let is_login_form = form.inputs.iter().any(|i| i.kind == "password");

            if is_login_form && credentials_sent {
                bail!(
                    "login rejected by the OIDC provider ({status}): {}",
                    error_text(&body).unwrap_or_else(|| snippet(&body))
                );
            }
            if !status.is_success() {
                bail!(
                    "{method} {url} -> {status}; steps: {trail:#?}; body: {}",
                    snippet(&body)
                );
            }

            let mut fields: Vec<(String, String)> = Vec::new();
            if is_login_form {
                let (login, password) = credentials.ok_or_else(|| {
                    anyhow!("{method} {url} showed a login form but no credentials were given")
                })?;
                for input in &form.inputs {
                    let value = if input.kind == "password" {
                        password.to_string()
                    } else if matches!(input.name.as_str(), "login" | "username" | "email") {
                        login.to_string()
                    } else {
                        input.value.clone()
                    };
                    fields.push((input.name.clone(), value));
                }
                credentials_sent = true;
            } else {
                for input in &form.inputs {
                    fields.push((input.name.clone(), input.value.clone()));
                }
            }

            let action = form.action.as_deref().filter(|a| !a.is_empty());
            let target = match action {
                Some(a) => url
                    .join(a)
                    .with_context(|| format!("form action {a:?} on {url}"))?,
                None => url.clone(),
            };
            if form.method == "post" {
                post_body = Some(fields);
                url = target;
            } else {
                let mut target = target;
                {
                    let mut query = target.query_pairs_mut();
                    query.clear();
                    for (k, v) in &fields {
                        query.append_pair(k, v);
                    }
                }
                url = target;
            }
        }
        bail!("gave up after {MAX_STEPS} requests without reaching {redirect_prefix:?}; steps: {trail:#?}")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // kill_on_drop does this too; be explicit.
        let _ = self.child.start_kill();
    }
}

// ---------------------------------------------------------------------------
// Tiny HTML form scraping (good enough for oidc-provider's pages).

#[derive(Debug)]
struct Form {
    action: Option<String>,
    /// lower-case, "get" when absent.
    method: String,
    inputs: Vec<Input>,
}

#[derive(Debug)]
struct Input {
    name: String,
    value: String,
    /// lower-case `type`, "text" when absent.
    kind: String,
}

/// The first `<form>` in `html` and the named `<input>`s inside it.
fn parse_form(html: &str) -> Option<Form> {
    // ASCII lower-casing keeps byte offsets identical to `html`.
    let lower = html.to_ascii_lowercase();
    let start = find_tag(&lower, "form", 0)?;
    let (attrs, body_start) = parse_tag(html, start + "<form".len())?;
    let body_end = lower[body_start..]
        .find("</form")
        .map(|i| body_start + i)
        .unwrap_or(html.len());

    let mut inputs = Vec::new();
    let mut pos = body_start;
    while let Some(at) = find_tag(&lower[..body_end], "input", pos) {
        let Some((input_attrs, next)) = parse_tag(html, at + "<input".len()) else {
            break;
        };
        pos = next;
        let name = attr(&input_attrs, "name").unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let kind = attr(&input_attrs, "type")
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_else(|| "text".to_string());
        if matches!(kind.as_str(), "submit" | "button" | "reset" | "image") {
            continue;
        }
        if matches!(kind.as_str(), "checkbox" | "radio")
            && !input_attrs.iter().any(|(k, _)| k == "checked")
        {
            continue;
        }
        inputs.push(Input {
            name,
            value: attr(&input_attrs, "value").unwrap_or_default(),
            kind,
        });
    }

    Some(Form {
        action: attr(&attrs, "action"),
        method: attr(&attrs, "method")
            .map(|m| m.to_ascii_lowercase())
            .unwrap_or_else(|| "get".to_string()),
        inputs,
    })
}

/// Byte offset of the next `<name` tag (followed by whitespace, `>` or `/`) in
/// the lower-cased `lower`, at or after `from`.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let pattern = format!("<{name}");
    let mut from = from;
    loop {
        let at = from + lower.get(from..)?.find(&pattern)?;
        let after = at + pattern.len();
        match lower.as_bytes().get(after) {
            Some(b) if b.is_ascii_whitespace() || *b == b'>' || *b == b'/' => return Some(at),
            Some(_) => from = after,
            None => return None,
        }
    }
}

/// Parses attributes from just after `<tagname` to the closing `>`; returns
/// them (names lower-cased, values unescaped) and the offset after `>`.
fn parse_tag(html: &str, mut i: usize) -> Option<(Vec<(String, String)>, usize)> {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        if b[i] == b'>' {
            return Some((attrs, i + 1));
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i];
                i += 1;
                let value_start = i;
                while i < b.len() && b[i] != quote {
                    i += 1;
                }
                value = html_unescape(&html[value_start..i]);
                i += 1; // past the closing quote (or past the end: caught above)
            } else {
                let value_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = html_unescape(&html[value_start..i]);
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The provider's login error message, if the page has one.
fn error_text(html: &str) -> Option<String> {
    let at = html.find("class=\"error\"")?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find('<')?;
    Some(html_unescape(html[start..end].trim()))
}

fn snippet(body: &str) -> String {
    let collapsed: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(600).collect();
    if collapsed.chars().count() > 600 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_login_form() {
        let html = r#"<html><body><p class="error" id="login-error">Invalid login or password.</p>
<form id="login-form" method="post" action="/interaction/abc/login" autocomplete="off">
  <input type="hidden" name="prompt" value="login">
  <input id="login" type="text" name="login" placeholder="Login" value="a&amp;b" required autofocus>
  <input id="password" type="password" name="password" placeholder="Password" required>
  <button id="submit" type="submit">Sign-in</button>
</form></body></html>"#;
        let form = parse_form(html).expect("form");
        assert_eq!(form.action.as_deref(), Some("/interaction/abc/login"));
        assert_eq!(form.method, "post");
        let names: Vec<_> = form.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["prompt", "login", "password"]);
        assert_eq!(form.inputs[1].value, "a&b");
        assert_eq!(form.inputs[2].kind, "password");
        assert_eq!(
            error_text(html).as_deref(),
            Some("Invalid login or password.")
        );
    }

    #[test]
    fn parses_logout_form() {
        let html = r#"<form id="op.logoutForm" method="post" action="http://127.0.0.1:1/session/end/confirm"><input type="hidden" name="xsrf" value="x1"/><input type="hidden" name="logout" value="yes"/></form>"#;
        let form = parse_form(html).expect("form");
        assert_eq!(
            form.action.as_deref(),
            Some("http://127.0.0.1:1/session/end/confirm")
        );
        let fields: Vec<_> = form
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(fields, [("xsrf", "x1"), ("logout", "yes")]);
    }
}
