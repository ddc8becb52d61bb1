import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { post } from '../install-nix/post.js';

void runPhase(detectPlatform(process.env, 'install-nix'), post);
