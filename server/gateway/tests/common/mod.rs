//! Test support: engine simulators and gateways on random ports, keys minted like the catalog mints them, and a
//! SQLite database per gateway for its usage records.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails
#![allow(dead_code)]

pub mod tls_front;

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tollgate_domain::grant::{Grant, KeyEntry, KeySnapshot, Limits, ModelCard};
use tollgate_domain::secret::{mint, SecretKind, ID_LEN, SECRET_LEN};
use tollgate_gateway::{
    Gateway, GatewayConfig, GatewayParts, Limiter, MemoryLimiter, MeteringConfig, ModelRoute,
    Routes,
};
use tollgate_sim::SimConfig;
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{RecordScan, Store, UsageRow};

pub const MODEL: &str = "llama-test";
pub const SERVED: &str = "meta/llama-test-served";

/// Starts a simulator serving `SERVED` in this process.
pub async fn sim(config: SimConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tollgate_sim::serve(config, listener).await;
    });
    addr
}

pub fn fast_sim() -> SimConfig {
    SimConfig::new(SERVED).zero_latency()
}

/// A port nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

pub fn routes(replicas: &[SocketAddr], starting: u32) -> Routes {
    routes_to(
        replicas.iter().map(|a| format!("http://{a}")).collect(),
        starting,
    )
}

/// `MODEL` served on replicas at these base URLs (`https://` ones, say).
pub fn routes_to(bases: Vec<String>, starting: u32) -> Routes {
    Routes {
        models: [(
            MODEL.to_string(),
            ModelRoute {
                served_name: SERVED.into(),
                replicas: bases,
                starting,
                wakeable: false,
            },
        )]
        .into(),
    }
}

/// A key and its snapshot entry.
pub struct TestKey {
    pub secret: String,
    pub entry: KeyEntry,
}

pub fn key(seed: u8, sub: &str, model: &str, limits: Limits) -> TestKey {
    let mut random = [0u8; ID_LEN + SECRET_LEN];
    for (i, b) in random.iter_mut().enumerate() {
        *b = seed
            .wrapping_mul(37)
            .wrapping_add((i as u8).wrapping_mul(11));
    }
    // The first id character alone tells seeds apart, so keys of one test never share an id.
    random[0] = seed;
    let m = mint(SecretKind::ApiKey, &random);
    TestKey {
        secret: m.full,
        entry: KeyEntry {
            key_id: m.id,
            secret_hash: m.hash,
            revoked: false,
            expires_at: None,
            grant: Arc::new(Grant {
                tenant_id: "tnt_test".into(),
                team_id: "team_test".into(),
                subscription_id: sub.into(),
                model: model.into(),
                limits,
                active: true,
                priority: None,
            }),
            also: Arc::new([]),
        },
    }
}

pub fn card() -> ModelCard {
    ModelCard {
        id: MODEL.into(),
        created: 1_700_000_000,
        owned_by: "meta".into(),
        display_name: "Llama Test".into(),
        task: "chat".into(),
        context_length: 2048,
        status: "available".into(),
    }
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub gw: Gateway,
    pub store: Store,
    pub db: TestDatabase,
    pub spool_dir: std::path::PathBuf,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` as JSON to `path` with `key`.
    pub async fn post_json(
        &self,
        key: &TestKey,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Result<reqwest::Response> {
        client()
            .post(self.url(path))
            .header("authorization", format!("Bearer {}", key.secret))
            .json(&body)
            .send()
            .await
    }

    /// Every usage record, after flushing the writer.
    pub async fn records(&self) -> Vec<UsageRow> {
        self.gw.flush_usage().await;
        let all = RecordScan {
            until: i64::MAX,
            newest_first: true,
            ..RecordScan::default()
        };
        self.store
            .scan_usage(&all, None, 10_000)
            .await
            .expect("list usage")
    }

    /// Waits until `n` records are stored (records of abandoned streams are written when the server notices).
    pub async fn wait_records(&self, n: usize) -> Vec<UsageRow> {
        for _ in 0..200 {
            let r = self.records().await;
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {n} usage records after 10 s: {:?}",
            self.records().await
        );
    }
}

pub async fn gateway(
    keys: Vec<KeyEntry>,
    routes: &Routes,
    limiter: Arc<dyn Limiter>,
) -> TestGateway {
    gateway_with(keys, routes, limiter, no_holding()).await
}

/// The defaults, but a model with no ready replica is answered 503 at once instead of holding the request.
pub fn no_holding() -> GatewayConfig {
    GatewayConfig {
        wake_wait: Duration::ZERO,
        ..GatewayConfig::default()
    }
}

pub async fn gateway_with(
    keys: Vec<KeyEntry>,
    routes: &Routes,
    limiter: Arc<dyn Limiter>,
    config: GatewayConfig,
) -> TestGateway {
    let db = TestDatabase::new(Flavor::Sqlite).await.expect("test db");
    let store = db.store().await.expect("store");
    let spool_dir = std::env::temp_dir().join(tollgate_store::new_id("tg-gw-spool"));
    let gw = Gateway::new(GatewayParts {
        config,
        keys: Arc::new(ArcSwap::from_pointee(
            KeySnapshot::new(keys).with_models([card()]),
        )),
        limiter,
        usage: Arc::new(store.clone()),
        metering: MeteringConfig {
            flush_interval: Duration::from_millis(100),
            spool_path: spool_dir.join("spool.jsonl"),
            ..MeteringConfig::default()
        },
    });
    gw.replace_routes(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app =
        tollgate_gateway::router(gw.clone()).merge(tollgate_gateway::metrics_router(gw.clone()));
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
    TestGateway {
        addr,
        gw,
        store,
        db,
        spool_dir,
    }
}

/// A gateway in front of one engine, for one key, with in-memory limits.
pub async fn one_engine_gateway(
    key: &TestKey,
    engine: SocketAddr,
    config: GatewayConfig,
) -> TestGateway {
    gateway_with(
        vec![key.entry.clone()],
        &routes(&[engine], 0),
        memory(),
        config,
    )
    .await
}

pub fn memory() -> Arc<MemoryLimiter> {
    Arc::new(MemoryLimiter::with_window(3_600_000))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

pub fn chat_body(content: &str, max_tokens: u32, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
        "seed": 7,
    })
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}
