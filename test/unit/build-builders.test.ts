import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { normalizePrivateKey, secretParts } from '../../src/build/builders-key.js';
import {
  formatBuilders,
  formatMachine,
  machineCanBuild,
  machinesFromSetting,
  parseBuilders,
  SPEC_FORM,
} from '../../src/build/builders-spec.js';
import { cleanupBuilders, setupBuilders, SSH_OPTIONS, type BuildersState } from '../../src/build/builders.js';
import { InputError } from '../../src/errors.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { loadState, saveState } from '../../src/platform/state.js';

const HOST_LINE = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvV6RqDOmd0rVY0b6FJ6DxC0JTiMRFIF1uKtCAmKcsZ root@builder';
const HOST_KEY = Buffer.from(HOST_LINE).toString('base64');

/** An OpenSSH private key file whose header names `cipher` (the body after it does not matter to the checks). */
function opensshKey(cipher: string): string {
  const str = (s: string) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(s.length);
    return Buffer.concat([len, Buffer.from(s, 'latin1')]);
  };
  const bin = Buffer.concat([Buffer.from('openssh-key-v1\0', 'latin1'), str(cipher), str('none'), Buffer.alloc(64, 7)]);
  const body = bin.toString('base64').match(/.{1,70}/g) ?? [];
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...body, '-----END OPENSSH PRIVATE KEY-----'].join('\n');
}
const KEY = opensshKey('none');

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('parseBuilders', () => {
  it('reads full and short specs, separated by ";" or new lines, with comments and "-" fields', () => {
    const entries = parseBuilders(
      `ssh://nix@b1.example.com x86_64-linux,i686-linux /keys/b1 8 2 kvm,big-parallel nixos-test ${HOST_KEY}\n` +
        '# a comment line\n' +
        'ssh-ng://b2:2222 aarch64-linux - - - - - - ; nix@b3 # trailing comment\n\n@/etc/nix/machines',
    );
    expect(entries).toEqual([
      {
        kind: 'machine',
        spec: {
          uri: 'ssh://nix@b1.example.com',
          systems: ['x86_64-linux', 'i686-linux'],
          sshKey: '/keys/b1',
          maxJobs: 8,
          speedFactor: 2,
          supportedFeatures: ['kvm', 'big-parallel'],
          mandatoryFeatures: ['nixos-test'],
          hostKey: HOST_KEY,
        },
      },
      {
        kind: 'machine',
        spec: {
          uri: 'ssh-ng://b2:2222',
          systems: ['aarch64-linux'],
          sshKey: '',
          supportedFeatures: [],
          mandatoryFeatures: [],
          hostKey: '',
        },
      },
      expect.objectContaining({ kind: 'machine', spec: expect.objectContaining({ uri: 'nix@b3', systems: [] }) }),
      { kind: 'file', path: '/etc/nix/machines' },
    ]);
    expect(parseBuilders('  \n ; ')).toEqual([]);
  });

  it('formats specs as Nix reads them: "-" for empty fields, trailing empty fields dropped', () => {
    const [a, b, c, d] = parseBuilders(
      `ssh://a x86_64-linux - - - - - ${HOST_KEY}; ssh-ng://b - - 4; ssh://c - - - - - - -; @/etc/nix/machines`,
    );
    if (a?.kind !== 'machine' || b?.kind !== 'machine' || c?.kind !== 'machine') throw new Error('not machines');
    expect(formatMachine(a.spec)).toBe(`ssh://a x86_64-linux - - - - - ${HOST_KEY}`);
    expect(formatMachine(b.spec)).toBe('ssh-ng://b - - 4');
    expect(formatMachine({ ...c.spec, sshKey: '/tmp/k/id' })).toBe('ssh://c - /tmp/k/id');
    expect(formatBuilders([b, c, d as NonNullable<typeof d>])).toBe('ssh-ng://b - - 4 ; ssh://c ; @/etc/nix/machines');
  });

  it.each([
    ['ssh://a x86_64-linux - 1 1 - - - extra', /9 fields, at most 8/],
    ['https://builder x86_64-linux', /"https:\/\/builder" is not an ssh:\/\/ or ssh-ng:\/\/ URI/],
    ['ssh://a x86_64-linux keys/id', /absolute path on the runner, or "-" to use builders-ssh-key/],
    ['ssh://a x86_64', /system "x86_64" is not valid/],
    ['ssh://a x86_64-linux - four', /max jobs \(field 4\) must be an integer >= 0, not "four"/],
    ['ssh://a x86_64-linux - 1 0', /speed factor \(field 5\) must be an integer >= 1/],
    ['ssh://a x86_64-linux - 1 1 kvm,big*', /supported feature "big\*" is not valid/],
    ['ssh://a x86_64-linux - 1 1 - - not*base64', /host key \(field 8\) is not base64/],
    [
      'ssh://a x86_64-linux - 1 1 - - AAAAC3NzaC1lZDI1NTE5AAAAIBvV6RqDOmd0rVY0b6FJ6DxC0JTiMRFIF1uKtCAmKcsZ',
      /bare key blob/,
    ],
    [
      `ssh://a - - - - - - ${Buffer.from('builder ssh-ed25519 AAAA').toString('base64')}`,
      /does not decode to a public/,
    ],
    ['@machines', /"@" followed by an absolute path/],
  ])('rejects %j naming the input, the entry and the expected form', (line, why) => {
    const e = inputError(() => parseBuilders(`ssh://ok x86_64-linux\n${line}`));
    expect(e.message).toMatch(why);
    expect(e.message).toMatch(/^builders: entry [23] \(".*"\) is not a Nix machine spec/);
    expect(e.message).toContain(SPEC_FORM);
  });
});

