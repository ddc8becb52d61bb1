import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../cache/main.js';
import { isRootRestore, rootRestoreMain } from '../cache/root-restore-child.js';

// Exit once the phase is done: a restore abandoned at its time limit must not keep the step running. Started by the
// restore itself through sudo (cache/root-restore.ts), the bundle is that restore's root side instead.
const phase = isRootRestore(process.argv) ? rootRestoreMain() : runPhase(detectPlatform(process.env, 'cache'), main);
void phase.then(() => process.exit());
