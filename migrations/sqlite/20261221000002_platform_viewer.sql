-- The platform viewer (issue 16): a platform-level read-only role for product owners, who read usage, cost and
-- adoption across tenants and change nothing. Granted by a platform admin (`platform_viewer`, by hand) or by the
-- single sign-on group `<prefix>platform-viewer` (`platform_viewer_sso` = 1 when the group granted it, so the
-- next sign-in without the group withdraws it; a grant by hand stays). Keep this file and its twin in step.

ALTER TABLE users ADD COLUMN platform_viewer BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN platform_viewer_sso BIGINT NOT NULL DEFAULT 0;
