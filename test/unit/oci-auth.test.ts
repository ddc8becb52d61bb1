// Registry auth pieces without a registry: challenges, scopes, the token flow against a scripted token service,
// credential resolution from a temp docker config, and upload resume against a scripted upload endpoint.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { Authenticator, mergeScopes, parseWwwAuthenticate, type Credentials } from '../../src/oci/registry/auth.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { resolveCredentials, type CredentialOptions } from '../../src/oci/registry/credentials.js';
import type { Reply } from '../../src/oci/registry/transport.js';
import { LayerRereadNeeded, fixedChunks } from '../../src/oci/registry/upload.js';

const reply = (status: number, body: unknown = '', headers: Record<string, string> = {}): Reply => ({
  status,
  headers,
  body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  url: new URL('https://x/'),
});

describe('WWW-Authenticate', () => {
  it('parses several challenges in one header, quoted commas and escapes', () => {
    expect(
      parseWwwAuthenticate(
        'Basic realm="x", Bearer realm="https://auth/t?a=1,2",service="reg",scope="repository:a/b:pull,push", ' +
          'Other title="say \\"hi\\", ok" , charset=UTF-8',
      ),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      {
        scheme: 'bearer',
        params: { realm: 'https://auth/t?a=1,2', service: 'reg', scope: 'repository:a/b:pull,push' },
      },
      { scheme: 'other', params: { title: 'say "hi", ok', charset: 'UTF-8' } },
    ]);
  });

  it('takes header arrays, odd spacing and junk without looping', () => {
    expect(parseWwwAuthenticate(['Bearer  Realm = "r" ,error="invalid_token"', 'Basic'])).toEqual([
      { scheme: 'bearer', params: { realm: 'r', error: 'invalid_token' } },
      { scheme: 'basic', params: {} },
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('"unterminated')).toEqual([{ scheme: 'unterminated', params: {} }]);
  });

  it('merges scopes per resource into stable keys', () => {
    expect(mergeScopes(['repository:b:push', 'repository:a:pull repository:b:pull', 'registry:catalog:*'])).toEqual([
      'registry:catalog:*',
      'repository:a:pull',
      'repository:b:pull,push',
    ]);
    expect(mergeScopes(['repository:host:5000/x:pull'])).toEqual(['repository:host:5000/x:pull']);
  });
});

describe('Authenticator', () => {
  const scope = 'repository:a/b:pull,push';
  const bearer = reply(401, '', {
    'www-authenticate': 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"',
  });
  function setup(credentials: Credentials | null = { username: 'u', password: 'pw-secret' }, answer?: () => Reply) {
    let clock = 1_000_000;
    let n = 0;
    const calls: { url: URL; headers: Record<string, string> }[] = [];
    const auth = new Authenticator({
      registry: 'reg.example',
      credentials: credentials ?? undefined,
      now: () => clock,
      get: async (url, headers) => {
        calls.push({ url, headers });
        return answer?.() ?? reply(200, { access_token: `T${++n}`, expires_in: 100 });
      },
    });
    return { auth, calls, tick: (ms: number) => (clock += ms) };
  }

  it('fetches, caches per scope until near expiry, and shares one fetch between callers', async () => {
    const { auth, calls, tick } = setup();
    expect(await auth.authorization([scope])).toBeUndefined();
    const extra = auth.challenged(bearer, [scope], undefined);
    const [a, b] = await Promise.all([auth.authorization([scope], extra), auth.authorization([scope], extra)]);
    expect([a, b]).toEqual(['Bearer T1', 'Bearer T1']);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url.searchParams.get('service')).toBe('reg');
    expect(calls[0]?.url.searchParams.getAll('scope')).toEqual(['repository:a/b:pull,push']);
    expect(calls[0]?.headers.authorization).toBe(`Basic ${Buffer.from('u:pw-secret').toString('base64')}`);
    tick(80_000);
    expect(await auth.authorization([scope])).toBe('Bearer T1');
    expect(await auth.authorization([scope, 'repository:src:pull'])).toBe('Bearer T2');
    tick(15_000); // 95 s of 100: renewed early
    expect(await auth.authorization([scope])).toBe('Bearer T3');
  });

  it('drops a refused token (expired mid-push) so the next request gets a new one', async () => {
    const { auth } = setup();
    auth.challenged(bearer, [scope], undefined);
    const first = await auth.authorization([scope]);
    auth.challenged(
      reply(401, '', { 'www-authenticate': 'Bearer realm="https://auth.example/token"' }),
      [scope],
      first,
    );
    expect(await auth.authorization([scope])).toBe('Bearer T2');
  });

  it('asks anonymously without credentials; failures name registry, user, scope but not the password', async () => {
    const anon = setup(null);
    anon.auth.challenged(bearer, [scope], undefined);
    await anon.auth.authorization([scope]);
    expect(anon.calls[0]?.headers.authorization).toBeUndefined();

    const refused = setup(undefined, () => reply(401, 'no'));
    refused.auth.challenged(bearer, [scope], undefined);
    const e = await refused.auth.authorization([scope]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(/registry reg\.example .*refused user 'u' for repository:a\/b:pull,push/);
    expect((e as Error).message).not.toContain('pw-secret');
    const flaky = setup(undefined, () => reply(503, 'later', { 'retry-after': '2' }));
    flaky.auth.challenged(bearer, [scope], undefined);
    await expect(flaky.auth.authorization([scope])).rejects.toMatchObject({
      name: 'TransientError',
      retryAfterMs: 2000,
    });
  });

  it('uses Basic after a Basic challenge and refuses without credentials', async () => {
    const { auth } = setup();
    auth.challenged(reply(401, '', { 'www-authenticate': 'Basic realm="r"' }), [scope], undefined);
    expect(await auth.authorization([scope])).toBe(`Basic ${Buffer.from('u:pw-secret').toString('base64')}`);
    expect(auth.denied(reply(401), [scope]).message).toMatch(/rejected the credentials of user 'u' for repository/);
    const none = setup(null);
    expect(() =>
      none.auth.challenged(reply(401, '', { 'www-authenticate': 'Basic realm="r"' }), [scope], undefined),
    ).toThrow(/reg\.example requires credentials for repository:a\/b:pull,push/);
  });
});

