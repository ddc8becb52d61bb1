// `npm run bench`: runs every bench/*.mjs (except this file) one after the other, so they never compete for the
// CPU, echoes their output, then prints a summary table of the `name: ours X s, baseline Y s, ratio Z` lines.
// Benchmarks only print: a slow result never fails the run; a benchmark that crashes does (exit 1).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2); // `npm run bench -- install-tarball` runs just that one
const files = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== basename(fileURLToPath(import.meta.url)))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const LINE = /^(\S+): ours ([\d.]+) s, baseline ([\d.]+) s, ratio ([\d.]+)(?: \((.*)\))?$/;

function runOne(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, file)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

const rows = [];
let failed = 0;
for (const file of files) {
  console.log(`\n== ${file}`);
  const started = Date.now();
  const { code, out } = await runOne(file);
  const results = out
    .split('\n')
    .map((l) => LINE.exec(l))
    .filter(Boolean);
  if (code !== 0 || results.length === 0) {
    failed++;
    rows.push([file, '-', '-', '-', `FAILED (exit ${code})`]);
    continue;
  }
  for (const [, name, ours, base, ratio, note = ''] of results) rows.push([name, ours, base, ratio, note]);
  console.log(`(${file} took ${Math.round((Date.now() - started) / 1000)} s)`);
}

const table = [['benchmark', 'ours s', 'baseline s', 'ratio', 'notes'], ...rows];
const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
console.log('\nSummary');
for (const r of table) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
if (failed) {
  console.error(`\n${failed} benchmark(s) failed`);
  process.exit(1);
}
