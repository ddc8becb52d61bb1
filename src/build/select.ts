/**
 * Which attributes to build: `checks` (every `checks.<system>.*`), `packages`, or glob patterns over attribute paths,
 * for the wanted systems. Discovery walks attribute NAMES only (one `nix eval` per top-level output, usually one in
 * all), so a broken check cannot break discovery: its value is never forced here, only in evaluate.ts.
 */
import { InputError } from '../errors.js';
import { CommandError } from '../exec.js';
import type { NixCommand } from '../nix/command.js';
import { NO_EVAL_CACHE } from './evaluate.js';
import { formatAttrPath, globToPosixRegex, globToRegExp, isGlob, nixString, parseAttrPath } from './attr-path.js';

export type SelectMode = 'checks' | 'packages' | 'attributes';

export interface SelectOptions {
  /** Flake reference, e.g. `.` or `github:owner/repo`. */
  flake: string;
  mode: SelectMode;
  /** Glob patterns over attribute paths; used by mode `attributes`. */
  patterns?: readonly string[];
  /** Systems to select; patterns naming a system literally are taken as asked. */
  systems: readonly string[];
  cwd?: string;
}

export interface SelectedAttr {
  /** `checks.x86_64-linux.foo`, quoted where a segment needs it. */
  attr: string;
  attrPath: string[];
  /** From the path for per-system outputs; evaluate.ts fills in the derivation's own system for the rest. */
  system?: string;
}

/** One segment of a pattern as the Nix walker sees it: a set of literal names, or a POSIX regex over names. */
export type SegmentMatcher = { names: string[] } | { re: string };

export interface Pattern {
  /** The top-level output; discovery starts from `<flake>#<root>`. */
  root: string;
  /** Matchers for the segments after the root. */
  rest: SegmentMatcher[];
}

/** Outputs whose second segment is a system (flake schema); `systems` filters them when that segment is a glob. */
export const PER_SYSTEM_OUTPUTS = new Set(['checks', 'packages', 'devShells', 'apps', 'formatter', 'legacyPackages']);

/** The patterns a mode stands for, with the system restriction applied. */
export function patternsFor(mode: SelectMode, patterns: readonly string[], systems: readonly string[]): Pattern[] {
  if (mode === 'checks' || mode === 'packages') {
    return [{ root: mode, rest: [{ names: [...systems] }, { re: '.*' }] }];
  }
  if (patterns.length === 0) {
    throw new InputError("Mode 'attributes' needs at least one pattern in 'attributes' (e.g. 'checks.*.vm-*').");
  }
  return patterns.map((p) => compilePattern(p, systems));
}

export function compilePattern(text: string, systems: readonly string[]): Pattern {
  const segments = parseAttrPath(text.trim());
  const [root, ...rest] = segments;
  if (root === undefined || isGlob(root)) {
    throw new InputError(
      `Attribute pattern ${JSON.stringify(text)} must start with a literal output name such as 'checks' or 'packages'.`,
    );
  }
  const matchers: SegmentMatcher[] = rest.map((seg, i) => {
    if (!isGlob(seg)) return { names: [seg] };
    // A glob over systems means "the wanted systems that match it": building for other systems needs other machines.
    if (i === 0 && PER_SYSTEM_OUTPUTS.has(root)) {
      const re = globToRegExp(seg);
      return { names: systems.filter((s) => re.test(s)) };
    }
    return { re: globToPosixRegex(seg) };
  });
  return { root, rest: matchers };
}

/**
 * The --apply function: for each pattern, a tree of the matching names with `true` at the leaves. Values are forced
 * only on the way down (to list names); leaves never are. tryEval keeps a throwing intermediate set from failing the
 * whole discovery (it cannot catch every error kind, e.g. type errors, which then fail discovery with Nix's message).
 */
export function discoveryExpression(rests: readonly SegmentMatcher[][]): string {
  return [
    'root: let',
    `  pats = builtins.fromJSON ${nixString(JSON.stringify(rests))};`,
    '  isSet = v: let t = builtins.tryEval (builtins.isAttrs v); in t.success && t.value;',
    '  walk = v: segs:',
    '    if segs == [ ] then true',
    '    else if !(isSet v) then { }',
    '    else let',
    '      s = builtins.head segs;',
    '      names = if s ? names then builtins.filter (n: builtins.hasAttr n v) s.names',
    '        else builtins.filter (n: builtins.match s.re n != null) (builtins.attrNames v);',
    '    in builtins.listToAttrs (map (n: { name = n; value = walk v.${n} (builtins.tail segs); }) names);',
    'in map (p: walk root p) pats',
  ].join('\n');
}

/** Leaves of the walker's trees as attribute paths, in the order Nix printed them (sorted names). */
export function flattenTree(prefix: readonly string[], tree: unknown, out: string[][] = []): string[][] {
  if (tree === true) {
    out.push([...prefix]);
  } else if (typeof tree === 'object' && tree !== null && !Array.isArray(tree)) {
    for (const [name, sub] of Object.entries(tree)) flattenTree([...prefix, name], sub, out);
  }
  return out;
}

/** Nix's message when the top-level output does not exist: an empty selection, not a failure. */
const MISSING_OUTPUT = /does not provide attribute/;

export async function selectAttributes(nix: NixCommand, opts: SelectOptions): Promise<SelectedAttr[]> {
  const patterns = patternsFor(opts.mode, opts.patterns ?? [], opts.systems);
  const byRoot = new Map<string, SegmentMatcher[][]>();
  for (const p of patterns) byRoot.set(p.root, [...(byRoot.get(p.root) ?? []), p.rest]);

  const seen = new Set<string>();
  const selected: SelectedAttr[] = [];
  for (const [root, rests] of byRoot) {
    const installable = `${opts.flake}#${formatAttrPath([root])}`;
    const args = ['eval', ...NO_EVAL_CACHE, '--json', installable, '--apply', discoveryExpression(rests)];
    const res = await nix.run(args, { cwd: opts.cwd, allowFailure: true });
    if (res.exitCode !== 0) {
      if (MISSING_OUTPUT.test(res.stderr)) {
        nix.platform?.log('warning', `The flake ${opts.flake} has no '${root}' output; nothing selected there.`);
        continue;
      }
      throw new CommandError(`nix eval (listing ${root} of ${opts.flake})`, res);
    }
    const trees = JSON.parse(res.stdout) as unknown[];
    for (const tree of trees) {
      for (const attrPath of flattenTree([root], tree)) {
        const attr = formatAttrPath(attrPath);
        if (seen.has(attr)) continue;
        seen.add(attr);
        const item: SelectedAttr = { attr, attrPath };
        if (PER_SYSTEM_OUTPUTS.has(root) && attrPath[1] !== undefined) item.system = attrPath[1];
        selected.push(item);
      }
    }
  }
  return selected;
}
