/**
 * Remote builders against a REAL second host (test/support/remote-builder.mjs: a network namespace with its own
 * address, its own /nix and Debian's sshd), for Nix 2.8 (host; nix-store --realise) and 2.34 (relocated; nix
 * build), each with its own local chroot store and its own remote running the same Nix. setupBuilders turns the
 * `builders` / `builders-ssh-key` inputs into build arguments; `--max-jobs 0` makes sure nothing builds locally.
 * Every derivation writes the host name of the machine that built it (the remote has its own UTS namespace).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { normalizePrivateKey } from '../../src/build/builders-key.js';
import { machinesOf, parseBuilders } from '../../src/build/builders-spec.js';
import { cleanupBuilders, setupBuilders, type BuildersState } from '../../src/build/builders.js';
import { runBuild, type BuildEngineResult } from '../../src/build/engine.js';
import { prepareVmTests } from '../../src/build/vm.js';
import type { KvmProbe } from '../../src/install-nix/kvm.js';
import { NixCommand } from '../../src/nix/command.js';
import { formatVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { loadState } from '../../src/platform/state.js';
import { NIX234_BIN } from '../support/fixtures.js';
import { requireRemoteBuilderTools, startRemoteBuilder, type RemoteBuilder } from '../support/remote-builder.mjs';

const SYSTEM = 'x86_64-linux';
const NO_KVM: KvmProbe = {
  usable: false,
  device: false,
  readWrite: false,
  vmCreated: false,
  guestRan: false,
  reason: 'no /dev/kvm',
  stages: [],
  elapsedMs: 0,
};
const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin', version: /^2\.8\./ },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN, version: /^2\.3[4-9]\./ },
];

// No nixpkgs: each check records the host name of the machine that ran its builder.
const FLAKE = `{
  outputs = { self }:
    let
      mkWith = extra: name: derivation ({
        inherit name;
        system = "${SYSTEM}";
        builder = "/bin/sh";
        args = [ "-c" "echo \\"built-on=$(cat /proc/sys/kernel/hostname)\\" > $out" ];
        PATH = "/usr/bin:/bin";
      } // extra);
      mk = mkWith { };
    in {
      checks.${SYSTEM} = {
        # Stands for a NixOS VM test: what the gate looks at is the nixos-test feature.
        vm-remote = mkWith { requiredSystemFeatures = [ "nixos-test" "kvm" ]; } "vm-remote";
        vm-setting = mkWith { requiredSystemFeatures = [ "nixos-test" "kvm" ]; } "vm-setting";
        over-ssh = mk "over-ssh";
        over-ssh-ng = mk "over-ssh-ng";
        wrong-key = mk "wrong-key";
        wrong-host-key = mk "wrong-host-key";
      };
    };
}
`;

describe.each(BINARIES)('remote builder with $name', ({ bin, version }) => {
  let tmp: string;
  let flake: string;
  let store: string;
  let nix: NixCommand;
  let remote: RemoteBuilder | undefined;

  beforeAll(async () => {
    requireRemoteBuilderTools();
    if (!fs.existsSync(path.join(bin, 'nix')))
      throw new Error(`No nix in ${bin}: run 'bash test/setup/nix-fixtures.sh'.`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-build-remote-'));
    flake = path.join(tmp, 'flake');
    store = path.join(tmp, 'store');
    for (const d of ['flake', 'conf', 'home', 'runner-temp']) fs.mkdirSync(path.join(tmp, d));
    fs.writeFileSync(path.join(flake, 'flake.nix'), FLAKE);
    nix = await NixCommand.detect(undefined, bin, {
      NIX_CONF_DIR: path.join(tmp, 'conf'),
      HOME: path.join(tmp, 'home'),
      XDG_CONFIG_HOME: path.join(tmp, 'home'),
      XDG_CACHE_HOME: path.join(tmp, 'home'),
      NIX_CONFIG: [
        `store = ${store}`,
        'substituters =',
        'sandbox = false',
        'sandbox-paths = /bin /usr /lib /lib64',
        'build-users-group =',
        'experimental-features = nix-command flakes',
      ].join('\n'),
    });
    expect(formatVersion(nix.version)).toMatch(version);
    remote = await startRemoteBuilder({
      nixBin: bin,
      systemFeatures: ['benchmark', 'big-parallel', 'kvm', 'nixos-test'],
    });
  });

  afterAll(async () => {
    await remote?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** setupBuilders + runBuild of one check, as the action does it, with the platform's env and temp dir. */
  async function buildRemotely(attr: string, builders: string, sshKey: string, sshLog = false, vmGate = false) {
    const sshLogFile = path.join(tmp, `ssh-${attr}.log`);
    // The user's own NIX_SSHOPTS must survive next to ours: an ssh client log (which replaces ssh's stderr, so
    // only where no ssh error is expected) shows ssh really got them.
    const env = sshLog ? { NIX_SSHOPTS: `-E ${sshLogFile} -v` } : {};
    const platform = new RecordingPlatform({}, env, { temp: path.join(tmp, 'runner-temp') });
    const setup = await setupBuilders(platform, { builders, sshKey, temp: platform.runner.temp });
    const keyDir = loadState<BuildersState>(platform)?.buildersKeyDir ?? '';
    const keyModes = { dir: fs.statSync(keyDir).mode & 0o777, file: fs.statSync(path.join(keyDir, 'id')).mode & 0o777 };
    const buildNix = new NixCommand({ bin, version: nix.version, platform, env: { ...nix.env, ...setup.env } });
    const result: BuildEngineResult = await runBuild(platform, buildNix, {
      flake,
      mode: 'attributes',
      attributes: [`checks.${SYSTEM}.${attr}`],
      extraBuildArgs: [...setup.extraArgs, '--max-jobs', '0'],
      retries: 1,
      // As the action does it, with a probe that says what it says on this machine: no usable KVM.
      prepareBuild: vmGate
        ? (targets, config) =>
            prepareVmTests(platform, targets, {
              allowEmulation: false,
              nix: buildNix,
              config,
              probe: async () => ({ ...NO_KVM }),
              remoteBuilders: machinesOf(parseBuilders(builders)),
            })
        : undefined,
    });
    const clientLog = sshLog ? fs.readFileSync(sshLogFile, 'utf8') : '';
    await cleanupBuilders(platform);
    return { platform, setup, result, keyDir, keyModes, sshLog: clientLog, only: result.results[0] };
  }

  const pinned = (scheme: 'ssh' | 'ssh-ng', hostKey: string) => `${remote?.uri(scheme)} ${SYSTEM} - 1 1 - - ${hostKey}`;

  it.each(['ssh', 'ssh-ng'] as const)('builds on the remote over %s:// and brings the output back', async (scheme) => {
    const r = remote as RemoteBuilder;
    const attr = scheme === 'ssh' ? 'over-ssh' : 'over-ssh-ng';
    const run = await buildRemotely(attr, pinned(scheme, r.hostKeyBase64), r.clientKey, true);
    expect(run.only?.status).toBe('built');
    expect(run.keyModes).toEqual({ dir: 0o700, file: 0o600 });
    const out = run.only?.outputs.out ?? '';
    expect(out).toMatch(new RegExp(`^/nix/store/[a-z0-9]{32}-${attr}$`));

    // Valid in the local store, and its content says where it was built.
    const local = await nix.runStore(['--check-validity', out], { allowFailure: true });
    expect(local.exitCode).toBe(0);
    expect(fs.readFileSync(path.join(store, out), 'utf8')).toBe(`built-on=${r.hostname}\n`);
    expect(r.hostname).not.toBe(os.hostname());
    // The remote's own store has it too (its /nix is a directory of ours, and its Nix agrees over ssh).
    expect(fs.existsSync(path.join(r.storeDir, path.basename(out)))).toBe(true);
    expect(r.ssh(['nix-store', '--check-validity', out]).status).toBe(0);
    expect(r.log()).toMatch(/Accepted publickey for root/);

    // NIX_SSHOPTS reached ssh (its -E log exists), the user's options first; the key file is gone after cleanup.
    expect(run.setup.env.NIX_SSHOPTS).toMatch(/^-E \S+ -v -oBatchMode=yes/);
    expect(run.sshLog).toMatch(new RegExp(`Connecting to ${r.address.replace(/\./g, '\\.')}`));
    expect(fs.existsSync(run.keyDir)).toBe(false);
    expect(run.platform.secrets).toContain(r.clientKey.trim());
    expect(run.platform.allText()).not.toContain(keyBody(r.clientKey));
  });

  it('sends a NixOS VM test to a remote builder offering nixos-test when KVM is not usable here', async () => {
    const r = remote as RemoteBuilder;
    const offering = `${r.uri('ssh-ng')} ${SYSTEM} - 1 1 kvm,nixos-test - ${r.hostKeyBase64}`;
    const run = await buildRemotely('vm-remote', offering, r.clientKey, false, true);
    expect(run.only?.status).toBe('built');
    expect(fs.readFileSync(path.join(store, run.only?.outputs.out ?? ''), 'utf8')).toBe(`built-on=${r.hostname}\n`);
    expect(run.platform.allText()).toContain('1 NixOS VM test(s) go to the remote builders that offer their features');
    // A builder that does not offer nixos-test is no reason to try: refused, with the fixes named.
    const lacking = await buildRemotely(
      'vm-remote',
      `${r.uri('ssh-ng')} ${SYSTEM} - 1 1 kvm - ${r.hostKeyBase64}`,
      r.clientKey,
      false,
      true,
    );
    expect(lacking.only?.status).toBe('failed');
    expect(lacking.only?.error).toContain("a remote builder offering 'nixos-test'");
  });

  it("reads Nix's own builders setting for that when the builders input is empty", async () => {
    const r = remote as RemoteBuilder;
    const spec = `${r.uri('ssh-ng')} ${SYSTEM} ${r.clientKeyPath} 1 1 kvm,nixos-test - ${r.hostKeyBase64}`;
    const platform = new RecordingPlatform({}, {}, { temp: path.join(tmp, 'runner-temp') });
    const env = { ...nix.env, NIX_CONFIG: `${nix.env.NIX_CONFIG ?? ''}\nbuilders = ${spec}` };
    const withSetting = new NixCommand({ bin, version: nix.version, platform, env });
    const result = await runBuild(platform, withSetting, {
      flake,
      mode: 'attributes',
      attributes: [`checks.${SYSTEM}.vm-setting`],
      extraBuildArgs: ['--max-jobs', '0'],
      retries: 1,
      // The settings the engine read (its NIX_CONFIG holds the builders), as the action hands them over.
      prepareBuild: (targets, config) =>
        prepareVmTests(platform, targets, {
          allowEmulation: false,
          config,
          probe: async () => ({ ...NO_KVM }),
        }),
    });
    const only = result.results[0];
    expect(only?.status).toBe('built');
    expect(fs.readFileSync(path.join(store, only?.outputs.out ?? ''), 'utf8')).toBe(`built-on=${r.hostname}\n`);
  });

  it('fails a wrong key as an infrastructure failure, with a clear message and without the key', async () => {
    const r = remote as RemoteBuilder;
    const wrong = throwawayKey(tmp, 'wrong-client');
    const run = await buildRemotely('wrong-key', pinned('ssh', r.hostKeyBase64), wrong);
    expect(run.only?.status).toBe('infra-failure');
    expect(run.only?.attempts).toBe(2);
    expect(run.only?.error).toMatch(/Permission denied \(publickey\)/);
    expect(run.only?.error).toContain(r.address);
    const everything = [run.platform.allText(), JSON.stringify(run.result), run.sshLog].join('\n');
    for (const line of keyBody(wrong).split('\n')) expect(everything).not.toContain(line);
    expect(r.log()).toMatch(/Connection closed by authenticating user root|Failed publickey|preauth/);
    expect(fs.existsSync(run.keyDir)).toBe(false);
  });

  it('refuses a host whose key does not match the pinned one', async () => {
    const r = remote as RemoteBuilder;
    throwawayKey(tmp, 'impostor-host');
    const impostor = fs.readFileSync(path.join(tmp, 'impostor-host.pub'), 'utf8').trim();
    const run = await buildRemotely(
      'wrong-host-key',
      pinned('ssh', Buffer.from(impostor).toString('base64')),
      r.clientKey,
    );
    expect(run.only?.status).toBe('infra-failure');
    expect(run.only?.error).toMatch(/Host key verification failed/);
  });
});

