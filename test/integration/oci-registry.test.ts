// The registry client against Debian's docker-registry (distribution 2.8) on 127.0.0.1: anonymous, htpasswd and
// token auth, faults injected by a proxy, and skopeo reading back what was pushed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { InputError, TransientError } from '../../src/errors.js';
import { CompressionPool, compressLayer } from '../../src/oci/compress.js';
import { RegistryClient, RetryBudgetExhausted, type RegistryClientOptions } from '../../src/oci/registry/client.js';
import { LayerRereadNeeded } from '../../src/oci/registry/upload.js';
import { MEDIA } from '../../src/oci/types.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.mjs';
import { startRegistry, type Registry } from '../support/registry.mjs';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KiB = 1024;
// Async: the token server lives in this process, so a blocking exec would deadlock skopeo's token request.
const skopeo = async (args: string[]) => (await promisify(execFile)('skopeo', args, { timeout: 60_000 })).stdout;

/** The blob as a stream of 64 KiB pieces, optionally slow (a compressor that takes its time). */
async function* pieces(data: Buffer, delayMs = 0): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += 64 * KiB) {
    if (delayMs) await sleep(delayMs);
    yield data.subarray(i, i + 64 * KiB);
  }
}

const clients: RegistryClient[] = [];
function client(opts: RegistryClientOptions): RegistryClient {
  const c = new RegistryClient({ timeoutMs: 10_000, retry: { baseMs: 10, maxMs: 2000 }, ...opts });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

/** A minimal valid image: one tiny uncompressed layer tar, its config, an OCI manifest. */
function minimalImage() {
  const dir = mkdtempSync(join(tmpdir(), 'flake-ci-layer-'));
  writeFileSync(join(dir, 'hello.txt'), 'hello from flake-ci\n');
  const layer = execFileSync('tar', ['-c', '--owner=0', '--group=0', '--mtime=@0', '-C', dir, 'hello.txt']);
  rmSync(dir, { recursive: true, force: true });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MEDIA.ociLayerTar, digest: sha256(layer), size: layer.length }],
    }),
  );
  return { layer, config, manifest };
}

/** Blob upload in several chunks, HEAD, mount, manifest by tag and digest: what every auth mode must do. */
async function fullFlow(
  c: RegistryClient,
  repo: string,
  registry: Registry,
  authfile?: string,
  afterClient = () => {},
) {
  const data = randomBytes(700 * KiB);
  const up = await c.uploadBlob(repo, pieces(data), { chunkSize: 256 * KiB });
  expect(up).toEqual({ digest: sha256(data), size: data.length });
  expect(await c.hasBlob(repo, up.digest)).toBe(data.length);
  expect(await c.hasBlob(repo, sha256(Buffer.from('absent')))).toBeUndefined();
  expect(sha256(await c.getBlob(repo, up.digest, 1 << 20))).toBe(up.digest);
  expect(await c.mountBlob(`${repo}-copy`, up.digest, repo)).toBe(true);
  expect(await c.hasBlob(`${repo}-copy`, up.digest)).toBe(data.length);
  expect(await c.mountBlob(`${repo}-copy`, sha256(Buffer.from('absent')), repo)).toBe(false);

  const img = minimalImage();
  for (const blob of [img.layer, img.config]) await c.uploadBlob(repo, pieces(blob), { expectedDigest: sha256(blob) });
  const digest = await c.putManifest(repo, 'v1', img.manifest, MEDIA.ociManifest);
  expect(digest).toBe(sha256(img.manifest));
  expect(await c.putManifest(repo, digest, img.manifest, MEDIA.ociManifest)).toBe(digest);
  for (const ref of ['v1', digest]) {
    const got = await c.getManifest(repo, ref, [MEDIA.ociManifest, MEDIA.dockerManifest]);
    expect(got).toEqual({ mediaType: MEDIA.ociManifest, digest, body: img.manifest });
  }
  expect(await c.getManifest(repo, 'absent', [MEDIA.ociManifest])).toBeUndefined();
  afterClient();

  // A real client sees the image: skopeo reads the manifest and config, then copies every blob, checking digests.
  const args = ['--tls-verify=false', ...(authfile ? ['--authfile', authfile] : [])];
  const inspect = JSON.parse(await skopeo(['inspect', ...args, `docker://${registry.host}/${repo}:v1`]));
  expect(inspect).toMatchObject({ Digest: digest, Architecture: 'amd64', Os: 'linux', Layers: [sha256(img.layer)] });
  const out = mkdtempSync(join(tmpdir(), 'flake-ci-skopeo-'));
  try {
    await skopeo([
      'copy',
      '--quiet',
      '--preserve-digests',
      `--src-tls-verify=false`,
      ...(authfile ? ['--src-authfile', authfile] : []),
      `docker://${registry.host}/${repo}:v1`,
      `oci:${out}:v1`,
    ]);
    expect(readFileSync(join(out, 'blobs', 'sha256', sha256(img.layer).slice(7)))).toEqual(img.layer);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return up;
}

/** A skopeo auth file in the registry's temp dir (removed with it). */
function authFile(reg: Registry, user: string, password: string): string {
  const host = reg.host;
  const file = join(reg.dir, `auth-${user}.json`);
  writeFileSync(
    file,
    JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }),
  );
  return file;
}

