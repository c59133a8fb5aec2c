//! The dashboards' benchmark, not a timed test: fills a fresh SQLite file and a fresh PostgreSQL schema with
//! `USAGE_BENCH_RECORDS` made-up records (default 200,000; the target is 10,000,000) over
//! `USAGE_BENCH_TENANTS` tenants (default 50) and 30 days, through `insert_usage_batch` in batches of 512 with the
//! rollups, and prints the ingest rate; then times each dashboard query shape (the median and the worst of 5 runs).
//! Targets: every query at most 100 ms, ingest at least 20,000 records/s.
//!
//! `cargo bench -p tollgate-usage --bench dashboards`; `USAGE_BENCH_FLAVORS=sqlite` runs one database only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::time::{Duration, Instant};
use tollgate_domain::usage::rollup::{Grain, DAY_MS, HOUR_MS};
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{Dimension, Grouping, RollupQuery, Store, UsageQuery};
use tollgate_usage::generate::{generate, Spec};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

async fn time<F, Fut, T>(label: &str, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut runs: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(run().await);
        runs.push(t.elapsed());
    }
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let worst = ms(runs[4]);
    println!(
        "  {label:<58} median {:>7.1} ms   worst {:>7.1} ms {}",
        ms(runs[2]),
        worst,
        if worst <= 100.0 { "" } else { "  > 100 ms" }
    );
}

async fn bench(flavor: Flavor, records: u64, tenants: u32) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store: Store = db.store().await.unwrap();
    let now = tollgate_store::now_millis();
    let spec = Spec {
        records,
        tenants,
        days: 30,
        batch: 512,
        seed: 7,
        now,
    };
    println!("{flavor:?}: {records} records, {tenants} tenants, 30 days");
    let g = generate(&store, &spec, |_| {}).await.unwrap();
    println!(
        "  ingest: {} records in {:.1} s = {:.0} records/s (batches of 512, rollups included)",
        g.inserted,
        g.elapsed.as_secs_f64(),
        g.per_second()
    );
    let tenant = Some("gen-tenant-000".to_string());
    let team = "gen-team-000-0".to_string();
    let q = |from: i64, tenant: Option<String>| RollupQuery {
        from,
        until: now,
        tenant_id: tenant,
        ..RollupQuery::default()
    };
    let by = |d: Option<Dimension>, every: Option<Grain>| Grouping {
        by: d,
        every,
        after: None,
        limit: Some(1_001),
    };
    let (month, week, day, hour) = (
        now - 30 * DAY_MS,
        now - 7 * DAY_MS,
        now - DAY_MS,
        now - HOUR_MS,
    );
    let s = &store;
    time("platform, 30 days, by tenant", || async {
        s.sum_rollups(&q(month, None), &by(Some(Dimension::Tenant), None))
            .await
            .unwrap()
    })
    .await;
    time("platform, 30 days, by model", || async {
        s.sum_rollups(&q(month, None), &by(Some(Dimension::Model), None))
            .await
            .unwrap()
    })
    .await;
    time("platform, 30 days, per day", || async {
        s.sum_rollups(&q(month, None), &by(None, Some(Grain::Day)))
            .await
            .unwrap()
    })
    .await;
    time("platform, 7 days, per day by model", || async {
        s.sum_rollups(
            &q(week, None),
            &by(Some(Dimension::Model), Some(Grain::Day)),
        )
        .await
        .unwrap()
    })
    .await;
    time("platform, 1 day, per hour", || async {
        s.sum_rollups(&q(day, None), &by(None, Some(Grain::Hour)))
            .await
            .unwrap()
    })
    .await;
    time("platform, 1 hour, per minute", || async {
        s.sum_rollups(&q(hour, None), &by(None, Some(Grain::Minute)))
            .await
            .unwrap()
    })
    .await;
    time("tenant, 30 days, by team", || async {
        s.sum_rollups(&q(month, tenant.clone()), &by(Some(Dimension::Team), None))
            .await
            .unwrap()
    })
    .await;
    time("tenant, 7 days, per day by key", || async {
        s.sum_rollups(
            &q(week, tenant.clone()),
            &by(Some(Dimension::Key), Some(Grain::Day)),
        )
        .await
        .unwrap()
    })
    .await;
    time("tenant, 1 hour, per minute", || async {
        s.sum_rollups(&q(hour, tenant.clone()), &by(None, Some(Grain::Minute)))
            .await
            .unwrap()
    })
    .await;
    time("developer (own team), 30 days, by key", || async {
        let mut mine = q(month, tenant.clone());
        mine.team_ids = Some(vec![team.clone()]);
        s.sum_rollups(&mine, &by(Some(Dimension::Key), None))
            .await
            .unwrap()
    })
    .await;
    time("developer (own team), 1 day, per hour by model", || async {
        let mut mine = q(day, tenant.clone());
        mine.team_ids = Some(vec![team.clone()]);
        s.sum_rollups(&mine, &by(Some(Dimension::Model), Some(Grain::Hour)))
            .await
            .unwrap()
    })
    .await;
    time(
        "month-to-date tokens per subscription (gateway start)",
        || async {
            s.usage_tokens_since(tollgate_domain::time::Millis(now).month_start().0)
                .await
                .unwrap()
        },
    )
    .await;
    time(
        "/api/v1/usage: a tenant's newest records, page 1",
        || async {
            s.list_usage(&UsageQuery {
                tenant_id: tenant.clone(),
                limit: 20,
                ..UsageQuery::default()
            })
            .await
            .unwrap()
        },
    )
    .await;
    store.close().await;
    db.cleanup().await.unwrap();
}

fn main() {
    let records = env("USAGE_BENCH_RECORDS", 200_000);
    let tenants = env("USAGE_BENCH_TENANTS", 50) as u32;
    let flavors = std::env::var("USAGE_BENCH_FLAVORS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for f in flavors.split(',') {
        let flavor = match f.trim() {
            "sqlite" => Flavor::Sqlite,
            "postgres" => Flavor::Postgres,
            other => panic!("unknown flavor {other}"),
        };
        rt.block_on(bench(flavor, records, tenants));
    }
}
