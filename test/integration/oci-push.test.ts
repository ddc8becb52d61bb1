/**
 * actions/oci-push end to end: the dist bundle, run as the GitHub runner runs it, pushes the Nix-built fixture images
 * to Debian's docker-registry on 127.0.0.1 (anonymous, htpasswd Basic and token auth), and skopeo checks every push
 * independently: the manifest it reads, and each layer copied back, decompressed and hashed against the config's
 * diff_ids and the fixture's own layer tars. Faults and retries are in oci-push-faults.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireCommand } from '../support/fixtures.js';
import {
  exists,
  fixtures,
  metadata,
  ok,
  printed,
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
let scratch: string;

beforeAll(async () => {
  await distSnapshot();
  for (const [file, pkg] of [
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/bin/unshare', 'util-linux'],
    ['/usr/bin/nix', 'nix-bin'],
  ])
    requireCommand(file as string, pkg as string);
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`Node ${process.version} runs the tests; the bundle needs Node 24: run them with 'npm test'.`);
  fx = await fixtures();
  reg = await startRegistry();
  scratch = mkdtempSync(join(tmpdir(), 'flake-ci-oci-push-'));
}, 300_000);

afterAll(async () => {
  removeDistSnapshot();
  await reg?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('every image format, pushed anonymously and read back by skopeo', () => {
  const cases: [string, keyof Fixtures, Record<string, string>, 'standard' | 'n2c'][] = [
    ['buildImage archive, Docker schema 2', 'archive', { 'manifest-format': 'docker' }, 'standard'],
    ['buildImage archive, gzip-compressed', 'archiveGz', {}, 'standard'],
    ['buildLayeredImage-style .tar.zst, zstd layers', 'archiveZstd', { compression: 'zstd' }, 'standard'],
    ['streamLayeredImage script, uncompressed layers', 'stream', { compression: 'none' }, 'standard'],
    ['nix2container image.json', 'n2c', {}, 'n2c'],
    ['OCI layout (amd64 of two platforms)', 'ociLayout', { platform: 'linux/amd64' }, 'standard'],
  ];
  it.each(cases)('%s', async (_what, key, inputs, expected) => {
    const repo = `${reg.host}/formats/${key.toLowerCase()}`;
    const r = await push(
      { image: fx[key] as string, tags: `${repo}:v1 ${repo}:latest`, ...inputs },
      key === 'n2c' ? { storeRoot: fx.storeRoot } : {},
    );
    ok(r);
    const digest = r.outputs.digest as string;
    expect(r.outputs.refs).toBe(`${repo}:v1@${digest} ${repo}:latest@${digest}`);
    const v = await verify(`${repo}:v1`, expected === 'n2c' ? fx.n2cLayers : fx.layers);
    expect(v.digest).toBe(digest);
    expect(v.platform).toBe('linux/amd64');
    const want = {
      archive: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      archiveZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
      stream: 'application/vnd.oci.image.layer.v1.tar',
    }[key as string];
    if (want) expect(new Set(v.mediaTypes)).toEqual(new Set([want]));
    const m = metadata(r);
    expect(m.digest).toBe(digest);
    expect(m.repositories[0]?.tags).toEqual(['v1', 'latest']);
    expect(m.repositories[0]?.images[0]?.totals).toMatchObject({
      layers: v.diffIds.length,
      uploaded: v.diffIds.length,
    });
    expect(r.summary).toContain(`### oci-push: image \`${digest.slice(0, 19)}\``);
    // Outputs in the order later steps rely on: digest and refs before metadata.
    const file = r.stdout + r.stderr;
    expect(file).not.toMatch(/::error/);
  });

  it('buildImage archive, its layers read by position and sent uncompressed', async () => {
    const repo = `${reg.host}/formats/archive-none`;
    const r = await push({ image: fx.archive, tags: `${repo}:v1`, compression: 'none' });
    ok(r);
    const v = await verify(`${repo}:v1`, fx.layers);
    expect(v.digest).toBe(r.outputs.digest);
    expect(new Set(v.mediaTypes)).toEqual(new Set(['application/vnd.oci.image.layer.v1.tar']));
  });
});

describe('safety: nothing is tagged when the image is wrong', () => {
  it('refuses the nix2container image with a wrong diff_id before any manifest or tag', async () => {
    const repo = `${reg.host}/safety/n2c`;
    const r = await push({ image: fx.n2cBad, tags: `${repo}:v1` }, { storeRoot: fx.storeRoot });
    expect(r.ok).toBe(false);
    expect(r.failed.join('\n')).toMatch(/layer 1 \(\/nix\/store\/[a-z0-9]{32}-data\): the source says its diff_id is/);
    expect(r.failed.join('\n')).toContain('Nothing was tagged');
    expect(await exists(`${repo}:v1`)).toBe(false);
    expect(r.outputs.digest).toBeUndefined();
  });

  it('leaves an existing tag where it was when the new image is refused', async () => {
    const repo = `${reg.host}/safety/kept`;
    const first = await push({ image: fx.n2c, tags: `${repo}:v1` }, { storeRoot: fx.storeRoot });
    ok(first);
    const bad = await push({ image: fx.n2cBad, tags: `${repo}:v1`, compression: 'zstd' }, { storeRoot: fx.storeRoot });
    expect(bad.ok).toBe(false);
    expect((await verify(`${repo}:v1`, fx.n2cLayers)).digest).toBe(first.outputs.digest);
  });

  it('names the problem for an unknown format, a tar without manifest.json, and a diff_id mismatch', async () => {
    const text = join(scratch, 'notes.txt');
    writeFileSync(text, 'not an image\n');
    const plain = join(scratch, 'plain.tar');
    execFileSync('tar', ['-cf', plain, '-C', scratch, 'notes.txt']);
    // buildImage's layout (legacy ids, so no diff_id is known up front) with a config that lies about the layer.
    const dir = join(scratch, 'lying');
    mkdirSync(join(dir, 'legacy1'), { recursive: true });
    writeFileSync(join(dir, 'legacy1/VERSION'), '1.0');
    writeFileSync(join(dir, 'legacy1/json'), '{"id":"legacy1"}');
    execFileSync('tar', ['-cf', join(dir, 'legacy1/layer.tar'), '-C', scratch, 'notes.txt']);
    const wrong = `sha256:${'0'.repeat(64)}`;
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [wrong] } }),
    );
    writeFileSync(join(dir, 'manifest.json'), '[{"Config":"config.json","Layers":["legacy1/layer.tar"]}]');
    const lying = join(scratch, 'lying.tar');
    execFileSync('tar', ['--sort=name', '-cf', lying, '-C', dir, '.']);

    const repo = `${reg.host}/errors/app`;
    const cases: [string, RegExp][] = [
      [text, /notes\.txt: unknown image format/],
      [plain, /plain\.tar has no manifest\.json/],
      [
        lying,
        new RegExp(
          `diff_id mismatch: layer 1 \\(legacy1/layer.tar\\) hashes to sha256:[0-9a-f]{64}, but the image config lists ${wrong}`,
        ),
      ],
    ];
    for (const [image, message] of cases) {
      const r = await push({ image, tags: `${repo}:v1` });
      expect({ image, ok: r.ok, failed: r.failed.join('\n') }).toMatchObject({ image, ok: false });
      expect(r.failed.join('\n')).toMatch(message);
    }
    expect(await exists(`${repo}:v1`)).toBe(false);
  });
});

describe('what the registries already have is not sent again', () => {
  it('a fresh runner re-pushing the same image skips every layer without uploading a byte', async () => {
    const repo = `${reg.host}/reuse/app`;
    for (const [key, opts] of [
      ['stream', {}],
      ['archiveZstd', {}],
      ['n2c', { storeRoot: fx.storeRoot }],
      ['ociLayout', {}],
    ] as const) {
      const inputs = { image: fx[key], tags: `${repo}:${key.toLowerCase()}`, platform: 'linux/amd64' };
      const first = await push(inputs, opts);
      ok(first);
      const again = await push(inputs, opts);
      ok(again);
      expect(again.outputs.digest).toBe(first.outputs.digest);
      const t = totalsOf(again, repo);
      expect({ key, ...t }).toEqual({
        key,
        layers: t.layers,
        uploaded: 0,
        mounted: 0,
        skipped: t.layers,
        bytes: 0,
        size: expect.any(Number),
      });
      expect(
        metadata(again).repositories[0]?.images[0]?.layers.every((l) => l.action === 'skipped' && l.bytes === 0),
      ).toBe(true);
    }
  });

  it('cache-from in another repository turns uploads into mounts', async () => {
    const from = `${reg.host}/reuse/base:v1`;
    ok(await push({ image: fx.stream, tags: from }));
    const repo = `${reg.host}/reuse/derived`;
    const r = await push({ image: fx.archiveZstd, tags: `${repo}:v1`, 'cache-from': from });
    ok(r);
    // The .tar.zst names its layers by diff_id, which the base's config maps to blobs that can be mounted.
    expect(totalsOf(r, repo)).toMatchObject({ layers: 3, uploaded: 0, mounted: 3, bytes: 0 });
    await verify(`${repo}:v1`, fx.layers);
  });
});

describe('several tags, repositories and registries in one step', () => {
  let other: Registry;
  beforeAll(async () => void (other = await startRegistry()));
  afterAll(async () => other?.stop());

  it('uploads once per registry, mounts into the second repository, then tags everything', async () => {
    const a = `${reg.host}/multi/app`;
    const mirror = `${reg.host}/multi/mirror`;
    const b = `${other.host}/multi/app`;
    const r = await push({ image: fx.stream, tags: `${a}:v1 ${a}:latest\n${mirror}:v1\n${b}:v1` });
    ok(r);
    const digest = r.outputs.digest as string;
    expect(r.outputs.refs?.split(' ')).toEqual([
      `${a}:v1@${digest}`,
      `${a}:latest@${digest}`,
      `${mirror}:v1@${digest}`,
      `${b}:v1@${digest}`,
    ]);
    expect(totalsOf(r, a)).toMatchObject({ uploaded: 3, mounted: 0 });
    expect(totalsOf(r, mirror)).toMatchObject({ uploaded: 0, mounted: 3, bytes: 0 });
    expect(totalsOf(r, b)).toMatchObject({ uploaded: 3, mounted: 0 });
    for (const ref of [`${a}:v1`, `${a}:latest`, `${mirror}:v1`, `${b}:v1`])
      expect((await verify(ref, fx.layers)).digest).toBe(digest);
  });
});

describe('authentication', () => {
  const password = 's3cret-Pa55word';
  let basic: Registry;
  let token: Registry;
  beforeAll(async () => {
    basic = await startRegistry({ auth: 'htpasswd', users: { alice: password } });
    token = await startRegistry({ auth: 'token', users: { alice: password } });
  });
  afterAll(async () => {
    await basic?.stop();
    await token?.stop();
  });

  it('pushes with Basic credentials from the inputs, never printing the password', async () => {
    const repo = `${basic.host}/auth/app`;
    const r = await push({ image: fx.stream, tags: `${repo}:v1`, username: 'alice', password });
    ok(r);
    expect(r.masks).toContain(password);
    expect(printed(r) + JSON.stringify(r.outputs) + r.summary + JSON.stringify(r.state)).not.toContain(password);
    await verify(`${repo}:v1`, fx.layers, { user: 'alice', password });
  });

  it('reads credentials from docker config.json when the inputs are empty', async () => {
    const config = join(scratch, 'docker');
    mkdirSync(config, { recursive: true });
    const auth = Buffer.from(`alice:${password}`).toString('base64');
    writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: { [basic.host]: { auth } } }));
    const r = await push(
      { image: fx.archiveGz, tags: `${basic.host}/auth/config:v1` },
      { env: { DOCKER_CONFIG: config } },
    );
    ok(r);
    expect(r.log).toContain(`user 'alice' from ${join(config, 'config.json')}`);
    expect(printed(r)).not.toContain(password);
  });

  it('a wrong password fails naming the registry and scope, and never shows the password', async () => {
    const wrong = 'not-the-Pa55word';
    const r = await push({
      image: fx.stream,
      tags: `${basic.host}/auth/denied:v1`,
      username: 'alice',
      password: wrong,
    });
    expect(r.ok).toBe(false);
    expect(r.failed.join('\n')).toMatch(
      new RegExp(
        `Registry ${basic.host} rejected the credentials of user 'alice' for repository:auth/denied:pull,push`,
      ),
    );
    expect(printed(r) + r.summary).not.toContain(wrong);
    expect(await exists(`${basic.host}/auth/denied:v1`, { user: 'alice', password })).toBe(false);
  });

  it('pushes with Bearer tokens, asking pull on the mount source', async () => {
    const app = `${token.host}/tok/app`;
    const r = await push({
      image: fx.stream,
      tags: `${app}:v1 ${token.host}/tok/mirror:v1`,
      username: 'alice',
      password,
    });
    ok(r);
    const scopes = token.tokenRequests.filter((q) => q.user === 'alice').map((q) => q.scopes.join(' '));
    expect(scopes).toContain('repository:tok/app:pull,push');
    expect(scopes).toContain('repository:tok/app:pull repository:tok/mirror:pull,push');
    expect(totalsOf(r, `${token.host}/tok/mirror`)).toMatchObject({ mounted: 3 });
    await verify(`${app}:v1`, fx.layers, { user: 'alice', password });
    expect(printed(r)).not.toContain(password);
  });
});
