import { test, expect } from '@playwright/test';
import { shot, hydrated, signIn } from './helpers';

// From the catalog to a working, revocable key, as a developer and a tenant admin live it: the admin creates a
// team and invites a developer; the developer browses and filters the catalog, opens a model, subscribes the team
// under a plan that needs approval; the admin approves in another browser; the developer creates a key, sees it
// once, reloads to see only its prefix, and revokes it. Screenshots go to end2end/screenshots/.

test('a developer goes from the catalog to a working, revocable key', async ({ browser, page }) => {
  page.on('dialog', (d) => d.accept());

  // The admin prepares a team and invites a developer into it.
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');
  await page.goto('/teams');
  await page.fill('#team-name', 'Ranking');
  await page.click('button:has-text("Create team")');
  await expect(page.getByRole('link', { name: 'Ranking' })).toBeVisible();
  await page.goto('/members');
  await hydrated(page);
  await page.fill('#invite-email', 'devon@e2e.test');
  await page.selectOption('#invite-role', 'developer');
  await expect(page.locator('#invite-team option', { hasText: 'Ranking' })).toHaveCount(1);
  await page.selectOption('#invite-team', { label: 'Ranking' });
  await page.click('button:has-text("Create invitation link")');
  const link = (await page.getByTestId('invite-link').textContent())?.trim() ?? '';

  const devContext = await browser.newContext();
  const dev = await devContext.newPage();
  dev.on('dialog', (d) => d.accept());
  dev.on('console', (m) => { if (m.type() === 'error') console.log(`[devon console] ${dev.url()} ${m.text()}`); });
  dev.on('pageerror', (e) => console.log(`[devon page error] ${e.message}`));
  await dev.goto(link);
  await dev.fill('#signup-name', 'Devon Developer');
  await dev.fill('#signup-password', 'devon-password-1');
  await dev.click('button:has-text("Create account and join")');
  await expect(dev.getByRole('heading', { name: 'Welcome, Devon Developer' })).toBeVisible();

  // Browse: the seeded catalog, then filters.
  await dev.goto('/catalog');
  await expect(dev.locator('[data-model="llama-3.1-8b-instruct"]')).toBeVisible();
  await expect(dev.locator('[data-model="mistral-7b-instruct-v0.3"] [data-testid="lifecycle-notice"]')).toContainText('retires on 2027-03-31');
  await shot(dev, 'catalog-01-browse');
  await dev.selectOption('#task', 'embeddings');
  await dev.click('button:has-text("Apply filters")');
  await expect(dev).toHaveURL(/task=embeddings/);
  await expect(dev.locator('[data-model]')).toHaveCount(1);
  await expect(dev.locator('[data-model="bge-m3"]')).toBeVisible();
  await dev.goto('/catalog?q=nothing-matches-this');
  await expect(dev.getByText('No models match')).toBeVisible();
  await dev.goto('/catalog?family=Mistral&sort=price');
  await expect(dev.locator('[data-model]').first()).toHaveAttribute('data-model', 'mistral-7b-instruct-v0.3');
  await shot(dev, 'catalog-02-filtered');

  // A model page: plans and snippets with this server's URL.
  await dev.click('[data-model="mistral-small-3.1-24b-instruct"]');
  await expect(dev.getByTestId('model-id')).toHaveText('mistral-small-3.1-24b-instruct');
  await expect(dev.getByTestId('plans')).toContainText('Team');
  await expect(dev.getByTestId('limits-note')).toContainText('any 60 seconds');
  await expect(dev.locator('pre').first()).toContainText('/v1/chat/completions');
  await hydrated(dev);
  await shot(dev, 'catalog-03-model');

  // Subscribe the team under a plan that needs approval.
  await expect(dev.locator('#subscribe-team option', { hasText: 'Ranking' })).toHaveCount(1);
  await dev.selectOption('#subscribe-team', { label: 'Ranking' });
  await dev.selectOption('#subscribe-plan', { label: 'Team (needs approval)' });
  await dev.fill('#subscribe-note', 'Re-ranking experiments');
  await dev.click('button:has-text("Subscribe")');
  await expect(dev).toHaveURL(/\/subscriptions\/sub_/);
  await expect(dev.getByTestId('subscription-state')).toHaveText('Awaiting tenant approval');
  const subscriptionUrl = dev.url();
  await shot(dev, 'catalog-04-pending');

  // The developer cannot approve; the admin can, from the approvals queue.
  await expect(dev.locator('button:has-text("Approve")')).toHaveCount(0);
  await page.goto('/approvals');
  const row = page.locator('tr', { hasText: 'Mistral Small 3.1 24B Instruct' });
  await expect(row).toContainText('devon@e2e.test');
  await shot(page, 'catalog-05-approvals');
  await row.locator('button:has-text("Approve")').click();
  await expect(page.getByText('Nothing to approve')).toBeVisible();

  // Active: the developer creates a key and sees it once.
  await dev.goto(subscriptionUrl);
  await expect(dev.getByTestId('subscription-state')).toHaveText('Active');
  await hydrated(dev);
  await dev.fill('#key-name', 'ranking service');
  await dev.click('button:has-text("Create key")');
  const secret = (await dev.getByTestId('key-secret').textContent())?.trim() ?? '';
  expect(secret).toMatch(/^tg-[a-z0-9]{12}[A-Za-z0-9]{32}$/);
  await shot(dev, 'catalog-06-key-created');

  // After a reload only the prefix shows, never the secret.
  await dev.reload();
  await expect(dev.getByTestId('key-prefix')).toHaveText(`${secret.slice(0, 15)}…`);
  expect(await dev.content()).not.toContain(secret);
  await expect(dev.getByTestId('key-state')).toHaveText('Active');

  // Revoke, after confirming.
  await dev.click('button:has-text("Revoke")');
  await expect(dev.getByTestId('key-state')).toHaveText('Revoked');
  await shot(dev, 'catalog-07-key-revoked');

  // A personal access token for the management API, shown once on the account page.
  await dev.goto('/account');
  await hydrated(dev);
  await dev.fill('#token-name', 'ci pipeline');
  await dev.selectOption('#token-scope', 'read');
  await dev.click('button:has-text("Create token")');
  const token = (await dev.getByTestId('token-secret').textContent())?.trim() ?? '';
  expect(token).toMatch(/^tgp-[a-z0-9]{12}[A-Za-z0-9]{32}$/);
  const me = await dev.request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect((await me.json()).email).toBe('devon@e2e.test');
  await shot(dev, 'catalog-08-token-created');
  await dev.reload();
  expect(await dev.content()).not.toContain(token);
  await devContext.close();
});
