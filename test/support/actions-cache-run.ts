// Runs the real @actions/cache against the cache-service double: test/fixtures/actions-cache-client.mjs in a Node 24
// child (process.execPath under npm) whose environment is ONLY the double's env() plus PATH and HOME, as a step on a
// runner would see it. Shared by the cache-service tests and, later, the cache action's tests.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../harness/github-runner.js';
import type { CacheService, TokenOptions } from './actions-cache-service.mjs';

const CLIENT = join(REPO_ROOT, 'test/fixtures/actions-cache-client.mjs');

export interface CacheRun {
  /** What saveCache/restoreCache returned (undefined is printed as null). */
  value?: string | number | null;
  /** What it threw instead, if it did. */
  threw?: { name: string; message: string };
  ms: number;
  /** stdout and stderr together: @actions/core commands, tar/zstd messages. */
  out: string;
  warnings: string[];
  errors: string[];
}

// @actions/core escapes %, CR and LF in command messages.
export const unescapeCommand = (s: string) => s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');

/** A fresh workspace under `parent` with `files` written below its data/ directory (the path the tests cache). */
export function cacheWorkspace(parent: string, files: Record<string, string | Buffer> = {}): string {
  const ws = mkdtempSync(join(parent, 'ws-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(ws, 'data', path)), { recursive: true });
    writeFileSync(join(ws, 'data', path), content);
  }
  return ws;
}

/** Relative path -> sha256 of every file under ws/data (empty when the directory is missing). */
export function snapshot(ws: string): Record<string, string> {
  const dir = join(ws, 'data');
  if (!existsSync(dir)) return {};
  const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
  return Object.fromEntries(
    files.map((d) => {
      const full = join(d.parentPath, d.name);
      return [full.slice(dir.length + 1), createHash('sha256').update(readFileSync(full)).digest('hex')];
    }),
  );
}

/** `args`: save|restore, then the fixture's arguments (key, --restore-key K..., paths). Bounded by timeoutMs. */
export async function runCacheClient(
  service: CacheService,
  ws: string,
  args: string[],
  opts: TokenOptions & { token?: string; timeoutMs?: number } = {},
): Promise<CacheRun> {
  const [op, ...rest] = args;
  const extra = service.blobHostnames === 'azure' ? ['--map-azure-hosts'] : [];
  const env = {
    ...service.env({ ...opts, workspace: ws }),
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
  };
  // Its own process group, so a timeout also kills tar and zstd.
  const child = spawn(process.execPath, [CLIENT, op ?? '', ...extra, ...rest], { cwd: ws, env, detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), opts.timeoutMs ?? 90_000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(timer);
  const prefix = 'flake-ci-cache-result ';
  const line = out.split('\n').find((l) => l.startsWith(prefix));
  if (code !== 0 || !line) throw new Error(`cache client exited ${code}:\n${out}`);
  const pick = (cmd: string) =>
    out
      .split('\n')
      .filter((l) => l.startsWith(`::${cmd}::`))
      .map((l) => unescapeCommand(l.slice(cmd.length + 4)));
  return { ...JSON.parse(line.slice(prefix.length)), out, warnings: pick('warning'), errors: pick('error') };
}

export const saveWith = (s: CacheService, ws: string, key: string, opts: TokenOptions = {}) =>
  runCacheClient(s, ws, ['save', key, 'data'], opts);

export const restoreWith = (
  s: CacheService,
  ws: string,
  key: string,
  restoreKeys: string[] = [],
  opts: TokenOptions = {},
) => runCacheClient(s, ws, ['restore', key, ...restoreKeys.flatMap((k) => ['--restore-key', k]), 'data'], opts);
