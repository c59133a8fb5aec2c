//! OpenID Connect sign-in (authorization code flow with PKCE, state and nonce), against any certified
//! provider: Keycloak, Red Hat SSO, Entra ID, oidc-provider... The provider's metadata is discovered lazily
//! and cached, so the server starts even while the provider is down and users get a clear message instead.
//!
//! The ID token is verified by the `openidconnect` crate (signature against the provider's JWKS, issuer,
//! audience, expiry, nonce). Group claims are not standard, so they are read from the verified token's payload.

use crate::{error::duplicate_as, internal, session::ClientInfo, Identity};
use base64::Engine;
use chrono::{DateTime, Utc};
use openidconnect::{
    core::{CoreAuthenticationFlow, CoreClient, CoreIdToken},
    reqwest, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
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
    /// When the provider's metadata and keys are fetched again.
    pub key_refresh: KeyRefresh,
}

/// When the provider's metadata and signing keys (JWKS) are fetched again, so that a key rotation at the provider
/// does not need a restart here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRefresh {
    /// Fetched again at the first use after this age, whatever happens.
    pub max_age: std::time::Duration,
    /// At most one fetch per this interval, however many ID tokens name an unknown key (`kid`) and however often
    /// the provider fails to answer: a flood of bad tokens cannot make us fetch per request.
    pub min_interval: std::time::Duration,
}

impl Default for KeyRefresh {
    fn default() -> Self {
        Self {
            max_age: std::time::Duration::from_secs(3600),
            min_interval: std::time::Duration::from_secs(10),
        }
    }
}

/// Why a sign-in through the provider failed. Messages are shown to the user as they are.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum OidcError {
    #[error("the sign-in provider at {0} could not be reached or did not describe itself ({1})")]
    Discovery(String, String),
    #[error(
        "this sign-in attempt is not the one we started (state mismatch): please sign in again"
    )]
    StateMismatch,
    #[error("no sign-in is in progress in this browser (or it took more than 10 minutes): please start again")]
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

/// The name of the cookie that ties the provider's callback to the browser that started the sign-in.
pub const PENDING_COOKIE: &str = "tollgate_oidc";
/// How long a sign-in at the provider may take, in seconds (the cookie's Max-Age, also checked on return).
pub const PENDING_MAX_AGE_SECS: i64 = 600;

/// What ties the provider's callback to the browser that started the sign-in. It lives in a short-lived HttpOnly
/// cookie, never in the database, so anonymous sign-in starts write nothing on the server: the cookie holds 256
/// random bits (and where to go afterwards), and state, nonce and PKCE verifier are derived from them with SHA-256.
/// The provider sees only the state and the PKCE challenge, from which the secret and the verifier cannot be
/// recovered; a callback whose state does not derive from the cookie is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLogin {
    secret: [u8; 32],
    /// When the sign-in started, in seconds since the Unix epoch.
    pub issued_at: i64,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

impl PendingLogin {
    /// A new sign-in from a fresh CSPRNG secret. `return_to` is made safe here and again when read back.
    pub fn new(return_to: &str, now_secs: i64) -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        Self::derive(secret, now_secs, safe_return_to(return_to))
    }

    fn derive(secret: [u8; 32], issued_at: i64, return_to: &str) -> Self {
        use sha2::{Digest, Sha256};
        let part = |label: &str| {
            let mut h = Sha256::new();
            h.update(b"tollgate-oidc-v1\0");
            h.update(label.as_bytes());
            h.update([0]);
            h.update(secret);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
        };
        Self {
            state: part("state"),
            nonce: part("nonce"),
            // 43 characters of the URL-safe alphabet: a valid RFC 7636 verifier.
            pkce_verifier: part("pkce"),
            secret,
            issued_at,
            return_to: return_to.to_string(),
        }
    }

    /// The cookie's value: `v1.<secret>.<issued at>.<return path>`, base64url where needed.
    pub fn cookie_value(&self) -> String {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "v1.{}.{}.{}",
            b64.encode(self.secret),
            self.issued_at,
            b64.encode(self.return_to.as_bytes())
        )
    }

    /// Reads a cookie value back; None when it is malformed or older than [`PENDING_MAX_AGE_SECS`].
    pub fn from_cookie(value: &str, now_secs: i64) -> Option<Self> {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = value.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let secret: [u8; 32] = b64.decode(parts.next()?).ok()?.try_into().ok()?;
        let issued_at: i64 = parts.next()?.parse().ok()?;
        let return_to = String::from_utf8(b64.decode(parts.next()?).ok()?).ok()?;
        if parts.next().is_some()
            || issued_at > now_secs + 60
            || now_secs - issued_at > PENDING_MAX_AGE_SECS
        {
            return None;
        }
        Some(Self::derive(secret, issued_at, safe_return_to(&return_to)))
    }
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
    cache: RwLock<MetadataCache>,
    /// One fetch at a time: callers that find a fetch under way wait for it and use its result.
    fetching: tokio::sync::Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct MetadataCache {
    /// The provider's metadata with its JWKS, and when they were fetched.
    current: Option<(ProviderMetadataWithLogout, std::time::Instant)>,
    /// The last fetch, successful or not.
    attempted: Option<std::time::Instant>,
    /// Why the last fetch failed, for callers while no metadata was ever fetched.
    failure: Option<OidcError>,
}

