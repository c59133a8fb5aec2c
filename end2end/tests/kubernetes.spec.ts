import { test, expect } from '@playwright/test';
import { spawn, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { shot } from './helpers';

// A platform admin runs the fleet on Kubernetes: a second `tollgate` with TOLLGATE_FLEET_DRIVER=kubernetes, against
// the fake Kubernetes API server (no cluster runs here). The GPU node comes from the cluster; a deployment made in
// the portal becomes a Pod; the test plays the scheduler and the kubelet, and the deployment's page follows them
// live: the scheduler's reason, ready, a crash loop.

const root = path.resolve(__dirname, '..', '..');
const port = 3212;
const base = `http://127.0.0.1:${port}`;
const work = path.join(root, 'target', 'e2e-kubernetes');
const NS = 'models';
const PRODUCT = 'NVIDIA-H100-80GB-HBM3';

let fake: ChildProcess | undefined;
let server: ChildProcess | undefined;
let api = '';

async function waitFor(url: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

async function setPodStatus(name: string, status: object) {
  const r = await fetch(`${api}/fake/status/pods/${NS}/${name}`, { method: 'POST', body: JSON.stringify(status) });
  expect(r.status).toBe(204);
}

async function pods(): Promise<any[]> {
  return (await fetch(`${api}/fake/list/pods`)).json();
}

test.beforeAll(async () => {
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');
  const fakeBin = process.env.TOLLGATE_FAKE_KUBE_BIN ?? path.join(targetDir, 'debug', 'tollgate-fake-kube');
  const bin = process.env.TOLLGATE_BIN ?? path.join(targetDir, 'debug', 'tollgate');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const kubeconfig = path.join(work, 'kubeconfig.yaml');
  fake = spawn(fakeBin, ['--kubeconfig', kubeconfig, '--namespace', NS, '--gpu-node', `gpu-a:8:${PRODUCT}:81559`]);
  api = await new Promise<string>((resolve, reject) => {
    let out = '';
    fake!.stdout!.on('data', (d) => {
      out += d.toString();
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    fake!.on('exit', (code) => reject(new Error(`the fake API server exited (${code})`)));
    setTimeout(() => reject(new Error('the fake API server did not start')), 10_000);
  });
  server = spawn(bin, [], {
    stdio: 'inherit',
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${work}/tollgate.db`,
      TOLLGATE_LISTEN: `127.0.0.1:${port}`,
      TOLLGATE_PUBLIC_URL: base,
      TOLLGATE_SITE_ROOT: path.join(root, 'target', 'site'),
      TOLLGATE_ADMIN_EMAIL: 'admin@e2e.test',
      TOLLGATE_ADMIN_PASSWORD: 'e2e-admin-password',
      TOLLGATE_DATA_DIR: work,
      TOLLGATE_FLEET_DRIVER: 'kubernetes',
      TOLLGATE_FLEET_KUBERNETES_KUBECONFIG: kubeconfig,
      TOLLGATE_FLEET_SEED: 'false',
      TOLLGATE_FLEET_TICK_MS: '200',
      TOLLGATE_FLEET_DRAIN_GRACE_S: '1',
      RUST_LOG: 'warn',
    },
  });
  await waitFor(`${base}/readyz`, 60_000);
});

test.afterAll(async () => {
  // The server first (its watches would log the fake's going), then the fake.
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fake?.kill('SIGTERM');
});

test('an admin deploys on Kubernetes and watches what the cluster says', async ({ page }) => {
  test.setTimeout(120_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Signed in on this server (the helpers' signIn uses the shared server's address).
  await page.goto(`${base}/login`);
  await page.fill('#email', 'admin@e2e.test');
  await page.fill('#password', 'e2e-admin-password');
  await page.click('button:has-text("Sign in")');
  await expect(page.getByTestId('user-email')).toHaveText('admin@e2e.test');

  // The cluster's GPU node is the inventory.
  await page.goto(`${base}/admin/fleet`);
  await expect(page.getByTestId('fleet-driver')).toContainText('kubernetes');
  await expect(page.getByTestId('nodes')).toContainText('gpu-a');
  await expect(page.locator('[data-testid="gpu"]')).toHaveCount(8);

  // Deploy a model on two GPUs of that product.
  await page.selectOption('#deploy-model', 'llama-3.1-8b-instruct');
  await page.fill('#deploy-gpus_per_replica', '2');
  await page.fill('#deploy-min_replicas', '1');
  await page.fill('#deploy-max_replicas', '1');
  await page.fill('#deploy-gpu_products', PRODUCT);
  await page.click('button:has-text("Deploy")');
  await expect(page.getByRole('heading', { name: 'Deployment of llama-3.1-8b-instruct' })).toBeVisible();

  // It became a Pod asking for two GPUs of that product.
  await expect.poll(async () => (await pods()).length, { timeout: 15_000 }).toBe(1);
  const pod = (await pods())[0];
  const name: string = pod.metadata.name;
  expect(pod.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe('2');

  // The scheduler cannot place it: its words appear on the page without a reload.
  await setPodStatus(name, { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False',
    reason: 'Unschedulable', message: '0/4 nodes are available: 4 Insufficient nvidia.com/gpu.' }] });
  await expect(page.getByTestId('replicas')).toContainText('waiting for a node: 0/4 nodes are available', { timeout: 15_000 });
  await shot(page, 'kubernetes-01-pending');

  // Scheduled and ready.
  await setPodStatus(name, { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' },
    { type: 'Ready', status: 'True' }] });
  await expect(page.locator('[data-testid="replica-row"][data-state="ready"]')).toHaveCount(1, { timeout: 15_000 });
  await shot(page, 'kubernetes-02-ready');

  // The engine crash-loops: the page says so, with the last exit.
  await setPodStatus(name, { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' },
    { type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'vllm', ready: false, restartCount: 4,
    image: 'vllm', imageID: '', state: { waiting: { reason: 'CrashLoopBackOff' } },
    lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }] });
  await expect(page.getByTestId('replicas')).toContainText('crash-looping: restarted 4 times; last: OOMKilled', { timeout: 15_000 });
  await shot(page, 'kubernetes-03-crash-loop');
  expect(errors).toEqual([]);
});
