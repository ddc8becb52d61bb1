/**
 * flake.lock lint: nixpkgs inputs older than `maxAgeDays`, on a branch that is not a supported release channel
 * (release-channels.ts, the one data file), or not owned by NixOS. Findings are annotations on the flake.lock line of
 * the offending field: warnings, or errors in strict mode. No network access; nothing leaves the machine.
 *
 * Decisions (to be stated in the build action's README):
 * - A nixpkgs input is any node whose locked or original source is a nixpkgs repository (github/gitlab/sourcehut
 *   owner/repo, a git URL ending in nixpkgs, a nixos.org channel or GitHub archive tarball) or the `nixpkgs`
 *   registry entry. Forks count, and are reported as not owned by NixOS.
 * - `master` is nixpkgs' development branch, not a channel: reported as "not a channel" with low-severity wording.
 * - No ref means the repository's default branch (master for NixOS/nixpkgs): reported the same way. A `rev`
 *   without a ref is a deliberate pin: no branch finding (the age check still applies). An indirect `nixpkgs`
 *   without a ref takes its branch from the flake registry, which flake.lock does not record: no branch finding.
 * - A release newer than every release in the data file is not judged (the list may predate it).
 * - Local checkouts (`git+file://`, `path:`) are not judged: flake.lock does not say what they were cloned from.
 * - A malformed or unreadable flake.lock is one warning naming the file (even in strict mode: Nix itself will
 *   fail on it with a better message), never a crash and never a finding.
 */
import { readFile } from 'node:fs/promises';
import type { Platform } from '../../platform/types.js';
import { errorMessage } from '../../errors.js';
import { judgeBranch, supportedChannels } from './channels.js';
import { keyLines, pathKey } from './json-lines.js';
import { branchMessage, ownerMessage, staleMessage, TITLES } from './messages.js';
import { RELEASE_CHANNELS } from './release-channels.js';
import { parseAttrs } from './source.js';

export type LintMode = 'off' | 'warn' | 'strict';

export interface LintFinding {
  /** The flake.lock node name, e.g. `nixpkgs` or `nixpkgs_2`. */
  input: string;
  kind: 'stale' | 'unsupported-branch' | 'not-nixos-owner';
  message: string;
  /** 1-based line in flake.lock the annotation points at. */
  line: number;
}

export interface LintOptions {
  /** Absolute path of flake.lock (a missing file is no finding). */
  lockFile: string;
  /** The path annotations name, relative to the workspace. */
  relPath: string;
  maxAgeDays: number;
  mode: LintMode;
  now?: Date;
}

export interface LintResult {
  findings: LintFinding[];
  /** True in strict mode when there is any finding. */
  failed: boolean;
}

type Obj = Record<string, unknown>;
const DAY_MS = 86_400_000;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Error text, also for errors from another realm (fs errors under a VM context fail `instanceof Error`). */
const reason = (e: unknown): string => (isObj(e) && typeof e.message === 'string' ? e.message : errorMessage(e));

/** Node name -> input path from the root (`nixpkgs`, `home-manager/nixpkgs`), shortest first, for update hints. */
function inputPaths(nodes: Obj, rootName: string): Map<string, string> {
  const paths = new Map<string, string>();
  const queue: Array<{ name: string; path: string[] }> = [{ name: rootName, path: [] }];
  const seen = new Set([rootName]);
  for (let i = 0; i < queue.length; i++) {
    const { name, path } = queue[i] as { name: string; path: string[] };
    const node = nodes[name];
    const inputs = isObj(node) ? node.inputs : undefined;
    if (!isObj(inputs)) continue;
    for (const [inputName, target] of Object.entries(inputs)) {
      // Arrays are `follows` paths: their target is reached (and named) through its own input.
      if (typeof target !== 'string' || seen.has(target)) continue;
      seen.add(target);
      const p = [...path, inputName];
      paths.set(target, p.join('/'));
      queue.push({ name: target, path: p });
    }
  }
  return paths;
}

