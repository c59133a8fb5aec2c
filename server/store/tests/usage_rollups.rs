//! Rollups equal the sums of the raw records, whatever arrives: random batches in random order, replays of whole
//! batches, one id twice in a batch, records hours late. Property-based (proptest), on SQLite and PostgreSQL: each
//! case writes under a tenant of its own, then compares every grain grouped by every dimension, and random ranges
//! read through `rollup::cover`, against the records the store kept, summed here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use tollgate_domain::usage::rollup::{Grain, Sums, DAY_MS, MINUTE_MS};
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{Dimension, Grouping, NewUsage, RecordScan, RollupQuery, Store, UsageRow};

/// A day boundary, so ranges cross days, hours and minutes.
const BASE: i64 = 20_000 * DAY_MS;

#[derive(Debug, Clone)]
struct Rec {
    team: u8,
    sub: u8,
    key: Option<u8>,
    model: u8,
    status: u16,
    prompt: i64,
    completion: i64,
    latency: i64,
    ttft: Option<i64>,
    at: i64,
}

fn record() -> impl Strategy<Value = Rec> {
    (
        (
            0u8..2,
            0u8..2,
            proptest::option::weighted(0.8, 0u8..3),
            0u8..2,
        ),
        prop::sample::select(vec![200u16, 200, 200, 400, 429, 499, 500, 503]),
        (
            0i64..2_000,
            0i64..2_000,
            0i64..60_000,
            proptest::option::of(0i64..30_000),
        ),
        // Three days and a bit around BASE, to the millisecond.
        (-DAY_MS..2 * DAY_MS + 7 * MINUTE_MS),
    )
        .prop_map(
            |((team, sub, key, model), status, (prompt, completion, latency, ttft), at)| Rec {
                team,
                sub,
                key,
                model,
                status,
                prompt,
                completion,
                latency,
                ttft,
                at: BASE + at,
            },
        )
}

/// Records, the batches they arrive in (indices into the records) and ranges to read.
type Scenario = (Vec<Rec>, Vec<Vec<usize>>, Vec<(i64, i64)>);

/// Records, then batches of indices into them: an index may repeat inside a batch (a duplicate), appear in
/// several batches (a replay, or a record late behind newer ones) or in none.
fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec(record(), 1..120).prop_flat_map(|recs| {
        let n = recs.len();
        let batch = prop::collection::vec(0..n, 0..90);
        let range = (-DAY_MS..3 * DAY_MS, 0i64..2 * DAY_MS)
            .prop_map(|(from, len)| (BASE + from, BASE + from + len));
        (
            Just(recs),
            prop::collection::vec(batch, 1..6),
            prop::collection::vec(range, 1..4),
        )
    })
}

fn key_of(r: &UsageRow, d: Dimension) -> String {
    match d {
        Dimension::Tenant => r.tenant_id.clone(),
        Dimension::Team => r.team_id.clone(),
        Dimension::Subscription => r.subscription_id.clone(),
        Dimension::Key => r.key_id.clone().unwrap_or_default(),
        Dimension::Model => r.model.clone(),
        Dimension::Source => r.source.clone(),
    }
}

fn add(s: &mut Sums, r: &UsageRow) {
    let u = |v: i64| u64::try_from(v).unwrap();
    s.record(
        u16::try_from(r.status).unwrap(),
        &r.refusal,
        u(r.prompt_tokens),
        u(r.completion_tokens),
        u(r.latency_ms),
        r.ttft_ms.map(u),
    );
}

const DIMENSIONS: [Dimension; 6] = [
    Dimension::Tenant,
    Dimension::Team,
    Dimension::Subscription,
    Dimension::Key,
    Dimension::Model,
    Dimension::Source,
];

