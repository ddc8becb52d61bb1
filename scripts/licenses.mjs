// The licenses.txt of a bundle, from webpack's stats of what ncc put in it. ncc's own `--license` writes one file per
// output chunk under the same name, so a bundle split into chunks (lazy imports) kept only the last chunk's notices.
// Format as ncc wrote it: per package `name`, `license`, the license text, a blank line; sorted by name.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const PACKAGE = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//;
const ROOT = new URL('..', import.meta.url).pathname;
// Code vendored outside node_modules, listed when the module that carries it is in a bundle.
const VENDORED = [
  { module: '/src/oci/deflate-wasm.ts', dir: 'vendor/libdeflate', name: 'libdeflate', version: '1.23', license: 'MIT' },
];

/** Every module path in the stats, nested concatenated modules included. */
function modulePaths(modules, out = []) {
  for (const m of modules ?? []) {
    for (const field of [m.identifier, m.nameForCondition]) {
      if (typeof field !== 'string') continue;
      // Loader chains are `loader!loader!/path`; the resource is the last part.
      out.push(field.split('!').pop());
    }
    modulePaths(m.modules, out);
  }
  return out;
}

function licenseText(dir) {
  const file = readdirSync(dir)
    .filter((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f))
    .sort()[0];
  return file ? readFileSync(join(dir, file), 'utf8').trim() : '';
}

function licenseName(pkg) {
  if (typeof pkg.license === 'string') return pkg.license;
  if (pkg.license && typeof pkg.license.type === 'string') return pkg.license.type;
  if (Array.isArray(pkg.licenses)) return pkg.licenses.map((l) => l.type ?? l).join(' OR ');
  return 'UNKNOWN';
}

export function licensesFromStats(statsFile) {
  const stats = JSON.parse(readFileSync(statsFile, 'utf8'));
  const dirs = new Set();
  for (const p of modulePaths(stats.modules)) {
    const m = PACKAGE.exec(p);
    if (m) dirs.add(m[1]);
  }
  const entries = new Map();
  for (const v of VENDORED)
    if (modulePaths(stats.modules).some((p) => p.endsWith(v.module)))
      entries.set(v.name, { ...v, text: licenseText(join(ROOT, v.dir)) });
  for (const dir of dirs) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8'));
    if (pkg.private) continue;
    // Two copies of one package at different versions are listed once each.
    const key =
      entries.has(pkg.name) && entries.get(pkg.name).version !== pkg.version ? `${pkg.name}@${pkg.version}` : pkg.name;
    entries.set(key, { name: pkg.name, version: pkg.version, license: licenseName(pkg), text: licenseText(dir) });
  }
  return [...entries.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, e]) => `${e.name}\n${e.license}\n${e.text}\n\n`)
    .join('');
}
