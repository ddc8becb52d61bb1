/**
 * Nix machine specs (the `builders` setting): one machine per line or `;`-separated entry, fields separated by
 * whitespace, `-` for an empty field, `#` starts a comment (as Nix's own parser does, 2.8 to 2.34):
 *
 *   URI [SYSTEMS [SSH-KEY [MAX-JOBS [SPEED-FACTOR [SUPPORTED-FEATURES [MANDATORY-FEATURES [HOST-KEY]]]]]]]
 *
 * Validated here so a typo fails the step with the line and the expected form, instead of Nix silently skipping the
 * machine and then failing every build with "unable to start any build". `@/path` lines (a machines file) pass
 * through to Nix unchanged.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../errors.js';

export const SPEC_FORM =
  'URI [SYSTEMS [SSH-KEY [MAX-JOBS [SPEED-FACTOR [SUPPORTED-FEATURES [MANDATORY-FEATURES [BASE64-HOST-KEY]]]]]]]';
const EXAMPLE =
  'ssh://nix@builder.example.com x86_64-linux,aarch64-linux - 4 1 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFB...';
const PIN_HINT = "base64 -w0 of the builder's /etc/ssh/ssh_host_ed25519_key.pub";

export interface MachineSpec {
  uri: string;
  systems: string[];
  /** Absolute path on the runner; '' for none (builders-ssh-key, when given, fills it). */
  sshKey: string;
  maxJobs?: number;
  speedFactor?: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** Base64 of the host's public key line; '' when not pinned. */
  hostKey: string;
}

export type BuilderEntry = { kind: 'machine'; spec: MachineSpec } | { kind: 'file'; path: string };

