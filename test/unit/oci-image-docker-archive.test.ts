/**
 * The one-pass docker-archive reader on archives made by GNU tar in each layout (streamLayeredImage, buildImage's
 * legacy ids, docker save's symlinked duplicates, docker >= 25 blobs, skopeo), fed in random chunk sizes.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { readDockerArchive } from '../../src/oci/image/docker-archive.js';
import type { SourceLayer } from '../../src/oci/types.js';
import { chunked, gnuTar, readAll, writeTree } from './helpers/tar-fixtures.js';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const DET = ['--mtime=@1', '--owner=0', '--group=0', '--numeric-owner'];

let scratch: string;
const layers: Buffer[] = [];
let n = 0;

/** A directory tree for an archive; returns its path. */
function tree(spec: Parameters<typeof writeTree>[1]): string {
  const dir = join(scratch, `t${n++}`);
  writeTree(dir, spec);
  return dir;
}

function config(diffIds: string[]): string {
  return JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
}

beforeAll(() => {
  scratch = fs.mkdtempSync(join(tmpdir(), 'docker-archive-'));
  for (const [i, size] of [100, 70_000, 5].entries()) {
    const dir = tree({ [`layer${i}/file`]: 'x'.repeat(size), [`layer${i}/bin/tool`]: { mode: 0o755, body: `#${i}` } });
    layers.push(gnuTar(['-C', dir, '-cf', '-', '--sort=name', ...DET, '.']));
  }
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface Read {
  got: SourceLayer[];
  raws: (Buffer | undefined)[];
  config: Awaited<ReturnType<ReturnType<typeof readDockerArchive>['finish']>>['config'];
  order: number[];
}

async function read(archive: Buffer, seed: number): Promise<Read> {
  const src = readDockerArchive(chunked(archive, seed, 3000), { label: 'test.tar' });
  const got: SourceLayer[] = [];
  const raws: (Buffer | undefined)[] = [];
  for await (const l of src.layers()) {
    got.push(l);
    raws.push(l.raw ? await readAll(l.raw) : undefined);
  }
  const { config, order } = await src.finish();
  // Whatever the layout, the config's diff_ids are the hashes of the layers the order points at.
  expect(order.map((i) => `sha256:${hex(raws[i] as Buffer)}`)).toEqual(config.diffIds);
  return { got, raws, config, order };
}

function streamLayout(): Buffer {
  const ids = layers.map((l) => hex(l));
  const cfg = config(ids.map((h) => `sha256:${h}`));
  const spec: Record<string, string | { mode: number; body: Buffer }> = {};
  ids.forEach((h, i) => (spec[`${h}/layer.tar`] = { mode: 0o644, body: layers[i] as Buffer }));
  spec[`${hex(cfg)}.json`] = cfg;
  spec['manifest.json'] = JSON.stringify([
    { Config: `${hex(cfg)}.json`, RepoTags: ['x:y'], Layers: ids.map((h) => `${h}/layer.tar`) },
  ]);
  const members = [...ids.map((h) => `${h}/layer.tar`), `${hex(cfg)}.json`, 'manifest.json'];
  return gnuTar(['-C', tree(spec), '-cf', '-', '--no-recursion', ...DET, ...members]);
}

describe('docker-archive reader', () => {
  it('reads the streamLayeredImage layout with diff_ids known up front, whatever the chunking', async () => {
    const archive = streamLayout();
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = await read(archive, seed);
      expect(r.got.map((l) => l.diffId)).toEqual(layers.map((l) => `sha256:${hex(l)}`));
      expect(r.raws.map((b) => b?.length)).toEqual(layers.map((l) => l.length));
      expect(r.order).toEqual([0, 1, 2]);
    }
  });

  it("reads buildImage's legacy <id>/layer.tar without claiming the id is a diff_id", async () => {
    const ids = layers.map((_, i) => hex(`legacy${i}`));
    const spec: Record<string, string | { mode: number; body: Buffer }> = {};
    ids.forEach((id, i) => {
      spec[`${id}/VERSION`] = '1.0';
      spec[`${id}/json`] = JSON.stringify({ id });
      spec[`${id}/layer.tar`] = { mode: 0o644, body: layers[i] as Buffer };
    });
    const cfg = config(layers.map((l) => `sha256:${hex(l)}`));
    spec[`${hex(cfg)}.json`] = cfg;
    spec['manifest.json'] = JSON.stringify([
      { Config: `${hex(cfg)}.json`, Layers: ids.map((id) => `${id}/layer.tar`) },
    ]);
    spec.repositories = JSON.stringify({ x: { y: ids[2] } });
    const archive = gnuTar(['-C', tree(spec), '-cf', '-', '--sort=name', ...DET, '.']); // names start with ./
    const r = await read(archive, 7);
    expect(r.got.map((l) => l.diffId)).toEqual([undefined, undefined, undefined]);
    expect(r.got.map((l) => l.name)).toEqual(ids.map((id) => `${id}/layer.tar`).sort()); // archive order
  });

  it('reports symlinked and hard-linked duplicates as references to the earlier layer', async () => {
    const [a, b, c] = ['1', '2', '3'].map((d) => d.repeat(64)); // name order = archive order
    const dir = tree({
      [`${a}/layer.tar`]: { mode: 0o644, body: layers[0] as Buffer },
      [`${a}/json`]: '{}', // docker save writes json and VERSION next to every layer.tar
      [`${b}/json`]: '{}',
      [`${b}/layer.tar`]: { link: `../${a}/layer.tar` },
      [`${c}/json`]: '{}',
    });
    fs.linkSync(join(dir, `${a}/layer.tar`), join(dir, `${c}/layer.tar`));
    const cfg = config([0, 0, 0].map(() => `sha256:${hex(layers[0] as Buffer)}`));
    fs.writeFileSync(join(dir, 'cfg.json'), cfg);
    fs.writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify([{ Config: 'cfg.json', Layers: [a, b, c].map((x) => `${x}/layer.tar`) }]),
    );
    const r = await read(gnuTar(['-C', dir, '-cf', '-', '--sort=name', ...DET, '.']), 9);
    expect(r.got.map((l) => [l.index, l.sameAs, !!l.raw])).toEqual([
      [0, undefined, true],
      [1, 0, false],
      [2, 0, false],
    ]);
    expect(r.order).toEqual([0, 0, 0]);
  });

  it('reads docker >= 25 blobs/sha256 and skopeo <diff_id>.tar layouts', async () => {
    const cfg = config(layers.map((l) => `sha256:${hex(l)}`));
    const spec: Record<string, string | { mode: number; body: Buffer } | { link: string }> = {
      [`blobs/sha256/${hex(cfg)}`]: cfg,
      'oci-layout': '{"imageLayoutVersion":"1.0.0"}',
      'manifest.json': JSON.stringify([
        { Config: `blobs/sha256/${hex(cfg)}`, Layers: layers.map((l) => `blobs/sha256/${hex(l)}`) },
      ]),
      [`0000/layer.tar`]: { link: `../blobs/sha256/${hex(layers[1] as Buffer)}` }, // sorts before blobs/: seen first
    };
    for (const l of layers) spec[`blobs/sha256/${hex(l)}`] = { mode: 0o644, body: l };
    const r = await read(gnuTar(['-C', tree(spec), '-cf', '-', '--sort=name', ...DET, '.']), 11);
    expect(r.got).toHaveLength(3);
    expect(r.got.map((l) => l.diffId).sort()).toEqual(layers.map((l) => `sha256:${hex(l)}`).sort());
    expect(r.got.every((l) => l.sameAs === undefined)).toBe(true); // the early symlink only aliases

    const sk: Record<string, string | { mode: number; body: Buffer }> = { 'cfg.json': cfg };
    for (const l of layers) sk[`${hex(l)}.tar`] = { mode: 0o644, body: l };
    sk['manifest.json'] = JSON.stringify([{ Config: 'cfg.json', Layers: layers.map((l) => `${hex(l)}.tar`) }]);
    const s = await read(gnuTar(['-C', tree(sk), '-cf', '-', '--sort=name', ...DET, '.']), 12);
    expect(s.got.map((l) => l.diffId).sort()).toEqual(layers.map((l) => `sha256:${hex(l)}`).sort());
  });

  it('skip() drains a layer and finish() skips whatever was not read', async () => {
    const src = readDockerArchive(chunked(streamLayout(), 13, 5000), { label: 'x' });
    const it = src.layers()[Symbol.asyncIterator]();
    const first = (await it.next()).value as SourceLayer;
    await first.skip();
    const { config, order } = await src.finish();
    expect(order).toEqual([0, 1, 2]);
    expect(config.diffIds).toHaveLength(3);
  });

  it('names what is wrong: no manifest.json, a missing layer, an inconsistent diff_id', async () => {
    const noManifest = gnuTar(['-C', tree({ 'a/layer.tar': 'x', repositories: '{}' }), '-cf', '-', ...DET, '.']);
    const src = readDockerArchive([noManifest], { label: 'old.tar' });
    for await (const l of src.layers()) await l.skip();
    await expect(src.finish()).rejects.toThrow(/old\.tar has no manifest\.json/);
    await expect(src.finish()).rejects.toBeInstanceOf(InputError);

    const cfg = config([`sha256:${hex(layers[0] as Buffer)}`]);
    const missing = gnuTar([
      '-C',
      tree({ 'c.json': cfg, 'manifest.json': '[{"Config":"c.json","Layers":["zz/layer.tar"]}]' }),
      '-cf',
      '-',
      '.',
    ]);
    await expect(read(missing, 1)).rejects.toThrow(/lists the layer 'zz\/layer.tar', which is missing/);

    const wrong = hex('not the layer');
    const bad = gnuTar([
      '-C',
      tree({
        [`${wrong}/layer.tar`]: { mode: 0o644, body: layers[0] as Buffer },
        'c.json': cfg,
        'manifest.json': `[{"Config":"c.json","Layers":["${wrong}/layer.tar"]}]`,
      }),
      '-cf',
      '-',
      '.',
    ]);
    const s2 = readDockerArchive([bad], { label: 'bad.tar' });
    for await (const l of s2.layers()) await l.skip();
    await expect(s2.finish()).rejects.toThrow(/layer named sha256:[0-9a-f]{64} is listed in the config as/);
  });
});
