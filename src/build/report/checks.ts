/**
 * Check runs: one aggregate run under a stable name (what branch protection requires) and one per failed attribute
 * (or per attribute with report-each: all), named `<checkName> / <attr>`. Each run is created already completed, so
 * a conclusion is never left pending when a later request fails; the aggregate's annotations beyond the first 50
 * are appended by PATCHes (the API's limit per request). Output fields are fitted to the API's 65,535 characters.
 */
import { mapLimit } from '../pool.js';
import { countResults, PASSING, type AttrResult, type Counts } from '../results.js';
import { batchAnnotations, planAnnotations } from './annotations.js';
import { ApiError, type GitHubClient } from './client.js';
import { failureText } from './summary.js';
import {
  byImportance,
  cleanText,
  codeBlock,
  countsLine,
  FAILING,
  formatDuration,
  headline,
  inlineCode,
  keepHead,
  keepTail,
  STATUS_LABEL,
  STATUS_SYMBOL,
} from './text.js';

/** GitHub's limit for output.summary and output.text. */
export const OUTPUT_MAX = 65_535;
/** Log lines in a per-attribute summary; the whole tail goes into its text. */
const SUMMARY_LOG_LINES = 20;
/** Problems listed in the aggregate summary table; the rest are counted. */
const SUMMARY_ROWS = 100;
/** Per failure in the aggregate text. */
const AGGREGATE_DETAIL_CHARS = 6000;

export interface CheckTarget {
  owner: string;
  repo: string;
  sha: string;
  checkName: string;
  detailsUrl?: string;
  workspace: string;
  flake: string;
  nixVersion: string;
  systems: readonly string[];
}

export interface CheckOutput {
  title: string;
  summary: string;
  text?: string;
}

export const conclusionOf = (failed: boolean): 'success' | 'failure' => (failed ? 'failure' : 'success');

/** Lines joined while they fit in `max` characters, then `more(n)` for the n left out. */
function fitLines(lines: readonly string[], max: number, more: (n: number) => string): string {
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const tail = i + 1 < lines.length ? more(lines.length - i - 1).length + 1 : 0;
    if (out.length + line.length + 1 + tail > max) return `${out}${more(lines.length - i)}\n`;
    out += `${line}\n`;
  }
  return out;
}

export function aggregateOutput(
  results: readonly AttrResult[],
  counts: Counts,
  t: CheckTarget,
  unplaced: readonly AttrResult[],
  notes: readonly string[],
): CheckOutput {
  const problems = byImportance(results).filter((r) => !PASSING.has(r.status) || r.status === 'flaky');
  const head = [
    `**${countsLine(counts)}** of ${counts.total} attribute${counts.total === 1 ? '' : 's'}`,
    `Flake ${inlineCode(t.flake)} · ${t.systems.map((s) => inlineCode(s)).join(', ')} · Nix ${inlineCode(t.nixVersion)}`,
    '',
    '| ✅ built | 💾 cached | ❌ failed | 🚫 evaluation errors | ⚠️ flaky |',
    '|---|---|---|---|---|',
    `| ${counts.built} | ${counts.cached} | ${counts.failed} | ${counts.evalErrors} | ${counts.flaky} |`,
    '',
    ...notes.map((n) => `> ${n}`),
  ].join('\n');
  let summary = `${head}\n`;
  if (problems.length) {
    const shown = problems.slice(0, SUMMARY_ROWS);
    const rows = shown.map((r) => {
      const error = keepHead(headline(r.error), 200);
      const status = `${STATUS_SYMBOL[r.status]} ${STATUS_LABEL[r.status]}`;
      return `| ${inlineCode(r.attr)} | ${status} | ${formatDuration(r.duration)} | ${error ? inlineCode(error) : ''} |`;
    });
    const more = (n: number) => `\n${n} more: see the job summary or the results-json file.`;
    const extra = problems.length - shown.length;
    const table = fitLines(
      ['| Attribute | Status | Duration | Error |', '|---|---|---|---|', ...rows, ...(extra ? [more(extra)] : [])],
      OUTPUT_MAX - summary.length - 200,
      (n) => more(n - (extra ? 1 : 0) + extra),
    );
    summary += `\n${table}`;
  }

  // The text: each problem with its error and a short log tail; evaluation errors without a repository location
  // (they have no annotation) in full.
  const blocks = problems.map((r) => {
    const limit = unplaced.includes(r) ? OUTPUT_MAX / 4 : AGGREGATE_DETAIL_CHARS;
    return `### ${STATUS_SYMBOL[r.status]} ${inlineCode(r.attr)}: ${STATUS_LABEL[r.status]}\n\n${codeBlock(keepTail(failureText(r), limit).text)}\n`;
  });
  const text = fitLines(
    blocks,
    OUTPUT_MAX - 100,
    (n) => `\n_${n} more not shown here (text limit): see the job summary._`,
  );
  const out: CheckOutput = { title: countsLine(counts), summary: summary.slice(0, OUTPUT_MAX) };
  if (text.trim()) out.text = text;
  return out;
}

