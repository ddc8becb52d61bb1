/** The install-nix inputs, parsed and validated once (action.yml documents each). */
import { InputError } from '../errors.js';
import { getBoolean, getEnum, getList, getSecret, getString } from '../platform/inputs.js';
import type { Platform } from '../platform/types.js';

/** The Nix release installed by default. Bump here (and in action.yml and the GitLab template) to upgrade. */
export const DEFAULT_NIX_VERSION = '2.34.8';

export const SOURCES = ['auto', 'tarball', 'existing', 'distro'] as const;
export const MODES = ['auto', 'single-user', 'multi-user'] as const;
export type Source = (typeof SOURCES)[number];
export type Mode = (typeof MODES)[number];

export interface InstallInputs {
  source: Source;
  nixVersion: string;
  tarballUrl: string;
  /** Lower-case hex, or '' when the published checksum should be fetched. */
  tarballSha256: string;
  mode: Mode;
  extraConf: string;
  substituters: string[];
  trustedPublicKeys: string[];
  /** undefined: root + the runner user; [] ('none'): only root. */
  trustedUsers: string[] | undefined;
  sandbox: '' | 'true' | 'false' | 'relaxed';
  githubToken: string;
  toolCache: boolean;
  kvm: boolean;
}

/** Accepts 64 hex digits or SRI `sha256-<base64>`; returns lower-case hex. */
export function parseSha256(value: string, input = 'tarball-sha256'): string {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return v.toLowerCase();
  const sri = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(v);
  if (sri) return Buffer.from(sri[1] as string, 'base64').toString('hex');
  throw new InputError(`Input '${input}' must be a SHA-256 as 64 hex digits or 'sha256-<base64>'; got '${v}'.`);
}

export function parseInstallInputs(p: Platform): InstallInputs {
  // First: registering the secret before any validation lets an error that quotes another input redact it (GitLab).
  const githubToken = getSecret(p, 'github-token');
  const nixVersion = getString(p, 'nix-version', DEFAULT_NIX_VERSION);
  if (!/^\d+\.\d+(\.\d+)?$/.test(nixVersion))
    throw new InputError(
      `Input 'nix-version' must be a Nix release such as ${DEFAULT_NIX_VERSION}; got '${nixVersion}'.`,
    );
  const tarballUrl = getString(p, 'tarball-url');
  if (tarballUrl !== '' && !/^(https?|file):\/\//.test(tarballUrl))
    throw new InputError(`Input 'tarball-url' must be an https://, http:// or file:// URL; got '${tarballUrl}'.`);
  const sha = getString(p, 'tarball-sha256');
  const users = getList(p, 'trusted-users');
  for (const u of users)
    if (!/^@?[A-Za-z0-9_.][A-Za-z0-9_.-]*$/.test(u))
      throw new InputError(`Input 'trusted-users' holds '${u}', which is not a user or @group name.`);
  const lines = (name: string) => {
    const list = getList(p, name);
    for (const item of list)
      if (/[\s"'\\]/.test(item)) throw new InputError(`Input '${name}' holds '${item}', which has quotes or spaces.`);
    return list;
  };
  return {
    source: getEnum(p, 'source', SOURCES, 'auto'),
    nixVersion,
    tarballUrl,
    tarballSha256: sha === '' ? '' : parseSha256(sha),
    mode: getEnum(p, 'mode', MODES, 'auto'),
    extraConf: p.getMultilineInput('extra-conf'),
    substituters: lines('substituters'),
    trustedPublicKeys: lines('trusted-public-keys'),
    trustedUsers: users.length === 0 ? undefined : users.length === 1 && users[0] === 'none' ? [] : users,
    sandbox: getEnum(p, 'sandbox', ['', 'true', 'false', 'relaxed'] as const, ''),
    githubToken,
    toolCache: getBoolean(p, 'tool-cache', true),
    kvm: getBoolean(p, 'kvm', true),
  };
}
