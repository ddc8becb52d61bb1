/**
 * Text helpers shared by the job summary and the check-run outputs: cleaning logs, escaping Markdown and HTML, code
 * fences that log content cannot close, and cutting text to a limit while keeping its end (the end of a build log is
 * where the error is).
 */
import { stripAnsi } from '../../nix/log.js';
import type { AttrResult, BuildStatus } from '../results.js';

// Control characters other than tab and newline render as garbage (or not at all) in Markdown and the Checks UI.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F]/g;

/** Log text fit for display: colours and control characters removed, CRLF folded. */
export function cleanText(s: string): string {
  return stripAnsi(s).replace(/\r\n?/g, '\n').replace(CONTROL, '');
}

export function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * Inline Markdown that renders as the literal text: one line, HTML special characters as entities, Markdown
 * punctuation backslash-escaped (including `|`, which would otherwise end a table cell).
 */
export function mdEscape(s: string): string {
  return htmlEscape(cleanText(s).replace(/\s*\n\s*/g, ' ')).replace(/[\\`*_[\]~|]/g, '\\$&');
}

/** A fenced code block no line of `text` can close: the fence is longer than any backtick run inside. */
export function codeBlock(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}text\n${text.replace(/\n+$/, '')}\n${fence}`;
}

export const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * The end of `text` within `max` (measured by `measure`: characters by default, or bytes), starting at a line
 * boundary when one is near, prefixed by a note saying how much was cut. Text within the limit is returned as is.
 */
export function keepTail(
  text: string,
  max: number,
  measure: (s: string) => number = (s) => s.length,
): { text: string; cut: number } {
  if (measure(text) <= max) return { text, cut: 0 };
  const note = (cut: number) => `[… ${cut} earlier characters cut, the last part follows]\n`;
  // The smallest start index whose tail (with its note) fits: measure is monotonic in the start index.
  // Every measure used counts at least one per character, so the answer keeps at most `max` characters.
  let lo = Math.max(1, text.length - max);
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (measure(note(mid) + text.slice(mid)) <= max) hi = mid;
    else lo = mid + 1;
  }
  let start = lo;
  // Do not split a surrogate pair.
  if (/[\uDC00-\uDFFF]/.test(text[start] ?? '')) start++;
  // A whole first line reads better, when the next line break is not far.
  const nl = text.indexOf('\n', start - 1);
  if (nl !== -1 && nl + 1 < text.length && nl + 1 - start < 200) start = nl + 1;
  if (start >= text.length || measure(note(start)) > max) return { text: '', cut: text.length };
  return { text: note(start) + text.slice(start), cut: start };
}

/** The start of `text` within `max` characters, with `…` when cut (descriptions, titles). */
export function keepHead(text: string, max: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  if (one.length <= max) return one;
  let end = max - 1;
  if (/[\uD800-\uDBFF]/.test(one[end - 1] ?? '')) end--;
  return `${one.slice(0, end)}…`;
}

export const STATUS_SYMBOL: Record<BuildStatus, string> = {
  built: '✅',
  cached: '💾',
  flaky: '⚠️',
  failed: '❌',
  'dependency-failed': '⛔',
  'infra-failure': '💥',
  'eval-error': '🚫',
};

export const STATUS_LABEL: Record<BuildStatus, string> = {
  built: 'built',
  cached: 'cached',
  flaky: 'flaky (passed after a retry)',
  failed: 'build failed',
  'dependency-failed': 'dependency failed',
  'infra-failure': 'infrastructure failure',
  'eval-error': 'evaluation error',
};

/** Problems first (the reviewer's question is "what broke"), then flaky, built, cached; stable within a status. */
const ORDER: BuildStatus[] = ['eval-error', 'failed', 'infra-failure', 'dependency-failed', 'flaky', 'built', 'cached'];
export function byImportance(results: readonly AttrResult[]): AttrResult[] {
  return results
    .map((r, i) => ({ r, i }))
    .sort((a, b) => ORDER.indexOf(a.r.status) - ORDER.indexOf(b.r.status) || a.i - b.i)
    .map((x) => x.r);
}

/** Statuses that get their own check run / status with report-each: failures. */
export const FAILING: ReadonlySet<BuildStatus> = new Set([
  'failed',
  'dependency-failed',
  'infra-failure',
  'eval-error',
]);

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '0 s';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m < 120 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The failure text of a result: error message, failed dependency, log tail (cleaned). */
export function logText(r: AttrResult): string {
  return cleanText((r.logTail ?? []).join('\n'));
}

/** `2 failed, 1 evaluation error, 10 built, 3 cached` (only the non-zero parts; `no attributes` for none). */
export function countsLine(c: {
  built: number;
  cached: number;
  failed: number;
  evalErrors: number;
  flaky: number;
  total: number;
}): string {
  const parts: string[] = [];
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.evalErrors) parts.push(`${c.evalErrors} evaluation error${c.evalErrors === 1 ? '' : 's'}`);
  if (c.built) parts.push(`${c.built} built${c.flaky ? ` (${c.flaky} flaky)` : ''}`);
  if (c.cached) parts.push(`${c.cached} cached`);
  return parts.length ? parts.join(', ') : 'no attributes';
}

/** An inline code span that shows `s` literally, whatever backticks it contains (one line; `|` escaped for tables). */
export function inlineCode(s: string): string {
  const one = cleanText(s).replace(/\s*\n\s*/g, ' ');
  const longest = Math.max(0, ...(one.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = one.startsWith('`') || one.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${one.replace(/\|/g, '\\|')}${pad}${fence}`;
}

/**
 * The one line that says what went wrong: Nix 2.34 prints a bare `error:` and trace frames before the message, so
 * the last `error: <text>` line wins; otherwise the first non-empty line.
 */
export function headline(error: string | undefined): string {
  const lines = cleanText(error ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'error:');
  const main = lines.filter((l) => /^error:\s*\S/.test(l)).pop() ?? lines[0] ?? '';
  return main.replace(/^error:\s*/, '');
}
