/**
 * The `store` backend as a Backend: restore adds the store as a substituter for later steps (nothing is copied, so
 * Nix fetches only what a build needs); save pushes the selected paths with `nix copy` (see store-backend.ts).
 */
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import type { Backend, RestoreRequest, RestoreResult, SaveRequest, SaveResult } from './backend.js';
import { restoreFromStore, saveToStore } from './store-backend.js';

export function storeBackend(url: string): Backend {
  return {
    name: 'store',
    async restore(p: Platform, _nix: NixCommand, req: RestoreRequest): Promise<RestoreResult> {
      // A store of the user's choosing is never trusted blindly: without keys Nix checks its own trusted keys.
      restoreFromStore(p, { url, trustedPublicKeys: req.trustedPublicKeys, trustSource: false });
      p.log('info', `Later steps substitute from ${url} (paths are fetched when a build needs them).`);
      return { pathsRestored: 0, bytesDown: 0 };
    },
    async save(p: Platform, nix: NixCommand, req: SaveRequest): Promise<SaveResult> {
      if (req.paths.length === 0) return { pathsSaved: 0, bytesUp: 0, entries: 0 };
      const res = await saveToStore(nix, req.paths, { url, signingKey: req.signingKey, tempDir: req.tempDir });
      const uploaded = res.uploaded ?? req.paths.length;
      p.log('info', `Pushed ${req.paths.length} store paths (and what they need) to ${url}: ${uploaded} uploaded.`);
      return { pathsSaved: uploaded, bytesUp: 0, entries: 0 };
    },
  };
}