// ssh://[user@]host[:port][?params], ssh-ng://..., or a bare [user@]host (Nix prefixes ssh://).
const SSH_URI = /^(?:ssh|ssh-ng):\/\/(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?(?:\?\S*)?$/;
const BARE_HOST = /^(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$/;
const SYSTEM = /^[A-Za-z0-9_]+-[A-Za-z0-9_]+$/;
const FEATURE = /^[A-Za-z0-9._+-]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const HOST_KEY_LINE =
  /^(?:ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}(?: [^\n]*)?$/;

const unset = (f: string | undefined): boolean => f === undefined || f === '' || f === '-';

function fail(lineNo: number, line: string, why: string): never {
  const shown = line.length > 200 ? `${line.slice(0, 200)}...` : line;
  throw new InputError(
    `builders: entry ${lineNo} ("${shown}") is not a Nix machine spec: ${why}. Expected ${SPEC_FORM}, ` +
      `fields separated by spaces, "-" for an empty field, entries separated by ";" or new lines; ` +
      `e.g. "${EXAMPLE}".`,
  );
}

function list(field: string | undefined, re: RegExp, what: string, fail1: (why: string) => never): string[] {
  if (unset(field)) return [];
  const items = (field as string).split(',');
  for (const item of items) if (!re.test(item)) fail1(`${what} "${item}" is not valid (a comma-separated list)`);
  return items;
}

function count(field: string | undefined, what: string, min: number, fail1: (why: string) => never) {
  if (unset(field)) return undefined;
  if (!/^\d+$/.test(field as string) || Number(field) < min)
    fail1(`${what} must be an integer >= ${min}, not "${field}"`);
  return Number(field);
}

/** Checks field 8: base64 of one public key line, what Nix writes into the known_hosts file it gives ssh. */
function checkHostKey(field: string, fail1: (why: string) => never): void {
  if (!BASE64.test(field) || field.length % 4 !== 0) fail1(`the host key (field 8) is not base64; use ${PIN_HINT}`);
  const decoded = Buffer.from(field, 'base64');
  // A common slip: the middle part of the .pub line (itself base64 of the binary key) instead of the whole line.
  if (decoded.length > 4 && decoded.readUInt32BE(0) < 64 && /^(ssh|ecdsa|sk)-/.test(decoded.toString('latin1', 4)))
    fail1(`the host key (field 8) is the bare key blob; encode the whole line instead: ${PIN_HINT}`);
  const text = decoded.toString('utf8').trim();
  if (!HOST_KEY_LINE.test(text))
    fail1(`the host key (field 8) does not decode to a public key line like "ssh-ed25519 AAAA..."; use ${PIN_HINT}`);
}

function parseMachine(lineNo: number, line: string): MachineSpec {
  const f = line.split(/\s+/);
  const bad = (why: string): never => fail(lineNo, line, why);
  if (f.length > 8) bad(`it has ${f.length} fields, at most 8 are allowed`);
  const uri = f[0] as string;
  if (!SSH_URI.test(uri) && !BARE_HOST.test(uri))
    bad(`"${uri}" is not an ssh:// or ssh-ng:// URI (or a bare [user@]host)`);
  const sshKey = unset(f[2]) ? '' : (f[2] as string);
  if (sshKey && !path.isAbsolute(sshKey))
    bad(`the ssh key (field 3) must be an absolute path on the runner, or "-" to use builders-ssh-key`);
  const hostKey = unset(f[7]) ? '' : (f[7] as string);
  if (hostKey) checkHostKey(hostKey, bad);
  const spec: MachineSpec = {
    uri,
    systems: list(f[1], SYSTEM, 'system', bad),
    sshKey,
    supportedFeatures: list(f[5], FEATURE, 'supported feature', bad),
    mandatoryFeatures: list(f[6], FEATURE, 'mandatory feature', bad),
    hostKey,
  };
  const maxJobs = count(f[3], 'max jobs (field 4)', 0, bad);
  const speedFactor = count(f[4], 'speed factor (field 5)', 1, bad);
  if (maxJobs !== undefined) spec.maxJobs = maxJobs;
  if (speedFactor !== undefined) spec.speedFactor = speedFactor;
  return spec;
}

/** Parses the `builders` input. Throws InputError naming the input, the entry and the expected form. */
export function parseBuilders(input: string): BuilderEntry[] {
  const out: BuilderEntry[] = [];
  input.split(/[;\n]/).forEach((raw, i) => {
    const line = (raw.split('#')[0] ?? '').trim();
    if (line === '') return;
    if (line.startsWith('@')) {
      const file = line.slice(1);
      if (!path.isAbsolute(file) || /\s/.test(file))
        fail(i + 1, line, 'a machines file reference must be "@" followed by an absolute path');
      out.push({ kind: 'file', path: file });
      return;
    }
    out.push({ kind: 'machine', spec: parseMachine(i + 1, line) });
  });
  return out;
}

const joined = (xs: readonly string[]): string => (xs.length ? xs.join(',') : '-');

/** One machine as Nix reads it: `-` for empty fields, trailing empty fields dropped. */
export function formatMachine(s: MachineSpec): string {
  const fields = [
    s.uri,
    joined(s.systems),
    s.sshKey || '-',
    s.maxJobs === undefined ? '-' : String(s.maxJobs),
    s.speedFactor === undefined ? '-' : String(s.speedFactor),
    joined(s.supportedFeatures),
    joined(s.mandatoryFeatures),
    s.hostKey || '-',
  ];
  while (fields.length > 1 && fields[fields.length - 1] === '-') fields.pop();
  return fields.join(' ');
}

/** The value of Nix's `builders` setting for these entries. */
export function formatBuilders(entries: readonly BuilderEntry[]): string {
  return entries.map((e) => (e.kind === 'file' ? `@${e.path}` : formatMachine(e.spec))).join(' ; ');
}

/**
 * Whether Nix would hand a derivation of `system` requiring `features` to machine `m`, by Nix's own rules: the
 * machine lists the system (a machine naming none gets the local system), offers every required feature (supported
 * or mandatory), and each of its mandatory features is required.
 */
export function machineCanBuild(
  m: MachineSpec,
  system: string,
  features: readonly string[],
  localSystem: string,
): boolean {
  const systems = m.systems.length > 0 ? m.systems : [localSystem];
  if (!systems.includes(system)) return false;
  const offered = new Set([...m.supportedFeatures, ...m.mandatoryFeatures]);
  return features.every((f) => offered.has(f)) && m.mandatoryFeatures.every((f) => features.includes(f));
}

/** The machines among parsed builder entries (`@file` entries are left to Nix). */
export function machinesOf(entries: readonly BuilderEntry[]): MachineSpec[] {
  return entries.flatMap((e) => (e.kind === 'machine' ? [e.spec] : []));
}

/**
 * The machines of Nix's own `builders` setting, `@file` entries read (Nix's default is `@/etc/nix/machines`). Only
 * for deciding where a build can go: an entry this parser does not take, or a file it cannot read, is passed over,
 * as Nix remains the judge of its own setting.
 */
export function machinesFromSetting(
  value: string,
  read: (file: string) => string = (f) => readFileSync(f, 'utf8'),
  depth = 0,
): MachineSpec[] {
  const out: MachineSpec[] = [];
  for (const entry of value.split(/[;\n]/)) {
    const line = (entry.split('#')[0] ?? '').trim();
    if (line === '') continue;
    if (line.startsWith('@')) {
      if (depth > 2) continue;
      try {
        out.push(...machinesFromSetting(read(line.slice(1).trim()), read, depth + 1));
      } catch {
        // not there or unreadable: Nix has no machines from it either
      }
      continue;
    }
    try {
      out.push(...machinesOf(parseBuilders(line)));
    } catch {
      // a spec we cannot read: left to Nix
    }
  }
  return out;
}
