// The cache-service v2 double driven by the REAL @actions/cache (saveCache/restoreCache in a Node 24 child that sees
// only the double's env plus PATH and HOME), so the twirp client, the Azure SDK upload (and download, with Azure-style
// hostnames) and tar/zstd all run for real. Expectations on @actions/cache's output are what version 6.3 prints;
// the cache action must cope with exactly these behaviours.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cacheWorkspace,
  restoreWith as restore,
  runCacheClient as client,
  saveWith as save,
  snapshot,
} from '../support/actions-cache-run.js';
import { TWIRP_SERVICE, startCacheService } from '../support/actions-cache-service.mjs';
import type { CacheService, TokenOptions } from '../support/actions-cache-service.mjs';

const scratch = mkdtempSync(join(tmpdir(), 'flake-ci-cache-test-'));
let svc: CacheService; // SAS URLs on 127.0.0.1: @actions/cache downloads them with a plain HTTP GET
let azure: CacheService; // Azure-style hostnames: @actions/cache downloads them with the Azure SDK, as on github.com

const workspace = (files: Record<string, string | Buffer> = {}) => cacheWorkspace(scratch, files);
const sample = () => ({
  'a.txt': 'alpha\n',
  'sub/b.bin': randomBytes(100_000),
  'sub/deeper/c.txt': `gamma ${Math.random()}\n`,
});
const callsSince = (s: CacheService, n: number) => s.calls.slice(n);

