import { describe, expect, it } from '@jest/globals';
import { InputError } from '../../src/errors.js';
import { managedBlock, settingsFor } from '../../src/install-nix/config.js';
import { releaseUrl } from '../../src/install-nix/download.js';
import { parseVersionLine } from '../../src/install-nix/existing.js';
import { hostSupport } from '../../src/install-nix/host.js';
import { DEFAULT_NIX_VERSION, parseInstallInputs, parseSha256 } from '../../src/install-nix/inputs.js';
import type { KvmProbe } from '../../src/install-nix/kvm.js';
import { Privilege } from '../../src/install-nix/privilege.js';
import { cacheVersion } from '../../src/install-nix/tool-cache.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { upsertManagedBlock } from '../../src/nix/conf.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const HEX = 'be583cd40b22e03b8a4f20c7e0dc4147b27ead681091e7dbc8015aeaf89de7e4';

function inputs(given: Record<string, string> = {}) {
  return parseInstallInputs(new RecordingPlatform(given));
}

function probe(over: Partial<KvmProbe>): KvmProbe {
  return {
    usable: false,
    device: true,
    readWrite: true,
    vmCreated: true,
    guestRan: true,
    reason: '',
    stages: [],
    elapsedMs: 0,
    ...over,
  } as KvmProbe;
}

describe('install-nix inputs', () => {
  it('has pinned, documented defaults', () => {
    const i = inputs();
    expect(i).toMatchObject({
      source: 'auto',
      mode: 'auto',
      nixVersion: DEFAULT_NIX_VERSION,
      toolCache: true,
      kvm: true,
    });
    expect(i.trustedUsers).toBeUndefined();
    expect(i.tarballSha256).toBe('');
  });

  it('names the input and its allowed values on bad enums', () => {
    expect(() => inputs({ source: 'nixpkgs' })).toThrow(
      "Input 'source' must be one of auto, tarball, existing, distro; got 'nixpkgs'.",
    );
    expect(() => inputs({ mode: 'daemon' })).toThrow(/'mode' must be one of auto, single-user, multi-user/);
    expect(() => inputs({ sandbox: 'maybe' })).toThrow(InputError);
  });

  it('validates versions, URLs and checksums', () => {
    expect(() => inputs({ 'nix-version': 'latest' })).toThrow(/'nix-version' must be a Nix release such as/);
    expect(() => inputs({ 'tarball-url': 'ftp://mirror/nix.tar.xz' })).toThrow(/'tarball-url' must be an https/);
    expect(() => inputs({ 'tarball-sha256': 'abc' })).toThrow(/'tarball-sha256' must be a SHA-256/);
    expect(inputs({ 'tarball-sha256': HEX.toUpperCase() }).tarballSha256).toBe(HEX);
    const sri = `sha256-${Buffer.from(HEX, 'hex').toString('base64')}`;
    expect(parseSha256(sri)).toBe(HEX);
  });

  it("reads trusted-users: empty = root + runner user, 'none' = only root", () => {
    expect(inputs({ 'trusted-users': 'none' }).trustedUsers).toEqual([]);
    expect(inputs({ 'trusted-users': 'alice @wheel' }).trustedUsers).toEqual(['alice', '@wheel']);
    expect(() => inputs({ 'trusted-users': 'a;rm' })).toThrow(/'trusted-users' holds 'a;rm'/);
  });

  it('registers the token as a secret', () => {
    const p = new RecordingPlatform({ 'github-token': 'ghs_x1y2z3' });
    parseInstallInputs(p);
    expect(p.secrets).toContain('ghs_x1y2z3');
  });
});

