// A real OpenID Connect provider for Tollgate's tests, built on oidc-provider
// (panva/node-oidc-provider, OpenID Certified). Test-only: plain http on
// loopback, in-memory storage, a signing key generated at start.
//
//   node end2end/oidc/provider.mjs
//
// Environment:
//   OIDC_PORT      port to listen on; 0 (the default) picks a free one.
//   OIDC_HOST      address to bind, default 127.0.0.1.
//   OIDC_ISSUER    issuer override; default http://<OIDC_HOST>:<port>
//                  (http://127.0.0.1:<port> when OIDC_HOST is 0.0.0.0 / ::).
//   OIDC_CLIENTS   JSON array of clients:
//                    [{"client_id", "client_secret", "redirect_uris": [...],
//                      "post_logout_redirect_uris": [...]}]
//                  Any other client metadata given is passed through.
//                  Default: tollgate / tollgate-secret, redirect
//                  http://127.0.0.1:3000/auth/oidc/callback, post-logout
//                  http://127.0.0.1:3000/ and http://127.0.0.1:3000/login.
//   OIDC_ACCOUNTS  JSON object keyed by login:
//                    {"alice": {"email": "...", "name": "...", "groups": ["..."]}}
//                  Optional per account: "email_verified" (default true),
//                  "password" (overrides OIDC_PASSWORD for that account),
//                  any other key is passed through as a claim (it is only
//                  released if a scope in CLAIMS below maps to it).
//                  Default: alice (tollgate:acme:admin), bob
//                  (tollgate:acme:developer), carol (no groups).
//   OIDC_ACCOUNTS_FILE  a file holding OIDC_ACCOUNTS' JSON, read again at every
//                  account lookup (so a test can change a user's groups
//                  between two sign-ins); overrides OIDC_ACCOUNTS.
//   OIDC_PASSWORD  the password every account accepts (default "test").
//
// Login: unknown logins and wrong passwords are REJECTED - the login page is
// shown again with status 401 and an error message; no redirect happens.
// Consent is automatic (never shown): every client is first-party.
//
// On listen, prints exactly one line to stdout:
//   oidc-provider listening on <issuer>
// Everything else (warnings, errors) goes to stderr. Stops on SIGTERM/SIGINT.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import { Provider, errors } from 'oidc-provider';

// oidc-provider prints "attention" notes about development-only settings via
// console.warn / console.info; make sure nothing but our line reaches stdout.
console.log = console.error;
console.info = console.error;

const host = process.env.OIDC_HOST || '127.0.0.1';
const port = Number.parseInt(process.env.OIDC_PORT || '0', 10);
const password = process.env.OIDC_PASSWORD ?? 'test';

function parseJsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`${name} is not valid JSON: ${err.message}`);
    process.exit(2);
  }
}

const clientsIn = parseJsonEnv('OIDC_CLIENTS', [
  {
    client_id: 'tollgate',
    client_secret: 'tollgate-secret',
    redirect_uris: ['http://127.0.0.1:3000/auth/oidc/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:3000/', 'http://127.0.0.1:3000/login'],
  },
]);

const accounts = parseJsonEnv('OIDC_ACCOUNTS', {
  alice: { email: 'alice@example.com', name: 'Alice Admin', groups: ['tollgate:acme:admin'] },
  bob: { email: 'bob@example.com', name: 'Bob Builder', groups: ['tollgate:acme:developer'] },
  carol: { email: 'carol@example.com', name: 'Carol NoGroups', groups: [] },
});

if (!Array.isArray(clientsIn)) {
  console.error('OIDC_CLIENTS must be a JSON array');
  process.exit(2);
}
if (accounts === null || typeof accounts !== 'object' || Array.isArray(accounts)) {
  console.error('OIDC_ACCOUNTS must be a JSON object keyed by login');
  process.exit(2);
}

const clients = clientsIn.map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  post_logout_redirect_uris: [],
  ...c,
}));

const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

function currentAccounts() {
  const file = process.env.OIDC_ACCOUNTS_FILE;
  if (!file) return accounts;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    console.error(`OIDC_ACCOUNTS_FILE ${file} could not be read: ${err.message}`);
    return {};
  }
}

function accountFor(login) {
  const all = currentAccounts();
  if (typeof login !== 'string' || !hasOwn(all, login)) return undefined;
  const a = all[login] || {};
  return { login, ...a };
}