/// Why metadata is wanted: its age decides whether to fetch it again.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    /// Any metadata younger than `max_age`.
    Current,
    /// Newer keys than the cached ones: a token named a key we do not know.
    NewerKeys,
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
            cache: RwLock::new(MetadataCache::default()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many times the provider's metadata and keys were fetched (successfully or not) since start.
    pub fn metadata_fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn metadata(&self) -> Result<ProviderMetadataWithLogout, OidcError> {
        self.metadata_for(Want::Current).await
    }

    /// The cached metadata when it serves `want`, else fetched again: at most once per `min_interval`, one fetch
    /// at a time. A failed fetch keeps the metadata fetched before, if any.
    async fn metadata_for(&self, want: Want) -> Result<ProviderMetadataWithLogout, OidcError> {
        let policy = self.config.key_refresh;
        let decide =
            |cache: &MetadataCache| -> Option<Result<ProviderMetadataWithLogout, OidcError>> {
                let recently_tried = cache
                    .attempted
                    .is_some_and(|at| at.elapsed() < policy.min_interval);
                match &cache.current {
                    Some((m, fetched))
                        if want == Want::Current && fetched.elapsed() < policy.max_age =>
                    {
                        Some(Ok(m.clone()))
                    }
                    Some((m, _)) if recently_tried => Some(Ok(m.clone())),
                    None if recently_tried => cache.failure.clone().map(Err),
                    _ => None,
                }
            };
        if let Some(answer) = decide(&*self.cache.read().await) {
            return answer;
        }
        let _one = self.fetching.lock().await;
        // Whoever held the lock before may have fetched what we need.
        if let Some(answer) = decide(&*self.cache.read().await) {
            return answer;
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = self.discover().await;
        let mut cache = self.cache.write().await;
        let now = std::time::Instant::now();
        cache.attempted = Some(now);
        match fetched {
            Ok(m) => {
                cache.current = Some((m.clone(), now));
                cache.failure = None;
                Ok(m)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fetch the OIDC provider's metadata and keys");
                cache.failure = Some(e.clone());
                match &cache.current {
                    Some((m, _)) => Ok(m.clone()),
                    None => Err(e),
                }
            }
        }
    }

    async fn discover(&self) -> Result<ProviderMetadataWithLogout, OidcError> {
        let issuer = IssuerUrl::new(self.config.issuer_url.clone())
            .map_err(|e| OidcError::Discovery(self.config.issuer_url.clone(), e.to_string()))?;
        ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(self.config.issuer_url.clone(), error_chain(&e)))
    }

    /// The provider's authorization URL for a new sign-in, and what to remember (in a cookie) until the callback.
    pub async fn begin(&self, return_to: &str) -> Result<(String, PendingLogin), OidcError> {
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect_url()?);
        let pending = PendingLogin::new(return_to, Utc::now().timestamp());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            pending.pkce_verifier.clone(),
        ));
        let (state, nonce) = (pending.state.clone(), pending.nonce.clone());
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.set_pkce_challenge(challenge).url();
        Ok((url.to_string(), pending))
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

    /// Verifies a raw ID token (signature, issuer, audience, expiry at `now`, nonce) and reads the identity. A
    /// token signed by a key we do not know makes us fetch the provider's keys again (at most once per
    /// `min_interval`) and try once more: that is how a key rotation at the provider is followed.
    pub async fn verify(
        &self,
        raw: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<OidcIdentity, OidcError> {
        let token =
            CoreIdToken::from_str(raw).map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        let check = |metadata: ProviderMetadataWithLogout| {
            let client = CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(self.config.client_id.clone()),
                Some(ClientSecret::new(self.config.client_secret.clone())),
            );
            let verifier = client.id_token_verifier().set_time_fn(move || now);
            token
                .claims(&verifier, &Nonce::new(nonce.to_string()))
                .cloned()
        };
        let claims = match check(self.metadata().await?) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => check(self.metadata_for(Want::NewerKeys).await?),
            other => other,
        }
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
    /// `<prefix>platform-viewer`: reads usage across tenants, changes nothing.
    pub platform_viewer: bool,
    pub tenant_roles: Vec<(String, TenantRole)>,
}

