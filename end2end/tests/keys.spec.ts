import { test, expect, Page, request as playwrightRequest } from '@playwright/test';
import { shot, hydrated, signIn } from './helpers';

// One key for several models, as a tenant admin makes it in the portal: a team subscribed to two models, a key made
// on one subscription's page that also covers the other, shown once; then the key calls both models through the
// gateway, and `/v1/models` lists both. Screenshots go to end2end/screenshots/.

const HOME_MODEL = 'llama-3.1-8b-instruct';
const OTHER_MODEL = 'qwen2.5-coder-7b-instruct';

async function subscribe(page: Page, model: string, team: string): Promise<string> {
  await page.goto(`/catalog/${model}`);
  await hydrated(page);
  await expect(page.locator('#subscribe-team option', { hasText: team })).toHaveCount(1);
  await page.selectOption('#subscribe-team', { label: team });
  await page.selectOption('#subscribe-plan', { label: 'Starter' });
  await page.click('button:has-text("Subscribe")');
  await expect(page).toHaveURL(/\/subscriptions\/sub_/);
  await expect(page.getByTestId('subscription-state')).toHaveText('Active');
  return page.url();
}

test('one key calls several models of its team', async ({ page, baseURL }) => {
  test.setTimeout(120_000);
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');
  await page.goto('/teams');
  await page.fill('#team-name', 'Polyglot');
  await page.click('button:has-text("Create team")');
  await expect(page.getByRole('link', { name: 'Polyglot' })).toBeVisible();
  await subscribe(page, OTHER_MODEL, 'Polyglot');
  const home = await subscribe(page, HOME_MODEL, 'Polyglot');

  // The new-key form offers the team's other subscription.
  await page.goto(home);
  await hydrated(page);
  await expect(page.locator('#key-coverage option')).toHaveText([
    'This model only', `This model and ${OTHER_MODEL}`, 'Every model of this team, now and later',
  ]);
  await page.fill('#key-name', 'two models');
  await page.selectOption('#key-coverage', { label: `This model and ${OTHER_MODEL}` });
  await page.click('button:has-text("Create key")');
  const secret = (await page.getByTestId('key-secret').textContent())?.trim() ?? '';
  expect(secret).toMatch(/^tg-/);
  await expect(page.locator('[data-testid="keys"] tr', { hasText: 'two models' }).getByTestId('key-covers'))
    .toHaveText(`Also: ${OTHER_MODEL}`);
  await shot(page, 'keys-01-several-models');

  // The key lists and calls both models; a model the team has no subscription to is not found.
  const gw = await playwrightRequest.newContext({ baseURL, extraHTTPHeaders: { Authorization: `Bearer ${secret}` } });
  await expect.poll(async () => {
    const r = await gw.get('/v1/models');
    return r.ok() ? (await r.json()).data.map((m: { id: string }) => m.id).sort() : [];
  }, { timeout: 10_000 }).toEqual([HOME_MODEL, OTHER_MODEL].sort());
  for (const model of [HOME_MODEL, OTHER_MODEL]) {
    await expect.poll(async () => {
      const r = await gw.post('/v1/chat/completions', {
        data: { model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4 },
      });
      return r.status();
    }, { timeout: 60_000, intervals: [1000] }).toBe(200);
  }
  const missing = await gw.post('/v1/chat/completions', {
    data: { model: 'bge-m3', messages: [{ role: 'user', content: 'Hello' }] },
  });
  expect(missing.status()).toBe(404);

  // After a reload the key's row still says what it covers, and the secret is gone.
  await page.reload();
  await expect(page.locator('[data-testid="keys"] tr', { hasText: 'two models' })).toContainText(OTHER_MODEL);
  expect(await page.content()).not.toContain(secret);
});
