-- Usage rollups (issue 16): requests, errors, tokens and latency summed per minute, hour and day for each tenant,
-- team, subscription, key, model and source, so dashboards read sums instead of millions of records. Written in the
-- transaction that inserts the records (`Store::insert_usage_batch`), from the rows that insert actually added, so
-- a replayed or duplicated record is never counted twice. `key_id` is '' for requests without a key (the
-- playground): a unique key cannot hold NULLs that compare equal. `latency_bN`/`ttft_bN` count requests per
-- latency bucket (upper bounds 25, 50, 100 ... 25600 ms, the last open: `tollgate_domain::usage::rollup`), from
-- which any sum of rows yields p50/p95/p99. Rollups are kept when raw records are pruned. Keep this file and its
-- twin in step.

CREATE TABLE usage_rollup_minute (
    bucket BIGINT NOT NULL,              -- start of the minute, hour or day (UTC), epoch milliseconds
    tenant_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    key_id TEXT NOT NULL,                -- '' when the request had no key
    model TEXT NOT NULL,
    source TEXT NOT NULL,                -- key | playground
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,              -- status >= 400
    rate_limited BIGINT NOT NULL,        -- status 429
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,          -- sum
    ttft_ms BIGINT NOT NULL,             -- sum over requests with a first token
    -- requests per latency and time-to-first-token bucket
    latency_b0 BIGINT NOT NULL, latency_b1 BIGINT NOT NULL, latency_b2 BIGINT NOT NULL, latency_b3 BIGINT NOT NULL,
    latency_b4 BIGINT NOT NULL, latency_b5 BIGINT NOT NULL, latency_b6 BIGINT NOT NULL, latency_b7 BIGINT NOT NULL,
    latency_b8 BIGINT NOT NULL, latency_b9 BIGINT NOT NULL, latency_b10 BIGINT NOT NULL,
    latency_b11 BIGINT NOT NULL, ttft_b0 BIGINT NOT NULL, ttft_b1 BIGINT NOT NULL, ttft_b2 BIGINT NOT NULL,
    ttft_b3 BIGINT NOT NULL, ttft_b4 BIGINT NOT NULL, ttft_b5 BIGINT NOT NULL, ttft_b6 BIGINT NOT NULL,
    ttft_b7 BIGINT NOT NULL, ttft_b8 BIGINT NOT NULL, ttft_b9 BIGINT NOT NULL, ttft_b10 BIGINT NOT NULL,
    ttft_b11 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, bucket, team_id, subscription_id, key_id, model, source)
);
CREATE INDEX usage_rollup_minute_bucket ON usage_rollup_minute (bucket);
CREATE INDEX usage_rollup_minute_team ON usage_rollup_minute (team_id, bucket);
CREATE INDEX usage_rollup_minute_subscription ON usage_rollup_minute (subscription_id, bucket);

CREATE TABLE usage_rollup_hour (
    bucket BIGINT NOT NULL,              -- start of the minute, hour or day (UTC), epoch milliseconds
    tenant_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    key_id TEXT NOT NULL,                -- '' when the request had no key
    model TEXT NOT NULL,
    source TEXT NOT NULL,                -- key | playground
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,              -- status >= 400
    rate_limited BIGINT NOT NULL,        -- status 429
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,          -- sum
    ttft_ms BIGINT NOT NULL,             -- sum over requests with a first token
    -- requests per latency and time-to-first-token bucket
    latency_b0 BIGINT NOT NULL, latency_b1 BIGINT NOT NULL, latency_b2 BIGINT NOT NULL, latency_b3 BIGINT NOT NULL,
    latency_b4 BIGINT NOT NULL, latency_b5 BIGINT NOT NULL, latency_b6 BIGINT NOT NULL, latency_b7 BIGINT NOT NULL,
    latency_b8 BIGINT NOT NULL, latency_b9 BIGINT NOT NULL, latency_b10 BIGINT NOT NULL,
    latency_b11 BIGINT NOT NULL, ttft_b0 BIGINT NOT NULL, ttft_b1 BIGINT NOT NULL, ttft_b2 BIGINT NOT NULL,
    ttft_b3 BIGINT NOT NULL, ttft_b4 BIGINT NOT NULL, ttft_b5 BIGINT NOT NULL, ttft_b6 BIGINT NOT NULL,
    ttft_b7 BIGINT NOT NULL, ttft_b8 BIGINT NOT NULL, ttft_b9 BIGINT NOT NULL, ttft_b10 BIGINT NOT NULL,
    ttft_b11 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, bucket, team_id, subscription_id, key_id, model, source)
);
CREATE INDEX usage_rollup_hour_bucket ON usage_rollup_hour (bucket);
CREATE INDEX usage_rollup_hour_team ON usage_rollup_hour (team_id, bucket);
CREATE INDEX usage_rollup_hour_subscription ON usage_rollup_hour (subscription_id, bucket);

