import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../cache/main.js';
import { ROOT_RESTORE_FLAG } from '../cache/root-restore.js';
import { rootRestoreMain } from '../cache/root-restore-child.js';

// Exit once the phase is done: a restore abandoned at its time limit must not keep the step running.
if (process.argv.includes(ROOT_RESTORE_FLAG)) void rootRestoreMain().then(() => process.exit());
else void runPhase(detectPlatform(process.env, 'cache'), main).then(() => process.exit());
