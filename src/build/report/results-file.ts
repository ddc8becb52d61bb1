/**
 * Reading a results-json file back (what resultsJson wrote), for `mode: publish`: a pull request from a fork builds
 * with a read-only token and uploads the file as an artifact; a `workflow_run` workflow with a write token downloads
 * it and publishes the checks for the PR's head commit. The file crosses a trust boundary, so every field is checked
 * and a bad one is named (`results[3].status`), never passed on. nix-fast-build's own --result-file (records with
 * only type/attr/success/duration/error/outputs) is accepted too.
 */
import { InputError } from '../../errors.js';
import { parseAttrPath } from '../attr-path.js';
import type { ErrorLocation } from '../eval-error.js';
import type { AttrResult, BuildStatus } from '../results.js';

export interface ResultsFileContents {
  results: AttrResult[];
  meta: { flake?: string; nixVersion?: string; sha?: string; repository?: string; systems?: string[] };
}

const STATUSES: readonly BuildStatus[] = [
  'built',
  'cached',
  'flaky',
  'failed',
  'dependency-failed',
  'infra-failure',
  'eval-error',
];

class Reader {
  constructor(private readonly where: string) {}

  fail(field: string, problem: string): never {
    throw new InputError(
      `The results file is not a valid flake-ci results-json file: ${`${this.where}${field}`.replace(/^\./, '')} ${problem}. ` +
        'Pass the results-json file actions/build wrote (upload it as an artifact unchanged).',
    );
  }
  str(o: Record<string, unknown>, k: string): string | undefined {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(`.${k}`, `is ${kind(v)}, expected a string`);
    return v;
  }
  num(o: Record<string, unknown>, k: string): number | undefined {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      this.fail(`.${k}`, `is ${kind(v)}, expected a non-negative number`);
    return v;
  }
  strings(o: Record<string, unknown>, k: string): string[] | undefined {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      this.fail(`.${k}`, `is ${kind(v)}, expected a list of strings`);
    return v as string[];
  }
  obj(v: unknown, field: string): Record<string, unknown> {
    if (!v || typeof v !== 'object' || Array.isArray(v)) this.fail(field, `is ${kind(v)}, expected an object`);
    return v as Record<string, unknown>;
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function record(v: unknown, index: number): AttrResult {
  const rd: Reader = new Reader(`results[${index}]`);
  const o = rd.obj(v, '');
  const attr = rd.str(o, 'attr');
  if (!attr) rd.fail('.attr', 'is missing');
  let attrPath = rd.strings(o, 'attrPath');
  if (!attrPath) {
    try {
      attrPath = parseAttrPath(attr);
    } catch {
      attrPath = [attr];
    }
  }
  let status = rd.str(o, 'status') as BuildStatus | undefined;
  if (status === undefined) {
    // A nix-fast-build record: success and type are all there is.
    if (typeof o.success !== 'boolean') rd.fail('.status', 'is missing (and there is no boolean `success`)');
    status = o.success ? 'built' : o.type === 'EVAL' ? 'eval-error' : 'failed';
  } else if (!STATUSES.includes(status)) {
    rd.fail('.status', `is ${kind(status)}, expected one of ${STATUSES.join(', ')}`);
  }
  const outputs = o.outputs === undefined || o.outputs === null ? {} : rd.obj(o.outputs, '.outputs');
  for (const [k, p] of Object.entries(outputs)) if (typeof p !== 'string') rd.fail(`.outputs.${k}`, 'is not a string');

  const r: AttrResult = {
    attr,
    attrPath,
    // nix-fast-build attributes are `checks.<system>.<name>` too.
    system: rd.str(o, 'system') ?? (attrPath.length > 2 ? (attrPath[1] as string) : ''),
    drvPath: rd.str(o, 'drvPath') ?? '',
    outputs: outputs as Record<string, string>,
    features: rd.strings(o, 'features') ?? [],
    status,
    duration: rd.num(o, 'duration') ?? 0,
    attempts: rd.num(o, 'attempts') ?? (status === 'cached' || status === 'eval-error' ? 0 : 1),
  };
  const error = rd.str(o, 'error');
  if (error !== undefined) r.error = error;
  if (o.errorLocation !== undefined && o.errorLocation !== null) {
    const l = rd.obj(o.errorLocation, '.errorLocation');
    const loc: Reader = new Reader(`results[${index}].errorLocation`);
    const file = loc.str(l, 'file');
    const line = loc.num(l, 'line');
    if (file === undefined || line === undefined) rd.fail('.errorLocation', 'needs a file and a line');
    const location: ErrorLocation = { file, line };
    const column = loc.num(l, 'column');
    if (column !== undefined) location.column = column;
    const relativeFile = loc.str(l, 'relativeFile');
    if (relativeFile !== undefined) location.relativeFile = relativeFile;
    r.errorLocation = location;
  }
  const failedDependency = rd.str(o, 'failedDependency');
  if (failedDependency !== undefined) r.failedDependency = failedDependency;
  const cachedAt = rd.str(o, 'cachedAt');
  if (cachedAt !== undefined) r.cachedAt = cachedAt;
  const logTail = rd.strings(o, 'logTail');
  if (logTail) r.logTail = logTail;
  const previousErrors = rd.strings(o, 'previousErrors');
  if (previousErrors) r.previousErrors = previousErrors;
  return r;
}

export function parseResultsFile(text: string): ResultsFileContents {
  let data: unknown;
  try {
    data = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new InputError(
      `The results file is not JSON (${e instanceof Error ? e.message : String(e)}). ` +
        'Pass the results-json file actions/build wrote (upload it as an artifact unchanged).',
    );
  }
  const top: Reader = new Reader('');
  const o = top.obj(data, 'the top level');
  if (o.version !== undefined && o.version !== 1)
    top.fail('version', `is ${kind(o.version)}; this version of the action reads version 1`);
  if (!Array.isArray(o.results)) top.fail('results', `is ${kind(o.results)}, expected a list of records`);
  const results = (o.results as unknown[]).map(record);
  const seen = new Set<string>();
  results.forEach((r, i) => {
    if (seen.has(r.attr)) top.fail(`results[${i}].attr`, `repeats ${JSON.stringify(r.attr)}`);
    seen.add(r.attr);
  });

  const meta: ResultsFileContents['meta'] = {};
  for (const k of ['flake', 'nixVersion', 'sha', 'repository'] as const) {
    const v = top.str(o, k);
    if (v !== undefined) meta[k] = v;
  }
  if (meta.sha !== undefined && !/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(meta.sha))
    top.fail('sha', 'is not a commit id');
  if (meta.repository !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(meta.repository))
    top.fail('repository', 'is not owner/name');
  const systems = top.strings(o, 'systems');
  if (systems) meta.systems = systems;
  return { results, meta };
}
