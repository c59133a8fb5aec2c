//! Usage alerts: quota thresholds (50, 90, 100 % of a subscription's monthly tokens) and repeated refusals by a
//! rate limit, each fired once per threshold and period, to the team's members and the tenant's admins by email
//! and to the tenant's webhook. `evaluate.rs` decides what fires (every `TOLLGATE_ALERTS_INTERVAL_S`, from the
//! rollups) and writes each alert with its deliveries in one transaction; `deliver.rs` sends what is due, with
//! retries and backoff; `manage.rs` is what callers do: list alerts, set the webhook. The rules are in
//! `tollgate_domain::usage::alerts`, the SQL in `tollgate_store` (`alerts.rs`).

mod deliver;
mod egress;
mod evaluate;
mod mail;
mod manage;

pub use mail::Mailer;

use std::time::Duration;
use tollgate_store::Store;

/// How the alert task runs, from the server's settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often alerts are evaluated and due deliveries sent.
    pub interval: Duration,
    /// The wait before the first retry of a failed delivery; each further one doubles it.
    pub retry_first: Duration,
    /// Refusals by a rate limit in the window that raise an alert (0: never).
    pub rate_limited_at_least: u64,
    /// The longest a webhook delivery may take.
    pub webhook_timeout: Duration,
    /// Whether webhooks may reach internal addresses (loopback, private, link-local); otherwise only public ones.
    pub webhook_private: bool,
}

/// The alert task: evaluator and dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    store: Store,
    settings: AlertSettings,
    mailer: Option<Mailer>,
    http: reqwest::Client,
}

impl Alerts {
    /// `mailer` None: no email (alerts are still recorded, listed and sent to webhooks).
    pub fn new(
        store: Store,
        settings: AlertSettings,
        mailer: Option<Mailer>,
    ) -> Result<Self, String> {
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.webhook_timeout)
            .user_agent("tollgate-alerts");
        if !settings.webhook_private {
            http = http.dns_resolver(std::sync::Arc::new(egress::PublicOnly));
        }
        let http = http
            .build()
            .map_err(|e| format!("could not build the webhook client: {e}"))?;
        Ok(Self {
            store,
            settings,
            mailer,
            http,
        })
    }

    /// Evaluates and delivers every `interval` (the first time at once), logging failures.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.settings.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = tollgate_store::now_millis();
                match self.evaluate(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(alerts = n, "usage alerts fired"),
                    Err(e) => tracing::warn!(error = %e, "could not evaluate usage alerts"),
                }
                if let Err(e) = self.deliver_due(tollgate_store::now_millis()).await {
                    tracing::warn!(error = %e, "could not deliver usage alerts");
                }
            }
        })
    }
}
