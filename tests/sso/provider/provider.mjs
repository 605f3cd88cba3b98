// A real OpenID provider for the tests (oidc-provider), on 127.0.0.1 and a free port.
//
// Configured by the environment: OIDC_TEST_CLIENT (the client, JSON) and OIDC_TEST_ACCOUNTS
// ({"id": {"email": ..., "email_verified": ...}}). Prints {"issuer": ...} once it listens.
// The sign-in "page" is a form the tests post to: which account, and which methods (amr)
// it signed in with; login and consent finish in one step.
import http from 'node:http';
import Provider from 'oidc-provider';

const client = JSON.parse(process.env.OIDC_TEST_CLIENT);
const accounts = JSON.parse(process.env.OIDC_TEST_ACCOUNTS);

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; if (body.length > 10000) req.destroy(); });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [client],
    // Every client must use PKCE: a sign-in without it fails.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    // amr under openid: the ID token carries only the openid scope's claims.
    claims: { openid: ['sub', 'amr'], email: ['email', 'email_verified'], profile: ['name'] },
    cookies: { keys: ['whoopadmin-test-provider-cookie-key'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, name: id, ...account }; } };
    },
  });
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const match = /^\/interaction\/([\w-]+)$/.exec(new URL(req.url, issuer).pathname);
    if (!match) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        res.setHeader('Content-Type', 'text/html');
        return res.end(`<form method="post"><input name="account"><input name="amr"></form>`);
      }
      const form = await readForm(req);
      const accountId = form.get('account');
      if (!accounts[accountId]) {
        return provider.interactionFinished(req, res, {
          error: 'access_denied', error_description: 'unknown test account',
        });
      }
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      const amr = (form.get('amr') || 'pwd').split(',');
      await provider.interactionFinished(
        req, res, { login: { accountId, amr }, consent: { grantId } },
        { mergeWithLastSubmission: false },
      );
    } catch (err) {
      res.statusCode = 400;
      res.end(String(err));
    }
  });
  process.stdout.write(JSON.stringify({ issuer }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