describe('anonymous registry', () => {
  let reg: Registry;
  beforeAll(async () => void (reg = await startRegistry()));
  afterAll(async () => reg?.stop());

  it('uploads in chunks, mounts, pushes manifests that skopeo reads', async () => {
    const c = client({ registry: reg.host });
    await fullFlow(c, 'flake-ci/anon', reg);
    const empty = await c.uploadBlob('flake-ci/anon', pieces(Buffer.alloc(0)));
    expect(empty).toEqual({ digest: sha256(Buffer.alloc(0)), size: 0 });
    expect(await c.hasBlob('flake-ci/anon', empty.digest)).toBe(0);
  });

  it('reuses the memory of stored members once the registry acknowledged them, sending every byte intact', async () => {
    const c = client({ registry: reg.host });
    const pool = new CompressionPool(2);
    // Incompressible runs (stored members, written into the pool's arenas) between text (deflated).
    const text = (n: number) =>
      Buffer.from('a few words of text, again and again; '.repeat(Math.ceil(n / 38))).subarray(0, n);
    const layers = [1, 2, 3].map((i) =>
      Buffer.concat([randomBytes(300 * KiB * i), text(100 * KiB), randomBytes(500 * KiB), text(50 * KiB * i)]),
    );
    const push = (raw: Buffer) => {
      const layer = compressLayer(pieces(raw), { compression: 'gzip', chunkSize: 64 * KiB, parallelism: 2, pool });
      // Chunks smaller than an arena and not aligned with members: arenas are shared by chunks, uploads and layers.
      return c.uploadBlob('flake-ci/arenas', layer.chunks, {
        chunkSize: 100 * KiB,
        sourceDigest: async () => (await layer.result).digest,
        sent: (parts) => pool.members.giveBack(parts),
      });
    };
    for (let round = 0; round < 4; round++) {
      const ups = await Promise.all(layers.map(push));
      for (const [i, up] of ups.entries())
        expect(gunzipSync(await c.getBlob('flake-ci/arenas', up.digest, 8 << 20)).equals(layers[i] as Buffer)).toBe(
          true,
        );
    }
    // About 13 MB of stored members went through a few 2 MiB arenas (without reuse: one per 2 MiB).
    expect(pool.members.allocated).toBeLessThanOrEqual(4);
  });
});

