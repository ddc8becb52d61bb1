/**
 * What a failed VM test leaves for people to look at, kept under `<dir>/<attr>/` (the attribute made file-name safe):
 * - `build.log`: the full build log from `nix log DRV`, else `nix-store --read-log DRV`, else the log tail the build
 *   kept (with a first line saying so). A failed NixOS test has no `$out`, so its log is all there is.
 * - `driver-output/`: what the test's driver writes when run again (`nix run <flake>#<attr>.driver -- -o DIR`, the
 *   interface of NixOS's nixos-test-driver, whose `-o` receives screenshots and files copied from the VMs), and
 *   `driver.log`, its console. Only when `nix` and `flake` are given and the attribute has a `driver`. The driver runs
 *   outside the Nix sandbox, as the job's user, like `nix run ...driver` on a developer's machine; `nix run` also
 *   maps a chroot store onto /nix/store for it. It is stopped at a deadline: twice the failed build's time plus a
 *   minute (2 to 60 minutes) unless `driverTimeoutSeconds` says otherwise.
 * Nothing here fails the step: problems are warnings (DESIGN.md: reporting problems are warnings).
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { formatAttrPath } from './attr-path.js';
import { NO_EVAL_CACHE } from './evaluate.js';
import type { AttrResult } from './results.js';
import { nixEnv, spawnToFile } from './vm-spawn.js';

export interface VmArtifact {
  attr: string;
  /** Files kept for this VM test (log, screenshots), absolute paths under the artifact directory. */
  files: string[];
}

export interface VmArtifactOptions {
  /** The installation that built: reads full logs and runs drivers. Without it only log tails are kept. */
  nix?: NixCommand;
  /** The flake reference the attributes came from; needed to run drivers again. */
  flake?: string;
  /** Directory the flake reference is relative to. */
  cwd?: string;
  /** Run the drivers of failed tests again for their screenshots. Default true. */
  rerunDrivers?: boolean;
  driverTimeoutSeconds?: number;
}

// `nix log` may ask substituters for logs: never let a slow one hold up the step.
const LOG_TIMEOUT_MS = 120_000;

/** Failed VM tests whose own derivation ran: refused ones (attempts 0) and dependency failures left nothing. */
export function ranAndFailed(r: AttrResult): boolean {
  return (r.status === 'failed' || r.status === 'infra-failure') && r.attempts > 0 && r.drvPath !== '';
}

/** A directory name for an attribute: portable, artifact-upload safe, unique within `used`. */
export function artifactDirName(attr: string, used: Set<string>): string {
  let base = attr.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.]+/, '_');
  if (base === '') base = '_';
  let name = base;
  for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
  used.add(name);
  return name;
}

export function defaultDriverTimeoutSeconds(buildSeconds: number): number {
  return Math.min(3600, Math.max(120, Math.ceil(buildSeconds * 2) + 60));
}

type LogSource = 'nix log' | 'nix-store --read-log' | 'log tail';

async function nonEmpty(file: string): Promise<boolean> {
  return (await fs.stat(file).catch(() => undefined))?.size ? true : false;
}

/** Writes the best log there is to `file`; undefined when there is none at all. */
async function saveBuildLog(
  platform: Platform,
  r: AttrResult,
  file: string,
  nix: NixCommand | undefined,
): Promise<LogSource | undefined> {
  if (nix) {
    const env = nixEnv(nix.env);
    const tries: [LogSource, string, string[]][] = [['nix log', nix.program('nix'), nix.nixArgs(['log', r.drvPath])]];
    if (existsSync(nix.program('nix-store'))) {
      tries.push(['nix-store --read-log', nix.program('nix-store'), ['--read-log', r.drvPath]]);
    }
    for (const [source, program, args] of tries) {
      const res = await spawnToFile(program, args, { env, out: file, timeoutMs: LOG_TIMEOUT_MS });
      if (res.exitCode === 0 && (await nonEmpty(file))) return source;
      const why = res.error ?? (res.timedOut ? 'timed out' : res.stderr.trim().split('\n').slice(-2).join(' '));
      platform.log('debug', `${source} ${r.drvPath}: no log (${why || `exit code ${res.exitCode}`})`);
    }
  }
  if (!r.logTail?.length) {
    await fs.rm(file, { force: true });
    return undefined;
  }
  const note = `# flake-ci: the full build log of ${r.drvPath} was not available; its last ${r.logTail.length} lines:`;
  await fs.writeFile(file, [note, ...r.logTail, ''].join('\n'));
  return 'log tail';
}