CREATE TABLE usage_rollup_day (
    bucket BIGINT NOT NULL,              -- start of the minute, hour or day (UTC), epoch milliseconds
    tenant_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    key_id TEXT NOT NULL,                -- '' when the request had no key
    model TEXT NOT NULL,
    source TEXT NOT NULL,                -- key | playground
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,              -- status >= 400
    rate_limited BIGINT NOT NULL,        -- status 429
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,          -- sum
    ttft_ms BIGINT NOT NULL,             -- sum over requests with a first token
    -- requests per latency and time-to-first-token bucket
    latency_b0 BIGINT NOT NULL, latency_b1 BIGINT NOT NULL, latency_b2 BIGINT NOT NULL, latency_b3 BIGINT NOT NULL,
    latency_b4 BIGINT NOT NULL, latency_b5 BIGINT NOT NULL, latency_b6 BIGINT NOT NULL, latency_b7 BIGINT NOT NULL,
    latency_b8 BIGINT NOT NULL, latency_b9 BIGINT NOT NULL, latency_b10 BIGINT NOT NULL,
    latency_b11 BIGINT NOT NULL, ttft_b0 BIGINT NOT NULL, ttft_b1 BIGINT NOT NULL, ttft_b2 BIGINT NOT NULL,
    ttft_b3 BIGINT NOT NULL, ttft_b4 BIGINT NOT NULL, ttft_b5 BIGINT NOT NULL, ttft_b6 BIGINT NOT NULL,
    ttft_b7 BIGINT NOT NULL, ttft_b8 BIGINT NOT NULL, ttft_b9 BIGINT NOT NULL, ttft_b10 BIGINT NOT NULL,
    ttft_b11 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, bucket, team_id, subscription_id, key_id, model, source)
);
CREATE INDEX usage_rollup_day_bucket ON usage_rollup_day (bucket);
CREATE INDEX usage_rollup_day_team ON usage_rollup_day (team_id, bucket);
CREATE INDEX usage_rollup_day_subscription ON usage_rollup_day (subscription_id, bucket);

-- Raw records are pruned by age in bounded batches (`Store::prune_usage_records`).
CREATE INDEX usage_records_at ON usage_records (at);

-- The records already stored, rolled up once: minutes from the records, hours from minutes, days from hours.
INSERT INTO usage_rollup_minute (
    bucket, tenant_id, team_id, subscription_id, key_id, model, source, requests, errors, rate_limited,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, latency_b0, latency_b1, latency_b2, latency_b3,
    latency_b4, latency_b5, latency_b6, latency_b7, latency_b8, latency_b9, latency_b10, latency_b11, ttft_b0,
    ttft_b1, ttft_b2, ttft_b3, ttft_b4, ttft_b5, ttft_b6, ttft_b7, ttft_b8, ttft_b9, ttft_b10, ttft_b11
)
SELECT
    (at / 60000) * 60000, tenant_id, team_id, subscription_id, COALESCE(key_id, ''), model, source, COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 429 THEN 1 ELSE 0 END),
    SUM(prompt_tokens), SUM(completion_tokens), SUM(latency_ms), SUM(COALESCE(ttft_ms, 0)),
    SUM(CASE WHEN latency_ms < 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 25 AND latency_ms < 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 50 AND latency_ms < 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 100 AND latency_ms < 200 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 200 AND latency_ms < 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 400 AND latency_ms < 800 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 800 AND latency_ms < 1600 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 1600 AND latency_ms < 3200 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 3200 AND latency_ms < 6400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 6400 AND latency_ms < 12800 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 12800 AND latency_ms < 25600 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_ms >= 25600 THEN 1 ELSE 0 END), SUM(CASE WHEN ttft_ms < 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 25 AND ttft_ms < 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 50 AND ttft_ms < 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 100 AND ttft_ms < 200 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 200 AND ttft_ms < 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 400 AND ttft_ms < 800 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 800 AND ttft_ms < 1600 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 1600 AND ttft_ms < 3200 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 3200 AND ttft_ms < 6400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 6400 AND ttft_ms < 12800 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 12800 AND ttft_ms < 25600 THEN 1 ELSE 0 END),
    SUM(CASE WHEN ttft_ms >= 25600 THEN 1 ELSE 0 END)