describe('resolveCredentials', () => {
  let dir: string;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flake-ci-dockercfg-'));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:hub-pw') },
          'https://ghcr.io': { auth: b64('wrong:url-form') },
          'ghcr.io': { auth: b64('octo:pa:ss') },
          'reg.example:5000': { username: 'u', password: 'p' },
          'bad.example': { auth: b64('nocolon') },
          'helper.example': { identitytoken: 'x' },
        },
        credHelpers: { 'ecr.example': 'ecr-login' },
      }),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const opts = (registry: string, more: Partial<CredentialOptions> = {}, env: Record<string, string> = {}) => ({
    registry,
    platform: 'test' as const,
    env: (name: string) => ({ DOCKER_CONFIG: dir, ...env })[name],
    ...more,
  });

  it('prefers the inputs, then docker config (host, URL and docker.io keys)', () => {
    expect(resolveCredentials(opts('ghcr.io', { username: 'in', password: 'put' }))).toMatchObject({
      username: 'in',
      password: 'put',
    });
    expect(resolveCredentials(opts('ghcr.io'))).toMatchObject({ username: 'octo', password: 'pa:ss' });
    expect(resolveCredentials(opts('docker.io'))).toMatchObject({ username: 'hub', password: 'hub-pw' });
    expect(resolveCredentials(opts('reg.example:5000'))).toMatchObject({ username: 'u', password: 'p' });
    expect(resolveCredentials(opts('reg.example:5000'))?.source).toBe(join(dir, 'config.json'));
    expect(() => resolveCredentials(opts('bad.example'))).toThrow(/not base64 of user:password/);
    expect(() => resolveCredentials(opts('x.example', { username: 'only' }))).toThrow(InputError);
  });

  it('notes ignored helpers and falls back to HOME, then platform defaults', () => {
    const notes: string[] = [];
    expect(resolveCredentials(opts('ecr.example', { debug: (m) => notes.push(m) }))).toBeUndefined();
    expect(resolveCredentials(opts('helper.example', { debug: (m) => notes.push(m) }))).toBeUndefined();
    expect(notes.join('\n')).toMatch(/credential helper for ecr\.example; helpers are not run/);
    expect(notes.join('\n')).toMatch(/identity token/);

    const home = { HOME: '/nonexistent-home', GITHUB_ACTOR: 'octocat' };
    const noDocker = (name: string) => (home as Record<string, string>)[name];
    expect(
      resolveCredentials({ registry: 'ghcr.io', platform: 'github', githubToken: 'ghs_x', env: noDocker }),
    ).toEqual({ username: 'octocat', password: 'ghs_x', source: 'the job token (GITHUB_TOKEN)' });
    expect(
      resolveCredentials({ registry: 'docker.io', platform: 'github', githubToken: 'ghs_x', env: noDocker }),
    ).toBeUndefined();
    const gl = { CI_REGISTRY: 'gitlab.example:5050', CI_REGISTRY_USER: 'gitlab-ci-token', CI_REGISTRY_PASSWORD: 'j' };
    const glEnv = (name: string) => (gl as Record<string, string>)[name];
    expect(resolveCredentials({ registry: 'gitlab.example:5050', platform: 'gitlab', env: glEnv })).toMatchObject({
      username: 'gitlab-ci-token',
      password: 'j',
    });
    expect(resolveCredentials({ registry: 'other.example', platform: 'gitlab', env: glEnv })).toBeUndefined();
  });
});

