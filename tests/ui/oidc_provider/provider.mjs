// A real OpenID Connect provider (npm's certified oidc-provider) for the portal's tests.
//
//   node provider.mjs <config.json>
//
// The config file names the issuer, the port, one confidential client and the users with
// their passwords and groups. Users are read again at every login, so a test changes a
// user's groups by rewriting the file. The login form checks the password for real; there
// is no consent screen (the portal is a first-party client). Prints "ready" when listening.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
const readConfig = () => JSON.parse(readFileSync(configPath, 'utf8'));
const initial = readConfig();

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function account(id) {
  const user = readConfig().users[id];
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        preferred_username: id,
        name: user.name ?? id,
        email: user.email ?? `${id}@example.test`,
        email_verified: true,
        groups: user.groups ?? [],
      };
    },
  };
}

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const provider = new Provider(initial.issuer, {
  clients: [initial.client],
  jwks: { keys: [{ ...signingKey, kid: 'test-key', use: 'sig', alg: 'RS256' }] },
  findAccount: (ctx, id) => account(id),
  // The custom groups claim has its own scope; it is served from userinfo.
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  cookies: { keys: ['test-only-cookie-key'] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // First-party client: every requested scope and claim is granted without a consent page.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    grant.addOIDCClaims(['sub', 'name', 'preferred_username', 'email', 'email_verified', 'groups']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

function loginPage(uid, error) {
  const message = error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : '';
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Test IdP sign-in</title></head>
<body><h1>Test IdP sign-in</h1>${message}
<form method="post" action="/interaction/${escapeHtml(uid)}">
<label for="login">User name</label> <input id="login" name="login" autocomplete="username">
<label for="password">Password</label> <input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid || details.prompt.name !== 'login') {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`unexpected prompt ${details.prompt.name}`);
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(loginPage(uid));
    return;
  }
  const form = await readForm(req);
  const user = readConfig().users[form.get('login')];
  if (!user || user.password !== form.get('password')) {
    res.writeHead(401, { 'content-type': 'text/html' })
      .end(loginPage(uid, 'Wrong user name or password.'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: form.get('login') } }, {
    mergeWithLastSubmission: false,
  });
}

const handleProtocol = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!match) {
    handleProtocol(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((error) => {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
  });
});
server.listen(initial.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
