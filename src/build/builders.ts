/**
 * Remote builders: `builders` (Nix machine specs) and `builders-ssh-key` (a secret: written 0600, never on argv,
 * removed in the post step).
 *
 * Everything ssh needs to reach a builder travels INSIDE the machine specs given to `--option builders`: the key
 * file (field 3) and the pinned host key (field 8, which Nix writes to a known_hosts file of its own and passes with
 * -oUserKnownHostsFile). That matters because under a multi-user install the build hook, and so ssh, runs in
 * nix-daemon as root with the DAEMON's environment: NIX_SSHOPTS set here never reaches it, while `builders` does
 * (a client setting the daemon accepts from trusted users, which install-nix configures). Root can read the key: a
 * 0600 file owned by the runner user is readable with CAP_DAC_OVERRIDE, ssh's own check only rejects keys that are
 * group- or world-readable, and the daemon sees the same file system (nix-daemon.service has no PrivateTmp).
 * Without a daemon (root, or single-user) the hook is a child of the build command and inherits NixCommand's env,
 * so NIX_SSHOPTS adds fail-fast conveniences there: BatchMode (never wait for a prompt), ConnectTimeout and
 * ServerAlive (a dead builder becomes "lost connection", an infrastructure failure that is retried).
 *
 * Host keys: a spec's field 8 pins the host. Without it we do NOT weaken ssh (no accept-new, which on ephemeral
 * runners would trust whatever answers, every run): ssh checks the host against the known_hosts files of the user
 * running it (root's under a daemon) and the build fails with "Host key verification failed" if it is not there.
 * Each unpinned builder gets a warning saying how to pin it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors.js';
import { loadState, saveState } from '../platform/state.js';
import type { Platform } from '../platform/types.js';
import { KEY_DIR_PREFIX, normalizePrivateKey, secretParts, specSafePath, writeKeyFile } from './builders-key.js';
import { formatBuilders, parseBuilders, type BuilderEntry } from './builders-spec.js';

export interface BuildersOptions {
  /** The `builders` input: machine specs, `;`- or newline-separated; '' for none. */
  builders: string;
  /** The `builders-ssh-key` input (a private key); '' for none. */
  sshKey: string;
  /** Per-job scratch directory for the key and ssh config. */
  temp: string;
}

export interface BuildersSetup {
  /** Added to every build command, e.g. `--option builders ...`. */
  extraArgs: string[];
  /** Environment for the nix processes (e.g. NIX_SSHOPTS). */
  env: Record<string, string>;
}

/**
 * What setupBuilders saves for the post step (through src/platform/state.ts, one JSON document per action). An
 * action that saves its own state after calling setupBuilders must carry this field along.
 */
export interface BuildersState {
  buildersKeyDir?: string;
}

/** Options that make ssh fail fast instead of hanging; no spaces inside one option (2.8 splits on whitespace). */
export const SSH_OPTIONS = [
  '-oBatchMode=yes',
  '-oConnectTimeout=30',
  '-oServerAliveInterval=15',
  '-oServerAliveCountMax=4',
];

export async function setupBuilders(platform: Platform, opts: BuildersOptions): Promise<BuildersSetup> {
  const sshKey = opts.sshKey.trim();
  // First, before anything can print it (registering twice is harmless if the input parser did it already).
  if (sshKey) for (const part of secretParts(sshKey)) platform.setSecret(part);

  const entries = parseBuilders(opts.builders);
  if (entries.length === 0) {
    if (sshKey) platform.log('warning', 'builders-ssh-key is set but builders is empty: the key is not used.');
    return { extraArgs: [], env: {} };
  }
  const machines = entries.flatMap((e) => (e.kind === 'machine' ? [e.spec] : []));
  const keyless = machines.filter((m) => m.sshKey === '');
  const key = sshKey ? normalizePrivateKey(sshKey) : '';

  if (key && keyless.length === 0)
    platform.log('warning', 'builders-ssh-key is set but every builder names its own key file: the key is not used.');
  if (key && keyless.length > 0) {
    if (!specSafePath(opts.temp))
      throw new Error(
        `The temp directory ${opts.temp} contains a space, ";" or "#", which a Nix machine spec cannot carry.`,
      );
    const { dir, file } = writeKeyFile(opts.temp, key);
    saveState<BuildersState>(platform, { buildersKeyDir: dir });
    for (const m of keyless) m.sshKey = file;
  }
  for (const m of machines)
    if (m.hostKey === '')
      platform.log(
        'warning',
        `builders: ${m.uri} has no pinned host key (field 8), so ssh checks it against the known_hosts of the user ` +
          'running ssh (root under a Nix daemon) and fails if it is not there. Pin it: add the output of ' +
          '`base64 -w0 /etc/ssh/ssh_host_ed25519_key.pub` (run on the builder) as the 8th field.',
      );

  const value = formatBuilders(entries);
  platform.log('info', `Remote builders: ${describe(entries)}.`);
  const userOpts = platform.env('NIX_SSHOPTS')?.trim();
  return {
    extraArgs: ['--option', 'builders', value, '--option', 'builders-use-substitutes', 'true'],
    // ssh takes the first value of an option: the user's own NIX_SSHOPTS go first and win.
    env: { NIX_SSHOPTS: [userOpts, ...SSH_OPTIONS].filter(Boolean).join(' ') },
  };
}

function describe(entries: readonly BuilderEntry[]): string {
  return entries
    .map((e) =>
      e.kind === 'file'
        ? `machines file ${e.path}`
        : `${e.spec.uri} (${e.spec.systems.join(',') || 'this system'}${e.spec.hostKey ? ', host key pinned' : ''})`,
    )
    .join('; ');
}

/** Post step: removes the key and anything else setupBuilders wrote. Never throws. */
export async function cleanupBuilders(platform: Platform): Promise<void> {
  try {
    const dirs = new Set<string>();
    const saved = loadState<BuildersState>(platform)?.buildersKeyDir;
    if (typeof saved === 'string' && path.basename(saved).startsWith(KEY_DIR_PREFIX)) dirs.add(saved);
    // The state can be gone (a later saveState of the same action replaced it): our directories in the job's temp
    // directory are recognisable by name.
    for (const d of ownDirs(platform.runner.temp)) dirs.add(d);
    for (const dir of dirs) {
      fs.rmSync(dir, { recursive: true, force: true });
      platform.log('debug', `Removed the builders key directory ${dir}.`);
    }
  } catch (e) {
    platform.log('warning', `Could not remove the builders ssh key: ${errorMessage(e)}`);
  }
  return Promise.resolve();
}

function ownDirs(temp: string): string[] {
  if (!temp) return [];
  try {
    return fs
      .readdirSync(temp, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name.startsWith(KEY_DIR_PREFIX))
      .map((e) => path.join(temp, e.name));
  } catch {
    return [];
  }
}
