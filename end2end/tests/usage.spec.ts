import { test, expect, APIRequestContext, Browser, Page, request as playwrightRequest } from '@playwright/test';
import * as fs from 'fs';
import { shot, signIn } from './helpers';

// Usage dashboards with real traffic behind them: the admin sets up two teams with a subscription and a key each
// (through the management API), requests go through the gateway with those keys, and then each role opens /usage:
// a developer sees only their own team's figures and exports them as CSV; a tenant viewer and the admin see the
// whole tenant; a product owner (platform viewer) reads every tenant and is refused a write. Filters live in the
// URL. Screenshots go to end2end/screenshots/.

const ALPHA_MODEL = 'llama-3.1-8b-instruct';
const BETA_MODEL = 'mistral-7b-instruct-v0.3';

async function api(baseURL: string, token: string, tenant?: string): Promise<APIRequestContext> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (tenant) headers['x-tollgate-tenant'] = tenant;
  return playwrightRequest.newContext({ baseURL, extraHTTPHeaders: headers });
}

async function ok(r: Promise<import('@playwright/test').APIResponse>) {
  const res = await r;
  expect(res.ok(), `${res.url()}: ${res.status()} ${await res.text()}`).toBeTruthy();
  return res.json();
}

/// Signs up through an invitation link in a fresh browser context.
async function join(browser: Browser, link: string, name: string, password: string): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(link);
  await page.fill('#signup-name', name);
  await page.fill('#signup-password', password);
  await page.click('button:has-text("Create account and join")');
  await expect(page.getByRole('heading', { name: `Welcome, ${name}` })).toBeVisible();
  return page;
}

/// One chat request through the gateway, retried while the simulated engines start.
async function chat(baseURL: string, key: string, model: string) {
  const gw = await playwrightRequest.newContext({ baseURL });
  for (let i = 0; i < 60; i++) {
    const r = await gw.post('/v1/chat/completions', {
      headers: { Authorization: `Bearer ${key}` },
      data: { model, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 },
    });
    if (r.status() === 200) return;
    expect([503, 502], await r.text()).toContain(r.status());
    await new Promise((done) => setTimeout(done, 1000));
  }
  throw new Error(`${model} never answered`);
}

async function totalRequests(page: Page): Promise<number> {
  return Number((await page.getByTestId('total-requests').textContent())?.trim());
}

