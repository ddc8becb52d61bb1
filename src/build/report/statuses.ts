/**
 * Commit statuses, the fallback when check runs are refused (a token without `checks: write`): the aggregate under
 * the check name as context (so the same branch protection rule matches either), plus one per reported attribute.
 * A status carries only a state, a description of at most 140 characters and a link, so the details stay in the job
 * summary the link points at.
 */
import { mapLimit } from '../pool.js';
import { countResults, PASSING, type AttrResult, type BuildStatus } from '../results.js';
import { ApiError, type GitHubClient } from './client.js';
import { countsLine, formatDuration, headline, keepHead, STATUS_LABEL } from './text.js';

export const DESCRIPTION_MAX = 140;

export interface StatusTarget {
  owner: string;
  repo: string;
  sha: string;
  checkName: string;
  detailsUrl?: string;
}

type State = 'success' | 'failure' | 'error';

/** `error` for what is not the build's verdict (evaluation broke, the machine broke), `failure` for failed builds. */
function stateOf(s: BuildStatus): State {
  if (PASSING.has(s)) return 'success';
  return s === 'eval-error' || s === 'infra-failure' ? 'error' : 'failure';
}

export function attributeDescription(r: AttrResult): string {
  const first = headline(r.error);
  const why = r.status === 'dependency-failed' && r.failedDependency ? `${r.failedDependency} failed` : first;
  const label = `${STATUS_LABEL[r.status]} (${formatDuration(r.duration)})`;
  return keepHead(why ? `${label}: ${why}` : label, DESCRIPTION_MAX);
}

export interface StatusesOutcome {
  problems: string[];
}

/** Throws ApiError when the aggregate status cannot be set (the caller gives up on the API then). */
export async function publishStatuses(
  client: GitHubClient,
  results: readonly AttrResult[],
  t: StatusTarget,
  each: readonly AttrResult[],
  concurrency: number,
): Promise<StatusesOutcome> {
  const counts = countResults(results);
  const link = t.detailsUrl ? { target_url: t.detailsUrl } : {};
  const post = (context: string, state: State, description: string) =>
    client.call(`setting commit status ${JSON.stringify(context)}`, (o, signal) =>
      o.rest.repos.createCommitStatus({
        owner: t.owner,
        repo: t.repo,
        sha: t.sha,
        context,
        state,
        description,
        ...link,
        request: { signal },
      }),
    );
  const failed = counts.failed + counts.evalErrors > 0;
  await post(t.checkName, failed ? 'failure' : 'success', keepHead(countsLine(counts), DESCRIPTION_MAX));

  const problems: string[] = [];
  let stop: ApiError | undefined;
  let made = 0;
  await mapLimit(each, concurrency, async (r) => {
    if (stop) return;
    try {
      await post(`${t.checkName} / ${r.attr}`, stateOf(r.status), attributeDescription(r));
      made++;
    } catch (e) {
      if (e instanceof ApiError && (e.refused || /rate limit/i.test(e.message))) stop ??= e;
      problems.push((e as Error).message);
    }
  });
  if (made < each.length) {
    const why = stop?.message ?? problems[problems.length - 1] ?? 'unknown error';
    return { problems: [`${each.length - made} of ${each.length} per-attribute commit statuses not set: ${why}`] };
  }
  return { problems: [] };
}
