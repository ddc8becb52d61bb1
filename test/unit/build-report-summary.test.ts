// The job summary of actions/build: content, escaping, and the 1 MiB cap (GitHub refuses larger step summaries).
import { describe, expect, it } from '@jest/globals';
import { renderBuildSummary, SUMMARY_MAX_BYTES } from '../../src/build/report/index.js';
import { codeBlock, inlineCode, keepTail, mdEscape } from '../../src/build/report/text.js';
import { countResults, type AttrResult } from '../../src/build/results.js';
import { attrResult as result } from '../support/build-results.js';

const meta = { flake: '.', nixVersion: '2.34.8', systems: ['x86_64-linux'] };
const render = (rs: AttrResult[], extra = {}) => renderBuildSummary(rs, countResults(rs), { ...meta, ...extra });
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('renderBuildSummary', () => {
  const results = [
    result('ok'),
    result('cached', { status: 'cached', duration: 0, attempts: 0, cachedAt: 'https://cache.example' }),
    result('broken', { status: 'failed', error: 'builder failed with exit code 1', logTail: ['compiling', 'boom'] }),
    result('dep', { status: 'dependency-failed', failedDependency: '/nix/store/x-broken.drv', error: 'dep failed' }),
    result('eval', {
      status: 'eval-error',
      drvPath: '',
      outputs: {},
      attempts: 0,
      error: 'error: undefined variable `foo`',
      errorLocation: { file: '/nix/store/x-source/flake.nix', line: 7, column: 3, relativeFile: 'flake.nix' },
    }),
    result('flaky', { status: 'flaky', attempts: 2, previousErrors: ['timed out'] }),
  ];

  it('has a header with the counts, a table with problems first, and collapsed failure logs', () => {
    const md = render(results, { seconds: 63, reportedVia: 'checks' });
    expect(md).toMatch(
      /^### ❌ Nix build: 2 failed, 1 evaluation error, 2 built \(1 flaky\), 1 cached \(6 attributes\)/,
    );
    expect(md).toContain('Flake . · x86\\_64-linux · Nix 2.34.8 · 63 s');
    expect(md).toContain('Also reported as GitHub check runs.');
    const rows = md.split('\n').filter((l) => l.startsWith('| checks'));
    expect(rows.map((r) => r.split(' | ')[1])).toEqual([
      '🚫 evaluation error',
      '❌ build failed',
      '⛔ dependency failed',
      '⚠️ flaky (passed after a retry)',
      '✅ built',
      '💾 cached',
    ]);
    expect(rows[5]).toContain('cached (https://cache.example)');
    expect(rows[3]).toContain('built (2 attempts)');
    expect(md.match(/<details>/g)).toHaveLength(3);
    expect(md).toContain(
      '<details><summary>❌ <code>checks.x86_64-linux.broken</code>: build failed (1.5 s)</summary>',
    );
    expect(md).toContain('builder failed with exit code 1\n--- last log lines ---\ncompiling\nboom\n```');
    expect(md).toContain('failed dependency: /nix/store/x-broken.drv');
    expect(md).toContain('at flake.nix:7:3');
    expect(md).not.toContain('✂️');
  });

  it('says when everything passed', () => {
    const md = render([result('a')]);
    expect(md).toMatch(/^### ✅ Nix build: 1 built \(1 attribute\)/);
    expect(md).not.toContain('<details>');
  });

  it('escapes Markdown and HTML in attribute names and keeps logs inside their code block', () => {
    const nasty = 'a|b<script>alert(1)</script>*x*_y_[l](u)`c`';
    const md = render([
      result(nasty, {
        status: 'failed',
        error: 'x',
        logTail: ['```', '</details>', '<img src=x onerror=alert(1)>', '\u001b[31mred\u001b[0m', 'bell\u0007'],
      }),
    ]);
    const row = md.split('\n').find((l) => l.startsWith('| checks')) as string;
    // Exactly 5 cells: the `|` inside the name is escaped.
    expect(row.split(/(?<!\\)\|/).length - 2).toBe(5);
    expect(row).not.toContain('<script>');
    expect(row).toContain('a\\|b&lt;script&gt;alert(1)&lt;/script&gt;\\*x\\*\\_y\\_\\[l\\](u)\\`c\\`');
    expect(md).toContain('<code>checks.x86_64-linux.a|b&lt;script&gt;');
    // The log's own ``` cannot close the block: the fence is longer.
    expect(md).toContain(
      '````text\nx\n--- last log lines ---\n```\n</details>\n<img src=x onerror=alert(1)>\nred\nbell\n````',
    );
    expect(md).not.toContain('\u001b');
  });

  it('stays under 1 MiB with 5,000 attributes and huge logs, trimming log tails first and saying so', () => {
    const huge = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(200)}`);
    const rs = Array.from({ length: 5000 }, (_, i) =>
      i % 10 === 0 ? result(`f${i}`, { status: 'failed', error: `failed ${i}`, logTail: huge }) : result(`p${i}`),
    );
    const md = render(rs);
    expect(bytes(md)).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(bytes(md)).toBeGreaterThan(SUMMARY_MAX_BYTES * 0.9);
    // Every row is there; the logs were shortened, and the newest lines kept.
    expect(md.split('\n').filter((l) => l.startsWith('| checks'))).toHaveLength(5000);
    expect(md).toContain('earlier characters cut');
    expect(md).toContain(`line 1999 ${'x'.repeat(200)}`);
    expect(md).toMatch(/✂️ Trimmed to stay under GitHub's 1 MiB job summary limit: .*log tail\(s\) shortened/);
  });

  it('cuts rows (passing ones first) only when the table alone does not fit', () => {
    const long = 'n'.repeat(400);
    const rs = Array.from({ length: 5000 }, (_, i) =>
      i < 100
        ? result(`${long}-f${i}`, { status: 'failed', error: 'e', logTail: ['x'.repeat(100_000)] })
        : result(`${long}-p${i}`),
    );
    const md = render(rs);
    expect(bytes(md)).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    const rows = md.split('\n').filter((l) => l.startsWith('| checks'));
    expect(rows.length).toBeLessThan(5000);
    expect(rows.slice(0, 100).every((r) => r.includes('build failed'))).toBe(true);
    expect(md).toMatch(new RegExp(`${5000 - rows.length} of 5000 table rows not shown`));
    // Some failure logs are still shown.
    expect(md).toContain('<details>');
  });

  it('honours a smaller byte budget', () => {
    const rs = Array.from({ length: 50 }, (_, i) =>
      result(`f${i}`, { status: 'failed', error: 'e', logTail: ['y'.repeat(10_000)] }),
    );
    const md = render(rs, { maxBytes: 50_000 });
    expect(bytes(md)).toBeLessThanOrEqual(50_000);
    expect(md).toContain('✂️');
  });
});

describe('text helpers', () => {
  it('keepTail keeps the end within the limit and says how much was cut', () => {
    const text = Array.from({ length: 10_000 }, (_, i) => `log line ${i}`).join('\n');
    const { text: cut, cut: n } = keepTail(text, 65_535);
    expect(cut.length).toBeLessThanOrEqual(65_535);
    expect(cut.length).toBeGreaterThan(65_000);
    expect(cut.endsWith('log line 9999')).toBe(true);
    expect(cut).toMatch(/^\[… \d+ earlier characters cut, the last part follows\]\nlog line \d+\n/);
    expect(cut).toContain(`[… ${n} earlier characters cut`);
    expect(keepTail('short', 10)).toEqual({ text: 'short', cut: 0 });
  });

  it('keepTail by bytes does not split multi-byte characters', () => {
    const text = '🙂'.repeat(50_000);
    const { text: cut } = keepTail(text, 10_000, bytes);
    expect(bytes(cut)).toBeLessThanOrEqual(10_000);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });

  it('escapes inline text, code spans and blocks', () => {
    expect(mdEscape('a\nb | <c> & *d*')).toBe('a b \\| &lt;c&gt; &amp; \\*d\\*');
    expect(inlineCode('a`b')).toBe('``a`b``');
    expect(inlineCode('`x')).toBe('`` `x ``');
    expect(codeBlock('````\n')).toBe('`````text\n````\n`````');
  });
});
