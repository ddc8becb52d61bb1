/**
 * The pieces under the flake.lock lint: the release-channel data file (shape and sources), branch verdicts by
 * date, source recognition, and the line scanner.
 */
import { describe, expect, it } from '@jest/globals';
import { judgeBranch, releaseSupported, supportedChannels } from '../../src/build/lint/channels.js';
import { keyLines, pathKey } from '../../src/build/lint/json-lines.js';
import { RELEASE_CHANNELS } from '../../src/build/lint/release-channels.js';
import { parseAttrs } from '../../src/build/lint/source.js';

const at = (iso: string): Date => new Date(`${iso}T12:00:00Z`);
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

describe('release-channels data file', () => {
  it('records dates, evidence and published sources for every release, newest first', () => {
    expect(RELEASE_CHANNELS.lastChecked).toMatch(ISO_DATE);
    expect(RELEASE_CHANNELS.searchedOn).toMatch(ISO_DATE);
    expect(RELEASE_CHANNELS.lastChecked <= RELEASE_CHANNELS.searchedOn).toBe(true);
    const numbers = RELEASE_CHANNELS.releases.map((r) => Number(r.release.replace('.', '')));
    expect(numbers).toEqual([...numbers].sort((a, b) => b - a));
    for (const r of RELEASE_CHANNELS.releases) {
      expect(r.release).toMatch(/^\d{2}\.(05|11)$/);
      expect(r.endOfSupport).toMatch(ISO_DATE);
      expect(Number.isNaN(Date.parse(r.endOfSupport))).toBe(false);
      if (r.released) expect(r.released < r.endOfSupport).toBe(true);
      expect(r.evidence.length).toBeGreaterThan(20);
      expect(r.sources.length).toBeGreaterThan(0);
      for (const s of r.sources) expect(s).toMatch(/^https:\/\//);
    }
    expect(RELEASE_CHANNELS.rolling.branches).toEqual(['nixos-unstable', 'nixos-unstable-small', 'nixpkgs-unstable']);
  });

  it('end of support is the whole last day, in UTC', () => {
    const r2605 = RELEASE_CHANNELS.releases.find((r) => r.release === '26.05');
    expect(r2605?.endOfSupport).toBe('2026-12-31');
    if (!r2605) return;
    expect(releaseSupported(r2605, new Date('2026-12-31T23:59:59.999Z'))).toBe(true);
    expect(releaseSupported(r2605, new Date('2027-01-01T00:00:00Z'))).toBe(false);
  });
});

describe('judgeBranch', () => {
  it('accepts the unstable channels on any date', () => {
    for (const b of ['nixos-unstable', 'nixos-unstable-small', 'nixpkgs-unstable']) {
      expect(judgeBranch(b, at('2030-01-01')).kind).toBe('supported');
    }
  });

  it('accepts -small and -darwin variants of a supported release, and refs/heads/ prefixes', () => {
    for (const b of ['nixos-26.05', 'nixos-26.05-small', 'nixpkgs-26.05-darwin', 'refs/heads/nixos-26.05']) {
      expect(judgeBranch(b, at('2026-11-22')).kind).toBe('supported');
    }
  });

  it('follows the published end-of-support dates', () => {
    expect(judgeBranch('nixos-25.11', at('2026-06-30')).kind).toBe('supported');
    expect(judgeBranch('nixos-25.11', at('2026-07-01'))).toMatchObject({ kind: 'end-of-life', release: '25.11' });
    expect(judgeBranch('nixpkgs-25.11-darwin', at('2026-07-01')).kind).toBe('end-of-life');
    expect(judgeBranch('nixos-26.05-small', at('2027-01-01')).kind).toBe('end-of-life');
    expect(judgeBranch('nixos-25.05', at('2025-12-31')).kind).toBe('supported');
    expect(judgeBranch('nixos-25.05', at('2026-01-01')).kind).toBe('end-of-life');
  });

  it('calls releases older than a listed end-of-life release end of life, and leaves newer ones alone', () => {
    expect(judgeBranch('nixos-21.05', at('2026-11-22'))).toMatchObject({
      kind: 'end-of-life',
      olderThan: { release: '22.11' },
    });
    expect(judgeBranch('nixos-23.11-small', at('2026-11-22'))).toMatchObject({ olderThan: { release: '24.05' } });
    expect(judgeBranch('nixos-26.11', at('2026-11-22'))).toEqual({ kind: 'unknown-release', release: '26.11' });
    // Between two supported listed releases and not listed itself: no such release.
    expect(judgeBranch('nixos-26.02', at('2026-06-01'))).toMatchObject({ kind: 'not-a-channel', what: 'other' });
  });

  it('master, release-YY.MM and other branches are not channels', () => {
    expect(judgeBranch('master', at('2026-11-22'))).toEqual({ kind: 'not-a-channel', what: 'development' });
    expect(judgeBranch('release-26.05', at('2026-11-22'))).toEqual({
      kind: 'not-a-channel',
      what: 'release-branch',
      release: '26.05',
    });
    expect(judgeBranch('release-24.05', at('2026-11-22')).kind).toBe('end-of-life');
    expect(judgeBranch('staging-next', at('2026-11-22'))).toMatchObject({ kind: 'not-a-channel', what: 'other' });
    expect(judgeBranch('haskell-updates', at('2026-11-22'))).toMatchObject({ kind: 'not-a-channel' });
    expect(judgeBranch('staging-24.11', at('2026-11-22')).kind).toBe('end-of-life');
  });

  it('supportedChannels lists the current release channels, then the rolling ones', () => {
    expect(supportedChannels(at('2026-11-22'))).toEqual([
      'nixos-26.05',
      'nixos-unstable',
      'nixos-unstable-small',
      'nixpkgs-unstable',
    ]);
    expect(supportedChannels(at('2026-06-15')).slice(0, 2)).toEqual(['nixos-26.05', 'nixos-25.11']);
  });
});

describe('parseAttrs', () => {
  it('recognises NixOS/nixpkgs in every spelling Nix writes', () => {
    const official = [
      { type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' },
      { type: 'github', owner: 'nixos', repo: 'nixpkgs' },
      { type: 'git', url: 'https://github.com/NixOS/nixpkgs' },
      { type: 'git', url: 'https://github.com/NixOS/nixpkgs.git' },
      { type: 'git', url: 'ssh://git@github.com/NixOS/nixpkgs.git' },
      { type: 'git', url: 'git+ssh://git@github.com/nixos/nixpkgs' },
      { type: 'git', url: 'git@github.com:NixOS/nixpkgs.git' },
      { type: 'tarball', url: 'https://channels.nixos.org/nixos-26.05/nixexprs.tar.xz' },
      { type: 'tarball', url: 'https://nixos.org/channels/nixpkgs-unstable/nixexprs.tar.xz' },
      { type: 'tarball', url: 'https://releases.nixos.org/nixos/26.05/nixos-26.05.1.abc/nixexprs.tar.xz' },
      { type: 'tarball', url: 'https://github.com/NixOS/nixpkgs/archive/nixos-26.05.tar.gz' },
      { type: 'tarball', url: 'https://codeload.github.com/NixOS/nixpkgs/tar.gz/refs/heads/nixos-26.05' },
      { type: 'tarball', url: 'https://flakehub.com/f/NixOS/nixpkgs/0.2605.1.tar.gz' },
    ];
    for (const a of official) expect(parseAttrs(a)).toMatchObject({ nixpkgs: true, official: true });
  });

  it('reads the branch from refs and channel URLs, and treats a bare rev as a pin', () => {
    expect(parseAttrs({ type: 'git', url: 'https://github.com/NixOS/nixpkgs', ref: 'refs/heads/master' })?.ref).toBe(
      'refs/heads/master',
    );
    expect(
      parseAttrs({ type: 'tarball', url: 'https://channels.nixos.org/nixos-26.05-small/nixexprs.tar.xz' }),
    ).toMatchObject({ ref: 'nixos-26.05-small', refField: 'url' });
    expect(
      parseAttrs({ type: 'tarball', url: 'https://github.com/NixOS/nixpkgs/archive/refs/heads/nixos-unstable.tar.gz' })
        ?.ref,
    ).toBe('nixos-unstable');
    const rev = 'a'.repeat(40);
    expect(
      parseAttrs({ type: 'tarball', url: `https://github.com/NixOS/nixpkgs/archive/${rev}.tar.gz` }),
    ).toMatchObject({
      pinned: true,
      ref: undefined,
    });
    expect(parseAttrs({ type: 'github', owner: 'NixOS', repo: 'nixpkgs', rev })).toMatchObject({ pinned: true });
  });

  it('flags forks and mirrors, and ignores repositories that only look alike', () => {
    const forks = [
      { type: 'github', owner: 'someone', repo: 'nixpkgs' },
      { type: 'github', owner: 'NixOS', repo: 'nixpkgs', host: 'github.example.com' },
      { type: 'gitlab', owner: 'NixOS', repo: 'nixpkgs' },
      { type: 'sourcehut', owner: '~someone', repo: 'nixpkgs' },
      { type: 'git', url: 'https://github.com/someone/nixpkgs.git' },
      { type: 'git', url: 'https://codeberg.org/NixOS/nixpkgs' },
      { type: 'tarball', url: 'https://github.com/someone/nixpkgs/archive/master.tar.gz' },
    ];
    for (const a of forks) expect(parseAttrs(a)).toMatchObject({ nixpkgs: true, official: false });
    const others = [
      { type: 'github', owner: 'nix-community', repo: 'nixpkgs.lib' },
      { type: 'github', owner: 'NixOS', repo: 'nix' },
      { type: 'path', path: '/nix/store/x-source' },
      { type: 'tarball', url: 'https://example.org/nixpkgs.tar.gz' },
      { type: 'indirect', id: 'flake-utils' },
      // A local checkout: nothing says what it was cloned from.
      { type: 'git', url: 'file:///home/dev/src/nixpkgs' },
    ];
    for (const a of others) expect(parseAttrs(a)?.nixpkgs).toBe(false);
    expect(parseAttrs({ type: 'indirect', id: 'nixpkgs' })).toMatchObject({ nixpkgs: true, indirect: true });
    expect(parseAttrs({ type: 'indirect', id: 'nixpkgs' })?.official).toBeUndefined();
  });
});

describe('keyLines', () => {
  it('records the line of every key, through arrays, escapes and nesting', () => {
    const text = [
      '{',
      '  "a\\"b": {',
      '    "list": [',
      '      "x",',
      '      { "deep": true }',
      '    ],',
      '    "n": -1.5e3',
      '  },',
      '  "c/d": null',
      '}',
    ].join('\n');
    const lines = keyLines(text);
    expect(lines.get(pathKey(['a"b']))).toBe(2);
    expect(lines.get(pathKey(['a"b', 'list']))).toBe(3);
    expect(lines.get(pathKey(['a"b', 'list', '1', 'deep']))).toBe(5);
    expect(lines.get(pathKey(['a"b', 'n']))).toBe(7);
    expect(lines.get(pathKey(['c/d']))).toBe(9);
  });

  it('agrees with JSON.parse on compact JSON (one line)', () => {
    const lines = keyLines('{"nodes":{"nixpkgs":{"locked":{"lastModified":1}}}}');
    expect(lines.get(pathKey(['nodes', 'nixpkgs', 'locked', 'lastModified']))).toBe(1);
  });
});
