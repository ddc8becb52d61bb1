/** install-nix post phase: stop the daemon this job started and remove the token file. Never fails the job. */
import { rm } from 'node:fs/promises';
import { loadState } from '../platform/state.js';
import type { Platform } from '../platform/types.js';
import { stopDaemon } from './daemon.js';
import type { InstallState } from './main.js';
import { Privilege } from './privilege.js';

export async function post(p: Platform): Promise<void> {
  const state = loadState<InstallState>(p);
  if (!state) return; // main failed before saving state: nothing to undo
  if (state.secretsFile) await rm(state.secretsFile, { force: true });
  if (typeof state.daemonPid === 'number') {
    try {
      await stopDaemon(p, await Privilege.detect(p), state.daemonPid);
    } catch (e) {
      p.log('warning', `Could not stop nix-daemon: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