async function hasDriver(nix: NixCommand, flake: string, r: AttrResult, cwd?: string): Promise<boolean> {
  const installable = `${flake}#${formatAttrPath(r.attrPath)}`;
  const res = await nix.run(
    ['eval', ...NO_EVAL_CACHE, '--json', installable, '--apply', 't: builtins.isAttrs t && t ? driver'],
    {
      cwd,
      allowFailure: true,
    },
  );
  return res.exitCode === 0 && res.stdout.trim() === 'true';
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** Runs the test's driver again into `<attrDir>/driver-output`; returns the files it wrote plus its console log. */
async function rerunDriver(
  platform: Platform,
  r: AttrResult,
  attrDir: string,
  nix: NixCommand,
  opts: VmArtifactOptions & { flake: string },
): Promise<string[]> {
  if (!(await hasDriver(nix, opts.flake, r, opts.cwd))) {
    platform.log('info', `${r.attr} has no 'driver' attribute to run again, so no screenshots were taken.`);
    return [];
  }
  const outDir = path.join(attrDir, 'driver-output');
  await fs.mkdir(outDir, { recursive: true });
  const consoleLog = path.join(attrDir, 'driver.log');
  const seconds = opts.driverTimeoutSeconds ?? defaultDriverTimeoutSeconds(r.duration);
  const installable = `${opts.flake}#${formatAttrPath([...r.attrPath, 'driver'])}`;
  platform.log('info', `Running the driver of ${r.attr} again for its screenshots (at most ${seconds} s).`);
  const res = await spawnToFile(nix.program('nix'), nix.nixArgs(['run', installable, '--', '-o', outDir]), {
    env: nixEnv(nix.env),
    // Whatever a driver writes to its working directory is kept with the rest of its output.
    cwd: outDir,
    out: consoleLog,
    stderrToOut: true,
    timeoutMs: seconds * 1000,
  });
  if (res.error) platform.log('warning', `Could not run the driver of ${r.attr}: ${res.error}`);
  else if (res.timedOut) platform.log('warning', `The driver of ${r.attr} was stopped after ${seconds} s.`);
  else if (res.exitCode === 0) platform.log('info', `${r.attr} passed when its driver ran again: it may be flaky.`);
  else platform.log('debug', `The driver of ${r.attr} exited with code ${res.exitCode ?? 'none'}, as expected.`);
  const files = await filesUnder(outDir);
  if (files.length === 0) await fs.rmdir(outDir).catch(() => undefined);
  return [...((await nonEmpty(consoleLog)) ? [consoleLog] : []), ...files];
}

export async function keepVmArtifacts(
  platform: Platform,
  vmResults: readonly AttrResult[],
  dir: string,
  opts: VmArtifactOptions,
): Promise<VmArtifact[]> {
  const failed = vmResults.filter(ranAndFailed);
  if (failed.length === 0) return [];
  const kept: VmArtifact[] = [];
  const used = new Set<string>();
  for (const r of failed) {
    const attrDir = path.join(dir, artifactDirName(r.attr, used));
    try {
      await fs.mkdir(attrDir, { recursive: true });
      const files: string[] = [];
      const logFile = path.join(attrDir, 'build.log');
      const source = await saveBuildLog(platform, r, logFile, opts.nix);
      if (source) files.push(logFile);
      if (opts.nix && opts.flake !== undefined && opts.rerunDrivers !== false) {
        files.push(...(await rerunDriver(platform, r, attrDir, opts.nix, { ...opts, flake: opts.flake })));
      }
      if (files.length === 0) {
        await fs.rmdir(attrDir).catch(() => undefined);
        platform.log('info', `Failed VM test ${r.attr} left no log to keep.`);
        continue;
      }
      const shots = files.filter((f) => /\.(png|ppm|jpe?g)$/i.test(f)).length;
      const what = [source ? `its build log (${source})` : '', shots ? `${shots} screenshot(s)` : '']
        .filter(Boolean)
        .join(' and ');
      platform.log('info', `Kept ${what || `${files.length} file(s)`} of failed VM test ${r.attr} in ${attrDir}`);
      kept.push({ attr: r.attr, files });
    } catch (e) {
      platform.log('warning', `Could not keep the artifacts of failed VM test ${r.attr}: ${errorMessage(e)}`);
    }
  }
  return kept;
}
