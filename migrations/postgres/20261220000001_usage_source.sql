-- Where a request came from: an API key ('key') or the portal's playground ('playground'), which has no key, so
-- key_id becomes nullable.

ALTER TABLE usage_records ADD COLUMN source TEXT NOT NULL DEFAULT 'key';   -- key | playground
ALTER TABLE usage_records ALTER COLUMN key_id DROP NOT NULL;               -- null when source is not 'key'
