/**
 * The result of each attribute and the two files written from them:
 * - results-json: `{ "results": [...] }` like nix-fast-build's --result-file (Mic92/nix-fast-build report.py
 *   dump_json: per record `type` EVAL|BUILD, `attr`, `success`, `duration`, `error` (null on success) and `outputs`),
 *   with our fields added. nix-fast-build writes an EVAL and a BUILD record per attribute; we write one record per
 *   attribute, `type` EVAL for evaluation errors and BUILD otherwise, and `attr` is the full attribute path.
 * - JUnit XML as GitLab's test widget and GitHub test reporters read it: testsuites > testsuite (per output and
 *   system) > testcase (per attribute); `failure` for build failures, `error` for evaluation and infrastructure
 *   errors, with the log tail in CDATA.
 */
import { stripAnsi } from '../nix/log.js';
import { formatAttrPath } from './attr-path.js';
import type { ErrorLocation } from './eval-error.js';
import type { FinalStatus } from './retry.js';

export type BuildStatus = FinalStatus | 'eval-error';

export interface AttrResult {
  /** `checks.x86_64-linux.foo`. */
  attr: string;
  attrPath: string[];
  system: string;
  /** '' when evaluation failed. */
  drvPath: string;
  outputs: Record<string, string>;
  /** requiredSystemFeatures. */
  features: string[];
  status: BuildStatus;
  /** Seconds: build time of the attribute's own derivation (evaluation time for evaluation errors). */
  duration: number;
  attempts: number;
  error?: string;
  /** For evaluation errors: where Nix points. */
  errorLocation?: ErrorLocation;
  failedDependency?: string;
  /** Substituter URL or `local` for cached attributes. */
  cachedAt?: string;
  logTail?: string[];
  previousErrors?: string[];
}

export const PASSING: ReadonlySet<BuildStatus> = new Set(['built', 'cached', 'flaky']);

export interface Counts {
  /** Built in this run, flaky ones included. */
  built: number;
  cached: number;
  /** failed + dependency-failed + infra-failure. */
  failed: number;
  evalErrors: number;
  flaky: number;
  dependencyFailed: number;
  infraFailures: number;
  total: number;
}

export function countResults(results: readonly AttrResult[]): Counts {
  const n = (s: BuildStatus) => results.filter((r) => r.status === s).length;
  return {
    built: n('built') + n('flaky'),
    cached: n('cached'),
    failed: n('failed') + n('dependency-failed') + n('infra-failure'),
    evalErrors: n('eval-error'),
    flaky: n('flaky'),
    dependencyFailed: n('dependency-failed'),
    infraFailures: n('infra-failure'),
    total: results.length,
  };
}

export interface ResultsFileMeta {
  flake?: string;
  nixVersion?: string;
  /** The commit built: `mode: publish` attaches the checks to it. */
  sha?: string;
  /** owner/name of that commit's repository. */
  repository?: string;
  systems?: string[];
}

