// A synthetic docker-archive for the oci-push benchmark, in streamLayeredImage's layout (DESIGN.md, OCI):
// `<diff_id>/layer.tar` per layer, then the config, then manifest.json. Layer contents mix files from /usr (real
// binaries and data, which compress like an application image does) with pseudo-random bytes (incompressible, like
// already-compressed assets), both chosen deterministically from a seed: the same arguments give the same bytes on the
// same host, so every repetition pushes the same image.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, lstatSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const BLOCK = 512;

/** A ustar header for a regular file or directory (uid/gid 0, fixed mtime), as dockerTools writes them. */
function header(name, size, type = '0') {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(type === '5' ? '0000755\0' : '0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000001\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.write('root', 265);
  h.write('root', 297);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

const pad = (n) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** xorshift32 mixed with a Weyl sequence: fast, seedable, and enough to defeat a compressor. */
function randomBytes(seed, n) {
  const out = Buffer.alloc(n);
  let a = (Math.imul(seed + 1, 0x9e3779b1) >>> 0) | 1;
  let b = Math.imul(seed + 7, 0x85ebca6b) | 0;
  for (let i = 0; i + 4 <= n; i += 4) {
    a ^= a << 13;
    a ^= a >>> 17;
    a ^= a << 5;
    b = (b + 0x6d2b79f5) | 0;
    out.writeInt32LE((a ^ b) | 0, i);
  }
  return out;
}

/** Regular files under the roots, depth first in name order (deterministic on one host), capped. */
function usrFiles(roots, limit = 20000) {
  const out = [];
  const walk = (dir) => {
    if (out.length >= limit) return;
    let names;
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && st.size < 8 << 20) out.push({ path: p, size: st.size });
      if (out.length >= limit) return;
    }
  };
  for (const r of roots) walk(r);
  return out;
}

/** One layer tar in memory: /usr files up to `usrFraction` of `bytes`, then random files for the rest. */
function layerTar(files, cursor, index, bytes, usrFraction) {
  const parts = [header(`layer${index}/`, 0, '5')];
  let size = 0;
  let n = 0;
  const add = (data) => {
    parts.push(header(`layer${index}/f${String(n++).padStart(5, '0')}`, data.length), data, pad(data.length));
    size += data.length;
  };
  while (size < bytes * usrFraction && files.length > 0) {
    const f = files[cursor.at++ % files.length];
    try {
      add(readFileSync(f.path));
    } catch {
      // unreadable (permissions): skip it
    }
  }
  for (let k = 0; size < bytes; k++) add(randomBytes(index * 1000 + k, Math.min(4 << 20, bytes - size)));
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/**
 * Writes the archive to `file`; returns its layers' diff_ids and its size. ~`layers * layerBytes` bytes of content.
 */
export function generateArchive(file, { layers = 20, layerBytes = 17 << 20, usrFraction = 0.7, seed = 1 } = {}) {
  const files = usrFiles(['/usr/lib', '/usr/share', '/usr/bin']);
  const cursor = { at: seed * 7919 };
  const fd = openSync(file, 'w');
  let written = 0;
  const write = (b) => {
    writeSync(fd, b);
    written += b.length;
  };
  const diffIds = [];
  const members = [];
  try {
    for (let i = 0; i < layers; i++) {
      const tar = layerTar(files, cursor, i, layerBytes, usrFraction);
      const hex = createHash('sha256').update(tar).digest('hex');
      diffIds.push(`sha256:${hex}`);
      members.push(`${hex}/layer.tar`);
      write(header(`${hex}/layer.tar`, tar.length));
      write(tar);
      write(pad(tar.length));
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: diffIds },
      }),
    );
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['bench:latest'], Layers: members }]));
    for (const [name, data] of [
      [configName, config],
      ['manifest.json', manifest],
    ]) {
      write(header(name, data.length));
      write(data);
      write(pad(data.length));
    }
    write(Buffer.alloc(2 * BLOCK));
  } finally {
    closeSync(fd);
  }
  return { diffIds, size: written };
}
