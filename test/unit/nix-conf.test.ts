import { describe, expect, it } from '@jest/globals';
import { InputError } from '../../src/errors.js';
import {
  BEGIN_MARKER,
  END_MARKER,
  parseNixConf,
  renderNixConf,
  upsertManagedBlock,
  validateExtraConf,
} from '../../src/nix/conf.js';

describe('renderNixConf', () => {
  it('renders sorted settings, lists space-separated, booleans, includes after settings', () => {
    const text = renderNixConf({
      substituters: ['https://cache.nixos.org', 'https://example.cachix.org'],
      'experimental-features': ['nix-command', 'flakes'],
      sandbox: false,
      'max-jobs': 'auto',
      cores: 0,
      'trusted-users': ['root', 'runner'],
      'build-users-group': 'nixbld',
      'extra-system-features': ['kvm', 'nixos-test'],
      '!include': ['/etc/nix/flake-ci-secrets.conf'],
      include: ['/etc/nix/extra.conf'],
      'accept-flake-config': true,
      'unset-one': undefined,
    });
    expect(text).toBe(
      [
        'accept-flake-config = true',
        'build-users-group = nixbld',
        'cores = 0',
        'experimental-features = nix-command flakes',
        'extra-system-features = kvm nixos-test',
        'max-jobs = auto',
        'sandbox = false',
        'substituters = https://cache.nixos.org https://example.cachix.org',
        'trusted-users = root runner',
        'include /etc/nix/extra.conf',
        '!include /etc/nix/flake-ci-secrets.conf',
        '',
      ].join('\n'),
    );
  });

  it('is stable whatever the key order, and renders an empty list as an empty value', () => {
    const a = renderNixConf({ sandbox: true, substituters: [] });
    const b = renderNixConf({ substituters: [], sandbox: true });
    expect(a).toBe(b);
    expect(a).toBe('sandbox = true\nsubstituters = \n');
    expect(parseNixConf(a).values.substituters).toBe('');
    expect(renderNixConf({})).toBe('');
  });

  it('appends validated extra configuration last', () => {
    const text = renderNixConf(
      { sandbox: true },
      '\n# mine\nsandbox = relaxed\r\nextra-substituters = https://c.example\n',
    );
    expect(text).toBe('sandbox = true\n# mine\nsandbox = relaxed\nextra-substituters = https://c.example\n');
    expect(parseNixConf(text).values.sandbox).toBe('relaxed');
  });

  it('rejects bad names and values, naming the setting', () => {
    expect(() => renderNixConf({ Max_Jobs: 1 })).toThrow(InputError);
    expect(() => renderNixConf({ Max_Jobs: 1 })).toThrow(/"Max_Jobs"/);
    expect(() => renderNixConf({ 'post-build-hook': '/bin/x\nsandbox = false' })).toThrow(
      /'post-build-hook' must be a single line/,
    );
    expect(() => renderNixConf({ substituters: ['https://a b'] })).toThrow(/'substituters' has an item with spaces/);
    expect(() => renderNixConf({ substituters: ['https://x/#frag'] })).toThrow(/'substituters' must not contain '#'/);
    expect(() => renderNixConf({ cores: Number.NaN })).toThrow(/'cores' must be a finite number/);
    expect(() => renderNixConf({ include: ['/a b'] })).toThrow(/include path/);
  });
});

describe('validateExtraConf', () => {
  it('accepts settings, includes, comments and blank lines', () => {
    expect(() =>
      validateExtraConf('# c\n\nkeep-outputs = true  # trailing\n!include /run/secrets/nix.conf\ninclude /etc/x\n'),
    ).not.toThrow();
  });

  it('names the line and setting but never the value', () => {
    const bad = 'sandbox = true\naccess-tokens=github.com=ghp_SECRET\n';
    expect(() => validateExtraConf(bad)).toThrow(InputError);
    try {
      validateExtraConf(bad);
    } catch (e) {
      expect((e as Error).message).toMatch(/extra-conf line 2: expected 'NAME = VALUE'.*'access-tokens'/);
      expect((e as Error).message).not.toContain('ghp_SECRET');
    }
    expect(() => validateExtraConf('Sandbox = true')).toThrow(/line 1: invalid setting name 'Sandbox'/);
    expect(() => validateExtraConf('include a b')).toThrow(/line 1: 'include' takes exactly one path/);
    expect(() => validateExtraConf(`x = 1\n${END_MARKER}`)).toThrow(/line 2: must not contain the flake-ci block/);
  });
});

