/**
 * CONTRACT STUB (owned by the reporting work): publishing build results as GitHub check runs, commit statuses or
 * nothing, and the job summary. The signatures are what main.ts calls; the bodies are being written.
 */
import type { Platform } from '../../platform/types.js';
import type { AttrResult, Counts } from '../results.js';

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
}

export interface ReportOutcome {
  via: 'checks' | 'statuses' | 'none';
  checkRunIds: number[];
  /** Why reporting fell back, already logged as warnings. */
  warnings: string[];
}

/** Check runs (aggregate + per failure / per attribute), else commit statuses, else nothing, warning why. */
export async function publishResults(
  platform: Platform,
  results: readonly AttrResult[],
  opts: ReportOptions,
): Promise<ReportOutcome> {
  void platform;
  void results;
  void opts;
  return Promise.resolve({ via: 'none', checkRunIds: [], warnings: ['reporting not implemented yet'] });
}

export interface SummaryMeta {
  flake: string;
  nixVersion: string;
  systems: string[];
  /** Wall time of the whole step. */
  seconds?: number;
  /** Where the results were also published (a line under the table). */
  reportedVia?: ReportOutcome['via'];
}

/** Job summary Markdown: table of attributes, collapsed log tails of failures; always < 1 MiB. */
export function renderBuildSummary(results: readonly AttrResult[], counts: Counts, meta: SummaryMeta): string {
  void meta;
  return `built ${counts.built}, cached ${counts.cached}, failed ${counts.failed} of ${results.length}\n`;
}

/** Reads a results-json file (written by resultsJson) back, for `mode: publish` in a workflow_run workflow. */
export function readResultsFile(text: string): {
  results: AttrResult[];
  meta: { flake?: string; nixVersion?: string; sha?: string; repository?: string; systems?: string[] };
} {
  void text;
  throw new Error('not implemented yet');
}
