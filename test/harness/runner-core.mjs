// Runs a JavaScript action's bundles the way the GitHub runner does (TESTING.md "Run the bundles the way the runners
// do"): a clean environment, INPUT_* variables with action.yml defaults applied, fresh file-command files, then the
// post step with STATE_* and the env/PATH the main step exported. Plain JS so run-action.mjs can use it inside a
// mount namespace without a TypeScript loader; github-runner.ts is the typed face for tests.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { maskLog, parseKeyValueFile, parsePathFile, parseWorkflowCommands, prependPath } from './file-commands.mjs';

export { maskLog, parseKeyValueFile, parsePathFile, parseWorkflowCommands, prependPath };

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
const SUMMARY_LIMIT = 1024 * 1024; // the runner refuses to upload a larger job summary
const KILL_GRACE_MS = 5000;
const STREAM_GRACE_MS = 2000;

/** `INPUT_<NAME>`: upper-cased, spaces to `_`, dashes kept (actions/runner NodeScriptActionHandler). */
export function inputEnvName(name) {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}

export function loadAction(actionDir) {
  const file = ['action.yml', 'action.yaml'].map((f) => join(actionDir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`no action.yml in ${actionDir}`);
  return parse(readFileSync(file, 'utf8'));
}

function actionDirOf(opts) {
  if (opts.actionDir) return resolve(opts.actionDir);
  if (opts.action) return join(REPO_ROOT, 'actions', opts.action);
  throw new Error('runStep needs `action` (a name under actions/) or `actionDir`');
}

/**
 * The script for a step: `<distRoot>/<entry>/index.js` when `entry` is given; otherwise runs.<step> from action.yml,
 * resolved against the action directory, with a leading `.../dist/` re-rooted at `distRoot` when that is given (so a
 * fresh build in a temporary directory can be tested against the committed action.yml).
 */
function scriptOf(opts, action, actionDir, step) {
  const distRoot = opts.distRoot ? resolve(opts.distRoot) : join(REPO_ROOT, 'dist');
  if (opts.entry) return join(distRoot, opts.entry, 'index.js');
  const rel = action?.runs?.[step];
  if (typeof rel !== 'string') throw new Error(`${actionDir}/action.yml has no runs.${step}`);
  const m = /(?:^|\/)dist\/(.+)$/.exec(rel);
  return opts.distRoot && m ? join(distRoot, m[1]) : resolve(actionDir, rel);
}

/** Evaluates the few `${{ }}` expressions that action.yml defaults use; anything else is a test bug, so throw. */
function evaluateDefault(value, ctx) {
  return String(value).replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (_, expr) => {
    if (!(expr in ctx)) throw new Error(`harness cannot evaluate \${{ ${expr} }} in an input default`);
    return ctx[expr];
  });
}

function runnerOs() {
  return { linux: 'Linux', darwin: 'macOS', win32: 'Windows' }[process.platform] ?? process.platform;
}
function runnerArch() {
  return { x64: 'X64', arm64: 'ARM64', arm: 'ARM', ia32: 'X86' }[process.arch] ?? process.arch;
}

function runnerDirs(opts, workDir) {
  const env = opts.env ?? {};
  const dirs = {
    workDir,
    temp: opts.dirs?.temp ?? env.RUNNER_TEMP ?? join(workDir, 'temp'),
    toolCache: opts.dirs?.toolCache ?? env.RUNNER_TOOL_CACHE ?? join(workDir, 'tool-cache'),
    workspace: opts.dirs?.workspace ?? env.GITHUB_WORKSPACE ?? join(workDir, 'workspace'),
    home: opts.dirs?.home ?? env.HOME ?? join(workDir, 'home'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  return dirs;
}

/** Runs one step (main or post) of an action and returns what the runner would have recorded. */
export async function runStep(opts) {
  const step = opts.step ?? 'main';
  const actionDir = actionDirOf(opts);
  const action = loadAction(actionDir);
  const script = scriptOf(opts, action, actionDir, step);
  const ownWorkDir = !opts.workDir;
  const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), 'flake-ci-runner-'));
  try {
    return await runStepIn(opts, step, actionDir, action, script, runnerDirs(opts, workDir));
  } finally {
    if (ownWorkDir && !opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
  }
}

