/** The cache core, shared by every backend (GitHub Actions cache, GitLab cache directory, any Nix store). */
export {
  defaultPrimaryKey,
  entryKey,
  hashKeyFiles,
  hitKind,
  KEY_NAMESPACE,
  restorePrefix,
  type HitKind,
} from './key.js';
export {
  newPaths,
  parsePathList,
  readSnapshot,
  snapshotStore,
  takeSnapshot,
  writeSnapshot,
  type SnapshotRef,
} from './snapshot.js';
export {
  closureOf,
  compileGlob,
  DEFAULT_UPSTREAM_KEYS,
  globMatch,
  isDerivation,
  queryPathInfos,
  selectForSave,
  selectPaths,
  storePathName,
  type SaveSelectionInput,
  type Selection,
  type SelectOptions,
} from './select.js';
export {
  exportBinaryCache,
  importBinaryCache,
  ImportError,
  narinfoPaths,
  type Compression,
  type ExportOptions,
  type ExportResult,
  type ImportOptions,
  type ImportResult,
} from './binary-cache.js';
export { pruneBinaryCache, type PruneResult } from './prune.js';
export { parseNarinfo, readNarinfos, type Narinfo } from './narinfo.js';
export { secretKeyName, validatePublicKeys, validateSecretKey, withSecretKeyFile } from './signing.js';
export {
  restoreFromStore,
  saveToStore,
  substituterConfig,
  validateStoreUrl,
  type StoreRestoreOptions,
  type StoreSaveOptions,
  type StoreSaveResult,
} from './store-backend.js';
export {
  failOpen,
  failureKind,
  failureMessage,
  type FailOpenOptions,
  type FailOpenResult,
  type FailureKind,
} from './fail-open.js';
