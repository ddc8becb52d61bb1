// What the reporting sends, computed without a server: annotation placement and batching, check-run outputs within
// the API's limits, commit status descriptions, and reading results-json back.
import { describe, expect, it } from '@jest/globals';
import {
  aggregateOutput,
  annotationPath,
  attributeDescription,
  attributeOutput,
  batchAnnotations,
  OUTPUT_MAX,
  planAnnotations,
  readResultsFile,
} from '../../src/build/report/index.js';
import { InputError } from '../../src/errors.js';
import { countResults, resultsJson, type AttrResult } from '../../src/build/results.js';
import { attrResult as result } from '../support/build-results.js';

const SRC = `/nix/store/${'c'.repeat(32)}-source`;
const evalError = (name: string, file: string, line: number, relativeFile?: string) =>
  result(name, {
    status: 'eval-error',
    drvPath: '',
    outputs: {},
    attempts: 0,
    error: `error: boom in ${name}`,
    errorLocation: { file, line, column: 5, ...(relativeFile ? { relativeFile } : {}) },
  });

describe('annotations', () => {
  it('places locations in the workspace or the flake source, and sends the rest to the text', () => {
    const ws = '/home/runner/work/demo';
    expect(annotationPath({ file: `${SRC}/nix/a.nix`, line: 1, relativeFile: 'nix/a.nix' }, ws, '.')).toBe('nix/a.nix');
    expect(annotationPath({ file: `${ws}/sub/flake.nix`, line: 1 }, ws, '.')).toBe('sub/flake.nix');
    // A nixpkgs file, a file outside the workspace, a pseudo-file: nowhere in the repository.
    expect(annotationPath({ file: `/nix/store/${'d'.repeat(32)}-nixpkgs/lib.nix`, line: 1 }, ws, '.')).toBeUndefined();
    expect(annotationPath({ file: '/etc/passwd', line: 1 }, ws, '.')).toBeUndefined();
    expect(annotationPath({ file: '«string»', line: 1 }, ws, '.')).toBeUndefined();
    // A flake fetched from elsewhere: its files are not this repository's.
    expect(annotationPath({ file: `${SRC}/flake.nix`, line: 1, relativeFile: 'flake.nix' }, ws, 'github:o/r')).toBe(
      undefined,
    );
    // A path: flake's source is its own directory.
    expect(annotationPath({ file: `${SRC}/flake.nix`, line: 1, relativeFile: 'flake.nix' }, ws, 'path:./sub')).toBe(
      'sub/flake.nix',
    );
    expect(annotationPath({ file: `${SRC}/x`, line: 1, relativeFile: '../escape.nix' }, ws, '.')).toBeUndefined();
  });

  it('plans 120 evaluation errors as batches of 50, 50 and 20, with single-line columns', () => {
    const rs = [
      result('ok'),
      ...Array.from({ length: 120 }, (_, i) => evalError(`e${i}`, `${SRC}/flake.nix`, i + 1, 'flake.nix')),
      evalError('nixpkgs', `/nix/store/${'d'.repeat(32)}-nixpkgs/lib.nix`, 3),
      result('noloc', { status: 'eval-error', error: 'error: no position' }),
    ];
    const plan = planAnnotations(rs, '/ws', '.');
    expect(plan.annotations).toHaveLength(120);
    expect(plan.unplaced.map((r) => r.attr)).toEqual(['checks.x86_64-linux.nixpkgs', 'checks.x86_64-linux.noloc']);
    expect(plan.annotations[7]).toEqual({
      path: 'flake.nix',
      start_line: 8,
      end_line: 8,
      start_column: 5,
      end_column: 5,
      annotation_level: 'failure',
      title: 'Evaluation error in checks.x86_64-linux.e7',
      message: 'error: boom in e7',
    });
    expect(batchAnnotations(plan.annotations).map((b) => b.length)).toEqual([50, 50, 20]);
    expect(batchAnnotations([])).toEqual([[]]);
    expect(batchAnnotations(Array.from({ length: 50 })).map((b) => b.length)).toEqual([50]);
  });

  it('keeps an annotation message within 64 KiB and its title within 255 characters', () => {
    const r = evalError('x'.repeat(300), `${SRC}/flake.nix`, 1, 'flake.nix');
    r.error = `error: ${'€'.repeat(100_000)}`;
    const [a] = planAnnotations([r], '/ws', '.').annotations;
    expect(Buffer.byteLength(a!.message)).toBeLessThanOrEqual(64 * 1024);
    expect(a!.title.length).toBeLessThanOrEqual(255);
  });
});

