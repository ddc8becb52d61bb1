/**
 * Full image references as the oci-push inputs take them: `registry[:port]/repository[:tag][@digest]`, with the
 * grammar of the distribution project's reference package. Unlike `docker push`, a registry is required: guessing
 * Docker Hub for `app:1.0` could publish a private image to a public registry, so the user writes `docker.io/...`.
 * Docker Hub's aliases are normalised (`index.docker.io` -> `docker.io`, `app` -> `library/app`) so that one
 * repository written two ways is still pushed once.
 */
import { InputError } from '../errors.js';
import type { Digest, ImageRef, Platform as OciPlatform } from '../oci/types.js';

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])`;
const REGISTRY = new RegExp(`^${HOST}(?::[0-9]{1,5})?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export interface ParseOptions {
  /** The input named in errors. */
  input: string;
  /** Whether `@sha256:...` is allowed (a pull source) or refused (a push target). */
  digest: boolean;
  /** Whether a reference must name a tag or digest (something to read). */
  pinned?: boolean;
}

// One canonical text form for the whole suite: the registry client's.
export { formatReference } from '../oci/registry/reference.js';

/** Parses one full reference; every error names the input, the value and what a valid one looks like. */
export function parseFullReference(text: string, opts: ParseOptions): ImageRef {
  const bad = (why: string) =>
    new InputError(
      `Input '${opts.input}' holds '${text}', which ${why}. Write a full reference such as 'ghcr.io/OWNER/app:1.0' or 'docker.io/USER/app:latest'.`,
    );
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest))
      throw bad(`has '@${digest}', which is not a digest (sha256: and 64 lower-case hex digits)`);
    if (!opts.digest)
      throw bad(
        `names a digest; a digest can be read but not pushed to, so drop '@${digest}' and give a tag (or no tag, to push by digest)`,
      );
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  // Docker's rule: the first component is a registry when it has a dot or a port, or is localhost.
  if (slash < 0 || !(first.includes('.') || first.includes(':') || first === 'localhost'))
    throw bad('names no registry (Docker Hub is never assumed)');
  if (!REGISTRY.test(first)) throw bad(`has '${first}', which is not a registry host[:port]`);
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`has the tag '${tag}', which is not 1-128 of letters, digits, '_', '.', '-'`);
  }
  const components = path.split('/');
  if (path === '' || !components.every((c) => PATH_COMPONENT.test(c)))
    throw bad(
      `has the repository '${path}', which must be lower-case path components of letters and digits separated by '.', '_', '__' or '-'`,
    );
  if (opts.pinned && !tag && !digest) throw bad('names no tag or digest to read');
  let registry = first.toLowerCase();
  if (DOCKER_HUB.has(registry)) {
    registry = 'docker.io';
    if (components.length === 1) path = `library/${path}`;
  }
  if (registry.length + 1 + path.length > 255) throw bad('is longer than 255 characters before the tag');
  const ref: ImageRef = { registry, repository: path };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

const PLATFORM_PART = /^[a-z0-9][a-z0-9._-]*$/;

/** `os/arch[/variant]`, e.g. `linux/arm64`, `linux/arm/v7`. */
export function parsePlatform(text: string, input: string): OciPlatform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PLATFORM_PART.test(p)))
    throw new InputError(
      `Input '${input}' holds the platform '${text}'; write it as os/arch or os/arch/variant, e.g. linux/arm64 or linux/arm/v7.`,
    );
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: OciPlatform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}
