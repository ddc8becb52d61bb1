/**
 * THE data file for the flake.lock lint: which nixpkgs branches are supported release channels, and until when.
 * Every date below is copied from the published source named next to it, never inferred. To update: read the
 * newest NixOS release announcement (https://nixos.org/blog/announcements/), add the new release with the
 * end-of-support date it states, update the previous release's date from the same announcement, and set
 * `lastChecked` to the date of the newest source you read.
 *
 * A release is supported until the end of its `endOfSupport` day (UTC). Releases newer than every entry here are
 * not judged (the list may simply be older than the release); releases older than a listed end-of-life release
 * are end of life too (NixOS never supports an older release longer than a newer one).
 */

export interface ReleaseEntry {
  /** YY.MM, e.g. `26.05`. Its channel branches are nixos-YY.MM, nixos-YY.MM-small and nixpkgs-YY.MM-darwin. */
  release: string;
  codename: string;
  /** Release date as published, when known. */
  released?: string;
  /** Last day (UTC) of bugfixes and security updates, as published. */
  endOfSupport: string;
  /** What the source says, verbatim (a `[sic]` marks the source's own typo). */
  evidence: string;
  sources: string[];
}

export interface ReleaseChannelData {
  /** Date of the newest source read (see `searchedOn` for when the search for newer ones was made). */
  lastChecked: string;
  /** When the sources were last searched; nothing newer than `lastChecked` was published or found then. */
  searchedOn: string;
  note: string;
  /** Channel branches that follow master and are always supported. */
  rolling: { branches: string[]; evidence: string; sources: string[] };
  /** Why `master` (and any other branch that is not a channel) is reported, with low-severity wording. */
  notAChannel: { evidence: string; sources: string[] };
  /** Newest release first. */
  releases: ReleaseEntry[];
}

export const RELEASE_CHANNELS: ReleaseChannelData = {
  lastChecked: '2026-07-01',
  searchedOn: '2026-11-22',
  note:
    'Searched on 2026-11-22: the newest published facts were the NixOS 26.05 announcement (2026-05-30) and the ' +
    'NixOS/infra change marking 25.11 unmaintained (2026-07-01). No 26.11 announcement or end-of-support date was ' +
    'found, so 26.11 is not listed and a nixos-26.11 branch is not judged until it is.',
  rolling: {
    branches: ['nixos-unstable', 'nixos-unstable-small', 'nixpkgs-unstable'],
    evidence:
      "NixOS/infra channels.nix (the list behind status.nixos.org): \"'*-unstable' channels are always " +
      '"rolling"", listing nixos-unstable, nixos-unstable-small and nixpkgs-unstable.',
    sources: ['https://github.com/NixOS/infra/blob/main/channels.nix', 'https://status.nixos.org/'],
  },
  notAChannel: {
    evidence:
      'NixOS Wiki, Channel branches: "Installing packages directly from the master branch of the Nixpkgs ' +
      'repository is possible but risky, since Git commits are merged into master before being heavily tested. ' +
      'That is where channel branches are useful." Channel branches are nixos-YY.MM, nixos-YY.MM-small, ' +
      'nixpkgs-YY.MM-darwin and the unstable channels.',
    sources: ['https://wiki.nixos.org/wiki/Channel_branches'],
  },
  releases: [
    {
      release: '26.05',
      codename: 'Yarara',
      released: '2026-05-30',
      endOfSupport: '2026-12-31',
      evidence:
        'NixOS 26.05 announcement (published 2026-05-30): "This release will receive bugfixes and security ' +
        'updates for seven months (up until 2026-12-31)." The release manager, 2026-05-28: "scheduled to be ' +
        'released on 2026-05-30 and will be supported until 2026-12-31".',
      sources: [
        'https://nixos.org/blog/announcements/2026/nixos-2605/',
        'https://github.com/endoflife-date/endoflife.date/pull/10180',
      ],
    },
    {
      release: '25.11',
      codename: 'Xantusia',
      released: '2025-11-30',
      endOfSupport: '2026-06-30',
      evidence:
        'NixOS 26.05 announcement (2026-05-30): "The old release 25.11 “Xantusia” is now officially deprecated ' +
        'and will reach its end-of-life and stop receiving security updates after 2026-06-30." NixOS/infra ' +
        '"channels: Mark 25.11 as unmaintained", applied 2026-07-01.',
      sources: ['https://nixos.org/blog/announcements/2026/nixos-2605/', 'https://github.com/NixOS/infra/pull/1114'],
    },
    {
      release: '25.05',
      codename: 'Warbler',
      endOfSupport: '2025-12-31',
      evidence:
        'NixOS/infra "channels: mark 25.05 as unmaintained" (opened 2025-12-31): "Not to be merged until ' +
        '2026-01-01 (UTC)", deployed 2026-01-01.',
      sources: ['https://github.com/NixOS/infra/pull/928'],
    },
    {
      release: '24.11',
      codename: 'Vicuña',
      released: '2024-11-30',
      endOfSupport: '2025-06-30',
      evidence:
        'NixOS 24.11 announcement: "This release will receive bugfixes and security updates for seven months ' +
        '(up until 2025-06-31)." [sic: June has 30 days]. NixOS/infra "channels: 24.11 is unmaintained", ' +
        'merged 2025-07-01.',
      sources: ['https://github.com/NixOS/nixos-homepage/pull/1593', 'https://github.com/NixOS/infra/pull/761'],
    },
    {
      release: '24.05',
      codename: 'Uakari',
      released: '2024-05-31',
      endOfSupport: '2024-12-31',
      evidence:
        'NixOS 24.05 release notes: "Support is planned until the end of December 2024, handing over to 24.11."',
      sources: [
        'https://raw.githubusercontent.com/NixOS/nixpkgs/24.05/nixos/doc/manual/release-notes/rl-2405.section.md',
      ],
    },
    {
      release: '23.05',
      codename: 'Stoat',
      released: '2023-05-31',
      endOfSupport: '2023-12-31',
      evidence:
        'NixOS 23.05 release notes: "Support is planned until the end of December 2023, handing over to NixOS ' +
        '23.11."',
      sources: [
        'https://raw.githubusercontent.com/NixOS/nixpkgs/23.05/nixos/doc/manual/release-notes/rl-2305.section.md',
      ],
    },
    {
      release: '22.11',
      codename: 'Raccoon',
      endOfSupport: '2023-06-30',
      evidence:
        'NixOS 22.11 announcement: "This release will receive bugfixes and security updates for seven months ' +
        '(up until 2023-06-30)."',
      sources: ['https://nixos.org/blog/announcements/2022/nixos-2211'],
    },
  ],
};
