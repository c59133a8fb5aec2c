//! The one typed configuration: defaults, then a TOML file (`--config`), then `TOLLGATE_*` environment
//! variables and command-line flags (flags win). `tollgate --help` lists every setting with its variable.

use clap::Parser;
use serde::Deserialize;
use std::{net::SocketAddr, path::PathBuf};

#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: models as a service on your own GPUs (portal, API and gateway)."
)]
pub struct Cli {
    /// TOML configuration file; flags and environment variables override its values.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The portal's public base URL (used in invitation links and OIDC redirects) [default: http://<listen>].
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://data/tollgate.db].
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Folder with the built portal assets (pkg/) [default: target/site].
    #[arg(long, env = "TOLLGATE_SITE_ROOT")]
    pub site_root: Option<String>,
    /// Email of the platform admin created on first start [default: admin@tollgate.local].
    #[arg(long, env = "TOLLGATE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of that admin; when unset a random one is generated and printed once.
    #[arg(long, env = "TOLLGATE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Create a demo tenant on first start [default: true].
    #[arg(long, env = "TOLLGATE_DEMO_TENANT")]
    pub demo_tenant: Option<bool>,
    /// Load the default catalog (models and plans) into an empty database [default: true].
    #[arg(long, env = "TOLLGATE_SEED_CATALOG")]
    pub seed_catalog: Option<bool>,
    /// How often each server checks the database for changed API keys, plans and subscriptions, in
    /// milliseconds; changes made through this server apply at once [default: 2000].
    #[arg(long, env = "TOLLGATE_KEY_REFRESH_MS")]
    pub key_refresh_ms: Option<u64>,
    /// Offer sign-in with local passwords [default: true].
    #[arg(long, env = "TOLLGATE_LOCAL_LOGIN")]
    pub local_login: Option<bool>,
    /// Sign out after this many minutes without activity [default: 120].
    #[arg(long, env = "TOLLGATE_SESSION_IDLE_MINUTES")]
    pub session_idle_minutes: Option<i64>,
    /// Sign out this many hours after signing in [default: 24].
    #[arg(long, env = "TOLLGATE_SESSION_MAX_HOURS")]
    pub session_max_hours: Option<i64>,
    /// Failed sign-ins (per email and per address) before a lockout [default: 5].
    #[arg(long, env = "TOLLGATE_LOGIN_MAX_FAILURES")]
    pub login_max_failures: Option<u32>,
    /// Lockout length in minutes [default: 15].
    #[arg(long, env = "TOLLGATE_LOGIN_LOCKOUT_MINUTES")]
    pub login_lockout_minutes: Option<u64>,
    /// OpenID Connect issuer URL; setting it turns single sign-on on.
    #[arg(long, env = "TOLLGATE_OIDC_ISSUER_URL")]
    pub oidc_issuer_url: Option<String>,
    /// OIDC client id.
    #[arg(long, env = "TOLLGATE_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// OIDC client secret.
    #[arg(long, env = "TOLLGATE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Scopes to request besides openid, space separated [default: "email profile groups"].
    #[arg(long, env = "TOLLGATE_OIDC_SCOPES")]
    pub oidc_scopes: Option<String>,
    /// ID-token claim listing the user's groups [default: groups].
    #[arg(long, env = "TOLLGATE_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// Groups named <prefix><tenant>:<role> grant roles; <prefix>platform-admin grants platform admin [default: "tollgate:"].
    #[arg(long, env = "TOLLGATE_OIDC_GROUP_PREFIX")]
    pub oidc_group_prefix: Option<String>,
    /// Name on the single sign-on button [default: "single sign-on"].
    #[arg(long, env = "TOLLGATE_OIDC_DISPLAY_NAME")]
    pub oidc_display_name: Option<String>,
    /// Reverse proxies (comma-separated addresses) whose X-Forwarded-For is believed for client addresses
    /// [default: none].
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// Engines serving each catalog model, until the fleet manages them: `MODEL=URL|URL,MODEL=URL`, e.g.
    /// `llama-3.1-8b-instruct=http://127.0.0.1:8001|http://127.0.0.1:8002` [default: none].
    #[arg(long, env = "TOLLGATE_ENGINES")]
    pub engines: Option<String>,
    /// Also serve the gateway (`/v1`, `/metrics`) on this address of its own, e.g. for a separate load balancer
    /// or network policy; the main listener keeps serving it too [default: unset].
    #[arg(long, env = "TOLLGATE_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// Threads serving the gateway's own listener, each a single-threaded runtime with a socket of its own
    /// [default: one per core].
    #[arg(long, env = "TOLLGATE_GATEWAY_WORKERS")]
    pub gateway_workers: Option<usize>,
    /// Redis for rate-limit counters shared by several server replicas (e.g. redis://127.0.0.1:6379); without it
    /// counters live in this process [default: unset].
    #[arg(long, env = "TOLLGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Key prefix in Redis, so that several platforms (or test runs) can share one Redis [default: tollgate].
    #[arg(long, env = "TOLLGATE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// While Redis is unreachable, refuse requests (503 limiter_unavailable) instead of enforcing each replica's
    /// share of every limit in memory [default: false].
    #[arg(long, env = "TOLLGATE_REDIS_FAIL_CLOSED")]
    pub redis_fail_closed: Option<bool>,
    /// Deadline of one Redis command or connection attempt, in milliseconds; past it Redis counts as unreachable
    /// [default: 250].
    #[arg(long, env = "TOLLGATE_REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// How many replicas divide the limits while Redis is unreachable; unset counts the replicas' heartbeats in
    /// the database [default: unset].
    #[arg(long, env = "TOLLGATE_GATEWAY_REPLICAS")]
    pub gateway_replicas: Option<u32>,
    /// Where usage records wait on disk while the database is unreachable [default: data/usage-spool.jsonl].
    #[arg(long, env = "TOLLGATE_USAGE_SPOOL")]
    pub usage_spool: Option<PathBuf>,
    /// Print the management API's OpenAPI document and exit.
    #[arg(long)]
    pub print_openapi: bool,
    /// Log format: pretty or json [default: pretty].
    #[arg(long, env = "TOLLGATE_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// The TOML file's shape: the same settings, grouped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    bootstrap: FileBootstrap,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    oidc: FileOidc,
    #[serde(default)]
    gateway: FileGateway,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGateway {
    listen: Option<SocketAddr>,
    workers: Option<usize>,
    key_refresh_ms: Option<u64>,
    /// Model id -> engine base URLs.
    engines: Option<std::collections::BTreeMap<String, Vec<String>>>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    redis_fail_closed: Option<bool>,
    redis_timeout_ms: Option<u64>,
    replicas: Option<u32>,
    usage_spool: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<SocketAddr>,
    trusted_proxies: Option<Vec<std::net::IpAddr>>,
    public_url: Option<String>,
    site_root: Option<String>,
    log_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBootstrap {
    admin_email: Option<String>,
    admin_password: Option<String>,
    demo_tenant: Option<bool>,
    seed_catalog: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    local_login: Option<bool>,
    session_idle_minutes: Option<i64>,
    session_max_hours: Option<i64>,
    login_max_failures: Option<u32>,
    login_lockout_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidc {
    issuer_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Option<String>,
    groups_claim: Option<String>,
    group_prefix: Option<String>,
    display_name: Option<String>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub site_root: String,
    pub admin_email: String,
    pub admin_password: Option<String>,
    pub demo_tenant: bool,
    pub seed_catalog: bool,
    pub key_refresh_ms: u64,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Model id -> engine base URLs (until the fleet places replicas).
    pub engines: std::collections::BTreeMap<String, Vec<String>>,
    pub gateway_listen: Option<SocketAddr>,
    /// Threads serving `gateway_listen` (at least 1).
    pub gateway_workers: usize,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub redis_fail_closed: bool,
    pub redis_timeout_ms: u64,
    /// A fixed replica count for dividing limits during a Redis outage; None counts heartbeats.
    pub gateway_replicas: Option<u32>,
    pub usage_spool: PathBuf,
    pub local_login: bool,
    pub session_idle_minutes: i64,
    pub session_max_hours: i64,
    pub login_max_failures: u32,
    pub login_lockout_minutes: u64,
    pub oidc: Option<OidcSettings>,
    pub log_format: String,
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub group_prefix: String,
    pub display_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the configuration file {0} is not valid: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
            None => FileConfig::default(),
        };
        Self::resolve(cli, file)
    }

    fn resolve(cli: Cli, f: FileConfig) -> Result<Self, ConfigError> {
        // cargo-leptos passes the site address and root of its build through these variables.
        let leptos_addr = std::env::var("LEPTOS_SITE_ADDR")
            .ok()
            .and_then(|a| a.parse().ok());
        let listen = cli
            .listen
            .or(f.server.listen)
            .or(leptos_addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
        let public_url = cli
            .public_url
            .or(f.server.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public URL '{public_url}' must start with http:// or https://"
            )));
        }
        let session_idle_minutes = cli
            .session_idle_minutes
            .or(f.auth.session_idle_minutes)
            .unwrap_or(120);
        let session_max_hours = cli
            .session_max_hours
            .or(f.auth.session_max_hours)
            .unwrap_or(24);
        if session_idle_minutes < 1 || session_max_hours < 1 {
            return Err(ConfigError::Invalid(
                "session lifetimes must be at least 1 minute / 1 hour".into(),
            ));
        }
        let issuer = cli
            .oidc_issuer_url
            .or(f.oidc.issuer_url)
            .filter(|s| !s.is_empty());
        let oidc = match issuer {
            None => None,
            Some(issuer_url) => Some(OidcSettings {
                issuer_url,
                client_id: cli.oidc_client_id.or(f.oidc.client_id).ok_or_else(|| {
                    ConfigError::Invalid("OIDC needs a client id (TOLLGATE_OIDC_CLIENT_ID)".into())
                })?,
                client_secret: cli
                    .oidc_client_secret
                    .or(f.oidc.client_secret)
                    .unwrap_or_default(),
                scopes: cli
                    .oidc_scopes
                    .or(f.oidc.scopes)
                    .unwrap_or_else(|| "email profile groups".into())
                    .split_whitespace()
                    .filter(|s| *s != "openid")
                    .map(str::to_string)
                    .collect(),
                groups_claim: cli
                    .oidc_groups_claim
                    .or(f.oidc.groups_claim)
                    .unwrap_or_else(|| "groups".into()),
                group_prefix: cli
                    .oidc_group_prefix
                    .or(f.oidc.group_prefix)
                    .unwrap_or_else(|| "tollgate:".into()),
                display_name: cli
                    .oidc_display_name
                    .or(f.oidc.display_name)
                    .unwrap_or_else(|| "single sign-on".into()),
            }),
        };
        let local_login = cli.local_login.or(f.auth.local_login).unwrap_or(true);
        if !local_login && oidc.is_none() {
            return Err(ConfigError::Invalid(
                "turning local sign-in off needs OIDC configured, or nobody can sign in".into(),
            ));
        }
        Ok(Self {
            listen,
            public_url,
            database_url: cli
                .database_url
                .or(f.database.url)
                .unwrap_or_else(|| "sqlite://data/tollgate.db".into()),
            site_root: cli
                .site_root
                .or(f.server.site_root)
                .or_else(|| std::env::var("LEPTOS_SITE_ROOT").ok())
                .unwrap_or_else(|| "target/site".into()),
            admin_email: cli
                .admin_email
                .or(f.bootstrap.admin_email)
                .unwrap_or_else(|| "admin@tollgate.local".into()),
            admin_password: cli.admin_password.or(f.bootstrap.admin_password),
            demo_tenant: cli.demo_tenant.or(f.bootstrap.demo_tenant).unwrap_or(true),
            engines: match cli.engines {
                Some(text) => parse_engines(&text)?,
                None => f.gateway.engines.unwrap_or_default(),
            },
            gateway_listen: cli.gateway_listen.or(f.gateway.listen),
            gateway_workers: cli
                .gateway_workers
                .or(f.gateway.workers)
                .unwrap_or_else(tollgate_gateway::listener::default_workers)
                .max(1),
            redis_url: cli
                .redis_url
                .or(f.gateway.redis_url)
                .filter(|u| !u.is_empty()),
            redis_prefix: cli
                .redis_prefix
                .or(f.gateway.redis_prefix)
                .unwrap_or_else(|| "tollgate".into()),
            redis_fail_closed: cli
                .redis_fail_closed
                .or(f.gateway.redis_fail_closed)
                .unwrap_or(false),
            redis_timeout_ms: cli
                .redis_timeout_ms
                .or(f.gateway.redis_timeout_ms)
                .unwrap_or(250)
                .max(1),
            gateway_replicas: cli
                .gateway_replicas
                .or(f.gateway.replicas)
                .filter(|n| *n > 0),
            usage_spool: cli
                .usage_spool
                .or(f.gateway.usage_spool)
                .unwrap_or_else(|| PathBuf::from("data/usage-spool.jsonl")),
            trusted_proxies: cli
                .trusted_proxies
                .or(f.server.trusted_proxies)
                .unwrap_or_default(),
            seed_catalog: cli
                .seed_catalog
                .or(f.bootstrap.seed_catalog)
                .unwrap_or(true),
            key_refresh_ms: cli
                .key_refresh_ms
                .or(f.gateway.key_refresh_ms)
                .unwrap_or(2000)
                .max(50),
            local_login,
            session_idle_minutes,
            session_max_hours,
            login_max_failures: cli
                .login_max_failures
                .or(f.auth.login_max_failures)
                .unwrap_or(5),
            login_lockout_minutes: cli
                .login_lockout_minutes
                .or(f.auth.login_lockout_minutes)
                .unwrap_or(15),
            oidc,
            log_format: cli
                .log_format
                .or(f.server.log_format)
                .unwrap_or_else(|| "pretty".into()),
        })
    }

    /// Cookies get the Secure flag when the portal is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// A configuration for tests: SQLite or PostgreSQL URL given, random port, no demo data, a private usage spool.
    pub fn for_tests(database_url: &str) -> Self {
        let mut c = Self::resolve(Cli::default(), FileConfig::default())
            .unwrap_or_else(|e| panic!("default config: {e}"));
        c.database_url = database_url.to_string();
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.demo_tenant = false;
        c.usage_spool = std::env::temp_dir().join(format!(
            "tollgate-test-spool-{}-{}.jsonl",
            std::process::id(),
            tollgate_store::new_id("spool")
        ));
        c
    }
}