describe('htpasswd registry', () => {
  let reg: Registry;
  beforeAll(async () => void (reg = await startRegistry({ auth: 'htpasswd', users: { alice: 's3cret-pw' } })));
  afterAll(async () => reg?.stop());

  it('does the full flow with Basic credentials', async () => {
    const platform = new RecordingPlatform();
    const c = client({ registry: reg.host, credentials: { username: 'alice', password: 's3cret-pw' }, platform });
    await fullFlow(c, 'team/basic', reg, authFile(reg, 'alice', 's3cret-pw'));
    expect(platform.allText()).not.toContain('s3cret-pw');
  });

  it('names registry, user and scope (never the password) for a wrong password or none', async () => {
    const c = client({ registry: reg.host, credentials: { username: 'alice', password: 'wrong-pw' } });
    const e = await c.hasBlob('team/basic', sha256(Buffer.from('x'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(new RegExp(`${reg.host}.*alice.*repository:team/basic:pull,push`));
    expect((e as Error).message).not.toContain('wrong-pw');
    await expect(client({ registry: reg.host }).hasBlob('team/basic', sha256(Buffer.from('x')))).rejects.toThrow(
      /requires credentials for repository:team\/basic:pull,push/,
    );
  });
});

describe('token registry', () => {
  let reg: Registry;
  const users = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' };
  beforeAll(async () => {
    reg = await startRegistry({
      auth: 'token',
      users,
      permissions: { bob: { 'team/app': ['pull'], 'carol/src': [] } },
      tokenField: 'access_token',
    });
  });
  afterAll(async () => reg?.stop());

  it('does the full flow with Bearer tokens, one token per scope', async () => {
    const platform = new RecordingPlatform();
    const c = client({ registry: reg.host, credentials: { username: 'alice', password: 'alice-pw' }, platform });
    let ours: string[] = [];
    // Before skopeo, which asks the same token server as alice.
    const snapshot = () =>
      void (ours = reg.tokenRequests.filter((r) => r.user === 'alice').map((r) => r.scopes.join(' ')));
    await fullFlow(c, 'team/app', reg, authFile(reg, 'alice', 'alice-pw'), snapshot);
    // pull,push on the repo, the same on the copy, and one for the mount (copy push + source pull): cached after.
    expect(new Set(ours).size).toBe(ours.length);
    expect(ours).toContain('repository:team/app-copy:pull,push repository:team/app:pull');
    expect(platform.allText()).not.toMatch(/alice-pw|eyJ/);
  });

  it('names registry and scope for a wrong password, and says push was denied', async () => {
    const wrong = client({ registry: reg.host, credentials: { username: 'alice', password: 'nope-pw' } });
    const e = await wrong.hasBlob('team/app', sha256(Buffer.from('x'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(
      new RegExp(`registry ${reg.host}.*refused user 'alice' for repository:team/app:pull,push`),
    );
    expect((e as Error).message).not.toContain('nope-pw');

    const bob = client({ registry: reg.host, credentials: { username: 'bob', password: 'bob-pw' } });
    expect(await bob.hasBlob('team/app', sha256(Buffer.from('x')))).toBeUndefined(); // pull is enough for HEAD
    await expect(bob.uploadBlob('team/app', pieces(Buffer.from('data')))).rejects.toThrow(
      new RegExp(`Registry ${reg.host} denied repository:team/app:pull,push to user 'bob'`),
    );
    // bob may push to his own repository but not read carol's: a mount from there is declined, not an error.
    const carols = await client({
      registry: reg.host,
      credentials: { username: 'carol', password: 'carol-pw' },
    }).uploadBlob('carol/src', pieces(Buffer.from('carol data')));
    expect(await bob.mountBlob('bob/dst', carols.digest, 'carol/src')).toBe(false);
    expect(await bob.hasBlob('bob/dst', carols.digest)).toBeUndefined();
  });
});

describe('faults between client and registry', () => {
  let reg: Registry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy({ target: reg.url });
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });
  afterEach(() => proxy.clearRules());
  /** The last `n` upload and blob requests through the proxy, as `METHOD content-range`. */
  const uploadRequests = (n: number) =>
    proxy.log
      .filter((l) => ['PATCH', 'PUT', 'GET', 'HEAD'].includes(String(l.method)))
      .slice(-n)
      .map((l) => `${l.method} ${l.contentRange ?? ''}`.trim());

  it('retries a 500, and waits out a 429 Retry-After', async () => {
    const c = client({ registry: proxy.host });
    proxy.addRule({ method: 'POST', path: /blobs\/uploads\/$/, times: 1, action: { status: 500 } });
    const data = randomBytes(300 * KiB);
    expect((await c.uploadBlob('f/a', pieces(data))).digest).toBe(sha256(data));
    expect(c.retries).toBe(1);

    proxy.addRule({ method: 'HEAD', times: 1, action: { status: 429, headers: { 'retry-after': '1' } } });
    const t0 = Date.now();
    expect(await c.hasBlob('f/a', sha256(data))).toBe(data.length);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
  });

  it('resumes from the Range after a PATCH is cut off before reaching the registry', async () => {
    const c = client({ registry: proxy.host });
    // The second chunk's PATCH is cut after 100 KiB and none of it reaches the registry.
    const rule = proxy.addRule({
      method: 'PATCH',
      skip: 1,
      times: 1,
      action: { dropAfterBytes: 100 * KiB, forward: false },
    });
    const data = randomBytes(600 * KiB);
    const up = await c.uploadBlob('f/resume', pieces(data), { chunkSize: 256 * KiB });
    expect(rule.hits).toBe(1);
    expect(uploadRequests(5)).toEqual([
      'PATCH 0-262143',
      'PATCH 262144-524287',
      'GET', // how far did it get? Range: 0-262143
      'PATCH 262144-524287',
      'PUT 524288-614399', // the last, shorter chunk closes the session
    ]);
    expect(await c.hasBlob('f/resume', up.digest)).toBe(data.length);
    expect(sha256(await c.getBlob('f/resume', up.digest, 1 << 20))).toBe(sha256(data));
  });

  it('sends the last chunk as the body of the closing PUT, and a whole number of chunks without one', async () => {
    const c = client({ registry: proxy.host });
    const data = randomBytes(600 * KiB);
    const up = await c.uploadBlob('f/last', pieces(data), { chunkSize: 256 * KiB });
    expect(uploadRequests(3)).toEqual(['PATCH 0-262143', 'PATCH 262144-524287', 'PUT 524288-614399']);
    expect(sha256(await c.getBlob('f/last', up.digest, 1 << 20))).toBe(sha256(data));

    const even = randomBytes(512 * KiB);
    const up2 = await c.uploadBlob('f/last', pieces(even), { chunkSize: 256 * KiB });
    expect(uploadRequests(3)).toEqual(['PATCH 0-262143', 'PATCH 262144-524287', 'PUT']);
    expect(sha256(await c.getBlob('f/last', up2.digest, 1 << 20))).toBe(sha256(even));
  });

  it('resumes with a PATCH when the closing PUT is cut off before reaching the registry', async () => {
    const c = client({ registry: proxy.host });
    const rule = proxy.addRule({ method: 'PUT', times: 1, action: { dropAfterBytes: 10 * KiB, forward: false } });
    const data = randomBytes(600 * KiB);
    const up = await c.uploadBlob('f/put-cut', pieces(data), { chunkSize: 256 * KiB });
    expect(rule.hits).toBe(1);
    expect(uploadRequests(5)).toEqual([
      'PATCH 262144-524287',
      'PUT 524288-614399', // cut
      'GET', // Range: 0-524287
      'PATCH 524288-614399',
      'PUT',
    ]);
    expect(sha256(await c.getBlob('f/put-cut', up.digest, 1 << 20))).toBe(sha256(data));
  });

  it('sends the last chunk as a PATCH when the registry refuses it on the closing PUT', async () => {
    const c = client({ registry: proxy.host });
    const refuse = proxy.addRule({
      method: 'PUT',
      path: /\/blobs\/uploads\//,
      times: 1,
      action: { status: 400, body: '{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"injected: no body here"}]}' },
    });
    const data = randomBytes(600 * KiB);
    const up = await c.uploadBlob('f/put-refused', pieces(data), { chunkSize: 256 * KiB });
    expect(refuse.hits).toBe(1);
    expect(uploadRequests(3)).toEqual(['PUT 524288-614399', 'PATCH 524288-614399', 'PUT']);
    expect(sha256(await c.getBlob('f/put-refused', up.digest, 1 << 20))).toBe(sha256(data));
  });

  it('takes a closing PUT whose answer was lost as done when the blob is there', async () => {
    const c = client({ registry: proxy.host, retry: { baseMs: 1 } });
    proxy.addRule({ method: 'PUT', times: 1, action: { dropResponse: true } });
    const data = randomBytes(300 * KiB);
    const up = await c.uploadBlob('f/put-lost', pieces(data), { chunkSize: 256 * KiB });
    expect(up).toEqual({ digest: sha256(data), size: data.length });
    // The session is gone after the commit, so the client asked for the blob instead of resending.
    expect(uploadRequests(3)).toEqual(['PUT 262144-307199', 'GET', 'HEAD']);
    expect(sha256(await c.getBlob('f/put-lost', up.digest, 1 << 20))).toBe(sha256(data));
  });

  it('asks for a re-read when the registry kept part of a cut-off PATCH (distribution 2.8 cannot resume it)', async () => {
    const c = client({ registry: proxy.host });
    proxy.addRule({ method: 'PATCH', times: 1, action: { dropAfterBytes: 100 * KiB } });
    const data = randomBytes(600 * KiB);
    const e = await c.uploadBlob('f/partial', pieces(data), { chunkSize: 256 * KiB }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LayerRereadNeeded);
    expect((e as Error).message).toMatch(/the layer must be re-read/);
    const again = await c.uploadBlob('f/partial', pieces(data), { chunkSize: 256 * KiB });
    expect(await c.hasBlob('f/partial', again.digest)).toBe(data.length);
  });

  it('times out a stalled request and retries it', async () => {
    const c = client({ registry: proxy.host, timeoutMs: 500 });
    proxy.addRule({ method: 'HEAD', times: 1, action: { stallMs: Infinity } });
    expect(await c.hasBlob('f/a', sha256(Buffer.from('none')))).toBeUndefined();
    expect(c.retries).toBe(1);
  });

  it('gives up with a clear error when the retry budget is spent', async () => {
    proxy.addRule({ method: 'HEAD', action: { status: 503 } });
    const c = client({ registry: proxy.host, retry: { attempts: 10, budget: 3, baseMs: 1 } });
    const e = await c.hasBlob('f/a', sha256(Buffer.from('x'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RetryBudgetExhausted);
    expect(e).toBeInstanceOf(TransientError); // ...that an outer loop must not retry (isRetryable says no)
    expect((e as Error).message).toMatch(new RegExp(`gave up after 3 retries pushing to ${proxy.host}.*answered 503`));
    // Spent is spent: the next request fails on its first error.
    await expect(c.hasBlob('f/b', sha256(Buffer.from('x')))).rejects.toBeInstanceOf(RetryBudgetExhausted);
    const few = client({ registry: proxy.host, retry: { attempts: 2, baseMs: 1 } });
    await expect(few.hasBlob('f/a', sha256(Buffer.from('x')))).rejects.toThrow(/gave up after 1 retries pushing to/);
  });

  it('follows a blob redirect to another host without our Authorization', async () => {
    const blob = Buffer.from('config bytes');
    const seen: (string | undefined)[] = [];
    const cdn = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end(blob);
    });
    await new Promise<void>((r) => cdn.listen(0, '127.0.0.1', r));
    try {
      const port = (cdn.address() as { port: number }).port;
      proxy.addRule({
        method: 'GET',
        path: /\/blobs\/sha256:/,
        action: { redirect: `http://127.0.0.1:${port}/b?sig=x` },
      });
      const c = client({ registry: proxy.host, credentials: { username: 'u', password: 'p' } });
      // The registry has no auth, so teach the client Basic auth via one injected challenge first.
      proxy.addRule({
        method: 'HEAD',
        times: 1,
        action: { status: 401, headers: { 'www-authenticate': 'Basic realm="x"' } },
      });
      await c.hasBlob('f/a', sha256(blob));
      expect(await c.getBlob('f/a', sha256(blob), 1024)).toEqual(blob);
      expect(proxy.log.at(-1)).toMatchObject({ method: 'GET', authorization: true });
      expect(seen).toEqual([undefined]);
    } finally {
      await new Promise((r) => cdn.close(r));
    }
  });
});

describe('token expiry mid-upload', () => {
  let reg: Registry;
  beforeAll(async () => {
    // Valid for 2 s but advertised for 300 s, so the client only learns of the expiry from the registry's 401.
    reg = await startRegistry({
      auth: 'token',
      users: { alice: 'pw-a' },
      tokenTtlSeconds: 2,
      advertisedExpiresIn: 300,
    });
  });
  afterAll(async () => reg?.stop());

  it('gets a new token and resends the refused chunk', async () => {
    const c = client({ registry: reg.host, credentials: { username: 'alice', password: 'pw-a' } });
    const data = randomBytes(640 * KiB);
    // Ten 64 KiB pieces 400 ms apart: about 4 s, so the first token dies during the upload.
    const up = await c.uploadBlob('team/slow', pieces(data, 400), { chunkSize: 128 * KiB });
    expect(up.digest).toBe(sha256(data));
    expect(reg.tokenRequests.filter((r) => r.user === 'alice').length).toBeGreaterThanOrEqual(2);
    expect(c.retries).toBe(0); // a re-authentication is not a retry
    expect(await c.hasBlob('team/slow', up.digest)).toBe(data.length);
  });
});
