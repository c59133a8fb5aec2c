//! OpenID Connect sign-in (authorization code flow with PKCE, state and nonce), against any certified
//! provider: Keycloak, Red Hat SSO, Entra ID, oidc-provider... The provider's metadata is discovered lazily
//! and cached, so the server starts even while the provider is down and users get a clear message instead.
//!
//! The ID token is verified by the `openidconnect` crate (signature against the provider's JWKS, issuer,
//! audience, expiry, nonce). Group claims are not standard, so they are read from the verified token's payload.

use crate::{
    error::duplicate_as,
    internal,
    session::{session_error, ClientInfo, PENDING_OIDC},
    Identity,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use openidconnect::{
    core::{CoreAuthenticationFlow, CoreClient, CoreIdToken},
    reqwest, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, LogoutRequest, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;
use tollgate_domain::{audit::AuditAction, text, DomainError, TenantRole};
use tollgate_store::NewUser;
use tower_sessions::Session;

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Requested in addition to `openid`.
    pub scopes: Vec<String>,
    /// The claim that lists the user's groups (Keycloak: `groups` with the group-membership mapper).
    pub groups_claim: String,
    /// Groups are read as `<prefix><tenant-slug>:<role>` and `<prefix>platform-admin`; others are ignored.
    pub group_prefix: String,
    /// Shown on the sign-in button.
    pub display_name: String,
    /// Our callback, `<public_url>/auth/oidc/callback`.
    pub redirect_url: String,
    /// Where the provider sends the browser after its sign-out.
    pub post_logout_redirect_url: String,
}

/// Why a sign-in through the provider failed. Messages are shown to the user as they are.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OidcError {
    #[error("the sign-in provider at {0} could not be reached or did not describe itself ({1})")]
    Discovery(String, String),
    #[error(
        "this sign-in attempt is not the one we started (state mismatch): please sign in again"
    )]
    StateMismatch,
    #[error("no sign-in is in progress in this browser session: please start again")]
    NoPendingLogin,
    #[error("the provider refused the sign-in code ({0}); it may have been used already: please sign in again")]
    CodeRejected(String),
    #[error("the provider did not return an ID token")]
    NoIdToken,
    #[error("the provider's ID token was rejected: {0}")]
    InvalidIdToken(String),
    #[error("the provider reported an error: {0}")]
    Provider(String),
    #[error("the provider did not share an email address for this account")]
    NoEmail,
}

/// What we keep in the session between redirecting to the provider and its callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

/// A verified identity from the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub raw_id_token: String,
}

