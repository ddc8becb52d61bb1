/** The oci-push inputs, parsed and validated once (actions/oci-push/action.yml documents each). */
import { InputError } from '../errors.js';
import { mediaTypeFor, resolveLevel } from '../oci/compress-codec.js';
import type { Compression, ImageRef, Platform as OciPlatform } from '../oci/types.js';
import { getDuration, getEnum, getInteger, getList, getSecret, getString } from '../platform/inputs.js';
import type { Platform } from '../platform/types.js';
import { formatReference, parseFullReference, parsePlatform } from './references.js';

export const MODES = ['push', 'index'] as const;
export const COMPRESSIONS = ['gzip', 'zstd', 'none'] as const;
export const MANIFEST_FORMATS = ['oci', 'docker'] as const;
export type PushMode = (typeof MODES)[number];
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number];

/** A flake installable to build (it has a `#`), or a path to read. */
export type ImageInput = { kind: 'flake'; installable: string } | { kind: 'path'; path: string };

export interface IndexSource {
  ref: ImageRef;
  /** Set by an `os/arch[/variant]=` prefix; otherwise read from the image's config. */
  platform?: OciPlatform;
}

export interface Credential {
  username: string;
  password: string;
}

export interface PushInputs {
  mode: PushMode;
  /** Push mode: what to push. Undefined in index mode. */
  image?: ImageInput;
  /** Normalised, without duplicates, in the order given. */
  tags: ImageRef[];
  compression: Compression;
  /** Resolved (the codec default when the input is empty); 0 for `none`. */
  compressionLevel: number;
  manifestFormat: ManifestFormat;
  /** User annotations; '' values remove a default (annotations.ts). */
  annotations: Record<string, string>;
  cacheFrom: ImageRef[];
  concurrency: number;
  /** From `username`/`password`: for the registries in `tags`. */
  credentials?: Credential;
  /** Platform defaults by registry host: ghcr.io with github-token, $CI_REGISTRY with the job's credentials. */
  registryDefaults: Record<string, Credential>;
  sources: IndexSource[];
  platform?: OciPlatform;
  retryBudget: number;
  timeoutMs: number;
}

function parseImage(text: string): ImageInput | undefined {
  if (text === '') return undefined;
  if (/[\r\n]/.test(text))
    throw new InputError(`Input 'image' must be one flake attribute or path; got several lines.`);
  return text.includes('#') ? { kind: 'flake', installable: text } : { kind: 'path', path: text };
}

// Keys: reverse-domain names as the OCI spec recommends, plus the plain names some tools use; no spaces or '='.
const ANNOTATION_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** `key=value` per line; the value keeps spaces and later '='. Blank lines and lines starting with '#' are skipped. */
export function parseAnnotations(text: string, input = 'annotations'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq).trim();
    if (eq < 0 || !ANNOTATION_KEY.test(key))
      throw new InputError(
        `Input '${input}' has the line '${line}'; write one 'key=value' per line, with a key such as org.opencontainers.image.title.`,
      );
    if (key in out) throw new InputError(`Input '${input}' sets '${key}' twice.`);
    const value = line.slice(eq + 1).trim();
    if (key === 'org.opencontainers.image.created' && value !== '' && !RFC3339.test(value))
      throw new InputError(
        `Input '${input}' sets org.opencontainers.image.created to '${value}'; it must be an RFC 3339 time such as 2024-05-01T12:00:00Z.`,
      );
    out[key] = value;
  }
  return out;
}

function uniqueRefs(refs: ImageRef[]): ImageRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const key = formatReference(r);
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

/** `[os/arch[/variant]=]reference`: the platform prefix is optional. */
function parseSource(text: string): IndexSource {
  const eq = text.indexOf('=');
  const ref = parseFullReference(eq < 0 ? text : text.slice(eq + 1), { input: 'sources', digest: true, pinned: true });
  return eq < 0 ? { ref } : { ref, platform: parsePlatform(text.slice(0, eq), 'sources') };
}

