/**
 * Image references as docker and skopeo read them: `[host[:port]/]path[:tag][@digest]`. A first component counts as
 * a host when it has a dot or a port or is `localhost`, otherwise the image is on Docker Hub (`docker.io`, with
 * `library/` for one-component names). Errors name the reference, because users paste these from many places.
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
 * Parses a reference. A reference with neither tag nor digest gets the tag `latest`, as docker does; with both, the
 * digest is what a registry serves and the tag is kept for the push.
 */
export function parseReference(input: string): ImageRef {
  const ref = input.trim().replace(/^docker:\/\//, '');
  const bad = (why: string) => new InputError(`Invalid image reference '${input}': ${why}`);
  if (!ref) throw bad('it is empty');
  if (/^[a-z]+:\/\//i.test(ref)) throw bad('remove the URL scheme (write host/repository:tag)');

  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(`'${digest}' is not a digest (sha256: followed by 64 lower-case hex digits)`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`'${tag}' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)`);
  }

  const slash = rest.indexOf('/');
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash >= 0 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!HOST.test(registry)) throw bad(`'${registry}' is not a valid registry host`);
    registry = registry.toLowerCase();
    if (registry === 'index.docker.io') registry = DOCKER_HUB;
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  if (!repository) throw bad('the repository name is missing');
  if (repository.length > 255) throw bad('the repository name is longer than 255 characters');
  for (const component of repository.split('/')) {
    if (COMPONENT.test(component)) continue;
    if (COMPONENT.test(component.toLowerCase()))
      throw bad(`repository names must be lower-case: use '${repository.toLowerCase()}'`);
    throw bad(`'${component}' is not a valid repository path component (lower-case letters, digits, '.', '_', '-')`);
  }

  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The canonical string form: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
