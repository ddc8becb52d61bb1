/**
 * cache post phase: save what the job added, then (purge: true) delete older GitHub entries. Bounded by `timeout`
 * and fail-open: a cache problem is a warning, never a failed job, unless `strict`. The entry point exits as soon
 * as this returns, so an operation abandoned at the time limit cannot keep the step alive; the time limit also aborts
 * the work itself (withTimeLimit), and @actions/cache's upload, which cannot be cancelled, ends with the process.
 * The outputs `paths-saved` and `bytes-up` are set here, where saving happens: no later step of the job can read them
 * (action.yml says so); the job summary and, on GitLab, the dotenv report show them.
 */
import { rm } from 'node:fs/promises';
import { NixCommand } from '../nix/command.js';
import { loadState } from '../platform/state.js';
import type { Platform } from '../platform/types.js';
import type { SaveResult } from './backend.js';
import { applyBudget } from './budget-glue.js';
import { withTimeLimit } from './actions-cache-glue.js';
import { failOpen } from './fail-open.js';
import { asMemo, mib } from './github-backend.js';
import { parseCacheInputs, type CacheInputs } from './inputs.js';
import { entryKey, restorePrefix } from './key.js';
import type { CacheState } from './main.js';
import { purgeCaches } from './purge.js';
import { chooseBackend, readOnlyReason } from './runner-glue.js';
import { DEFAULT_UPSTREAM_KEYS, selectForSave } from './select.js';
import { secretKeyName } from './signing.js';
import { newPaths, readSnapshot, snapshotStore } from './snapshot.js';

const NOTHING: SaveResult = { pathsSaved: 0, bytesUp: 0, entries: 0 };

/** Why auto-save does not save in this job, or undefined. */
async function skipReason(p: Platform, inputs: CacheInputs, state: CacheState): Promise<string | undefined> {
  if (inputs.save === 'never') return 'save: never';
  if (inputs.save === 'always' || state.backend === 'gitlab') return undefined;
  const readOnly = await readOnlyReason(p);
  if (readOnly) return readOnly;
  if (state.backend === 'store' && inputs.signingKey === '' && inputs.trustedPublicKeys.length > 0)
    return 'no signing-key was given (secrets are not passed to pull requests from forks), and readers of the store require signatures';
  return undefined;
}

async function save(p: Platform, inputs: CacheInputs, state: CacheState, signal?: AbortSignal): Promise<SaveResult> {
  const skip = await skipReason(p, inputs, state);
  if (skip) {
    p.log('info', `Not saving the Nix store cache: ${skip}.`);
    return NOTHING;
  }
  if (!state.snapshotFile) {
    p.log('warning', 'Not saving the Nix store cache: the main step could not list the store.');
    return NOTHING;
  }
  const backend = chooseBackend(p, { backend: state.backend, storeUrl: inputs.storeUrl });
  const nix = await NixCommand.detect(p, state.nixBin);
  const fresh = newPaths(await readSnapshot(state.snapshotFile), await snapshotStore(nix));
  // For a store, paths signed by its keys came from it (or were pushed to it before): nothing to push again.
  const ownKeys =
    state.backend === 'store'
      ? [...inputs.trustedPublicKeys, ...(inputs.signingKey ? [secretKeyName(inputs.signingKey)] : [])]
      : [];
  const selection = await selectForSave(nix, {
    newPaths: fresh,
    explicit: inputs.paths,
    upstreamKeys: [...DEFAULT_UPSTREAM_KEYS, ...inputs.upstreamKeys, ...ownKeys],
    include: inputs.include,
    exclude: inputs.exclude,
  });
  const s = selection.skipped;
  p.log(
    'info',
    `${fresh.length} store paths were added during the job; ${selection.paths.length} selected to save (left out: ` +
      `${s.upstream} served upstream, ${s.derivations} derivations, ${s.excluded} excluded).`,
  );
  let paths = selection.paths;
  if (inputs.gcMaxStoreSize !== undefined) {
    const fitted = await applyBudget(nix, paths, inputs.gcMaxStoreSize);
    if (fitted.dropped.length > 0)
      p.log(
        'warning',
        `gc-max-store-size (${mib(inputs.gcMaxStoreSize)}): ${fitted.dropped.length} of the new paths (largest ` +
          `first, with what references them) are not saved; ${paths.length - fitted.dropped.length} are (${mib(fitted.bytes)}).`,
      );
    paths = fitted.kept;
  }
  if (inputs.save === 'auto' && state.hit === 'exact' && paths.length === 0) {
    p.log('info', 'Not saving the Nix store cache: the exact key was restored and nothing new was added.');
    return NOTHING;
  }
  return backend.save(p, nix, {
    primaryKey: state.primaryKey,
    entrySuffix: state.entrySuffix,
    paths,
    signingKey: inputs.signingKey || undefined,
    tempDir: state.tempDir,
    memo: state.memo,
    maxBytes: inputs.maxSize,
    signal,
  });
}

