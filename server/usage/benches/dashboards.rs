//! The dashboards' benchmark, not a timed test: fills a fresh SQLite file and a fresh PostgreSQL schema with
//! `USAGE_BENCH_RECORDS` made-up records (default 200,000; the target is 10,000,000) over
//! `USAGE_BENCH_TENANTS` tenants (default 50) and 30 days, through `insert_usage_batch` in batches of 512 with the
//! rollups, and prints the ingest rate; then times each dashboard query shape and each kind of /api/v1/usage page
//! (the median and the worst of 5 runs); then adds `USAGE_BENCH_LIVE_RECORDS` (default 200,000) stamped as live
//! traffic at 20,000 requests/s and prints that ingest rate. Batches: `USAGE_BENCH_BATCH` (default 512) for the
//! back-fill, `USAGE_BENCH_LIVE_BATCH` (default 8,192, the most the gateway's writer takes at once when it is
//! behind, as it is at that rate) for live traffic.
//! Targets: every query at most 100 ms, ingest at least 20,000 records/s.
//!
//! `cargo bench -p tollgate-usage --bench dashboards`; `USAGE_BENCH_FLAVORS=sqlite` runs one database only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::time::{Duration, Instant};
use tollgate_domain::usage::{
    preset_range,
    rollup::{Grain, DAY_MS},
};
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{Dimension, Grouping, RecordScan, RollupQuery, Store};
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

/// A kind of /api/v1/usage page: its label, the scan and the cursor it starts after.
type RecordPage<'a> = (&'a str, RecordScan, Option<(i64, &'a str)>);

async fn bench(
    flavor: Flavor,
    records: u64,
    tenants: u32,
    batch: usize,
    live: u64,
    live_batch: usize,
) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store: Store = db.store().await.unwrap();
    let now = tollgate_store::now_millis();
    let spec = Spec {
        records,
        tenants,
        days: 30,
        per_second: None,
        batch,
        seed: 7,
        now,
    };
    println!("{flavor:?}: {records} records, {tenants} tenants, 30 days");
    let g = generate(&store, &spec, |_| {}).await.unwrap();
    println!(
        "  ingest, 30 days back-filled: {} records in {:.1} s = {:.0} records/s (batches of {batch}, rollups included)",
        g.inserted,
        g.elapsed.as_secs_f64(),
        g.per_second()
    );
    // What the retention task does every hour (and PostgreSQL's autovacuum after bulk writes anyway).
    let t = std::time::Instant::now();
    store.refresh_usage_statistics().await.unwrap();
    println!(
        "  planner statistics refreshed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let tenant = Some("gen-tenant-000".to_string());
    let team = "gen-team-000-0".to_string();
    // The portal's preset ranges (whole buckets ending with the current one), as (from, until).
    let range = |name: &str| {
        let (from, until) =
            preset_range(name, tollgate_domain::time::Millis(now)).expect("a preset range");
        (from.0, until.0)
    };
    let q = |(from, until): (i64, i64), tenant: Option<String>| RollupQuery {
        from,
        until,
        tenant_id: tenant,
        ..RollupQuery::default()
    };
    let by = |d: Option<Dimension>, every: Option<Grain>| Grouping {
        by: d,
        every,
        after: None,
        limit: Some(1_001),
    };
    let (month, week, day, hour) = (range("30d"), range("7d"), range("day"), range("hour"));
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
    // /api/v1/usage: keyset pages of raw records, newest first (100 per page, the API's default).
    let records = |tenant: Option<String>| RecordScan {
        until: i64::MAX,
        newest_first: true,
        tenant_id: tenant,
        ..RecordScan::default()
    };
    let middle = (now - 15 * DAY_MS, "~");
    let pages: [RecordPage<'_>; 6] = [
        ("/api/v1/usage: platform, newest page", records(None), None),
        (
            "/api/v1/usage: tenant, newest page",
            records(tenant.clone()),
            None,
        ),
        (
            "/api/v1/usage: tenant, a page 15 days back",
            records(tenant.clone()),
            Some(middle),
        ),
        (
            "/api/v1/usage: developer (own team), newest page",
            RecordScan {
                team_ids: Some(vec![team.clone()]),
                ..records(tenant.clone())
            },
            None,
        ),
        (
            "/api/v1/usage: one subscription, a page 15 days back",
            RecordScan {
                subscription_id: Some("gen-sub-0".into()),
                ..records(tenant.clone())
            },
            Some(middle),
        ),
        (
            "/api/v1/usage: one model in a tenant, newest page",
            RecordScan {
                model: Some("bge-m3".into()),
                ..records(tenant.clone())
            },
            None,
        ),
    ];
    for (label, scan, after) in &pages {
        time(label, || async {
            s.scan_usage(scan, *after, 101).await.unwrap()
        })
        .await;
    }
    // Live traffic: records stamped as the gateway would write them at 20,000 requests per second, ending now, on
    // top of what is there: the rate metering must sustain.
    let g = generate(
        &store,
        &Spec {
            records: live,
            per_second: Some(20_000),
            seed: 8,
            batch: live_batch,
            ..spec
        },
        |_| {},
    )
    .await
    .unwrap();
    println!(
        "  ingest, live traffic at 20,000/s: {} records in {:.1} s = {:.0} records/s (batches of {live_batch}, rollups included)",
        g.inserted,
        g.elapsed.as_secs_f64(),
        g.per_second()
    );
    store.close().await;
    db.cleanup().await.unwrap();
}

fn main() {
    let records = env("USAGE_BENCH_RECORDS", 200_000);
    let tenants = env("USAGE_BENCH_TENANTS", 50) as u32;
    let live = env("USAGE_BENCH_LIVE_RECORDS", 200_000);
    let batch = env("USAGE_BENCH_BATCH", 512) as usize;
    let live_batch = env("USAGE_BENCH_LIVE_BATCH", 8_192) as usize;
    let flavors = std::env::var("USAGE_BENCH_FLAVORS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for f in flavors.split(',') {
        let flavor = match f.trim() {
            "sqlite" => Flavor::Sqlite,
            "postgres" => Flavor::Postgres,
            other => panic!("unknown flavor {other}"),
        };
        rt.block_on(bench(flavor, records, tenants, batch, live, live_batch));
    }
}
