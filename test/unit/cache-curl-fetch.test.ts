/**
 * The curl -> zstd download of a cache entry (curl-fetch.ts) against a real HTTP server on 127.0.0.1 that can cut
 * the connection part-way and honours Range: node takes over from the byte curl reached, the URL (a credential) never
 * appears in curl's arguments, a corrupt stream is an error, and without curl node downloads it all (also the
 * all-node way, entry-stream.ts's decompressTo, for zstd and gzip).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import {
  curlArgs,
  curlConfig,
  curlDecompressTo,
  curlOutcome,
  curlVersionOk,
  usableCurl,
} from '../../src/cache/curl-fetch.js';
import { decompressTo, download } from '../../src/cache/entry-stream.js';
import { findOnPath } from '../../src/exec.js';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const curl = findOnPath('curl', PATH);
const zstd = findOnPath('zstd', PATH);
if (!curl) throw new Error('curl is missing: apt-get install curl');
if (!zstd) throw new Error('zstd is missing: apt-get install zstd');
const tools = { curl, zstd };

// Incompressible enough that the compressed body spans many TCP writes.
const plain = Buffer.concat([randomBytes(1 << 20).toString('base64'), 'end'].map((s) => Buffer.from(s)));
const body = zstdCompressSync(plain);
let server: http.Server;
let base: string;
/** What the next request does: serve it whole, cut it after `cutAt` bytes, or send garbage. */
let mode: { cutAt?: number; garbage?: boolean; status?: number } = {};
const ranges: Array<string | undefined> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    ranges.push(req.headers.range);
    if (mode.status) return res.writeHead(mode.status).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const data = mode.garbage ? randomBytes(body.length) : body;
    if (m) {
      res.writeHead(206, {
        'Content-Length': data.length - from,
        'Content-Range': `bytes ${from}-${data.length - 1}/${data.length}`,
      });
    } else res.writeHead(200, { 'Content-Length': data.length });
    const cut = mode.cutAt;
    mode = { garbage: mode.garbage }; // a cut happens once
    if (cut === undefined) return res.end(data.subarray(from));
    res.write(data.subarray(from, from + cut), () => setTimeout(() => res.socket?.destroy(), 50));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function fetchAll(url: string, t = tools) {
  const chunks: Buffer[] = [];
  const resumed: Array<{ why: string; at: number }> = [];
  const bytes = await curlDecompressTo(
    url,
    t,
    (c) => void chunks.push(c),
    undefined,
    (why, at) => resumed.push({ why, at }),
  );
  return { bytes, out: Buffer.concat(chunks), resumed };
}

describe('curl -> zstd download', () => {
  it('keeps the URL out of argv: it goes to curl as a quoted config line', () => {
    const url = `${base}/blob?sv=2024&sig=secret%2Fpart"x\\y`;
    expect(curlArgs().join(' ')).not.toMatch(/secret|127\.0\.0\.1/);
    expect(curlArgs()[0]).toBe('-q'); // no ~/.curlrc
    const config = curlConfig(url);
    expect(config).toMatch(/^url = ".*sig=secret%2Fpart.*"\n$/);
    // Quotes arrive percent-encoded or escaped, never closing the string early.
    expect(config.slice(7, -2)).not.toMatch(/(^|[^\\])"/);
    expect(curlOutcome('curl: (18) transfer closed\n\nflake-ci-curl 200 1234\n')).toEqual({
      status: 200,
      bytes: 1234,
      message: '(18) transfer closed',
    });
  });

  it('uses only a curl that can send --write-out to stderr (7.63 and later)', async () => {
    expect(curlVersionOk('curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1')).toBe(true);
    expect(curlVersionOk('curl 8.5.0 (x86_64-pc-linux-gnu)')).toBe(true);
    expect(curlVersionOk('curl 7.61.1 (x86_64-redhat-linux-gnu)')).toBe(false);
    expect(curlVersionOk('')).toBe(false);
    expect(await usableCurl(curl)).toBe(true);
    expect(await usableCurl('/nonexistent/curl')).toBe(false);
  });

  it('decompresses the whole body', async () => {
    ranges.length = 0;
    const r = await fetchAll(`${base}/entry?sig=abc`);
    expect(r.out.equals(plain)).toBe(true);
    expect(r.bytes).toBe(body.length);
    expect(r.resumed).toEqual([]);
    expect(ranges).toEqual([undefined]);
  });

  it('a connection cut part-way is resumed by node from the byte curl reached', async () => {
    ranges.length = 0;
    mode = { cutAt: 300_000 };
    const r = await fetchAll(`${base}/entry?sig=abc`);
    expect(r.out.equals(plain)).toBe(true);
    expect(r.bytes).toBe(body.length);
    expect(r.resumed).toHaveLength(1);
    expect(r.resumed[0]?.why).toMatch(/curl failed/);
    expect(r.resumed[0]?.at).toBe(300_000);
    expect(ranges).toEqual([undefined, 'bytes=300000-']);
  });

  it('without curl, node downloads it all', async () => {
    const r = await fetchAll(`${base}/entry`, { ...tools, curl: '/nonexistent/curl' });
    expect(r.out.equals(plain)).toBe(true);
    expect(r.resumed).toEqual([{ why: 'curl did not start', at: 0 }]);
  });

  it('without curl or zstd, node downloads (resuming with Range) and decompresses: zstd and gzip', async () => {
    ranges.length = 0;
    mode = { cutAt: 200_000 };
    const chunks: Buffer[] = [];
    const bytes = await decompressTo(download(`${base}/entry`), zstd, (c) => void chunks.push(c));
    expect(Buffer.concat(chunks).equals(plain)).toBe(true);
    expect(bytes).toBe(body.length);
    expect(ranges).toEqual([undefined, 'bytes=200000-']);
    const gz = gzipSync(plain);
    const gunzipped: Buffer[] = [];
    await decompressTo(
      (async function* () {
        yield* [gz.subarray(0, 1000), gz.subarray(1000)];
      })(),
      undefined,
      (c) => void gunzipped.push(c),
    );
    expect(Buffer.concat(gunzipped).equals(plain)).toBe(true);
  });

  it('a corrupt stream is an error naming zstd, and an HTTP error names the status', async () => {
    mode = { garbage: true };
    await expect(fetchAll(`${base}/entry`)).rejects.toThrow(/zstd could not decompress/);
    mode = { status: 403 };
    await expect(fetchAll(`${base}/entry`)).rejects.toThrow(/download answered 403/);
    mode = {};
  });
});