pub struct Oidc {
    pub config: OidcConfig,
    http: reqwest::Client,
    metadata: RwLock<Option<ProviderMetadataWithLogout>>,
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        let http = reqwest::ClientBuilder::new()
            // Following redirects from the provider's endpoints would open us to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Discovery(config.issuer_url.clone(), e.to_string()))?;
        Ok(Self {
            config,
            http,
            metadata: RwLock::new(None),
        })
    }

    async fn metadata(&self) -> Result<ProviderMetadataWithLogout, OidcError> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer_url.clone())
            .map_err(|e| OidcError::Discovery(self.config.issuer_url.clone(), e.to_string()))?;
        let discovered = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(self.config.issuer_url.clone(), error_chain(&e)))?;
        *self.metadata.write().await = Some(discovered.clone());
        Ok(discovered)
    }

    /// The provider's authorization URL for a new sign-in, and what to remember until the callback.
    pub async fn begin(&self, return_to: &str) -> Result<(String, PendingLogin), OidcError> {
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect_url()?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to: return_to.to_string(),
            },
        ))
    }

    fn redirect_url(&self) -> Result<RedirectUrl, OidcError> {
        RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))
    }

    /// Checks the callback's state against the pending sign-in and redeems the code for a raw ID token.
    pub async fn exchange(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
    ) -> Result<String, OidcError> {
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(OidcError::StateMismatch);
        }
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect_url()?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::CodeRejected(error_chain(&e)))?;
        let token = response.id_token().ok_or(OidcError::NoIdToken)?;
        Ok(token.to_string())
    }

    /// Verifies a raw ID token (signature, issuer, audience, expiry at `now`, nonce) and reads the identity.
    pub async fn verify(
        &self,
        raw: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<OidcIdentity, OidcError> {
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        );
        let token =
            CoreIdToken::from_str(raw).map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        let verifier = client.id_token_verifier().set_time_fn(move || now);
        let claims = token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        let payload = jwt_payload(raw).unwrap_or_default();
        let groups = match payload.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(OidcIdentity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            groups,
            raw_id_token: raw.to_string(),
        })
    }

    /// The provider's sign-out URL, when it advertises an end_session_endpoint.
    pub async fn end_session_url(&self, id_token_hint: Option<&str>) -> Option<String> {
        let metadata = self.metadata().await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.config.client_id.clone()));
        if let Ok(url) = PostLogoutRedirectUrl::new(self.config.post_logout_redirect_url.clone()) {
            request = request.set_post_logout_redirect_uri(url);
        }
        if let Some(hint) = id_token_hint.and_then(|t| CoreIdToken::from_str(t).ok()) {
            request = request.set_id_token_hint(&hint);
        }
        Some(request.http_get_url().to_string())
    }

    /// Reads the tenant roles and platform-admin flag that the groups grant, per the configured prefix.
    pub fn grants(&self, groups: &[String]) -> Grants {
        parse_groups(&self.config.group_prefix, groups)
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Grants {
    pub platform_admin: bool,
    pub tenant_roles: Vec<(String, TenantRole)>,
}

/// `tollgate:acme:developer` -> (acme, Developer); `tollgate:platform-admin` -> platform admin.
pub fn parse_groups(prefix: &str, groups: &[String]) -> Grants {
    let mut grants = Grants::default();
    for g in groups {
        // Keycloak's group mapper may send full paths ("/tollgate:acme:admin").
        let Some(rest) = g.trim_start_matches('/').strip_prefix(prefix) else {
            continue;
        };
        if rest == "platform-admin" {
            grants.platform_admin = true;
        } else if let Some((slug, role)) = rest.rsplit_once(':') {
            if let Ok(role) = role.parse::<TenantRole>() {
                match grants.tenant_roles.iter_mut().find(|(s, _)| s == slug) {
                    // Several groups for one tenant: the highest role wins.
                    Some((_, existing)) => *existing = (*existing).max(role),
                    None => grants.tenant_roles.push((slug.to_string(), role)),
                }
            }
        }
    }
    grants
}

fn jwt_payload(raw: &str) -> Option<serde_json::Value> {
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Equal contents, compared in constant time (unequal lengths are simply unequal).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Identity {
    fn oidc_or_err(&self) -> Result<&Oidc, DomainError> {
        self.oidc
            .as_deref()
            .ok_or_else(|| DomainError::invalid("single sign-on is not configured on this server"))
    }

    /// Starts a sign-in: remembers state, nonce and PKCE verifier in the session, returns the provider URL.
    pub async fn oidc_begin(
        &self,
        session: &Session,
        return_to: &str,
    ) -> Result<String, DomainError> {
        let oidc = self.oidc_or_err()?;
        let (url, pending) = oidc.begin(safe_return_to(return_to)).await.map_err(|e| {
            tracing::warn!(error = %e, "OIDC sign-in could not start");
            DomainError::invalid(e.to_string())
        })?;
        session
            .insert(PENDING_OIDC, pending)
            .await
            .map_err(session_error)?;
        Ok(url)
    }

    /// Finishes a sign-in from the provider's callback; returns where to send the browser.
    pub async fn oidc_complete(
        &self,
        session: &Session,
        state: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<String, DomainError> {
        let oidc = self.oidc_or_err()?;
        // The pending login is single use: removed before anything else, so a replayed callback finds nothing.
        let pending: Option<PendingLogin> =
            session.remove(PENDING_OIDC).await.map_err(session_error)?;
        let result = match pending {
            None => Err(OidcError::NoPendingLogin),
            Some(p) => match oidc.exchange(&p, state, code).await {
                Ok(raw) => oidc
                    .verify(&raw, &p.nonce, Utc::now())
                    .await
                    .map(|id| (id, p.return_to)),
                Err(e) => Err(e),
            },
        };
        let (identity, return_to) = match result {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(error = %e, "OIDC sign-in rejected");
                self.record(tollgate_store::NewAuditEvent {
                    action: AuditAction::SignInFailed.as_str(),
                    target_type: "oidc",
                    target_id: &oidc.config.issuer_url,
                    detail: &e.to_string(),
                    ip: client.ip.as_deref(),
                    ..Default::default()
                })
                .await;
                return Err(DomainError::invalid(e.to_string()));
            }
        };
        let user = self.oidc_account(oidc, &identity).await?;
        self.finish_sign_in(session, &user, "oidc", client, Some(&identity.raw_id_token))
            .await?;
        Ok(return_to)
    }

    /// Finds or creates the local account for a provider identity, then applies the roles its groups grant.
    async fn oidc_account(
        &self,
        oidc: &Oidc,
        id: &OidcIdentity,
    ) -> Result<tollgate_store::UserRow, DomainError> {
        let user = match self
            .store
            .user_by_oidc(&id.issuer, &id.subject)
            .await
            .map_err(internal)?
        {
            Some(u) => u,
            None => {
                let email = text::email(
                    id.email
                        .as_deref()
                        .ok_or_else(|| DomainError::invalid(OidcError::NoEmail.to_string()))?,
                )?;
                match self.store.user_by_email(&email).await.map_err(internal)? {
                    // Linking to an existing account by email is safe only if the provider vouches for the address.
                    Some(existing) if id.email_verified => {
                        self.store.link_oidc(&existing.id, &id.issuer, &id.subject).await.map_err(internal)?;
                        existing
                    }
                    Some(_) => {
                        return Err(DomainError::conflict(
                            "an account with this email already exists and the provider has not verified the address: sign in with your password",
                        ))
                    }
                    None => {
                        let name = id.name.clone().unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
                        self.store
                            .create_user(NewUser {
                                email: &email,
                                name: &name,
                                password_hash: None,
                                oidc: Some((&id.issuer, &id.subject)),
                                platform_admin: false,
                            })
                            .await
                            .map_err(duplicate_as("an account with this email already exists"))?
                    }
                }
            }
        };
        let grants = oidc.grants(&id.groups);
        if grants.platform_admin && user.platform_admin == 0 {
            self.store
                .set_platform_admin(&user.id, true)
                .await
                .map_err(internal)?;
        }
        for (slug, role) in &grants.tenant_roles {
            let Some(tenant) = self.store.tenant_by_slug(slug).await.map_err(internal)? else {
                tracing::warn!(tenant.slug = %slug, "the provider grants a role in an unknown tenant; ignored");
                continue;
            };
            match self
                .store
                .membership_role(&tenant.id, &user.id)
                .await
                .map_err(internal)?
            {
                None => self
                    .store
                    .add_membership(&tenant.id, &user.id, role.as_str())
                    .await
                    .map_err(internal)?,
                Some(current) if current != role.as_str() => {
                    self.store
                        .set_membership_role(&tenant.id, &user.id, role.as_str())
                        .await
                        .map_err(internal)?;
                }
                Some(_) => {}
            }
        }
        self.store
            .user_by_id(&user.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)
    }
}

/// Only same-site paths: an open redirect after sign-in would be a phishing aid.
pub fn safe_return_to(path: &str) -> &str {
    /// Longer than any page of ours with its query; past it a target is noise or an attack.
    const MAX_LEN: usize = 2048;
    let b = path.as_bytes();
    // Printable ASCII only: browsers drop tabs and newlines (`/\t/evil` becomes `//evil`), and a control
    // character cannot go into a Location header at all.
    let printable = b.iter().all(u8::is_ascii_graphic);
    // `//host`, `/\host` and their percent-encoded forms would leave this origin, in a browser or behind a proxy
    // that decodes the path.
    let lower = path.get(..4).unwrap_or(path).to_ascii_lowercase();
    let another_origin = b.get(1).is_some_and(|c| *c == b'/' || *c == b'\\')
        || lower.starts_with("/%2f")
        || lower.starts_with("/%5c");
    if b.first() == Some(&b'/')
        && path.len() <= MAX_LEN
        && printable
        && !another_origin
        && !path.contains('\\')
    {
        path
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_tenant_roles_and_platform_admin() {
        let groups: Vec<String> = [
            "tollgate:acme:developer",
            "/tollgate:acme:admin",
            "tollgate:globex:viewer",
            "tollgate:platform-admin",
            "other:x:admin",
            "tollgate:bad",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = parse_groups("tollgate:", &groups);
        assert!(g.platform_admin);
        assert_eq!(
            g.tenant_roles,
            vec![
                ("acme".to_string(), TenantRole::Admin),
                ("globex".to_string(), TenantRole::Viewer)
            ]
        );
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_return_to("/teams"), "/teams");
        assert_eq!(safe_return_to("//evil.example"), "/");
        assert_eq!(safe_return_to("https://evil.example"), "/");
        assert_eq!(safe_return_to("/\\evil"), "/");
    }

    #[test]
    fn return_targets_stay_on_this_site_and_never_break_a_header() {
        let long = format!("/{}", "a".repeat(5000));
        for hostile in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\u{0}",
            "\t/teams",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "/teams\\..\\..",
            "/%2f%2fevil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "/%5C%5Cevil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "%2F%2Fevil.example",
            "/ space",
            "/caf\u{e9}",
            "",
            long.as_str(),
        ] {
            assert_eq!(safe_return_to(hostile), "/", "{hostile:?}");
            assert!(http::HeaderValue::from_str(safe_return_to(hostile)).is_ok());
        }
        for fine in [
            "/",
            "/teams",
            "/teams?q=x&page=2",
            "/invite/abc",
            "/catalog/llama-3.1-8b-instruct#plans",
            "/a%20b",
        ] {
            assert_eq!(safe_return_to(fine), fine);
        }
    }

    #[test]
    fn states_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
