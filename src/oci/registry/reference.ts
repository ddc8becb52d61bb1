/**
 * Image references, one grammar (distribution's reference package) read under a policy: as docker and skopeo read
 * them (`[host[:port]/]path[:tag][@digest]`, Docker Hub and `latest` by default), or as an action input demands (a
 * registry required, a digest allowed or refused, a tag or digest required). Errors name the reference, because users
 * paste these from many places, and for an input the input too.
 */
import { InputError } from '../../errors.js';
import type { Digest, ImageRef } from '../types.js';

export const DOCKER_HUB = 'docker.io';
/** docker.io is a name, not a host: its API lives here. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

// distribution/reference's grammar: lower-case components joined by one '.', one or two '_', or any run of '-'.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$/;
/** Names of Docker Hub: the registry, its old index name, and its API host. */
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', DOCKER_HUB_API]);

export function isDigest(value: string): value is Digest {
  return DIGEST.test(value);
}

/** The host the registry's HTTP API is on (docker.io is served by registry-1.docker.io). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === 'index.docker.io' ? DOCKER_HUB_API : registry;
}

/** Loopback registries default to plain HTTP (like docker's insecure-registries default for 127.0.0.0/8). */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.split(':')[0];
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

/**
 * How strictly to read a reference. The default is docker's and skopeo's reading (for references from config files
 * and registries); action inputs use a stricter one, with errors that name the input (see `FULL_REFERENCE`).
 */
export interface ReferencePolicy {
  /** The action input the reference came from: errors then name it and show what a full reference looks like. */
  input?: string;
  /** `docker-hub`: a reference without a host is on Docker Hub, as docker reads it. `required`: a host must be given. */
  registry: 'docker-hub' | 'required';
  /** `latest`: no tag and no digest means `latest`. `optional`: then none (push by digest). `pinned`: one is needed. */
  tag: 'latest' | 'optional' | 'pinned';
  /** `any`: sha256 or sha512. `sha256`: only sha256. `refused`: none allowed (a push target). */
  digest: 'any' | 'sha256' | 'refused';
}

export const DOCKER_REFERENCE: ReferencePolicy = { registry: 'docker-hub', tag: 'latest', digest: 'any' };

/**
 * Action inputs: a registry is required, because guessing Docker Hub for `app:1.0` could publish a private image to
 * a public registry; no `latest` is made up; digests are sha256.
 */
export function fullReference(input: string, opts: { digest: boolean; pinned?: boolean }): ReferencePolicy {
  return {
    input,
    registry: 'required',
    tag: opts.pinned ? 'pinned' : 'optional',
    digest: opts.digest ? 'sha256' : 'refused',
  };
}

const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** Each way a reference can be wrong, worded for a reference in general and for the action input it came from. */
const WHY = {
  empty: () => ['it is empty', 'names no registry (Docker Hub is never assumed)'],
  scheme: () => ['remove the URL scheme (write host/repository:tag)', 'starts with a URL scheme; remove it'],
  digest: (d: string) => [
    `'${d}' is not a digest (sha256: followed by 64 lower-case hex digits)`,
    `has '@${d}', which is not a digest (sha256: and 64 lower-case hex digits)`,
  ],
  pushDigest: (d: string) => [
    `'@${d}': a digest can be read but not pushed to`,
    `names a digest; a digest can be read but not pushed to, so drop '@${d}' and give a tag (or no tag, to push by digest)`,
  ],
  tag: (t: string) => [
    `'${t}' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)`,
    `has the tag '${t}', which is not 1-128 of letters, digits, '_', '.', '-'`,
  ],
  noRegistry: () => ['it names no registry', 'names no registry (Docker Hub is never assumed)'],
  host: (h: string) => [`'${h}' is not a valid registry host`, `has '${h}', which is not a registry host[:port]`],
  noRepository: () => ['the repository name is missing', ''],
  long: () => ['the repository name is longer than 255 characters', 'is longer than 255 characters before the tag'],
  upper: (r: string) => [`repository names must be lower-case: use '${r.toLowerCase()}'`, ''],
  component: (c: string) => [
    `'${c}' is not a valid repository path component (lower-case letters, digits, '.', '_', '-')`,
    '',
  ],
  unpinned: () => ['it names no tag or digest to read', 'names no tag or digest to read'],
} satisfies Record<string, (arg: string) => [string, string]>;

/**
 * Parses a reference: `[docker://][host[:port]/]path[:tag][@digest]`. A first component counts as a host when it has
 * a dot or a port or is `localhost`. Docker Hub's aliases become `docker.io`, with `library/` for one-component names,
 * so one repository written two ways is still one. With both a tag and a digest, the digest is what a registry serves
 * and the tag is kept for the push.
 */
export function parseReference(text: string, policy: ReferencePolicy = DOCKER_REFERENCE): ImageRef {
  const strict = policy.input !== undefined;
  const bad = (why: [string, string], path?: string) => {
    // An input's repository errors state the whole rule once rather than the first component that broke it.
    const inputWhy =
      why[1] ||
      `has the repository '${path}', which must be lower-case path components of letters and digits separated by '.', '_', '__' or '-'`;
    return new InputError(
      strict
        ? `Input '${policy.input}' holds '${text}', which ${inputWhy}. Write a full reference such as 'ghcr.io/OWNER/app:1.0' or 'docker.io/USER/app:latest'.`
        : `Invalid image reference '${text}': ${why[0]}`,
    );
  };
  const ref = text.trim().replace(/^docker:\/\//, '');
  if (!ref) throw bad(WHY.empty());
  if (/^[a-z]+:\/\//i.test(ref)) throw bad(WHY.scheme());

  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!(policy.digest === 'any' ? isDigest(digest) : SHA256.test(digest))) throw bad(WHY.digest(digest));
    if (policy.digest === 'refused') throw bad(WHY.pushDigest(digest));
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(WHY.tag(tag));
  }

  const slash = rest.indexOf('/');
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash >= 0 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!HOST.test(registry)) throw bad(WHY.host(registry));
    registry = registry.toLowerCase();
    if (DOCKER_HUB_ALIASES.has(registry)) registry = DOCKER_HUB;
  } else if (policy.registry === 'required') throw bad(WHY.noRegistry());
  if (registry === DOCKER_HUB && repository && !repository.includes('/')) repository = `library/${repository}`;

  if (!repository) throw bad(WHY.noRepository(), repository);
  for (const component of repository.split('/')) {
    if (COMPONENT.test(component)) continue;
    if (COMPONENT.test(component.toLowerCase())) throw bad(WHY.upper(repository), repository);
    throw bad(WHY.component(component), repository);
  }
  if ((strict ? registry.length + 1 : 0) + repository.length > 255) throw bad(WHY.long());

  if (tag === undefined && digest === undefined) {
    if (policy.tag === 'pinned') throw bad(WHY.unpinned());
    if (policy.tag === 'latest') tag = 'latest';
  }
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The canonical string form: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
