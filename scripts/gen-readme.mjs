#!/usr/bin/env node
// `npm run docs`: regenerates the inputs/outputs tables in README.md from actions/*/action.yml.
// `--check` changes nothing and exits 1 naming every action whose tables drifted (CI runs it, so a changed
// action.yml without `npm run docs` fails). `--root DIR` works on another checkout (used by the tests).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadActions, updateReadme } from './readme-tables.mjs';

const args = process.argv.slice(2);
const check = args.includes('--check');
const rootAt = args.indexOf('--root');
const root = rootAt >= 0 ? resolve(args[rootAt + 1] ?? '.') : new URL('..', import.meta.url).pathname;
const readmePath = join(root, 'README.md');

const { text, drifted, problems } = updateReadme(readFileSync(readmePath, 'utf8'), loadActions(root));
for (const p of problems) console.error(`gen-readme: ${p}`);
if (check) {
  for (const name of drifted) {
    console.error(`gen-readme: README.md tables for ${name} are out of date with actions/${name}/action.yml`);
  }
  if (drifted.length) console.error('gen-readme: run `npm run docs` and commit README.md');
  process.exit(drifted.length || problems.length ? 1 : 0);
}
if (drifted.length) {
  writeFileSync(readmePath, text);
  console.log(`gen-readme: updated ${drifted.join(', ')}`);
} else {
  console.log('gen-readme: README.md is up to date');
}
process.exit(problems.length ? 1 : 0);
