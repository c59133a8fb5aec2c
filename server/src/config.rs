//! Every setting is declared once, as a field of [`Settings`]: its flag, environment variable, default, help
//! text and section. From that one declaration come `tollgate --help`, the keys of the TOML file (the field under
//! the section of its heading, less the section's prefix: `[gateway] redis_url`, `[database] url`),
//! `tollgate config show` (the effective configuration and where each value came from, secrets redacted) and the
//! README's settings table (`tollgate config table`; a test fails when the README disagrees).
//!
//! Precedence: defaults, then the TOML file (`--config`), then environment variables, then flags. The file's
//! values are handed to clap as flags placed before the command line's own, for the settings that neither a flag
//! nor the environment sets, so one parser reads every source.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::time::Duration;
use std::{net::SocketAddr, path::PathBuf};
use tollgate_gateway::GatewayConfig;

/// The gateway's defaults, for the `default_value_t` of its settings.
fn gw() -> GatewayConfig {
    GatewayConfig::default()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: models as a service on your own GPUs (portal, API and gateway)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
    /// Print the management API's OpenAPI document and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Usage data tools.
    Usage {
        #[command(subcommand)]
        action: UsageAction,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageAction {
    /// Fill the database (DATABASE_URL) with realistic made-up usage, through the same batch inserts and rollups
    /// the gateway uses, and print the ingest rate.
    Generate {
        /// How many records.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Over how many tenants.
        #[arg(long, default_value_t = 50)]
        tenants: u32,
        /// Spread over this many days, ending now.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Instead of spreading over days: stamp records as live traffic at this many per second, ending now.
        #[arg(long)]
        per_second: Option<u64>,
        /// Records per batch insert (the gateway's metering writes up to 512).
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// The same seed makes the same records (a second run adds nothing).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAction {
    /// Print the effective configuration as TOML, with where each value came from (secrets redacted).
    Show,
    /// Print the README's settings table (Markdown).
    Table,
}

/// Every setting. The doc comment's first line is the help text and the README's description.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// TOML configuration file; the environment and flags override its values.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(
        long,
        env = "TOLLGATE_LISTEN",
        default_value = "127.0.0.1:3000",
        help_heading = "Server"
    )]
    pub listen: SocketAddr,
    /// The portal's public base URL, in links and OIDC redirects; https:// turns on Secure cookies; when set, writes must come from this origin (unset: http://<listen>).
    #[arg(long, env = "TOLLGATE_PUBLIC_URL", help_heading = "Server")]
    pub public_url: Option<String>,
    /// Folder with the built portal assets (pkg/).
    #[arg(
        long,
        env = "TOLLGATE_SITE_ROOT",
        default_value = "target/site",
        help_heading = "Server"
    )]
    pub site_root: String,
    /// Folder for the files the server keeps (the usage spool); a relative path is taken from the working folder at start.
    #[arg(
        long,
        env = "TOLLGATE_DATA_DIR",
        default_value = "data",
        help_heading = "Server"
    )]
    pub data_dir: PathBuf,
    /// Reverse proxies (comma-separated addresses or CIDR ranges) whose X-Forwarded-For is believed for client addresses.
    #[arg(
        long,
        env = "TOLLGATE_TRUSTED_PROXIES",
        value_delimiter = ',',
        help_heading = "Server"
    )]
    pub trusted_proxies: Vec<crate::client::TrustedProxy>,
    /// Log format: pretty or json.
    #[arg(
        long,
        env = "TOLLGATE_LOG_FORMAT",
        default_value = "pretty",
        help_heading = "Server"
    )]
    pub log_format: String,
    /// Serve Prometheus metrics (/metrics) on this address of their own, one only monitoring reaches (unset: no metrics listener).
    #[arg(long, env = "TOLLGATE_METRICS_LISTEN", help_heading = "Server")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve /metrics on the public listeners, to requests bearing this token (Authorization: Bearer); unset keeps metrics off them.
    #[arg(
        long,
        env = "TOLLGATE_METRICS_TOKEN",
        hide_env_values = true,
        help_heading = "Server"
    )]
    pub metrics_token: Option<String>,

    /// Database: sqlite://PATH or postgres://USER@HOST/DB; several replicas may share one PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/tollgate.db",
        help_heading = "Database"
    )]
    pub database_url: String,

    /// Email of the platform admin created on first start.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_EMAIL",
        default_value = "admin@tollgate.local",
        help_heading = "Bootstrap"
    )]
    pub admin_email: String,
    /// Password of that admin (unset: a random one, printed once).
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_PASSWORD",
        hide_env_values = true,
        help_heading = "Bootstrap"
    )]
    pub admin_password: Option<String>,
    /// Create a demo tenant with one team on first start.
    #[arg(long, env = "TOLLGATE_DEMO_TENANT", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Bootstrap")]
    pub demo_tenant: bool,
    /// Load the default catalog (models and plans) into an empty database.
    #[arg(long, env = "TOLLGATE_SEED_CATALOG", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Bootstrap")]
    pub seed_catalog: bool,

    /// Offer sign-in with local passwords.
    #[arg(long, env = "TOLLGATE_LOCAL_LOGIN", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Auth")]
    pub local_login: bool,
    /// Sign out after this many minutes without activity.
    #[arg(long, env = "TOLLGATE_SESSION_IDLE_MINUTES", default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..), help_heading = "Auth")]
    pub session_idle_minutes: i64,
    /// Sign out this many hours after signing in.
    #[arg(long, env = "TOLLGATE_SESSION_MAX_HOURS", default_value_t = 24, value_parser = clap::value_parser!(i64).range(1..), help_heading = "Auth")]
    pub session_max_hours: i64,
    /// Failed sign-ins (per email and per address) before a lockout.
    #[arg(
        long,
        env = "TOLLGATE_LOGIN_MAX_FAILURES",
        default_value_t = 5,
        help_heading = "Auth"
    )]
    pub login_max_failures: u32,
    /// Lockout length in minutes.
    #[arg(
        long,
        env = "TOLLGATE_LOGIN_LOCKOUT_MINUTES",
        default_value_t = 15,
        help_heading = "Auth"
    )]
    pub login_lockout_minutes: u64,

    /// OpenID Connect issuer URL; setting it turns single sign-on on.
    #[arg(long, env = "TOLLGATE_OIDC_ISSUER_URL", help_heading = "OIDC")]
    pub oidc_issuer_url: Option<String>,
    /// OIDC client id.
    #[arg(long, env = "TOLLGATE_OIDC_CLIENT_ID", help_heading = "OIDC")]
    pub oidc_client_id: Option<String>,
    /// OIDC client secret.
    #[arg(
        long,
        env = "TOLLGATE_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        help_heading = "OIDC"
    )]
    pub oidc_client_secret: Option<String>,
    /// Scopes to request besides openid, space separated.
    #[arg(
        long,
        env = "TOLLGATE_OIDC_SCOPES",
        default_value = "email profile groups",
        help_heading = "OIDC"
    )]
    pub oidc_scopes: String,
    /// ID-token claim listing the user's groups.
    #[arg(
        long,
        env = "TOLLGATE_OIDC_GROUPS_CLAIM",
        default_value = "groups",
        help_heading = "OIDC"
    )]
    pub oidc_groups_claim: String,
    /// Groups named <prefix><tenant>:<role> grant roles; <prefix>platform-admin grants platform admin, <prefix>platform-viewer the read-only platform viewer.
    #[arg(
        long,
        env = "TOLLGATE_OIDC_GROUP_PREFIX",
        default_value = "tollgate:",
        help_heading = "OIDC"
    )]
    pub oidc_group_prefix: String,
    /// Name on the single sign-on button.
    #[arg(
        long,
        env = "TOLLGATE_OIDC_DISPLAY_NAME",
        default_value = "single sign-on",
        help_heading = "OIDC"
    )]
    pub oidc_display_name: String,

    /// How often each server checks the database for changed keys, plans and subscriptions, in milliseconds (changes made through this server apply at once).
    #[arg(long, env = "TOLLGATE_KEY_REFRESH_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..), help_heading = "Gateway")]
    pub key_refresh_ms: u64,
    /// Engines Tollgate does not manage, serving catalog models beside the fleet's replicas: MODEL=URL|URL,MODEL=URL.
    #[arg(
        long,
        env = "TOLLGATE_ENGINES",
        default_value = "",
        hide_default_value = true,
        help_heading = "Gateway"
    )]
    pub engines: String,
    /// Also serve the gateway (/v1) on this address of its own, on a single-threaded runtime per core.
    #[arg(long, env = "TOLLGATE_GATEWAY_LISTEN", help_heading = "Gateway")]
    pub gateway_listen: Option<SocketAddr>,
    /// Threads serving the gateway's own listener, each a single-threaded runtime (unset: one per core).
    #[arg(long, env = "TOLLGATE_GATEWAY_WORKERS", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Gateway")]
    pub gateway_workers: Option<u32>,
    /// Redis for rate-limit counters shared by several server replicas, e.g. redis://127.0.0.1:6379 (unset: counters in this process).
    #[arg(long, env = "TOLLGATE_REDIS_URL", help_heading = "Gateway")]
    pub redis_url: Option<String>,
    /// Key prefix in Redis, so that several platforms (or test runs) can share one Redis.
    #[arg(
        long,
        env = "TOLLGATE_REDIS_PREFIX",
        default_value = "tollgate",
        help_heading = "Gateway"
    )]
    pub redis_prefix: String,
    /// Deadline of one Redis command or connection attempt, in milliseconds; past it Redis counts as unreachable.
    #[arg(long, env = "TOLLGATE_REDIS_TIMEOUT_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Gateway")]
    pub redis_timeout_ms: u64,
    /// While Redis is unreachable, refuse requests (503) instead of enforcing each replica's share of every limit in memory.
    #[arg(long, env = "TOLLGATE_REDIS_FAIL_CLOSED", default_value_t = false, action = clap::ArgAction::Set, help_heading = "Gateway")]
    pub redis_fail_closed: bool,
    /// How many replicas divide the limits while Redis is unreachable (unset: their heartbeats in the database).
    #[arg(long, env = "TOLLGATE_GATEWAY_REPLICAS", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Gateway")]
    pub gateway_replicas: Option<u32>,
    /// Where usage records wait on disk (mode 0600) while the database is unreachable (unset: usage-spool.jsonl in the data folder).
    #[arg(long, env = "TOLLGATE_USAGE_SPOOL", help_heading = "Gateway")]
    pub usage_spool: Option<PathBuf>,
    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, env = "TOLLGATE_GATEWAY_BODY_LIMIT_BYTES", default_value_t = gw().body_limit, help_heading = "Gateway")]
    pub gateway_body_limit_bytes: usize,
    /// Connecting to an engine, in milliseconds.
    #[arg(long, env = "TOLLGATE_GATEWAY_CONNECT_TIMEOUT_MS", default_value_t = ms(gw().connect_timeout), help_heading = "Gateway")]
    pub gateway_connect_timeout_ms: u64,
    /// Per attempt, from sending a streaming request to its first token, in milliseconds; a replica that misses it is left for the next.
    #[arg(long, env = "TOLLGATE_GATEWAY_FIRST_TOKEN_TIMEOUT_MS", default_value_t = ms(gw().first_token_timeout), help_heading = "Gateway")]
    pub gateway_first_token_timeout_ms: u64,
    /// Per attempt, from sending a non-streaming request to its answer starting, in milliseconds (bounds one whole generation).
    #[arg(long, env = "TOLLGATE_GATEWAY_FIRST_BYTE_TIMEOUT_MS", default_value_t = ms(gw().first_byte_timeout), help_heading = "Gateway")]
    pub gateway_first_byte_timeout_ms: u64,
    /// Longest silence between two chunks of a stream, in milliseconds.
    #[arg(long, env = "TOLLGATE_GATEWAY_IDLE_TIMEOUT_MS", default_value_t = ms(gw().idle_timeout), help_heading = "Gateway")]
    pub gateway_idle_timeout_ms: u64,
    /// Everything before the client gets an answer, all attempts together, in milliseconds.
    #[arg(long, env = "TOLLGATE_GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = ms(gw().request_timeout), help_heading = "Gateway")]
    pub gateway_request_timeout_ms: u64,
    /// How long an idle engine connection is kept, in milliseconds (below the engines' own keep-alive).
    #[arg(long, env = "TOLLGATE_GATEWAY_POOL_IDLE_TIMEOUT_MS", default_value_t = ms(gw().pool_idle_timeout), help_heading = "Gateway")]
    pub gateway_pool_idle_timeout_ms: u64,
    /// Replicas tried per request (connect errors, 5xx and timeouts before the first byte move to the next).
    #[arg(long, env = "TOLLGATE_GATEWAY_MAX_ATTEMPTS", default_value_t = gw().max_attempts, help_heading = "Gateway")]
    pub gateway_max_attempts: usize,
    /// Completion tokens reserved (and the engine told) when a request sets no max_tokens; never more than the model's context length leaves after the prompt (the catalog's, or the engines' own max_model_len when they serve less).
    #[arg(long, env = "TOLLGATE_GATEWAY_DEFAULT_MAX_TOKENS", default_value_t = gw().default_max_tokens, help_heading = "Gateway")]
    pub gateway_default_max_tokens: u64,
    /// The most completion tokens one request reserves, whatever its max_tokens (the engine is told so).
    #[arg(long, env = "TOLLGATE_GATEWAY_MAX_COMPLETION_RESERVATION", default_value_t = gw().max_completion_reservation, help_heading = "Gateway")]
    pub gateway_max_completion_reservation: u64,
    /// Largest engine answer read whole (non-streaming answers and error bodies), in bytes.
    #[arg(long, env = "TOLLGATE_GATEWAY_MAX_RESPONSE_BYTES", default_value_t = gw().max_response_bytes, help_heading = "Gateway")]
    pub gateway_max_response_bytes: usize,
    /// How long a request waits for a model that is starting (or waking from zero) before a 503 with Retry-After, in milliseconds.
    #[arg(long, env = "TOLLGATE_GATEWAY_WAKE_WAIT_MS", default_value_t = gw().wake_wait.as_millis() as u64, help_heading = "Gateway")]
    pub gateway_wake_wait_ms: u64,
    /// Requests one server holds at most per model while it starts; more get a 503 with Retry-After at once.
    #[arg(long, env = "TOLLGATE_GATEWAY_WAKE_QUEUE", default_value_t = gw().wake_queue, help_heading = "Gateway")]
    pub gateway_wake_queue: usize,
    /// Prefix affinity: requests whose prompts begin alike go to the same replica (whose engine has that beginning cached) while its load stays within this factor of the mean; 0 sends each to the least loaded replica.
    #[arg(long, env = "TOLLGATE_GATEWAY_PREFIX_AFFINITY", default_value_t = gw().prefix_affinity, help_heading = "Gateway")]
    pub gateway_prefix_affinity: f64,
    /// A PEM file of CA certificates trusted, beside the system's roots, for engines reached over https:// (a private CA of an inference service behind TLS).
    #[arg(
        long,
        env = "TOLLGATE_GATEWAY_ENGINE_CA_FILE",
        help_heading = "Gateway"
    )]
    pub gateway_engine_ca_file: Option<PathBuf>,

    /// Days raw usage records (one per request) are kept; older ones are deleted every hour in batches. Dashboards and monthly quotas read the rollups, which are kept.
    #[arg(long, env = "TOLLGATE_USAGE_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Usage")]
    pub usage_retention_days: u32,

    /// The SMTP server usage alerts are emailed through: smtp://host[:port] (plain, for a relay on the local network), smtp://user:password@host:587?tls=required (STARTTLS and login) or smtps://user:password@host:465 (TLS); empty: no email, alerts still go to tenants' webhooks and the portal.
    #[arg(
        long,
        env = "TOLLGATE_SMTP_URL",
        default_value = "",
        hide_env_values = true,
        help_heading = "Alerts"
    )]
    pub smtp_url: String,
    /// A PEM file of the CA that signed the SMTP server's certificate, trusted instead of the public web roots (a server with a private CA); empty: the web roots.
    #[arg(
        long,
        env = "TOLLGATE_SMTP_CA",
        default_value = "",
        help_heading = "Alerts"
    )]
    pub smtp_ca: String,
    /// The sender of alert emails, an address or `Name <address>`.
    #[arg(
        long,
        env = "TOLLGATE_SMTP_FROM",
        default_value = "Tollgate <tollgate@localhost>",
        help_heading = "Alerts"
    )]
    pub smtp_from: String,
    /// How often usage alerts (quota thresholds, repeated rate-limit refusals) are evaluated and due deliveries sent, in seconds.
    #[arg(long, env = "TOLLGATE_ALERTS_INTERVAL_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Alerts")]
    pub alerts_interval_s: u64,
    /// The wait before a failed alert delivery (email or webhook) is tried again, in seconds; doubled each time, up to an hour, 8 attempts in all.
    #[arg(long, env = "TOLLGATE_ALERTS_RETRY_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Alerts")]
    pub alerts_retry_s: u64,
    /// Requests of a subscription refused by a rate limit (429) within 10 minutes that raise a "rate-limited repeatedly" alert, at most one an hour; 0 turns these alerts off.
    #[arg(
        long,
        env = "TOLLGATE_ALERTS_RATE_LIMITED_COUNT",
        default_value_t = 20,
        help_heading = "Alerts"
    )]
    pub alerts_rate_limited_count: u64,
    /// Let tenants' alert webhooks reach private, loopback and link-local addresses (a receiver inside your network); off, the server calls only public addresses, so a tenant admin cannot make it post to internal services.
    #[arg(
        long,
        env = "TOLLGATE_ALERTS_WEBHOOK_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        help_heading = "Alerts"
    )]
    pub alerts_webhook_private: bool,

    /// Where engine replicas run: simulator (in this process, no GPU needed), local (vLLM processes on this machine's GPUs), kubernetes (a Pod per replica on a cluster's GPU nodes) or none (only the engines in TOLLGATE_ENGINES).
    #[arg(long, env = "TOLLGATE_FLEET_DRIVER", default_value = "simulator", value_parser = ["simulator", "local", "kubernetes", "none"], help_heading = "Fleet")]
    pub fleet_driver: String,
    /// The simulator driver's nodes: COUNTxGPUSxPRODUCT groups, comma-separated.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_NODES",
        default_value = "2x8xH100-80GB",
        help_heading = "Fleet"
    )]
    pub fleet_nodes: String,
    /// Arguments added to every simulated engine (its start-up time, faults: see tollgate-sim --help).
    #[arg(
        long,
        env = "TOLLGATE_FLEET_SIM_ARGS",
        default_value = "--sim-load-time-s 2",
        help_heading = "Fleet"
    )]
    pub fleet_sim_args: String,
    /// On first start with the seed catalog, deploy each seeded model (one GPU, one to two replicas).
    #[arg(long, env = "TOLLGATE_FLEET_SEED", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Fleet")]
    pub fleet_seed: bool,
    /// The local driver's engine command, before the model (it gets vLLM's arguments).
    #[arg(
        long,
        env = "TOLLGATE_FLEET_LOCAL_COMMAND",
        default_value = "vllm serve",
        help_heading = "Fleet"
    )]
    pub fleet_local_command: String,
    /// The local driver's GPU query, answering in nvidia-smi's CSV.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_LOCAL_GPU_QUERY",
        default_value = "nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits",
        help_heading = "Fleet"
    )]
    pub fleet_local_gpu_query: String,
    /// The address local engines listen on (and the gateway reaches them at).
    #[arg(
        long,
        env = "TOLLGATE_FLEET_LOCAL_HOST",
        default_value = "127.0.0.1",
        help_heading = "Fleet"
    )]
    pub fleet_local_host: String,
    /// The Kubernetes driver's kubeconfig file; empty: KUBECONFIG, ~/.kube/config, or the pod's service account inside a cluster.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_KUBECONFIG",
        default_value = "",
        hide_default_value = true,
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_kubeconfig: String,
    /// The namespace engine Pods and Services go in; empty: the kubeconfig's (inside a cluster, Tollgate's own), else default.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_NAMESPACE",
        default_value = "",
        hide_default_value = true,
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_namespace: String,
    /// The vLLM image engine Pods run (its command is vllm serve).
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_IMAGE",
        default_value = "vllm/vllm-openai:v0.11.0",
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_image: String,
    /// Image pull secrets for engine Pods, comma-separated.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_IMAGE_PULL_SECRETS",
        default_value = "",
        hide_default_value = true,
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_image_pull_secrets: String,
    /// A PersistentVolumeClaim engine Pods mount as their Hugging Face cache; empty: an emptyDir (weights download on every start).
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_MODEL_CACHE_PVC",
        default_value = "",
        hide_default_value = true,
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_model_cache_pvc: String,
    /// A YAML PodTemplateSpec whose fields engine Pods get under Tollgate's own (node selector, tolerations, the vllm container's resources and env); empty: none.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_KUBERNETES_POD_TEMPLATE",
        default_value = "",
        hide_default_value = true,
        help_heading = "Fleet"
    )]
    pub fleet_kubernetes_pod_template: String,
    /// How often the controller reconciles, in milliseconds.
    #[arg(long, env = "TOLLGATE_FLEET_TICK_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..), help_heading = "Fleet")]
    pub fleet_tick_ms: u64,
    /// How long a draining replica may finish its requests before it is stopped, in seconds.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_DRAIN_GRACE_S",
        default_value_t = 30,
        help_heading = "Fleet"
    )]
    pub fleet_drain_grace_s: u64,
    /// A replica that does not answer /health this long after starting has failed, in seconds (vLLM loads weights first).
    #[arg(long, env = "TOLLGATE_FLEET_START_TIMEOUT_S", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Fleet")]
    pub fleet_start_timeout_s: u64,
    /// Load must stay low this long before a deployment scales down, in seconds.
    #[arg(
        long,
        env = "TOLLGATE_FLEET_SCALE_DOWN_WINDOW_S",
        default_value_t = 60,
        help_heading = "Fleet"
    )]
    pub fleet_scale_down_window_s: u64,
    /// The first restart of a crashed replica waits this long, in milliseconds; each next one twice as long, up to a minute.
    #[arg(long, env = "TOLLGATE_FLEET_RESTART_BACKOFF_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Fleet")]
    pub fleet_restart_backoff_ms: u64,
}

