/**
 * Publishing build results: GitHub check runs, else commit statuses, else nothing (with one warning saying why and
 * what to do), plus the job summary and reading a results-json file back for `mode: publish`. Reporting problems
 * are warnings unless `strict` (DESIGN.md): a build must not fail because a forked PR's token is read-only.
 */
import { InputError } from '../../errors.js';
import type { Platform } from '../../platform/types.js';
import type { AttrResult, Counts } from '../results.js';
import { publishChecks, type ChecksOutcome } from './checks.js';
import { ApiError, GitHubClient } from './client.js';
import { parseResultsFile } from './results-file.js';
import { publishStatuses } from './statuses.js';
import { renderSummary } from './summary.js';
import { byImportance, FAILING } from './text.js';

export { ANNOTATIONS_PER_REQUEST, annotationPath, batchAnnotations, planAnnotations } from './annotations.js';
export { aggregateOutput, attributeOutput, OUTPUT_MAX } from './checks.js';
export { attributeDescription, DESCRIPTION_MAX } from './statuses.js';
export { SUMMARY_MAX_BYTES } from './summary.js';
export { keepTail } from './text.js';

export type ReportEach = 'failures' | 'all';

export interface ReportOptions {
  /** GITHUB_TOKEN or a PAT; '' means no API reporting (summary only, with a warning saying why). */
  token: string;
  /** e.g. https://api.github.com (GITHUB_API_URL). */
  apiUrl: string;
  /** owner/name */
  repository: string;
  /** The commit the check runs and statuses are attached to. */
  sha: string;
  /** The stable aggregate check name branch protection can require. */
  checkName: string;
  reportEach: ReportEach;
  /** Link from each check run / status to the job's page. */
  detailsUrl?: string;
  flake: string;
  nixVersion: string;
  systems: string[];
  /** The workspace root: annotation paths are made relative to it. */
  workspace: string;
  /** Reporting problems fail the step instead of warning. */
  strict?: boolean;
  /** Requests in flight at once for per-attribute runs or statuses. Default 4. */
  concurrency?: number;
  /**
   * Per-attribute check runs (or statuses) at most, failures first. Default 200: a GITHUB_TOKEN may make 1,000
   * requests an hour per repository, and other steps need some.
   */
  maxAttributeRuns?: number;
}

export interface ReportOutcome {
  via: 'checks' | 'statuses' | 'none';
  checkRunIds: number[];
  /** Why reporting fell back, already logged as warnings. */
  warnings: string[];
}

export const DEFAULT_MAX_ATTRIBUTE_RUNS = 200;

const FIX =
  'To get check runs, give the job `permissions: checks: write` (and `statuses: write`). For pull requests from ' +
  'forks, whose token is always read-only, upload the results-json file as an artifact and publish it from a ' +
  "`workflow_run` workflow with this action's `mode: publish`.";

function why(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ApiError && e.status === 403 && e.refused) {
    return `${message}: the token lacks the permission, as on pull requests from forks`;
  }
  return message;
}

/** Check runs (aggregate + per failure / per attribute), else commit statuses, else nothing, warning why. */
export async function publishResults(
  platform: Platform,
  results: readonly AttrResult[],
  opts: ReportOptions,
): Promise<ReportOutcome> {
  const warnings: string[] = [];
  const done = (via: ReportOutcome['via'], checkRunIds: number[] = []): ReportOutcome => {
    if (warnings.length && opts.strict) throw new InputError(warnings.join(' '));
    for (const w of warnings) platform.log('warning', w);
    return { via, checkRunIds, warnings };
  };
  const [owner, repo, extra] = opts.repository.split('/');
  if (!opts.token) {
    warnings.push(`Build results were not published as check runs or commit statuses: no token was given. ${FIX}`);
    return done('none');
  }
  platform.setSecret(opts.token);
  if (!owner || !repo || extra !== undefined) {
    warnings.push(
      `Build results were not published: the repository ${JSON.stringify(opts.repository)} is not owner/name.`,
    );
    return done('none');
  }

  const client = new GitHubClient(platform, { token: opts.token, apiUrl: opts.apiUrl });
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const max = Math.max(0, opts.maxAttributeRuns ?? DEFAULT_MAX_ATTRIBUTE_RUNS);
  const wanted = byImportance(opts.reportEach === 'all' ? results : results.filter((r) => FAILING.has(r.status)));
  const each = wanted.slice(0, max);
  const notes =
    wanted.length > each.length
      ? [
          `${wanted.length - each.length} of ${wanted.length} attributes have no check run of their own ` +
            `(at most ${max} per build); the job summary lists them all.`,
        ]
      : [];
  const target = {
    owner,
    repo,
    sha: opts.sha,
    checkName: opts.checkName,
    ...(opts.detailsUrl ? { detailsUrl: opts.detailsUrl } : {}),
  };

  const checkTarget = {
    ...target,
    workspace: opts.workspace,
    flake: opts.flake,
    nixVersion: opts.nixVersion,
    systems: opts.systems,
  };
  let checksError: unknown;
  let checks: ChecksOutcome | undefined;
  try {
    checks = await publishChecks(client, results, checkTarget, each, { concurrency, notes });
  } catch (e) {
    checksError = e;
  }
  if (checks) {
    platform.log('info', `Published ${checks.ids.length} check run(s) for ${opts.sha}.`);
    if (checks.problems.length) warnings.push(`Some build results were not published: ${checks.problems.join('; ')}.`);
    return done('checks', checks.ids);
  }
  let statusProblems: string[];
  try {
    statusProblems = (await publishStatuses(client, results, target, each, concurrency)).problems;
  } catch (e) {
    warnings.push(
      `Build results were not published to GitHub: check runs failed (${why(checksError)}) and commit statuses ` +
        `failed (${why(e)}); they are in the job summary and the results files only. ${FIX}`,
    );
    return done('none');
  }
  platform.log('info', `Published the results as commit statuses for ${opts.sha}.`);
  warnings.push(
    `Check runs could not be created (${why(checksError)}); the results were published as commit statuses ` +
      `instead. ${statusProblems.length ? `${statusProblems.join('; ')}. ` : ''}${FIX}`,
  );
  return done('statuses');
}

export interface SummaryMeta {
  flake: string;
  nixVersion: string;
  systems: string[];
  /** Wall time of the whole step. */
  seconds?: number;
  /** Where the results were also published (a line under the table). */
  reportedVia?: ReportOutcome['via'];
  /** Byte budget; default SUMMARY_MAX_BYTES, below GitHub's 1 MiB per step. */
  maxBytes?: number;
}

/** Job summary Markdown: table of attributes, collapsed log tails of failures; always < 1 MiB. */
export function renderBuildSummary(results: readonly AttrResult[], counts: Counts, meta: SummaryMeta): string {
  return renderSummary(results, counts, meta);
}

/** Reads a results-json file (written by resultsJson) back, for `mode: publish` in a workflow_run workflow. */
export function readResultsFile(text: string): {
  results: AttrResult[];
  meta: { flake?: string; nixVersion?: string; sha?: string; repository?: string; systems?: string[] };
} {
  return parseResultsFile(text);
}
