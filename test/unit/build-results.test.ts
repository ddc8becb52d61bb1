import { describe, expect, it } from '@jest/globals';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { assemble } from '../../src/build/engine.js';
import {
  cdata,
  countResults,
  junitXml,
  resultsJson,
  xmlAttr,
  xmlText,
  type AttrResult,
} from '../../src/build/results.js';
import { attrResult } from '../support/build-results.js';

const base = (name: string, extra: Partial<AttrResult>): AttrResult =>
  attrResult(name, { duration: 1.23456, ...extra });

const NASTY = 'quote " apos \' amp & lt < gt > cdata-end ]]> nul \u0000 bell \u0007 esc \u001b[31mred\u001b[0m \uFFFF';

const results: AttrResult[] = [
  base('ok', {}),
  base('cached', { status: 'cached', duration: 0, attempts: 0, cachedAt: 'https://cache.example' }),
  base('fail', { status: 'failed', error: `builder failed: ${NASTY}`, logTail: ['line 1', NASTY, ']]>]]>'] }),
  base('dep', { status: 'dependency-failed', error: 'dependency x failed', failedDependency: '/nix/store/x.drv' }),
  base('eval', {
    status: 'eval-error',
    drvPath: '',
    outputs: {},
    attempts: 0,
    error: 'error: boom\n  at /x/flake.nix:3:4:',
    errorLocation: { file: '/x/flake.nix', line: 3, column: 4, relativeFile: 'flake.nix' },
  }),
  base('infra', { status: 'infra-failure', attempts: 2, error: 'timed out after 3 seconds' }),
  base('flaky', { status: 'flaky', attempts: 2, previousErrors: ['timed out after 3 seconds'] }),
  {
    ...base('x', {}),
    attr: 'packages.x86_64-linux."a.b"',
    attrPath: ['packages', 'x86_64-linux', 'a.b'],
  },
];

describe('counts', () => {
  it('groups statuses the way the action outputs them', () => {
    expect(countResults(results)).toEqual({
      built: 3,
      cached: 1,
      failed: 3,
      evalErrors: 1,
      flaky: 1,
      dependencyFailed: 1,
      infraFailures: 1,
      total: 8,
    });
  });
});

describe('results-json', () => {
  const doc = JSON.parse(resultsJson(results, { flake: '.', nixVersion: '2.34.8' })) as {
    results: Record<string, unknown>[];
    counts: Record<string, number>;
    flake: string;
  };

  it("is a superset of nix-fast-build's result file", () => {
    for (const r of doc.results) {
      expect(Object.keys(r)).toEqual(
        expect.arrayContaining(['type', 'attr', 'success', 'duration', 'error', 'outputs']),
      );
    }
    expect(doc.results[0]).toMatchObject({ type: 'BUILD', success: true, error: null, duration: 1.235 });
    expect(doc.results[4]).toMatchObject({
      type: 'EVAL',
      success: false,
      status: 'eval-error',
      errorLocation: { relativeFile: 'flake.nix', line: 3 },
    });
    expect(doc.results[6]).toMatchObject({ status: 'flaky', success: true, attempts: 2 });
    expect(doc.results[3]).toMatchObject({ failedDependency: '/nix/store/x.drv', success: false });
    expect(doc.counts.failed).toBe(3);
    expect(doc.flake).toBe('.');
  });
});

describe('JUnit XML', () => {
  const xml = junitXml(results, { timestamp: '2025-01-02T03:04:05.678Z' });
  const parsed = new XMLParser({ ignoreAttributes: false, cdataPropName: '#cdata', trimValues: false }).parse(xml);

  it('is well-formed and carries no character XML forbids', () => {
    expect(XMLValidator.validate(xml)).toBe(true);
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/);
  });

  it('has one suite per output and system and one testcase per attribute', () => {
    const suites = parsed.testsuites.testsuite;
    expect(parsed.testsuites).toMatchObject({ '@_tests': '8', '@_failures': '2', '@_errors': '2' });
    expect(suites.map((s: Record<string, string>) => s['@_name'])).toEqual([
      'checks.x86_64-linux',
      'packages.x86_64-linux',
    ]);
    expect(suites[0]).toMatchObject({ '@_tests': '7', '@_timestamp': '2025-01-02T03:04:05', '@_skipped': '0' });
    expect(suites[1].testcase).toMatchObject({ '@_name': 'a.b', '@_classname': 'packages.x86_64-linux' });
    const names = suites[0].testcase.map((c: Record<string, string>) => c['@_name']);
    expect(names).toEqual(['ok', 'cached', 'fail', 'dep', 'eval', 'infra', 'flaky']);
  });

  it('reports failures and errors with the log tail in CDATA, escaped', () => {
    const cases = parsed.testsuites.testsuite[0].testcase;
    const fail = cases[2].failure;
    expect(fail['@_type']).toBe('failed');
    expect(fail['@_message']).toBe(`builder failed: ${xmlText(NASTY)}`);
    const body: string = Array.isArray(fail['#cdata']) ? fail['#cdata'].join('') : fail['#cdata'];
    expect(body).toContain('--- last log lines ---\nline 1\n');
    expect(body).toContain('cdata-end ]]>');
    expect(body).toContain(']]>]]>');
    expect(body).toContain('red');
    expect(cases[3].failure['@_type']).toBe('dependency-failed');
    expect(cases[4].error['@_type']).toBe('eval-error');
    expect(cases[5].error['@_type']).toBe('infra-failure');
    expect(cases[0].failure).toBeUndefined();
    expect(cases[6]['system-out']['#cdata']).toContain('passed on attempt 2');
  });

  it('escapes attributes and splits CDATA ends', () => {
    expect(xmlAttr('a"b\'c<d>e&f\ng')).toBe('a&quot;b&apos;c&lt;d&gt;e&amp;f&#10;g');
    expect(cdata('x]]>y')).toBe('<![CDATA[x]]]]><![CDATA[>y]]>');
    expect(xmlText('a\u0000b\uD800c\u001b[1md')).toBe('abcd');
  });
});

describe('assembling results', () => {
  it('keeps selection order and merges evaluation, cache and build outcomes', () => {
    const drv = {
      drvPath: '/nix/store/d.drv',
      outputs: { out: '/nix/store/o' },
      system: 'x86_64-linux',
      name: 'n',
      features: ['kvm'],
    };
    const sel = (n: string) => ({ attr: `checks.s.${n}`, attrPath: ['checks', 's', n], system: 's' });
    const out = assemble(
      [
        { ...sel('a'), ok: true, drv, evalSeconds: 0.1 },
        { ...sel('b'), ok: false, error: { message: 'error: x', summary: 'x' }, evalSeconds: 0.2 },
        { ...sel('c'), ok: true, drv, evalSeconds: 0.1 },
        { ...sel('d'), ok: true, drv, evalSeconds: 0.1 },
      ],
      new Map([['checks.s.c', 'local']]),
      new Map([['checks.s.a', { attr: 'checks.s.a', status: 'built' as const, duration: 2, attempts: 1 }]]),
    );
    expect(out.map((r) => [r.attr, r.status])).toEqual([
      ['checks.s.a', 'built'],
      ['checks.s.b', 'eval-error'],
      ['checks.s.c', 'cached'],
      ['checks.s.d', 'infra-failure'],
    ]);
    expect(out[0]).toMatchObject({ features: ['kvm'], duration: 2, drvPath: '/nix/store/d.drv' });
    expect(out[1]).toMatchObject({ duration: 0.2, error: 'error: x', drvPath: '' });
    expect(out[2]).toMatchObject({ cachedAt: 'local', attempts: 0 });
  });
});
