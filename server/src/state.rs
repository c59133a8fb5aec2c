//! The application state: every service, built once at start from the configuration.

use crate::config::Config;
use anyhow::Context;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tollgate_catalog::{Catalog, KeyDirectoryRefresher, Published};
use tollgate_domain::grant::KeySnapshot;
use tollgate_fleet::driver::{
    local::LocalConfig, local::LocalDriver, sim::SimDriver, Driver, NoDriver,
};
use tollgate_fleet::{rules::lifecycle::Timing, Controller, ControllerConfig, Fleet, FleetMetrics};
use tollgate_fleet_kubernetes::{parse_pod_template, KubeSettings, KubernetesDriver};
use tollgate_gateway::{
    FailoverLimiter, FailoverOptions, Gateway, GatewayParts, Limiter, MemoryLimiter,
    MeteringConfig, RedisLimiter, RedisOptions,
};
use tollgate_identity::{
    bootstrap::{bootstrap, BootstrapOptions, Bootstrapped},
    oidc::{Oidc, OidcConfig},
    throttle::LoginThrottle,
    Identity, Settings,
};
use tollgate_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub identity: Identity,
    pub catalog: Catalog,
    /// Usage records and the dashboards over their rollups.
    pub usage: tollgate_usage::Usage,
    /// The OpenAI-compatible gateway under /v1.
    pub gateway: Gateway,
    /// Deployments, replicas and GPUs, as admins change them.
    pub fleet: Fleet,
    /// The reconcile loop (when a driver is configured); it runs passes only while it holds the lease.
    pub controller: Option<Arc<Controller>>,
    /// Background tasks that live as long as the state: aborted when its last clone drops.
    _tasks: Arc<Tasks>,
    pub leptos: leptos::config::LeptosOptions,
}