describe('normalizePrivateKey', () => {
  it('keeps a key as ssh wants it: LF line ends and one final newline', () => {
    expect(normalizePrivateKey(`  ${KEY.replace(/\n/g, '\r\n')}  `)).toBe(`${KEY}\n`);
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----';
    expect(normalizePrivateKey(pem)).toBe(`${pem}\n`);
  });

  it.each([
    ['a public key', HOST_LINE, /holds a public key/],
    ['not a key', 'hunter2', /is not a private key/],
    ['a key without line breaks', KEY.replace(/\n/g, ' '), /lost its line breaks/],
    ['a key with literal \\n', KEY.replace(/\n/g, '\\n'), /lost its line breaks/],
    ['an encrypted OpenSSH key', opensshKey('aes256-ctr'), /protected by a passphrase/],
    [
      'an encrypted PKCS#8 key',
      '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----',
      /passphrase/,
    ],
    [
      'an encrypted PEM key',
      '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIE\n-----END RSA PRIVATE KEY-----',
      /passphrase/,
    ],
  ])('rejects %s, naming builders-ssh-key without quoting it', (_what, key, why) => {
    const e = inputError(() => normalizePrivateKey(key));
    expect(e.message).toMatch(why);
    expect(e.message).toMatch(/^builders-ssh-key /);
    for (const line of key.split('\n').filter((l) => l.length > 12 && !l.startsWith('-----')))
      expect(e.message).not.toContain(line);
  });

  it('registers the whole key and each body line as secrets, not the BEGIN/END lines', () => {
    const parts = secretParts(KEY);
    expect(parts[0]).toBe(KEY);
    expect(parts.slice(1)).toEqual(KEY.split('\n').slice(1, -1));
  });
});