function passwordOk(account, given) {
  if (typeof given !== 'string' || given === '') return false;
  const expected = typeof account.password === 'string' ? account.password : password;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// RS256 signing key, fresh every start.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `tollgate-test-${crypto.randomBytes(4).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

const escapeHtml = (s) => String(s)
  .replaceAll('&', '&amp;')
  .replaceAll('<', '&lt;')
  .replaceAll('>', '&gt;')
  .replaceAll('"', '&quot;')
  .replaceAll("'", '&#39;');

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)}</title>
  <style>
    body { font-family: sans-serif; margin: 40px auto; max-width: 320px; }
    input, button { display: block; width: 100%; margin: 8px 0; padding: 8px; box-sizing: border-box; }
    .error { color: #b00020; }
  </style>
</head>
<body>
  <h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>`;
}

function loginPage(uid, { loginHint = '', error = '' } = {}) {
  const u = encodeURIComponent(uid);
  return page('Sign-in', `  ${error ? `<p class="error" id="login-error" role="alert">${escapeHtml(error)}</p>` : ''}
  <form id="login-form" method="post" action="/interaction/${u}/login" autocomplete="off">
    <input type="hidden" name="prompt" value="login">
    <input id="login" type="text" name="login" placeholder="Login" value="${escapeHtml(loginHint)}" required autofocus>
    <input id="password" type="password" name="password" placeholder="Password" required>
    <button id="submit" type="submit">Sign-in</button>
  </form>
  <p><a id="abort" href="/interaction/${u}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Grants everything requested (scopes + claims) for the session's account, so
// the consent prompt never fires: all test clients are first-party.
async function grantEverything(provider, {
  grantId, accountId, clientId, scopes, claims,
}) {
  const { Grant } = provider;
  let grant = grantId ? await Grant.find(grantId) : undefined;
  if (grant && (grant.accountId !== accountId || grant.clientId !== clientId)) grant = undefined;
  if (!grant) grant = new Grant({ accountId, clientId });
  if (scopes && scopes.length) grant.addOIDCScope([...scopes].join(' '));
  if (claims && claims.length) grant.addOIDCClaims([...claims]);
  await grant.save();
  return grant;
}

const configuration = {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: {
    // Plain-http loopback: cookies are never marked Secure (oidc-provider
    // only sets Secure when ctx.secure, i.e. https or a trusted proxy).
    keys: [crypto.randomBytes(32).toString('base64url')],
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Put every claim of the granted scopes into the ID token too, not only at
  // userinfo (oidc-provider's default is to hold them back for userinfo when
  // an access token is also issued).
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The confirmation form, auto-submitted with logout=yes so a browser
      // never needs to click. Without JS (e.g. reqwest) POST the form with
      // its hidden inputs (xsrf, logout=yes) to its action.
      async logoutSource(ctx, form) {
        const autoForm = form.replace(
          '</form>',
          '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit">Sign out</button></noscript></form>',
        );
        ctx.type = 'html';
        ctx.body = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Signing out</title></head>
<body>
  <p>Signing out&hellip;</p>
  ${autoForm}
  <script>document.forms[0].submit();</script>
</body>
</html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '  <p id="signed-out">You are signed out.</p>');
      },
    },
  },
  async findAccount(ctx, sub) {
    const account = accountFor(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const {
          login, password: _pw, email, name, groups, email_verified: emailVerified, ...rest
        } = account;
        return {
          ...rest,
          sub,
          preferred_username: login,
          email: email ?? `${login}@example.test`,
          email_verified: emailVerified ?? true,
          name: name ?? login,
          groups: Array.isArray(groups) ? groups : [],
        };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    return grantEverything(oidc.provider, {
      grantId,
      accountId: oidc.account.accountId,
      clientId: oidc.client.clientId,
      scopes: [...oidc.requestParamOIDCScopes],
      claims: [...oidc.requestParamClaims],
    });
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([k, v]) => `  <p><strong>${escapeHtml(k)}</strong>: <span class="${escapeHtml(k)}">${escapeHtml(v)}</span></p>`)
      .join('\n'));
  },
  ttl: {
    // Short-ish but generous enough for slow CI.
    AuthorizationCode: 120,
    IdToken: 3600,
    AccessToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
};

const server = http.createServer();