export function resultsJson(results: readonly AttrResult[], meta: ResultsFileMeta = {}): string {
  const records = results.map((r) => ({
    // nix-fast-build's fields first.
    type: r.status === 'eval-error' ? 'EVAL' : 'BUILD',
    attr: r.attr,
    success: PASSING.has(r.status),
    duration: round(r.duration),
    error: r.error ?? null,
    outputs: r.outputs,
    // Ours.
    attrPath: r.attrPath,
    system: r.system,
    drvPath: r.drvPath,
    status: r.status,
    attempts: r.attempts,
    features: r.features,
    ...(r.errorLocation ? { errorLocation: r.errorLocation } : {}),
    ...(r.failedDependency ? { failedDependency: r.failedDependency } : {}),
    ...(r.cachedAt ? { cachedAt: r.cachedAt } : {}),
    ...(r.previousErrors ? { previousErrors: r.previousErrors } : {}),
    ...(r.logTail ? { logTail: r.logTail } : {}),
  }));
  return `${JSON.stringify({ version: 1, ...meta, counts: countResults(results), results: records }, null, 2)}\n`;
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

// XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates, U+FFFE and U+FFFF.
const XML_INVALID =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text fit for XML: colour codes removed, characters XML cannot carry removed. */
export function xmlText(s: string): string {
  return stripAnsi(s).replace(XML_INVALID, '');
}

export function xmlAttr(s: string): string {
  return xmlText(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;')
    .replace(/\t/g, '&#9;');
}

/** CDATA cannot contain `]]>`: split it across two sections. */
export function cdata(s: string): string {
  return `<![CDATA[${xmlText(s).replace(/]]>/g, ']]]]><![CDATA[>')}]]>`;
}

export interface JUnitOptions {
  /** The name of the <testsuites> element. Default `flake-ci build`. */
  name?: string;
  /** ISO timestamp of the run; default now. */
  timestamp?: string;
}

/** Suite per output and system (`checks.x86_64-linux`), so reports group like the flake does. */
function suiteOf(r: AttrResult): string {
  return r.attrPath.length > 1 ? formatAttrPath(r.attrPath.slice(0, -1)) : r.attr;
}

function testcase(r: AttrResult): string {
  const name = r.attrPath[r.attrPath.length - 1] ?? r.attr;
  const open = `    <testcase name="${xmlAttr(name)}" classname="${xmlAttr(suiteOf(r))}" time="${round(r.duration)}"`;
  const body = caseBody(r);
  return body === '' ? `${open}/>` : `${open}>\n${body}\n    </testcase>`;
}

function caseBody(r: AttrResult): string {
  const log = [r.error ?? '', ...(r.logTail?.length ? ['', '--- last log lines ---', ...r.logTail] : [])].join('\n');
  const headline = (r.error ?? r.status).split('\n')[0] ?? r.status;
  switch (r.status) {
    case 'failed':
    case 'dependency-failed':
      return `      <failure message="${xmlAttr(headline)}" type="${r.status}">${cdata(log)}</failure>`;
    case 'eval-error':
    case 'infra-failure':
      return `      <error message="${xmlAttr(headline)}" type="${r.status}">${cdata(log)}</error>`;
    case 'flaky':
      return `      <system-out>${cdata(`flaky: passed on attempt ${r.attempts}\n${(r.previousErrors ?? []).join('\n')}`)}</system-out>`;
    case 'cached':
      return `      <system-out>${cdata(`cached${r.cachedAt ? ` (${r.cachedAt})` : ''}: not rebuilt`)}</system-out>`;
    default:
      return '';
  }
}

export function junitXml(results: readonly AttrResult[], opts: JUnitOptions = {}): string {
  const timestamp = (opts.timestamp ?? new Date().toISOString()).replace(/\.\d+Z$/, '');
  const suites = new Map<string, AttrResult[]>();
  for (const r of results) suites.set(suiteOf(r), [...(suites.get(suiteOf(r)) ?? []), r]);
  const stats = (rs: readonly AttrResult[]) => {
    const c = countResults(rs);
    const time = round(rs.reduce((s, r) => s + r.duration, 0));
    const failures = c.failed - c.infraFailures;
    return `tests="${rs.length}" failures="${failures}" errors="${c.evalErrors + c.infraFailures}" time="${time}"`;
  };
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  // The attributes of the common schema (Jenkins junit-10.xsd): `skipped` exists on testsuite, not on testsuites.
  lines.push(`<testsuites name="${xmlAttr(opts.name ?? 'flake-ci build')}" ${stats(results)}>`);
  let id = 0;
  for (const [name, rs] of suites) {
    const head = `name="${xmlAttr(name)}" id="${id++}" timestamp="${timestamp}"`;
    lines.push(`  <testsuite ${head} ${stats(rs)} skipped="0">`);
    for (const r of rs) lines.push(testcase(r));
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>');
  return `${lines.join('\n')}\n`;
}