/// `tollgate:acme:developer` -> (acme, Developer); `tollgate:platform-admin` -> platform admin;
/// `tollgate:platform-viewer` -> platform viewer.
pub fn parse_groups(prefix: &str, groups: &[String]) -> Grants {
    let mut grants = Grants::default();
    for g in groups {
        // Keycloak's group mapper may send full paths ("/tollgate:acme:admin").
        let Some(rest) = g.trim_start_matches('/').strip_prefix(prefix) else {
            continue;
        };
        if rest == "platform-admin" {
            grants.platform_admin = true;
        } else if rest == "platform-viewer" {
            grants.platform_viewer = true;
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

    /// Starts a sign-in: returns the provider URL and the pending sign-in, which the caller keeps in the browser
    /// (the [`PENDING_COOKIE`] cookie, [`PendingLogin::cookie_value`]). Nothing is stored on the server, so
    /// anonymous starts cannot grow any table.
    pub async fn oidc_begin(&self, return_to: &str) -> Result<(String, PendingLogin), DomainError> {
        let oidc = self.oidc_or_err()?;
        oidc.begin(safe_return_to(return_to)).await.map_err(|e| {
            tracing::warn!(error = %e, "OIDC sign-in could not start");
            DomainError::invalid(e.to_string())
        })
    }

    /// Finishes a sign-in from the provider's callback, given the browser's pending-sign-in cookie (which the
    /// caller clears in its answer, so a replayed callback finds nothing); returns where to send the browser.
    pub async fn oidc_complete(
        &self,
        session: &Session,
        pending_cookie: Option<&str>,
        state: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<String, DomainError> {
        let oidc = self.oidc_or_err()?;
        let pending =
            pending_cookie.and_then(|v| PendingLogin::from_cookie(v, Utc::now().timestamp()));
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
        self.sync_sso_roles(&user, &grants).await?;
        self.store
            .user_by_id(&user.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)
    }
}

impl Identity {
    /// Keeps the roles that came from the provider's groups in step with the groups of this sign-in: added,
    /// raised, lowered or removed as the groups say, while roles granted by hand stay (a membership's role is
    /// the higher of the hand's and the groups'). A change that would leave a tenant (or the platform) without an
    /// admin is not made, and the audit log says so.
    pub async fn sync_sso_roles(
        &self,
        user: &tollgate_store::UserRow,
        grants: &Grants,
    ) -> Result<(), DomainError> {
        use tollgate_store::SsoRoleChange;
        let event = |tenant_id: Option<String>, action: AuditAction, detail: String| {
            let store_user = user.clone();
            async move {
                self.record(tollgate_store::NewAuditEvent {
                    tenant_id: tenant_id.as_deref(),
                    actor_id: Some(&store_user.id),
                    actor_email: Some(&store_user.email),
                    action: action.as_str(),
                    target_type: "user",
                    target_id: &store_user.id,
                    detail: &detail,
                    ip: None,
                })
                .await;
            }
        };
        match self
            .store
            .apply_sso_platform_admin(&user.id, grants.platform_admin)
            .await
            .map_err(internal)?
        {
            SsoRoleChange::Added => {
                event(
                    None,
                    AuditAction::PlatformAdminSynced,
                    format!(
                        "{} is a platform admin: the provider's group grants it",
                        user.email
                    ),
                )
                .await
            }
            SsoRoleChange::Removed { .. } => {
                event(
                    None,
                    AuditAction::PlatformAdminSynced,
                    format!(
                        "{} is no longer a platform admin: the provider's group is gone",
                        user.email
                    ),
                )
                .await
            }
            SsoRoleChange::KeptLastAdmin => {
                tracing::warn!(user.email = %user.email, "the provider's groups no longer make this user a platform admin, but they are the last one: kept");
                event(
                    None,
                    AuditAction::LastAdminKept,
                    format!("{} stays platform admin although the provider's group is gone: they are the last platform admin", user.email),
                )
                .await
            }
            SsoRoleChange::Unchanged | SsoRoleChange::Changed { .. } => {}
        }
        match self
            .store
            .apply_sso_platform_viewer(&user.id, grants.platform_viewer)
            .await
            .map_err(internal)?
        {
            SsoRoleChange::Added => {
                event(
                    None,
                    AuditAction::PlatformViewerSynced,
                    format!(
                        "{} is a platform viewer: the provider's group grants it",
                        user.email
                    ),
                )
                .await
            }
            SsoRoleChange::Removed { .. } => {
                event(
                    None,
                    AuditAction::PlatformViewerSynced,
                    format!(
                        "{} is no longer a platform viewer: the provider's group is gone",
                        user.email
                    ),
                )
                .await
            }
            _ => {}
        }

        // What the groups grant now, by tenant id; then every tenant where an earlier sign-in's groups granted a
        // role that they no longer grant.
        let mut wanted: Vec<(String, Option<TenantRole>)> = Vec::new();
        for (slug, role) in &grants.tenant_roles {
            match self.store.tenant_by_slug(slug).await.map_err(internal)? {
                Some(tenant) => wanted.push((tenant.id, Some(*role))),
                None => {
                    tracing::warn!(tenant.slug = %slug, "the provider grants a role in an unknown tenant; ignored")
                }
            }
        }
        for m in self
            .store
            .sso_memberships_of_user(&user.id)
            .await
            .map_err(internal)?
        {
            if !wanted.iter().any(|(t, _)| *t == m.tenant_id) {
                wanted.push((m.tenant_id, None));
            }
        }
        for (tenant_id, sso_role) in wanted {
            let manual = self
                .store
                .membership_sources(&tenant_id, &user.id)
                .await
                .map_err(internal)?
                .and_then(|m| m.manual_role)
                .and_then(|r| r.parse::<TenantRole>().ok());
            let role = manual.max(sso_role);
            let change = self
                .store
                .apply_sso_role(
                    &tenant_id,
                    &user.id,
                    sso_role.map(TenantRole::as_str),
                    role.map(TenantRole::as_str),
                )
                .await
                .map_err(internal)?;
            let now = role.map_or("no role", TenantRole::as_str);
            let detail = match change {
                SsoRoleChange::Unchanged => continue,
                SsoRoleChange::Added => {
                    format!("{} joined as {now} (provider's groups)", user.email)
                }
                SsoRoleChange::Changed { from } => {
                    format!("{}: {from} -> {now} (provider's groups)", user.email)
                }
                SsoRoleChange::Removed { from } => format!(
                    "{}: {from} removed, the provider's group is gone",
                    user.email
                ),
                SsoRoleChange::KeptLastAdmin => {
                    tracing::warn!(user.email = %user.email, tenant.id = %tenant_id, "the provider's groups would remove the tenant's last admin: kept");
                    event(
                        Some(tenant_id),
                        AuditAction::LastAdminKept,
                        format!(
                            "{} stays admin although the provider's groups now say {now}: a tenant always keeps one admin",
                            user.email
                        ),
                    )
                    .await;
                    continue;
                }
            };
            event(Some(tenant_id), AuditAction::MemberRoleSynced, detail).await;
        }
        Ok(())
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
            "tollgate:platform-viewer",
            "other:x:admin",
            "tollgate:bad",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = parse_groups("tollgate:", &groups);
        assert!(g.platform_admin);
        assert!(g.platform_viewer);
        assert!(
            !parse_groups("tollgate:", &["tollgate:platform-admin".to_string()]).platform_viewer
        );
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
    fn a_pending_sign_in_round_trips_through_its_cookie_and_expires() {
        let now = 1_700_000_000;
        let p = PendingLogin::new("/teams?x=1", now);
        assert_eq!(p.pkce_verifier.len(), 43, "a valid RFC 7636 verifier");
        assert_ne!(p.state, p.nonce);
        let value = p.cookie_value();
        assert!(http::HeaderValue::from_str(&value).is_ok());
        assert!(
            !value.contains(&p.state) && !value.contains(&p.pkce_verifier),
            "the cookie holds the secret, not what the provider sees"
        );
        assert_eq!(PendingLogin::from_cookie(&value, now + 5), Some(p.clone()));
        assert_eq!(
            PendingLogin::from_cookie(&value, now + PENDING_MAX_AGE_SECS + 1),
            None,
            "expired"
        );
        assert_ne!(
            PendingLogin::new("/teams?x=1", now).state,
            p.state,
            "random"
        );
        // A return path edited in the cookie is made safe again.
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = value.split('.').collect();
        let edited = format!(
            "v1.{}.{}.{}",
            parts[1],
            parts[2],
            b64.encode("//evil.example")
        );
        let back = PendingLogin::from_cookie(&edited, now).map(|p| p.return_to);
        assert_eq!(back.as_deref(), Some("/"));
        for bad in [
            "",
            "v1",
            "v2.a.b.c",
            "v1.AAAA.1.Lw",
            "v1.x.y.z.w",
            &format!("{value}.x"),
        ] {
            assert_eq!(PendingLogin::from_cookie(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn states_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