server.listen(port, host, async () => {
  const actualPort = server.address().port;
  const issuerHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const issuer = process.env.OIDC_ISSUER
    || `http://${issuerHost.includes(':') ? `[${issuerHost}]` : issuerHost}:${actualPort}`;

  let provider;
  try {
    provider = new Provider(issuer, configuration);
  } catch (err) {
    console.error('failed to configure oidc-provider:', err);
    process.exit(1);
  }

  // Our own login / consent interactions (instead of devInteractions, which
  // accept any login and ignore the password). provider.use() inserts this
  // before oidc-provider's router.
  provider.use(async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(ctx.path);
    if (!m) return next();
    const [, uid, action] = m;
    ctx.set('cache-control', 'no-store');

    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== uid) throw new errors.SessionNotFound('interaction uid mismatch');
      const { prompt, params } = details;

      if (action === 'abort' && ctx.method === 'GET') {
        const to = await provider.interactionResult(ctx.req, ctx.res, {
          error: 'access_denied',
          error_description: 'End-User aborted interaction',
        }, { mergeWithLastSubmission: false });
        ctx.status = 303;
        ctx.redirect(to);
        return undefined;
      }

      if (action === 'login' && ctx.method === 'POST') {
        if (prompt.name !== 'login') {
          ctx.status = 400;
          ctx.type = 'html';
          ctx.body = page('Error', `<p>unexpected login submission for prompt ${escapeHtml(prompt.name)}</p>`);
          return undefined;
        }
        const form = await readForm(ctx.req);
        const login = (form.get('login') || '').trim();
        const account = accountFor(login);
        if (!account || !passwordOk(account, form.get('password'))) {
          console.error(`oidc-provider: rejected login for ${JSON.stringify(login)}`);
          ctx.status = 401;
          ctx.type = 'html';
          ctx.body = loginPage(uid, { loginHint: login, error: 'Invalid login or password.' });
          return undefined;
        }
        const to = await provider.interactionResult(ctx.req, ctx.res, {
          login: { accountId: login },
        }, { mergeWithLastSubmission: false });
        ctx.status = 303;
        ctx.redirect(to);
        return undefined;
      }

      if (!action && ctx.method === 'GET') {
        if (prompt.name === 'login') {
          ctx.type = 'html';
          ctx.body = loginPage(uid, { loginHint: params.login_hint || '' });
          return undefined;
        }
        if (prompt.name === 'consent') {
          // Only reached for an explicit prompt=consent (loadExistingGrant
          // grants everything otherwise); auto-approve without a page.
          const grant = await grantEverything(provider, {
            grantId: details.grantId,
            accountId: details.session.accountId,
            clientId: params.client_id,
            scopes: prompt.details.missingOIDCScope || [],
            claims: prompt.details.missingOIDCClaims || [],
          });
          const to = await provider.interactionResult(ctx.req, ctx.res, {
            consent: { grantId: grant.jti },
          }, { mergeWithLastSubmission: true });
          ctx.status = 303;
          ctx.redirect(to);
          return undefined;
        }
        ctx.status = 501;
        ctx.type = 'html';
        ctx.body = page('Error', `<p>prompt ${escapeHtml(prompt.name)} not implemented</p>`);
        return undefined;
      }

      ctx.status = 405;
      ctx.body = 'method not allowed';
      return undefined;
    } catch (err) {
      console.error(`oidc-provider: interaction ${ctx.method} ${ctx.path} failed: ${err.message}`);
      ctx.status = err.statusCode || err.status || 500;
      ctx.type = 'html';
      ctx.body = page('Error', `<p class="error">${escapeHtml(err.error || 'server_error')}: ${escapeHtml(err.error_description || err.message)}</p>`);
      return undefined;
    }
  });

  const logErr = (event) => (ctx, err) => {
    const detail = err.error_detail ? ` (${err.error_detail})` : '';
    console.error(`oidc-provider: ${event}: ${err.error || err.name}: ${err.error_description || err.message}${detail}`);
  };
  for (const event of [
    'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error',
    'introspection.error', 'revocation.error', 'discovery.error', 'jwks.error',
  ]) {
    provider.on(event, logErr(event));
  }
  provider.on('server_error', (ctx, err) => console.error('oidc-provider: server_error:', err));

  // Static clients are validated lazily by oidc-provider; fail fast instead.
  for (const { client_id: id } of clients) {
    try {
      if (!await provider.Client.find(String(id))) throw new Error('not found');
    } catch (err) {
      console.error(`oidc-provider: invalid client ${JSON.stringify(id)} in OIDC_CLIENTS: ${err.error_description || err.message}`);
      process.exit(2);
    }
  }

  server.on('request', provider.callback());

  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});

server.on('error', (err) => {
  console.error('oidc-provider: server error:', err.message);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
