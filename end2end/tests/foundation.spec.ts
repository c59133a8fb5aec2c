import { test, expect } from '@playwright/test';
import { shot, hydrated } from './helpers';

// The foundation, as a tenant admin lives it: sign in, create a team, invite someone, who accepts in a
// second browser; change their role, find that in the audit log, sign out. A screenshot of each page is
// kept in end2end/screenshots/.

test('a tenant admin manages teams and members end to end', async ({ browser, page }) => {
  page.on('dialog', (d) => d.accept());

  // Signed-out visitors land on the sign-in page.
  await page.goto('/teams');
  await expect(page).toHaveURL(/\/login\?next=%2Fteams/);
  await shot(page, '01-sign-in');

  // A wrong password gets a clear message and keeps the user on the form.
  await page.fill('#email', 'admin@e2e.test');
  await page.fill('#password', 'not-the-password');
  await page.click('button:has-text("Sign in")');
  await expect(page.getByRole('alert')).toContainText('Wrong email or password');

  await page.fill('#email', 'admin@e2e.test');
  await page.fill('#password', 'e2e-admin-password');
  await page.click('button:has-text("Sign in")');
  await expect(page).toHaveURL(/\/teams$/);
  await expect(page.getByTestId('user-email')).toHaveText('admin@e2e.test');
  await shot(page, '02-teams');

  // Create a team.
  await page.fill('#team-name', 'Search');
  await page.fill('#team-description', 'Retrieval and ranking');
  await page.click('button:has-text("Create team")');
  await expect(page.getByRole('link', { name: 'Search' })).toBeVisible();
  await shot(page, '03-team-created');

  // Invite a member into that team; the link is shown once.
  await page.goto('/members');
  await hydrated(page);
  await page.fill('#invite-email', 'dana@e2e.test');
  await page.selectOption('#invite-role', 'developer');
  await expect(page.locator('#invite-team option', { hasText: 'Search' })).toHaveCount(1);
  await page.selectOption('#invite-team', { label: 'Search' });
  await page.click('button:has-text("Create invitation link")');
  const link = (await page.getByTestId('invite-link').textContent())?.trim() ?? '';
  expect(link).toMatch(/\/invite\/[0-9a-f]{64}$/);
  await expect(page.getByRole('cell', { name: 'dana@e2e.test (team Search)' })).toBeVisible();
  await shot(page, '04-invitation-created');

  // The invitee opens the link in another browser and joins.
  const other = await browser.newContext();
  const dana = await other.newPage();
  await dana.goto(link);
  await expect(dana.getByTestId('invite-summary')).toContainText('Demo tenant');
  await shot(dana, '05-invitation-page');
  await dana.fill('#signup-name', 'Dana Developer');
  await dana.fill('#signup-password', 'dana-password-1');
  await dana.click('button:has-text("Create account and join")');
  await expect(dana.getByRole('heading', { name: 'Welcome, Dana Developer' })).toBeVisible();
  await shot(dana, '06-invitee-home');
  // The link is single use.
  await dana.goto(link);
  await expect(dana.getByRole('alert')).toContainText('accepted');
  await other.close();

  // The admin makes Dana a tenant admin.
  await page.goto('/members');
  const row = page.locator('tr[data-email="dana@e2e.test"]');
  await expect(row).toBeVisible();
  await row.locator('select').selectOption('admin');
  await row.locator('button:has-text("Save")').click();
  await expect(page.locator('tr[data-email="dana@e2e.test"] select')).toHaveValue('admin');
  await shot(page, '07-role-changed');

  // The change is in the audit log.
  await page.goto('/audit?action=member.role_changed');
  await expect(page.getByTestId('audit')).toContainText('dana@e2e.test: developer -> admin');
  await page.goto('/audit');
  await expect(page.getByTestId('audit')).toContainText('member.invitation_accepted');
  await shot(page, '08-audit-log');

  // Active sessions are listed.
  await page.goto('/account');
  await expect(page.getByTestId('sessions')).toContainText('This browser');
  await shot(page, '09-account');

  // Sign out.
  await page.click('button:has-text("Sign out")');
  await expect(page).toHaveURL(/\/login\?signed_out=1/);
  await expect(page.getByRole('status')).toContainText('You have signed out');
  await page.goto('/teams');
  await expect(page).toHaveURL(/\/login/);
  await shot(page, '10-signed-out');
});