test('each role reads the usage it may, with filters in the URL and a CSV export', async ({ browser, page, baseURL }) => {
  test.setTimeout(180_000);
  const base = baseURL ?? '';
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');

  // A write token for the admin, made on the account page as a person would.
  await page.goto('/account');
  await page.fill('#token-name', 'usage e2e');
  await page.selectOption('#token-scope', 'write');
  await page.click('button:has-text("Create token")');
  const token = (await page.getByTestId('token-secret').textContent())?.trim() ?? '';
  const root = await api(base, token);
  const me = await ok(root.get('/api/v1/me'));
  const tenant: string = me.tenant.tenant_id;
  const admin = await api(base, token, tenant);

  // Two teams, each subscribed to a model under the Starter plan (no approval), each with a key.
  const plans = await ok(admin.get('/api/v1/plans'));
  const starter = (plans.items ?? plans).find((p: { name: string }) => p.name === 'Starter');
  const setUp = async (name: string, model: string) => {
    const team = await ok(admin.post('/api/v1/teams', { data: { name, description: 'usage e2e' } }));
    const sub = await ok(admin.post('/api/v1/subscriptions', { data: { team_id: team.id, model_id: model, plan_id: starter.id } }));
    const key = await ok(admin.post(`/api/v1/subscriptions/${sub.id}/keys`, { data: { name: `${name} key` } }));
    return { team: team.id as string, sub: sub.id as string, key: key.secret as string, keyId: key.key.id as string };
  };
  const alpha = await setUp('Usage Alpha', ALPHA_MODEL);
  const beta = await setUp('Usage Beta', BETA_MODEL);

  // People: a developer in Alpha, a tenant viewer, and a product owner from another tenant.
  const invite = async (t: APIRequestContext, data: object) => (await ok(t.post('/api/v1/invitations', { data }))).link as string;
  const dev = await join(browser, await invite(admin, { email: 'usage-dev@e2e.test', role: 'developer', team_id: alpha.team }), 'Usage Dev', 'usage-dev-password');
  const viewer = await join(browser, await invite(admin, { email: 'usage-viewer@e2e.test', role: 'viewer' }), 'Usage Viewer', 'usage-viewer-password');
  const other = await ok(root.post('/api/v1/tenants', { data: { name: 'Usage Globex' } }));
  const globex = await api(base, token, other.id);
  const po = await join(browser, await invite(globex, { email: 'usage-po@e2e.test', role: 'viewer' }), 'Usage Owner', 'usage-po-password');
  await ok(root.put('/api/v1/platform/viewers/usage-po@e2e.test'));

  // The models' engines may be starting (or woken from zero): a third team waits for them, so that the counted
  // traffic below never meets a 503 (a refused request is a usage record too, and would count as an error).
  const warmUp = await ok(admin.post('/api/v1/teams', { data: { name: 'Usage Warm-up', description: 'usage e2e' } }));
  for (const model of [ALPHA_MODEL, BETA_MODEL]) {
    const sub = await ok(admin.post('/api/v1/subscriptions', { data: { team_id: warmUp.id, model_id: model, plan_id: starter.id } }));
    const key = await ok(admin.post(`/api/v1/subscriptions/${sub.id}/keys`, { data: { name: `warm-up ${model}` } }));
    await chat(base, key.secret, model);
  }

  // Real traffic through the gateway: three requests on Alpha's key, two on Beta's.
  for (let i = 0; i < 3; i++) await chat(base, alpha.key, ALPHA_MODEL);
  for (let i = 0; i < 2; i++) await chat(base, beta.key, BETA_MODEL);
  await expect.poll(async () => {
    const s = await ok(admin.get(`/api/v1/usage/summary?range=day&group_by=team`));
    return s.items.filter((g: { value: string }) => [alpha.team, beta.team].includes(g.value))
      .map((g: { figures: { requests: number } }) => g.figures.requests).sort().join(',');
  }, { timeout: 20_000 }).toBe('2,3');

  // The developer: their team only, by model and key, their quota; the other team is nowhere.
  await dev.goto('/usage?range=day');
  await expect(dev.getByTestId('usage-by-team').locator(`tr[data-value="${alpha.team}"]`)).toContainText('Usage Alpha');
  await expect(dev.getByTestId('usage-by-team').locator(`tr[data-value="${beta.team}"]`)).toHaveCount(0);
  expect(await totalRequests(dev)).toBe(3);
  await expect(dev.getByTestId('usage-chart').locator('svg')).toHaveCount(1);
  await expect(dev.getByTestId('usage-by-model').locator(`tr[data-value="${ALPHA_MODEL}"] [data-testid="cost"]`)).toContainText('$');
  await expect(dev.locator(`[data-testid="usage-quotas"] tr[data-subscription="${alpha.sub}"]`)).toContainText('1000000');
  await expect(dev.locator(`[data-testid="usage-quotas"] tr[data-subscription="${beta.sub}"]`)).toHaveCount(0);
  await shot(dev, 'usage-01-developer');

  // Filters are kept in the URL: pick the model and the range, apply, reload, and the view is the same.
  await dev.selectOption('#range', '7d');
  await dev.selectOption('#model', ALPHA_MODEL);
  await dev.click('button:has-text("Apply")');
  await expect(dev).toHaveURL(/range=7d/);
  await expect(dev).toHaveURL(new RegExp(`model=${ALPHA_MODEL.replace(/\./g, '\\.')}`));
  await dev.reload();
  await expect(dev.locator('#model')).toHaveValue(ALPHA_MODEL);
  await expect(dev.locator('#range')).toHaveValue('7d');
  expect(await totalRequests(dev)).toBe(3);
  await dev.goto(`/usage?range=day&model=${BETA_MODEL}`);
  expect(await totalRequests(dev)).toBe(0);

  // The CSV of the view, downloaded and parsed: Alpha's three records, nobody else's.
  await dev.goto('/usage?range=day');
  const [download] = await Promise.all([dev.waitForEvent('download'), dev.getByTestId('usage-export').click()]);
  const csv = fs.readFileSync((await download.path()) ?? '', 'utf8').trim().split('\n');
  const header = csv[0].split(',');
  expect(header.slice(0, 4)).toEqual(['at_ms', 'request_id', 'tenant_id', 'team_id']);
  const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
  expect(rows).toHaveLength(3);
  for (const r of rows) {
    expect(r.team_id).toBe(alpha.team);
    expect(r.key_id).toBe(alpha.keyId);
    expect(r.model).toBe(ALPHA_MODEL);
    expect(Number(r.status)).toBe(200);
  }

  // A refusal: a request that asks for more tokens than the plan allows in a minute gets a 429, and the developer
  // finds it among the view's recent errors, with its reason.
  await expect(dev.getByTestId('usage-errors-empty')).toBeVisible();
  const gw = await playwrightRequest.newContext({ baseURL: base });
  const tooBig = await gw.post('/v1/chat/completions', {
    headers: { Authorization: `Bearer ${alpha.key}` },
    data: { model: ALPHA_MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 30_000 },
  });
  expect(tooBig.status(), await tooBig.text()).toBe(429);
  await expect.poll(async () => {
    await dev.goto('/usage?range=day');
    return dev.getByTestId('error-status').allTextContents();
  }, { timeout: 10_000 }).toEqual(['429']);
  await expect(dev.getByTestId('usage-errors')).toContainText('too many tokens this minute');
  await shot(dev, 'usage-04-recent-errors');

  // The tenant viewer and the admin: both teams.
  for (const [who, name] of [[viewer, 'viewer'], [page, 'admin']] as const) {
    await who.goto('/usage?range=day');
    await expect(who.getByTestId('usage-by-team').locator(`tr[data-value="${alpha.team}"]`)).toBeVisible();
    await expect(who.getByTestId('usage-by-team').locator(`tr[data-value="${beta.team}"] [data-testid="requests"]`)).toHaveText('2');
    // Both teams are on the Starter plan: the plan's row has their usage and a cost.
    await expect(who.getByTestId('usage-by-plan').locator(`tr[data-value="${starter.id}"]`)).toContainText('Starter');
    await expect(who.getByTestId('usage-by-plan').locator(`tr[data-value="${starter.id}"] [data-testid="cost"]`)).toContainText('$');
    await shot(who, `usage-02-${name}`);
  }
  await viewer.goto(`/usage?range=day&team=${beta.team}`);
  expect(await totalRequests(viewer)).toBe(2);

  // The product owner: every tenant, by tenant, and no writes.
  await po.goto('/usage?range=day&tenant=all');
  await expect(po.getByTestId('usage-by-tenant').locator(`tr[data-value="${tenant}"] [data-testid="requests"]`)).toHaveText(/^\d+$/);
  expect(await totalRequests(po)).toBeGreaterThanOrEqual(5);
  await po.selectOption('#tenant', tenant);
  await po.click('button:has-text("Apply")');
  await expect(po).toHaveURL(new RegExp(`tenant=${tenant}`));
  await expect(po.getByTestId('usage-by-team').locator(`tr[data-value="${beta.team}"]`)).toBeVisible();
  await shot(po, 'usage-03-product-owner');
  const refused = await po.request.post('/api/v1/teams', {
    headers: { 'x-tollgate-tenant': tenant, Origin: base },
    data: { name: 'Not allowed', description: '' },
  });
  expect([403, 404]).toContain(refused.status());
  const stillTwo = await ok(admin.get('/api/v1/teams?search=Not allowed'));
  expect(stillTwo.total).toBe(0);
});
