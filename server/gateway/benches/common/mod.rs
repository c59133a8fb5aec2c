//! What the gateway benchmarks set up alike: one key for one model, and a gateway in front of that model's replicas
//! with in-memory limits and metering into a throwaway SQLite database; and their knobs from the environment.

#![allow(dead_code)] // each benchmark uses part of it

use arc_swap::ArcSwap;
use std::sync::Arc;
use tollgate_domain::grant::{Grant, KeyEntry, KeySnapshot, Limits};
use tollgate_domain::secret::{mint, SecretKind, ID_LEN, SECRET_LEN};
use tollgate_gateway::{
    Gateway, GatewayConfig, GatewayParts, MemoryLimiter, MeteringConfig, ModelRoute, Routes,
};

/// A gateway to bench, the `Authorization` header of its one key, and the database its usage goes to.
pub struct Bench {
    pub gw: Gateway,
    pub auth: String,
    pub db: tollgate_store::testing::TestDatabase,
}

/// A gateway serving `model` on `replicas` (base URLs) with `config`, for one key with `limits`.
pub async fn gateway(
    model: &str,
    replicas: Vec<String>,
    limits: Limits,
    config: GatewayConfig,
) -> Bench {
    let mut random = [7u8; ID_LEN + SECRET_LEN];
    random[0] = 1;
    let key = mint(SecretKind::ApiKey, &random);
    let entry = KeyEntry {
        key_id: key.id.clone(),
        secret_hash: key.hash,
        revoked: false,
        expires_at: None,
        grant: Arc::new(Grant {
            tenant_id: "t".into(),
            team_id: "team".into(),
            subscription_id: "sub".into(),
            model: model.into(),
            limits,
            active: true,
            priority: None,
        }),
        also: Arc::new([]),
    };
    let db = tollgate_store::testing::TestDatabase::new(tollgate_store::testing::Flavor::Sqlite)
        .await
        .expect("db");
    let store = db.store().await.expect("store");
    let gw = Gateway::new(GatewayParts {
        config,
        keys: Arc::new(ArcSwap::from_pointee(KeySnapshot::new([entry]))),
        limiter: Arc::new(MemoryLimiter::new()),
        usage: Arc::new(store),
        metering: MeteringConfig {
            spool_path: std::env::temp_dir()
                .join(tollgate_store::new_id("tg-bench"))
                .join("spool.jsonl"),
            ..MeteringConfig::default()
        },
    });
    gw.replace_routes(&Routes {
        models: [(
            model.to_string(),
            ModelRoute {
                served_name: model.into(),
                replicas,
                starting: 0,
                wakeable: false,
            },
        )]
        .into(),
    });
    Bench {
        gw,
        auth: format!("Bearer {}", key.full),
        db,
    }
}

/// A benchmark's knob: the environment variable `name` as a number, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
