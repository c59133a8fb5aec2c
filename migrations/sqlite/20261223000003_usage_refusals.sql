-- Which limit refused a 429 (issue 16): `requests`, `tokens` or `concurrency` per minute, or `monthly_tokens`, the
-- monthly quota; '' for every other answer. Records show it as the reason of a refusal; the rollups count the
-- monthly quota's refusals, so that the 100 % alert fires when a subscription's quota can no longer admit requests
-- (the gateway refuses a request whose reservation would pass the quota, so used tokens rarely reach it exactly).
-- Records and rollups written before this count none. Keep this file and its twin in step.

ALTER TABLE usage_records ADD COLUMN refusal TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_rollup_minute ADD COLUMN quota_refused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollup_hour ADD COLUMN quota_refused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollup_day ADD COLUMN quota_refused BIGINT NOT NULL DEFAULT 0;
