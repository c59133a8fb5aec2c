import { defineConfig } from '@playwright/test';
import * as path from 'path';

// The server under test: the debug build of `tollgate` over a fresh SQLite file, on its own port.
const root = path.resolve(__dirname, '..');
// TOLLGATE_E2E_PORT: another port, for running beside another checkout's tests on the same machine.
const port = Number(process.env.TOLLGATE_E2E_PORT ?? 3210);
const bin = process.env.TOLLGATE_BIN ?? path.join(root, 'target', 'debug', 'tollgate');

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      // Debian's Chromium: Playwright's own browser download does not work offline.
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: {
    command: `rm -rf ${root}/target/e2e && mkdir -p ${root}/target/e2e && ${bin}`,
    url: `http://127.0.0.1:${port}/readyz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    env: {
      DATABASE_URL: `sqlite://${root}/target/e2e/tollgate.db`,
      TOLLGATE_LISTEN: `127.0.0.1:${port}`,
      TOLLGATE_PUBLIC_URL: `http://127.0.0.1:${port}`,
      TOLLGATE_SITE_ROOT: `${root}/target/site`,
      TOLLGATE_ADMIN_EMAIL: 'admin@e2e.test',
      TOLLGATE_ADMIN_PASSWORD: 'e2e-admin-password',
      // Replies that stream for seconds (60 ms a token, at least 60 tokens), so the playground's test can watch
      // one grow and stop it midway.
      TOLLGATE_FLEET_SIM_ARGS: '--sim-load-time-s 2 --sim-decode-ms 60 --sim-min-output-tokens 60',
      // Usage alerts are evaluated every second, so alerts.spec.ts sees them at once.
      TOLLGATE_ALERTS_INTERVAL_S: '1',
      TOLLGATE_ALERTS_WEBHOOK_PRIVATE: 'true', // alerts.spec.ts names a webhook on loopback
      RUST_LOG: 'warn',
    },
  },
});
