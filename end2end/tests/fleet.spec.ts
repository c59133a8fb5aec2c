import { test, expect } from '@playwright/test';
import { shot, signIn } from './helpers';

// A platform admin runs the fleet from the portal: the seeded models come up on the simulated GPUs; the admin
// takes one model off (its replica drains and stops), deploys it again on two GPUs per replica, watches it become
// ready without reloading, scales it to two replicas and reads its events. Screenshots go to end2end/screenshots/.

const MODEL = 'qwen2.5-72b-instruct';

test('an admin deploys a model, watches it become ready, scales it and reads its events', async ({ page }) => {
  test.setTimeout(120_000);
  page.on('dialog', (d) => d.accept());
  // The live panels must hydrate cleanly (a mismatch would freeze them on what the server rendered).
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');

  // The seeded catalog is deployed on first start; every model gets its replica.
  await page.goto('/admin');
  await page.click('a:has-text("Fleet")');
  await expect(page).toHaveURL(/\/admin\/fleet$/);
  const row = page.locator(`[data-testid="deployment-row"][data-model="${MODEL}"]`);
  await expect(row.getByTestId('ready-count')).toHaveText('1 / 1', { timeout: 30_000 });
  await expect(page.getByTestId('fleet-driver')).toContainText('simulator');
  await expect(page.locator('[data-testid="gpu"][data-held="true"]')).toHaveCount(9);
  await shot(page, 'fleet-01-seeded');

  // Take the model off: confirmed, its replica drains and stops, and the deployment disappears.
  await row.getByRole('link', { name: MODEL }).click();
  await expect(page.getByRole('heading', { name: `Deployment of ${MODEL}` })).toBeVisible();
  await expect(page.getByTestId('events')).toContainText('ready');
  await page.click('button:has-text("Delete deployment")');
  await expect(page).toHaveURL(/\/admin\/fleet$/);
  await expect(page.locator(`[data-testid="deployment-row"][data-model="${MODEL}"]`)).toHaveCount(0, { timeout: 30_000 });

  // The catalog tells developers it cannot answer now; a served model says it is serving.
  await page.goto(`/catalog/${MODEL}`);
  await expect(page.getByTestId('serving')).toHaveAttribute('data-serving', 'unavailable');
  await page.goto('/catalog/llama-3.1-8b-instruct');
  await expect(page.getByTestId('serving')).toHaveAttribute('data-serving', 'ready');
  await page.goto('/admin/fleet');

  // Deploy it again, two GPUs per replica, from the form.
  await page.selectOption('#deploy-model', MODEL);
  await page.fill('#deploy-gpus_per_replica', '2');
  await page.fill('#deploy-min_replicas', '1');
  await page.fill('#deploy-max_replicas', '2');
  await page.fill('#deploy-gpu_products', 'H100-80GB');
  await page.click('button:has-text("Deploy")');
  await expect(page.getByRole('heading', { name: `Deployment of ${MODEL}` })).toBeVisible();
  // Live: the replica goes from pending/starting to ready without a reload.
  await expect(page.getByTestId('replicas')).toBeVisible();
  await expect(page.locator('[data-testid="replica-row"][data-state="ready"]')).toHaveCount(1, { timeout: 30_000 });
  await expect(page.getByTestId('replicas')).toContainText(/sim-node-\d+, GPU \d+, \d+/);
  await shot(page, 'fleet-02-deployed');

  // Scale to two replicas; the second becomes ready too, and the events tell the story.
  await page.fill('#scale-min', '2');
  await page.fill('#scale-max', '2');
  await page.click('[data-testid="scale-form"] button:has-text("Save")');
  await expect(page.locator('[data-testid="replica-row"][data-state="ready"]')).toHaveCount(2, { timeout: 30_000 });
  await expect(page.getByTestId('ready-count')).toHaveText('2 of 2 replicas ready');
  const kinds = await page.getByTestId('event-kind').allTextContents();
  for (const kind of ['created', 'started', 'ready', 'updated']) {
    expect(kinds).toContain(kind);
  }
  await shot(page, 'fleet-03-scaled');

  // New engine arguments roll the replicas over: new ones start, the old drain and stop once the new are ready.
  await page.fill('#engine-max-model-len', '4096');
  await page.click('[data-testid="engine-form"] button:has-text("Roll out")');
  await expect(page.locator('main header')).toContainText('--max-model-len 4096');
  await expect
    .poll(async () => (await page.getByTestId('event-kind').allTextContents()).filter((k) => k === 'stopped').length, { timeout: 30_000 })
    .toBeGreaterThanOrEqual(2);
  await expect(page.locator('[data-testid="replica-row"][data-state="ready"]')).toHaveCount(2);
  await shot(page, 'fleet-04-rolled');

  // Bad input is refused in plain words and creates nothing.
  await page.goto('/admin/fleet');
  await expect(page.locator(`[data-testid="deployment-row"]`)).toHaveCount(9);
  await page.selectOption('#deploy-model', 'bge-m3');
  await page.fill('#deploy-gpus_per_replica', '16');
  await page.click('button:has-text("Deploy")');
  await expect(page.locator('body')).toContainText('cannot run on this fleet');
  await expect(page.locator(`[data-testid="deployment-row"]`)).toHaveCount(9);

  expect(consoleErrors.filter((e) => /hydrat|panicked/i.test(e))).toEqual([]);
});
