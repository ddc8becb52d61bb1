import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../install-nix/main.js';

void runPhase(detectPlatform(process.env, 'install-nix'), main);
