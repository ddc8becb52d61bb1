import { describe, expect, it } from '@jest/globals';
import {
  formatAttrPath,
  globToPosixRegex,
  globToRegExp,
  isGlob,
  nixSelect,
  nixString,
  parseAttrPath,
} from '../../src/build/attr-path.js';
import { defaultEvalWorkers, evalExpression, parseDrvInfo } from '../../src/build/evaluate.js';
import { compilePattern, discoveryExpression, flattenTree, patternsFor } from '../../src/build/select.js';
import { InputError } from '../../src/errors.js';

const SYSTEMS = ['x86_64-linux'];

describe('attribute paths', () => {
  it('parses and formats quoted segments', () => {
    expect(parseAttrPath('checks.x86_64-linux.foo')).toEqual(['checks', 'x86_64-linux', 'foo']);
    expect(parseAttrPath('packages.x86_64-linux."a.b"')).toEqual(['packages', 'x86_64-linux', 'a.b']);
    expect(parseAttrPath('a.""')).toEqual(['a', '']);
    expect(formatAttrPath(['packages', 'x86_64-linux', 'a.b'])).toBe('packages.x86_64-linux."a.b"');
    expect(formatAttrPath(['checks', 'x86_64-linux', "vm-test'"])).toBe("checks.x86_64-linux.vm-test'");
    expect(formatAttrPath(['checks', '1x'])).toBe('checks."1x"');
    expect(() => parseAttrPath('checks..foo')).toThrow(InputError);
    expect(() => parseAttrPath('checks."foo')).toThrow(/Unterminated/);
  });

  it('turns globs into whole-name regexes for Nix and JavaScript', () => {
    expect(isGlob('vm-*')).toBe(true);
    expect(isGlob('x86_64-linux')).toBe(false);
    expect(globToPosixRegex('vm-*')).toBe('vm-.*');
    expect(globToPosixRegex('a.b?')).toBe('a\\.b.');
    expect(globToPosixRegex('[!ab]x[cd]')).toBe('[^ab]x[cd]');
    expect(globToPosixRegex('(x)+{y}|$^')).toBe('\\(x\\)\\+\\{y\\}\\|\\$\\^');
    const re = globToRegExp('vm-*');
    expect(['vm-boot', 'vm-', 'unit-vm-x'].map((s) => re.test(s))).toEqual([true, true, false]);
    expect(globToRegExp('*-linux').test('x86_64-linux')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });

  it('quotes Nix strings so user text can never interpolate', () => {
    expect(nixString('a"b\\c${d}\n')).toBe('"a\\"b\\\\c\\${d}\\n"');
    expect(nixSelect('root', ['x86_64-linux', 'a.b'])).toBe('root."x86_64-linux"."a.b"');
  });
});

describe('selection patterns', () => {
  it('checks and packages cover the wanted systems', () => {
    expect(patternsFor('checks', [], ['x86_64-linux', 'aarch64-linux'])).toEqual([
      { root: 'checks', rest: [{ names: ['x86_64-linux', 'aarch64-linux'] }, { re: '.*' }] },
    ]);
    expect(patternsFor('packages', [], SYSTEMS)[0]?.root).toBe('packages');
  });

  it('restricts a system glob to the wanted systems but keeps a literal system', () => {
    expect(compilePattern('checks.*.vm-*', ['x86_64-linux', 'aarch64-darwin'])).toEqual({
      root: 'checks',
      rest: [{ names: ['x86_64-linux', 'aarch64-darwin'] }, { re: 'vm-.*' }],
    });
    expect(compilePattern('checks.*-linux.*', ['x86_64-linux', 'aarch64-darwin']).rest[0]).toEqual({
      names: ['x86_64-linux'],
    });
    expect(compilePattern('packages.aarch64-linux.*', SYSTEMS).rest[0]).toEqual({ names: ['aarch64-linux'] });
    // Not a per-system output: the second segment is a plain name glob.
    expect(compilePattern('hydraJobs.*.x86_64-linux', SYSTEMS).rest).toEqual([
      { re: '.*' },
      { names: ['x86_64-linux'] },
    ]);
  });

  it('rejects patterns that would need every output evaluated', () => {
    expect(() => compilePattern('*.x86_64-linux.foo', SYSTEMS)).toThrow(InputError);
    expect(() => patternsFor('attributes', [], SYSTEMS)).toThrow(/at least one pattern/);
  });

  it('builds one discovery expression that lists names without forcing leaves', () => {
    const expr = discoveryExpression([[{ names: ['x86_64-linux'] }, { re: 'vm-.*' }]]);
    expect(expr).toContain('builtins.fromJSON "[[{\\"names\\":[\\"x86_64-linux\\"]},{\\"re\\":\\"vm-.*\\"}]]"');
    expect(expr).toContain('if segs == [ ] then true');
    expect(expr).toContain('builtins.tryEval');
  });

  it('flattens the walker trees into attribute paths', () => {
    const tree = { 'x86_64-linux': { a: true, 'b.c': true }, 'aarch64-linux': {} };
    expect(flattenTree(['checks'], tree)).toEqual([
      ['checks', 'x86_64-linux', 'a'],
      ['checks', 'x86_64-linux', 'b.c'],
    ]);
    expect(flattenTree(['checks'], true)).toEqual([['checks']]);
  });
});

describe('evaluation expression', () => {
  it('selects the attribute inside --apply and refuses non-derivations with a clear message', () => {
    const expr = evalExpression('checks.x86_64-linux.foo', ['x86_64-linux', 'foo']);
    expect(expr).toContain('d = root."x86_64-linux"."foo";');
    expect(expr).toContain('is not a derivation');
    expect(expr).toContain('requiredSystemFeatures');
  });

  it('parses the evaluation result', () => {
    const info = parseDrvInfo(
      '{"drvPath":"/nix/store/a-x.drv","features":["nixos-test",3],"name":"x","outputs":{"out":"/nix/store/b-x"},' +
        '"system":"x86_64-linux"}',
    );
    expect(info).toEqual({
      drvPath: '/nix/store/a-x.drv',
      outputs: { out: '/nix/store/b-x' },
      system: 'x86_64-linux',
      name: 'x',
      features: ['nixos-test'],
    });
    expect(() => parseDrvInfo('{"drvPath":}')).toThrow();
  });

  it('uses 2 to 4 evaluation workers', () => {
    expect([1, 2, 3, 16].map((n) => defaultEvalWorkers(n))).toEqual([2, 2, 3, 4]);
  });
});