/// The configuration the server runs with: the settings, and what is derived from them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// `listen`, or the address cargo-leptos passes in `LEPTOS_SITE_ADDR` when no source set one.
    pub listen: SocketAddr,
    pub public_url: String,
    pub site_root: String,
    pub oidc: Option<OidcSettings>,
    /// Model id -> engine base URLs (until the fleet places replicas).
    pub engines: std::collections::BTreeMap<String, Vec<String>>,
    /// Threads serving `gateway_listen` (at least 1).
    pub gateway_workers: usize,
    pub redis_url: Option<String>,
    pub gateway: GatewayConfig,
    /// The usage spool's file, absolute: `usage_spool`, or `usage-spool.jsonl` in `data_dir`, taken from the
    /// working folder at start when relative (so it does not move if the working folder does).
    pub spool_path: PathBuf,
}

/// Settings read through `Config` (`config.redis_prefix`) where nothing is derived from them.
impl std::ops::Deref for Config {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl std::ops::DerefMut for Config {
    fn deref_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }
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
    /// Also `--help` and `--version`, which clap prints on exit.
    #[error("{0}")]
    Cli(#[from] clap::Error),
    #[error("cannot read the configuration file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the configuration file {0} is not valid: {1}")]
    Parse(PathBuf, String),
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// What `load` returns: the command to run and the configuration, with the matches it came from (for `config show`).
pub struct Loaded {
    pub cli: Cli,
    pub config: Config,
    matches: ArgMatches,
    /// Settings whose value came from the file (handed to clap as flags).
    from_file: std::collections::HashSet<String>,
}

impl Loaded {
    /// `tollgate config show`: every setting as TOML, by section, with where its value came from; secrets redacted.
    pub fn show(&self) -> String {
        let mut out = String::from(
            "# Tollgate's effective configuration: defaults, then the file, then the environment, then flags.\n",
        );
        let mut section = None;
        for s in declared() {
            if section != Some(s.section.clone()) {
                out.push_str(&format!("\n[{}]\n", s.section));
                section = Some(s.section.clone());
            }
            let source = match self.matches.value_source(&s.id) {
                Some(ValueSource::CommandLine) if self.from_file.contains(&s.id) => "file",
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            };
            let raw: Vec<String> = self
                .matches
                .get_raw(&s.id)
                .map(|v| v.map(|x| x.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let value = if raw.is_empty() {
                format!("# {} = (unset)", s.key)
            } else if s.secret {
                format!("{} = \"(redacted)\"", s.key)
            } else {
                format!("{} = {:?}", s.key, raw.join(","))
            };
            out.push_str(&format!("{value:<60} # {source}, {}\n", s.env));
        }
        out
    }
}

/// One setting as the declaration says it.
#[derive(Debug, Clone)]
struct Declared {
    id: String,
    long: String,
    env: String,
    section: String,
    /// Its key in the TOML file, under `section`.
    key: String,
    help: String,
    default: Option<String>,
    secret: bool,
}

/// Every setting, in declaration order (sectionless ones, like `--config`, are not settings of the file).
fn declared() -> Vec<Declared> {
    let cmd = Cli::command();
    cmd.get_arguments()
        .filter_map(|a| {
            let section = a.get_help_heading()?.to_lowercase();
            let env = a.get_env()?.to_string_lossy().into_owned();
            let id = a.get_id().to_string();
            let key = id
                .strip_prefix(&format!("{section}_"))
                .unwrap_or(&id)
                .to_string();
            let defaults: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            Some(Declared {
                long: a.get_long().unwrap_or(&id).to_string(),
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                default: (!defaults.is_empty() && !defaults.iter().all(String::is_empty))
                    .then(|| defaults.join(",")),
                secret: a.is_hide_env_values_set(),
                id,
                env,
                section,
                key,
            })
        })
        .collect()
}

/// The README's settings table, from the declaration.
pub fn settings_table() -> String {
    let mut out = String::from(
        "| variable | TOML `[section] key` | default | meaning |\n|---|---|---|---|\n",
    );
    for s in declared() {
        out.push_str(&format!(
            "| `{}` | `[{}] {}` | {} | {} |\n",
            s.env,
            s.section,
            s.key,
            s.default
                .map_or_else(|| "unset".to_string(), |d| format!("`{d}`")),
            s.help.replace('|', "\\|")
        ));
    }
    out
}

/// The TOML file's values as flags, for the settings neither a flag nor the environment set (`given`).
fn file_flags(path: &PathBuf, given: &ArgMatches) -> Result<Vec<(String, OsString)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?;
    let settings = declared();
    let mut flags = Vec::new();
    for (section, entries) in table {
        let toml::Value::Table(entries) = entries else {
            return Err(ConfigError::Parse(
                path.clone(),
                format!("`{section}` must be a [section]"),
            ));
        };
        for (key, value) in entries {
            let s = settings
                .iter()
                .find(|s| s.section == section && s.key == key)
                .ok_or_else(|| {
                    ConfigError::Parse(path.clone(), format!("unknown setting [{section}] {key}"))
                })?;
            if matches!(
                given.value_source(&s.id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let value = flag_value(&value).ok_or_else(|| {
                ConfigError::Parse(
                    path.clone(),
                    format!("[{section}] {key} has a value of the wrong shape"),
                )
            })?;
            flags.push((
                s.id.clone(),
                OsString::from(format!("--{}={value}", s.long)),
            ));
        }
    }
    Ok(flags)
}

/// A TOML value written the way the flag takes it: lists comma-separated, a table of lists (`engines`) as
/// `key=a|b,key2=c`.
fn flag_value(v: &toml::Value) -> Option<String> {
    use toml::Value::*;
    Some(match v {
        String(s) => s.clone(),
        Integer(i) => i.to_string(),
        Float(f) => f.to_string(),
        Boolean(b) => b.to_string(),
        Array(items) => items
            .iter()
            .map(flag_value)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        Table(t) => t
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Array(items) => items
                        .iter()
                        .map(flag_value)
                        .collect::<Option<Vec<_>>>()?
                        .join("|"),
                    other => flag_value(other)?,
                };
                Some(format!("{k}={v}"))
            })
            .collect::<Option<Vec<_>>>()?
            .join(","),
        Datetime(d) => d.to_string(),
    })
}

impl Config {
    /// Reads the command line, the environment and the file it names.
    pub fn load() -> Result<Loaded, ConfigError> {
        Self::load_from(std::env::args_os().collect(), Cli::command())
    }

    /// Reads `args` (the program name first) with `command` (`Cli::command()`; tests pass one without the
    /// environment).
    fn load_from(args: Vec<OsString>, command: clap::Command) -> Result<Loaded, ConfigError> {
        let given = command.clone().try_get_matches_from(&args)?;
        let file = given.get_one::<PathBuf>("config").cloned();
        let mut from_file = std::collections::HashSet::new();
        let matches = match file {
            None => given,
            Some(path) => {
                let mut all = args.clone();
                let at = 1.min(all.len());
                let flags = file_flags(&path, &given)?;
                from_file.extend(flags.iter().map(|(id, _)| id.clone()));
                all.splice(at..at, flags.into_iter().map(|(_, flag)| flag));
                command.try_get_matches_from(all)?
            }
        };
        let cli = Cli::from_arg_matches(&matches)?;
        let config = Self::resolve(cli.settings.clone())?;
        Ok(Loaded {
            cli,
            config,
            matches,
            from_file,
        })
    }

    /// Derives what the server needs from the settings, checking what no single setting can check alone.
    pub fn resolve(settings: Settings) -> Result<Self, ConfigError> {
        // cargo-leptos passes the site address and root of its build through these variables.
        let listen = if settings.listen == SocketAddr::from(([127, 0, 0, 1], 3000)) {
            std::env::var("LEPTOS_SITE_ADDR")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or(settings.listen)
        } else {
            settings.listen
        };
        let site_root = if settings.site_root == "target/site" {
            std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| settings.site_root.clone())
        } else {
            settings.site_root.clone()
        };
        let public_url = settings
            .public_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public URL '{public_url}' must start with http:// or https://"
            )));
        }
        let oidc = match settings.oidc_issuer_url.clone().filter(|s| !s.is_empty()) {
            None => None,
            Some(issuer_url) => Some(OidcSettings {
                issuer_url,
                client_id: settings.oidc_client_id.clone().ok_or_else(|| {
                    ConfigError::Invalid("OIDC needs a client id (TOLLGATE_OIDC_CLIENT_ID)".into())
                })?,
                client_secret: settings.oidc_client_secret.clone().unwrap_or_default(),
                scopes: settings
                    .oidc_scopes
                    .split_whitespace()
                    .filter(|s| *s != "openid")
                    .map(str::to_string)
                    .collect(),
                groups_claim: settings.oidc_groups_claim.clone(),
                group_prefix: settings.oidc_group_prefix.clone(),
                display_name: settings.oidc_display_name.clone(),
            }),
        };
        if !settings.local_login && oidc.is_none() {
            return Err(ConfigError::Invalid(
                "turning local sign-in off needs OIDC configured, or nobody can sign in".into(),
            ));
        }
        let engine_tls = match &settings.gateway_engine_ca_file {
            Some(path) => {
                tollgate_gateway::engine_conn::EngineTls::with_ca_file(path).map_err(|e| {
                    ConfigError::Invalid(format!("TOLLGATE_GATEWAY_ENGINE_CA_FILE: {e}"))
                })?
            }
            None => tollgate_gateway::engine_conn::EngineTls::default(),
        };
        let d = Duration::from_millis;
        let gateway = GatewayConfig {
            body_limit: settings.gateway_body_limit_bytes,
            connect_timeout: d(settings.gateway_connect_timeout_ms),
            first_token_timeout: d(settings.gateway_first_token_timeout_ms),
            first_byte_timeout: d(settings.gateway_first_byte_timeout_ms),
            idle_timeout: d(settings.gateway_idle_timeout_ms),
            request_timeout: d(settings.gateway_request_timeout_ms),
            pool_idle_timeout: d(settings.gateway_pool_idle_timeout_ms),
            max_attempts: settings.gateway_max_attempts.max(1),
            default_max_tokens: settings.gateway_default_max_tokens,
            max_completion_reservation: settings.gateway_max_completion_reservation,
            max_response_bytes: settings.gateway_max_response_bytes,
            wake_wait: d(settings.gateway_wake_wait_ms),
            wake_queue: settings.gateway_wake_queue,
            prefix_affinity: settings.gateway_prefix_affinity.max(0.0),
            engine_tls,
        };
        Ok(Self {
            listen,
            public_url,
            site_root,
            oidc,
            engines: parse_engines(&settings.engines)?,
            gateway_workers: settings
                .gateway_workers
                .map_or_else(tollgate_gateway::listener::default_workers, |n| n as usize)
                .max(1),
            redis_url: settings.redis_url.clone().filter(|u| !u.is_empty()),
            gateway,
            spool_path: absolute(
                settings
                    .usage_spool
                    .clone()
                    .unwrap_or_else(|| settings.data_dir.join("usage-spool.jsonl")),
            ),
            settings,
        })
    }

    /// Cookies get the Secure flag when the portal is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// A configuration for tests: the defaults (no environment), the database given, a random port, no demo data,
    /// a private usage spool.
    pub fn for_tests(database_url: &str) -> Self {
        let mut c = Self::load_from(vec!["tollgate".into()], without_env())
            .map(|l| l.config)
            .unwrap_or_else(|e| panic!("default config: {e}"));
        c.settings.database_url = database_url.to_string();
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.settings.demo_tenant = false;
        c.settings.fleet_seed = false;
        c.spool_path = std::env::temp_dir().join(format!(
            "tollgate-test-spool-{}-{}.jsonl",
            std::process::id(),
            tollgate_store::new_id("spool")
        ));
        c.settings.usage_spool = Some(c.spool_path.clone());
        c
    }
}

