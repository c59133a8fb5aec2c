-- Catalog, plans, subscriptions, API keys and personal access tokens. Same conventions as the identity
-- migration: epoch-millisecond instants, 0/1 flags, server-generated TEXT ids. Prices are integer micro-units of
-- the platform's currency per million tokens (0.20 per 1M = 200000), so no float columns differ between backends.

CREATE TABLE models (
    id TEXT PRIMARY KEY,                -- the API model id clients send as `model`
    display_name TEXT NOT NULL,
    family TEXT NOT NULL,
    provider TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parameters_millions BIGINT NOT NULL DEFAULT 0,
    context_length BIGINT NOT NULL,
    task TEXT NOT NULL,                 -- chat | completion | embeddings
    license TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '',      -- comma-separated, lowercase
    versions TEXT NOT NULL DEFAULT '',  -- comma-separated, newest first
    input_price_micros BIGINT NOT NULL DEFAULT 0,
    output_price_micros BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,               -- preview | available | deprecated | retired
    sunset_at BIGINT,
    replacement_id TEXT,
    visibility TEXT NOT NULL,           -- open | restricted
    upstream_name TEXT NOT NULL,        -- the model name the engines serve
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    requests_per_minute BIGINT,        -- NULL = unlimited
    tokens_per_minute BIGINT,
    max_concurrent BIGINT,
    monthly_tokens BIGINT,
    all_models BIGINT NOT NULL DEFAULT 1,
    requires_approval BIGINT NOT NULL DEFAULT 0,
    archived BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- With all_models = 0, the rows name the models a plan covers; with either, non-NULL limits override the plan's.
CREATE TABLE plan_models (
    plan_id TEXT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    model_id TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    requests_per_minute BIGINT,
    tokens_per_minute BIGINT,
    max_concurrent BIGINT,
    monthly_tokens BIGINT,
    PRIMARY KEY (plan_id, model_id)
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    model_id TEXT NOT NULL REFERENCES models (id),
    plan_id TEXT NOT NULL REFERENCES plans (id),
    state TEXT NOT NULL,                -- see tollgate_domain::subscription::State
    note TEXT NOT NULL DEFAULT '',      -- the requester's words to the approver
    reason TEXT NOT NULL DEFAULT '',    -- the last decision's reason (rejection, suspension)
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, created_at);
CREATE INDEX subscriptions_team ON subscriptions (team_id);
-- A team holds at most one live subscription to a model.
CREATE UNIQUE INDEX subscriptions_live ON subscriptions (team_id, model_id)
    WHERE state IN ('pending_tenant', 'pending_platform', 'active', 'suspended');

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,                -- the public id inside the key (tg-<id><secret>)
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,          -- hex SHA-256 of the secret part
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    rotated_to TEXT
);
CREATE INDEX api_keys_subscription ON api_keys (subscription_id, created_at);

CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,                -- the public id inside the token (tgp-<id><secret>)
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,               -- comma-separated: read, write
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at);

-- Bumped by every write the gateway cares about (keys, subscriptions, plans, models); each server replica polls
-- it and rebuilds its in-memory key snapshot when it moves.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO revisions (name, value) VALUES ('gateway', 0);
