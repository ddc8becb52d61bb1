import { describe, expect, it } from '@jest/globals';
import { compileGlob, globMatch, selectPaths, storePathName } from '../../src/cache/select.js';
import { parsePathInfo } from '../../src/nix/path-info.js';

const H = (c: string) => c.repeat(32);
const BUILT = `/nix/store/${H('a')}-myapp-1.0`;
const DEP = `/nix/store/${H('b')}-libfoo-2.3`;
const GLIBC = `/nix/store/${H('c')}-glibc-2.40`;
const DRV = `/nix/store/${H('d')}-myapp-1.0.drv`;
const DOCS = `/nix/store/${H('e')}-myapp-1.0-doc`;
const PRIVATE = `/nix/store/${H('f')}-tool-3`;
const GONE = `/nix/store/${H('g')}-gone`;
const NAR = 'sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=';
const SIG_UP = 'cache.nixos.org-1:c2lnbmF0dXJl';
const SIG_OWN = 'my-cache-1:c2lnbmF0dXJl';

const entry = (signatures: string[], references: string[] = []) => ({
  narHash: NAR,
  narSize: 100,
  references,
  signatures,
});

// Nix 2.8: an array, invalid paths as {path, valid: false}.
const NIX_28 = JSON.stringify([
  { path: BUILT, ...entry([], [DEP, GLIBC]), ultimate: true },
  { path: DEP, ...entry([]) },
  { path: GLIBC, ...entry([SIG_UP]) },
  { path: DRV, ...entry([]), ca: 'text:sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq' },
  { path: DOCS, ...entry([]) },
  { path: PRIVATE, ...entry([SIG_OWN]) },
  { path: GONE, valid: false },
]);

// Nix 2.34 with --json-format 1: an object keyed by path, null for invalid paths.
const NIX_234 = JSON.stringify({
  [BUILT]: { ...entry([], [DEP, GLIBC]), ca: null, deriver: DRV, storeDir: '/nix/store', version: 1, ultimate: true },
  [DEP]: { ...entry([]), ca: null, storeDir: '/nix/store', version: 1 },
  [GLIBC]: { ...entry([SIG_UP]), ca: null, storeDir: '/nix/store', version: 1 },
  [DRV]: { ...entry([]), ca: 'text:sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq', version: 1 },
  [DOCS]: { ...entry([]), ca: null, version: 1 },
  [PRIVATE]: { ...entry([SIG_OWN]), ca: null, version: 1 },
  [GONE]: null,
});

describe('glob over store path names', () => {
  it('matches * and ? over the whole name, everything else literally', () => {
    expect(globMatch('myapp-*', 'myapp-1.0')).toBe(true);
    expect(globMatch('myapp-*', 'notmyapp-1.0')).toBe(false);
    expect(globMatch('*-doc', 'myapp-1.0-doc')).toBe(true);
    expect(globMatch('lib?oo-*', 'libfoo-2.3')).toBe(true);
    expect(globMatch('lib?oo-*', 'libfooo-2.3')).toBe(false);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('(x)+[y]', '(x)+[y]')).toBe(true);
    expect(globMatch('*', '')).toBe(true);
    expect(globMatch('**', 'anything-at-all')).toBe(true);
    expect(compileGlob('*.drv').test('x.drv')).toBe(true);
  });

  it('takes the name after the hash', () => {
    expect(storePathName(BUILT)).toBe('myapp-1.0');
    expect(storePathName(DRV)).toBe('myapp-1.0.drv');
    expect(storePathName('/not/a/store/path')).toBe('path');
  });
});

describe.each([
  ['Nix 2.8 (array)', NIX_28],
  ['Nix 2.34 (object, --json-format 1)', NIX_234],
])('selection from %s path-info JSON', (_name, json) => {
  const infos = parsePathInfo(json);

  it('drops upstream-signed paths, derivations and invalid paths by default', () => {
    const sel = selectPaths(infos);
    expect(sel.paths).toEqual([BUILT, DEP, DOCS, PRIVATE].sort());
    expect(sel.skipped).toEqual({ upstream: 1, derivations: 1, excluded: 0, invalid: 1 });
  });

  it('treats every listed upstream key (name or public key) as upstream', () => {
    const sel = selectPaths(infos, { upstreamKeys: ['cache.nixos.org-1', 'my-cache-1:AAAA'] });
    expect(sel.paths).not.toContain(PRIVATE);
    expect(sel.skipped.upstream).toBe(2);
    // An empty list: nothing counts as upstream.
    expect(selectPaths(infos, { upstreamKeys: [] }).paths).toContain(GLIBC);
  });

  it('applies include and exclude patterns to names', () => {
    const sel = selectPaths(infos, { include: ['myapp-*', 'libfoo-*'], exclude: ['*-doc'] });
    expect(sel.paths).toEqual([BUILT, DEP].sort());
    expect(sel.skipped.excluded).toBe(2);
  });

  it('saves derivations only when an include pattern ending in .drv asks for them', () => {
    expect(selectPaths(infos, { include: ['*'] }).paths).not.toContain(DRV);
    expect(selectPaths(infos, { include: ['*', '*.drv'] }).paths).toContain(DRV);
    expect(selectPaths(infos, { include: ['myapp-*.drv'] }).paths).toEqual([DRV]);
  });
});
