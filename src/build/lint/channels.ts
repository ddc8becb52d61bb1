/**
 * Judges a nixpkgs branch name against the release-channel data file (release-channels.ts) on a given date.
 * Pure: no I/O, the date is passed in, so tests pin `now`.
 */
import { RELEASE_CHANNELS, type ReleaseChannelData, type ReleaseEntry } from './release-channels.js';

export type BranchVerdict =
  | { kind: 'supported' }
  /** The release reached its published end of support (`entry`), or is older than one that did (`olderThan`). */
  | { kind: 'end-of-life'; release: string; entry?: ReleaseEntry; olderThan?: ReleaseEntry }
  /** Not a channel branch: master (development), release-YY.MM (pre-channel), tags, staging, anything else. */
  | { kind: 'not-a-channel'; what: 'development' | 'release-branch' | 'other'; release?: string }
  /** A YY.MM release newer than every entry of the data file: not judged, the list may just be older. */
  | { kind: 'unknown-release'; release: string };

const DAY_MS = 86_400_000;

function releaseNumber(release: string): number {
  const [yy, mm] = release.split('.');
  return Number(yy) * 100 + Number(mm);
}

/** True while `now` is on or before the entry's last day of support (UTC). */
export function releaseSupported(entry: ReleaseEntry, now: Date): boolean {
  return now.getTime() < Date.parse(`${entry.endOfSupport}T00:00:00Z`) + DAY_MS;
}

function judgeRelease(release: string, now: Date, data: ReleaseChannelData): BranchVerdict {
  const entry = data.releases.find((r) => r.release === release);
  if (entry) return releaseSupported(entry, now) ? { kind: 'supported' } : { kind: 'end-of-life', release, entry };
  const n = releaseNumber(release);
  const newer = data.releases.filter((r) => releaseNumber(r.release) > n);
  if (newer.length === 0) return { kind: 'unknown-release', release };
  // The closest newer release that is already end of life: this one cannot outlive it.
  const olderThan = newer
    .filter((r) => !releaseSupported(r, now))
    .sort((a, b) => releaseNumber(a.release) - releaseNumber(b.release))[0];
  if (olderThan) return { kind: 'end-of-life', release, olderThan };
  // Between listed, supported releases but not listed itself: there is no such release.
  return { kind: 'not-a-channel', what: 'other', release };
}

/** `ref` as written in flake.lock (`refs/heads/` prefixes allowed). */
export function judgeBranch(ref: string, now: Date, data: ReleaseChannelData = RELEASE_CHANNELS): BranchVerdict {
  const name = ref.replace(/^refs\/heads\//, '').toLowerCase();
  if (data.rolling.branches.includes(name)) return { kind: 'supported' };
  // Channel branches of a release; `-aarch64` channels existed for 20.09 and 21.05 only (all long past support).
  const channel =
    /^nixos-(\d{2}\.\d{2})(?:-small|-aarch64)?$/.exec(name) ?? /^nixpkgs-(\d{2}\.\d{2})-darwin$/.exec(name);
  if (channel?.[1]) return judgeRelease(channel[1], now, data);
  if (name === 'master' || name === 'main') return { kind: 'not-a-channel', what: 'development' };
  const releaseBranch = /^release-(\d{2}\.\d{2})$/.exec(name);
  if (releaseBranch?.[1]) {
    const verdict = judgeRelease(releaseBranch[1], now, data);
    if (verdict.kind === 'end-of-life') return verdict;
    return { kind: 'not-a-channel', what: 'release-branch', release: releaseBranch[1] };
  }
  // staging-YY.MM, nixpkgs-YY.MM, tags like 25.05: say end of life when the release is, else "not a channel".
  const any = /(?:^|[^0-9])(\d{2}\.\d{2})(?:$|[^0-9])/.exec(name);
  if (any?.[1]) {
    const verdict = judgeRelease(any[1], now, data);
    if (verdict.kind === 'end-of-life') return verdict;
  }
  return { kind: 'not-a-channel', what: 'other' };
}

/** The supported channel branches on `now`, for suggestions: newest release first, then the rolling ones. */
export function supportedChannels(now: Date, data: ReleaseChannelData = RELEASE_CHANNELS): string[] {
  const releases = data.releases.filter((r) => releaseSupported(r, now)).map((r) => `nixos-${r.release}`);
  return [...releases, ...data.rolling.branches];
}
