/**
 * Attribute paths and globs over them, plus the Nix string quoting the --apply expressions need. Kept apart from
 * select.ts because evaluate.ts, results.ts and the unit tests use the same helpers.
 */
import { InputError } from '../errors.js';

/** A segment that Nix prints and parses without quotes. */
const PLAIN_SEGMENT = /^[A-Za-z_][A-Za-z0-9_'-]*$/;

/**
 * Splits `checks.x86_64-linux."a.b"` into segments; double quotes allow dots (and anything else but `"`) inside a
 * segment, the way Nix prints attribute paths.
 */
export function parseAttrPath(text: string): string[] {
  const segments: string[] = [];
  let cur = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      wasQuoted = true;
    } else if (c === '.') {
      if (cur === '' && !wasQuoted) throw new InputError(`Empty segment in attribute path ${JSON.stringify(text)}.`);
      segments.push(cur);
      cur = '';
      wasQuoted = false;
    } else {
      cur += c;
    }
  }
  if (quoted) throw new InputError(`Unterminated quote in attribute path ${JSON.stringify(text)}.`);
  if (cur === '' && !wasQuoted) throw new InputError(`Empty segment in attribute path ${JSON.stringify(text)}.`);
  segments.push(cur);
  return segments;
}

/** The inverse of parseAttrPath: quotes only the segments that need it, so `checks.x86_64-linux.foo` stays readable. */
export function formatAttrPath(segments: readonly string[]): string {
  return segments.map((s) => (PLAIN_SEGMENT.test(s) ? s : `"${s}"`)).join('.');
}

export function isGlob(segment: string): boolean {
  return /[*?[]/.test(segment);
}

/**
 * A glob segment as a POSIX extended regular expression for `builtins.match` (which matches the whole string):
 * `*` any run, `?` one character, `[abc]`/`[!abc]` classes; everything else literal.
 */
export function globToPosixRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body}]`;
      i = end;
    } else if ('.\\+()|{}^$]'.includes(c)) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** The same glob for matching in JavaScript (system filtering, tests). */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^(?:${globToPosixRegex(glob)})$`, 's');
}

/**
 * A Nix double-quoted string literal. `\` and `"` are escaped, and every `$` too so that `${` can never start an
 * interpolation; Nix reads `\$` as `$`. Newlines and tabs use their escapes.
 */
export function nixString(s: string): string {
  const body = s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\$/g, '\\$')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `"${body}"`;
}

/** `root."x86_64-linux"."foo"`: selecting the rest of a path inside an --apply function. */
export function nixSelect(root: string, segments: readonly string[]): string {
  return [root, ...segments.map(nixString)].join('.');
}
