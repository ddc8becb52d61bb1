/**
 * Nix version detection and the features that depend on it. Parsers elsewhere detect JSON shapes by themselves; the
 * features here decide which flags we may pass, because an unknown flag is a hard error in every Nix version.
 */

export interface NixVersion {
  /** The program that printed the version: `nix`, `nix-env`, `nix-store`, ... */
  program: string;
  /** The text in parentheses: `Nix`, `Determinate Nix 3.6.2`, `Lix, like Nix`. */
  variant: string;
  major: number;
  minor: number;
  patch: number;
  /** Pre-release suffix as printed (`pre20240101_abcdef`, `-dev-pre20250117-0d14c2b`), '' for a release. */
  pre: string;
}

export interface NixFeatures {
  /** `nix build --print-out-paths` (Nix 2.9 release notes). */
  printOutPaths: boolean;
  /** `nix path-info --json` prints an object keyed by store path instead of an array (Nix 2.19 release notes). */
  pathInfoJsonIsObject: boolean;
  /** `nix path-info --json` takes `--json-format N` and warns without it (Nix 2.33 release notes). */
  jsonFormatFlag: boolean;
}

/** The `nix path-info --json-format` value we ask for: version 1 keeps full store paths and string hashes. */
export const PATH_INFO_JSON_FORMAT = '1';

const VERSION_LINE = /^(\S+) \(([^)]*)\) (\d+)\.(\d+)(?:\.(\d+))?(\S*)\s*$/;

/** Parses the first line of `nix --version` (or nix-env, nix-store, ...). */
export function parseNixVersion(output: string): NixVersion {
  const line = output.trim().split('\n')[0]?.trim() ?? '';
  const m = VERSION_LINE.exec(line);
  if (!m) {
    throw new Error(
      `Cannot parse the Nix version from ${JSON.stringify(line.slice(0, 200))}; expected e.g. 'nix (Nix) 2.24.0'.`,
    );
  }
  return {
    program: m[1] ?? '',
    variant: m[2] ?? '',
    major: Number(m[3]),
    minor: Number(m[4]),
    patch: m[5] === undefined ? 0 : Number(m[5]),
    pre: m[6] ?? '',
  };
}

export function formatVersion(v: NixVersion): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre}`;
}

type Comparable = Pick<NixVersion, 'major' | 'minor' | 'patch' | 'pre'>;

function toComparable(v: Comparable | string): Comparable {
  if (typeof v !== 'string') return v;
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?(\S*)$/.exec(v.trim());
  if (!m) throw new Error(`Invalid version ${JSON.stringify(v)}; expected MAJOR.MINOR[.PATCH].`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: m[3] === undefined ? 0 : Number(m[3]), pre: m[4] ?? '' };
}

/** Negative, zero or positive like a sort comparator. A pre-release sorts before its release (2.25.0pre... < 2.25.0). */
export function compareVersions(a: Comparable | string, b: Comparable | string): number {
  const x = toComparable(a);
  const y = toComparable(b);
  const d = x.major - y.major || x.minor - y.minor || x.patch - y.patch;
  if (d !== 0) return d;
  if (x.pre === y.pre) return 0;
  if (x.pre === '') return 1;
  if (y.pre === '') return -1;
  return x.pre < y.pre ? -1 : 1;
}

/**
 * True when `v` is at least `min`. A pre-release of `min` itself does not count: a development build may predate the
 * feature, and passing a flag it lacks would fail the command.
 */
export function atLeast(v: NixVersion, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

export function isLix(v: NixVersion): boolean {
  return /\blix\b/i.test(v.variant);
}

export function nixFeatures(v: NixVersion): NixFeatures {
  // Lix forked from Nix 2.18 and numbers its releases 2.90+, so comparing its version with Nix's would be wrong; it
  // kept the array-shaped path-info JSON (NixOS/nix#13413) and has no --json-format.
  if (isLix(v)) return { printOutPaths: true, pathInfoJsonIsObject: false, jsonFormatFlag: false };
  return {
    printOutPaths: atLeast(v, '2.9'),
    pathInfoJsonIsObject: atLeast(v, '2.19'),
    jsonFormatFlag: atLeast(v, '2.33'),
  };
}
