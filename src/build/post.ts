/**
 * build post phase: remove what setupBuilders wrote (the builders SSH key). cleanupBuilders finds it from its own
 * state or by name in the temp directory, does nothing when there is nothing, and never throws.
 */
import type { Platform } from '../platform/types.js';
import { cleanupBuilders } from './builders.js';

export async function post(p: Platform): Promise<void> {
  await cleanupBuilders(p);
}
