//! What metering costs the database side: usage records inserted in the gateway writer's batches (512), on SQLite
//! (a file, WAL, as `make run` uses) and PostgreSQL (127.0.0.1:5432 or `TOLLGATE_TEST_POSTGRES_URL`), with their
//! rollups and the keys' last-used times, in microseconds per record. Ids are made as the gateway makes them (a
//! per-process prefix and a counter).
//!
//! `cargo bench -p tollgate-store --bench usage_insert` (`BENCH_RECORDS`, default 51200).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::time::Instant;
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::NewUsage;

const BATCH: usize = 512;

fn main() {
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(51_200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("tollgate-store usage records, {records} in batches of {BATCH}, as the gateway's writer inserts them");
    rt.block_on(async {
        for flavor in [Flavor::Sqlite, Flavor::Postgres] {
            let Ok(db) = TestDatabase::new(flavor).await else {
                println!("  {flavor:?}: not reachable, skipped");
                continue;
            };
            let store = db.store().await.unwrap();
            let ids: Vec<(String, String)> = (0..records)
                .map(|i| (format!("usg_9f3c{i:028x}"), format!("req_9f3c{i:028x}")))
                .collect();
            let now = tollgate_store::now_millis();
            let started = Instant::now();
            for (b, batch) in ids.chunks(BATCH).enumerate() {
                let rows: Vec<NewUsage<'_>> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, (id, request_id))| NewUsage {
                        id,
                        request_id,
                        at: now + (b * BATCH + i) as i64 / 20,
                        tenant_id: "tnt_bench",
                        team_id: "team_bench",
                        subscription_id: if i % 4 == 0 { "sub_a" } else { "sub_b" },
                        key_id: Some("key_bench"),
                        model: "granite-3.1-2b-base",
                        replica: "http://127.0.0.1:8000",
                        endpoint: "completions",
                        status: 200,
                        prompt_tokens: 5,
                        completion_tokens: 16,
                        latency_ms: 1,
                        ttft_ms: None,
                        streamed: false,
                        client_disconnected: false,
                        source: "api",
                        refusal: "",
                    })
                    .collect();
                assert_eq!(
                    store.insert_usage_batch(&rows).await.unwrap(),
                    rows.len() as u64
                );
            }
            let took = started.elapsed();
            println!(
                "  {flavor:?}: {:.1} µs per record ({:.0} records/s)",
                took.as_secs_f64() * 1e6 / records as f64,
                records as f64 / took.as_secs_f64()
            );
            let _ = db.cleanup().await;
        }
    });
}
