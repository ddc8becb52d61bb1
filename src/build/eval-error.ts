/**
 * Evaluation error messages and the position worth annotating. Nix prints positions as `at FILE:LINE:COL:` where
 * FILE is a path (a store path of the flake source, possibly under a chroot store's real directory) or a `«...»`
 * pseudo-file (`«string»` for --apply/--expr text, `«nix-internal»/...`, `«none»`, or `«github:o/r/rev»/flake.nix`
 * with lazy trees). Trace order differs by version:
 * - Nix 2.8: `error: MSG`, its position, then (with --show-trace) frames innermost first;
 * - Nix 2.34: `error:` alone, frames outermost first (`… while ...` + position), and the message `error: MSG` last,
 *   followed by its own position when it has one.
 * The rule that fits both: the position right after the message line; else the nearest usable frame (the last
 * before the message when frames precede it, the first after it otherwise).
 */
import { stripAnsi } from '../nix/log.js';

export interface ErrorLocation {
  /** As Nix printed it (a store path, or `«github:...»/flake.nix`). */
  file: string;
  line: number;
  column?: number;
  /**
   * Relative to the flake source root (the repository for a git flake), when the file belongs to the flake being
   * built rather than to one of its inputs; what annotations use.
   */
  relativeFile?: string;
}

export interface EvalErrorInfo {
  /** The whole message, colours removed, Nix's `--show-trace` hint dropped. */
  message: string;
  /** The innermost `error:` line's text, e.g. `cannot add a string to an integer`. */
  summary: string;
  location?: ErrorLocation;
}

export interface ParseOptions {
  /**
   * The flake's source store path (`nix flake metadata --json` .path). Files under it get `relativeFile`; without
   * it, any `<hash>-source` directory counts as the flake's own.
   */
  sourcePath?: string;
}

interface Position {
  index: number;
  file: string;
  line: number;
  column: number;
}

const POSITION = /\bat («[^»]*»[^\s:]*|[^\s:«»]+):(\d+):(\d+)/;
const PSEUDO = /^«(string|none|nix-internal|stdin|derivation)»/;
const HINT = /^\s*\(use '--show-trace'.*\)\s*$|^\s*\(stack trace truncated;.*\)\s*$/;

export function parseEvalError(stderr: string, opts: ParseOptions = {}): EvalErrorInfo {
  const lines = stripAnsi(stderr)
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => !HINT.test(l));
  // Warnings Nix printed before the error (e.g. deprecations) are not part of it.
  const first = lines.findIndex((l) => /^\s*error:/.test(l));
  const body = first === -1 ? lines : lines.slice(first);
  const message = dropWrapperFrames(body).join('\n').trim();

  let mainIndex = -1;
  for (let i = body.length - 1; i >= 0; i--) {
    if (/^\s*error:\s*\S/.test(body[i] as string)) {
      mainIndex = i;
      break;
    }
  }
  const summary =
    mainIndex === -1 ? (body.find((l) => l.trim() !== '') ?? '').trim() : (body[mainIndex] as string).trim();

  const positions: Position[] = [];
  body.forEach((l, index) => {
    const m = POSITION.exec(l);
    if (m) positions.push({ index, file: m[1] as string, line: Number(m[2]), column: Number(m[3]) });
  });
  const usable = positions.filter((p) => !PSEUDO.test(p.file));
  const chosen = choose(body, usable, mainIndex);

  const info: EvalErrorInfo = { message, summary: summary.replace(/^error:\s*/, '') };
  if (chosen) {
    const location: ErrorLocation = { file: chosen.file, line: chosen.line, column: chosen.column };
    const rel = relativeToSource(chosen.file, opts.sourcePath);
    if (rel !== undefined) location.relativeFile = rel;
    info.location = location;
  }
  return info;
}

/**
 * Trace frames inside `«string»` are our own --apply wrapper (2.34 prints them with their source lines); they say
 * nothing about the user's code, so the message shown drops them. Positions are still chosen from the full text.
 */
export function dropWrapperFrames(lines: readonly string[]): string[] {
  const out: string[] = [];
  let frame: string[] | undefined;
  const flush = () => {
    if (frame && !frame.some((l) => /\bat «string»:\d+:\d+/.test(l))) out.push(...frame);
    frame = undefined;
  };
  for (const l of lines) {
    if (/^\s*…/.test(l)) {
      flush();
      frame = [l];
    } else if (/^\s*error:/.test(l)) {
      flush();
      out.push(l);
    } else if (frame) frame.push(l);
    else out.push(l);
  }
  flush();
  // Blank runs left where frames were removed.
  return out.filter((l, i) => l.trim() !== '' || (out[i - 1] ?? '').trim() !== '');
}

function choose(body: readonly string[], usable: Position[], mainIndex: number): Position | undefined {
  if (usable.length === 0) return undefined;
  if (mainIndex === -1) return usable[usable.length - 1];
  const isFrame = (i: number) => /^\s*…/.test(body[i] as string);
  // The message's own position: after the message line and before the next frame.
  let nextFrame = body.length;
  for (let i = mainIndex + 1; i < body.length; i++) {
    if (isFrame(i)) {
      nextFrame = i;
      break;
    }
  }
  const own = usable.find((p) => p.index > mainIndex && p.index < nextFrame);
  if (own) return own;
  const before = usable.filter((p) => p.index < mainIndex);
  const framesBefore = body.slice(0, mainIndex).some((_, i) => isFrame(i));
  if (framesBefore && before.length > 0) return before[before.length - 1];
  return usable.find((p) => p.index > mainIndex) ?? before[before.length - 1];
}

/**
 * `…/nix/store/<hash>-source/sub/flake.nix` -> `sub/flake.nix` when `<hash>-source` is the flake's source;
 * `«github:o/r/rev»/flake.nix` -> `flake.nix` (lazy trees print the flake's own files that way).
 */
export function relativeToSource(file: string, sourcePath?: string): string | undefined {
  const lazy = /^«[^»]*»\/(.+)$/.exec(file);
  if (lazy) return PSEUDO.test(file) ? undefined : lazy[1];
  const m = /\/nix\/store\/([a-z0-9]{32}-[^/]+)\/(.+)$/.exec(file);
  if (!m) return undefined;
  const base = sourcePath ? sourcePath.replace(/\/+$/, '').split('/').pop() : undefined;
  if (base !== undefined ? m[1] !== base : !(m[1] as string).endsWith('-source')) return undefined;
  return m[2];
}
