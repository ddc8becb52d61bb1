/**
 * actions/oci-push beyond one image file: `mode: index` assembling a multi-platform index from two per-platform
 * pushes (as two matrix jobs and an index job would), and `image` given as a flake attribute that the bundle builds
 * with the Nix on PATH: Debian's Nix 2.8 (no --print-out-paths, so --json) and Nix 2.34, each in a private mount
 * namespace with a fresh /nix.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolationSetup } from '../harness/github-runner.js';
import { NIX234_BIN, requireCommand, requireFixtures } from '../support/fixtures.js';
import {
  FIXTURE_FLAKE,
  fixtures,
  ok,
  push,
  skopeoInspect,
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
  requireFixtures();
  requireCommand('/usr/bin/skopeo', 'skopeo');
  requireCommand('/usr/bin/nix', 'nix-bin');
  await distSnapshot();
  fx = await fixtures();
  reg = await startRegistry();
  scratch = mkdtempSync(join(tmpdir(), 'flake-ci-oci-index-'));
}, 300_000);

afterAll(async () => {
  removeDistSnapshot();
  await reg?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface RawIndex {
  mediaType: string;
  manifests: { mediaType: string; digest: string; platform: Record<string, string> }[];
  annotations?: Record<string, string>;
}

describe('mode: index', () => {
  it('assembles an index from two per-platform pushes, in its own and in another repository', async () => {
    const app = `${reg.host}/idx/app`;
    // Two matrix legs: each pushes its platform by digest only; their refs outputs feed the index job.
    const amd = await push({ image: fx.ociLayout, platform: 'linux/amd64', tags: app });
    const arm = await push({ image: fx.ociLayout, platform: 'linux/arm64/v8', tags: app });
    ok(amd);
    ok(arm);
    expect(amd.outputs.refs).toBe(`${app}@${amd.outputs.digest}`);
    const copy = `${reg.host}/idx/copy`;
    const r = await push({
      mode: 'index',
      sources: `${amd.outputs.refs}\n${arm.outputs.refs}`,
      tags: `${app}:multi ${copy}:multi`,
      annotations: 'org.opencontainers.image.title=flake-ci fixture',
    });
    ok(r);
    const digest = r.outputs.digest as string;
    expect(r.outputs.refs).toBe(`${app}:multi@${digest} ${copy}:multi@${digest}`);
    for (const repo of [app, copy]) {
      const raw = (await skopeoInspect(`${repo}:multi`, undefined, ['--raw'])) as unknown as RawIndex;
      expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(raw.manifests.map((m) => [m.digest, m.platform])).toEqual([
        [amd.outputs.digest, { os: 'linux', architecture: 'amd64' }],
        [arm.outputs.digest, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
      ]);
      expect(raw.annotations).toMatchObject({
        'org.opencontainers.image.title': 'flake-ci fixture',
        'org.opencontainers.image.revision': '0123456789abcdef0123456789abcdef01234567',
      });
      // Each platform resolves through the index, with its layers intact (the arm64 image has the first layer).
      await verify(`${repo}:multi`, fx.layers);
      const v8 = await verify(`${repo}:multi`, fx.layers.slice(0, 1), undefined, [
        '--override-arch',
        'arm64',
        '--override-variant',
        'v8',
      ]);
      expect(v8.platform).toBe('linux/arm64/v8');
    }
    // The copy repository got both images by mounting their blobs: nothing was uploaded.
    expect(totalsOf(r, copy)).toMatchObject({ uploaded: 0, mounted: 3, bytes: 0 });
  });

  it('makes a Docker manifest list from Docker schema 2 pushes, platform given by a source prefix', async () => {
    const app = `${reg.host}/idx/docker`;
    const one = await push({ image: fx.archive, tags: `${app}:amd64`, 'manifest-format': 'docker' });
    ok(one);
    const r = await push({
      mode: 'index',
      'manifest-format': 'docker',
      sources: `linux/amd64/v3=${app}:amd64`,
      tags: `${app}:list`,
    });
    ok(r);
    const raw = (await skopeoInspect(`${app}:list`, undefined, ['--raw'])) as unknown as RawIndex;
    expect(raw.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(raw.manifests[0]).toMatchObject({ digest: one.outputs.digest, platform: { variant: 'v3' } });
  });

  it('says which source is missing', async () => {
    const r = await push({ mode: 'index', sources: `${reg.host}/idx/nowhere:v1`, tags: `${reg.host}/idx/app:broken` });
    expect(r.ok).toBe(false);
    expect(r.failed.join('\n')).toMatch(
      /names 127\.0\.0\.1:\d+\/idx\/nowhere:v1, which .* does not have \(no such repository, tag or digest\)/,
    );
  });
});

describe('image: a flake attribute built with the Nix on PATH', () => {
  let streamDigest: string;
  let nixConf: string;
  beforeAll(async () => {
    const r = await push({ image: fx.stream, tags: `${reg.host}/flake/reference:v1` });
    ok(r);
    streamDigest = r.outputs.digest as string;
    nixConf = join(scratch, 'nixconf');
    mkdirSync(nixConf, { recursive: true });
    writeFileSync(
      join(nixConf, 'nix.conf'),
      'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command flakes\n',
    );
  });

  it.each([
    ['2.8 (nix build --json)', '/usr/bin'],
    ['2.34 (nix build --print-out-paths)', NIX234_BIN],
  ])('Nix %s', async (_what, bin) => {
    const repo = `${reg.host}/flake/built`;
    const r = await push(
      { image: `path:${FIXTURE_FLAKE}#stream`, tags: `${repo}:v1` },
      {
        setup: isolationSetup(scratch),
        env: {
          PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
          NIX_CONF_DIR: nixConf,
          NIX_USER_CONF_FILES: join(nixConf, 'nix.conf'),
        },
      },
    );
    ok(r);
    expect(r.log).toMatch(/Built path:.*#stream: \/nix\/store\/[a-z0-9]{32}-stream/);
    // The same derivation as the fixture: byte for byte the same image, so the same digest.
    expect(r.outputs.digest).toBe(streamDigest);
    await verify(`${repo}:v1`, fx.layers);
  });
});