/** Lints one node; returns its findings (line numbers filled from `lineOf`). */
function lintNode(
  name: string,
  node: Obj,
  inputPath: string,
  opts: LintOptions,
  now: Date,
  lineOf: (...path: string[]) => number,
  debug: (msg: string) => void,
): LintFinding[] {
  const original = parseAttrs(node.original);
  const locked = parseAttrs(node.locked);
  if (!original?.nixpkgs && !locked?.nixpkgs) return [];
  const findings: LintFinding[] = [];
  const add = (kind: LintFinding['kind'], message: string, line: number): void => {
    findings.push({ input: name, kind, message, line });
  };

  const lastModified = isObj(node.locked) ? node.locked.lastModified : undefined;
  if (typeof lastModified === 'number' && Number.isFinite(opts.maxAgeDays) && opts.maxAgeDays >= 0) {
    const ageDays = Math.floor((now.getTime() - lastModified * 1000) / DAY_MS);
    if (ageDays > opts.maxAgeDays) {
      const lockedOn = new Date(lastModified * 1000).toISOString().slice(0, 10);
      add('stale', staleMessage(inputPath, ageDays, lockedOn, opts.maxAgeDays), lineOf('locked', 'lastModified'));
    }
  } else if (typeof lastModified !== 'number') {
    debug(`flake.lock lint: ${name} has no locked.lastModified; age not checked`);
  }

  // Point at what the user wrote (original) when it names the source; an indirect input only says it in locked.
  const who =
    original?.nixpkgs && original.official !== undefined
      ? { r: original, at: 'original' }
      : locked?.nixpkgs && locked.official !== undefined
        ? { r: locked, at: 'locked' }
        : undefined;
  let ref: string | undefined;
  let refLine = lineOf('original');
  if (original?.ref) {
    ref = original.ref;
    refLine = lineOf('original', original.refField ?? 'ref');
  } else if (original?.indirect) {
    debug(`flake.lock lint: ${name} is the registry's nixpkgs with no branch in flake.lock; branch not checked`);
  } else if (original?.pinned) {
    debug(`flake.lock lint: ${name} is pinned to a commit; branch not checked`);
  } else if (original?.repo) {
    ref = 'master';
  }
  if (ref !== undefined) {
    const verdict = judgeBranch(ref, now);
    if (verdict.kind === 'unknown-release') {
      debug(
        `flake.lock lint: ${ref} (${name}) is newer than the release list, last checked ` +
          `${RELEASE_CHANNELS.lastChecked}; not judged`,
      );
    }
    const message = branchMessage(verdict, {
      inputPath,
      ref,
      defaultBranch: !original?.ref,
      label: original?.label ?? '',
      official: who?.r.official ?? true,
      supported: supportedChannels(now),
    });
    if (message) add('unsupported-branch', message, refLine);
  }

  if (who && who.r.official === false) {
    add('not-nixos-owner', ownerMessage(inputPath, who.r.label), lineOf(who.at, who.r.ownerField ?? ''));
  }
  return findings;
}

export async function lintFlakeLock(platform: Platform, opts: LintOptions): Promise<LintResult> {
  const none: LintResult = { findings: [], failed: false };
  if (opts.mode === 'off') return none;
  const file = opts.relPath;
  const unreadable = (why: string, startLine?: number): LintResult => {
    platform.log('warning', `${file}: ${why}; its nixpkgs inputs were not linted.`, {
      file,
      ...(startLine ? { startLine } : {}),
      title: 'flake.lock not linted',
    });
    return none;
  };

  let text: string;
  try {
    text = await readFile(opts.lockFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      platform.log('debug', `flake.lock lint: ${file} does not exist; nothing to lint`);
      return none;
    }
    return unreadable(`cannot be read (${reason(e)})`);
  }
  let lock: unknown;
  let lines: Map<string, number>;
  try {
    lock = JSON.parse(text);
    lines = keyLines(text);
  } catch (e) {
    // V8's SyntaxError names the line ("... (line 10 column 12)"): point the annotation there when it does.
    const at = /\bline (\d+)/.exec(reason(e));
    return unreadable(`is not valid JSON (${reason(e)})`, at?.[1] ? Number(at[1]) : undefined);
  }
  if (!isObj(lock) || !isObj(lock.nodes)) {
    const version = isObj(lock) ? String(lock.version) : 'unknown';
    return unreadable(
      `has no "nodes" (lock file version ${version}); run \`nix flake lock\` with a current Nix to rewrite it`,
    );
  }

  const nodes = lock.nodes;
  const rootName = typeof lock.root === 'string' ? lock.root : 'root';
  const paths = inputPaths(nodes, rootName);
  const now = opts.now ?? new Date();
  const debug = (msg: string): void => platform.log('debug', msg);
  const findings: LintFinding[] = [];
  for (const [name, node] of Object.entries(nodes)) {
    if (name === rootName || !isObj(node)) continue;
    // The most precise line known: the field, else its attribute set, else the node, else line 1.
    const lineOf = (...field: string[]): number => {
      for (let n = field.length; n >= 0; n--) {
        const line = lines.get(pathKey(['nodes', name, ...field.slice(0, n)]));
        if (line !== undefined) return line;
      }
      return 1;
    };
    findings.push(...lintNode(name, node, paths.get(name) ?? name, opts, now, lineOf, debug));
  }
  findings.sort((a, b) => a.line - b.line);

  const level = opts.mode === 'strict' ? 'error' : 'warning';
  for (const f of findings) {
    platform.log(level, f.message, { file, startLine: f.line, title: TITLES[f.kind] });
  }
  if (findings.length === 0) platform.log('debug', `flake.lock lint: ${file} has no findings`);
  else platform.log('info', `flake.lock lint: ${findings.length} finding(s) in ${file}`);
  return { findings, failed: opts.mode === 'strict' && findings.length > 0 };
}
