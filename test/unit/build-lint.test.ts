/**
 * flake.lock lint against real-shaped lock files (test/fixtures/lint/<case>/flake.lock, in Nix's own formatting:
 * sorted keys, two-space indent). `now` is pinned so end-of-support and age are decided by the test, and the
 * recording platform captures the annotations.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { lintFlakeLock, type LintMode, type LintResult } from '../../src/build/lint/index.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const DIR = path.resolve('test/fixtures/lint');
const NOW = new Date('2026-11-22T12:00:00Z');

async function lint(
  fixture: string,
  extra: { mode?: LintMode; now?: Date; maxAgeDays?: number } = {},
): Promise<{ result: LintResult; p: RecordingPlatform; text: string }> {
  const p = new RecordingPlatform();
  const lockFile = path.join(DIR, fixture, 'flake.lock');
  const result = await lintFlakeLock(p, {
    lockFile,
    relPath: 'flake.lock',
    maxAgeDays: extra.maxAgeDays ?? 30,
    mode: extra.mode ?? 'warn',
    now: extra.now ?? NOW,
  });
  let text = '';
  try {
    text = readFileSync(lockFile, 'utf8');
  } catch {
    // the missing-file case
  }
  return { result, p, text };
}

/**
 * 1-based line of `needle`, searched from the line of `"<node>": {` on (and past `after`, when given):
 * independent of the lint's own scanner.
 */
function lineOf(text: string, node: string, needle: string, after?: string): number {
  const lines = text.split('\n');
  let start = lines.findIndex((l) => l === `    "${node}": {`);
  expect(start).toBeGreaterThanOrEqual(0);
  if (after !== undefined) start = lines.findIndex((l, n) => n > start && l.includes(after));
  const i = lines.findIndex((l, n) => n > start && l.includes(needle));
  expect(i).toBeGreaterThan(start);
  return i + 1;
}

const kinds = (r: LintResult): string[] => r.findings.map((f) => `${f.input}:${f.kind}`).sort();
const annotations = (p: RecordingPlatform) => p.logs.filter((l) => l.annotation);

