import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../cache/main.js';

// Exit once the phase is done: a restore abandoned at its time limit must not keep the step running.
void runPhase(detectPlatform(process.env, 'cache'), main).then(() => process.exit());
