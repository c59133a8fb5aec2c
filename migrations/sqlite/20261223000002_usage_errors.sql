-- The last errors and refusals of a view (issue 16: "the last errors and 429s with their time and reason"), newest
-- first. About 3 % of requests fail, so a page of them from all records could read thousands of rows per row it
-- shows: these partial indexes hold only answers with a status of 400 or more, per tenant and across tenants.
-- Queries name the condition literally (`status >= 400`), so that both databases use them. Keep this file and its
-- twin in step.

CREATE INDEX usage_records_errors_tenant_at ON usage_records (tenant_id, at, id) WHERE status >= 400;
CREATE INDEX usage_records_errors_at ON usage_records (at, id) WHERE status >= 400;