/// `path` made absolute against the working folder (unchanged if that cannot be read).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The command without its environment variables: only defaults, the file and flags count.
fn without_env() -> clap::Command {
    Cli::command().mut_args(|a| a.env(None::<&'static str>))
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

    const BEGIN: &str = "<!-- settings:begin";
    const END: &str = "<!-- settings:end -->";

    fn load(args: &[&str]) -> Result<Loaded, ConfigError> {
        let mut all: Vec<OsString> = vec!["tollgate".into()];
        all.extend(args.iter().map(OsString::from));
        Config::load_from(all, without_env())
    }

    /// The Kubernetes manifests and the image configure the server by environment variables (ConfigMap, Secret,
    /// the Deployment's env, the Containerfile's ENV): each must be a setting, so a renamed or misspelt one fails here, not on a cluster.
    #[test]
    fn the_kubernetes_manifests_name_only_real_settings() {
        let known: std::collections::BTreeSet<String> =
            declared().into_iter().map(|d| d.env).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/kubernetes"))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
            .collect();
        files.push(root.join("Containerfile"));
        let mut seen = 0;
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            for line in text.lines() {
                let code = line.split('#').next().unwrap_or("");
                for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("TOLLGATE_") || word == "DATABASE_URL" {
                        seen += 1;
                        assert!(
                            known.contains(word),
                            "{} names {word}, which is no setting",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(
            seen > 10,
            "the manifests set the server up ({seen} settings named)"
        );
    }

    fn file(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "tollgate-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        format!("--config={}", path.display())
    }

    fn config(args: &[&str]) -> Config {
        load(args)
            .map(|l| l.config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn engines_parse_from_one_variable() {
        let e = parse_engines("a=http://h:1|http://h:2, b=http://h:3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e["a"], vec!["http://h:1", "http://h:2"]);
        assert_eq!(e["b"], vec!["http://h:3"]);
        assert!(parse_engines("a").is_err());
        assert!(parse_engines("a=ftp://x").is_err());
    }

    #[test]
    fn defaults_make_a_working_local_setup() {
        let c = config(&[]);
        assert_eq!(c.database_url, "sqlite://data/tollgate.db");
        assert!(c.local_login && c.demo_tenant && c.seed_catalog && c.oidc.is_none());
        assert!(c.public_url.starts_with("http://"));
        assert!(!c.secure_cookies());
        assert_eq!(c.key_refresh_ms, 2000);
        assert!(c.redis_url.is_none() && !c.redis_fail_closed);
        assert_eq!(
            format!("{:?}", c.gateway),
            format!("{:?}", GatewayConfig::default())
        );
    }

    #[test]
    fn the_usage_spool_defaults_to_an_absolute_path_in_the_data_folder() {
        let c = config(&[]);
        assert!(c.spool_path.is_absolute(), "{}", c.spool_path.display());
        let cwd = std::env::current_dir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.spool_path, cwd.join("data").join("usage-spool.jsonl"));
        let c = config(&["--data-dir", "/var/lib/tollgate"]);
        assert_eq!(
            c.spool_path,
            std::path::Path::new("/var/lib/tollgate/usage-spool.jsonl")
        );
        let c = config(&[
            "--data-dir",
            "/var/lib/tollgate",
            "--usage-spool",
            "spool/u.jsonl",
        ]);
        assert_eq!(c.spool_path, cwd.join("spool/u.jsonl"));
    }

    #[test]
    fn flags_override_the_file_and_show_says_where_each_value_came_from() {
        let path = file(
            "layers",
            "[server]\npublic_url = \"https://file.example/\"\ntrusted_proxies = [\"10.0.0.1\", \"10.0.0.2\"]\n\
             [database]\nurl = \"postgres://db/x\"\n[gateway]\nengines = { m = [\"http://a:1\", \"http://b:2\"] }\n\
             key_refresh_ms = 500\n",
        );
        let loaded = load(&[&path, "--public-url", "https://flag.example"])
            .unwrap_or_else(|e| panic!("{e}"));
        let c = &loaded.config;
        assert_eq!(c.public_url, "https://flag.example");
        assert_eq!(c.database_url, "postgres://db/x");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.engines["m"], vec!["http://a:1", "http://b:2"]);
        assert_eq!(c.key_refresh_ms, 500);
        assert!(c.secure_cookies());
        let shown = loaded.show();
        let line = |key: &str| {
            shown
                .lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{key} missing from:\n{shown}"))
                .to_string()
        };
        assert!(line("public_url").contains("# flag"), "{shown}");
        assert!(line("url").contains("# file"), "{shown}");
        assert!(line("log_format").contains("# default"), "{shown}");
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_the_environment() {
        // A variable no other test reads; the command is built after it is set, as at start.
        std::env::set_var("TOLLGATE_LOGIN_LOCKOUT_MINUTES", "33");
        let path = file(
            "env",
            "[auth]\nlogin_lockout_minutes = 44\nlogin_max_failures = 9\n",
        );
        let from_env =
            Config::load_from(vec!["tollgate".into(), path.clone().into()], Cli::command())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_env.config.login_lockout_minutes, 33);
        assert_eq!(from_env.config.login_max_failures, 9);
        let from_flag = Config::load_from(
            vec![
                "tollgate".into(),
                path.into(),
                "--login-lockout-minutes=55".into(),
            ],
            Cli::command(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::env::remove_var("TOLLGATE_LOGIN_LOCKOUT_MINUTES");
        assert_eq!(from_flag.config.login_lockout_minutes, 55);
    }

    #[test]
    fn the_gateways_own_settings_reach_the_gateway() {
        let path = file(
            "gateway",
            "[gateway]\nrequest_timeout_ms = 5000\nmax_attempts = 2\n",
        );
        let c = config(&[&path, "--gateway-body-limit-bytes=1024"]);
        assert_eq!(c.gateway.body_limit, 1024);
        assert_eq!(c.gateway.request_timeout, Duration::from_secs(5));
        assert_eq!(c.gateway.max_attempts, 2);
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let path = file(
            "oidc",
            "[oidc]\nissuer_url = \"https://sso.example/realms/x\"\n",
        );
        assert!(matches!(load(&[&path]), Err(ConfigError::Invalid(_))));
        let path = file("unknown", "[server]\nlisten_on = 1\n");
        match load(&[&path]) {
            Err(ConfigError::Parse(_, why)) => assert!(why.contains("[server] listen_on"), "{why}"),
            other => panic!("{:?}", other.map(|l| l.config)),
        }
        assert!(matches!(
            load(&["--session-idle-minutes=0"]),
            Err(ConfigError::Cli(_))
        ));
        assert!(matches!(
            load(&["--local-login=false"]),
            Err(ConfigError::Invalid(_))
        ));
        let path = file("scopes", "[oidc]\nissuer_url = \"https://sso.example\"\nclient_id = \"tg\"\nscopes = \"openid email\"\n");
        assert_eq!(
            config(&[&path]).oidc.map(|o| o.scopes),
            Some(vec!["email".to_string()])
        );
    }

    #[test]
    fn secrets_are_redacted_in_show() {
        let shown = load(&[
            "--admin-password=hunter2-secret",
            "--oidc-client-secret=s3cr3t",
        ])
        .unwrap_or_else(|e| panic!("{e}"))
        .show();
        assert!(
            !shown.contains("hunter2-secret") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("admin_password = \"(redacted)\""), "{shown}");
    }

    #[test]
    fn every_setting_has_a_variable_a_section_and_help() {
        let all = declared();
        assert!(all.len() > 40, "{}", all.len());
        let mut seen = std::collections::HashSet::new();
        for s in &all {
            assert!(!s.help.is_empty(), "{} has no help", s.id);
            assert!(
                s.env.starts_with("TOLLGATE_") || s.env == "DATABASE_URL",
                "{}",
                s.env
            );
            assert!(
                seen.insert((s.section.clone(), s.key.clone())),
                "[{}] {} twice",
                s.section,
                s.key
            );
        }
    }

    /// The README's table is generated: `cargo run -p tollgate-server -- config table`, or run this test with
    /// TOLLGATE_BLESS=1 to rewrite it in place.
    #[test]
    fn the_readme_settings_table_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let start = readme
            .find(BEGIN)
            .unwrap_or_else(|| panic!("README has no `{BEGIN}` marker"));
        let body = start + readme[start..].find('\n').unwrap_or(0) + 1;
        let end = readme
            .find(END)
            .unwrap_or_else(|| panic!("README has no `{END}` marker"));
        let table = settings_table();
        if std::env::var("TOLLGATE_BLESS").is_ok() {
            let updated = format!("{}{}{}", &readme[..body], table, &readme[end..]);
            std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{e}"));
            return;
        }
        assert_eq!(
            &readme[body..end],
            table,
            "README.md's settings table differs from server/src/config.rs: rerun this test with TOLLGATE_BLESS=1"
        );
    }
}
