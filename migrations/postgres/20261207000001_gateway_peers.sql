-- Gateway replicas' heartbeats: each server writes its row every few seconds and counts the rows written recently,
-- which tells every replica how many share the rate limits (they split them while Redis is unreachable). Rows of
-- replicas gone for an hour are deleted by the heartbeat itself. Keep this file and its twin in step.

CREATE TABLE gateway_peers (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL              -- epoch milliseconds of the last heartbeat
);
