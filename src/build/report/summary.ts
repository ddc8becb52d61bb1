/**
 * The job summary: a header with the counts, a table of attributes (problems first), then the log tails of failures
 * and evaluation errors in collapsed <details>. GitHub refuses a step summary over 1 MiB, so the result is fitted
 * to a byte budget: log tails are shortened first (evenly, long ones first), then details of the least important
 * failures dropped, and only when the table alone does not fit are rows cut (passing rows go first, as they sort
 * last). What was cut is said in the summary.
 */
import type { AttrResult, Counts } from '../results.js';
import {
  byImportance,
  bytes,
  cleanText,
  codeBlock,
  countsLine,
  FAILING,
  formatDuration,
  htmlEscape,
  keepTail,
  logText,
  mdEscape,
  STATUS_LABEL,
  STATUS_SYMBOL,
} from './text.js';

/** GitHub's limit is 1 MiB per step; other parts of the step (lint findings) append to the same file. */
export const SUMMARY_MAX_BYTES = 1_000_000;
/** A failure's log in the summary, before any trimming: the engine keeps ~100 lines, this bounds long lines. */
const DETAIL_MAX_BYTES = 16 * 1024;
/** Below this a log tail says too little to be worth its row. */
const DETAIL_MIN_BYTES = 512;
/** Room kept for the closing notes. */
const NOTES_RESERVE = 1024;

export interface SummaryParts {
  flake: string;
  nixVersion: string;
  systems: string[];
  seconds?: number;
  reportedVia?: 'checks' | 'statuses' | 'none';
  maxBytes?: number;
}

const VIA: Record<NonNullable<SummaryParts['reportedVia']>, string> = {
  checks: 'Also reported as GitHub check runs.',
  statuses: 'Also reported as commit statuses (check runs were not allowed; see the warnings).',
  none: 'Not reported as checks or commit statuses (see the warnings): this summary and the results files are all.',
};

function header(results: readonly AttrResult[], counts: Counts, meta: SummaryParts): string {
  const ok = counts.failed === 0 && counts.evalErrors === 0;
  const line = `### ${ok ? '✅' : '❌'} Nix build: ${countsLine(counts)} (${results.length} attribute${results.length === 1 ? '' : 's'})`;
  const facts = [
    `Flake ${mdEscape(meta.flake)}`,
    meta.systems.length ? mdEscape(meta.systems.join(', ')) : '',
    meta.nixVersion ? `Nix ${mdEscape(meta.nixVersion)}` : '',
    meta.seconds !== undefined ? formatDuration(meta.seconds) : '',
  ].filter(Boolean);
  const via = meta.reportedVia ? `\n\n${VIA[meta.reportedVia]}` : '';
  return `${line}\n\n${facts.join(' · ')}${via}\n\n`;
}

function how(r: AttrResult): string {
  switch (r.status) {
    case 'built':
    case 'flaky':
      return r.attempts > 1 ? `built (${r.attempts} attempts)` : 'built';
    case 'cached':
      return r.cachedAt ? `cached (${mdEscape(r.cachedAt)})` : 'cached';
    case 'eval-error':
      return 'not evaluated';
    case 'dependency-failed':
      return 'not built';
    default:
      return r.attempts > 1 ? `not built (${r.attempts} attempts)` : 'not built';
  }
}

const TABLE_HEAD = '| Attribute | Status | Duration | Cached/built | System |\n|---|---|---|---|---|\n';

function row(r: AttrResult): string {
  const status = `${STATUS_SYMBOL[r.status]} ${STATUS_LABEL[r.status]}`;
  return `| ${mdEscape(r.attr)} | ${status} | ${formatDuration(r.duration)} | ${how(r)} | ${mdEscape(r.system)} |\n`;
}

/** What a failure's details block shows inside its code block: the error, the failed dependency, the log tail. */
export function failureText(r: AttrResult): string {
  const parts: string[] = [];
  if (r.error) parts.push(cleanText(r.error));
  if (r.errorLocation) {
    const where = r.errorLocation.relativeFile ?? r.errorLocation.file;
    parts.push(`at ${where}:${r.errorLocation.line}${r.errorLocation.column ? `:${r.errorLocation.column}` : ''}`);
  }
  if (r.failedDependency) parts.push(`failed dependency: ${r.failedDependency}`);
  if (r.previousErrors?.length) parts.push(`earlier attempts: ${r.previousErrors.map(cleanText).join('; ')}`);
  const log = logText(r);
  if (log) parts.push(`--- last log lines ---\n${log}`);
  return parts.join('\n') || STATUS_LABEL[r.status];
}