describe('lintFlakeLock on a typical version 7 lock', () => {
  it('reports an end-of-life channel, stale inputs (root and transitive) and ignores other inputs', async () => {
    const { result, p, text } = await lint('v7-typical');
    expect(kinds(result)).toEqual(['nixpkgs-stable:stale', 'nixpkgs:unsupported-branch', 'nixpkgs_2:stale']);
    expect(result.failed).toBe(false);

    const eol = result.findings.find((f) => f.input === 'nixpkgs');
    expect(eol?.line).toBe(lineOf(text, 'nixpkgs', '"ref": "nixos-25.11"'));
    expect(eol?.message).toContain('nixos-25.11');
    expect(eol?.message).toContain('2026-06-30');
    expect(eol?.message).toContain('nixos-26.05');
    expect(eol?.message).toContain('nixos-unstable');

    const stale = result.findings.find((f) => f.input === 'nixpkgs-stable');
    expect(stale?.line).toBe(lineOf(text, 'nixpkgs-stable', '"lastModified"'));
    expect(stale?.message).toContain('82 days ago');
    expect(stale?.message).toContain('2026-09-01');
    expect(stale?.message).toContain('`nix flake update nixpkgs-stable`');
    expect(stale?.message).toContain('`nix flake lock --update-input nixpkgs-stable`');

    // nixpkgs_2 is devshell's nixpkgs: the hint names the input path, not the node name.
    const transitive = result.findings.find((f) => f.input === 'nixpkgs_2');
    expect(transitive?.message).toContain('nixpkgs input "devshell/nixpkgs"');
    expect(transitive?.message).toContain('`nix flake update devshell/nixpkgs`');
    expect(transitive?.message).toContain('inputs.devshell.inputs.nixpkgs.follows');

    const anns = annotations(p);
    expect(anns).toHaveLength(3);
    for (const a of anns) {
      expect(a.level).toBe('warning');
      expect(a.annotation?.file).toBe('flake.lock');
      expect(result.findings.map((f) => f.line)).toContain(a.annotation?.startLine);
      expect(a.annotation?.title).toBeTruthy();
    }
    // Annotations come in file order.
    const lines = anns.map((a) => a.annotation?.startLine ?? 0);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('decides end of support by date: 25.11 is supported through 2026-06-30 (UTC), not a second later', async () => {
    const before = await lint('v7-typical', { now: new Date('2026-06-30T23:59:59Z') });
    expect(kinds(before.result)).not.toContain('nixpkgs:unsupported-branch');
    const after = await lint('v7-typical', { now: new Date('2026-07-01T00:00:00Z') });
    expect(kinds(after.result)).toContain('nixpkgs:unsupported-branch');
  });

  it('measures age against maxAgeDays', async () => {
    const { result } = await lint('v7-typical', { maxAgeDays: 200 });
    expect(kinds(result)).toEqual(['nixpkgs:unsupported-branch']);
    const zero = await lint('v7-typical', { maxAgeDays: 0 });
    expect(kinds(zero.result)).toContain('nixpkgs-unstable:stale');
  });

  it('strict mode: errors and failed', async () => {
    const { result, p } = await lint('v7-typical', { mode: 'strict' });
    expect(result.failed).toBe(true);
    expect(annotations(p).map((a) => a.level)).toEqual(['error', 'error', 'error']);
  });

  it('off mode: nothing at all, not even for a malformed lock', async () => {
    for (const fixture of ['v7-typical', 'malformed']) {
      const { result, p } = await lint(fixture, { mode: 'off' });
      expect(result).toEqual({ findings: [], failed: false });
      expect(p.logs).toEqual([]);
    }
  });
});

describe('lintFlakeLock on forks and other sources', () => {
  it('reports forks on GitHub, GitLab, sourcehut and other git hosts; accepts NixOS/nixpkgs over git in any case', async () => {
    const { result, text } = await lint('forks');
    expect(kinds(result)).toEqual([
      'nixpkgs-gitfork:not-nixos-owner',
      'nixpkgs-gitlab:not-nixos-owner',
      'nixpkgs-srht:not-nixos-owner',
      'nixpkgs-srht:unsupported-branch',
      'nixpkgs:not-nixos-owner',
    ]);
    const fork = result.findings.find((f) => f.input === 'nixpkgs');
    expect(fork?.message).toContain('github:someone/nixpkgs');
    // The owner line of what the user wrote (original), not of locked.
    expect(fork?.line).toBe(lineOf(text, 'nixpkgs', '"owner": "someone"', '"original"'));
    const srhtBranch = result.findings.find((f) => f.input === 'nixpkgs-srht' && f.kind === 'unsupported-branch');
    expect(srhtBranch?.message).toContain('default branch of sourcehut:~someone/nixpkgs');
    expect(srhtBranch?.line).toBe(lineOf(text, 'nixpkgs-srht', '"original": {'));
    const gitfork = result.findings.find((f) => f.input === 'nixpkgs-gitfork');
    expect(gitfork?.line).toBe(lineOf(text, 'nixpkgs-gitfork', '"url"', '"original"'));
  });

  it('reads channels from tarball URLs and skips pinned archives', async () => {
    const { result, text } = await lint('tarballs');
    expect(kinds(result)).toEqual([
      'nixpkgs-fork:not-nixos-owner',
      'nixpkgs-fork:unsupported-branch',
      'nixpkgs:unsupported-branch',
    ]);
    const eol = result.findings.find((f) => f.input === 'nixpkgs');
    expect(eol?.message).toContain('NixOS 25.05 ("Warbler")');
    expect(eol?.message).toContain('2025-12-31');
    const originalUrl = text.split('\n').findIndex((l) => l.includes('channels.nixos.org/nixos-25.05')) + 1;
    expect(eol?.line).toBe(originalUrl);
    expect(
      result.findings.find((f) => f.input === 'nixpkgs-fork' && f.kind === 'unsupported-branch')?.message,
    ).toContain('follows staging, which is not a nixpkgs release channel');
  });

  it('indirect nixpkgs: the registry entry is judged by what it locked; a ref is still checked', async () => {
    const { result, text } = await lint('indirect');
    expect(kinds(result)).toEqual(['nixpkgs_2:stale', 'nixpkgs_2:unsupported-branch']);
    const eol = result.findings.find((f) => f.kind === 'unsupported-branch');
    expect(eol?.message).toContain('nixpkgs input "old" follows nixos-24.11');
    expect(eol?.line).toBe(lineOf(text, 'nixpkgs_2', '"ref": "nixos-24.11"'));
  });
});

describe('lintFlakeLock on branch names', () => {
  it('master, the default branch, release-YY.MM and staging are not channels; variants of supported releases are fine', async () => {
    const { result, p } = await lint('branches');
    expect(kinds(result)).toEqual([
      'nixpkgs-default:unsupported-branch',
      'nixpkgs-old:unsupported-branch',
      'nixpkgs-release:unsupported-branch',
      'nixpkgs-staging:unsupported-branch',
      'nixpkgs:unsupported-branch',
    ]);
    const msg = (input: string): string => result.findings.find((f) => f.input === input)?.message ?? '';
    expect(msg('nixpkgs')).toContain("follows master, nixpkgs' development branch, which is not a channel");
    expect(msg('nixpkgs')).toContain('low severity');
    expect(msg('nixpkgs-default')).toContain(
      'names no branch, so it follows the default branch of NixOS/nixpkgs, master',
    );
    expect(msg('nixpkgs-release')).toContain('Consider nixos-26.05');
    expect(msg('nixpkgs-old')).toContain('NixOS 23.11 is older than NixOS 24.05, whose support ended on 2024-12-31');
    // nixos-26.11 is newer than the data file: not judged, but said in debug output.
    expect(p.logs.some((l) => l.level === 'debug' && l.message.includes('nixos-26.11'))).toBe(true);
  });
});

describe('lintFlakeLock on other lock versions and bad files', () => {
  it('version 5 locks are read the same way', async () => {
    const { result } = await lint('v5');
    expect(kinds(result)).toEqual(['nixpkgs:stale', 'nixpkgs:unsupported-branch']);
  });

  it('a local checkout is not judged (lock written by real Nix 2.8 and 2.34, byte-identical; paths rewritten)', async () => {
    const { result, p } = await lint('real-local-checkout', { maxAgeDays: 0, now: new Date('2030-01-01T00:00:00Z') });
    expect(result.findings).toEqual([]);
    expect(annotations(p)).toEqual([]);
  });

  it('a lock without nixpkgs has no findings', async () => {
    const { result, p } = await lint('no-nixpkgs');
    expect(result.findings).toEqual([]);
    expect(annotations(p)).toEqual([]);
  });

  it('a malformed lock is one warning naming the file, never a crash, even in strict mode', async () => {
    for (const mode of ['warn', 'strict'] as const) {
      const { result, p } = await lint('malformed', { mode });
      expect(result).toEqual({ findings: [], failed: false });
      const warnings = p.logs.filter((l) => l.level === 'warning');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toMatch(/^flake\.lock: is not valid JSON/);
      expect(warnings[0]?.annotation?.file).toBe('flake.lock');
      // The fixture is cut off inside a string on line 10; V8 names that line.
      expect(warnings[0]?.annotation?.startLine).toBe(10);
    }
  });

  it('an unreadable flake.lock (a directory here) is one warning, not a crash', async () => {
    const p = new RecordingPlatform();
    const result = await lintFlakeLock(p, { lockFile: DIR, relPath: 'flake.lock', maxAgeDays: 30, mode: 'strict' });
    expect(result).toEqual({ findings: [], failed: false });
    expect(p.logs.map((l) => l.level)).toEqual(['warning']);
    expect(p.logs[0]?.message).toMatch(/^flake\.lock: cannot be read \(EISDIR/);
  });

  it('a pre-nodes lock (version 4) is one warning', async () => {
    const { result, p } = await lint('v4');
    expect(result.findings).toEqual([]);
    expect(p.logs.filter((l) => l.level === 'warning')[0]?.message).toContain('lock file version 4');
  });

  it('a missing flake.lock is a debug line only', async () => {
    const { result, p } = await lint('does-not-exist', { mode: 'strict' });
    expect(result).toEqual({ findings: [], failed: false });
    expect(p.logs.map((l) => l.level)).toEqual(['debug']);
  });
});
