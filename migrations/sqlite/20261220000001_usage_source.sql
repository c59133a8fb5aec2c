-- Where a request came from: an API key ('key') or the portal's playground ('playground'), which has no key, so
-- key_id becomes nullable. SQLite cannot drop NOT NULL in place: the table is rebuilt (same columns, same
-- indexes), inside the migration's transaction.

CREATE TABLE usage_records_new (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    tenant_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    key_id TEXT,                         -- null when source is not 'key'
    model TEXT NOT NULL,
    replica TEXT NOT NULL DEFAULT '',
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    streamed INTEGER NOT NULL,
    client_disconnected INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT 'key'   -- key | playground
);
INSERT INTO usage_records_new (id, request_id, at, tenant_id, team_id, subscription_id, key_id, model, replica,
    endpoint, status, prompt_tokens, completion_tokens, latency_ms, ttft_ms, streamed, client_disconnected, source)
SELECT id, request_id, at, tenant_id, team_id, subscription_id, key_id, model, replica,
    endpoint, status, prompt_tokens, completion_tokens, latency_ms, ttft_ms, streamed, client_disconnected, 'key'
FROM usage_records;
DROP TABLE usage_records;
ALTER TABLE usage_records_new RENAME TO usage_records;
CREATE INDEX usage_records_subscription_at ON usage_records (subscription_id, at);
CREATE INDEX usage_records_tenant_at ON usage_records (tenant_id, at);
