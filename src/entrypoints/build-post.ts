import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { post } from '../build/post.js';

void runPhase(detectPlatform(process.env, 'build'), post);
