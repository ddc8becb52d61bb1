/**
 * Evaluation errors as check-run annotations on the file and line Nix reports. GitHub places an annotation by a
 * path relative to the repository root, so a location is used only when it maps into the workspace: a path under
 * the workspace, or a file of the flake's own source copied into /nix/store (ErrorLocation.relativeFile, set by
 * parseEvalError when the store path is the flake source). Anything else (a nixpkgs file, `«string»`) has no place
 * in the repository and goes into the check's text instead. At most 50 annotations per request (the Checks API
 * limit): the first batch rides on the POST that creates the run, the rest on PATCHes.
 */
import * as path from 'node:path';
import type { ErrorLocation } from '../eval-error.js';
import type { AttrResult } from '../results.js';
import { bytes, cleanText, keepHead } from './text.js';

export const ANNOTATIONS_PER_REQUEST = 50;
/** GitHub: message and raw_details at most 64 KiB each, title at most 255 characters. */
const MESSAGE_MAX_BYTES = 60 * 1024;
const TITLE_MAX = 255;

export interface CheckAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  title: string;
  message: string;
}

/** A flake on the runner's disk; for anything fetched, `relativeFile` is relative to some other repository. */
function isLocalFlake(flake: string): boolean {
  return /^(\.|\/|path:|git\+file:)/.test(flake);
}

/** A `path:` flake's source is its own directory (not the repository's), so its files need the directory prefix. */
function sourcePrefix(flake: string, workspace: string): string {
  if (!flake.startsWith('path:')) return '';
  const dir = flake.slice('path:'.length).replace(/\?.*$/, '');
  const rel = path.relative(workspace, path.resolve(workspace, dir));
  return rel.startsWith('..') || path.isAbsolute(rel) ? '' : rel;
}

/** Where in the repository an error location is, or undefined when it is not in the repository. */
export function annotationPath(loc: ErrorLocation, workspace: string, flake: string): string | undefined {
  const inside = (rel: string): string | undefined => {
    const norm = path.posix.normalize(rel.split(path.sep).join('/'));
    if (norm === '.' || norm.startsWith('../') || norm === '..' || path.posix.isAbsolute(norm)) return undefined;
    return norm;
  };
  if (loc.relativeFile !== undefined && isLocalFlake(flake)) {
    return inside(path.posix.join(sourcePrefix(flake, workspace), loc.relativeFile));
  }
  if (path.isAbsolute(loc.file) && workspace) return inside(path.relative(workspace, loc.file));
  return undefined;
}

/** The message of an evaluation error annotation: the whole message, both ends kept when it is very long. */
function message(r: AttrResult): string {
  const text = cleanText(r.error ?? 'evaluation error').trim();
  if (bytes(text) <= MESSAGE_MAX_BYTES) return text;
  const half = Math.floor(MESSAGE_MAX_BYTES / 8); // characters; up to 4 bytes each
  return `${text.slice(0, half)}\n[… ${text.length - 2 * half} characters cut …]\n${text.slice(-half)}`;
}

export interface AnnotationPlan {
  annotations: CheckAnnotation[];
  /** Evaluation errors whose location is not in the repository (or unknown): they go into the text. */
  unplaced: AttrResult[];
}

export function planAnnotations(results: readonly AttrResult[], workspace: string, flake: string): AnnotationPlan {
  const annotations: CheckAnnotation[] = [];
  const unplaced: AttrResult[] = [];
  for (const r of results) {
    if (r.status !== 'eval-error') continue;
    const file = r.errorLocation ? annotationPath(r.errorLocation, workspace, flake) : undefined;
    if (!r.errorLocation || file === undefined) {
      unplaced.push(r);
      continue;
    }
    const line = Math.max(1, Math.floor(r.errorLocation.line));
    const a: CheckAnnotation = {
      path: file,
      start_line: line,
      end_line: line,
      annotation_level: 'failure',
      title: keepHead(`Evaluation error in ${cleanText(r.attr)}`, TITLE_MAX),
      message: message(r),
    };
    // Columns only for single-line ranges (the API ignores them otherwise) and only when Nix gave one.
    if (r.errorLocation.column !== undefined && r.errorLocation.column >= 1) {
      a.start_column = Math.floor(r.errorLocation.column);
      a.end_column = a.start_column;
    }
    annotations.push(a);
  }
  return { annotations, unplaced };
}

/** Requests of at most 50 annotations each, in order; always at least one (possibly empty) batch. */
export function batchAnnotations<T>(items: readonly T[], size = ANNOTATIONS_PER_REQUEST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out.length ? out : [[]];
}
