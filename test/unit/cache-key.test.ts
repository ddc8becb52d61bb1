import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultPrimaryKey, entryKey, hashKeyFiles, hitKind, restorePrefix } from '../../src/cache/key.js';
import { InputError } from '../../src/errors.js';

describe('cache keys', () => {
  let ws: string;
  beforeAll(() => {
    ws = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-key-'));
    fs.writeFileSync(path.join(ws, 'flake.lock'), '{"nodes":{}}\n');
    fs.writeFileSync(path.join(ws, 'a.txt'), 'a');
    fs.writeFileSync(path.join(ws, 'b.txt'), 'b');
  });
  afterAll(() => fs.rmSync(ws, { recursive: true, force: true }));

  it('builds the default key from OS, architecture and a 16-hex hash', async () => {
    const key = await defaultPrimaryKey({ os: 'linux', arch: 'x64', workspace: ws });
    expect(key).toMatch(/^flake-ci-nix-linux-x64-[0-9a-f]{16}$/);
    expect(key.startsWith(restorePrefix('linux', 'x64'))).toBe(true);
    expect(restorePrefix('Linux', 'X64')).toBe('flake-ci-nix-linux-x64-');
    // Stable across calls.
    expect(await defaultPrimaryKey({ os: 'linux', arch: 'x64', workspace: ws })).toBe(key);
  });

  it('changes with flake.lock and key files, and with which file holds what', async () => {
    const base = await hashKeyFiles(ws, []);
    const withA = await hashKeyFiles(ws, ['a.txt']);
    expect(withA).not.toBe(base);
    expect(await hashKeyFiles(ws, ['b.txt'])).not.toBe(withA);
    expect(await hashKeyFiles(ws, [path.join(ws, 'a.txt')])).toBe(withA);
    fs.writeFileSync(path.join(ws, 'flake.lock'), '{"nodes":{"x":{}}}\n');
    expect(await hashKeyFiles(ws, [])).not.toBe(base);
  });

  it('works without flake.lock but refuses a missing key file, naming it', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-key-empty-'));
    try {
      expect(await hashKeyFiles(empty, [])).toMatch(/^[0-9a-f]{16}$/);
      await expect(hashKeyFiles(empty, ['nope.txt'])).rejects.toThrow(InputError);
      await expect(hashKeyFiles(empty, ['nope.txt'])).rejects.toThrow(/key-files.*nope\.txt/);
    } finally {
      fs.rmSync(empty, { recursive: true });
    }
  });

  it('suffixes saved entries and classifies hits', () => {
    const key = 'flake-ci-nix-linux-x64-0123456789abcdef';
    expect(entryKey(key, '42-1')).toBe(`${key}-42-1`);
    expect(() => entryKey(key, '')).toThrow();
    expect(hitKind(`${key}-42-1`, key)).toBe('exact');
    expect(hitKind(key, key)).toBe('exact');
    expect(hitKind('flake-ci-nix-linux-x64-fedcba9876543210-7-1', key)).toBe('partial');
    // A longer key sharing the prefix is not the same key.
    expect(hitKind(`${key}0-7-1`, key)).toBe('partial');
    expect(hitKind(undefined, key)).toBe('miss');
    expect(hitKind('', key)).toBe('miss');
  });

  it('refuses OS or architecture names that do not belong in a key', () => {
    expect(() => restorePrefix('linux os', 'x64')).toThrow();
  });
});
