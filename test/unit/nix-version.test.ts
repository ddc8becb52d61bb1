import { describe, expect, it } from '@jest/globals';
import {
  atLeast,
  compareVersions,
  formatVersion,
  isLix,
  nixFeatures,
  parseNixVersion,
  PATH_INFO_JSON_FORMAT,
} from '../../src/nix/version.js';

describe('parseNixVersion', () => {
  it('parses Debian 2.8 and current 2.34 output', () => {
    expect(parseNixVersion('nix (Nix) 2.8.0\n')).toEqual({
      program: 'nix',
      variant: 'Nix',
      major: 2,
      minor: 8,
      patch: 0,
      pre: '',
    });
    expect(formatVersion(parseNixVersion('nix (Nix) 2.34.8'))).toBe('2.34.8');
  });

  it('parses other programs, Determinate Nix and Lix', () => {
    expect(parseNixVersion('nix-env (Nix) 2.18.1').program).toBe('nix-env');
    const det = parseNixVersion('nix (Determinate Nix 3.6.2) 2.29.0');
    expect(det.variant).toBe('Determinate Nix 3.6.2');
    expect(formatVersion(det)).toBe('2.29.0');
    const lix = parseNixVersion('nix (Lix, like Nix) 2.92.0-dev-pre20250117-0d14c2b');
    expect(isLix(lix)).toBe(true);
    expect(lix.pre).toBe('-dev-pre20250117-0d14c2b');
  });

  it('keeps pre-release suffixes and tolerates a missing patch and verbose output', () => {
    const v = parseNixVersion('nix (Nix) 2.25.0pre20240101_abcdef');
    expect([v.major, v.minor, v.patch, v.pre]).toEqual([2, 25, 0, 'pre20240101_abcdef']);
    expect(parseNixVersion('nix (Nix) 2.4').patch).toBe(0);
    expect(parseNixVersion('nix (Nix) 2.24.9\nSystem type: x86_64-linux\n').minor).toBe(24);
  });

  it('throws a clear error on anything else', () => {
    expect(() => parseNixVersion('')).toThrow(/Cannot parse the Nix version from ""/);
    expect(() => parseNixVersion('bash: nix: command not found')).toThrow(/expected e.g. 'nix \(Nix\) 2.24.0'/);
    expect(() => parseNixVersion('nix 2.8.0')).toThrow(Error);
  });
});

describe('compareVersions and atLeast', () => {
  it('orders numerically, pre-releases before their release', () => {
    expect(compareVersions('2.8.0', '2.19')).toBeLessThan(0);
    expect(compareVersions('2.34.8', '2.34.8')).toBe(0);
    expect(compareVersions('2.10.0', '2.9.1')).toBeGreaterThan(0);
    expect(compareVersions('2.25.0pre20240101_abcdef', '2.25.0')).toBeLessThan(0);
    expect(compareVersions('2.25.0pre20240101_a', '2.25.0pre20240202_b')).toBeLessThan(0);
    expect(compareVersions('2.25.0pre20240101_a', '2.24.9')).toBeGreaterThan(0);
    const sorted = ['2.19.0', '2.8.0', '2.19.0pre1', '2.3.16'].sort(compareVersions);
    expect(sorted).toEqual(['2.3.16', '2.8.0', '2.19.0pre1', '2.19.0']);
  });

  it('atLeast compares with a MAJOR.MINOR threshold', () => {
    expect(atLeast(parseNixVersion('nix (Nix) 2.19.0'), '2.19')).toBe(true);
    expect(atLeast(parseNixVersion('nix (Nix) 2.18.9'), '2.19')).toBe(false);
    expect(atLeast(parseNixVersion('nix (Nix) 2.19.0pre20231001_x'), '2.19')).toBe(false);
    expect(() => atLeast(parseNixVersion('nix (Nix) 2.8.0'), 'latest')).toThrow(/Invalid version/);
  });
});

describe('nixFeatures', () => {
  it('2.8 has none of the newer flags', () => {
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.8.0'))).toEqual({
      printOutPaths: false,
      pathInfoJsonIsObject: false,
      jsonFormatFlag: false,
    });
  });

  it('switches at 2.9, 2.19 and 2.33', () => {
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.9.0')).printOutPaths).toBe(true);
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.18.1')).pathInfoJsonIsObject).toBe(false);
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.19.2')).pathInfoJsonIsObject).toBe(true);
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.32.4')).jsonFormatFlag).toBe(false);
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.33.0')).jsonFormatFlag).toBe(true);
    expect(nixFeatures(parseNixVersion('nix (Nix) 2.34.8'))).toEqual({
      printOutPaths: true,
      pathInfoJsonIsObject: true,
      jsonFormatFlag: true,
    });
    expect(nixFeatures(parseNixVersion('nix (Determinate Nix 3.6.2) 2.29.0')).jsonFormatFlag).toBe(false);
    expect(PATH_INFO_JSON_FORMAT).toBe('1');
  });

  it('does not compare Lix version numbers with Nix ones', () => {
    expect(nixFeatures(parseNixVersion('nix (Lix, like Nix) 2.92.0'))).toEqual({
      printOutPaths: true,
      pathInfoJsonIsObject: false,
      jsonFormatFlag: false,
    });
  });
});
