/**
 * Recognises nixpkgs in a flake.lock node: which repository it comes from (is it NixOS/nixpkgs or a fork?) and
 * which branch it follows. Works on the `original` and `locked` attribute sets Nix writes; pure, no I/O.
 */

type Attrs = Record<string, unknown>;

/** One parsed attribute set (`original` or `locked`). */
export interface RepoRef {
  /** The nixpkgs repository (any owner), a nixos.org channel, or the `nixpkgs` registry entry. */
  nixpkgs: boolean;
  /** NixOS/nixpkgs on GitHub or a nixos.org channel; undefined when the set does not say (indirect). */
  official?: boolean;
  /** How to name the source in a message, e.g. `github:someone/nixpkgs`. */
  label: string;
  /** The attribute that names the owner (or URL), for the annotation line. */
  ownerField?: string;
  /** Branch the input follows, when it names one. */
  ref?: string;
  /** The attribute the branch came from (`ref` or `url`). */
  refField?: string;
  /** Pinned to a commit (`rev` given, no branch). */
  pinned: boolean;
  /** A repository whose default branch applies when no ref is given (github, gitlab, sourcehut, git). */
  repo: boolean;
  indirect: boolean;
}

const HEX40 = /^[0-9a-f]{40}$/i;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const isNixos = (owner: string | undefined): boolean => owner?.toLowerCase() === 'nixos';
const isNixpkgsRepo = (repo: string | undefined): boolean => repo?.toLowerCase().replace(/\.git$/, '') === 'nixpkgs';

/**
 * host and path segments of a URL (`https://`, `ssh://`, `git+https://`) or scp-like `git@host:owner/repo`.
 * `file://` URLs (local checkouts) have no host and are not judged: nothing says what they were cloned from.
 */
function splitUrl(url: string): { host: string; segments: string[] } | undefined {
  const m =
    /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]+@)?([^/:?#]+)(?::\d+)?\/([^?#]*)/i.exec(url) ??
    /^[^@/:]+@([^/:]+):([^?#]*)/.exec(url);
  if (!m?.[1] || m[2] === undefined) return undefined;
  return { host: m[1].toLowerCase(), segments: m[2].split('/').filter((s) => s !== '') };
}

const stripArchive = (s: string): string => s.replace(/\.(tar\.gz|tar\.xz|tar\.bz2|tar\.zst|tgz|zip)$/, '');

/** A tarball URL: nixos.org channels, releases.nixos.org, FlakeHub, GitHub archive/codeload/API links. */
function parseTarball(url: string): Omit<RepoRef, 'label' | 'ownerField' | 'refField' | 'indirect'> | undefined {
  const u = splitUrl(url);
  if (!u) return undefined;
  const s = u.segments;
  const base = { nixpkgs: true, pinned: false, repo: false };
  // https://channels.nixos.org/nixos-25.05/nixexprs.tar.xz
  if (u.host === 'channels.nixos.org') return { ...base, official: true, ref: s[0] };
  // https://nixos.org/channels/nixos-25.05/nixexprs.tar.xz
  if ((u.host === 'nixos.org' || u.host === 'www.nixos.org') && s[0] === 'channels')
    return { ...base, official: true, ref: s[1] };
  // https://releases.nixos.org/nixos/25.05/nixos-25.05.1234.abcdef/nixexprs.tar.xz (what a channel redirects to)
  if (u.host === 'releases.nixos.org' && (s[0] === 'nixos' || s[0] === 'nixpkgs')) {
    const dir = s[1] ?? '';
    const ref = /^(unstable(-small)?|\d{2}\.\d{2}(-small)?)$/.test(dir) ? `nixos-${dir}` : undefined;
    return { ...base, official: true, ref };
  }
  // https://flakehub.com/f/NixOS/nixpkgs/0.2505.*.tar.gz: FlakeHub versions are not branch names; no branch check.
  if (u.host === 'flakehub.com' && s[0] === 'f' && isNixpkgsRepo(s[2])) return { ...base, official: isNixos(s[1]) };
  let owner: string | undefined;
  let rest: string[] = [];
  if (u.host === 'github.com' && isNixpkgsRepo(s[1]) && s[2] === 'archive') [owner, rest] = [s[0], s.slice(3)];
  else if (u.host === 'codeload.github.com' && isNixpkgsRepo(s[1])) [owner, rest] = [s[0], s.slice(3)];
  else if (u.host === 'api.github.com' && s[0] === 'repos' && isNixpkgsRepo(s[2])) [owner, rest] = [s[1], s.slice(4)];
  else if (u.host === 'gitlab.com' && isNixpkgsRepo(s[1]) && s[2] === '-' && s[3] === 'archive')
    return {
      ...base,
      official: false,
      ref: s[4] && !HEX40.test(s[4]) ? s[4] : undefined,
      pinned: HEX40.test(s[4] ?? ''),
    };
  else return undefined;
  const name = stripArchive(rest.join('/')).replace(/^refs\/(heads|tags)\//, '');
  const official = isNixos(owner);
  if (HEX40.test(name)) return { ...base, official, pinned: true };
  return { ...base, official, ref: name || undefined };
}

export function parseAttrs(attrs: unknown): RepoRef | undefined {
  if (!attrs || typeof attrs !== 'object') return undefined;
  const a = attrs as Attrs;
  const type = str(a.type);
  const ref = str(a.ref);
  const pinned = !ref && str(a.rev) !== undefined;
  const common = { ref, refField: ref ? 'ref' : undefined, pinned, indirect: false };
  if (type === 'github' || type === 'gitlab' || type === 'sourcehut') {
    const owner = str(a.owner);
    const repo = str(a.repo);
    if (!isNixpkgsRepo(repo)) return { ...common, nixpkgs: false, label: '', repo: true };
    const host = str(a.host);
    // The NixOS repository lives on GitHub; a nixpkgs on GitLab or sourcehut is a mirror or fork.
    const official = type === 'github' && (!host || host === 'github.com') && isNixos(owner);
    return {
      ...common,
      nixpkgs: true,
      official,
      label: `${type}:${owner ?? '?'}/${repo}`,
      ownerField: 'owner',
      repo: true,
    };
  }
  if (type === 'git') {
    const url = str(a.url) ?? '';
    const u = splitUrl(url);
    const segments = u?.segments ?? [];
    const repo = segments[segments.length - 1];
    if (!isNixpkgsRepo(repo)) return { ...common, nixpkgs: false, label: '', repo: true };
    const official = u?.host === 'github.com' && segments.length === 2 && isNixos(segments[0]);
    return { ...common, nixpkgs: true, official, label: `git+${url}`, ownerField: 'url', repo: true };
  }
  if (type === 'tarball' || type === 'file') {
    const url = str(a.url) ?? '';
    const t = parseTarball(url);
    if (!t) return { ...common, nixpkgs: false, label: '', repo: false };
    return { ...common, ...t, label: url, ownerField: 'url', refField: t.ref ? 'url' : undefined };
  }
  if (type === 'indirect') {
    const nixpkgs = str(a.id) === 'nixpkgs';
    return { ...common, nixpkgs, label: `flake:${str(a.id) ?? '?'}`, repo: false, indirect: true };
  }
  return { ...common, nixpkgs: false, label: '', repo: false };
}