impl axum::extract::FromRef<AppState> for leptos::config::LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database at {}",
                    redact(&config.database_url)
                )
            })?;
        match bootstrap(
            &store,
            BootstrapOptions {
                admin_email: config.admin_email.clone(),
                admin_password: config.admin_password.clone(),
                demo_tenant: config.demo_tenant,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("first-start setup failed: {e}"))?
        {
            Bootstrapped::AlreadyDone => {}
            Bootstrapped::Created {
                email,
                generated_password: Some(password),
            } => {
                // Shown once, on the console of the person who started the server: nowhere else.
                println!("\n  Tollgate created the platform admin {email} with the password: {password}\n  Sign in at {} and keep it safe; it is not shown again.\n", config.public_url);
            }
            Bootstrapped::Created {
                email,
                generated_password: None,
            } => {
                tracing::info!(admin.email = %email, "created the platform admin from the configured password");
            }
        }
        let oidc = match &config.oidc {
            None => None,
            Some(o) => Some(
                Oidc::new(OidcConfig {
                    issuer_url: o.issuer_url.clone(),
                    client_id: o.client_id.clone(),
                    client_secret: o.client_secret.clone(),
                    scopes: o.scopes.clone(),
                    groups_claim: o.groups_claim.clone(),
                    group_prefix: o.group_prefix.clone(),
                    display_name: o.display_name.clone(),
                    redirect_url: format!("{}/auth/oidc/callback", config.public_url),
                    post_logout_redirect_url: format!("{}/login?signed_out=1", config.public_url),
                    key_refresh: Default::default(),
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
        };
        let identity = Identity::new(
            store.clone(),
            Settings {
                public_url: config.public_url.clone(),
                local_login: config.local_login,
                idle_timeout_secs: config.session_idle_minutes * 60,
                absolute_timeout_secs: config.session_max_hours * 3600,
            },
            LoginThrottle::new(
                config.login_max_failures,
                Duration::from_secs(config.login_lockout_minutes * 60),
                Duration::from_secs(config.login_lockout_minutes * 60),
            ),
            oidc,
        );
        let driver = fleet_driver(config).await?;
        if config.seed_catalog {
            let added = tollgate_catalog::seed::seed_if_empty(&store)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            if added > 0 {
                tracing::info!(
                    models = added,
                    "seeded the catalog with its default models and plans"
                );
                if config.fleet_seed && driver.kind() != "none" {
                    let deployed = tollgate_fleet::seed::seed_deployments(&store, &config.engines)
                        .await
                        .map_err(|e| anyhow::anyhow!("could not seed the fleet: {e}"))?;
                    tracing::info!(
                        deployments = deployed,
                        driver = driver.kind(),
                        "deployed the seeded models"
                    );
                }
            }
        }
        let catalog = Catalog::new(store.clone(), identity.clone());
        let usage = tollgate_usage::Usage::new(store.clone(), identity.clone())
            .allowing_private_webhooks(config.alerts_webhook_private);
        let limiter: Arc<dyn Limiter> = match &config.redis_url {
            Some(url) => {
                let redis = RedisLimiter::new(
                    url,
                    &RedisOptions {
                        prefix: config.redis_prefix.clone(),
                        window_ms: 60_000,
                        timeout_ms: config.redis_timeout_ms,
                    },
                )
                .map_err(|e| anyhow::anyhow!("cannot use Redis for rate limits: {e}"))?;
                // An unreachable Redis does not stop the server: limits start local and turn shared when it answers.
                let up = redis.connect().await.is_ok();
                Arc::new(FailoverLimiter::new(
                    Arc::new(redis),
                    Some(Arc::new(store.clone())),
                    FailoverOptions {
                        fail_closed: config.redis_fail_closed,
                        replicas: config.gateway_replicas,
                        ..FailoverOptions::default()
                    },
                    up,
                ))
            }
            None => Arc::new(MemoryLimiter::new()),
        };
        let gateway = Gateway::new(GatewayParts {
            config: config.gateway.clone(),
            // Empty until the refresher below publishes the first snapshot, before the server accepts requests.
            keys: Arc::new(ArcSwap::from_pointee(KeySnapshot::default())),
            limiter,
            usage: Arc::new(store.clone()),
            metering: MeteringConfig {
                spool_path: config.spool_path.clone(),
                ..Default::default()
            },
        });
        gateway
            .load_month_to_date(&store)
            .await
            .map_err(|e| anyhow::anyhow!("could not read this month's usage: {e}"))?;
        // Routes: the catalog's names (from the key refresher), the fleet's replicas and the static engines.
        let publisher = Arc::new(crate::routing::RoutePublisher::new(
            gateway.clone(),
            store.clone(),
            config.engines.clone(),
        ));
        let routes_seen = publisher
            .load_fleet()
            .await
            .context("could not read the fleet's routes")?;
        let (routed, publish_routes) = (gateway.clone(), publisher.clone());
        let refresher = KeyDirectoryRefresher::new(
            store.clone(),
            catalog.changes(),
            catalog.applied(),
            Duration::from_millis(config.key_refresh_ms),
        )
        .start(move |p: Published| {
            publish_routes.models_changed(p.models);
            routed.replace_keys(p.keys);
        })
        .await
        .context("could not load the API keys")?;
        let fleet_metrics = Arc::new(FleetMetrics::default());
        let fleet_wake = Arc::new(Notify::new());
        let routes_changed = Arc::new(Notify::new());
        let routes_task = publisher.spawn(
            routes_seen,
            routes_changed.clone(),
            Duration::from_millis(config.key_refresh_ms.min(1000)),
        );
        let fleet = Fleet::new(
            store.clone(),
            identity.clone(),
            driver.clone(),
            fleet_metrics.clone(),
            fleet_wake.clone(),
        );
        gateway.on_wake(wake_hook(store.clone(), fleet_wake.clone()));
        {
            let m = fleet_metrics.clone();
            gateway.add_metrics(Arc::new(move |x| m.render(x)));
        }
        let controller = (driver.kind() != "none").then(|| {
            Arc::new(Controller::new(
                store.clone(),
                driver.clone(),
                controller_config(config),
                fleet_metrics.clone(),
                fleet_wake.clone(),
                routes_changed.clone(),
            ))
        });
        let controller_task = controller.clone().map(|c| c.spawn());
        // Replica choice also weighs what each engine reports (queue, KV cache), read from its /metrics.
        let load_poller = gateway.spawn_engine_load_poller(Duration::from_secs(2));
        // How many replicas share the limits, for dividing them while Redis is unreachable.
        let heartbeat =
            gateway.spawn_peer_heartbeat(store.clone(), tollgate_gateway::peers::HEARTBEAT);
        // Expired sessions are deleted in bounded batches, every five minutes.
        let sweeper = tollgate_identity::session_store::spawn_sweeper(
            store.clone(),
            Duration::from_secs(300),
        );
        // Raw usage records past their retention go every hour, in bounded batches (rollups stay).
        let retention = tollgate_usage::retention::spawn(
            store.clone(),
            config.usage_retention_days,
            Duration::from_secs(3600),
        );
        // Usage alerts: evaluated from the rollups and delivered (email, webhooks) every interval.
        let smtp_ca = match config.smtp_ca.trim() {
            "" => None,
            path => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("TOLLGATE_SMTP_CA: could not read {path}: {e}"))?,
            ),
        };
        let mailer = (!config.smtp_url.trim().is_empty())
            .then(|| {
                tollgate_usage::alerts::Mailer::from_url(
                    &config.smtp_url,
                    smtp_ca.as_deref(),
                    &config.smtp_from,
                )
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;
        let alerts = tollgate_usage::alerts::Alerts::new(
            store.clone(),
            tollgate_usage::alerts::AlertSettings {
                interval: Duration::from_secs(config.alerts_interval_s),
                retry_first: Duration::from_secs(config.alerts_retry_s),
                rate_limited_at_least: config.alerts_rate_limited_count,
                webhook_timeout: Duration::from_secs(10),
                webhook_private: config.alerts_webhook_private,
            },
            mailer,
        )
        .map_err(|e| anyhow::anyhow!(e))?
        .spawn();
        let mut tasks = vec![
            alerts,
            refresher,
            load_poller,
            heartbeat,
            sweeper,
            routes_task,
            retention,
        ];
        tasks.extend(controller_task);
        let tasks = Arc::new(Tasks(tasks));
        let leptos = leptos::config::LeptosOptions::builder()
            .output_name("tollgate")
            .site_root(config.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(config.listen)
            .build();
        Ok(Self {
            store,
            identity,
            catalog,
            usage,
            gateway,
            fleet,
            controller,
            _tasks: tasks,
            leptos,
        })
    }
}

/// The fleet driver the configuration names.
async fn fleet_driver(config: &Config) -> anyhow::Result<Arc<dyn Driver>> {
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    Ok(match config.fleet_driver.as_str() {
        "simulator" => Arc::new(
            SimDriver::new(&config.fleet_nodes, words(&config.fleet_sim_args))
                .map_err(|e| anyhow::anyhow!("TOLLGATE_FLEET_NODES: {e}"))?,
        ),
        "local" => Arc::new(
            LocalDriver::new(LocalConfig {
                command: words(&config.fleet_local_command),
                gpu_query: words(&config.fleet_local_gpu_query),
                node: std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into()),
                host: config.fleet_local_host.clone(),
                log_lines: 500,
            })
            .map_err(|e| anyhow::anyhow!("TOLLGATE_FLEET_LOCAL_COMMAND: {e}"))?,
        ),
        "kubernetes" => Arc::new(kubernetes_driver(config).await?),
        _ => Arc::new(NoDriver),
    })
}

/// The Kubernetes driver from the `TOLLGATE_FLEET_KUBERNETES_*` settings; connecting needs no API call (the
/// watches start in the background), so a cluster that is down delays inventory, not the server's start.
async fn kubernetes_driver(config: &Config) -> anyhow::Result<KubernetesDriver> {
    let pod_template = match config.fleet_kubernetes_pod_template.trim() {
        "" => None,
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("TOLLGATE_FLEET_KUBERNETES_POD_TEMPLATE: cannot read {path}: {e}")
            })?;
            Some(parse_pod_template(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?)
        }
    };
    let list = |s: &str| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let settings = KubeSettings {
        namespace: config.fleet_kubernetes_namespace.trim().to_string(),
        image: config.fleet_kubernetes_image.clone(),
        image_pull_secrets: list(&config.fleet_kubernetes_image_pull_secrets),
        model_cache_pvc: Some(config.fleet_kubernetes_model_cache_pvc.trim().to_string())
            .filter(|s| !s.is_empty()),
        pod_template,
        start_timeout: Duration::from_secs(config.fleet_start_timeout_s),
        termination_grace: Duration::from_secs(config.fleet_drain_grace_s.max(1)),
        ..KubeSettings::default()
    };
    let driver = match config.fleet_kubernetes_kubeconfig.trim() {
        "" => KubernetesDriver::connect(settings).await,
        path => KubernetesDriver::connect_with_kubeconfig(path, settings).await,
    };
    driver.map_err(|e| anyhow::anyhow!("TOLLGATE_FLEET_DRIVER=kubernetes: {e}"))
}

