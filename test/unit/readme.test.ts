// README tables are generated from action.yml (DESIGN.md); this keeps them in sync, checks that the generator
// notices drift, and checks every action.yml against the house shape (node24, entries that exist in dist/).
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cell, loadActions, renderTables, updateReadme } from '../../scripts/readme-tables.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const actions = loadActions(root);
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface ActionYml {
  name?: string;
  description?: string;
  inputs?: Record<string, { description?: string }>;
  outputs?: Record<string, { description?: string }>;
  runs?: { using?: string; main?: string; post?: string };
}

function runCheck(dir: string): { code: number; stderr: string } {
  try {
    execFileSync(process.execPath, [join(root, 'scripts/gen-readme.mjs'), '--check', '--root', dir], { stdio: 'pipe' });
    return { code: 0, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stderr: Buffer };
    return { code: err.status, stderr: err.stderr.toString() };
  }
}

describe('README tables', () => {
  it('finds the actions', () => {
    expect(actions.map((a) => a.name)).toContain('install-nix');
  });

  it('are in sync with action.yml (run `npm run docs` when this fails)', () => {
    const { drifted, problems } = updateReadme(readme, actions);
    expect(problems).toEqual([]);
    expect(drifted).toEqual([]);
  });

  it('fold descriptions to one line and escape pipes', () => {
    expect(cell('a\n  b | c\n')).toBe('a b \\| c');
    const md = renderTables({
      inputs: { x: { description: 'one\ntwo', default: 'a|b', required: true } },
      outputs: { y: { description: 'out' } },
    });
    expect(md).toContain('| `x` | one two | `a\\|b` | yes |');
    expect(md).toContain('| `y` | out |');
  });

  it('--check names the drifted action and exits non-zero', () => {
    const dir = mkdtempSync(join(tmpdir(), 'readme-drift-'));
    try {
      cpSync(join(root, 'actions'), join(dir, 'actions'), { recursive: true });
      writeFileSync(join(dir, 'README.md'), readme);
      expect(runCheck(dir).code).toBe(0);
      const yml = join(dir, 'actions/install-nix/action.yml');
      writeFileSync(yml, readFileSync(yml, 'utf8').replace(/Absolute path of the nix binary\./, 'Changed.'));
      const { code, stderr } = runCheck(dir);
      expect(code).toBe(1);
      expect(stderr).toContain('install-nix');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(actions.map((a) => [a.name, a.action as ActionYml] as const))('actions/%s/action.yml', (name, action) => {
  const actionDir = join(root, 'actions', name);

  it('has a name, a description and documented kebab-case inputs and outputs', () => {
    expect(action.name).toBeTruthy();
    expect(action.description).toBeTruthy();
    for (const [input, spec] of Object.entries(action.inputs ?? {})) {
      expect(input).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
      expect(spec?.description).toBeTruthy();
    }
    for (const [output, spec] of Object.entries(action.outputs ?? {})) {
      expect(output).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
      expect(spec?.description).toBeTruthy();
    }
  });

  it('runs on node24 from ../../dist/<entry>/index.js', () => {
    expect(action.runs?.using).toBe('node24');
    for (const step of ['main', 'post'] as const) {
      const rel = action.runs?.[step];
      if (step === 'main') expect(rel).toBeDefined();
      if (rel === undefined) continue;
      expect(rel).toMatch(/^\.\.\/\.\.\/dist\/[a-z0-9-]+\/index\.js$/);
      // dist/<entry> is built from src/entrypoints/<entry>.ts (scripts/build.mjs).
      const entry = rel.split('/')[3] ?? '';
      expect(existsSync(join(root, 'src/entrypoints', `${entry}.ts`))).toBe(true);
    }
  });

  it('has its main and post bundles in dist/ (run `npm run build` when this fails)', () => {
    for (const step of ['main', 'post'] as const) {
      const rel = action.runs?.[step];
      if (rel === undefined) continue;
      const file = resolve(actionDir, rel);
      expect({ step, file, exists: existsSync(file) }).toEqual({ step, file, exists: true });
    }
  });
});
