//! Usage records in the database, on SQLite and PostgreSQL: batch inserts that skip ids already stored, filtered
//! and paged reads, and month-to-date totals per subscription (from the rollups).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{NewUsage, RecordScan, Store, UsageRow};

/// Month-to-date totals come from per-minute rollups, so the records here sit in minutes of their own.
const MINUTE: i64 = 60_000;

fn usage<'a>(
    id: &'a str,
    sub: &'a str,
    key: &'a str,
    model: &'a str,
    at: i64,
    p: i64,
    c: i64,
) -> NewUsage<'a> {
    NewUsage {
        id,
        request_id: id,
        at,
        tenant_id: "tnt",
        team_id: "team",
        subscription_id: sub,
        key_id: Some(key),
        model,
        replica: "http://r:1",
        endpoint: "chat",
        status: 200,
        prompt_tokens: p,
        completion_tokens: c,
        latency_ms: 12,
        ttft_ms: if c > 0 { Some(3) } else { None },
        streamed: c > 0,
        client_disconnected: false,
        source: "key",
        refusal: "",
    }
}

/// Every record `scan` reads newest first, walked in pages of `per_page` through the keyset cursor.
async fn newest_first(store: &Store, scan: RecordScan, per_page: i64) -> Vec<UsageRow> {
    let scan = RecordScan {
        newest_first: true,
        until: if scan.until == 0 {
            i64::MAX
        } else {
            scan.until
        },
        ..scan
    };
    let mut all: Vec<UsageRow> = Vec::new();
    loop {
        let after = all.last().map(|r| (r.at, r.id.as_str()));
        let page = store.scan_usage(&scan, after, per_page).await.unwrap();
        let last = (page.len() as i64) < per_page;
        all.extend(page);
        if last {
            return all;
        }
    }
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor)
        .await
        .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    let store = db
        .store()
        .await
        .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    let batch = [
        usage("u1", "s1", "k1", "llama", MINUTE, 10, 5),
        usage("u2", "s1", "k2", "llama", 2 * MINUTE, 20, 0),
        usage("u3", "s2", "k3", "qwen", 3 * MINUTE, 1, 1),
    ];
    assert_eq!(store.insert_usage_batch(&batch).await.unwrap(), 3);
    // A replayed batch (one old record, one new) inserts only the new one.
    let replay = [batch[0], usage("u4", "s1", "k1", "llama", 4 * MINUTE, 7, 7)];
    assert_eq!(store.insert_usage_batch(&replay).await.unwrap(), 1);

    let all = newest_first(&store, RecordScan::default(), 10).await;
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["u4", "u3", "u2", "u1"],
        "newest first"
    );
    assert_eq!(
        newest_first(&store, RecordScan::default(), 1).await,
        all,
        "pages of one walk the same records in the same order"
    );
    let u1 = all.iter().find(|r| r.id == "u1").unwrap();
    assert_eq!(
        (
            u1.prompt_tokens,
            u1.completion_tokens,
            u1.ttft_ms,
            u1.streamed,
            u1.client_disconnected
        ),
        (10, 5, Some(3), 1, 0)
    );
    assert_eq!(all.iter().find(|r| r.id == "u2").unwrap().ttft_ms, None);

    let ids = |rows: Vec<UsageRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let scan = |f: fn(&mut RecordScan)| {
        let mut q = RecordScan::default();
        f(&mut q);
        q
    };
    for (filter, expected) in [
        (
            scan(|q| q.subscription_id = Some("s1".into())),
            vec!["u4", "u2", "u1"],
        ),
        (scan(|q| q.key_id = Some("k1".into())), vec!["u4", "u1"]),
        (
            scan(|q| {
                q.tenant_id = Some("tnt".into());
                q.subscription_id = Some("s1".into());
            }),
            vec!["u4", "u2", "u1"],
        ),
        (
            scan(|q| {
                q.tenant_id = Some("other".into());
                q.subscription_id = Some("s1".into());
            }),
            vec![],
        ),
        (scan(|q| q.model = Some("qwen".into())), vec!["u3"]),
        (
            scan(|q| {
                q.from = 2 * MINUTE;
                q.until = 4 * MINUTE;
            }),
            vec!["u3", "u2"],
        ),
        (scan(|q| q.tenant_id = Some("other".into())), vec![]),
        (scan(|q| q.team_ids = Some(vec![])), vec![]),
        (
            scan(|q| q.team_ids = Some(vec!["team".into()])),
            vec!["u4", "u3", "u2", "u1"],
        ),
    ] {
        assert_eq!(
            ids(newest_first(&store, filter.clone(), 2).await),
            expected,
            "{filter:?}"
        );
    }
    // Oldest first (the CSV export's order) after a cursor.
    let oldest = store
        .scan_usage(
            &RecordScan {
                until: i64::MAX,
                ..RecordScan::default()
            },
            Some((MINUTE, "u1")),
            2,
        )
        .await
        .unwrap();
    assert_eq!(ids(oldest), ["u2", "u3"]);

    let totals = store.usage_tokens_since(2 * MINUTE).await.unwrap();
    assert_eq!(
        totals,
        vec![("s1".to_string(), 20 + 14), ("s2".to_string(), 2)]
    );

    // A batch larger than one INSERT statement takes (several multi-row statements), replayed in part with new
    // records between old ones: every record is stored once, and each column lands where it belongs.
    let ids: Vec<String> = (0..300).map(|i| format!("big{i:03}")).collect();
    let big: Vec<NewUsage> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| usage(id, "s3", "k9", "big", 10 * MINUTE + i as i64, i as i64, 1))
        .collect();
    assert_eq!(store.insert_usage_batch(&big[..200]).await.unwrap(), 200);
    assert_eq!(store.insert_usage_batch(&big).await.unwrap(), 100);
    // With the planner's statistics fresh (as the retention task keeps them), the same reads give the same rows.
    store.refresh_usage_statistics().await.unwrap();
    let newest = newest_first(&store, scan(|q| q.subscription_id = Some("s3".into())), 128).await;
    assert_eq!(newest.len(), 300);
    let last = &newest[0];
    assert_eq!(
        (
            last.id.as_str(),
            last.at,
            last.prompt_tokens,
            last.completion_tokens,
            last.ttft_ms
        ),
        ("big299", 10 * MINUTE + 299, 299, 1, Some(3))
    );
    let totals = store.usage_tokens_since(10 * MINUTE).await.unwrap();
    assert_eq!(
        totals,
        vec![("s3".to_string(), (0..300).sum::<i64>() + 300)]
    );

    store.close().await;
    db.cleanup()
        .await
        .unwrap_or_else(|e| panic!("cleanup: {e}"));
}

#[tokio::test]
async fn usage_storage_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn usage_storage_on_postgres() {
    suite(Flavor::Postgres).await;
}