/**
 * A scripted upload endpoint that, unlike distribution 2.8, keeps the bytes of a cut-off PATCH and reports them in
 * its Range (what the spec allows and some registries do), to drive the mid-chunk resume path.
 */
describe('upload resume from the Range', () => {
  let server: Server;
  let host: string;
  let data = Buffer.alloc(0);
  // Cut PATCH number `patch` (0-based), or the closing PUT, after `after` bytes, keeping those bytes.
  let cut: { patch: number | 'put'; after: number } | undefined;
  let patches = 0;
  let forget = false;
  const ranges: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      const url = new URL(req.url ?? '/', 'http://x');
      const range = () => `0-${Math.max(0, data.length - 1)}`;
      const loc = { location: '/v2/r/blobs/uploads/u1?_state=s', range: range() };
      if (req.method === 'POST') return res.writeHead(202, { ...loc, 'content-length': 0 }).end();
      if (req.method === 'GET') {
        if (forget) data = Buffer.alloc(0);
        return res.writeHead(204, { ...loc, range: range() }).end();
      }
      const patch = req.method === 'PATCH' ? patches++ : req.method === 'PUT' ? 'put' : -1;
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        if (cut?.patch === patch && Buffer.concat(chunks).length >= cut.after) {
          data = Buffer.concat([data, Buffer.concat(chunks).subarray(0, cut.after)]);
          cut = undefined;
          req.socket.destroy();
        }
      });
      req.on('end', () => {
        if (req.method === 'PATCH') {
          ranges.push(String(req.headers['content-range']));
          data = Buffer.concat([data, ...chunks]);
          return res.writeHead(202, { ...loc, range: range(), 'content-length': 0 }).end();
        }
        if (req.method === 'PUT') {
          // The closing PUT may carry the last chunk.
          ranges.push(`PUT ${req.headers['content-range'] ?? ''}`.trim());
          data = Buffer.concat([data, ...chunks]);
          const ok = url.searchParams.get('digest') === `sha256:${createHash('sha256').update(data).digest('hex')}`;
          return res.writeHead(ok && url.searchParams.get('_state') === 's' ? 201 : 400).end();
        }
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => new Promise((r) => server.close(r)));

  const upload = async (blob: Buffer) => {
    const c = new RegistryClient({ registry: host, retry: { baseMs: 1 } });
    try {
      // 10 000-byte pieces, as a compressor would hand them over.
      return await c.uploadBlob('r', fixedChunks([blob], 10_000), { chunkSize: 256 * 1024 });
    } finally {
      c.close();
    }
  };

  it('resends only what the registry lacks, from the middle of the chunk', async () => {
    [data, patches, ranges.length] = [Buffer.alloc(0), 0, 0];
    const blob = randomBytes(600 * 1024);
    cut = { patch: 0, after: 100 * 1024 };
    const up = await upload(blob);
    expect(data.equals(blob)).toBe(true);
    expect(up.digest).toBe(`sha256:${createHash('sha256').update(blob).digest('hex')}`);
    expect(ranges[0]).toMatch(/^1024\d\d-262143$/); // resumed inside the first chunk, not at 0
    expect(ranges.slice(1)).toEqual(['262144-524287', 'PUT 524288-614399']);
  });

  it('resends the rest of a cut-off closing PUT from the middle, then closes without a body', async () => {
    [data, patches, ranges.length] = [Buffer.alloc(0), 0, 0];
    const blob = randomBytes(600 * 1024);
    cut = { patch: 'put', after: 30_000 };
    const up = await upload(blob);
    expect(data.equals(blob)).toBe(true);
    expect(up).toEqual({ digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, size: blob.length });
    // The cut PUT never ends, so it is not listed. 524288 + the 30 000 bytes or more it had delivered: the PATCH
    // starts there, not at the chunk's start; then a PUT without a body closes the session.
    expect(ranges.slice(0, 2)).toEqual(['0-262143', '262144-524287']);
    expect(ranges[2]).toMatch(/^5[5-9]\d{4}-614399$/);
    expect(ranges.slice(3)).toEqual(['PUT']);
  });

  it('asks for a re-read when the registry lost bytes from before the chunk in memory', async () => {
    [data, patches, forget] = [Buffer.alloc(0), 0, true];
    cut = { patch: 1, after: 10 };
    const e = await upload(randomBytes(600 * 1024)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LayerRereadNeeded);
    expect((e as Error).message).toMatch(/holds 0 bytes, this chunk starts at 262144.*the layer must be re-read/);
    forget = false;
  });
});

describe('fixedChunks', () => {
  it('re-slices any stream into equal chunks', async () => {
    async function* src() {
      for (const n of [3, 0, 10, 1, 7]) yield Buffer.alloc(n, n);
    }
    const out: number[] = [];
    for await (const c of fixedChunks(src(), 4)) out.push(c.length);
    expect(out).toEqual([4, 4, 4, 4, 4, 1]);
  });
});