describe('setupBuilders / cleanupBuilders', () => {
  let temp: string;
  let platform: RecordingPlatform;
  beforeEach(() => {
    temp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-bld-test-'));
    platform = new RecordingPlatform({}, {}, { temp });
  });
  afterEach(() => fs.rmSync(temp, { recursive: true, force: true }));

  const keyDir = () => loadState<BuildersState>(platform)?.buildersKeyDir ?? '';
  const warnings = () => platform.logs.filter((l) => l.level === 'warning').map((l) => l.message);

  it('does nothing without builders (and says an unused key is unused)', async () => {
    expect(await setupBuilders(platform, { builders: '', sshKey: '', temp })).toEqual({ extraArgs: [], env: {} });
    expect(await setupBuilders(platform, { builders: ' ', sshKey: KEY, temp })).toEqual({ extraArgs: [], env: {} });
    expect(warnings()).toEqual(['builders-ssh-key is set but builders is empty: the key is not used.']);
    expect(fs.readdirSync(temp)).toEqual([]);
    expect(platform.secrets).toContain(KEY);
  });

  it('writes the key 0600 in a 0700 directory, uses it for keyless specs, and keeps only the directory in state', async () => {
    const builders = `ssh://a x86_64-linux - 2 1 - - ${HOST_KEY}\nssh-ng://b aarch64-linux /own/key`;
    const setup = await setupBuilders(platform, { builders, sshKey: `${KEY}\n\n`, temp });
    const dir = keyDir();
    expect(path.dirname(dir)).toBe(temp);
    expect(path.basename(dir)).toMatch(/^flake-ci-builders-/);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const file = path.join(dir, 'id');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${KEY}\n`);
    expect(setup.extraArgs).toEqual([
      '--option',
      'builders',
      `ssh://a x86_64-linux ${file} 2 1 - - ${HOST_KEY} ; ssh-ng://b aarch64-linux /own/key`,
      '--option',
      'builders-use-substitutes',
      'true',
    ]);
    expect(setup.env).toEqual({ NIX_SSHOPTS: SSH_OPTIONS.join(' ') });
    expect(platform.secrets).toEqual(secretParts(KEY));
    // The key never reaches state, logs, argv or env; the unpinned builder gets a warning that says how to pin.
    const text = [platform.allText(), JSON.stringify(setup)].join('\n');
    for (const line of KEY.split('\n').slice(1, -1)) expect(text).not.toContain(line);
    expect(warnings()).toEqual([
      expect.stringMatching(/^builders: ssh-ng:\/\/b has no pinned host key \(field 8\).*base64 -w0/),
    ]);

    await cleanupBuilders(platform);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it("puts the user's NIX_SSHOPTS first, so their options win", async () => {
    const p = new RecordingPlatform({}, { NIX_SSHOPTS: ' -p 2222 -oBatchMode=no ' }, { temp });
    const setup = await setupBuilders(p, { builders: `ssh://a - - - - - - ${HOST_KEY}`, sshKey: '', temp });
    expect(setup.env.NIX_SSHOPTS).toBe(['-p 2222 -oBatchMode=no', ...SSH_OPTIONS].join(' '));
    expect(setup.extraArgs[2]).toBe(`ssh://a - - - - - - ${HOST_KEY}`);
    expect(fs.readdirSync(temp)).toEqual([]);
  });

  it('does not write a key that no builder uses', async () => {
    await setupBuilders(platform, { builders: 'ssh://a x86_64-linux /own/key', sshKey: KEY, temp });
    expect(fs.readdirSync(temp)).toEqual([]);
    expect(warnings()).toContain(
      'builders-ssh-key is set but every builder names its own key file: the key is not used.',
    );
  });

  it('validates everything before writing anything', async () => {
    await expect(setupBuilders(platform, { builders: 'ftp://a', sshKey: KEY, temp })).rejects.toThrow(InputError);
    await expect(setupBuilders(platform, { builders: 'ssh://a', sshKey: 'nope', temp })).rejects.toThrow(
      /builders-ssh-key is not a private key/,
    );
    expect(fs.readdirSync(temp)).toEqual([]);
    expect(platform.state).toEqual({});
  });

  it('cleans up without state (a later save replaced it), never touching other directories', async () => {
    await setupBuilders(platform, { builders: 'ssh://a', sshKey: KEY, temp });
    const dir = keyDir();
    fs.mkdirSync(path.join(temp, 'other'));
    saveState(platform, { somethingElse: true });
    await cleanupBuilders(platform);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(temp)).toEqual(['other']);
  });

  it('never throws and never removes a directory it did not create', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'not-ours-'));
    try {
      saveState(platform, { buildersKeyDir: outside });
      await expect(cleanupBuilders(platform)).resolves.toBeUndefined();
      expect(fs.existsSync(outside)).toBe(true);
      const gone = new RecordingPlatform({}, {}, { temp: path.join(temp, 'missing') });
      saveState(gone, { buildersKeyDir: path.join(temp, 'flake-ci-builders-gone') });
      await expect(cleanupBuilders(gone)).resolves.toBeUndefined();
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe("Nix's own builders setting", () => {
  const files: Record<string, string> = {
    '/etc/nix/machines':
      'ssh://a x86_64-linux - 2 1 kvm,nixos-test\n# a comment\nthis is not a spec at all 1 2 3 4 5 6 7 8 9\n',
    '/etc/nix/more': '@/etc/nix/machines',
  };
  const read = (f: string) => {
    const text = files[f];
    if (text === undefined) throw new Error(`ENOENT: ${f}`);
    return text;
  };

  it('reads inline specs and @file entries, passing over what it cannot read', () => {
    const machines = machinesFromSetting('ssh-ng://b aarch64-linux; @/etc/nix/machines; @/nowhere', read);
    expect(machines.map((m) => [m.uri, m.systems, m.supportedFeatures])).toEqual([
      ['ssh-ng://b', ['aarch64-linux'], []],
      ['ssh://a', ['x86_64-linux'], ['kvm', 'nixos-test']],
    ]);
    expect(machinesFromSetting('@/etc/nix/more', read).map((m) => m.uri)).toEqual(['ssh://a']);
    expect(machinesFromSetting('', read)).toEqual([]);
  });

  it("matches machines by Nix's rules: system, offered features, mandatory features", () => {
    const [m] = machinesFromSetting('ssh://a x86_64-linux - 1 1 kvm,nixos-test big-parallel', read);
    const spec = m as NonNullable<typeof m>;
    expect(machineCanBuild(spec, 'x86_64-linux', ['nixos-test', 'big-parallel'], 'x86_64-linux')).toBe(true);
    expect(machineCanBuild(spec, 'x86_64-linux', ['nixos-test'], 'x86_64-linux')).toBe(false); // mandatory unmet
    expect(machineCanBuild(spec, 'aarch64-linux', ['nixos-test', 'big-parallel'], 'x86_64-linux')).toBe(false);
    const [bare] = machinesFromSetting('ssh://c', read);
    expect(machineCanBuild(bare as NonNullable<typeof bare>, 'x86_64-linux', [], 'x86_64-linux')).toBe(true);
    expect(machineCanBuild(bare as NonNullable<typeof bare>, 'aarch64-linux', [], 'x86_64-linux')).toBe(false);
  });
});