async function runStepIn(opts, step, actionDir, action, script, dirs) {
  const runnerWarnings = [];
  const commandDir = join(dirs.temp, '_runner_file_commands');
  mkdirSync(commandDir, { recursive: true });
  const files = {};
  for (const [key, prefix] of [
    ['GITHUB_OUTPUT', 'set_output'],
    ['GITHUB_STATE', 'save_state'],
    ['GITHUB_ENV', 'set_env'],
    ['GITHUB_PATH', 'add_path'],
    ['GITHUB_STEP_SUMMARY', 'step_summary'],
  ]) {
    files[key] = join(commandDir, `${prefix}_${randomUUID()}`);
    writeFileSync(files[key], '');
  }

  // Base: only what a runner provides. The caller's env is the job's env; what earlier steps wrote to GITHUB_ENV
  // overrides it (as on the runner), and directories from GITHUB_PATH go in front of PATH, most recent first.
  const env = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dirs.home,
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: 'flake-ci/harness-test',
    GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'https://api.github.com',
    RUNNER_OS: runnerOs(),
    RUNNER_ARCH: runnerArch(),
    RUNNER_ENVIRONMENT: 'self-hosted',
    ...opts.env,
    ...opts.exportedEnv,
    RUNNER_TEMP: dirs.temp,
    RUNNER_TOOL_CACHE: dirs.toolCache,
    GITHUB_WORKSPACE: dirs.workspace,
    GITHUB_ACTION_PATH: actionDir,
    ...files,
  };
  if (opts.debug) env.RUNNER_DEBUG = '1';
  if (opts.addedPath?.length) env.PATH = prependPath(opts.addedPath, env.PATH);

  const ctx = {
    'github.token': opts.token ?? '',
    'github.workspace': dirs.workspace,
    'github.repository': env.GITHUB_REPOSITORY,
    'github.sha': env.GITHUB_SHA,
    'github.server_url': env.GITHUB_SERVER_URL,
    'github.api_url': env.GITHUB_API_URL,
    'runner.temp': dirs.temp,
    'runner.tool_cache': dirs.toolCache,
    'runner.os': env.RUNNER_OS,
    'runner.arch': env.RUNNER_ARCH,
  };
  // Every declared input gets a variable (its default, or ''); undeclared ones are passed with a warning.
  const declared = action?.inputs ?? {};
  const given = opts.inputs ?? {};
  for (const [name, spec] of Object.entries(declared)) {
    const value = name in given ? String(given[name]) : evaluateDefault(spec?.default ?? '', ctx);
    env[inputEnvName(name)] = value;
  }
  const unexpected = Object.keys(given).filter((n) => !(n in declared));
  for (const name of unexpected) env[inputEnvName(name)] = String(given[name]);
  if (unexpected.length) runnerWarnings.push(`Unexpected input(s) '${unexpected.join("', '")}'`);
  for (const [name, value] of Object.entries(opts.state ?? {})) env[`STATE_${name}`] = value;

  const started = Date.now();
  const proc = await spawnStep(script, env, dirs.workspace, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.node);

  const read = (key) => readFileSync(files[key], 'utf8');
  const exported = parseKeyValueFile(read('GITHUB_ENV'), 'GITHUB_ENV');
  // The runner refuses NODE_OPTIONS from GITHUB_ENV (it could inject code into later actions).
  if ('NODE_OPTIONS' in exported) {
    delete exported.NODE_OPTIONS;
    runnerWarnings.push("Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.");
  }
  const summary = read('GITHUB_STEP_SUMMARY');
  if (Buffer.byteLength(summary) > SUMMARY_LIMIT) runnerWarnings.push('$GITHUB_STEP_SUMMARY upload aborted (> 1 MiB)');
  const commands = parseWorkflowCommands(proc.stdout);
  return {
    step,
    script,
    exitCode: proc.exitCode,
    signal: proc.signal,
    timedOut: proc.timedOut,
    ok: proc.exitCode === 0 && !proc.timedOut,
    durationMs: Date.now() - started,
    stdout: proc.stdout,
    stderr: proc.stderr,
    log: maskLog(proc.stdout + proc.stderr, commands.masks),
    outputs: parseKeyValueFile(read('GITHUB_OUTPUT'), 'GITHUB_OUTPUT'),
    state: parseKeyValueFile(read('GITHUB_STATE'), 'GITHUB_STATE'),
    env: exported,
    path: parsePathFile(read('GITHUB_PATH')),
    summary,
    ...commands,
    runnerWarnings,
    dirs,
  };
}

