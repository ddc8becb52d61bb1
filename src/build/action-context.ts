/**
 * What the build action reads about its surroundings: where a local flake lives (for flake.lock lint and for
 * annotation paths), which commit a report belongs to, and the job's page. Reads files, never runs processes.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Platform } from '../platform/types.js';
import type { ErrorLocation } from './eval-error.js';

export interface LocalFlake {
  /** The directory holding flake.nix. */
  dir: string;
  /** Directories a Nix-reported relative path may be relative to, most specific first. */
  roots: string[];
}

/**
 * The flake's directory when the reference is a local path (`.`, `./sub`, `/abs`, `path:...`, `git+file:...`,
 * optionally with `?dir=sub`); undefined for remote references (`github:...`, a registry name).
 */
export function localFlake(flake: string, workspace: string): LocalFlake | undefined {
  let ref = flake.trim();
  const scheme = /^(path|git\+file):(\/\/)?/.exec(ref);
  if (scheme) ref = ref.slice(scheme[0].length);
  else if (!/^(\.|\/)/.test(ref)) return undefined;
  const [location = '', query = ''] = ref.split('?', 2);
  const root = path.resolve(workspace, location === '' ? '.' : location);
  const sub = new URLSearchParams(query).get('dir');
  const dir = sub ? path.resolve(root, sub) : root;
  const roots = [dir, root];
  // A git flake's source is the whole repository: Nix reports paths relative to its top.
  for (let d = dir; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, '.git'))) {
      roots.push(d);
      break;
    }
    if (path.dirname(d) === d) break;
  }
  return { dir, roots: [...new Set(roots)] };
}

/** A workspace-relative path for a file Nix named relative to the flake source, or undefined. */
export function annotationFile(flake: LocalFlake | undefined, workspace: string, relative: string): string | undefined {
  if (!flake) return undefined;
  const found = flake.roots.map((r) => path.join(r, relative)).find((f) => existsSync(f));
  return path.relative(workspace, found ?? path.join(flake.dir, relative));
}

export function locationFile(
  flake: LocalFlake | undefined,
  workspace: string,
  location: ErrorLocation | undefined,
): string | undefined {
  return location?.relativeFile ? annotationFile(flake, workspace, location.relativeFile) : undefined;
}

/**
 * The 1-based line of flake.nix where an attribute's last name is defined (`name =` or `"name" =`), for pointing a
 * build failure somewhere useful; 1 when it is not found there (defined in another file, or generated).
 */
export function attributeLine(flakeNix: string, attrPath: readonly string[]): number {
  const name = attrPath[attrPath.length - 1];
  if (!name) return 1;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`(^|[\\s{;.])("${escaped}"|${escaped})\\s*=(?!=)`);
  const lines = flakeNix.split('\n');
  const i = lines.findIndex((l) => re.test(l));
  return i < 0 ? 1 : i + 1;
}

interface EventPayload {
  pull_request?: { head?: { sha?: unknown } };
  workflow_run?: { head_sha?: unknown; html_url?: unknown };
}

function readEvent(p: Platform): EventPayload {
  const file = p.env('GITHUB_EVENT_PATH');
  if (!file) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as EventPayload) : {};
  } catch {
    return {};
  }
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * The commit results belong to. On pull_request events GITHUB_SHA is a merge commit nobody looks at: the check goes
 * on the PR's head. A workflow_run publisher takes the head of the run it was triggered by, from GitHub's own event,
 * never from the results file (a fork controls that file's contents).
 */
export function reportSha(p: Platform): string {
  const event = readEvent(p);
  const name = p.env('GITHUB_EVENT_NAME') ?? '';
  const candidate = name.startsWith('pull_request')
    ? event.pull_request?.head?.sha
    : name === 'workflow_run'
      ? event.workflow_run?.head_sha
      : undefined;
  return typeof candidate === 'string' && SHA.test(candidate) ? candidate : p.runner.sha;
}

/** The page of this run (or, for a workflow_run publisher, of the run that built). */
export function detailsUrl(p: Platform): string | undefined {
  if (p.env('GITHUB_EVENT_NAME') === 'workflow_run') {
    const url = readEvent(p).workflow_run?.html_url;
    if (typeof url === 'string' && /^https?:\/\//.test(url)) return url;
  }
  const server = p.env('GITHUB_SERVER_URL') || p.runner.serverUrl;
  const repo = p.env('GITHUB_REPOSITORY') || p.runner.repository;
  const run = p.env('GITHUB_RUN_ID');
  return server && repo && run ? `${server}/${repo}/actions/runs/${run}` : undefined;
}