fn controller_config(config: &Config) -> ControllerConfig {
    let s = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    ControllerConfig {
        tick: Duration::from_millis(config.fleet_tick_ms),
        timing: Timing {
            start_timeout_ms: s(config.fleet_start_timeout_s),
            drain_grace_ms: s(config.fleet_drain_grace_s),
            backoff_base_ms: i64::try_from(config.fleet_restart_backoff_ms).unwrap_or(1000),
            ..Timing::default()
        },
        down_window_ms: s(config.fleet_scale_down_window_s),
        ..ControllerConfig::default()
    }
}

/// What the gateway calls when it holds a request for a model with no ready replica: marks the demand in the
/// database (the controller on any server reads it) and wakes this server's controller; at most once a second
/// per model.
fn wake_hook(store: Store, wake: Arc<Notify>) -> Arc<dyn Fn(&str) + Send + Sync> {
    let last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>> =
        std::sync::Mutex::default();
    Arc::new(move |model: &str| {
        let now = std::time::Instant::now();
        {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if last
                .get(model)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
            {
                return;
            }
            last.insert(model.to_string(), now);
        }
        let (store, model) = (store.clone(), model.to_string());
        let wake = wake.clone();
        tokio::spawn(async move {
            if let Err(e) = store
                .mark_demand(&model, tollgate_store::now_millis())
                .await
            {
                tracing::warn!(error = %e, model = %model, "cannot record that a request waits for this model");
            }
            wake.notify_one();
        });
    })
}

struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
