/**
 * actions/oci-push through a fault-injecting proxy in front of docker-registry: every request it sends is counted,
 * and 500s, 429 with Retry-After, connections cut mid-blob, stalls and expiring tokens are injected. A push either
 * completes (and skopeo, reading the registry directly, finds the right image) or fails with a clear message and
 * leaves every tag where it was.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.mjs';
import { requireCommand } from '../support/fixtures.js';
import {
  exists,
  fixtures,
  ok,
  push,
  totalsOf,
  verify,
  type Fixtures,
  distSnapshot,
  removeDistSnapshot,
} from '../support/oci-push.js';
import { startRegistry, type Registry } from '../support/registry.mjs';

let fx: Fixtures;
let reg: Registry;
let proxy: FaultProxy;
const UPLOADS = /\/blobs\/uploads\//;

beforeAll(async () => {
  requireCommand('/usr/bin/skopeo', 'skopeo');
  await distSnapshot();
  fx = await fixtures();
  reg = await startRegistry();
  proxy = await startFaultProxy({ target: reg.url });
}, 300_000);

afterAll(async () => {
  removeDistSnapshot();
  await proxy?.stop();
  await reg?.stop();
});

afterEach(() => proxy.clearRules());

/** Requests the proxy saw while `fn` ran. */
async function counting<T>(fn: () => Promise<T>): Promise<{ result: T; count: (m: string, p: RegExp) => number }> {
  const before = proxy.log.length;
  const result = await fn();
  const seen = proxy.log.slice(before);
  return { result, count: (m, p) => seen.filter((l) => l.method === m && p.test(l.path ?? '')).length };
}

describe('counted requests', () => {
  it('a re-push from a fresh runner sends no blob upload request at all', async () => {
    const tags = `${proxy.host}/count/app:v1`;
    const first = await counting(() => push({ image: fx.stream, tags }));
    ok(first.result);
    // The fixture's layers are smaller than one chunk: each goes as the body of the PUT that closes its upload.
    expect(first.count('PUT', UPLOADS)).toBeGreaterThanOrEqual(3);
    const again = await counting(() => push({ image: fx.stream, tags }));
    ok(again.result);
    for (const m of ['POST', 'PATCH', 'PUT']) expect({ m, n: again.count(m, UPLOADS) }).toEqual({ m, n: 0 });
    expect(totalsOf(again.result, `${proxy.host}/count/app`)).toMatchObject({ skipped: 3, bytes: 0 });
  });
});