/**
 * Spawns `node script` in its own process group so a timeout can kill the step and everything it started.
 * Resolves on exit; a grandchild that keeps stdout open (a daemon) gets STREAM_GRACE_MS, then is ignored.
 */
function spawnStep(script, env, cwd, timeoutMs, node = process.execPath) {
  return spawnProcess(node, [script], env, cwd, timeoutMs);
}

function spawnProcess(file, args, env, cwd, timeoutMs) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    let timedOut = false;
    let killTimer;
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (exitCode, signal) => {
      clearTimeout(timer);
      const finish = () => {
        clearTimeout(killTimer);
        clearTimeout(streamTimer);
        child.stdout.destroy();
        child.stderr.destroy();
        resolvePromise({
          exitCode,
          signal,
          timedOut,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      };
      const streamTimer = setTimeout(finish, STREAM_GRACE_MS);
      let open = 2;
      const closed = () => --open === 0 && finish();
      if (child.stdout.readableEnded) closed();
      else child.stdout.once('end', closed);
      if (child.stderr.readableEnded) closed();
      else child.stderr.once('end', closed);
    });
  });
}

/** Whether the runner runs the post step, from `runs.post-if` (default `always()`). */
function postRuns(action, main) {
  const cond = String(action?.runs?.['post-if'] ?? 'always()').replace(/^\$\{\{\s*|\s*\}\}$/g, '');
  if (cond === 'always()') return true;
  if (cond === 'success()') return main.ok;
  if (cond === 'failure()') return !main.ok;
  throw new Error(`harness cannot evaluate post-if: ${cond}`);
}

/** Runs main and, when action.yml has `post` (and post-if allows), the post step with main's state, env and PATH. */
export async function runAction(opts) {
  const actionDir = actionDirOf(opts);
  const action = loadAction(actionDir);
  if (opts.entry) throw new Error('runAction takes the entries from action.yml; use runStep for `entry`');
  const ownWorkDir = !opts.workDir;
  const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), 'flake-ci-runner-'));
  try {
    const common = { ...opts, actionDir, workDir };
    const main = await runStep({ ...common, step: 'main' });
    const steps = await runShellSteps(opts, main);
    if (!action?.runs?.post || !postRuns(action, main)) return { main, steps };
    const post = await runStep({
      ...common,
      step: 'post',
      state: main.state,
      exportedEnv: { ...opts.exportedEnv, ...main.env },
      addedPath: [...(opts.addedPath ?? []), ...main.path],
    });
    return { main, steps, post };
  } finally {
    if (ownWorkDir && !opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * `run:` steps between main and post, as the runner runs them (`bash -e -c`, in the workspace), with what main
 * exported through GITHUB_ENV and GITHUB_PATH. They run even when main failed, like `if: always()`, so a test can
 * look at what a failed step left behind.
 */
async function runShellSteps(opts, main) {
  const results = [];
  for (const command of opts.steps ?? []) {
    const env = {
      PATH: prependPath([...(opts.addedPath ?? []), ...main.path], process.env.PATH),
      HOME: main.dirs.home,
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      ...opts.env,
      ...opts.exportedEnv,
      ...main.env,
      RUNNER_TEMP: main.dirs.temp,
      GITHUB_WORKSPACE: main.dirs.workspace,
    };
    const r = await spawnProcess(
      '/bin/bash',
      ['-e', '-c', command],
      env,
      main.dirs.workspace,
      opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    );
    results.push({ command, ...r });
  }
  return results;
}
