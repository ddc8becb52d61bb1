/**
 * NixOS VM tests through the build engine, against real Nix 2.8 (host) and 2.34 (relocated), each with its own
 * throwaway chroot store (`store = DIR` in NIX_CONFIG; the host /nix is never touched). The fixture flake
 * (test/fixtures/build-vm) has a plain check and two NixOS-style VM tests that boot Debian's kernel with a busybox
 * initramfs in `qemu-system-x86_64 -accel tcg`: one passes, one's guest fails. The KVM probe is the real one:
 * on this machine /dev/kvm exists (a software kvm_pvm) but the probe's test guest cannot run on it, so KVM is not
 * usable. The store offers no `kvm`/`nixos-test` features (Nix would add `kvm` itself here, since /dev/kvm is
 * read-write), so the VM tests are scheduled only through the arguments prepareVmTests returns.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validPaths } from '../../src/build/cached.js';
import { runBuild, type BuildEngineResult, type BuildPreparation } from '../../src/build/engine.js';
import { PASSING, type AttrResult } from '../../src/build/results.js';
import { collectVmArtifacts, prepareVmTests, probeKvmOnce, vmFeatureArgs, type VmOptions } from '../../src/build/vm.js';
import { NixCommand } from '../../src/nix/command.js';
import { formatVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN, requireCommand, removeScratch } from '../support/fixtures.js';

const FIXTURE = path.resolve('test/fixtures/build-vm');
const SYSTEM = 'x86_64-linux';
const VM_TESTS = [`checks.${SYSTEM}.vm-fail`, `checks.${SYSTEM}.vm-pass`];

const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin', version: /^2\.8\./ },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN, version: /^2\.3[4-9]\./ },
];

/** The guest needs QEMU, a kernel and a static busybox from Debian: name the package when one is missing. */
function requireVmTools(): void {
  requireCommand('/usr/bin/qemu-system-x86_64', 'qemu-system-x86');
  if (!fs.readdirSync('/boot').some((f) => f.startsWith('vmlinuz-')))
    throw new Error('No kernel at /boot/vmlinuz-*: apt-get install linux-image-amd64');
  requireCommand('/bin/busybox', 'busybox-static');
  if (hasInterpreter('/bin/busybox'))
    throw new Error('/bin/busybox is dynamically linked (Debian busybox): apt-get install busybox-static');
}

