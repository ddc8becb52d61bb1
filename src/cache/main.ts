/**
 * cache main phase: restore from the backend, then list the store. The listing is taken AFTER the restore, so what
 * was restored is not "new" and only what the job itself adds is saved by the post step. Only the file holding the
 * listing goes into the state (never a secret: keys and tokens are read again from the inputs in post).
 */
import { mkdir, mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage } from '../errors.js';
import { saveState } from '../platform/state.js';
import type { Platform } from '../platform/types.js';
import type { Backend, RestoreResult } from './backend.js';
import { withTimeLimit } from './actions-cache-glue.js';
import { failOpen } from './fail-open.js';
import { mib } from './github-backend.js';
import { parseCacheInputs, type CacheInputs } from './inputs.js';
import { defaultPrimaryKey, hitKind, restorePrefix, type HitKind } from './key.js';
import { restoreAsRoot, RootProcessFailed, rootRestoreUsable } from './root-restore.js';
import { chooseBackend, entrySuffix, resolveNix } from './runner-glue.js';
import { snapshotFromSet, takeSnapshot } from './snapshot.js';

export interface CacheState {
  backend: Backend['name'];
  /** Directory of the nix used by main, so post lists the same store with the same Nix. */
  nixBin: string;
  /** Scratch space of this action (under the runner's temp dir), removed by post. */
  tempDir: string;
  /** The store listing taken after the restore; absent when it failed (post then saves nothing). */
  snapshotFile?: string;
  primaryKey: string;
  entrySuffix: string;
  hit: HitKind;
  restoredKey: string;
  /** The backend's memory for save (GitHub: the restored entry chain). */
  memo?: unknown;
}

/** The key and the restore prefixes: the default key falls back to any earlier lock file on this OS/arch. */
export async function cacheKeys(
  p: Platform,
  inputs: CacheInputs,
): Promise<{ primaryKey: string; restoreKeys: string[] }> {
  const { os, arch, workspace } = p.runner;
  if (inputs.key !== '') return { primaryKey: inputs.key, restoreKeys: inputs.restoreKeys };
  const primaryKey = await defaultPrimaryKey({ os, arch, workspace, keyFiles: inputs.keyFiles });
  return { primaryKey, restoreKeys: inputs.restoreKeys.length > 0 ? inputs.restoreKeys : [restorePrefix(os, arch)] };
}

export async function main(p: Platform): Promise<void> {
  const inputs = parseCacheInputs(p);
  const backend = chooseBackend(p, inputs);
  const nix = await resolveNix(p);
  const { primaryKey, restoreKeys } = await cacheKeys(p, inputs);
  await mkdir(p.runner.temp, { recursive: true });
  const tempDir = await mkdtemp(path.join(p.runner.temp, 'flake-ci-cache-'));
  const state: CacheState = {
    backend: backend.name,
    nixBin: nix.bin,
    tempDir,
    primaryKey,
    entrySuffix: entrySuffix(p),
    hit: 'miss',
    restoredKey: '',
  };
  // Saved before anything can fail, so post always removes the scratch directory.
  saveState(p, state);

  const restored = await p.group(`Restore the Nix store (${backend.name} cache)`, () =>
    failOpen(
      p,
      {
        what: 'Restoring the Nix store cache',
        skipped: 'the job continues without cached store paths',
        strict: inputs.strict,
      },
      withTimeLimit(async (signal) => {
        const req = {
          primaryKey,
          restoreKeys,
          trustedPublicKeys: inputs.trustedPublicKeys,
          // Our own cache (GitHub/GitLab) is trusted without keys; a store of the user's choosing never blindly.
          trustSource: inputs.trustedPublicKeys.length === 0 && backend.name !== 'store',
          tempDir,
          signal,
        };
        // A store behind the daemon that this user cannot write: as root when sudo allows (root-restore.ts). Should
        // the root process itself fail (not the restore it ran), the restore is done here, through Nix.
        if (backend.name === 'github' && (await rootRestoreUsable(p, nix, inputs.sudo))) {
          try {
            return await restoreAsRoot(p, nix, req);
          } catch (e) {
            if (!(e instanceof RootProcessFailed) || signal.aborted) throw e;
            p.log('warning', `${errorMessage(e)}; restoring through Nix instead.`);
          }
        }
        return backend.restore(p, nix, req);
      }, inputs.timeoutMs),
    ),
  );
  const r: RestoreResult = restored.ok ? restored.value : { pathsRestored: 0, bytesDown: 0 };
  // store: nothing is restored up front, the store serves later steps on demand.
  state.hit = backend.name === 'store' ? 'partial' : hitKind(r.matchedKey, primaryKey);
  state.restoredKey = r.matchedKey ?? '';
  state.memo = r.memo;

  const snap = await failOpen(
    p,
    { what: 'Listing the store after the restore', skipped: 'the post step saves nothing', strict: inputs.strict },
    // The restore may already know every valid path (it listed the store before and knows what it added).
    () => (r.validAfter ? snapshotFromSet(r.validAfter, tempDir) : takeSnapshot(nix, tempDir)),
  );
  if (snap.ok) state.snapshotFile = snap.value.file;
  saveState(p, state);

  p.setOutput('hit', state.hit);
  p.setOutput('restored-key', state.restoredKey);
  p.setOutput('paths-restored', String(r.pathsRestored));
  p.setOutput('bytes-down', String(r.bytesDown));
  p.log(
    'info',
    `Cache ${state.hit}${state.restoredKey ? ` (${state.restoredKey})` : ''}: ${r.pathsRestored} store paths ` +
      `restored, ${mib(r.bytesDown)} downloaded; key ${primaryKey}.`,
  );
  await p.appendSummary(
    `### Nix store cache (${backend.name})\n\n| key | hit | restored key | paths restored | downloaded |\n` +
      `|---|---|---|---|---|\n| \`${primaryKey}\` | ${state.hit} | ${state.restoredKey ? `\`${state.restoredKey}\`` : '-'} | ` +
      `${r.pathsRestored} | ${mib(r.bytesDown)} |\n`,
  );
}
