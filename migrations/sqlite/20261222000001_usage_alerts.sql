-- Usage alerts (issue 16): quota thresholds (50, 90, 100 % of the monthly tokens) and repeated rate-limit refusals,
-- per subscription. The unique key makes each alert fire once per threshold and period, however many servers
-- evaluate at the same time (`INSERT ... ON CONFLICT DO NOTHING`). Keep this file and its twin in step.

CREATE TABLE usage_alerts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- 'quota' or 'rate_limited'.
    kind TEXT NOT NULL,
    -- The percentage for quota alerts, 0 for rate-limit alerts.
    threshold INTEGER NOT NULL,
    -- The month ('2026-12') for quota alerts, the hour ('2026-12-07T11') for rate-limit alerts.
    period TEXT NOT NULL,
    -- The names and figures when the alert fired, for its words.
    team_name TEXT NOT NULL,
    model TEXT NOT NULL,
    quota_tokens INTEGER,
    used_tokens INTEGER NOT NULL,
    refusals INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (subscription_id, kind, threshold, period)
);
CREATE INDEX usage_alerts_tenant ON usage_alerts (tenant_id, created_at, id);
CREATE INDEX usage_alerts_team ON usage_alerts (team_id, created_at, id);
CREATE INDEX usage_alerts_newest ON usage_alerts (created_at, id);

-- The outbox: one row per alert and channel, written with the alert; the dispatcher claims due rows
-- (`next_attempt_at` <= now), tries them and either marks them delivered, puts them off (backoff) or gives up
-- (`next_attempt_at` NULL without `delivered_at`, with `last_error` saying why).
CREATE TABLE alert_deliveries (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES usage_alerts (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- 'email' or 'webhook'.
    channel TEXT NOT NULL,
    -- The recipients (comma-separated) or the webhook URL when the alert fired.
    target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at);

-- A tenant's alert webhook. The secret is kept as it is, not hashed: the server signs every delivery with it,
-- so it must read it back; the API shows it once (creation, rotation) and never again.
CREATE TABLE tenant_webhooks (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
