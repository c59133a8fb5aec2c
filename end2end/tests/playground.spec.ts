import { test, expect, Page } from '@playwright/test';
import { shot, hydrated, signIn } from './helpers';

// The playground, as a developer lives it: from a model page to a chat whose reply streams in token by token,
// a reply stopped mid-way, a reload that keeps the conversation, two models answering side by side, the call
// copied as code, a plan's rate limit shown in words, a completions prompt and an embedding. No API key is made.
// The simulated engines decode at 60 ms a token and answer at least 60 tokens (playwright.config.ts), so a reply
// streams for several seconds. Screenshots go to end2end/screenshots/.

const CHAT = 'llama-3.1-8b-instruct';
const OTHER = 'granite-3.3-8b-instruct';
const LIMITED = 'qwen2.5-coder-7b-instruct';

async function api(page: Page, method: string, path: string, data?: unknown) {
  const base = new URL(page.url()).origin;
  const r = await page.request.fetch(`/api/v1${path}`, { method, data, headers: { Origin: base } });
  expect(r.ok(), `${method} ${path}: ${r.status()} ${await r.text()}`).toBeTruthy();
  return r.json();
}

const reply = (page: Page, turn: number, side = 0) =>
  page.getByTestId('turn').nth(turn).locator(`[data-testid="reply"][data-side="${side}"]`);

