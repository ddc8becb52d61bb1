/**
 * The words of the flake.lock lint: one function per finding, each naming the input, what is wrong and the fix.
 * Kept apart from the lint logic so the wording can be read (and reviewed) in one place.
 */
import type { BranchVerdict } from './channels.js';

export const TITLES = {
  stale: 'Stale nixpkgs input',
  'unsupported-branch': 'nixpkgs branch is not a supported release channel',
  'not-nixos-owner': 'nixpkgs input not from NixOS/nixpkgs',
} as const;

/** How to update one input, for both CLIs: `nix flake update <input>` exists since Nix 2.19; 2.8 needs lock. */
function updateHint(inputPath: string): string {
  const parts = inputPath.split('/');
  let hint =
    `Update it with \`nix flake update ${inputPath}\` (Nix 2.19 and later) or ` +
    `\`nix flake lock --update-input ${inputPath}\` (older Nix such as 2.8).`;
  if (parts.length > 1) {
    const parent = parts.slice(0, -1).join('/');
    const follows = parts.map((p) => `inputs.${p}`).join('.');
    hint += ` It is an input of \`${parent}\`: updating \`${parent}\` also refreshes it, or make it follow your own nixpkgs (\`${follows}.follows = "nixpkgs"\`).`;
  }
  return hint;
}

export function staleMessage(inputPath: string, ageDays: number, lockedOn: string, maxAgeDays: number): string {
  return (
    `nixpkgs input "${inputPath}" was locked to a commit from ${lockedOn}, ${ageDays} days ago, more than ` +
    `lint-max-age (${maxAgeDays} days), so it lacks the security fixes published since. ${updateHint(inputPath)}`
  );
}

export interface BranchContext {
  inputPath: string;
  /** The branch as written (or `master` for the default branch). */
  ref: string;
  /** True when flake.lock names no branch and the repository's default branch applies. */
  defaultBranch: boolean;
  /** The repository, e.g. `github:NixOS/nixpkgs`. */
  label: string;
  official: boolean;
  supported: string[];
}

const NOT_TESTED =
  'its commits have not yet passed the Hydra tests a channel waits for and may not be in the binary cache yet';

/** Undefined when the verdict is not a finding (supported, or a release newer than the data file). */
export function branchMessage(v: BranchVerdict, c: BranchContext): string | undefined {
  const who = `nixpkgs input "${c.inputPath}"`;
  const choose = `Supported channels: ${c.supported.join(', ')} (release channels with their -small and -darwin variants).`;
  switch (v.kind) {
    case 'supported':
    case 'unknown-release':
      return undefined;
    case 'end-of-life': {
      if (v.entry) {
        return (
          `${who} follows ${c.ref}: NixOS ${v.release} ("${v.entry.codename}") reached the end of its support on ` +
          `${v.entry.endOfSupport} and gets no more security fixes (${v.entry.sources[0] ?? ''}). ` +
          `Move to a supported channel. ${choose}`
        );
      }
      const o = v.olderThan;
      return (
        `${who} follows ${c.ref}: NixOS ${v.release} is older than NixOS ${o?.release ?? '?'}, whose support ended on ` +
        `${o?.endOfSupport ?? '?'}, so it gets no security fixes. Move to a supported channel. ${choose}`
      );
    }
    case 'not-a-channel': {
      if (v.what === 'development') {
        const branch = c.defaultBranch
          ? c.official
            ? 'names no branch, so it follows the default branch of NixOS/nixpkgs, master, the development branch'
            : `names no branch, so it follows the default branch of ${c.label}`
          : `follows ${c.ref}, nixpkgs' development branch`;
        return (
          `${who} ${branch}, which is not a channel: ${NOT_TESTED}. That is fine when you mean to track ` +
          `development (low severity); otherwise name a channel, e.g. nixos-unstable or nixpkgs-unstable. ${choose}`
        );
      }
      if (v.what === 'release-branch') {
        return (
          `${who} follows ${c.ref}, the branch the nixos-${v.release ?? ''} channel is built from, which is not a ` +
          `channel itself: ${NOT_TESTED}. Consider nixos-${v.release ?? ''} (low severity). ${choose}`
        );
      }
      return `${who} follows ${c.ref}, which is not a nixpkgs release channel: nothing promises it security fixes or binary cache coverage. ${choose}`;
    }
  }
}

export function ownerMessage(inputPath: string, label: string): string {
  return (
    `nixpkgs input "${inputPath}" comes from ${label}, not from the NixOS/nixpkgs repository: a fork or mirror ` +
    `only gets nixpkgs' security fixes when its owner merges them, and commits of its own are not in cache.nixos.org. ` +
    `Use github:NixOS/nixpkgs/<channel> unless the fork is intended.`
  );
}
