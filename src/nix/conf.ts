/**
 * nix.conf: rendering our settings, validating the user's extra configuration, and keeping our part of an existing
 * file in one marked block so that re-runs replace it instead of appending again.
 *
 * Nix's grammar (AbstractConfig::applyConfig): `#` starts a comment anywhere on a line; the rest is split on
 * whitespace; a line is `include PATH`, `!include PATH` (missing file ignored) or `NAME = VALUE...` where `=` must be
 * a separate token; later lines override earlier ones and `extra-NAME` appends to NAME.
 */
import { InputError } from '../errors.js';

export type NixConfValue = string | number | boolean | readonly string[];

/** Known settings are typed; any other valid name is accepted as well. */
export interface NixSettings {
  'experimental-features'?: readonly string[];
  'extra-experimental-features'?: readonly string[];
  'max-jobs'?: number | 'auto';
  cores?: number;
  substituters?: readonly string[];
  'extra-substituters'?: readonly string[];
  'trusted-substituters'?: readonly string[];
  'extra-trusted-substituters'?: readonly string[];
  'trusted-public-keys'?: readonly string[];
  'extra-trusted-public-keys'?: readonly string[];
  'trusted-users'?: readonly string[];
  'extra-trusted-users'?: readonly string[];
  sandbox?: boolean | 'relaxed';
  'system-features'?: readonly string[];
  'extra-system-features'?: readonly string[];
  'build-users-group'?: string;
  /** `include PATH` lines: Nix fails when the file is missing. */
  include?: readonly string[];
  /** `!include PATH` lines: a missing file is ignored. */
  '!include'?: readonly string[];
  [name: string]: NixConfValue | undefined;
}

export const BEGIN_MARKER = '# BEGIN flake-ci (managed; do not edit)';
export const END_MARKER = '# END flake-ci';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/**
 * Renders settings in a stable order (sorted by name, includes after settings so an included file can override them,
 * the user's extra configuration last so it overrides everything), one per line, with a trailing newline.
 */
