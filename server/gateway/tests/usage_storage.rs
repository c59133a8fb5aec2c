//! Usage records in the database, on SQLite and PostgreSQL: batch inserts that skip ids already stored, filtered
//! and paged reads, and month-to-date totals per subscription.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{NewUsage, UsageQuery};

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
        usage("u1", "s1", "k1", "llama", 1_000, 10, 5),
        usage("u2", "s1", "k2", "llama", 2_000, 20, 0),
        usage("u3", "s2", "k3", "qwen", 3_000, 1, 1),
    ];
    assert_eq!(store.insert_usage_batch(&batch).await.unwrap(), 3);
    // A replayed batch (one old record, one new) inserts only the new one.
    let replay = [batch[0], usage("u4", "s1", "k1", "llama", 4_000, 7, 7)];
    assert_eq!(store.insert_usage_batch(&replay).await.unwrap(), 1);

    let (all, total) = store
        .list_usage(&UsageQuery {
            limit: 10,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["u4", "u3", "u2", "u1"],
        "newest first"
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

    let q = |f: fn(&mut UsageQuery)| {
        let mut q = UsageQuery {
            limit: 10,
            ..UsageQuery::default()
        };
        f(&mut q);
        q
    };
    let ids =
        |rows: Vec<tollgate_store::UsageRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .list_usage(&q(|q| q.subscription_id = Some("s1".into())))
            .await
            .unwrap()
            .0),
        ["u4", "u2", "u1"]
    );
    assert_eq!(
        ids(store
            .list_usage(&q(|q| q.key_id = Some("k1".into())))
            .await
            .unwrap()
            .0),
        ["u4", "u1"]
    );
    assert_eq!(
        ids(store
            .list_usage(&q(|q| q.model = Some("qwen".into())))
            .await
            .unwrap()
            .0),
        ["u3"]
    );
    assert_eq!(
        ids(store
            .list_usage(&q(|q| {
                q.from = Some(2_000);
                q.until = Some(4_000);
            }))
            .await
            .unwrap()
            .0),
        ["u3", "u2"]
    );
    assert!(store
        .list_usage(&q(|q| q.tenant_id = Some("other".into())))
        .await
        .unwrap()
        .0
        .is_empty());
    let (page, total) = store
        .list_usage(&UsageQuery {
            limit: 2,
            offset: 2,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (ids(page), total),
        (vec!["u2".to_string(), "u1".to_string()], 4)
    );

    let totals = store.usage_tokens_since(2_000).await.unwrap();
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
        .map(|(i, id)| usage(id, "s3", "k9", "big", 10_000 + i as i64, i as i64, 1))
        .collect();
    assert_eq!(store.insert_usage_batch(&big[..200]).await.unwrap(), 200);
    assert_eq!(store.insert_usage_batch(&big).await.unwrap(), 100);
    let s3 = |q: &mut UsageQuery| q.subscription_id = Some("s3".into());
    let (newest, total) = store.list_usage(&q(s3)).await.unwrap();
    assert_eq!(total, 300);
    let last = &newest[0];
    assert_eq!(
        (
            last.id.as_str(),
            last.at,
            last.prompt_tokens,
            last.completion_tokens,
            last.ttft_ms
        ),
        ("big299", 10_299, 299, 1, Some(3))
    );
    let totals = store.usage_tokens_since(10_000).await.unwrap();
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
