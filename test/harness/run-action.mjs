#!/usr/bin/env node
// CLI around runner-core.runAction, for running main and post inside one private mount namespace (see
// runActionInNamespace in github-runner.ts): `node run-action.mjs SPEC.json RESULT.json`. The spec comes from a
// file, never from the shell command line, so nothing in it is ever interpreted by a shell.
// Exit status: 0 when the harness worked (whether or not the action succeeded; that is in the result), 2 when the
// harness itself failed, with `{ "error": ... }` in the result file.
import { readFileSync, writeFileSync } from 'node:fs';
import { runAction } from './runner-core.mjs';

const [specFile, resultFile] = process.argv.slice(2);
if (!specFile || !resultFile) {
  console.error('usage: node run-action.mjs SPEC.json RESULT.json');
  process.exit(2);
}
try {
  const spec = JSON.parse(readFileSync(specFile, 'utf8'));
  const result = await runAction(spec);
  writeFileSync(resultFile, JSON.stringify(result));
} catch (e) {
  writeFileSync(resultFile, JSON.stringify({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  console.error(e);
  process.exit(2);
}