export function renderNixConf(settings: NixSettings, extraConf = ''): string {
  const lines: string[] = [];
  for (const name of Object.keys(settings).sort()) {
    const value = settings[name];
    if (value === undefined || name === 'include' || name === '!include') continue;
    if (!NAME.test(name)) throw new InputError(`Invalid nix.conf setting name ${JSON.stringify(name)}: use [a-z0-9-].`);
    lines.push(`${name} = ${renderValue(name, value)}`);
  }
  for (const kind of ['include', '!include'] as const) {
    for (const p of settings[kind] ?? []) {
      if (p === '' || /[\s#]/.test(p)) {
        throw new InputError(`nix.conf ${kind} path ${JSON.stringify(p)} must be non-empty without spaces or '#'.`);
      }
      lines.push(`${kind} ${p}`);
    }
  }
  const extra = extraConf.replace(/\r\n/g, '\n').trim();
  if (extra) {
    validateExtraConf(extra);
    lines.push(extra);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function renderValue(name: string, value: NixConfValue): string {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InputError(`nix.conf setting '${name}' must be a finite number.`);
    return String(value);
  }
  if (typeof value === 'string') {
    checkText(name, value);
    return value.trim();
  }
  for (const item of value) {
    checkText(name, item);
    // Values are split on whitespace by Nix, so an item with a space would silently become two items.
    if (item.trim() === '' || /\s/.test(item.trim())) {
      throw new InputError(
        `nix.conf setting '${name}' has an item with spaces or an empty item: ${JSON.stringify(item)}.`,
      );
    }
  }
  return value.map((v) => v.trim()).join(' ');
}

function checkText(name: string, text: string): void {
  if (/[\r\n]/.test(text)) throw new InputError(`nix.conf setting '${name}' must be a single line.`);
  // Nix cuts a line at '#', so the rest of the value would be lost without an error.
  if (text.includes('#')) throw new InputError(`nix.conf setting '${name}' must not contain '#'.`);
}

/**
 * Checks user-supplied nix.conf lines with Nix's own grammar, so that a typo fails here with the line named instead of
 * making every later nix call fail. Errors name the line number and setting, never the value: it may be a token.
 */
export function validateExtraConf(text: string): void {
  text.split(/\r?\n/).forEach((raw, i) => {
    const where = `extra-conf line ${i + 1}`;
    if (raw.includes(BEGIN_MARKER) || raw.includes(END_MARKER)) {
      throw new InputError(`${where}: must not contain the flake-ci block markers.`);
    }
    const tokens = stripComment(raw).trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) return;
    const first = tokens[0] ?? '';
    if (first === 'include' || first === '!include') {
      if (tokens.length !== 2) throw new InputError(`${where}: '${first}' takes exactly one path.`);
      return;
    }
    if (tokens[1] !== '=') {
      const name = first.split('=')[0] ?? '';
      throw new InputError(`${where}: expected 'NAME = VALUE' with spaces around '=' (setting '${name}').`);
    }
    if (!NAME.test(first)) throw new InputError(`${where}: invalid setting name '${first}'; use [a-z0-9-].`);
  });
}

function stripComment(line: string): string {
  const hash = line.indexOf('#');
  return hash === -1 ? line : line.slice(0, hash);
}

/**
 * Inserts `block` between the flake-ci markers, replacing any previous block and leaving every other line as it was.
 * Appended at the end when absent, because later lines win in nix.conf. Idempotent.
 */
export function upsertManagedBlock(existing: string, block: string): string {
  const body = block.replace(/\r\n/g, '\n').replace(/\n+$/, '');
  if (body.split('\n').some((l) => l.trim() === BEGIN_MARKER || l.trim() === END_MARKER)) {
    throw new Error('The managed nix.conf block must not contain the flake-ci markers.');
  }
  const managed = [BEGIN_MARKER, ...(body ? [body] : []), END_MARKER];
  const lines = existing === '' ? [] : existing.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let inserted = false;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== BEGIN_MARKER) {
      out.push(lines[i] ?? '');
      continue;
    }
    const end = lines.findIndex((l, j) => j > i && l.trim() === END_MARKER);
    if (end === -1) {
      throw new InputError(
        `nix.conf has '${BEGIN_MARKER}' without '${END_MARKER}'; remove the incomplete block and run again.`,
      );
    }
    // A second block (from a hand edit or an older bug) is dropped: only one may define our settings.
    if (!inserted) out.push(...managed);
    inserted = true;
    i = end;
  }
  if (!inserted) out.push(...managed);
  return `${out.join('\n')}\n`;
}

export interface NixConfEntry {
  name: string;
  value: string;
  /** 1-based line number. */
  line: number;
}

export interface NixConfInclude {
  path: string;
  /** `!include`: Nix ignores a missing file. */
  optional: boolean;
  line: number;
}

export interface ParsedNixConf {
  entries: NixConfEntry[];
  includes: NixConfInclude[];
  /** Effective values of this file alone: later lines override, `extra-NAME` appends to NAME. */
  values: Record<string, string>;
}

/** Parses nix.conf text like Nix does; malformed lines throw with their line number. Includes are listed, not read. */
export function parseNixConf(text: string): ParsedNixConf {
  const result: ParsedNixConf = { entries: [], includes: [], values: {} };
  text.split(/\r?\n/).forEach((raw, i) => {
    const tokens = stripComment(raw).trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) return;
    const first = tokens[0] ?? '';
    if ((first === 'include' || first === '!include') && tokens.length === 2) {
      result.includes.push({ path: tokens[1] ?? '', optional: first === '!include', line: i + 1 });
      return;
    }
    if (tokens[1] !== '=') throw new Error(`nix.conf line ${i + 1}: illegal configuration line.`);
    const value = tokens.slice(2).join(' ');
    result.entries.push({ name: first, value, line: i + 1 });
    if (first.startsWith('extra-')) {
      const base = first.slice('extra-'.length);
      const prev = result.values[base];
      result.values[base] = prev ? (value ? `${prev} ${value}` : prev) : value;
    } else {
      result.values[first] = value;
    }
  });
  return result;
}
