//! WHERE clauses made of only the filters a list query was given. An always-bound `($1 = '' OR col = $1)`
//! keeps the database from using the column's index; leaving absent filters out of the SQL text lets it.

use sqlx::{
    any::AnyArguments,
    query::{QueryAs, QueryScalar},
    Any,
};

/// A value bound to one condition's placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// Conditions joined by AND, each `<lhs> $N` with its placeholder numbered in the order it was added, and the
/// values to bind in that same order. The list query and its COUNT(*) twin render and bind the same filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `<lhs> $N` (e.g. `lhs = "tenant_id ="`) when `value` is present and not empty.
    pub(crate) fn text(self, lhs: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) if !v.is_empty() => self.push(lhs, Value::Text(v.to_string())),
            _ => self,
        }
    }

    /// Adds `<lhs> $N` (e.g. `lhs = "at >="`) when `value` is present.
    pub(crate) fn int(self, lhs: &str, value: Option<i64>) -> Self {
        match value {
            Some(v) => self.push(lhs, Value::Int(v)),
            None => self,
        }
    }

    fn push(mut self, lhs: &str, value: Value) -> Self {
        self.values.push(value);
        self.conditions
            .push(format!("{lhs} ${}", self.values.len()));
        self
    }

    /// `WHERE a = $1 AND b >= $2`, or nothing when no filter was given.
    pub(crate) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The number of the first placeholder after the filter's own (for LIMIT and OFFSET).
    pub(crate) fn next_placeholder(&self) -> usize {
        self.values.len() + 1
    }

    /// Binds the filter's values, in placeholder order, to a query whose text holds `where_clause()`. Bind
    /// anything else (LIMIT, OFFSET) after this, at `next_placeholder()` onwards.
    pub(crate) fn bind<'q, Q: Bind<'q>>(&'q self, query: Q) -> Q {
        self.values.iter().fold(query, Bind::bind_value)
    }
}

impl Filter {
    /// One page of `SELECT {columns} FROM {table}` under this filter, newest first (`at`, then `id`), and how many
    /// rows match in all: the list query and its COUNT(*) twin, rendered and bound alike.
    pub(crate) async fn page<O>(
        &self,
        pool: &sqlx::AnyPool,
        table: &str,
        columns: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<O>, i64), sqlx::Error>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let where_clause = self.where_clause();
        let n = self.next_placeholder();
        let list = format!(
            "SELECT {columns} FROM {table} {where_clause} ORDER BY at DESC, id DESC LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let rows = self
            .bind(sqlx::query_as(&list))
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
        let count = format!("SELECT COUNT(*) FROM {table} {where_clause}");
        let total = self
            .bind(sqlx::query_scalar(&count))
            .fetch_one(pool)
            .await?;
        Ok((rows, total))
    }
}

/// The runtime query types a filter binds to (`query_as` and `query_scalar` on the Any driver).
pub(crate) trait Bind<'q>: Sized {
    fn bind_value(self, value: &'q Value) -> Self;
}

impl<'q, O> Bind<'q> for QueryAs<'q, Any, O, AnyArguments<'q>> {
    fn bind_value(self, value: &'q Value) -> Self {
        match value {
            Value::Text(v) => self.bind(v.as_str()),
            Value::Int(v) => self.bind(*v),
        }
    }
}

impl<'q, O> Bind<'q> for QueryScalar<'q, Any, O, AnyArguments<'q>> {
    fn bind_value(self, value: &'q Value) -> Self {
        match value {
            Value::Text(v) => self.bind(v.as_str()),
            Value::Int(v) => self.bind(*v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        testing::{Flavor, TestDatabase},
        NewAuditEvent,
    };

    #[test]
    fn no_filter_renders_no_where_clause() {
        let f = Filter::new()
            .text("tenant_id =", None)
            .text("action =", Some(""))
            .int("at >=", None);
        assert_eq!(f.where_clause(), "");
        assert_eq!(f.next_placeholder(), 1);
        assert_eq!(f, Filter::new());
    }

    #[test]
    fn present_filters_are_numbered_in_order_and_absent_ones_skipped() {
        let f = Filter::new()
            .text("tenant_id =", Some("t1"))
            .text("team_id =", None)
            .text("model =", Some(""))
            .text("actor_email LIKE", Some("%ann%"))
            .int("at >=", Some(5))
            .int("at <", None)
            .int("status =", Some(-1));
        assert_eq!(
            f.where_clause(),
            "WHERE tenant_id = $1 AND actor_email LIKE $2 AND at >= $3 AND status = $4"
        );
        assert_eq!(f.next_placeholder(), 5);
        assert_eq!(
            f.values,
            vec![
                Value::Text("t1".into()),
                Value::Text("%ann%".into()),
                Value::Int(5),
                Value::Int(-1),
            ]
        );
    }

    /// Text and integer values bind through the Any driver on both databases, with trailing LIMIT and OFFSET.
    async fn binds_on(flavor: Flavor) {
        let db = TestDatabase::new(flavor)
            .await
            .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
        let store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
        for action in ["a.one", "a.two", "a.two"] {
            store
                .record_audit(NewAuditEvent {
                    tenant_id: Some("t1"),
                    action,
                    target_type: "x",
                    target_id: "y",
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let f = Filter::new()
            .text("tenant_id =", Some("t1"))
            .text("action =", Some("a.two"))
            .int("at >=", Some(0))
            .int("at <", Some(i64::MAX));
        let total: i64 = f
            .bind(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM audit_events {}",
                f.where_clause()
            )))
            .fetch_one(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
        assert_eq!(total, 2);
        let n = f.next_placeholder();
        let ids: Vec<(String,)> = f
            .bind(sqlx::query_as(&format!(
                "SELECT id FROM audit_events {} ORDER BY id LIMIT ${n} OFFSET ${}",
                f.where_clause(),
                n + 1
            )))
            .bind(5_i64)
            .bind(1_i64)
            .fetch_all(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
        assert_eq!(ids.len(), 1);
        let all: i64 = Filter::new()
            .bind(sqlx::query_scalar("SELECT COUNT(*) FROM audit_events"))
            .fetch_one(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
        assert_eq!(all, 3);
        db.cleanup().await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn binds_on_sqlite() {
        binds_on(Flavor::Sqlite).await;
    }

    #[tokio::test]
    async fn binds_on_postgres() {
        binds_on(Flavor::Postgres).await;
    }
}
