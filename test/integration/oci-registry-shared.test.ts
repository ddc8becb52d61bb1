// What one push shares across its registry clients and its upload pipeline, against Debian's docker-registry on
// 127.0.0.1: one retry budget for every client (through the fault proxy), and the blob digest taken from the
// compressor instead of being computed a second time (the registry still checks it).
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import {
  RegistryClient,
  RetryBudget,
  RetryBudgetExhausted,
  type RegistryClientOptions,
} from '../../src/oci/registry/client.js';
import { LayerRereadNeeded } from '../../src/oci/registry/upload.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.mjs';
import { startRegistry, type Registry } from '../support/registry.mjs';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const KiB = 1024;

async function* pieces(data: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += 64 * KiB) yield data.subarray(i, i + 64 * KiB);
}

const clients: RegistryClient[] = [];
function client(opts: RegistryClientOptions): RegistryClient {
  const c = new RegistryClient({ timeoutMs: 10_000, retry: { baseMs: 10, maxMs: 2000 }, ...opts });
  clients.push(c);
  return c;
}

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
afterEach(() => {
  proxy.clearRules();
  for (const c of clients.splice(0)) c.close();
});

describe('one retry budget per push', () => {
  it('draws every client of a push from one retry budget, and says so when it is spent', async () => {
    const budget = new RetryBudget(3, "raise input 'retry-budget'");
    const a = client({ registry: proxy.host, retry: { budget, baseMs: 1 } });
    const b = client({ registry: proxy.host, retry: { budget, baseMs: 1 } });
    proxy.addRule({ method: 'HEAD', times: 2, action: { status: 503 } });
    expect(await a.hasBlob('f/a', sha256(Buffer.from('shared')))).toBeUndefined();
    expect(budget.spent).toBe(2);
    proxy.addRule({ method: 'HEAD', action: { status: 503 } });
    const e = await b.hasBlob('f/b', sha256(Buffer.from('shared'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RetryBudgetExhausted);
    expect((e as Error).message).toMatch(
      new RegExp(
        `gave up after 3 retries pushing to ${proxy.host}: the retry budget of the push \\(3 retries across all ` +
          `registries\\) is spent; raise input 'retry-budget'. Last error: .*answered 503`,
      ),
    );
    // Each client spent its share; the budget, not a client, ran out.
    expect([a.retries, b.retries]).toEqual([2, 1]);
  });
});

describe('the blob digest from the producer', () => {
  it("takes the producer's digest instead of hashing again; the registry still refuses a wrong one", async () => {
    const c = client({ registry: reg.host });
    const data = randomBytes(300 * KiB);
    let asked = 0;
    const up = await c.uploadBlob('flake-ci/anon', pieces(data), {
      chunkSize: 128 * KiB,
      sourceDigest: async () => (asked++, sha256(data)),
    });
    expect(up).toEqual({ digest: sha256(data), size: data.length });
    expect(asked).toBe(1);
    expect(await c.hasBlob('flake-ci/anon', up.digest)).toBe(data.length);
    const wrong = sha256(Buffer.from('not these bytes'));
    const e = await c
      .uploadBlob('flake-ci/anon', pieces(randomBytes(200 * KiB)), { sourceDigest: async () => wrong })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LayerRereadNeeded);
    expect((e as Error).message).toMatch(/closing it as sha256:.* was refused/);
    expect(await c.hasBlob('flake-ci/anon', wrong)).toBeUndefined();
  });
});
