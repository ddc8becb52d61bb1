/**
 * nix2container's image.json carries Go (RE2) regular expressions and Go replacement templates (path rewrites,
 * perms, ignoreDestination). RE2 is mostly a subset of JavaScript's syntax; these helpers cover the differences that
 * matter for path patterns and refuse, with the pattern named, what they cannot translate, rather than guessing.
 */
import { InputError } from '../../errors.js';

/** Compiles an RE2 pattern as a JavaScript RegExp (global when `global`), for `what` (named in errors). */
export function goRegExp(pattern: string, what: string, global = false): RegExp {
  let src = pattern;
  let flags = global ? 'g' : '';
  // A leading flag group `(?ims)` is common in RE2; JavaScript wants flags outside the pattern.
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1]?.includes('U')) throw new InputError(`${what}: the RE2 flag U in '${pattern}' is not supported`);
    flags += [...new Set(lead[1])].join('');
    src = src.slice(lead[0].length);
  }
  if (/\(\?[imsU-]+[:)]/.test(src) || /\[\[:/.test(src) || /\\[zACpP]/.test(src)) {
    // Inline flag groups, POSIX classes and \z, \A, \C, \pX have no direct JavaScript equivalent worth faking.
    throw new InputError(`${what}: cannot translate the RE2 pattern '${pattern}' (inline flags, [[:class:]], \\z)`);
  }
  src = src.replace(/\(\?P</g, '(?<');
  try {
    return new RegExp(src, flags);
  } catch (e) {
    throw new InputError(`${what}: invalid regular expression '${pattern}': ${(e as Error).message}`);
  }
}

/**
 * Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$` for a dollar; unknown or unmatched groups are empty; a
 * malformed `$` stays literal.
 */
export function goExpand(template: string, groups: (string | undefined)[], named?: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    const m = /^\{([A-Za-z0-9_]+)\}|^([A-Za-z0-9_]+)/.exec(template.slice(i + 1));
    if (!m) {
      out += '$';
      continue;
    }
    const name = (m[1] ?? m[2]) as string;
    i += m[0].length;
    out += /^[0-9]+$/.test(name) ? (groups[Number(name)] ?? '') : (named?.[name] ?? '');
  }
  return out;
}

/** Go's Regexp.ReplaceAllString with an Expand template. */
export function goReplaceAll(re: RegExp, s: string, template: string): string {
  const g = re.global ? re : new RegExp(re.source, `${re.flags}g`);
  return s.replace(g, (...args: unknown[]) => {
    const last = args[args.length - 1];
    const named = typeof last === 'object' && last !== null ? (last as Record<string, string>) : undefined;
    const end = named ? args.length - 3 : args.length - 2;
    return goExpand(template, args.slice(0, end) as (string | undefined)[], named);
  });
}
