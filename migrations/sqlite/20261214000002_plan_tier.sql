-- A plan's scheduling tier, 0 (default) to 9: the gateway sends vLLM's `priority` from it, so that on engines run
-- with priority scheduling a higher tier's requests are scheduled first (issue 17). Keep this file and its twin
-- in step.

ALTER TABLE plans ADD COLUMN tier INTEGER NOT NULL DEFAULT 0;
