//! Usage rollups: the sums per minute, hour and day that dashboards read instead of raw records. Written by
//! `insert_usage_batch` in its own transaction from the records that insert added (so replays and duplicates never
//! count twice), read back summed over any range that `rollup::cover` cuts into whole days, hours and minutes.

use super::NewUsage;
use crate::{Backend, Result, Store};
use sqlx::{any::AnyRow, Row};
use std::collections::BTreeMap;
use tollgate_domain::usage::rollup::{cover_up_to, Grain, Histogram, Span, Sums, BUCKETS};

/// The table of one grain.
fn table(grain: Grain) -> &'static str {
    match grain {
        Grain::Minute => "usage_rollup_minute",
        Grain::Hour => "usage_rollup_hour",
        Grain::Day => "usage_rollup_day",
    }
}

/// The dimensions of a rollup row, in key order.
const DIMENSIONS: &str = "tenant_id, team_id, subscription_id, key_id, model, source";

/// The summed columns, in the order `Sums` is bound and read.
fn sum_columns() -> Vec<String> {
    let mut cols: Vec<String> = [
        "requests",
        "errors",
        "rate_limited",
        "quota_refused",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "ttft_ms",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    cols.extend((0..BUCKETS).map(|i| format!("latency_b{i}")));
    cols.extend((0..BUCKETS).map(|i| format!("ttft_b{i}")));
    cols
}

/// One rollup row's key: the bucket and the dimensions (`key_id` is '' without a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a> {
    bucket: i64,
    tenant_id: &'a str,
    team_id: &'a str,
    subscription_id: &'a str,
    key_id: &'a str,
    model: &'a str,
    source: &'a str,
}