describe('nix.conf generation', () => {
  const ctx = { multiUser: false, user: 'runner' };

  it('writes flake-ci settings with extra-* keys so defaults survive', () => {
    const s = settingsFor(
      inputs({ substituters: 'https://a.example https://b.example', 'trusted-public-keys': 'a:KEY=' }),
      ctx,
    );
    expect(s).toMatchObject({
      'extra-experimental-features': 'nix-command flakes',
      'max-jobs': 'auto',
      'extra-substituters': 'https://a.example https://b.example',
      'extra-trusted-public-keys': 'a:KEY=',
      'trusted-users': 'root runner',
      'build-users-group': '',
    });
    expect(settingsFor(inputs(), { ...ctx, multiUser: true })['build-users-group']).toBe('nixbld');
  });

  it('advertises kvm only when a guest really ran, and hides it when the device lies', () => {
    expect(settingsFor(inputs(), { ...ctx, kvm: probe({ usable: true }) })['extra-system-features']).toBe(
      'kvm nixos-test',
    );
    const lying = settingsFor(inputs(), { ...ctx, kvm: probe({ usable: false, readWrite: true }) });
    expect(lying['system-features']).toBe('nixos-test benchmark big-parallel');
    expect(lying['extra-system-features']).toBeUndefined();
    expect(
      settingsFor(inputs(), { ...ctx, kvm: probe({ device: false, readWrite: false }) })['system-features'],
    ).toBeUndefined();
  });

  it('includes the token file by path, never the token', () => {
    const block = managedBlock(inputs({ 'github-token': 'ghs_secret' }), { ...ctx, secretsFile: '/tmp/x/tokens.conf' });
    expect(block).toContain('!include /tmp/x/tokens.conf');
    expect(block).not.toContain('ghs_secret');
  });

  it('appends extra-conf after our settings and replaces the block on a second run', () => {
    const first = upsertManagedBlock(
      'sandbox = false\n',
      managedBlock(inputs({ 'extra-conf': 'keep-outputs = true' }), ctx),
    );
    expect(first.indexOf('keep-outputs = true')).toBeGreaterThan(first.indexOf('max-jobs = auto'));
    const second = upsertManagedBlock(first, managedBlock(inputs({ 'extra-conf': 'keep-derivations = true' }), ctx));
    expect(second).toContain('sandbox = false');
    expect(second).toContain('keep-derivations = true');
    expect(second).not.toContain('keep-outputs');
    expect(second.match(/BEGIN flake-ci/g)).toHaveLength(1);
  });

  it('rejects extra-conf lines that Nix would misread', () => {
    expect(() => managedBlock(inputs({ 'extra-conf': 'max-jobs=4' }), ctx)).toThrow(InputError);
  });
});

describe('versions, hosts and keys', () => {
  it('builds the official release URL', () => {
    expect(releaseUrl('2.34.8', 'aarch64-linux')).toBe(
      'https://releases.nixos.org/nix/nix-2.34.8/nix-2.34.8-aarch64-linux.tar.xz',
    );
  });

  it('parses nix --version of several distributions', () => {
    expect(parseVersionLine('nix (Nix) 2.8.0\n')).toBe('2.8.0');
    expect(parseVersionLine('nix (Determinate Nix 3.6.2) 2.29.0')).toBe('2.29.0');
    expect(parseVersionLine('not nix')).toBeUndefined();
  });

  it('keys the tool cache by version and content', () => {
    expect(cacheVersion('2.34.8', HEX)).toBe('2.34.8-shabe583cd40b22e03b');
    expect(cacheVersion('2.34', HEX)).toBe('2.34.0-shabe583cd40b22e03b');
  });

  it('supports Linux x64/arm64 and says macOS is not supported yet', () => {
    expect(hostSupport({ os: 'linux', arch: 'x64' }).system).toBe('x86_64-linux');
    expect(hostSupport({ os: 'linux', arch: 'arm64' }).system).toBe('aarch64-linux');
    expect(() => hostSupport({ os: 'darwin', arch: 'arm64' })).toThrow(/macOS is not supported yet/);
    expect(() => hostSupport({ os: 'linux', arch: 'ia32' })).toThrow(/Unsupported CPU architecture 'ia32'/);
    expect(() => hostSupport({ os: 'win32', arch: 'x64' })).toThrow(InputError);
  });
});

describe('privileges and host checks', () => {
  it('says when root or sudo is needed and there is neither', async () => {
    const p = new RecordingPlatform();
    const none = Privilege.of(false, false);
    expect(none.canWriteSystem).toBe(false);
    await expect(none.run(p, 'mode: multi-user', 'true', [])).rejects.toThrow(
      "mode: multi-user needs root or passwordless sudo, and this job has neither. Run as root or allow 'sudo -n'.",
    );
    expect(Privilege.of(false, true).prefix).toEqual(['sudo', '-n']);
    expect(Privilege.of(true, false).prefix).toEqual([]);
  });

  it('refuses SELinux enforcing and accepts permissive', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'selinux-'));
    const file = path.join(dir, 'enforce');
    writeFileSync(file, '1\n');
    expect(() => hostSupport({ os: 'linux', arch: 'x64' }, { selinuxEnforce: file }).checkInstallable()).toThrow(
      /SELinux is enforcing/,
    );
    writeFileSync(file, '0\n');
    expect(() => hostSupport({ os: 'linux', arch: 'x64' }, { selinuxEnforce: file }).checkInstallable()).not.toThrow();
  });
});
