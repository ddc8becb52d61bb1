// `npm run demo`: the suite's main job, run locally the way the GitHub runner runs it (test/harness), on
// examples/hello: install-nix, then `nix build` and `nix flake check`, printed like a CI log.
//
// Everything happens in a private mount namespace with a private copy of /etc and a fresh tmpfs on /nix (the
// integration tests' isolation), so the demo never changes the host's /etc/nix or /nix. Needs root; on a fresh
// machine run `bash .ci/setup` first. `DEMO_DEBUG=1` also shows the action's debug lines; `DEMO_SOURCE=tarball`
// installs Nix from the release tarball even when one is installed already.
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The plain-JS twin of test/harness's runActionInNamespace, shared with the benchmarks.
import {
  REPO_ROOT,
  RELEASE_DIR,
  TARBALL,
  TARBALL_NAME,
  isolation,
  runInNamespace,
  scratchDir,
  serveDirectory,
} from '../bench/lib/common.mjs';

const DEBUG = process.env.DEMO_DEBUG === '1';

function fail(message) {
  console.error(`demo: ${message}`);
  process.exit(1);
}

if (process.getuid?.() !== 0) fail('needs root (it makes a private mount namespace with a tmpfs /nix)');
if (!existsSync('/usr/bin/unshare')) fail('/usr/bin/unshare is missing: apt-get install util-linux');
if (!existsSync(join(REPO_ROOT, 'dist/install-nix/index.js'))) fail("dist/ is missing: run 'npm run build'");

// Workflow commands the runner turns into log decorations; %-escapes as in @actions/core.
const COMMAND = /^::([a-z-]+)(?: [^:]*)?::(.*)$/;
const unescape = (s) => s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');

/** Prints a step's log as the Actions UI shows it: groups as `▶ Title` sections, annotations marked, commands hidden. */
function render(log) {
  let pad = '  ';
  for (const line of log.split('\n')) {
    const m = COMMAND.exec(line);
    if (!m) {
      if (line.trim() !== '') console.log(pad + line);
      continue;
    }
    const [, command, data] = m;
    const text = unescape(data);
    if (command === 'group') {
      console.log(`  ▶ ${text}`);
      pad = '      ';
    } else if (command === 'endgroup') pad = '  ';
    else if (command === 'error') console.log(`${pad}✖ Error: ${text}`);
    else if (command === 'warning') console.log(`${pad}⚠ Warning: ${text}`);
    else if (command === 'notice') console.log(`${pad}ℹ Notice: ${text}`);
    else if (command === 'debug' && DEBUG) console.log(`${pad}[debug] ${text}`);
    // add-mask, save-state and the rest are for the runner, not for the log.
  }
}

// Flakes inside a git tree see only tracked files; a copy outside any repository is a plain `path:` flake, as a
// fresh checkout would be.
const workspace = join(mkdtempSync(join(tmpdir(), 'flake-ci-demo-')), 'hello');
cpSync(join(REPO_ROOT, 'examples/hello'), workspace, { recursive: true });
const scratch = scratchDir('demo-');

// With `source: auto` an installed Nix (Debian's nix-bin after .ci/setup) is reused. Only when there is none is
// the release tarball needed: the local fixture when .ci/setup built it, else the default releases.nixos.org URL.
const server = existsSync(TARBALL) ? await serveDirectory(RELEASE_DIR) : undefined;
const inputs = {
  source: process.env.DEMO_SOURCE || 'auto',
  ...(server ? { 'tarball-url': `${server.url}/${TARBALL_NAME}` } : {}),
  // The example's builder is the host's /bin/sh, which a build sandbox would hide.
  sandbox: 'false',
  // The example needs nothing from a binary cache; no substituters keeps the demo offline and quick.
  'extra-conf': 'substituters =',
  // No VM tests in the example; the probe would only add a second.
  kvm: 'false',
};
// `run:` steps after install-nix, as a workflow would have them (bash -e, in the checkout, with the exported PATH).
const steps = [
  'nix --version',
  'nix build --no-link .',
  'nix path-info .\ncat "$(nix path-info .)"',
  'nix flake check && echo "flake check: all checks passed"',
];

let result;
try {
  console.log(`Running the job on ${workspace} (private mount namespace, tmpfs /nix, private /etc)\n`);
  result = await runInNamespace({ action: 'install-nix', inputs, steps, dirs: { workspace } }, isolation(scratch));
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
} finally {
  await server?.close();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(join(workspace, '..'), { recursive: true, force: true });
}

const { main, post } = result;
console.log(`▶ Run ./actions/install-nix (${(main.durationMs / 1000).toFixed(1)} s)`);
console.log('  with:');
for (const [k, v] of Object.entries(inputs)) console.log(`    ${k}: ${v}`);
render(main.log);
for (const w of main.runnerWarnings) console.log(`  ⚠ Runner: ${w}`);
console.log('  Outputs:');
for (const [k, v] of Object.entries(main.outputs)) console.log(`    ${k} = ${v}`);

const ran = result.steps ?? [];
for (const s of ran) {
  console.log(`▶ Run ${s.command.split('\n').join('; ')}`);
  render(s.stderr + s.stdout); // nix reports progress on stderr and results on stdout: progress first reads best
  if (s.exitCode !== 0) console.log(`  ✖ Process completed with exit code ${s.exitCode ?? s.signal}.`);
}
if (post) {
  console.log('▶ Post Run ./actions/install-nix');
  render(post.log);
}

const outPath = /^\/nix\/store\/\S+$/m.exec(ran[2]?.stdout ?? '')?.[0];
const failed = [!main.ok && 'install-nix', ...ran.filter((s) => s.exitCode !== 0).map((s) => s.command.split('\n')[0])];
if (post && !post.ok) failed.push('install-nix post');
console.log('\nResult');
console.log(
  `  Nix:        ${main.outputs['nix-version'] ?? '-'} (${main.outputs.source ?? '-'}, ${main.outputs.mode ?? '-'})`,
);
console.log(`  Build:      ${outPath ?? 'no output path'}`);
console.log(`  Checks:     ${ran[3]?.exitCode === 0 ? 'passed' : 'FAILED'}`);
if (failed.filter(Boolean).length) fail(`failed step(s): ${failed.filter(Boolean).join(', ')}`);
console.log('  Job succeeded.');
