import { describe, expect, it } from '@jest/globals';
import { InputError } from '../../src/errors.js';
import { getBoolean, getDuration, getEnum, getInteger, getList, getSecret } from '../../src/platform/inputs.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

describe('typed inputs', () => {
  it('parses booleans and names the input on bad values', () => {
    const p = new RecordingPlatform({ a: 'TRUE', b: 'no', c: 'maybe' });
    expect(getBoolean(p, 'a', false)).toBe(true);
    expect(getBoolean(p, 'b', true)).toBe(false);
    expect(getBoolean(p, 'unset', true)).toBe(true);
    expect(() => getBoolean(p, 'c', true)).toThrow(InputError);
    expect(() => getBoolean(p, 'c', true)).toThrow(/'c' must be true or false, got 'maybe'/);
  });

  it('parses enums listing the allowed values', () => {
    const p = new RecordingPlatform({ source: 'tarbal' });
    expect(() => getEnum(p, 'source', ['auto', 'tarball'] as const, 'auto')).toThrow(
      "Input 'source' must be one of auto, tarball; got 'tarbal'.",
    );
    expect(getEnum(p, 'missing', ['auto', 'tarball'] as const, 'auto')).toBe('auto');
  });

  it('parses lists from lines, commas and comments', () => {
    const p = new RecordingPlatform({ l: 'a, b\n  c # comment\n# only comment\n\nd e' });
    expect(getList(p, 'l')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('parses durations and integers', () => {
    const p = new RecordingPlatform({ d: '1h30m', s: '45', bad: '5 minutes', n: '7', neg: '-1' });
    expect(getDuration(p, 'd', 0)).toBe(5_400_000);
    expect(getDuration(p, 's', 0)).toBe(45_000);
    expect(() => getDuration(p, 'bad', 0)).toThrow(/'bad' must be a duration/);
    expect(getInteger(p, 'n', 0)).toBe(7);
    expect(() => getInteger(p, 'neg', 0)).toThrow(/'neg' must be a whole number/);
  });

  it('registers secrets before returning them', () => {
    const p = new RecordingPlatform({ token: 'ghs_abc' });
    expect(getSecret(p, 'token')).toBe('ghs_abc');
    expect(p.secrets).toEqual(['ghs_abc']);
  });
});