/// `MODEL=URL|URL,MODEL=URL` into model id -> URLs.
fn parse_engines(
    text: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, ConfigError> {
    let mut engines = std::collections::BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (model, urls) = entry.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "engine entry '{entry}' must look like MODEL=http://host:port"
            ))
        })?;
        let urls: Vec<String> = urls
            .split('|')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(ConfigError::Invalid(format!(
                "engine URL '{bad}' must start with http:// or https://"
            )));
        }
        engines.insert(model.trim().to_string(), urls);
    }
    Ok(engines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_from_one_variable() {
        let e = parse_engines("a=http://h:1|http://h:2, b=http://h:3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e["a"], vec!["http://h:1", "http://h:2"]);
        assert_eq!(e["b"], vec!["http://h:3"]);
        assert!(parse_engines("a").is_err());
        assert!(parse_engines("a=ftp://x").is_err());
    }

    fn parse(toml_text: &str) -> FileConfig {
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_make_a_working_local_setup() {
        let c = Config::resolve(Cli::default(), FileConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.database_url, "sqlite://data/tollgate.db");
        assert!(c.local_login && c.demo_tenant && c.oidc.is_none());
        assert!(c.public_url.starts_with("http://"));
        assert!(!c.secure_cookies());
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse("[server]\npublic_url = \"https://file.example/\"\n[database]\nurl = \"postgres://db/x\"\n");
        let cli = Cli {
            public_url: Some("https://flag.example".into()),
            ..Default::default()
        };
        let c = Config::resolve(cli, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.public_url, "https://flag.example");
        assert_eq!(c.database_url, "postgres://db/x");
        assert!(c.secure_cookies());
    }

    #[test]
    fn oidc_needs_a_client_id_and_unknown_keys_are_refused() {
        let file = parse("[oidc]\nissuer_url = \"https://sso.example/realms/x\"\n");
        assert!(matches!(
            Config::resolve(Cli::default(), file),
            Err(ConfigError::Invalid(_))
        ));
        assert!(toml::from_str::<FileConfig>("[server]\nlisten_on = 1\n").is_err());
        let file = parse("[oidc]\nissuer_url = \"https://sso.example\"\nclient_id = \"tg\"\nscopes = \"openid email\"\n");
        let oidc = Config::resolve(Cli::default(), file)
            .ok()
            .and_then(|c| c.oidc);
        assert_eq!(oidc.map(|o| o.scopes), Some(vec!["email".to_string()]));
    }

    #[test]
    fn turning_off_passwords_without_sso_is_refused() {
        let cli = Cli {
            local_login: Some(false),
            ..Default::default()
        };
        assert!(Config::resolve(cli, FileConfig::default()).is_err());
    }
}
