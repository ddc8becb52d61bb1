// A real OCI registry on 127.0.0.1 for tests and benchmarks: Debian's docker-registry (distribution 2.8) with
// filesystem storage in a temp dir, and optionally htpasswd Basic auth or token auth answered by a small token server
// in this process. Plain JS so benchmarks share it with the TypeScript tests.
import { execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID, sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TOOLS = {
  registry: ['/usr/bin/docker-registry', 'docker-registry'],
  htpasswd: ['/usr/bin/htpasswd', 'apache2-utils'],
  openssl: ['/usr/bin/openssl', 'openssl'],
};

// distribution adds 60 s of leeway to `exp` (registry/auth/token/token.go); tokens are issued that much earlier so
// `tokenTtlSeconds` is the real validity, which lets a test watch a token expire mid-push.
const REGISTRY_LEEWAY_SECONDS = 60;

/** Fails naming the Debian package to install; `auth` decides which tools are needed. */
export function requireRegistryTools(auth = 'none') {
  const needed = [
    TOOLS.registry,
    ...(auth === 'htpasswd' ? [TOOLS.htpasswd] : auth === 'token' ? [TOOLS.openssl] : []),
  ];
  for (const [file, pkg] of needed)
    if (!existsSync(file)) throw new Error(`${file} is missing: apt-get install ${pkg}`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Splits `repository:a/b:pull,push` (names may hold ':' only before the last one: `host:5000/x` is not a name). */
function parseScope(scope) {
  const last = scope.lastIndexOf(':');
  const first = scope.indexOf(':');
  if (first < 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',') };
}

/**
 * The token server: Basic credentials checked against `users`, requested scopes granted (narrowed by `permissions`
 * when the user has an entry there, like a real token server: a narrower token, not an error), JWT signed RS256
 * with the certificate chain in `x5c`, which distribution verifies against `rootcertbundle`.
 */
async function startTokenServer(opts, keyPem, certPem, service, issuer) {
  const key = createPrivateKey(keyPem);
  const certDer = new X509Certificate(certPem).raw;
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const header = req.headers.authorization ?? '';
    let user;
    if (header.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      const [name, password] = [decoded.slice(0, sep), decoded.slice(sep + 1)];
      if (sep < 0 || opts.users?.[name] === undefined || opts.users[name] !== password) {
        requests.push({ user: name, scopes: url.searchParams.getAll('scope'), denied: true });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = name;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
    requests.push({ user, scopes, service: url.searchParams.get('service') });
    if (!user && !opts.anonymous) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"credentials required"}');
      return;
    }
    const access = [];
    for (const s of scopes) {
      const parsed = parseScope(s);
      if (!parsed) continue;
      const allowed = user ? opts.permissions?.[user]?.[parsed.name] : ['pull'];
      const actions = allowed ? parsed.actions.filter((a) => allowed.includes(a)) : parsed.actions;
      if (actions.length) access.push({ type: parsed.type, name: parsed.name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const ttl = opts.tokenTtlSeconds ?? 300;
    const head = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + ttl - REGISTRY_LEEWAY_SECONDS,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
    const token = `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), key))}`;
    const field = opts.tokenField ?? 'token';
    const body = { expires_in: opts.advertisedExpiresIn ?? ttl, issued_at: new Date(now * 1000).toISOString() };
    if (field === 'token' || field === 'both') body.token = token;
    if (field === 'access_token' || field === 'both') body.access_token = token;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/token`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function probe(url) {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (at most 10 s) until /v2/ answers; false when the process exits first or never answers. */
async function started(url, child) {
  for (let i = 0; i < 100; i++) {
    const status = await probe(`${url}/v2/`);
    if (status === 200 || status === 401) return true;
    if (child.exitCode !== null) return false;
    await sleep(100);
  }
  return false;
}

export async function startRegistry(opts = {}) {
  const auth = opts.auth ?? 'none';
  requireRegistryTools(auth);
  const dir = mkdtempSync(join(tmpdir(), 'flake-ci-registry-'));
  let tokenServer;
  let child;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await tokenServer?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const config = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
      http: { secret: randomBytes(16).toString('hex') },
    };
    if (auth === 'htpasswd') {
      const file = join(dir, 'htpasswd');
      writeFileSync(file, '');
      // Passwords go on stdin (-i), so they are not on any process's argv.
      for (const [name, password] of Object.entries(opts.users ?? {}))
        execFileSync('htpasswd', ['-B', '-i', file, name], { input: password, stdio: ['pipe', 'ignore', 'pipe'] });
      config.auth = { htpasswd: { realm: 'flake-ci-test', path: file } };
    } else if (auth === 'token') {
      const keyFile = join(dir, 'token.key');
      const certFile = join(dir, 'token.crt');
      const subject = '/CN=flake-ci-test-token';
      const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', subject];
      execFileSync('openssl', [...args, '-keyout', keyFile, '-out', certFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      const service = 'flake-ci-test-registry';
      const issuer = 'flake-ci-test-issuer';
      tokenServer = await startTokenServer(
        opts,
        readFileSync(keyFile, 'utf8'),
        readFileSync(certFile, 'utf8'),
        service,
        issuer,
      );
      config.auth = { token: { realm: tokenServer.url, service, issuer, rootcertbundle: certFile } };
    }
    const configFile = join(dir, 'config.yml');
    let stderr = '';
    let host;
    // A free port can be taken between probing and binding: try again with another one.
    for (let attempt = 0; ; attempt++) {
      host = `127.0.0.1:${await freePort()}`;
      config.http.addr = host;
      // JSON is YAML, so no YAML writer is needed.
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      stderr = '';
      child = spawn('/usr/bin/docker-registry', ['serve', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr.on('data', (d) => {
        if (stderr.length < 65536) stderr += d.toString();
      });
      if (await started(`http://${host}`, child)) break;
      if (child.exitCode === null || attempt >= 2 || !/address already in use/.test(stderr))
        throw new Error(`docker-registry did not start on ${host} (exit ${child.exitCode}):\n${stderr}`);
    }
    const url = `http://${host}`;
    return { url, host, dir, tokenRequests: tokenServer?.requests ?? [], stderr: () => stderr, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
