// Bundles every src/entrypoints/<entry>.ts into dist/<entry>/ with ncc (ESM output). dist/ is committed, and CI
// rebuilds it from scratch and fails on any difference, so the output must be deterministic.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { licensesFromStats } from './licenses.mjs';

const root = new URL('..', import.meta.url).pathname;
const all = readdirSync(join(root, 'src/entrypoints'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => basename(f, '.ts'))
  .sort();
// `--only a,b` rebuilds just those bundles and leaves the rest of dist/ alone, so work on one action does not pull
// the other bundles out from under tests running at the same time. Without it, dist/ is rebuilt from scratch.
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? (process.argv[onlyAt + 1] ?? '').split(',').filter(Boolean) : undefined;
const unknown = (only ?? []).filter((e) => !all.includes(e));
if (unknown.length > 0) throw new Error(`--only: no src/entrypoints/${unknown[0]}.ts`);
const entries = only ?? all;
if (only) for (const entry of only) rmSync(join(root, 'dist', entry), { recursive: true, force: true });
else rmSync(join(root, 'dist'), { recursive: true, force: true });
// webpack stats of each bundle (for its licenses.txt) go outside dist/: only the bundles are committed.
const tmp = mkdtempSync(join(tmpdir(), 'flake-ci-build-'));
for (const entry of entries) {
  const out = join(root, 'dist', entry);
  const stats = join(tmp, `${entry}.json`);
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules/@vercel/ncc/dist/ncc/cli.js'),
      'build',
      join(root, 'src/entrypoints', `${entry}.ts`),
      '-o',
      out,
      '--stats-out',
      stats,
      '-q',
      '--transpile-only',
      '--target',
      'es2023',
    ],
    { stdio: 'inherit', cwd: root },
  );
  writeFileSync(join(out, 'licenses.txt'), licensesFromStats(stats));
  // ncc writes package.json {"type":"module"} for ESM output; make sure it is there so node treats index.js as ESM.
  const pkg = join(out, 'package.json');
  if (!existsSync(pkg) || !readFileSync(pkg, 'utf8').includes('"module"')) writeFileSync(pkg, '{"type":"module"}\n');
}
rmSync(tmp, { recursive: true, force: true });
console.log(`built ${entries.length} bundles: ${entries.join(', ')}`);
