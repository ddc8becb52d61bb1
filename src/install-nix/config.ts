/**
 * nix.conf for the installed Nix. flake-ci's settings live in one managed block, so an existing configuration
 * (self-hosted runners, NixOS) is kept and a second run replaces the block instead of appending again. The GitHub
 * token is written to its own 0600 file owned by the job's user and pulled in with `!include`: the client (which
 * fetches flake inputs) can read it, the world cannot, and the daemon (root) can.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { renderNixConf, upsertManagedBlock } from '../nix/conf.js';
import type { Platform } from '../platform/types.js';
import type { InstallInputs } from './inputs.js';
import type { KvmProbe } from './kvm.js';
import type { Privilege } from './privilege.js';

export interface ConfContext {
  multiUser: boolean;
  user: string;
  kvm?: KvmProbe;
  /** File holding access-tokens, when a token was given. */
  secretsFile?: string;
}

/** Nix's own default features minus kvm: used when the device exists but a guest cannot run. */
const FEATURES_WITHOUT_KVM = ['nixos-test', 'benchmark', 'big-parallel'];

export function settingsFor(inputs: InstallInputs, ctx: ConfContext): Record<string, string> {
  const s: Record<string, string> = {
    'extra-experimental-features': 'nix-command flakes',
    'max-jobs': 'auto',
    'build-users-group': ctx.multiUser ? 'nixbld' : '',
  };
  if (inputs.trustedUsers === undefined) s['trusted-users'] = [...new Set(['root', ctx.user])].join(' ');
  else s['trusted-users'] = ['root', ...inputs.trustedUsers].join(' ');
  if (inputs.substituters.length) s['extra-substituters'] = inputs.substituters.join(' ');
  if (inputs.trustedPublicKeys.length) s['extra-trusted-public-keys'] = inputs.trustedPublicKeys.join(' ');
  if (inputs.sandbox) s.sandbox = inputs.sandbox;
  if (ctx.kvm?.usable) s['extra-system-features'] = 'kvm nixos-test';
  // Nix adds `kvm` whenever /dev/kvm is read-write, even where guests hang; say what the probe found instead.
  else if (ctx.kvm?.readWrite) s['system-features'] = FEATURES_WITHOUT_KVM.join(' ');
  return s;
}

export function managedBlock(inputs: InstallInputs, ctx: ConfContext): string {
  let text = renderNixConf(settingsFor(inputs, ctx));
  if (ctx.secretsFile) text += `!include ${ctx.secretsFile}\n`;
  if (inputs.extraConf.trim() !== '') text += renderNixConf({}, inputs.extraConf);
  return text;
}

export function confPath(p: Platform, priv: Privilege): string {
  const dir = p.env('NIX_CONF_DIR');
  if (dir) return path.join(dir, 'nix.conf');
  if (priv.canWriteSystem) return '/etc/nix/nix.conf';
  const xdg = p.env('XDG_CONFIG_HOME') || path.join(p.env('HOME') ?? '/', '.config');
  return path.join(xdg, 'nix', 'nix.conf');
}

export async function writeNixConf(p: Platform, priv: Privilege, file: string, block: string): Promise<void> {
  const existing = existsSync(file) ? await readFile(file, 'utf8') : '';
  const next = upsertManagedBlock(existing, block);
  if (next === existing) return;
  if (file.startsWith('/etc/') && !priv.isRoot) await priv.writeFile(p, `Writing ${file}`, file, next, 0o644);
  else {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, next, { mode: 0o644 });
  }
  p.log('info', `Wrote flake-ci settings to ${file}`);
}

/** access-tokens for the GitHub server this job runs against (a GHES token never goes to github.com). */
export async function writeAccessTokens(p: Platform, dir: string, serverUrl: string, token: string): Promise<string> {
  const host = new URL(serverUrl).host;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'nix-access-tokens.conf');
  await writeFile(file, `access-tokens = ${host}=${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600); // mode above applies only when the file is new
  return file;
}