function detailOpen(r: AttrResult): string {
  const what = `${STATUS_SYMBOL[r.status]} <code>${htmlEscape(cleanText(r.attr))}</code>: ${STATUS_LABEL[r.status]}`;
  return `<details><summary>${what} (${formatDuration(r.duration)})</summary>\n\n`;
}
const DETAIL_CLOSE = '\n\n</details>\n\n';

function detail(r: AttrResult, content: string): string {
  return `${detailOpen(r)}${codeBlock(content)}${DETAIL_CLOSE}`;
}

/** Largest per-log cap c with sum(min(size, c)) <= total: long logs are cut first, short ones stay whole. */
function waterLevel(sizes: readonly number[], total: number): number {
  let lo = 0;
  let hi = Math.max(0, ...sizes);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (sizes.reduce((s, x) => s + Math.min(x, mid), 0) <= total) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export function renderSummary(results: readonly AttrResult[], counts: Counts, meta: SummaryParts): string {
  const budget = meta.maxBytes ?? SUMMARY_MAX_BYTES;
  const head = header(results, counts, meta);
  const sorted = byImportance(results);
  let rows = sorted.map(row);
  const failures = sorted.filter((r) => FAILING.has(r.status));
  const texts = failures.map((r) => keepTail(failureText(r), DETAIL_MAX_BYTES, bytes).text);
  // The fence and wrapper of each block, measured with empty content: codeBlock's fence grows with backtick runs,
  // so it is measured on the real text (trimming can only shorten it).
  const wrappers = failures.map((r, i) => bytes(detail(r, texts[i] as string)) - bytes(texts[i] as string));
  const available = budget - bytes(head) - bytes(TABLE_HEAD) - NOTES_RESERVE - bytes('#### Failures\n\n');
  const notes: string[] = [];

  let tableBytes = rows.reduce((s, x) => s + bytes(x), 0);
  const wanted = texts.reduce((s, t, i) => s + bytes(t) + (wrappers[i] as number), 0);
  // Rows are cut only when the table alone leaves less than a little room for the logs.
  const keepForDetails = Math.min(wanted, Math.floor(available / 10));
  if (tableBytes > available - keepForDetails) {
    let n = rows.length;
    while (n > 0 && tableBytes > available - keepForDetails) tableBytes -= bytes(rows[--n] as string);
    notes.push(`${rows.length - n} of ${rows.length} table rows not shown (passing attributes first)`);
    rows = rows.slice(0, n);
  }

  // Details: shorten every log to a common cap; if even the minimum does not fit, drop the last ones.
  let room = available - tableBytes;
  let shown = failures.length;
  while (shown > 0) {
    const fixed = wrappers.slice(0, shown).reduce((s, w) => s + w, 0);
    const sizes = texts.slice(0, shown).map(bytes);
    if (fixed + sizes.reduce((s, x) => s + Math.min(x, DETAIL_MIN_BYTES), 0) <= room) break;
    shown--;
  }
  const blocks: string[] = [];
  if (shown > 0) {
    const fixed = wrappers.slice(0, shown).reduce((s, w) => s + w, 0);
    const cap = waterLevel(texts.slice(0, shown).map(bytes), room - fixed);
    let trimmed = 0;
    for (let i = 0; i < shown; i++) {
      const full = texts[i] as string;
      const cut = keepTail(full, cap, bytes);
      if (cut.cut > 0) trimmed++;
      const block = detail(failures[i] as AttrResult, cut.text || '(log cut)');
      room -= bytes(block);
      blocks.push(block);
    }
    if (trimmed > 0) notes.push(`${trimmed} log tail(s) shortened to about ${Math.max(1, Math.round(cap / 1024))} KiB`);
  }
  if (shown < failures.length) notes.push(`the logs of ${failures.length - shown} failure(s) not shown`);

  let out = head + TABLE_HEAD + rows.join('');
  if (blocks.length) out += `\n#### Failures\n\n${blocks.join('')}`;
  if (notes.length) {
    out +=
      `\n✂️ Trimmed to stay under GitHub's 1 MiB job summary limit: ${mdEscape(notes.join('; '))}. ` +
      'The results-json file has every attribute.\n';
  }
  return out;
}
