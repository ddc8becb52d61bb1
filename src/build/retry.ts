/**
 * Retrying infrastructure failures only. A builder that exits non-zero failed deterministically as far as Nix can
 * tell, and building it again would only repeat the failure at the cost of its build time; a timeout, a killed
 * builder or a lost remote machine says nothing about the derivation. An attribute that failed for such a reason and
 * then built is reported `flaky`, so the reviewer sees it passed but should not trust it blindly.
 */
import type { AttemptOutcome, AttemptStatus, BuildTarget } from './attribution.js';

export type FinalStatus = AttemptStatus | 'flaky';

export interface RetriedOutcome extends Omit<AttemptOutcome, 'status'> {
  status: FinalStatus;
  /** Build attempts made for this attribute (1 without retries). */
  attempts: number;
  /** The infrastructure failures that led to retries, oldest first. */
  previousErrors?: string[];
}

export type BuildAttempt = (targets: readonly BuildTarget[], attempt: number) => Promise<AttemptOutcome[]>;

export async function buildWithRetries(
  targets: readonly BuildTarget[],
  retries: number,
  attempt: BuildAttempt,
): Promise<RetriedOutcome[]> {
  const final = new Map<string, RetriedOutcome>();
  let pending = [...targets];
  for (let n = 1; pending.length > 0 && n <= retries + 1; n++) {
    const outcomes = await attempt(pending, n);
    const byAttr = new Map(outcomes.map((o) => [o.attr, o]));
    const retry: BuildTarget[] = [];
    for (const t of pending) {
      const o = byAttr.get(t.attr);
      if (!o) continue;
      const before = final.get(t.attr);
      const previousErrors = before ? [...(before.previousErrors ?? []), before.error ?? before.status] : undefined;
      const passed = o.status === 'built' || o.status === 'cached';
      const status: FinalStatus = passed && before ? 'flaky' : o.status;
      const merged: RetriedOutcome = { ...o, status, attempts: n };
      if (previousErrors) merged.previousErrors = previousErrors;
      // The duration that counts for a flaky attribute is the one that passed; earlier attempts are in the errors.
      final.set(t.attr, merged);
      if (o.status === 'infra-failure') retry.push(t);
    }
    pending = retry;
  }
  return targets.map((t) => final.get(t.attr)).filter((o): o is RetriedOutcome => o !== undefined);
}