/** True when an ELF64 file has a PT_INTERP program header, i.e. is dynamically linked. */
function hasInterpreter(file: string): boolean {
  const elf = fs.readFileSync(file);
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const [phentsize, phnum] = [elf.readUInt16LE(0x36), elf.readUInt16LE(0x38)];
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

function nixConfig(store: string, sandboxPaths = '/bin /usr /lib /lib64 /boot'): string {
  return [
    `store = ${store}`,
    'substituters =',
    'sandbox = false',
    // A store outside /nix/store builds in a chroot: map in the shell, host tools, QEMU's firmware and the kernel.
    `sandbox-paths = ${sandboxPaths}`,
    'build-users-group =',
    'system-features = benchmark big-parallel',
    'experimental-features = nix-command flakes',
  ].join('\n');
}

describe.each(BINARIES)('NixOS VM tests with $name', ({ bin, version }) => {
  let tmp: string;
  let flake: string;
  let nix: NixCommand;

  /** runBuild with prepareVmTests as its prepareBuild hook; returns what the hook answered too. */
  async function build(platform: RecordingPlatform, opts: Omit<VmOptions, 'nix'>) {
    let prepared: BuildPreparation | undefined;
    const result: BuildEngineResult = await runBuild(platform, nix, {
      flake,
      mode: 'checks',
      logLines: 3,
      prepareBuild: async (targets) => (prepared = await prepareVmTests(platform, targets, { ...opts, nix })),
    });
    const byAttr = (name: string): AttrResult => {
      const r = result.results.find((x) => x.attr === `checks.${SYSTEM}.${name}`);
      if (!r) throw new Error(`no result for ${name}`);
      return r;
    };
    return { result, prepared, byAttr };
  }

  const env = (config: string): Record<string, string> => ({
    NIX_CONFIG: config,
    NIX_CONF_DIR: path.join(tmp, 'conf'),
    HOME: path.join(tmp, 'home'),
    XDG_CONFIG_HOME: path.join(tmp, 'home'),
    XDG_CACHE_HOME: path.join(tmp, 'cache'),
  });

  beforeAll(async () => {
    requireVmTools();
    if (!fs.existsSync(path.join(bin, 'nix')))
      throw new Error(`No nix in ${bin}: run 'bash test/setup/nix-fixtures.sh'.`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-build-vm-'));
    flake = path.join(tmp, 'flake');
    fs.cpSync(FIXTURE, flake, { recursive: true });
    for (const d of ['conf', 'home', 'cache']) fs.mkdirSync(path.join(tmp, d));
    nix = await NixCommand.detect(new RecordingPlatform(), bin, env(nixConfig(path.join(tmp, 'store'))));
    expect(formatVersion(nix.version)).toMatch(version);
  });

  afterAll(() => removeScratch(tmp));

  it('refuses the VM tests without usable KVM, naming why and the fix, and still builds the plain check', async () => {
    const probe = await probeKvmOnce();
    // This machine's /dev/kvm cannot run a guest (TESTING.md); a host with working KVM would build them instead.
    expect(probe.usable).toBe(false);
    const platform = new RecordingPlatform();
    const { result, prepared, byAttr } = await build(platform, { allowEmulation: false });

    expect(byAttr('plain').status).toBe('built');
    expect([...(prepared?.refused?.keys() ?? [])].sort()).toEqual(VM_TESTS);
    expect(prepared?.extraArgs).toBeUndefined();
    for (const name of ['vm-pass', 'vm-fail']) {
      const r = byAttr(name);
      expect(r).toMatchObject({ status: 'failed', attempts: 0, features: ['kvm', 'nixos-test'] });
      expect(r.error).toContain(`checks.${SYSTEM}.${name} is a NixOS VM test`);
      expect(r.error).toContain(`KVM is not usable on this runner (${probe.reason})`);
      expect(r.error).toMatch(/runner with KVM .*install-nix.*'allow-emulation: true'.*TCG/);
    }
    // Not built: no VM test output exists, and only the plain check went to Nix.
    const outs = VM_TESTS.flatMap((a) => Object.values(result.results.find((r) => r.attr === a)?.outputs ?? {}));
    expect(outs).toHaveLength(2);
    expect([...(await validPaths(nix, outs))]).toEqual([]);
    expect(platform.groups.filter((g) => g.startsWith('Building'))).toEqual(['Building 1 attribute(s)']);
    expect(platform.logs.some((l) => l.level === 'warning' && l.message.includes('Not building 2 NixOS VM'))).toBe(
      true,
    );
    // Nothing ran, so there is nothing to keep.
    expect(await collectVmArtifacts(platform, result.results, path.join(tmp, 'artifacts-a'), { nix, flake })).toEqual(
      [],
    );
  });

  it('builds them under TCG with allow-emulation, fails the failing one and keeps its log and screenshot', async () => {
    const platform = new RecordingPlatform();
    const { result, prepared, byAttr } = await build(platform, { allowEmulation: true });

    expect(prepared).toEqual({ extraArgs: ['--option', 'extra-system-features', 'kvm nixos-test'] });
    expect(platform.logs.find((l) => l.level === 'warning')?.message).toMatch(
      /^Building 2 NixOS VM test\(s\) under emulation \(allow-emulation: true\): KVM is not usable \(.+\)/,
    );
    // Built by the first test already (or now, when run alone): either way it passes.
    expect(PASSING.has(byAttr('plain').status)).toBe(true);
    const pass = byAttr('vm-pass');
    expect(pass.status).toBe('built');
    // $out holds the guest's serial log (and the driver's screenshot), read through the chroot store's real path.
    const out = path.join(tmp, 'store', pass.outputs.out ?? '');
    expect(fs.readFileSync(path.join(out, 'serial.log'), 'utf8')).toMatch(/hello from Linux [\s\S]*FIXTURE-VM: PASS/);
    expect(isPng(path.join(out, 'screenshot.png'))).toBe(true);

    const fail = byAttr('vm-fail');
    expect(fail).toMatchObject({ status: 'failed', attempts: 1 });
    expect(fail.error).toMatch(/exit code 1/);
    expect(fail.logTail).toHaveLength(3);

    const dir = path.join(tmp, 'artifacts-b');
    const kept = await collectVmArtifacts(platform, result.results, dir, { nix, flake });
    const attrDir = path.join(dir, `checks.${SYSTEM}.vm-fail`);
    expect(kept).toEqual([
      {
        attr: `checks.${SYSTEM}.vm-fail`,
        files: ['build.log', 'driver.log', 'driver-output/screenshot.png', 'driver-output/serial.log'].map((f) =>
          path.join(attrDir, f),
        ),
      },
    ]);
    // The full log (from Nix, not the 3-line tail): the boot, the guest's assertion, the driver's verdict.
    const log = fs.readFileSync(path.join(attrDir, 'build.log'), 'utf8');
    expect(log).not.toMatch(/^# flake-ci/);
    expect(log).toMatch(/FIXTURE-VM: booting [\s\S]*FIXTURE-VM-ASSERTION: expected FreeBSD, got Linux/);
    expect(log.split('\n').length).toBeGreaterThan(fail.logTail?.length ?? 0);
    // The driver ran again outside the sandbox (nix run maps the chroot store) and failed the same way.
    const serial = fs.readFileSync(path.join(attrDir, 'driver-output', 'serial.log'), 'utf8');
    expect(serial).toMatch(/FIXTURE-VM-ASSERTION: expected FreeBSD, got Linux[\s\S]*FIXTURE-VM: FAIL/);
    expect(isPng(path.join(attrDir, 'driver-output', 'screenshot.png'))).toBe(true);
    expect(platform.logs.map((l) => l.message)).toContain(
      `Kept its build log (nix log) and 1 screenshot(s) of failed VM test checks.${SYSTEM}.vm-fail in ${attrDir}`,
    );
  });

  it('fails a VM test loudly, naming the package, when the builder sees no kernel', async () => {
    // The same fixture in a store whose build chroot lacks /boot: the driver stops before starting QEMU.
    const noBoot = await NixCommand.detect(
      undefined,
      bin,
      env(nixConfig(path.join(tmp, 'store-no-boot'), '/bin /usr /lib /lib64')),
    );
    const res = await noBoot.run(
      ['build', '--no-link', ...vmFeatureArgs(['kvm', 'nixos-test']), `${flake}#checks.${SYSTEM}.vm-pass`],
      { allowFailure: true },
    );
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toContain('FIXTURE-VM: no readable /boot/vmlinuz-*: apt-get install linux-image-amd64');
  });
});

function isPng(file: string): boolean {
  return fs
    .readFileSync(file)
    .subarray(0, 8)
    .equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}
