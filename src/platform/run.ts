/**
 * The top-level wrapper every entry point uses: runs the phase, turns any throw (including non-Error values) into a
 * failed step with a message for the user, and always flushes the platform's reports.
 */
import { InputError, TransientError, errorMessage } from '../errors.js';
import type { Platform } from './types.js';

export async function runPhase(platform: Platform, phase: (p: Platform) => Promise<void>): Promise<void> {
  try {
    await phase(platform);
  } catch (e) {
    if (!(e instanceof InputError) && !(e instanceof TransientError) && e instanceof Error && e.stack) {
      platform.log('debug', e.stack);
    }
    platform.setFailed(errorMessage(e));
  } finally {
    try {
      await platform.finish();
    } catch (e) {
      platform.log('warning', `Could not write reports: ${errorMessage(e)}`);
    }
  }
}
