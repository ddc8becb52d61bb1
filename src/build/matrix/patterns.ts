/**
 * Attribute paths written as `attributes` patterns that select exactly that attribute. A shard job gets its
 * attributes as one space-separated input, which select.ts reads as glob patterns (attr-path.ts), so:
 * - glob characters in a name are escaped as one-character classes: `*` -> `[*]`, `?` -> `[?]`, `[` -> `[[]`;
 * - dots, blanks and other non-plain characters are kept inside a quoted segment (`"a.b"`, `"my check"`), as
 *   formatAttrPath does; the input is split on blanks outside quotes only (inputs.ts splitPatterns);
 * - line breaks, `"` and `\` cannot be written at all (the input is split into lines first; a `"` always opens or
 *   closes a quoted segment; the splitter reads `\` as an escape), so each becomes `?`, and the plan checks that the
 *   pattern then matches no other attribute of the selection (exactPatterns); a clash fails the plan rather than
 *   building an attribute twice or not at all.
 */
import { InputError } from '../../errors.js';
import { formatAttrPath, isGlob } from '../attr-path.js';
import { compilePattern, type Pattern } from '../select.js';

/** Characters the `attributes` input cannot carry literally in a pattern. */
const UNWRITABLE = /[\r\n"\\]/;

export function escapeSegment(segment: string): string {
  let out = '';
  for (const c of segment) {
    if (c === '*' || c === '?' || c === '[') out += `[${c}]`;
    else if (UNWRITABLE.test(c)) out += '?';
    else out += c;
  }
  return out;
}

/** The pattern for one attribute path; the root (a flake output name) must be literal. */
export function literalPattern(attrPath: readonly string[]): string {
  const [root, ...rest] = attrPath;
  if (root === undefined || isGlob(root) || UNWRITABLE.test(root) || root === '') {
    throw new InputError(
      `The flake output ${JSON.stringify(root ?? '')} cannot be named in the 'attributes' input (it needs a plain ` +
        'name); select attributes under a plainly named output.',
    );
  }
  return formatAttrPath([root, ...rest.map(escapeSegment)]);
}

/**
 * Whether a compiled pattern selects this attribute path, as select.ts's Nix walker does: the same depth, the root
 * equal, each segment one of the literal names or a whole-name match of the POSIX regex. The regexes our escapes
 * produce (`[*]`, `.`, escaped punctuation) mean the same in POSIX ERE and JavaScript.
 */
export function patternMatches(pattern: Pattern, attrPath: readonly string[]): boolean {
  if (attrPath[0] !== pattern.root || attrPath.length !== pattern.rest.length + 1) return false;
  return pattern.rest.every((m, i) => {
    const name = attrPath[i + 1] as string;
    return 'names' in m ? m.names.includes(name) : new RegExp(`^(?:${m.re})$`, 's').test(name);
  });
}

/** The selection paths other than `attrPath` itself that `text` would also select, for `systems`. */
export function clashes(
  text: string,
  attrPath: readonly string[],
  all: readonly (readonly string[])[],
  systems: readonly string[],
): string[][] {
  const pattern = compilePattern(text, systems);
  const self = JSON.stringify(attrPath);
  return all.filter((p) => JSON.stringify(p) !== self && patternMatches(pattern, p)).map((p) => [...p]);
}

/**
 * Patterns for `attrPaths`, each checked against every attribute of the selection (`all`, evaluation errors
 * included: a shard must not pick those up either). Only names with unwritable characters can clash.
 */
export function exactPatterns(
  attrPaths: readonly (readonly string[])[],
  all: readonly (readonly string[])[],
  systems: readonly string[],
): string[] {
  return attrPaths.map((p) => {
    const text = literalPattern(p);
    if (!p.some((s) => UNWRITABLE.test(s))) return text;
    const other = clashes(text, p, all, [...systems, p[1] ?? '']);
    if (other.length > 0) {
      throw new InputError(
        `The attribute ${formatAttrPath(p)} cannot be given to a shard on its own: its name holds a line break, a ` +
          `double quote or a backslash, which the 'attributes' input cannot carry, and the pattern ${text} standing for ` +
          `it also matches ${formatAttrPath(other[0] as string[])}. Rename one of them.`,
      );
    }
    return text;
  });
}