export function attributeOutput(r: AttrResult): CheckOutput {
  const facts = [
    `**Status:** ${STATUS_SYMBOL[r.status]} ${STATUS_LABEL[r.status]}`,
    `**Duration:** ${formatDuration(r.duration)}`,
    `**System:** ${inlineCode(r.system)}`,
  ];
  if (r.attempts > 1) facts.push(`**Attempts:** ${r.attempts}`);
  const lines = [facts.join(' · '), ''];
  if (r.drvPath) lines.push(`**Derivation:** ${inlineCode(r.drvPath)}`, '');
  if (r.status === 'dependency-failed') {
    lines.push(
      r.failedDependency
        ? `Not built because a dependency failed to build: ${inlineCode(r.failedDependency)}`
        : 'Not built because a dependency failed to build.',
      '',
    );
  }
  if (r.cachedAt) lines.push(`**Cached at:** ${inlineCode(r.cachedAt)}`, '');
  if (r.errorLocation) {
    const l = r.errorLocation;
    lines.push(`**At:** ${inlineCode(`${l.relativeFile ?? l.file}:${l.line}${l.column ? `:${l.column}` : ''}`)}`, '');
  }
  if (r.error) lines.push(codeBlock(keepTail(cleanText(r.error), 8000).text), '');
  const log = r.logTail ?? [];
  if (log.length) {
    const last = log.slice(-SUMMARY_LOG_LINES);
    lines.push(`Last ${last.length} log line${last.length === 1 ? '' : 's'}:`, '');
    lines.push(codeBlock(keepTail(cleanText(last.join('\n')), 20_000).text));
  }
  if (PASSING.has(r.status) && Object.keys(r.outputs).length) {
    lines.push('**Outputs:**', '', ...Object.entries(r.outputs).map(([k, p]) => `- ${k}: ${inlineCode(p)}`));
  }
  const title = keepHead(`${STATUS_LABEL[r.status]} (${formatDuration(r.duration)})`, 200);
  const out: CheckOutput = { title, summary: lines.join('\n').slice(0, OUTPUT_MAX) };
  if (FAILING.has(r.status) || r.status === 'flaky') {
    // The longer tail: the fence and its info string take a few characters of the limit.
    const body = failureText(r);
    const fenced = codeBlock(keepTail(body, OUTPUT_MAX - 64).text);
    out.text = fenced.length <= OUTPUT_MAX ? fenced : codeBlock(keepTail(body, OUTPUT_MAX - 1024).text);
  }
  return out;
}

export interface ChecksOutcome {
  ids: number[];
  /** Per-attribute runs that could not be created (the aggregate exists). */
  problems: string[];
}

/** Publishes all runs; throws ApiError when the aggregate itself cannot be created (the caller falls back). */
export async function publishChecks(
  client: GitHubClient,
  results: readonly AttrResult[],
  t: CheckTarget,
  each: readonly AttrResult[],
  opts: { concurrency: number; notes: readonly string[] },
): Promise<ChecksOutcome> {
  const counts = countResults(results);
  const plan = planAnnotations(results, t.workspace, t.flake);
  const output = aggregateOutput(results, counts, t, plan.unplaced, opts.notes);
  const conclusion = conclusionOf(counts.failed + counts.evalErrors > 0);
  const common = { owner: t.owner, repo: t.repo, ...(t.detailsUrl ? { details_url: t.detailsUrl } : {}) };
  const [first, ...rest] = batchAnnotations(plan.annotations);
  const created = await client.call(`creating check run ${JSON.stringify(t.checkName)}`, (o, signal) =>
    o.rest.checks.create({
      ...common,
      name: t.checkName,
      head_sha: t.sha,
      status: 'completed',
      conclusion,
      output: { ...output, ...(first?.length ? { annotations: first } : {}) },
      request: { signal },
    }),
  );
  const aggregateId = created.data.id;
  const problems: string[] = [];
  for (const [i, batch] of rest.entries()) {
    try {
      await client.call(`adding annotations to check run ${aggregateId}`, (o, signal) =>
        o.rest.checks.update({
          ...common,
          check_run_id: aggregateId,
          output: { ...output, annotations: batch },
          request: { signal },
        }),
      );
    } catch (e) {
      problems.push(`${rest.length - i} batch(es) of annotations not added: ${(e as Error).message}`);
      break;
    }
  }

  let stop: ApiError | undefined;
  const ids = await mapLimit(each, opts.concurrency, async (r) => {
    if (stop) return undefined;
    try {
      const run = await client.call(`creating the check run of ${r.attr}`, (o, signal) =>
        o.rest.checks.create({
          ...common,
          name: `${t.checkName} / ${r.attr}`,
          head_sha: t.sha,
          external_id: r.attr,
          status: 'completed',
          conclusion: conclusionOf(!PASSING.has(r.status)),
          output: attributeOutput(r),
          request: { signal },
        }),
      );
      return run.data.id;
    } catch (e) {
      // A rate limit or a refusal will not go away for the next attribute: stop instead of spending requests.
      if (e instanceof ApiError && (e.refused || /rate limit/i.test(e.message))) stop ??= e;
      problems.push((e as Error).message);
      return undefined;
    }
  });
  const made = ids.filter((x): x is number => x !== undefined);
  if (made.length < each.length) {
    const why = stop?.message ?? problems[problems.length - 1] ?? 'unknown error';
    problems.splice(0, problems.length, ...problems.filter((p) => p.includes('annotations')));
    problems.push(`${each.length - made.length} of ${each.length} per-attribute check runs not created: ${why}`);
  }
  return { ids: [aggregateId, ...made], problems };
}
