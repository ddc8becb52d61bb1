/**
 * The manifest annotations oci-push sets: the usual `org.opencontainers.image.*` (source, revision, created) from
 * the CI context, merged under the user's `annotations` input.
 *
 * `created` is chosen to be deterministic: the manifest digest depends on every annotation, and a re-push of the
 * same image from the same commit must give the same digest (or every re-run would move the tags and churn indexes).
 * So it is never the time of the push. In order: the image config's `created` when it is a real time (dockerTools
 * writes 1970-01-01T00:00:01Z unless asked for "now", which says nothing), then SOURCE_DATE_EPOCH (the
 * reproducible-builds convention, set by the user), then the commit time when the CI states it (GitLab's
 * CI_COMMIT_TIMESTAMP; GitHub has no such variable), else no `created` annotation at all: absent is honest, a guess
 * is not.
 */
import type { Platform } from '../platform/types.js';

export const ANNOTATION = {
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  created: 'org.opencontainers.image.created',
} as const;

export interface AnnotationContext {
  /** https://github.com, a GHES URL, or the GitLab instance URL. */
  serverUrl: string;
  /** owner/name, or group/project. */
  repository: string;
  sha: string;
  /** The image config's `created`, as the config has it. */
  configCreated?: string;
  /** SOURCE_DATE_EPOCH, seconds since the epoch, as the environment has it. */
  sourceDateEpoch?: string;
  /** The commit's time when the CI provides it (RFC 3339). */
  commitTime?: string;
}

// Anything before this is a placeholder (the epoch, or the epoch plus a second as dockerTools writes), not a time.
const PLACEHOLDER_BEFORE = Date.UTC(1980, 0, 1);

/** RFC 3339 in UTC with seconds (`2024-05-01T12:00:00Z`), or undefined if `value` is not a usable time. */
export function normaliseTime(value: string | undefined): string | undefined {
  if (!value || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.test(value)) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || ms < PLACEHOLDER_BEFORE) return undefined;
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function fromEpoch(value: string | undefined): string | undefined {
  if (!value || !/^\d+$/.test(value)) return undefined;
  return normaliseTime(new Date(Number(value) * 1000).toISOString());
}

/** See the module comment for the order. */
export function createdTime(ctx: AnnotationContext): string | undefined {
  return normaliseTime(ctx.configCreated) ?? fromEpoch(ctx.sourceDateEpoch) ?? normaliseTime(ctx.commitTime);
}

/** The defaults flake-ci sets; each only when its source is known. */
export function defaultAnnotations(ctx: AnnotationContext): Record<string, string> {
  const out: Record<string, string> = {};
  if (ctx.serverUrl && ctx.repository)
    out[ANNOTATION.source] = `${ctx.serverUrl.replace(/\/+$/, '')}/${ctx.repository}`;
  if (ctx.sha) out[ANNOTATION.revision] = ctx.sha;
  const created = createdTime(ctx);
  if (created) out[ANNOTATION.created] = created;
  return out;
}

/**
 * The defaults overridden by the user's annotations; a user value of '' removes that key. Keys are sorted so the
 * manifest bytes (and digest) do not depend on the order the input listed them in.
 */
export function mergeAnnotations(
  defaults: Record<string, string>,
  user: Record<string, string>,
): Record<string, string> {
  const merged: Record<string, string> = { ...defaults, ...user };
  const out: Record<string, string> = {};
  for (const key of Object.keys(merged).sort()) if (merged[key] !== '') out[key] = merged[key] as string;
  return out;
}

/** The context from the platform, plus the config's `created` once the image has been read. */
export function annotationContext(p: Platform, configCreated?: string): AnnotationContext {
  return {
    serverUrl: p.runner.serverUrl,
    repository: p.runner.repository,
    sha: p.runner.sha,
    configCreated,
    sourceDateEpoch: p.env('SOURCE_DATE_EPOCH'),
    commitTime: p.env('CI_COMMIT_TIMESTAMP'),
  };
}

/** Everything for one manifest: defaults from the context, then the user's. */
export function imageAnnotations(ctx: AnnotationContext, user: Record<string, string>): Record<string, string> {
  return mergeAnnotations(defaultAnnotations(ctx), user);
}