/** Entries of this key family: the first restore prefix (default `flake-ci-nix-<os>-<arch>-`), else `<key>-`. */
function purgePrefix(p: Platform, inputs: CacheInputs, state: CacheState): string {
  if (inputs.restoreKeys[0]) return inputs.restoreKeys[0];
  return inputs.key === '' ? restorePrefix(p.runner.os, p.runner.arch) : `${state.primaryKey}-`;
}

export async function post(p: Platform): Promise<void> {
  const state = loadState<CacheState>(p) as CacheState | undefined;
  if (!state || typeof state.tempDir !== 'string') {
    p.log('debug', 'The main step saved no state: nothing to save.');
    return;
  }
  const started = Date.now();
  try {
    const inputs = parseCacheInputs(p);
    const saved = await p.group('Save the Nix store cache', () =>
      failOpen(
        p,
        {
          what: 'Saving the Nix store cache',
          skipped: 'nothing was saved; the next job rebuilds what this one built',
          strict: inputs.strict,
        },
        withTimeLimit((signal) => save(p, inputs, state, signal), inputs.timeoutMs),
      ),
    );
    const res = saved.ok ? saved.value : NOTHING;
    p.setOutput('paths-saved', String(res.pathsSaved));
    p.setOutput('bytes-up', String(res.bytesUp));
    let purged = '';
    if (inputs.purge && state.backend === 'github') {
      const purgeMs = Math.max(5000, inputs.timeoutMs - (Date.now() - started));
      // This run's own entry, even when the save gave up at its time limit (the upload may still have landed).
      const created = entryKey(state.primaryKey, state.entrySuffix);
      const result = await failOpen(
        p,
        { what: 'Purging older cache entries', skipped: 'no entry was deleted', strict: inputs.strict },
        // Octokit's own signal bounds each request; this bounds the whole purge.
        withTimeLimit(
          () =>
            purgeCaches(p, {
              token: inputs.githubToken,
              apiUrl: p.env('GITHUB_API_URL') || 'https://api.github.com',
              repository: p.runner.repository,
              ref: p.env('GITHUB_REF'),
              prefix: purgePrefix(p, inputs, state),
              maxAgeDays: inputs.purgeMaxAgeDays,
              keepLast: inputs.purgeKeepLast,
              protect: new Set([...asMemo(state.memo).chain, state.restoredKey, created]),
              timeoutMs: purgeMs,
            }),
          purgeMs,
        ),
      );
      if (result.ok) {
        purged = ` | ${result.value.deleted.length} of ${result.value.listed}`;
        p.log('info', `Purged ${result.value.deleted.length} of ${result.value.listed} cache entries.`);
        for (const e of result.value.deleted) p.log('debug', `Deleted cache entry ${e.id} (${e.key}).`);
      }
    } else if (inputs.purge) {
      p.log('info', `purge: true applies to the GitHub cache only; backend ${state.backend} has nothing to purge.`);
    }
    await p.appendSummary(
      `| paths saved | uploaded | entries created${purged ? ' | purged' : ''} |\n|---|---|---${purged ? '|---' : ''}|\n` +
        `| ${res.pathsSaved} | ${mib(res.bytesUp)} | ${res.entries}${purged} |\n`,
    );
  } finally {
    await rm(state.tempDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
