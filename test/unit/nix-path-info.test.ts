import { describe, expect, it } from '@jest/globals';
import { outPaths, parseBuildOutputs, parsePrintOutPaths } from '../../src/nix/build-outputs.js';
import { hashString, parsePathInfo } from '../../src/nix/path-info.js';

const OUT = '/nix/store/g8c9zjklfxqi21lkb0pcwpc3inq877lr-x';
const DRV = '/nix/store/y5zxa5d20y48ij96qmcmjadi2lj472q4-x.drv';
const FILE = '/nix/store/d4b4lmbd433fa2xcdysz7p7zahnqh1z4-f.txt';
const DEP = '/nix/store/cl85j0ybn84hylixff1yyb8ya73lkn8q-dep';
const NAR_HASH = 'sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=';
const NAR_HEX = '10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6';

// Captured from Debian's Nix 2.8.0 (built output, `nix store add-file`, and a missing path).
const NIX_28 =
  `[{"path":"${OUT}","narHash":"${NAR_HASH}","narSize":120,"references":[],"deriver":"${DRV}",` +
  `"registrationTime":1795330664,"ultimate":true},` +
  `{"path":"${FILE}","narHash":"sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=","narSize":120,"references":[],` +
  `"ca":"fixed:sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq","registrationTime":1795330668},` +
  `{"path":"/nix/store/00000000000000000000000000000000-nope","valid":false}]`;

// 2.19 to 2.32: an object keyed by path, null for invalid paths, empty fields as null since 2.23.
const NIX_223 = JSON.stringify({
  [OUT]: {
    ca: null,
    deriver: DRV,
    narHash: NAR_HASH,
    narSize: 120,
    references: [DEP],
    registrationTime: 1795330664,
    signatures: ['cache.example.org-1:c2lnbmF0dXJl'],
    ultimate: false,
  },
  '/nix/store/00000000000000000000000000000000-nope': null,
});

// 2.33+ with `--json-format 1` (NixOS/nix src/libstore/path-info.cc toJSON): per-object version and storeDir.
const NIX_234_V1 = JSON.stringify({
  [OUT]: {
    ca: null,
    deriver: DRV,
    narHash: NAR_HASH,
    narSize: 120,
    references: [DEP, OUT],
    registrationTime: 1795330664,
    signatures: [],
    storeDir: '/nix/store',
    ultimate: true,
    version: 1,
  },
});

// `--json-format 2`: wrapped, base names, structured ca; the hash may be SRI or {algorithm, format, hash}.
const NIX_234_V2 = JSON.stringify({
  info: {
    'g8c9zjklfxqi21lkb0pcwpc3inq877lr-x': {
      ca: null,
      deriver: 'y5zxa5d20y48ij96qmcmjadi2lj472q4-x.drv',
      narHash: { algorithm: 'sha256', format: 'base16', hash: NAR_HEX },
      narSize: 120,
      references: ['cl85j0ybn84hylixff1yyb8ya73lkn8q-dep'],
      registrationTime: null,
      signatures: [{ keyName: 'cache.example.org-1', sig: 'c2lnbmF0dXJl' }],
      storeDir: '/nix/store',
      ultimate: false,
      version: 2,
    },
    'd4b4lmbd433fa2xcdysz7p7zahnqh1z4-f.txt': {
      ca: { method: 'flat', hash: 'sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=' },
      deriver: null,
      narHash: 'sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=',
      narSize: 120,
      references: [],
      storeDir: '/nix/store',
      version: 2,
    },
    '00000000000000000000000000000000-nope': null,
  },
  storeDir: '/nix/store',
  version: 2,
});