describe('check-run outputs', () => {
  const huge = Array.from({ length: 5000 }, (_, i) => `log line ${i} ${'z'.repeat(40)}`);

  it('per failed attribute: status, duration, error and last lines in the summary; the long tail in text', () => {
    const r = result('broken', { status: 'failed', error: 'builder failed', logTail: huge, attempts: 2 });
    const out = attributeOutput(r);
    expect(out.title).toBe('build failed (1.5 s)');
    expect(out.summary).toContain('**Status:** ❌ build failed · **Duration:** 1.5 s');
    expect(out.summary).toContain('**Attempts:** 2');
    expect(out.summary).toContain('builder failed');
    expect(out.summary).toContain('Last 20 log lines:');
    expect(out.summary).toContain('log line 4999');
    expect(out.summary).not.toContain('log line 4979 ');
    expect(out.text!.length).toBeLessThanOrEqual(OUTPUT_MAX);
    expect(out.text).toMatch(/^```text\n\[… \d+ earlier characters cut, the last part follows\]\n/);
    expect(out.text).toContain(`log line 4999 ${'z'.repeat(40)}\n\`\`\``);
  });

  it('names the failed dependency', () => {
    const r = result('dep', { status: 'dependency-failed', failedDependency: '/nix/store/x-lib.drv' });
    expect(attributeOutput(r).summary).toContain('a dependency failed to build: `/nix/store/x-lib.drv`');
    expect(attributeDescription(r)).toBe('dependency failed (1.5 s): /nix/store/x-lib.drv failed');
  });

  it('the aggregate fits the limits however many failures there are', () => {
    const rs = Array.from({ length: 3000 }, (_, i) =>
      result(`f${i}`, { status: 'failed', error: `error: failed ${i}\nmore`, logTail: huge.slice(0, 200) }),
    );
    const out = aggregateOutput(
      rs,
      countResults(rs),
      { flake: '.', nixVersion: '2.8.0', systems: ['x86_64-linux'] } as never,
      [],
      [],
    );
    expect(out.title).toBe('3000 failed');
    expect(out.summary.length).toBeLessThanOrEqual(OUTPUT_MAX);
    expect(out.summary).toContain('| `checks.x86_64-linux.f0` | ❌ build failed | 1.5 s | `failed 0` |');
    expect(out.summary).toContain('2900 more: see the job summary');
    expect(out.text!.length).toBeLessThanOrEqual(OUTPUT_MAX);
    expect(out.text).toMatch(/_\d+ more not shown here \(text limit\)/);
  });

  it("shows Nix 2.34's message, not its first trace frame, as the error line", () => {
    const r = result('ev', {
      status: 'eval-error',
      error: 'error:\n       … while evaluating the attribute\n\n       error: undefined variable `x`',
    });
    expect(attributeDescription(r)).toBe('evaluation error (1.5 s): undefined variable `x`');
    const out = aggregateOutput(
      [r],
      countResults([r]),
      { flake: '.', nixVersion: '2.34.8', systems: [] } as never,
      [],
      [],
    );
    expect(out.summary).toContain('| `` undefined variable `x` `` |');
  });

  it('a status description is at most 140 characters', () => {
    const r = result('x', { status: 'eval-error', error: `error:\n  ${'long '.repeat(100)}` });
    const d = attributeDescription(r);
    expect(d.length).toBeLessThanOrEqual(140);
    expect(d).toMatch(/^evaluation error \(1\.5 s\): long long .*…$/);
  });
});

describe('readResultsFile', () => {
  const rs: AttrResult[] = [
    result('ok'),
    result('cached', { status: 'cached', attempts: 0, duration: 0, cachedAt: 'local' }),
    result('broken', { status: 'failed', error: 'e', logTail: ['a', 'b'] }),
    result('dep', { status: 'dependency-failed', failedDependency: '/nix/store/x.drv', error: 'd' }),
    evalError('eval', `${SRC}/flake.nix`, 3, 'flake.nix'),
    result('flaky', { status: 'flaky', attempts: 2, previousErrors: ['timed out'] }),
    { ...result('q'), attr: 'packages.x86_64-linux."a.b"', attrPath: ['packages', 'x86_64-linux', 'a.b'] },
  ];

  it('round-trips what resultsJson writes, with the meta', () => {
    const meta = {
      flake: '.',
      nixVersion: '2.34.8',
      sha: 'f'.repeat(40),
      repository: 'flake-ci/demo',
      systems: ['x86_64-linux'],
    };
    const back = readResultsFile(resultsJson(rs, meta));
    expect(back.meta).toEqual(meta);
    // resultsJson rounds durations to milliseconds; everything else comes back as it was.
    expect(back.results).toEqual(rs);
  });

  it("reads nix-fast-build's result file", () => {
    const text = JSON.stringify({
      results: [
        { type: 'EVAL', attr: 'checks.x86_64-linux.a', success: false, duration: 0.1, error: 'boom', outputs: {} },
        { type: 'BUILD', attr: 'checks.x86_64-linux.b', success: true, duration: 2, error: null, outputs: {} },
      ],
    });
    const back = readResultsFile(text).results;
    expect(back.map((r) => [r.attr, r.status, r.system])).toEqual([
      ['checks.x86_64-linux.a', 'eval-error', 'x86_64-linux'],
      ['checks.x86_64-linux.b', 'built', 'x86_64-linux'],
    ]);
  });

  it('names the problem in a bad file', () => {
    const bad = (text: string) => {
      try {
        readResultsFile(text);
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(bad('{nope')).toMatch(/^The results file is not JSON \(.*\)\. Pass the results-json file/);
    expect(bad('[]')).toContain('the top level is a list, expected an object');
    expect(bad('{"version":2,"results":[]}')).toContain(
      'version is number 2; this version of the action reads version 1',
    );
    expect(bad('{"results":{}}')).toContain('results is an object, expected a list of records');
    expect(bad('{"results":[{"attr":"a","status":"exploded"}]}')).toContain(
      'results[0].status is the string "exploded", expected one of built, cached',
    );
    expect(bad('{"results":[{"attr":"a","status":"built","duration":"1"}]}')).toContain(
      'results[0].duration is the string "1", expected a non-negative number',
    );
    expect(bad('{"results":[{"status":"built"}]}')).toContain('results[0].attr is missing');
    expect(bad('{"results":[{"attr":"a","status":"built","outputs":{"out":1}}]}')).toContain(
      'results[0].outputs.out is not a string',
    );
    expect(bad('{"sha":"main","results":[]}')).toContain('sha is not a commit id');
    expect(bad('{"results":[{"attr":"a","status":"built"},{"attr":"a","status":"built"}]}')).toContain(
      'results[1].attr repeats "a"',
    );
  });
});
