import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { post } from '../cache/post.js';

// Exit once the phase is done: a save abandoned at its time limit must not keep the step running.
void runPhase(detectPlatform(process.env, 'cache'), post).then(() => process.exit());
