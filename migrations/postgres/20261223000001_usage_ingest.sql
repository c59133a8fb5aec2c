-- Faster usage ingest (issue 16): every rollup row a batch creates was written to four B-trees, its primary key and
-- three indexes. The team and subscription indexes go: every dashboard query that filters by team or subscription
-- also names the tenant (the scope of the reader), which the primary key (tenant_id, bucket, ...) already serves;
-- platform-wide reads keep the bucket index. Keep this file and its twin in step.
--
-- PostgreSQL only: rollup rows are updated in place many times (each batch adds to its minute, hour and day), and an
-- update that changes no indexed column and finds room on its page is a heap-only tuple, which touches no index.
-- Leaving a third of each page free gives it that room (pages written from now on).

-- Raw records are read a keyset page at a time, newest first, in (at, id) order: with id in the index the order
-- comes from the index itself, and a page is the next 100 entries, not a sort of every record in the range.
DROP INDEX usage_records_tenant_at;
DROP INDEX usage_records_subscription_at;
DROP INDEX usage_records_at;
CREATE INDEX usage_records_tenant_at ON usage_records (tenant_id, at, id);
CREATE INDEX usage_records_subscription_at ON usage_records (subscription_id, at, id);
CREATE INDEX usage_records_at ON usage_records (at, id);

DROP INDEX usage_rollup_minute_team;
DROP INDEX usage_rollup_minute_subscription;
DROP INDEX usage_rollup_hour_team;
DROP INDEX usage_rollup_hour_subscription;
DROP INDEX usage_rollup_day_team;
DROP INDEX usage_rollup_day_subscription;

ALTER TABLE usage_rollup_minute SET (fillfactor = 70);
ALTER TABLE usage_rollup_hour SET (fillfactor = 70);
ALTER TABLE usage_rollup_day SET (fillfactor = 70);