FROM usage_records
GROUP BY (at / 60000) * 60000, tenant_id, team_id, subscription_id, COALESCE(key_id, ''), model, source;
INSERT INTO usage_rollup_hour (
    bucket, tenant_id, team_id, subscription_id, key_id, model, source, requests, errors, rate_limited,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, latency_b0, latency_b1, latency_b2, latency_b3,
    latency_b4, latency_b5, latency_b6, latency_b7, latency_b8, latency_b9, latency_b10, latency_b11, ttft_b0,
    ttft_b1, ttft_b2, ttft_b3, ttft_b4, ttft_b5, ttft_b6, ttft_b7, ttft_b8, ttft_b9, ttft_b10, ttft_b11
)
SELECT
    (bucket / 3600000) * 3600000, tenant_id, team_id, subscription_id, key_id, model, source, SUM(requests),
    SUM(errors), SUM(rate_limited), SUM(prompt_tokens), SUM(completion_tokens), SUM(latency_ms), SUM(ttft_ms),
    SUM(latency_b0), SUM(latency_b1), SUM(latency_b2), SUM(latency_b3), SUM(latency_b4), SUM(latency_b5),
    SUM(latency_b6), SUM(latency_b7), SUM(latency_b8), SUM(latency_b9), SUM(latency_b10), SUM(latency_b11),
    SUM(ttft_b0), SUM(ttft_b1), SUM(ttft_b2), SUM(ttft_b3), SUM(ttft_b4), SUM(ttft_b5), SUM(ttft_b6), SUM(ttft_b7),
    SUM(ttft_b8), SUM(ttft_b9), SUM(ttft_b10), SUM(ttft_b11)
FROM usage_rollup_minute
GROUP BY (bucket / 3600000) * 3600000, tenant_id, team_id, subscription_id, key_id, model, source;
INSERT INTO usage_rollup_day (
    bucket, tenant_id, team_id, subscription_id, key_id, model, source, requests, errors, rate_limited,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, latency_b0, latency_b1, latency_b2, latency_b3,
    latency_b4, latency_b5, latency_b6, latency_b7, latency_b8, latency_b9, latency_b10, latency_b11, ttft_b0,
    ttft_b1, ttft_b2, ttft_b3, ttft_b4, ttft_b5, ttft_b6, ttft_b7, ttft_b8, ttft_b9, ttft_b10, ttft_b11
)
SELECT
    (bucket / 86400000) * 86400000, tenant_id, team_id, subscription_id, key_id, model, source, SUM(requests),
    SUM(errors), SUM(rate_limited), SUM(prompt_tokens), SUM(completion_tokens), SUM(latency_ms), SUM(ttft_ms),
    SUM(latency_b0), SUM(latency_b1), SUM(latency_b2), SUM(latency_b3), SUM(latency_b4), SUM(latency_b5),
    SUM(latency_b6), SUM(latency_b7), SUM(latency_b8), SUM(latency_b9), SUM(latency_b10), SUM(latency_b11),
    SUM(ttft_b0), SUM(ttft_b1), SUM(ttft_b2), SUM(ttft_b3), SUM(ttft_b4), SUM(ttft_b5), SUM(ttft_b6), SUM(ttft_b7),
    SUM(ttft_b8), SUM(ttft_b9), SUM(ttft_b10), SUM(ttft_b11)
FROM usage_rollup_hour
GROUP BY (bucket / 86400000) * 86400000, tenant_id, team_id, subscription_id, key_id, model, source;
