-- Keys for several models (issue 18): a key is made under one subscription (its home, `api_keys.subscription_id`),
-- and may also cover other live subscriptions of the same team, listed here, or every live subscription of its team,
-- present and future (`team_wide`). A request resolves (key, model) to the subscription of that model, whose limits
-- and usage apply. Keys made before this cover their home subscription only, as before. Keep this file and its twin
-- in step.

ALTER TABLE api_keys ADD COLUMN team_wide BIGINT NOT NULL DEFAULT 0;

CREATE TABLE api_key_subscriptions (
    key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, subscription_id)
);
CREATE INDEX api_key_subscriptions_subscription ON api_key_subscriptions (subscription_id);
