-- Where each role came from, so that single sign-on keeps the roles it granted in step with the provider's groups
-- without touching the roles granted by hand in the portal (issue 17). A membership's `role` is the higher of
-- `manual_role` (granted by hand: portal, invitation, first start) and `sso_role` (from the provider's groups at
-- the last sign-in); NULL is "none from that source". Roles that existed before this migration count as granted
-- by hand: nothing can tell them apart now, and removing them would be the surprise. Same for platform admin:
-- `platform_admin_sso` = 1 when the flag came from the `<prefix>platform-admin` group, 0 when granted by hand.
-- Keep this file and its twin in step.

ALTER TABLE memberships ADD COLUMN manual_role TEXT;
ALTER TABLE memberships ADD COLUMN sso_role TEXT;
UPDATE memberships SET manual_role = role;
ALTER TABLE users ADD COLUMN platform_admin_sso INTEGER NOT NULL DEFAULT 0;
