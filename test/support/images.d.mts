// Types for images.mjs (plain JS, shared with benchmarks).

/** The fixture flake's image packages and their derivation names. */
export declare const FIXTURE_IMAGES: Record<
  'archive' | 'archiveGz' | 'archiveZstd' | 'stream' | 'n2c' | 'n2cBad' | 'ociLayout',
  string
>;

/**
 * Where each image was copied (`archive`, `n2c`, ...), the store path it had (`archiveStorePath`, ...), and
 * `storeRoot`: a copy of the private store, `<storeRoot>/nix/store/...`, for the store paths image.json names.
 */
export type FixtureImages = Record<
  keyof typeof FIXTURE_IMAGES | `${keyof typeof FIXTURE_IMAGES}StorePath` | 'storeRoot',
  string
>;

/** Builds the fixtures with the host's Nix in a private mount namespace (tmpfs /nix), cached in outDir. */
export declare function buildFixtureImages(outDir: string): Promise<FixtureImages>;
