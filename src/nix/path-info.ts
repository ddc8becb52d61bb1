/**
 * `nix path-info --json` in every shape Nix has printed:
 * - before 2.19: an array of objects with `path` (and `valid: false` for invalid paths);
 * - 2.19 and later: an object keyed by store path, `null` for invalid paths (2.19 release notes);
 * - 2.33 and later with `--json-format 1`: the same object, each value also carrying `version` and `storeDir`;
 * - `--json-format 2` and later: `{version, storeDir, info}` with store path base names as keys and references,
 *   structured `ca` and possibly structured hashes; format 3 makes signatures `{keyName, sig}` objects.
 * The shape is detected from the JSON itself, so a misdetected Nix version cannot make us misread it.
 */

export interface PathInfo {
  /** Full store path. */
  path: string;
  valid: boolean;
  /** As Nix prints it (SRI `sha256-...` since Nix 2.4); structured hashes are turned into SRI. '' when unknown. */
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  /** `keyName:base64signature`, as in narinfo files. */
  signatures: string[];
  /** Content address: the legacy string (`fixed:r:sha256:...`), or `method:hash` for the structured form. */
  ca?: string;
  registrationTime?: number;
  ultimate?: boolean;
  /** Present with `--closure-size`. */
  closureSize?: number;
}

const DEFAULT_STORE_DIR = '/nix/store';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson(text: string, what: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    const head = text.trim().slice(0, 200);
    throw new Error(`${what} printed invalid JSON (${(e as Error).message}): ${JSON.stringify(head)}`);
  }
}

export function parsePathInfo(json: string): PathInfo[] {
  const root = parseJson(json, 'nix path-info --json');
  if (Array.isArray(root)) return root.map((item, i) => fromLegacyItem(item, i));
  if (!isObject(root)) throw new Error(`nix path-info --json: expected an array or an object, got ${typeof root}.`);

  if (isObject(root.info) && typeof root.version === 'number') {
    const storeDir = typeof root.storeDir === 'string' ? root.storeDir : DEFAULT_STORE_DIR;
    return Object.entries(root.info).map(([key, value]) => fromKeyed(key, value, storeDir));
  }
  const out: PathInfo[] = [];
  for (const [key, value] of Object.entries(root)) {
    // The 2.33 release notes speak of a top-level `storeDir`/`version` in format 1; skip such scalars if they appear.
    if (!key.includes('/') && !isObject(value) && value !== null) continue;
    out.push(fromKeyed(key, value, DEFAULT_STORE_DIR));
  }
  return out;
}

function fromLegacyItem(item: Json, index: number): PathInfo {
  if (!isObject(item) || typeof item.path !== 'string') {
    throw new Error(`nix path-info --json: entry ${index} has no 'path'.`);
  }
  if (item.valid === false) return invalid(item.path);
  return fromObject(item, item.path, DEFAULT_STORE_DIR);
}

function fromKeyed(key: string, value: Json | undefined, storeDir: string): PathInfo {
  const full = toFullPath(key, storeDir);
  if (value === null || value === undefined) return invalid(full);
  if (!isObject(value)) throw new Error(`nix path-info --json: the entry for ${full} is not an object.`);
  return fromObject(value, full, storeDir);
}

function invalid(path: string): PathInfo {
  return { path, valid: false, narHash: '', narSize: 0, references: [], signatures: [] };
}

function fromObject(o: JsonObject, path: string, fallbackStoreDir: string): PathInfo {
  const where = `nix path-info --json (${path})`;
  const storeDir = typeof o.storeDir === 'string' ? o.storeDir : fallbackStoreDir;
  const info: PathInfo = {
    path,
    valid: true,
    narHash: o.narHash === undefined || o.narHash === null ? '' : hashString(o.narHash, `${where} narHash`),
    narSize: optionalNumber(o.narSize, `${where} narSize`) ?? 0,
    references: stringArray(o.references, `${where} references`).map((r) => toFullPath(r, storeDir)),
    signatures: signatures(o.signatures, `${where} signatures`),
  };
  if (typeof o.deriver === 'string') info.deriver = toFullPath(o.deriver, storeDir);
  const ca = contentAddress(o.ca, `${where} ca`);
  if (ca !== undefined) info.ca = ca;
  const registrationTime = optionalNumber(o.registrationTime, `${where} registrationTime`);
  if (registrationTime !== undefined) info.registrationTime = registrationTime;
  if (typeof o.ultimate === 'boolean') info.ultimate = o.ultimate;
  const closureSize = optionalNumber(o.closureSize, `${where} closureSize`);
  if (closureSize !== undefined) info.closureSize = closureSize;
  return info;
}

/** Formats 2+ print base names (`<hash>-<name>`) without the store directory. */
function toFullPath(p: string, storeDir: string): string {
  return p.startsWith('/') ? p : `${storeDir.replace(/\/+$/, '')}/${p}`;
}

function optionalNumber(v: Json | undefined, where: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw new Error(`${where}: expected a number, got ${JSON.stringify(v)}.`);
  return v;
}

function stringArray(v: Json | undefined, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new Error(`${where}: expected an array of strings.`);
  }
  return v as string[];
}

function signatures(v: Json | undefined, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${where}: expected an array.`);
  return v.map((s) => {
    if (typeof s === 'string') return s;
    if (isObject(s) && typeof s.keyName === 'string' && typeof s.sig === 'string') return `${s.keyName}:${s.sig}`;
    throw new Error(`${where}: unexpected signature ${JSON.stringify(s)}.`);
  });
}

function contentAddress(v: Json | undefined, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.method === 'string' && v.hash !== undefined) {
    return `${v.method}:${hashString(v.hash, `${where} hash`)}`;
  }
  throw new Error(`${where}: unexpected content address ${JSON.stringify(v)}.`);
}

/** Strings are kept as printed; structured hashes `{algorithm, format, hash}` become SRI where the encoding allows. */
export function hashString(v: Json, where: string): string {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.algorithm === 'string' && typeof v.hash === 'string') {
    switch (v.format) {
      case 'base64':
        return `${v.algorithm}-${v.hash}`;
      case 'base16':
        return `${v.algorithm}-${Buffer.from(v.hash, 'hex').toString('base64')}`;
      case 'sri':
        return v.hash.includes('-') ? v.hash : `${v.algorithm}-${v.hash}`;
      case 'nix32':
      case 'base32':
        // Nix's own `algo:nix32` notation; converting nix32 to base64 is not worth a decoder here.
        return `${v.algorithm}:${v.hash}`;
    }
  }
  throw new Error(`${where}: unexpected hash ${JSON.stringify(v)}.`);
}
