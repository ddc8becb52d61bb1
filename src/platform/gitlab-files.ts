/**
 * The files behind the GitLab platform: dotenv rendering within GitLab's limits, atomic writes, tolerant reads and
 * shell quoting for env.sh. Pure helpers, so gitlab.ts keeps only the Platform behaviour.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';

/** GitLab rejects the whole dotenv artifact (failing the job) when the file is >= 5120 bytes; keep a margin. */
const DOTENV_MAX_BYTES = 5000;
/** The lowest per-plan variable limit GitLab has shipped (20); more fails the artifact upload. */
const DOTENV_MAX_VARIABLES = 20;

/** POSIX sh single quoting: nothing is special inside '...', and a ' is closed, escaped and reopened. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Variables that the shell, Nix or the runner read. Dotenv variables outrank a job's own `variables:`, so an output
 * under one of these names would silently change every job that `needs:` ours (install-nix's `nix-path` as NIX_PATH
 * breaks `<nixpkgs>` lookups): such keys get a FLAKE_CI_ prefix.
 */
const RESERVED_KEYS = new Set(
  (
    'PATH HOME SHELL USER TMPDIR LD_LIBRARY_PATH LD_PRELOAD NIX_PATH NIX_REMOTE NIX_CONFIG NIX_CONF_DIR ' +
    'NIX_USER_CONF_FILES NIX_SSL_CERT_FILE NIX_PROFILES NIX_SSHOPTS NIX_STORE_DIR NIX_STATE_DIR NIX_LOG_DIR ' +
    'NIX_DATA_DIR NIX_BIN_DIR NIX_DAEMON_SOCKET_PATH NIX_BUILD_SHELL'
  ).split(' '),
);

/** Output name -> dotenv key: GitLab keys allow only ASCII letters, digits and `_`; reserved names are prefixed. */
export function dotenvKey(name: string): string {
  const key = name.toUpperCase().replace(/[^A-Za-z0-9_]/g, '_');
  return RESERVED_KEYS.has(key) || /^(CI|GITLAB)_/.test(key) ? `FLAKE_CI_${key}` : key;
}

/** Writes via a temp file and rename so a reader (or an upload racing a crash) never sees half a file. */
export function writeAtomic(file: string, data: string, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.writeFileSync(tmp, data, { mode });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Missing or torn files read as undefined: a report we cannot parse must not crash the post phase. */
export function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * GitLab's dotenv parser takes `KEY=value` lines verbatim (quotes kept, no escapes), strips surrounding blanks and
 * expands `$` references later, so only values that survive that unchanged go in; the rest are in outputs.json.
 */
export function renderDotenv(all: Record<string, string>, skip: (name: string, why: string) => void): string {
  const lines = new Map<string, string>();
  let bytes = 0;
  for (const [name, value] of Object.entries(all)) {
    const key = dotenvKey(name);
    const line = `${key}=${value}\n`;
    const size = Buffer.byteLength(line);
    if (/[\r\n]/.test(value)) skip(name, 'multi-line value');
    else if (value !== value.trim()) skip(name, 'leading or trailing blanks');
    else if (value.includes('$')) skip(name, 'GitLab would expand the $ in it');
    else if (lines.has(key)) skip(name, `its key ${key} is taken by another output`);
    else if (bytes + size > DOTENV_MAX_BYTES) skip(name, 'the report would exceed the 5 KB limit of GitLab');
    else if (lines.size >= DOTENV_MAX_VARIABLES) skip(name, `more than ${DOTENV_MAX_VARIABLES} outputs`);
    else {
      lines.set(key, line);
      bytes += size;
    }
  }
  return [...lines.values()].join('');
}