describe('builders-ssh-key from real ssh-keygen output', () => {
  it('accepts unencrypted keys and refuses passphrase-protected ones (OpenSSH and PEM) before writing them', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-keys-'));
    try {
      const gen = (name: string, args: string[]) => {
        const res = spawnSync('/usr/bin/ssh-keygen', ['-q', ...args, '-f', path.join(dir, name)], { encoding: 'utf8' });
        if (res.status !== 0) throw new Error(`ssh-keygen failed: ${res.stderr}`);
        return fs.readFileSync(path.join(dir, name), 'utf8');
      };
      expect(normalizePrivateKey(gen('plain', ['-t', 'ed25519', '-N', '']))).toMatch(/OPENSSH PRIVATE KEY-----\n$/);
      expect(normalizePrivateKey(gen('pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '']))).toMatch(
        /^-----BEGIN RSA/,
      );
      for (const key of [
        gen('enc', ['-t', 'ed25519', '-N', 'a passphrase']),
        gen('encpem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'a passphrase']),
      ])
        expect(() => normalizePrivateKey(key)).toThrow(/builders-ssh-key is protected by a passphrase/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The base64 lines of a private key (what must never be printed). */
function keyBody(key: string): string {
  return key
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('-----'))
    .join('\n');
}

function throwawayKey(dir: string, name: string): string {
  const file = path.join(dir, name);
  const res = spawnSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file], {
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`ssh-keygen failed: ${res.stderr}`);
  return fs.readFileSync(file, 'utf8');
}