describe('transient failures are retried', () => {
  it('retries 500s and waits out a 429 Retry-After, then pushes the right image', async () => {
    const repo = 'faults/retry';
    const post = proxy.addRule({ method: 'POST', path: UPLOADS, times: 2, action: { status: 500 } });
    const head = proxy.addRule({
      method: 'HEAD',
      times: 1,
      action: { status: 429, headers: { 'retry-after': '1' } },
    });
    const manifest = proxy.addRule({ method: 'PUT', path: /\/manifests\//, times: 1, action: { status: 503 } });
    const r = await push({ image: fx.stream, tags: `${proxy.host}/${repo}:v1`, concurrency: '1' });
    ok(r);
    expect([post.hits, head.hits, manifest.hits]).toEqual([2, 1, 1]);
    expect(r.durationMs).toBeGreaterThanOrEqual(1000);
    expect((await verify(`${reg.host}/${repo}:v1`, fx.layers)).digest).toBe(r.outputs.digest);
  });

  it('resumes an upload cut off before the registry saw its bytes', async () => {
    const repo = 'faults/resume';
    // The closing PUT, which carries each of these small layers.
    const cut = proxy.addRule({
      method: 'PUT',
      path: UPLOADS,
      times: 1,
      action: { dropAfterBytes: 100, forward: false },
    });
    const r = await counting(() => push({ image: fx.archiveGz, tags: `${proxy.host}/${repo}:v1` }));
    ok(r.result);
    expect(cut.hits).toBe(1);
    expect(r.count('GET', UPLOADS)).toBeGreaterThanOrEqual(1); // asked the registry how far it got
    expect(r.count('PATCH', UPLOADS)).toBe(1); // and sent the chunk again
    expect(r.result.log).not.toContain('reading the image again');
    await verify(`${reg.host}/${repo}:v1`, fx.layers);
  });

  it('reads the image again when the registry kept part of a chunk cut off mid-blob', async () => {
    const repo = 'faults/reread';
    const cut = proxy.addRule({ method: 'PUT', path: UPLOADS, times: 1, action: { dropAfterBytes: 100 } });
    // The streamed image: its script runs again for the second pass; layers already pushed are not sent again.
    const r = await push({ image: fx.stream, tags: `${proxy.host}/${repo}:v1`, concurrency: '1' });
    ok(r);
    expect(cut.hits).toBe(1);
    expect(r.log).toMatch(/the layer must be re-read.*reading the image again/);
    expect((await verify(`${reg.host}/${repo}:v1`, fx.layers)).digest).toBe(r.outputs.digest);
  });
});

describe('failures leave every tag where it was', () => {
  it('gives up clearly when the retry budget is spent; the tag still points at the previous image', async () => {
    const tag = `${proxy.host}/faults/kept:v1`;
    const before = await push({ image: fx.stream, tags: tag });
    ok(before);
    for (const method of ['PATCH', 'PUT']) proxy.addRule({ method, path: UPLOADS, action: { status: 503 } });
    // zstd layers: a new image (the gzip layers the tag has cannot stand in for them), so blobs must be uploaded.
    const r = await counting(() => push({ image: fx.stream, compression: 'zstd', tags: tag, 'retry-budget': '2' }));
    expect(r.result.ok).toBe(false);
    expect(r.result.failed.join('\n')).toMatch(new RegExp(`gave up after 2 retries pushing to ${proxy.host}.*503`));
    expect(r.count('PUT', /\/manifests\//)).toBe(0);
    expect((await verify(`${reg.host}/faults/kept:v1`, fx.layers)).digest).toBe(before.outputs.digest);
  });

  it('a manifest refused in one repository moves no tag in any repository', async () => {
    const [one, two] = ['faults/one', 'faults/two'];
    const tags = `${proxy.host}/${one}:v1 ${proxy.host}/${two}:v1`;
    const before = await push({ image: fx.stream, tags });
    ok(before);
    const refuse = proxy.addRule({
      method: 'PUT',
      path: /\/v2\/faults\/two\/manifests\/sha256:/,
      action: { status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"injected"}]}' },
    });
    const r = await counting(() => push({ image: fx.stream, compression: 'zstd', tags }));
    expect(r.result.ok).toBe(false);
    expect(refuse.hits).toBe(1);
    expect(r.result.failed.join('\n')).toMatch(/MANIFEST_INVALID/);
    expect(r.count('PUT', /\/manifests\/v1$/)).toBe(0);
    for (const repo of [one, two])
      expect((await verify(`${reg.host}/${repo}:v1`, fx.layers)).digest).toBe(before.outputs.digest);
  });
});

describe('two registries, one of which refuses the upload', () => {
  let second: Registry;
  beforeAll(async () => void (second = await startRegistry()));
  afterAll(async () => second?.stop());

  it('fails naming the refusal, without waiting forever and without tagging the registry that worked', async () => {
    // The layers are compressed once and fed to both uploads; the refused one must let go of the shared stream.
    proxy.addRule({
      method: 'POST',
      path: UPLOADS,
      action: { status: 403, body: '{"errors":[{"code":"DENIED","message":"injected: no push here"}]}' },
    });
    const r = await push({ image: fx.stream, tags: `${second.host}/both/app:v1 ${proxy.host}/both/app:v1` });
    expect(r.ok).toBe(false);
    expect(r.failed.join('\n')).toMatch(
      new RegExp(`Registry ${proxy.host} denied repository:both/app:pull,push.*no push here`),
    );
    expect(await exists(`${second.host}/both/app:v1`)).toBe(false);
  });
});

describe('a token expiring mid-push', () => {
  let tokenReg: Registry;
  let slow: FaultProxy;
  beforeAll(async () => {
    // Short-lived but advertised for 300 s: the push learns of the expiry only from the registry's 401.
    tokenReg = await startRegistry({
      auth: 'token',
      users: { alice: 'pw-alice' },
      tokenTtlSeconds: 3, // whole seconds: a fresh token lives 2-3 s, longer than one stalled request (1.2 s)
      advertisedExpiresIn: 300,
    });
    slow = await startFaultProxy({ target: tokenReg.url });
  });
  afterAll(async () => {
    await slow?.stop();
    await tokenReg?.stop();
  });

  it('gets a new token and completes', async () => {
    // Every layer's closing PUT (which carries its only chunk) takes 1.2 s to reach the registry, so the first token
    // dies during the upload and a PUT with a body must be sent again with a new one.
    slow.addRule({ method: 'PUT', path: UPLOADS, action: { stallMs: 1200 } });
    const repo = `${slow.host}/tok/slow`;
    const r = await push({
      image: fx.stream,
      tags: `${repo}:v1`,
      username: 'alice',
      password: 'pw-alice',
      concurrency: '1',
    });
    ok(r);
    expect(r.durationMs).toBeGreaterThan(3000);
    expect(tokenReg.tokenRequests.filter((q) => q.user === 'alice').length).toBeGreaterThanOrEqual(2);
    await verify(`${tokenReg.host}/tok/slow:v1`, fx.layers, { user: 'alice', password: 'pw-alice' });
  });
});
