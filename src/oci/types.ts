/**
 * Shared shapes for OCI work: what an image reader yields, what the registry client takes, what a push reports.
 * Readers stream: layers arrive one at a time, in the order the source has them, and are consumed before the next.
 */

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type Compression = 'gzip' | 'zstd' | 'none';

/** `sha256:<64 hex>` */
export type Digest = string;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/**
 * One layer as a reader presents it. Exactly one of `raw` (an uncompressed tar stream to hash and compress) or
 * `blob` (bytes already in their final compressed form, e.g. from an OCI layout or a nix2container `layer-path`) is
 * set. `diffId` is known up front when the source names it (streamLayeredImage names layers by diff_id,
 * nix2container lists it), which lets a push skip a layer the registry already has without reading it.
 */
export interface SourceLayer {
  index: number;
  /** What the layer is called in the source (tar entry, store path list), for messages. */
  name: string;
  diffId?: Digest;
  /** Expected blob digest when the source states it (nix2container `digest`, OCI layout). */
  digest?: Digest;
  size?: number;
  raw?: AsyncIterable<Buffer>;
  /**
   * The raw tar again, readable by position, when the source stores it as one range of a file: the layer pipeline
   * then reads straight into its own buffers (file-source.ts). `raw` reads the same bytes; use one or the other.
   * Reading it does not hold up the next layer: layers() can go on at once.
   */
  range?: RawRange;
  blob?: { mediaType: string; open(): AsyncIterable<Buffer> };
  /** Called when the pusher decides not to read this layer (skipped): the reader drains or closes it. */
  skip(): Promise<void>;
  /**
   * Set when the source stores this layer as a reference to an earlier one (docker save writes identical layers once
   * and links the others): the index of the layer holding the bytes. Neither `raw` nor `blob` is set then, and
   * `finish().order` already points at that earlier index.
   */
  sameAs?: number;
}

/** A layer's bytes by position: `read` fills `into` from byte `at` of the layer, fewer bytes only at its end. */
export interface RawRange {
  size: number;
  read(into: Buffer, offset: number, length: number, at: number): Promise<number>;
}

/** The image config JSON (only the parts we read) plus its raw bytes (pushed as they are). */
export interface ImageConfig {
  raw: Buffer;
  architecture: string;
  os: string;
  variant?: string;
  diffIds: Digest[];
}

/**
 * What an image reader produces. `layers()` yields layers in source order; `config()` resolves once the source has
 * given its config (for docker-archive streams that is at the end, after the layers).
 */
export interface ImageSource {
  format: 'docker-archive' | 'docker-archive-stream' | 'nix2container' | 'oci-layout';
  layers(): AsyncIterable<SourceLayer>;
  /** Layer order of the final image, as indexes into what layers() yielded (manifest.json's order). */
  finish(): Promise<{ config: ImageConfig; order: number[] }>;
  close(): Promise<void>;
}

/** A parsed reference: registry host (with port), repository, and a tag or digest. */
export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

/** Per-layer outcome for outputs and the summary. */
export interface LayerReport {
  digest: Digest;
  diffId: Digest;
  size: number;
  /** uploaded: bytes sent; mounted: cross-repository mount; skipped: already in the target repository. */
  action: 'uploaded' | 'mounted' | 'skipped';
  bytes: number;
  seconds: number;
}
