import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../build/main.js';

void runPhase(detectPlatform(process.env, 'build'), main);