beforeAll(async () => {
  // One after the other: if the second fails to start, afterAll still stops the first.
  svc = await startCacheService();
  azure = await startCacheService({ blobHostnames: 'azure' });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([svc?.stop(), azure?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
}, 30_000);

describe('protocol as @actions/cache 6 speaks it', () => {
  it.each([
    ['plain-HTTP download', () => svc],
    ['Azure SDK download', () => azure],
  ])('round-trips a directory (%s)', async (_name, get) => {
    const s = get();
    const ws = workspace(sample());
    const before = snapshot(ws);
    const mark = s.calls.length;
    const saved = await save(s, ws, 'rt-1');
    expect(saved.value).toEqual(expect.any(Number));
    expect(saved.warnings).toEqual([]);
    const [create, finalize] = callsSince(s, mark);
    expect(create).toMatchObject({ method: 'CreateCacheEntry', status: 200, result: 'ok' });
    // Proto field names; int64 size_bytes as a JSON string; no default-valued fields.
    expect(Object.keys(create!.body!)).toEqual(['key', 'version']);
    expect(finalize!.body).toEqual({
      key: 'rt-1',
      size_bytes: expect.stringMatching(/^\d+$/),
      version: create!.version,
    });
    const entry = s.entries().find((e) => e.key === 'rt-1')!;
    expect(entry).toMatchObject({ finalized: true, scope: 'refs/heads/main', id: saved.value });
    expect(await s.azurite.blobSize(entry.blobName)).toBe(entry.sizeBytes);

    rmSync(join(ws, 'data'), { recursive: true });
    const restored = await restore(s, ws, 'rt-1');
    expect(restored.value).toBe('rt-1');
    expect(snapshot(ws)).toEqual(before);
    expect(callsSince(s, mark)[2]).toMatchObject({
      method: 'GetCacheEntryDownloadURL',
      body: { key: 'rt-1', version: create!.version },
      result: 'ok',
    });
    if (s === azure) expect(restored.out).toMatch(/Received \d+ of \d+ \(100\.0%\)/);
  });

  it('restores the exact key first, then key and restore-keys as prefixes, newest first, same version only', async () => {
    const wsA = workspace({ 'v.txt': 'A' });
    expect((await save(svc, wsA, 'pfx-a')).value).toEqual(expect.any(Number));
    expect((await save(svc, workspace({ 'v.txt': 'B' }), 'pfx-b')).value).toEqual(expect.any(Number));
    const version = svc.entries().find((e) => e.key === 'pfx-a')!.version;
    // A reservation that is never finalized stays invisible.
    const res = await fetch(`${svc.url}twirp/${TWIRP_SERVICE}/CreateCacheEntry`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${svc.token()}` },
      body: JSON.stringify({ key: 'pfx-c', version }),
    });
    expect(await res.json()).toMatchObject({ ok: true, signed_upload_url: expect.stringContaining('sig=') });

    const content = (ws: string) => readFileSync(join(ws, 'data/v.txt'), 'utf8');
    let ws = workspace();
    const mark = svc.calls.length;
    expect((await restore(svc, ws, 'pfx-none', ['pfx-'])).value).toBe('pfx-b');
    expect(content(ws)).toBe('B');
    expect(svc.calls[mark]!.body).toEqual({ key: 'pfx-none', restore_keys: ['pfx-'], version });
    ws = workspace();
    expect((await restore(svc, ws, 'pfx-a', ['pfx-'])).value).toBe('pfx-a');
    expect(content(ws)).toBe('A');
    // The primary key is itself a prefix (docs, "Cache key matching").
    expect((await restore(svc, workspace(), 'pfx-', [])).value).toBe('pfx-b');
    // Other paths give another version: a miss, silently.
    const miss = await client(svc, workspace(), ['restore', 'pfx-b', 'elsewhere']);
    expect(miss).toMatchObject({ value: null, warnings: [] });
  });

  it('keeps scopes apart: writes go to the first writable scope, reads search the current ref, then main', async () => {
    const feature: TokenOptions = {
      scopes: [
        { Scope: 'refs/heads/feature', Permission: 3 },
        { Scope: 'refs/heads/main', Permission: 1 },
      ],
    };
    expect((await save(svc, workspace({ 'v.txt': 'main' }), 'scoped')).value).toEqual(expect.any(Number));
    // The same key in another scope is a new entry, not a conflict.
    expect((await save(svc, workspace({ 'v.txt': 'feature' }), 'scoped', feature)).value).toEqual(expect.any(Number));
    expect((await save(svc, workspace({ 'v.txt': 'f' }), 'feature-only', feature)).value).toEqual(expect.any(Number));
    const ws = workspace();
    expect((await restore(svc, ws, 'scoped', [], feature)).value).toBe('scoped');
    expect(readFileSync(join(ws, 'data/v.txt'), 'utf8')).toBe('feature');
    expect((await restore(svc, workspace(), 'rt-1', [], feature)).value).toBe('rt-1');
    expect((await restore(svc, workspace(), 'feature-only')).value).toBeNull();
  });

  it('answers bad routes, missing tokens and malformed bodies with twirp errors', async () => {
    const post = (path: string, body: string, token?: string) =>
      fetch(`${svc.url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body,
      }).then(async (r) => [r.status, await r.json()]);
    const base = `twirp/${TWIRP_SERVICE}`;
    expect(await post(`${base}/DeleteCacheEntry`, '{}', svc.token())).toEqual([
      404,
      expect.objectContaining({ code: 'bad_route' }),
    ]);
    expect(await post(`${base}/CreateCacheEntry`, '{"key":"k","version":"v"}')).toEqual([
      401,
      expect.objectContaining({ code: 'unauthenticated' }),
    ]);
    const expired = svc.token({ expiresInSeconds: -60 });
    expect((await post(`${base}/CreateCacheEntry`, '{"key":"k","version":"v"}', expired))[0]).toBe(401);
    expect(await post(`${base}/CreateCacheEntry`, '{', svc.token())).toEqual([
      400,
      expect.objectContaining({ code: 'malformed' }),
    ]);
    expect(await post(`${base}/CreateCacheEntry`, '{"key":"k"}', svc.token())).toEqual([
      400,
      expect.objectContaining({ code: 'invalid_argument' }),
    ]);
    // Finalizing what was never reserved, or a reservation whose blob was never uploaded.
    const fin = '{"key":"never","version":"v","size_bytes":"1"}';
    expect(await post(`${base}/FinalizeCacheEntryUpload`, fin, svc.token())).toEqual([
      404,
      expect.objectContaining({ code: 'not_found' }),
    ]);
    expect((await post(`${base}/CreateCacheEntry`, '{"key":"never","version":"v"}', svc.token()))[0]).toBe(200);
    expect(await post(`${base}/FinalizeCacheEntryUpload`, fin, svc.token())).toEqual([
      200,
      { ok: false, entry_id: '0', message: 'uploaded blob has no bytes, size_bytes says 1' },
    ]);
  });
});