test('a developer chats with streaming replies, stops one, compares two models and copies the call', async ({ page, context }) => {
  test.setTimeout(180_000);
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page, 'admin@e2e.test', 'e2e-admin-password');

  // A team subscribed to a few models (Starter needs no approval), one under a plan of one request a minute.
  const team = await api(page, 'POST', '/teams', { name: 'Playground', description: '' });
  const plans: { id: string; name: string }[] = await api(page, 'GET', '/plans');
  const starter = plans.find((p) => p.name === 'Starter')!.id;
  const tiny = await api(page, 'POST', '/plans', { name: 'One a minute', requests_per_minute: '1' });
  const subscriptions: string[] = [];
  for (const [model, plan] of [[CHAT, starter], [OTHER, starter], [LIMITED, tiny.id], ['granite-3.1-2b-base', starter], ['bge-m3', starter]]) {
    const sub = await api(page, 'POST', '/subscriptions', { team_id: team.id, model_id: model, plan_id: plan, note: '' });
    expect(sub.state).toBe('active');
    subscriptions.push(sub.id);
  }

  // From the model page to the playground, with that model picked.
  await page.goto(`/catalog/${CHAT}`);
  await page.getByTestId('try-in-playground').click();
  await expect(page).toHaveURL(new RegExp(`/playground\\?model=${CHAT}`));
  await hydrated(page);
  await expect(page.getByTestId('model-facts-0')).toContainText('Chat');
  await expect(page.locator('#model-0 option:checked')).toContainText('Llama 3.1 8B Instruct');
  // The admin belongs to other specs' teams too (alerts.spec.ts spends a ten-token quota on this model): this
  // test's own team's subscription, by name.
  await page.selectOption('#model-0', { label: 'Llama 3.1 8B Instruct · Playground · Starter plan' });
  // Models the team has no subscription to are listed with the reason.
  await expect(page.locator('[data-testid="missing-model"][data-model="mistral-7b-instruct-v0.3"]')).toContainText('subscribe');

  // A chat, sent from the keyboard: the reply grows while it streams, then shows what it cost.
  await page.fill('#system', 'You are terse.');
  await page.fill('#temperature-0', '0.2');
  await page.focus('#message');
  await page.keyboard.type('Tell me about GPUs.');
  await page.keyboard.press('Control+Enter');
  const first = reply(page, 0);
  await expect(first).toHaveAttribute('data-state', 'streaming');
  const lengths: number[] = [];
  for (let i = 0; i < 8; i++) {
    lengths.push(((await first.getByTestId('reply-text').textContent()) ?? '').length);
    await page.waitForTimeout(250);
  }
  const grew = lengths.filter((n, i) => i > 0 && n > lengths[i - 1]).length;
  expect(grew, `lengths sampled while streaming: ${lengths}`).toBeGreaterThanOrEqual(3);
  await expect(first).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  const stats = first.getByTestId('reply-stats');
  await expect(stats).toContainText(/TTFT \d+ ms/);
  await expect(stats).toContainText(/tokens\/s/);
  await expect(stats).toContainText(/\d+ prompt \+ \d+ completion tokens/);
  await expect(stats).toContainText(/cost \$0\.\d{6}/);
  await expect(stats).toContainText(/\d+\/20 requests left this minute/);
  await shot(page, 'playground-01-streamed');

  // Stop mid-reply: the text stops growing and the reply says it was stopped.
  await page.fill('#message', 'And about TPUs?');
  await page.getByTestId('send').click();
  const second = reply(page, 1);
  await expect(second).toHaveAttribute('data-state', 'streaming');
  await expect.poll(async () => ((await second.getByTestId('reply-text').textContent()) ?? '').length).toBeGreaterThan(10);
  await page.getByTestId('stop').click();
  await expect(second).toHaveAttribute('data-state', 'stopped');
  const stoppedAt = (await second.getByTestId('reply-text').textContent()) ?? '';
  await page.waitForTimeout(1000);
  expect((await second.getByTestId('reply-text').textContent()) ?? '').toBe(stoppedAt);
  await expect(second.getByTestId('reply-note')).toContainText('Stopped');
  await shot(page, 'playground-02-stopped');

  // The conversation survives a reload.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId('turn')).toHaveCount(2);
  await expect(page.getByTestId('user-message').first()).toHaveText('Tell me about GPUs.');
  await expect(page.locator('#system')).toHaveValue('You are terse.');

  // Delete the first turn from the keyboard-reachable buttons each message has.
  await page.getByRole('button', { name: 'Delete message 1' }).click();
  await expect(page.getByTestId('turn')).toHaveCount(1);
  // Edit what is left: the message is changed and answered again.
  await page.getByRole('button', { name: 'Edit message 1' }).click();
  await page.fill('#edit-0', 'And about NPUs?');
  await page.getByRole('button', { name: 'Save and resend' }).click();
  await expect(page.getByTestId('user-message')).toHaveText('And about NPUs?');
  await expect(reply(page, 0)).toHaveAttribute('data-state', 'done', { timeout: 30_000 });

  // Compare: a second model, with its own settings, answers the same message at the same time.
  await page.check('#compare');
  await page.selectOption('#model-1', { label: 'Granite 3.3 8B Instruct · Playground · Starter plan' });
  await page.fill('#temperature-1', '1.5');
  await page.fill('#message', 'Compare yourselves.');
  await page.getByTestId('send').click();
  const a = reply(page, 1, 0);
  const b = reply(page, 1, 1);
  await expect.poll(async () => [await a.getAttribute('data-state'), await b.getAttribute('data-state')]).toEqual(['streaming', 'streaming']);
  await expect(a).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(b).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(a.getByTestId('reply-text')).not.toBeEmpty();
  await expect(b.getByTestId('reply-text')).not.toBeEmpty();
  await shot(page, 'playground-03-compare');

  // As code: this server's /v1, the current parameters and a placeholder key; the copy button copies it.
  await page.getByRole('button', { name: 'Python (openai)' }).click();
  const code = page.getByTestId('code');
  const origin = new URL(page.url()).origin;
  await expect(code).toContainText(`base_url="${origin}/v1"`);
  await expect(code).toContainText('api_key="YOUR_API_KEY"');
  await expect(code).toContainText('temperature=0.2,');
  await expect(code).toContainText('"You are terse."');
  await page.getByRole('button', { name: 'curl' }).click();
  await expect(code).toContainText(`curl ${origin}/v1/chat/completions`);
  await page.getByTestId('copy-code').click();
  await expect(page.getByTestId('copy-code')).toHaveText('Copied');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toContain(`${origin}/v1/chat/completions`);
  expect(copied).toContain('$TOLLGATE_API_KEY');
  await shot(page, 'playground-04-code');

  // A plan of one request a minute: the second call is refused, and the page says so in words.
  await page.uncheck('#compare');
  await page.getByTestId('clear').click();
  await expect(page.getByTestId('turn')).toHaveCount(0);
  await page.selectOption('#model-0', { label: 'Qwen 2.5 Coder 7B Instruct · Playground · One a minute plan' });
  await page.fill('#message', 'One');
  await page.getByTestId('send').click();
  await expect(reply(page, 0)).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(reply(page, 0).getByTestId('reply-stats')).toContainText('0/1 requests left this minute');
  // The limit counts per clock minute: when 'One' was the last request of a minute, 'Two' opens the next one and
  // 'Three' is refused.
  let refused = 1;
  await page.fill('#message', 'Two');
  await page.getByTestId('send').click();
  await expect(reply(page, 1)).toHaveAttribute('data-state', /done|failed/, { timeout: 30_000 });
  if ((await reply(page, 1).getAttribute('data-state')) === 'done') {
    refused = 2;
    await page.fill('#message', 'Three');
    await page.getByTestId('send').click();
  }
  await expect(reply(page, refused)).toHaveAttribute('data-state', 'failed');
  await expect(reply(page, refused).getByTestId('reply-error')).toContainText(/Too many requests \(429\).*requests per minute.*send again in \d+ s/);
  await shot(page, 'playground-05-rate-limited');

  // A completions model gets a prompt; an embeddings model shows the vector's size and first values.
  await page.getByTestId('clear').click();
  await page.selectOption('#model-0', { label: 'Granite 3.1 2B Base · Playground · Starter plan' });
  await expect(page.locator('label[for="message"]')).toHaveText('Prompt');
  await page.fill('#message', 'Once upon a time');
  await page.getByTestId('send').click();
  await expect(reply(page, 0)).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(reply(page, 0).getByTestId('reply-text')).not.toBeEmpty();

  // A model that is still starting: the gateway answers 503 with Retry-After (its exact body, as
  // server/gateway/src/error.rs writes it for a starting model, given once by the browser's network layer here);
  // the page says it is warming up, counts down, retries by itself and then shows the answer.
  let held = 0;
  await page.route('**/playground/api/completions*', async (route) => {
    if (held++ > 0) return route.continue();
    await route.fulfill({
      status: 503,
      headers: { 'content-type': 'application/json', 'retry-after': '2' },
      body: JSON.stringify({ error: {
        message: 'The model `granite-3.1-2b-base` is starting; retry in a few seconds.',
        type: 'service_unavailable', param: null, code: 'no_replica' } }),
    });
  });
  await page.fill('#message', 'Twice upon a time');
  await page.getByTestId('send').click();
  const warming = reply(page, 0);
  await expect(warming.getByTestId('reply-note')).toContainText(/warming up; retrying in [12] s/);
  await shot(page, 'playground-07-warming-up');
  await expect(warming).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(warming.getByTestId('reply-text')).not.toBeEmpty();
  await expect(warming.getByTestId('reply-note')).toHaveCount(0);
  expect(held).toBe(2);
  await page.unroute('**/playground/api/completions*');

  await page.selectOption('#model-0', { label: 'BGE-M3 · Playground · Starter plan' });
  await expect(page.locator('label[for="message"]')).toHaveText('Text to embed');
  await page.fill('#message', 'vector search');
  await page.getByRole('button', { name: 'Embed' }).click();
  await expect(reply(page, 0).getByTestId('reply-text')).toContainText(/A vector of \d+ dimensions: \[-?\d\.\d{4}, /);
  await shot(page, 'playground-06-embeddings');

  // Cleared, it stays cleared after a reload.
  await page.getByTestId('clear').click();
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId('turn')).toHaveCount(0);

  // Every call was metered under the subscriptions as playground traffic, with no key.
  const usage = await api(page, 'GET', '/usage?limit=1000');
  const ours = usage.items.filter((u: { subscription_id: string }) => subscriptions.includes(u.subscription_id));
  expect(ours.length).toBeGreaterThanOrEqual(5);
  const sources = ours.map((u: { key_id: string | null; source: string }) => [u.key_id, u.source]);
  expect(sources.filter(([key, source]: [string | null, string]) => key !== null || source !== 'playground')).toEqual([]);

  expect(consoleErrors.filter((e) => /hydrat|panicked/i.test(e))).toEqual([]);
});
