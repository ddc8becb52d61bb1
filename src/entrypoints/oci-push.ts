import { availableParallelism } from 'node:os';
import { detectPlatform } from '../platform/index.js';
import { runPhase } from '../platform/run.js';
import { main } from '../oci-push/main.js';

// The first statement: imports only load code, and the libuv threadpool (where zstd layers are compressed; gzip has
// its own workers) reads this when the first job starts it. Cores + 2 threads, as many as compress-pool.ts keeps busy.
process.env.UV_THREADPOOL_SIZE ??= String(availableParallelism() + 2);
void runPhase(detectPlatform(process.env, 'oci-push'), main);
