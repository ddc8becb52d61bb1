/**
 * Image references and platforms as the oci-push inputs take them. References are full ones,
 * `registry[:port]/repository[:tag][@digest]`: the one reference grammar of the registry client read under the policy
 * for action inputs (a registry is required, Docker Hub is never assumed; see `fullReference`).
 */
import { InputError } from '../errors.js';
import { fullReference, parseReference } from '../oci/registry/reference.js';
import type { ImageRef, Platform as OciPlatform } from '../oci/types.js';

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
  return parseReference(text, fullReference(opts.input, opts));
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