async fn one_case(store: &Store, tenant: &str, (recs, batches, ranges): Scenario) {
    let ids: Vec<String> = (0..recs.len()).map(|i| format!("{tenant}-r{i}")).collect();
    let names = |p: &str, n: u8| format!("{p}{n}");
    let text: Vec<[String; 4]> = recs
        .iter()
        .map(|r| {
            [
                names("team", r.team),
                names("sub", r.sub),
                r.key.map(|k| names("key", k)).unwrap_or_default(),
                names("model", r.model),
            ]
        })
        .collect();
    let mut stored = BTreeSet::new();
    for batch in &batches {
        let rows: Vec<NewUsage<'_>> = batch
            .iter()
            .map(|&i| {
                let (r, t) = (&recs[i], &text[i]);
                NewUsage {
                    id: &ids[i],
                    request_id: &ids[i],
                    at: r.at,
                    tenant_id: tenant,
                    team_id: &t[0],
                    subscription_id: &t[1],
                    key_id: r.key.map(|_| t[2].as_str()),
                    model: &t[3],
                    replica: "",
                    endpoint: "chat",
                    status: i64::from(r.status),
                    prompt_tokens: r.prompt,
                    completion_tokens: r.completion,
                    latency_ms: r.latency,
                    ttft_ms: r.ttft,
                    streamed: r.ttft.is_some(),
                    client_disconnected: false,
                    source: if r.key.is_some() { "key" } else { "playground" },
                    // Some refusals by the monthly quota, which the rollups count apart.
                    refusal: match (r.status, r.prompt % 2) {
                        (429, 0) => "monthly_tokens",
                        (429, _) => "requests",
                        _ => "",
                    },
                }
            })
            .collect();
        let new: BTreeSet<usize> = batch
            .iter()
            .copied()
            .filter(|i| !stored.contains(i))
            .collect();
        let inserted = store.insert_usage_batch(&rows).await.unwrap();
        assert_eq!(
            inserted,
            new.len() as u64,
            "only records not stored before are new"
        );
        stored.extend(new);
    }
    let raw = store
        .scan_usage(
            &RecordScan {
                until: i64::MAX,
                tenant_id: Some(tenant.into()),
                ..RecordScan::default()
            },
            None,
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(raw.len(), stored.len(), "each record stored once");

    let everything = (BASE - 2 * DAY_MS, BASE + 4 * DAY_MS);
    for grain in Grain::ALL {
        for by in DIMENSIONS {
            let mut want: BTreeMap<(i64, String), Sums> = BTreeMap::new();
            for r in &raw {
                add(
                    want.entry((grain.floor(r.at), key_of(r, by))).or_default(),
                    r,
                );
            }
            let got: BTreeMap<(i64, String), Sums> = store
                .sum_rollups(
                    &RollupQuery {
                        from: everything.0,
                        until: everything.1,
                        tenant_id: Some(tenant.into()),
                        ..RollupQuery::default()
                    },
                    &Grouping {
                        by: Some(by),
                        every: Some(grain),
                        ..Grouping::default()
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .map(|row| ((row.bucket, row.value), row.sums))
                .collect();
            assert_eq!(got, want, "{grain:?} by {by:?}");
        }
    }
    // Any range, read through whole days, hours and minutes, sums the records of its minutes.
    for (from, until) in ranges {
        let (a, b) = (Grain::Minute.floor(from), Grain::Minute.ceil(until));
        let mut want: BTreeMap<String, Sums> = BTreeMap::new();
        for r in raw.iter().filter(|r| r.at >= a && r.at < b) {
            add(want.entry(r.model.clone()).or_default(), r);
        }
        let got: BTreeMap<String, Sums> = store
            .sum_rollups(
                &RollupQuery {
                    from,
                    until,
                    tenant_id: Some(tenant.into()),
                    ..RollupQuery::default()
                },
                &Grouping {
                    by: Some(Dimension::Model),
                    ..Grouping::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.value, row.sums))
            .collect();
        assert_eq!(got, want, "range {from}..{until}");
    }
}

fn rollups_equal_raw_sums(flavor: Flavor) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::new(flavor)).unwrap();
    let store = rt.block_on(db.store()).unwrap();
    // Each case costs a few dozen queries; PROPTEST_CASES runs more.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = AtomicUsize::new(0);
    let result = runner.run(&scenario(), |s| {
        let tenant = format!("tp{}", n.fetch_add(1, Ordering::SeqCst));
        rt.block_on(one_case(&store, &tenant, s));
        Ok(())
    });
    rt.block_on(store.close());
    rt.block_on(db.cleanup()).unwrap();
    if let Err(e) = result {
        panic!("{flavor:?}: {e}");
    }
}

#[test]
fn rollups_equal_raw_sums_on_sqlite() {
    rollups_equal_raw_sums(Flavor::Sqlite);
}

#[test]
fn rollups_equal_raw_sums_on_postgres() {
    rollups_equal_raw_sums(Flavor::Postgres);
}

/// Retention deletes old records in bounded batches and keeps the rollups.
#[tokio::test]
async fn pruning_deletes_old_records_in_batches_and_keeps_rollups() {
    for flavor in [Flavor::Sqlite, Flavor::Postgres] {
        let db = TestDatabase::new(flavor).await.unwrap();
        let store = db.store().await.unwrap();
        let ids: Vec<String> = (0..25).map(|i| format!("old{i}")).collect();
        let rows: Vec<NewUsage<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| NewUsage {
                id,
                request_id: id,
                at: BASE + i as i64 * MINUTE_MS,
                tenant_id: "t",
                team_id: "team",
                subscription_id: "sub",
                key_id: Some("k"),
                model: "m",
                replica: "",
                endpoint: "chat",
                status: 200,
                prompt_tokens: 1,
                completion_tokens: 1,
                latency_ms: 10,
                ttft_ms: None,
                streamed: false,
                client_disconnected: false,
                source: "key",
                refusal: "",
            })
            .collect();
        store.insert_usage_batch(&rows).await.unwrap();
        let cut = BASE + 20 * MINUTE_MS;
        assert_eq!(store.prune_usage_records(cut, 8).await.unwrap(), 8);
        assert_eq!(store.prune_usage_records(cut, 8).await.unwrap(), 8);
        assert_eq!(store.prune_usage_records(cut, 8).await.unwrap(), 4);
        assert_eq!(store.prune_usage_records(cut, 8).await.unwrap(), 0);
        let left = store
            .scan_usage(
                &RecordScan {
                    until: i64::MAX,
                    ..RecordScan::default()
                },
                None,
                100,
            )
            .await
            .unwrap();
        assert_eq!(left.len(), 5);
        assert!(left.iter().all(|r| r.at >= cut), "{flavor:?}");
        let rolled = store
            .sum_rollups(
                &RollupQuery {
                    from: BASE,
                    until: BASE + DAY_MS,
                    ..RollupQuery::default()
                },
                &Grouping::default(),
            )
            .await
            .unwrap();
        assert_eq!(rolled.len(), 1);
        assert_eq!(rolled[0].sums.requests, 25, "{flavor:?}: rollups kept");
        store.close().await;
        db.cleanup().await.unwrap();
    }
}