/** Credentials the job already has, by registry host; only sent to that host. */
function registryDefaults(p: Platform, githubToken: string): Record<string, Credential> {
  const out: Record<string, Credential> = {};
  if (githubToken) {
    const username = p.env('GITHUB_ACTOR') || 'flake-ci';
    out['ghcr.io'] = { username, password: githubToken };
    // GitHub Enterprise Server serves its container registry at containers.<host> (GITHUB_SERVER_URL: only on GitHub).
    const host = /^https?:\/\/([^/]+)/.exec(p.env('GITHUB_SERVER_URL') ?? '')?.[1]?.toLowerCase();
    if (host && host !== 'github.com') out[`containers.${host}`] = { username, password: githubToken };
  }
  const ciRegistry = p.env('CI_REGISTRY');
  const ciPassword = p.env('CI_REGISTRY_PASSWORD');
  if (ciRegistry && ciPassword) {
    p.setSecret(ciPassword); // the GitLab platform redacts only registered secrets
    out[ciRegistry.toLowerCase()] = { username: p.env('CI_REGISTRY_USER') || 'gitlab-ci-token', password: ciPassword };
  }
  return out;
}

export function parsePushInputs(p: Platform): PushInputs {
  // First: registering secrets before any validation lets an error that quotes another input redact them (GitLab).
  const password = getSecret(p, 'password');
  const githubToken = getSecret(p, 'github-token');
  const defaults = registryDefaults(p, githubToken);
  const username = getString(p, 'username');
  if ((username === '') !== (password === ''))
    throw new InputError(
      `Inputs 'username' and 'password' go together: set both, or neither to use config.json and the platform's defaults.`,
    );

  const mode = getEnum(p, 'mode', MODES, 'push');
  const image = parseImage(getString(p, 'image'));
  const tags = uniqueRefs(getList(p, 'tags').map((t) => parseFullReference(t, { input: 'tags', digest: false })));
  if (tags.length === 0)
    throw new InputError(`Input 'tags' is required: give at least one full reference such as ghcr.io/OWNER/app:1.0.`);

  const compression = getEnum(p, 'compression', COMPRESSIONS, 'gzip');
  const levelText = getString(p, 'compression-level');
  if (levelText !== '' && compression === 'none')
    throw new InputError(`Input 'compression-level' has no effect with 'compression: none'; remove it.`);
  if (levelText !== '' && !/^\d+$/.test(levelText))
    throw new InputError(`Input 'compression-level' must be a whole number; got '${levelText}'.`);
  const compressionLevel = resolveLevel(compression, levelText === '' ? undefined : Number(levelText));

  const manifestFormat = getEnum(p, 'manifest-format', MANIFEST_FORMATS, 'oci');
  const annotations = parseAnnotations(p.getMultilineInput('annotations'));
  if (manifestFormat === 'docker') {
    if (mode === 'push') mediaTypeFor(compression, 'docker'); // throws the InputError naming both fixes
    if (Object.keys(annotations).length > 0)
      throw new InputError(
        `Docker schema 2 manifests have no annotations, but 'annotations' is set. Use 'manifest-format: oci' or remove 'annotations'.`,
      );
  }

  const cacheFrom = uniqueRefs(
    getList(p, 'cache-from').map((t) => parseFullReference(t, { input: 'cache-from', digest: true, pinned: true })),
  );
  const sources = getList(p, 'sources').map(parseSource);
  const platformText = getString(p, 'platform');
  const platform = platformText === '' ? undefined : parsePlatform(platformText, 'platform');

  const timeoutMs = getDuration(p, 'timeout', 60_000);
  if (timeoutMs < 1000) throw new InputError(`Input 'timeout' must be at least 1s; got '${p.getInput('timeout')}'.`);

  if (mode === 'push') {
    if (!image)
      throw new InputError(
        `Input 'image' is required in push mode: a flake attribute such as .#dockerImage, or a path.`,
      );
    if (sources.length > 0)
      throw new InputError(`Input 'sources' is for 'mode: index'; in push mode, give the image in 'image'.`);
  } else {
    if (image)
      throw new InputError(
        `Input 'image' is for 'mode: push'; in index mode, list the per-platform images in 'sources'.`,
      );
    if (sources.length === 0)
      throw new InputError(`'mode: index' needs 'sources': the per-platform images, e.g. the 'refs' of earlier jobs.`);
    if (platform)
      throw new InputError(
        `Input 'platform' is for 'mode: push'; in index mode prefix a 'sources' line with it: linux/arm/v7=<reference>.`,
      );
    if (cacheFrom.length > 0) throw new InputError(`Input 'cache-from' is for 'mode: push'; remove it in index mode.`);
  }

  return {
    mode,
    image,
    tags,
    compression,
    compressionLevel,
    manifestFormat,
    annotations,
    cacheFrom,
    concurrency: getInteger(p, 'concurrency', 4, 1, 32),
    credentials: username ? { username, password } : undefined,
    registryDefaults: defaults,
    sources,
    platform,
    retryBudget: getInteger(p, 'retry-budget', 20, 0, 1000),
    timeoutMs,
  };
}