/// Rows per upsert statement: 39 parameters each.
const ROWS_PER_UPSERT: usize = 32;

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `INSERT ... VALUES (...), ... ON CONFLICT (key) DO UPDATE SET col = table.col + excluded.col, ...`.
fn upsert_sql(backend: Backend, grain: Grain, rows: usize) -> String {
    use std::fmt::Write;
    let table = table(grain);
    let sums = sum_columns();
    let per_row = 7 + sums.len();
    let mut sql = format!(
        "INSERT INTO {table} (bucket, {DIMENSIONS}, {}) VALUES ",
        sums.join(", ")
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..per_row {
            let sep = if column == 0 { "" } else { ", " };
            let _ = match backend {
                Backend::Postgres => write!(sql, "{sep}${}", row * per_row + column + 1),
                Backend::Sqlite => write!(sql, "{sep}?"),
            };
        }
        sql.push(')');
    }
    let _ = write!(
        sql,
        " ON CONFLICT (tenant_id, bucket, team_id, subscription_id, key_id, model, source) DO UPDATE SET {}",
        sums.iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    sql
}

/// Adds `fresh` (records just inserted, each once) to the three rollup tables inside `tx`.
pub(super) async fn add(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    fresh: &[&NewUsage<'_>],
) -> Result<()> {
    for grain in Grain::ALL {
        let mut sums: BTreeMap<Key<'_>, Sums> = BTreeMap::new();
        for r in fresh {
            let key = Key {
                bucket: grain.floor(r.at),
                tenant_id: r.tenant_id,
                team_id: r.team_id,
                subscription_id: r.subscription_id,
                key_id: r.key_id.unwrap_or(""),
                model: r.model,
                source: r.source,
            };
            sums.entry(key).or_default().record(
                u16::try_from(r.status).unwrap_or(u16::MAX),
                r.refusal,
                unsigned(r.prompt_tokens),
                unsigned(r.completion_tokens),
                unsigned(r.latency_ms),
                r.ttft_ms.map(unsigned),
            );
        }
        let rows: Vec<_> = sums.into_iter().collect();
        for chunk in rows.chunks(ROWS_PER_UPSERT) {
            let sql = upsert_sql(backend, grain, chunk.len());
            let mut q = sqlx::query(&sql);
            for (k, s) in chunk {
                q = q
                    .bind(k.bucket)
                    .bind(k.tenant_id)
                    .bind(k.team_id)
                    .bind(k.subscription_id)
                    .bind(k.key_id)
                    .bind(k.model)
                    .bind(k.source);
                for v in [
                    s.requests,
                    s.errors,
                    s.rate_limited,
                    s.quota_refused,
                    s.prompt_tokens,
                    s.completion_tokens,
                    s.latency_ms,
                    s.ttft_ms,
                ]
                .into_iter()
                .chain(s.latency.0)
                .chain(s.ttft.0)
                {
                    q = q.bind(clamp(v));
                }
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// A dimension rollups can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Tenant,
    Team,
    Subscription,
    Key,
    Model,
    Source,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Tenant => "tenant_id",
            Dimension::Team => "team_id",
            Dimension::Subscription => "subscription_id",
            Dimension::Key => "key_id",
            Dimension::Model => "model",
            Dimension::Source => "source",
        }
    }
}

/// Which rollups to sum: a time range (rounded down to minutes) and filters; absent filters match everything.
/// `team_ids: Some(list)` restricts to those teams (a developer's own; an empty list matches nothing).
#[derive(Debug, Clone, Default)]
pub struct RollupQuery {
    pub from: i64,
    pub until: i64,
    pub tenant_id: Option<String>,
    pub team_ids: Option<Vec<String>>,
    pub team_id: Option<String>,
    pub subscription_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub source: Option<String>,
}

/// How to group the sums: by a dimension, by time (buckets of a grain), both or neither; and, for keyset paging,
/// only groups after a (bucket, value) cursor, at most `limit` of them.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub by: Option<Dimension>,
    pub every: Option<Grain>,
    /// Groups strictly after this (bucket, value), in (bucket, value) order.
    pub after: Option<(i64, String)>,
    pub limit: Option<i64>,
}

/// One group's sums: its bucket (0 when not grouped by time) and dimension value ('' when not grouped by one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub bucket: i64,
    pub value: String,
    pub sums: Sums,
}

/// Placeholders numbered in the order values are added.
#[derive(Default)]
struct Params {
    values: Vec<Param>,
}

enum Param {
    Text(String),
    Int(i64),
}

impl Params {
    fn text(&mut self, v: &str) -> String {
        self.values.push(Param::Text(v.to_string()));
        format!("${}", self.values.len())
    }
    fn int(&mut self, v: i64) -> String {
        self.values.push(Param::Int(v));
        format!("${}", self.values.len())
    }
}

/// The WHERE conditions of one arm: the span's buckets and the query's filters.
fn conditions(q: &RollupQuery, span: Span, p: &mut Params) -> Vec<String> {
    let mut cond = vec![
        format!("bucket >= {}", p.int(span.from)),
        format!("bucket < {}", p.int(span.until)),
    ];
    for (column, v) in [
        ("tenant_id", &q.tenant_id),
        ("team_id", &q.team_id),
        ("subscription_id", &q.subscription_id),
        ("key_id", &q.key_id),
        ("model", &q.model),
        ("source", &q.source),
    ] {
        if let Some(v) = v.as_deref() {
            cond.push(format!("{column} = {}", p.text(v)));
        }
    }
    if let Some(teams) = &q.team_ids {
        let list: Vec<String> = teams.iter().map(|t| p.text(t)).collect();
        cond.push(format!("team_id IN ({})", list.join(", ")));
    }
    cond
}

impl Params {
    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for v in &self.values {
            query = match v {
                Param::Text(t) => query.bind(t.as_str()),
                Param::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

impl Store {
    /// How many distinct values of `counted` (active teams, keys, tenants...) have usage in each bucket of
    /// `every` over `q`'s range, in bucket order: (bucket start, count). Buckets without usage are left out.
    pub async fn count_per_bucket(
        &self,
        q: &RollupQuery,
        every: Grain,
        counted: Dimension,
    ) -> Result<Vec<(i64, i64)>> {
        if q.team_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let mut p = Params::default();
        let column = counted.column();
        let ms = every.millis();
        let arms: Vec<String> = cover_up_to(q.from, q.until, every)
            .into_iter()
            .map(|span| {
                let cond = conditions(q, span, &mut p);
                format!(
                    "SELECT (bucket / {ms}) * {ms} AS b, {column} AS v FROM {} WHERE {}",
                    table(span.grain),
                    cond.join(" AND ")
                )
            })
            .collect();
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT b, CAST(COUNT(DISTINCT v) AS BIGINT) FROM ({}) arms GROUP BY b ORDER BY b",
            arms.join(" UNION ALL ")
        );
        let rows = p.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Sums of the rollups matching `q`, grouped as `g` says, in (bucket, value) order. Never reads raw records.
    pub async fn sum_rollups(&self, q: &RollupQuery, g: &Grouping) -> Result<Vec<RollupRow>> {
        if q.team_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let sums = sum_columns();
        let mut p = Params::default();
        let value = g.by.map_or("''", Dimension::column);
        let mut arms = Vec::new();
        for span in cover_up_to(q.from, q.until, g.every.unwrap_or(Grain::Day)) {
            let mut cond = conditions(q, span, &mut p);
            if let (Some((bucket, _)), Some(every)) = (&g.after, g.every) {
                // Whole buckets before the cursor's cannot follow it.
                cond.push(format!("bucket >= {}", p.int(every.floor(*bucket))));
            } else if let (Some((_, after)), None) = (&g.after, g.every) {
                if g.by.is_some() {
                    cond.push(format!("{value} > {}", p.text(after)));
                }
            }
            arms.push(format!(
                "SELECT bucket, {value} AS value, {} FROM {} WHERE {}",
                sums.join(", "),
                table(span.grain),
                cond.join(" AND ")
            ));
        }
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        // A constant in GROUP BY would be read as a column position: group by time only when asked.
        let (bucket, group) = match g.every {
            Some(every) => {
                let ms = every.millis();
                let b = format!("(bucket / {ms}) * {ms}");
                (b.clone(), format!("{b}, value"))
            }
            None => ("CAST(0 AS BIGINT)".to_string(), "value".to_string()),
        };
        // PostgreSQL's SUM of BIGINT is NUMERIC, which the Any driver cannot decode: cast each back.
        let summed: Vec<String> = sums
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
            .collect();
        let mut sql = format!(
            "SELECT * FROM (SELECT {bucket} AS b, value AS v, {} FROM ({}) arms GROUP BY {group}) grouped",
            summed.join(", "),
            arms.join(" UNION ALL ")
        );
        if let Some((b, v)) = &g.after {
            sql.push_str(&format!(
                " WHERE b > {} OR (b = {} AND v > {})",
                p.int(*b),
                p.int(*b),
                p.text(v)
            ));
        }
        sql.push_str(" ORDER BY b, v");
        if let Some(limit) = g.limit {
            sql.push_str(&format!(" LIMIT {}", p.int(limit)));
        }
        let rows = p.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        rows.iter().map(row_sums).collect()
    }
}

fn row_sums(row: &AnyRow) -> Result<RollupRow> {
    let get = |i: usize| -> Result<u64> { Ok(unsigned(row.try_get::<i64, _>(i)?)) };
    let mut latency = Histogram::default();
    let mut ttft = Histogram::default();
    for i in 0..BUCKETS {
        latency.0[i] = get(10 + i)?;
        ttft.0[i] = get(10 + BUCKETS + i)?;
    }
    Ok(RollupRow {
        bucket: row.try_get::<i64, _>(0)?,
        value: row.try_get::<String, _>(1)?,
        sums: Sums {
            requests: get(2)?,
            errors: get(3)?,
            rate_limited: get(4)?,
            quota_refused: get(5)?,
            prompt_tokens: get(6)?,
            completion_tokens: get(7)?,
            latency_ms: get(8)?,
            ttft_ms: get(9)?,
            latency,
            ttft,
        },
    })
}
