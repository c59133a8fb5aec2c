import { test, expect, APIRequestContext, request as playwrightRequest } from '@playwright/test';
import { hydrated, shot, signIn } from './helpers';

// Usage alerts in the portal: a tenant admin adds the alert webhook (its signing secret shown once, with a copy
// button), a subscription under a ten-token monthly quota is used past it through the gateway, and the alerts
// page lists its 50, 90 and 100 % alerts in words with their delivery status; the secret is rotated and the
// webhook removed, each after a confirmation. Screenshots go to end2end/screenshots/.

const MODEL = 'llama-3.1-8b-instruct';

async function ok(r: Promise<import('@playwright/test').APIResponse>) {
  const res = await r;
  expect(res.ok(), `${res.url()}: ${res.status()} ${await res.text()}`).toBeTruthy();
  return res.json();
}

/// One chat request through the gateway, retried while the simulated engines start.
async function chat(baseURL: string, key: string) {
  const gw = await playwrightRequest.newContext({ baseURL });
  for (let i = 0; i < 60; i++) {
    const r = await gw.post('/v1/chat/completions', {
      headers: { Authorization: `Bearer ${key}` },
      data: { model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 },
    });
    if (r.status() === 200) return;
    expect([503, 502], await r.text()).toContain(r.status());
    await new Promise((done) => setTimeout(done, 1000));
  }
  throw new Error(`${MODEL} never answered`);
}

test('alerts are listed in words and the webhook secret is shown once', async ({ page, baseURL }) => {
  test.setTimeout(120_000);
  const base = baseURL ?? '';
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');

  // A write token, then a team subscribed under a plan with a ten-token monthly quota.
  await page.goto('/account');
  await hydrated(page);
  await page.fill('#token-name', 'alerts e2e');
  await page.selectOption('#token-scope', 'write');
  await page.click('button:has-text("Create token")');
  const token = (await page.getByTestId('token-secret').textContent())?.trim() ?? '';
  const root = await playwrightRequest.newContext({ baseURL: base, extraHTTPHeaders: { Authorization: `Bearer ${token}` } });
  const me = await ok(root.get('/api/v1/me'));
  const admin: APIRequestContext = await playwrightRequest.newContext({
    baseURL: base,
    extraHTTPHeaders: { Authorization: `Bearer ${token}`, 'x-tollgate-tenant': me.tenant.tenant_id },
  });
  const plan = await ok(admin.post('/api/v1/plans', { data: { name: 'Alerts e2e', monthly_tokens: 10 } }));
  const team = await ok(admin.post('/api/v1/teams', { data: { name: 'Alerts e2e', description: 'alerts' } }));
  const sub = await ok(admin.post('/api/v1/subscriptions', { data: { team_id: team.id, model_id: MODEL, plan_id: plan.id } }));
  const key = await ok(admin.post(`/api/v1/subscriptions/${sub.id}/keys`, { data: { name: 'alerts key' } }));

  // The alerts page, linked from the usage page: no alerts yet, and the webhook form.
  await page.goto('/usage');
  await page.getByTestId('usage-alerts-link').click();
  await expect(page).toHaveURL(/\/usage\/alerts$/);
  await expect(page.getByText('No alerts yet')).toBeVisible();
  await hydrated(page);
  await page.fill('#webhook-url', 'http://127.0.0.1:9/tollgate-alerts');
  await page.click('button:has-text("Add webhook")');
  const secret = (await page.getByTestId('webhook-secret').textContent())?.trim() ?? '';
  expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
  await expect(page.getByRole('button', { name: 'Copy secret' })).toBeVisible();
  await shot(page, 'alerts-01-webhook-secret-once');

  // Shown once: after a reload the URL is there, the secret is not.
  await page.reload();
  await expect(page.getByTestId('webhook-url')).toHaveText('http://127.0.0.1:9/tollgate-alerts');
  await expect(page.getByTestId('webhook-secret')).toHaveCount(0);
  expect(await page.content()).not.toContain(secret);

  // One request is bigger than the whole quota: 50, 90 and 100 % are crossed at once.
  await chat(base, key.secret);
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId('alert-message')).toHaveCount(3, { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  const messages = await page.getByTestId('alert-message').allTextContents();
  for (const pct of [50, 90, 100]) {
    expect(messages.some((m) => m.includes(`Team Alerts e2e used ${pct} % of its 10 monthly tokens`))).toBeTruthy();
  }
  // Newest first: one pass records its thresholds in order, so the list reads 100, 90, 50.
  expect(messages.map((m) => Number(m.split(' used ')[1].split(' %')[0]))).toEqual([100, 90, 50]);
  await expect(page.locator('[data-kind="quota"]')).toHaveCount(3);
  await expect(page.getByRole('table')).toContainText('webhook:');
  await shot(page, 'alerts-02-list');

  // Rotating asks first, then shows a new secret once.
  await hydrated(page);
  page.once('dialog', (d) => d.accept());
  await page.click('button:has-text("Rotate secret")');
  const rotated = (await page.getByTestId('webhook-secret').textContent())?.trim() ?? '';
  expect(rotated).toMatch(/^whsec_/);
  expect(rotated).not.toEqual(secret);

  // Removing asks first; declining keeps it, accepting removes it.
  page.once('dialog', (d) => d.dismiss());
  await page.click('button:has-text("Remove webhook")');
  await expect(page.getByTestId('webhook-url')).toBeVisible();
  page.once('dialog', (d) => d.accept());
  await page.click('button:has-text("Remove webhook")');
  await page.goto('/usage/alerts');
  await expect(page.getByTestId('webhook-url')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Add webhook' })).toBeVisible();
  await shot(page, 'alerts-03-webhook-removed');
});
