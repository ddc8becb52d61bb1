/**
 * Format detection by content (the file names here lie on purpose), and the errors a user sees: unknown format,
 * missing manifest.json, corrupt compressed data, a failing image script.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { InputError } from '../../src/errors.js';
import { detectImageKind, openImage } from '../../src/oci/image/detect.js';
import type { ImageSource } from '../../src/oci/types.js';
import { gnuTar, readAll, writeTree } from './helpers/tar-fixtures.js';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
let dir: string;
let archive: Buffer;
let noManifest: Buffer;
const file = (name: string, body: Buffer | string, mode = 0o644) => {
  const p = join(dir, name);
  fs.writeFileSync(p, body, { mode });
  return p;
};

async function drain(src: ImageSource) {
  const hashes: string[] = [];
  for await (const l of src.layers()) if (l.raw) hashes.push(`sha256:${hex(await readAll(l.raw))}`);
  return { hashes, ...(await src.finish()) };
}

beforeAll(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'detect-'));
  const layerDir = join(dir, 'content');
  writeTree(layerDir, { 'etc/hostname': 'fixture\n', 'bin/sh': { mode: 0o755, body: randomBytes(20_000) } });
  const layer = gnuTar(['-C', layerDir, '-cf', '-', '--sort=name', '--mtime=@1', '.']);
  const cfg = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [`sha256:${hex(layer)}`] },
  });
  const a = join(dir, 'a');
  writeTree(a, {
    [`${hex(layer)}/layer.tar`]: { mode: 0o644, body: layer },
    [`${hex(cfg)}.json`]: cfg,
    'manifest.json': JSON.stringify([{ Config: `${hex(cfg)}.json`, Layers: [`${hex(layer)}/layer.tar`] }]),
  });
  archive = gnuTar(['-C', a, '-cf', '-', `${hex(layer)}/layer.tar`, `${hex(cfg)}.json`, 'manifest.json']);
  noManifest = gnuTar(['-C', a, '-cf', '-', `${hex(layer)}/layer.tar`, `${hex(cfg)}.json`]);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('openImage detects the format from the content', () => {
  it('reads a docker archive plain, gzip- and zstd-compressed, whatever the file is called', async () => {
    const want = await drain(await openImage(file('plain.json', archive)));
    expect(want.hashes).toHaveLength(1);
    expect(want.config.diffIds).toEqual(want.hashes);
    const gz = file('image.tar.zst', gzipSync(archive));
    const zst = file('image.tar.gz', zstdCompressSync(archive));
    expect(await detectImageKind(gz)).toBe('docker-archive-gzip');
    expect(await detectImageKind(zst)).toBe('docker-archive-zstd');
    for (const p of [gz, zst]) expect((await drain(await openImage(p))).hashes).toEqual(want.hashes);
  });

  it('runs a script (#!) with no shell and reads its stdout', async () => {
    const tar = file('archive.tar', archive);
    const script = file('stream image', `#!/bin/sh\nexec cat "${tar}"\n`, 0o755); // a space: no shell parses it
    expect(await detectImageKind(script)).toBe('stream-script');
    const src = await openImage(script);
    expect(src.format).toBe('docker-archive-stream');
    const r = await drain(src);
    expect(r.config.diffIds).toEqual(r.hashes);
  });

  it('keeps the output of a script that has exited before its archive is read', async () => {
    // The archive fits in the pipe, so the script writes it all and exits; the push opens the image while it asks the
    // registries, and reads it later. Node drains a child's stdout that nobody listens to when the child exits.
    const tar = file('small.tar', archive);
    const done = join(dir, 'small.done');
    const script = file('small image', `#!/bin/sh\ncat "${tar}"\n: > "${done}"\n`, 0o755);
    const src = await openImage(script);
    for (let waited = 0; !fs.existsSync(done); waited += 10) {
      if (waited > 10_000) throw new Error('the script did not run');
      await new Promise((r) => setTimeout(r, 10));
    }
    // Time for its exit to reach this process (the drain happened on that event).
    await new Promise((r) => setTimeout(r, 300));
    const r = await drain(src);
    expect(r.hashes).toHaveLength(1);
    expect(r.config.diffIds).toEqual(r.hashes);
  });

  it('reports a failing script with its exit code and stderr, and one it cannot run', async () => {
    const half = file('half.tar', archive.subarray(0, 3000));
    const failing = file('fail.sh', `#!/bin/sh\ncat "${half}"\necho 'store path missing' >&2\nexit 3\n`, 0o755);
    await expect(drain(await openImage(failing))).rejects.toThrow(/failed \(exit code 3\)[\s\S]*store path missing/);
    const notExec = file('noexec.sh', '#!/bin/sh\nexit 0\n', 0o644);
    await expect(drain(await openImage(notExec))).rejects.toThrow(/cannot run the image script/);
  });

  it('recognises nix2container image.json and OCI layouts', async () => {
    const json = file('weird-name', JSON.stringify({ version: 1, 'image-config': {}, layers: [], arch: 'amd64' }));
    expect(await detectImageKind(json)).toBe('nix2container');
    expect((await openImage(json)).format).toBe('nix2container');
    const layout = join(dir, 'layout');
    fs.mkdirSync(layout);
    fs.writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(join(layout, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    expect(await detectImageKind(layout)).toBe('oci-layout');
  });

  it('refuses unknown content, naming the path and the formats it reads', async () => {
    for (const p of [
      file('random.tar', randomBytes(2000)),
      file('other.json', '{"hello": 1}'),
      file('empty', ''),
      dir,
    ]) {
      const e = await detectImageKind(p).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InputError);
      expect(String(e)).toContain(`${p}: unknown image format`);
      expect(String(e)).toContain('streamLayeredImage');
      expect(String(e)).toContain('OCI image layout');
    }
    await expect(openImage(join(dir, 'missing'))).rejects.toThrow(/cannot be read \(ENOENT\)/);
  });

  it('names a missing manifest.json, even inside a compressed archive', async () => {
    const p = file('old.tar.gz', gzipSync(noManifest));
    const e = await drain(await openImage(p)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(String(e)).toContain(`${p} has no manifest.json`);
  });

  it('names corrupt or truncated compressed data', async () => {
    const gz = gzipSync(archive);
    const garbage = file('garbage.gz', Buffer.concat([gz.subarray(0, 10), Buffer.alloc(300, 0xff)]));
    await expect(drain(await openImage(garbage))).rejects.toThrow(/garbage\.gz: the gzip data is corrupt/);
    // Damage deflate may decode without noticing until its CRC: the tar reader then names the image instead.
    const damaged = Buffer.from(gz);
    damaged.fill(0x55, 100, 400);
    const e = await drain(await openImage(file('damaged.gz', damaged))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(String(e)).toMatch(/damaged\.gz: .*(corrupt|damaged)/);
    const truncated = file('truncated.gz', gz.subarray(0, gz.length - 200));
    await expect(drain(await openImage(truncated))).rejects.toThrow(InputError);
    const zst = zstdCompressSync(archive);
    const badZstd = file('bad.zst', Buffer.concat([zst.subarray(0, 20), Buffer.alloc(500, 0x42)]));
    await expect(drain(await openImage(badZstd))).rejects.toThrow(/the zstd data is corrupt/);
  });
});
