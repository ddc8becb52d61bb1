/**
 * Jobs using actions/cache, for the integration tests: each job is main, `run:` steps and post of the dist bundles,
 * run by the GitHub runner harness inside its own private mount namespace with a fresh tmpfs /nix (a new, empty
 * store: what a fresh runner has) and a private /etc holding an offline nix.conf. The cache service double's env
 * makes @actions/cache talk to it on 127.0.0.1.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runActionInNamespace, type ActionResult, type StepResult } from '../harness/github-runner.js';
import { isolationSetup } from '../harness/namespace.mjs';
export { daemonSetup } from '../harness/namespace.mjs';
import type { CacheService, TokenOptions } from './actions-cache-service.mjs';
import { NIX234_BIN } from './fixtures.js';

const given = process.env.FLAKE_CI_NIX234 || NIX234_BIN;
export const NIX_VERSIONS = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin' },
  { name: 'Nix 2.34', bin: existsSync(given) && statSync(given).isDirectory() ? given : path.dirname(given) },
];

/** fix-i references fix-j for every j < i, so each path needs the earlier ones: chains across entries matter. */
const FIXTURE = `{ salt, n ? 20 }:
let
  mk = i: deps: derivation {
    name = "fix-\${toString i}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir $out; echo \${salt}-\${toString i} > $out/data; head -c 2048 /dev/urandom > $out/noise; for d in $deps; do echo $d >> $out/refs; done" ];
    inherit deps;
  };
  go = i: if i == 0 then [ ] else let prev = go (i - 1); in prev ++ [ (mk i prev) ];
in go n
`;

export function writeFixture(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'fixture.nix');
  writeFileSync(file, FIXTURE);
  return file;
}

/** Shell step: builds fix-1..n for `salt`; prints the output paths. */
export const build = (fixture: string, salt: string, n: number) =>
  `nix-build ${fixture} --argstr salt ${salt} --arg n ${n} --no-out-link`;
/** Shell step that fails when anything would have to be built: every output must already be in the store. */
export const buildNothing = (fixture: string, salt: string, n: number) =>
  `${build(fixture, salt, n)} --option max-jobs 0`;
/** Shell step printing how many fix-* outputs are valid in the store. */
export const countFixtures = `nix path-info --all | grep -c -- '-fix-[0-9]*$' || true`;

export interface JobOptions {
  bin: string;
  scratch: string;
  inputs?: Record<string, string>;
  steps?: string[];
  env?: Record<string, string>;
  token?: TokenOptions & { token?: string };
  /** `${{ github.token }}` for the github-token default. */
  githubToken?: string;
  workspace?: string;
  debug?: boolean;
  /** More setup lines, run as root in the job's namespace before main (after /nix and nix.conf are fresh). */
  setup?: string[];
  /** The program that runs each step's bundle instead of node (a wrapper, say one that drops root). */
  node?: string;
}

/** One job against the cache service double; `strict` defaults to true so an unexpected warning fails loudly. */
export async function cacheJob(svc: CacheService, o: JobOptions): Promise<ActionResult> {
  const env: Record<string, string> = { ...svc.env(o.token ?? {}), PATH: `${o.bin}:/usr/bin:/bin`, ...o.env };
  // The harness makes its own RUNNER_TEMP per job, as a runner does.
  delete env.RUNNER_TEMP;
  const setup = isolationSetup(o.scratch, [
    'mkdir -p /etc/nix',
    `printf 'substituters =\\nsandbox = false\\nbuild-users-group =\\nexperimental-features = nix-command flakes\\n' > /etc/nix/nix.conf`,
    ...(o.setup ?? []),
  ]);
  return runActionInNamespace(
    {
      action: 'cache',
      inputs: { strict: 'true', ...o.inputs },
      env,
      steps: o.steps ?? [],
      token: o.githubToken,
      dirs: o.workspace ? { workspace: o.workspace } : undefined,
      debug: o.debug,
      node: o.node,
      timeoutMs: 120_000,
    },
    { setup },
  );
}

/** What a person reading the job log sees (debug lines and masks aside), for assertions on messages. */
export function visible(step: StepResult | undefined): string {
  return (step?.stdout ?? '')
    .split('\n')
    .filter((l) => !l.startsWith('::debug::') && !l.startsWith('::add-mask::'))
    .join('\n');
}

export const warnings = (step: StepResult | undefined) =>
  (step?.annotations ?? []).filter((a) => a.level === 'warning').map((a) => a.message);

/** Asserts nothing the runner records of a job carries `secret` (masks are how the runner learns of it). */
export function recordedText(r: ActionResult): string {
  const parts: string[] = [];
  for (const s of [r.main, r.post]) {
    if (!s) continue;
    parts.push((s.stdout + s.stderr).replace(/^::add-mask::.*$/gm, ''), JSON.stringify(s.state));
    parts.push(JSON.stringify(s.outputs), JSON.stringify(s.env), s.summary, JSON.stringify(s.path));
  }
  for (const s of r.steps ?? []) parts.push(s.stdout, s.stderr);
  return parts.join('\n');
}

/** A Nix-format ed25519 key pair (secret = seed || public key). */
export function nixKeyPair(name: string): { secret: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  return {
    secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    pub: `${name}:${pub.toString('base64')}`,
  };
}

/** Calls the double recorded since `from` (an index into svc.calls), by method. */
export function callsSince(svc: CacheService, from: number, method: string) {
  return svc.calls.slice(from).filter((c) => c.method === method);
}