describe('parsePathInfo', () => {
  it('reads the Nix 2.8 array, including invalid paths and content addresses', () => {
    const infos = parsePathInfo(NIX_28);
    expect(infos).toHaveLength(3);
    expect(infos[0]).toEqual({
      path: OUT,
      valid: true,
      narHash: NAR_HASH,
      narSize: 120,
      references: [],
      deriver: DRV,
      signatures: [],
      registrationTime: 1795330664,
      ultimate: true,
    });
    expect(infos[1]?.ca).toBe('fixed:sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq');
    expect(infos[1]?.deriver).toBeUndefined();
    expect(infos[2]).toEqual({
      path: '/nix/store/00000000000000000000000000000000-nope',
      valid: false,
      narHash: '',
      narSize: 0,
      references: [],
      signatures: [],
    });
  });

  it('reads the 2.19+ object keyed by path with null entries', () => {
    const [out, nope] = parsePathInfo(NIX_223);
    expect(out).toMatchObject({ path: OUT, valid: true, references: [DEP], ultimate: false });
    expect(out?.signatures).toEqual(['cache.example.org-1:c2lnbmF0dXJl']);
    expect(out?.ca).toBeUndefined();
    expect(nope?.valid).toBe(false);
  });

  it('reads 2.33+ --json-format 1 the same way', () => {
    const [out] = parsePathInfo(NIX_234_V1);
    expect(out).toMatchObject({ path: OUT, narHash: NAR_HASH, references: [DEP, OUT], deriver: DRV, valid: true });
  });

  it('reads --json-format 2/3: base names, structured hashes and signatures', () => {
    const infos = parsePathInfo(NIX_234_V2);
    expect(infos.map((i) => i.path)).toEqual([OUT, FILE, '/nix/store/00000000000000000000000000000000-nope']);
    expect(infos[0]).toMatchObject({
      narHash: NAR_HASH,
      references: [DEP],
      deriver: DRV,
      signatures: ['cache.example.org-1:c2lnbmF0dXJl'],
    });
    expect(infos[0]?.registrationTime).toBeUndefined();
    expect(infos[1]?.ca).toBe('flat:sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=');
    expect(infos[2]?.valid).toBe(false);
  });

  it('uses the reported storeDir for base names', () => {
    const json = JSON.stringify({
      version: 2,
      storeDir: '/tmp/s/',
      info: { 'abc-x': { narSize: 1, references: ['abc-x'] } },
    });
    expect(parsePathInfo(json)[0]).toMatchObject({ path: '/tmp/s/abc-x', references: ['/tmp/s/abc-x'], narHash: '' });
  });

  it('keeps closure sizes from -S', () => {
    const json = JSON.stringify({ [OUT]: { narHash: NAR_HASH, narSize: 120, references: [], closureSize: 4096 } });
    expect(parsePathInfo(json)[0]?.closureSize).toBe(4096);
  });

  it('accepts an empty result in both shapes', () => {
    expect(parsePathInfo('[]')).toEqual([]);
    expect(parsePathInfo('{}')).toEqual([]);
  });

  it('rejects malformed output with a clear error', () => {
    expect(() => parsePathInfo('warning: something\n[]')).toThrow(/nix path-info --json printed invalid JSON/);
    expect(() => parsePathInfo('"x"')).toThrow(/expected an array or an object/);
    expect(() => parsePathInfo('[{"narSize":1}]')).toThrow(/entry 0 has no 'path'/);
    expect(() => parsePathInfo(`{"${OUT}":{"narSize":"big"}}`)).toThrow(/narSize: expected a number/);
    expect(() => parsePathInfo(`{"${OUT}":{"references":[1]}}`)).toThrow(/references: expected an array of strings/);
  });
});

describe('hashString', () => {
  it('turns structured hashes into SRI or Nix notation', () => {
    expect(hashString({ algorithm: 'sha256', format: 'base16', hash: NAR_HEX }, 'x')).toBe(NAR_HASH);
    expect(hashString({ algorithm: 'sha256', format: 'base64', hash: 'EFUd=' }, 'x')).toBe('sha256-EFUd=');
    expect(hashString({ algorithm: 'sha256', format: 'nix32', hash: '0abc' }, 'x')).toBe('sha256:0abc');
    expect(() => hashString(42, 'narHash')).toThrow(/narHash: unexpected hash/);
  });
});

describe('parseBuildOutputs', () => {
  it('reads Nix 2.8 nix build --json', () => {
    const json = `[{"drvPath":"${DRV}","outputs":{"out":"${OUT}"}}]`;
    expect(parseBuildOutputs(json)).toEqual([{ drvPath: DRV, outputs: { out: OUT } }]);
  });

  it('reads current output with times, several outputs, and opaque paths in both forms', () => {
    const json = JSON.stringify([
      { drvPath: DRV, outputs: { out: OUT, dev: `${OUT}-dev` }, startTime: 1700000000, stopTime: 1700000003 },
      { path: FILE },
      FILE,
      { drvPath: { drvPath: '/nix/store/aaa-gen.drv', output: 'out', outputPath: DRV }, outputs: { out: OUT } },
    ]);
    const res = parseBuildOutputs(json);
    expect(res[0]).toEqual({
      drvPath: DRV,
      outputs: { out: OUT, dev: `${OUT}-dev` },
      startTime: 1700000000,
      stopTime: 1700000003,
    });
    expect(res[1]).toEqual({ path: FILE, outputs: {} });
    expect(res[2]).toEqual({ path: FILE, outputs: {} });
    expect(res[3]?.drvPath).toBe(DRV);
    expect(outPaths(res)).toEqual([OUT, `${OUT}-dev`, FILE]);
  });

  it('rejects other shapes', () => {
    expect(() => parseBuildOutputs('{}')).toThrow(/expected an array/);
    expect(() => parseBuildOutputs('[{"outputs":{}}]')).toThrow(/neither 'drvPath' nor 'path'/);
    expect(() => parseBuildOutputs('')).toThrow(/nix build --json printed invalid JSON/);
  });

  it('reads --print-out-paths', () => {
    expect(parsePrintOutPaths(`${OUT}\n${OUT}-dev\n\n`)).toEqual([OUT, `${OUT}-dev`]);
  });
});