describe('upsertManagedBlock', () => {
  const block = 'substituters = https://cache.nixos.org\nsandbox = false';

  it('appends to a file without a block, keeping the rest untouched', () => {
    const existing = 'build-users-group = nixbld\n# user comment\nmax-jobs = 4';
    const out = upsertManagedBlock(existing, block);
    expect(out).toBe(
      `build-users-group = nixbld\n# user comment\nmax-jobs = 4\n${BEGIN_MARKER}\n${block}\n${END_MARKER}\n`,
    );
    expect(upsertManagedBlock('', block)).toBe(`${BEGIN_MARKER}\n${block}\n${END_MARKER}\n`);
  });

  it('replaces an existing block in place and is idempotent', () => {
    const before = `a = 1\n${BEGIN_MARKER}\nold = 1\n${END_MARKER}\nb = 2\n`;
    const once = upsertManagedBlock(before, `${block}\n\n`);
    expect(once).toBe(`a = 1\n${BEGIN_MARKER}\n${block}\n${END_MARKER}\nb = 2\n`);
    expect(upsertManagedBlock(once, block)).toBe(once);
    expect(upsertManagedBlock(upsertManagedBlock('x = 1\n\n', block), block)).toBe(
      upsertManagedBlock('x = 1\n\n', block),
    );
  });

  it('collapses duplicate blocks and handles an empty block', () => {
    const twice = `${BEGIN_MARKER}\na = 1\n${END_MARKER}\nmid = 1\n${BEGIN_MARKER}\nb = 2\n${END_MARKER}\n`;
    expect(upsertManagedBlock(twice, 'c = 3')).toBe(`${BEGIN_MARKER}\nc = 3\n${END_MARKER}\nmid = 1\n`);
    expect(upsertManagedBlock('', '')).toBe(`${BEGIN_MARKER}\n${END_MARKER}\n`);
  });

  it('refuses an unterminated block and markers inside the block', () => {
    expect(() => upsertManagedBlock(`${BEGIN_MARKER}\na = 1\n`, block)).toThrow(InputError);
    expect(() => upsertManagedBlock('', `a = 1\n${END_MARKER}`)).toThrow(/must not contain the flake-ci markers/);
  });
});

describe('parseNixConf', () => {
  it('parses like Nix: comments anywhere, includes, extra-* appending, later lines winning', () => {
    const conf = parseNixConf(
      [
        '# Debian default',
        'build-users-group = nixbld',
        'substituters = https://cache.nixos.org   # official',
        'extra-substituters = https://a.example https://b.example',
        'experimental-features = nix-command',
        'experimental-features = nix-command flakes',
        'include /etc/nix/more.conf',
        '!include /etc/nix/secrets.conf',
        '  trusted-users   =   root  @wheel ',
        'empty =',
      ].join('\n'),
    );
    expect(conf.values).toEqual({
      'build-users-group': 'nixbld',
      substituters: 'https://cache.nixos.org https://a.example https://b.example',
      'experimental-features': 'nix-command flakes',
      'trusted-users': 'root @wheel',
      empty: '',
    });
    expect(conf.includes).toEqual([
      { path: '/etc/nix/more.conf', optional: false, line: 7 },
      { path: '/etc/nix/secrets.conf', optional: true, line: 8 },
    ]);
    expect(conf.entries[0]).toEqual({ name: 'build-users-group', value: 'nixbld', line: 2 });
  });

  it('round-trips what renderNixConf writes', () => {
    const text = renderNixConf({ 'trusted-public-keys': ['k1:abc=', 'k2:def='], sandbox: true });
    expect(parseNixConf(text).values).toEqual({ 'trusted-public-keys': 'k1:abc= k2:def=', sandbox: 'true' });
  });

  it('rejects illegal lines with their number', () => {
    expect(() => parseNixConf('a = 1\nkey=value')).toThrow(/line 2: illegal configuration line/);
  });
});
