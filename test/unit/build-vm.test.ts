/**
 * VM-test preparation and artifacts without Nix: feature detection, the build arguments, the wording of refusals and
 * warnings, probing once, and what is kept for failed VM tests when only the log tail is known. The probe is a plain
 * function given through VmOptions (no module mocks); the real probe and real Nix run in the integration test.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MachineSpec } from '../../src/build/builders-spec.js';
import type { PreparedTarget } from '../../src/build/engine.js';
import type { AttrResult } from '../../src/build/results.js';
import { artifactDirName, defaultDriverTimeoutSeconds } from '../../src/build/vm-artifacts.js';
import { spawnToFile } from '../../src/build/vm-spawn.js';
import {
  collectVmArtifacts,
  emulationWarning,
  isVmTest,
  missingVmFeatures,
  prepareVmTests,
  refusalMessage,
  vmFeatureArgs,
} from '../../src/build/vm.js';
import type { KvmProbe } from '../../src/install-nix/kvm.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const VM = ['kvm', 'nixos-test'];

function target(attr: string, features: string[]): PreparedTarget {
  return { attr, drvPath: `/nix/store/${'a'.repeat(32)}-${attr}.drv`, outputs: {}, features };
}

function probe(over: Partial<KvmProbe> = {}): KvmProbe {
  return {
    usable: false,
    device: true,
    readWrite: true,
    vmCreated: true,
    guestRan: false,
    reason: 'a test guest did not reach HLT within 3 s',
    stages: [],
    elapsedMs: 3000,
    ...over,
  };
}

/** A probe function that counts its calls; each new function is probed afresh. */
function counting(result: KvmProbe): { fn: () => Promise<KvmProbe>; calls: () => number } {
  let n = 0;
  return {
    fn: () => {
      n++;
      return Promise.resolve(result);
    },
    calls: () => n,
  };
}

const targets = [target('checks.x.vm', VM), target('checks.x.plain', []), target('checks.x.image', ['kvm'])];

describe('feature detection and arguments', () => {
  it('recognises VM tests by the nixos-test feature only', () => {
    expect(isVmTest(VM)).toBe(true);
    expect(isVmTest(['nixos-test'])).toBe(true);
    expect(isVmTest(['kvm', 'big-parallel'])).toBe(false);
    expect(isVmTest([])).toBe(false);
  });

  it('declares only the VM features Nix lacks, and all of them when its features are unknown', () => {
    expect(missingVmFeatures(targets)).toEqual(VM);
    expect(missingVmFeatures(targets, ['benchmark', 'big-parallel'])).toEqual(VM);
    expect(missingVmFeatures(targets, ['kvm', 'big-parallel'])).toEqual(['nixos-test']);
    expect(missingVmFeatures(targets, ['nixos-test', 'kvm', 'benchmark'])).toEqual([]);
    // A test that requires nixos-test alone (no kvm) gets nixos-test alone; non-VM targets ask for nothing.
    expect(missingVmFeatures([target('t', ['nixos-test'])], [])).toEqual(['nixos-test']);
    expect(missingVmFeatures([target('image', ['kvm']), target('p', [])], [])).toEqual([]);
  });

  it('passes them as one extra-system-features option, which Nix 2.8 and 2.34 accept for both build commands', () => {
    expect(vmFeatureArgs(['kvm', 'nixos-test'])).toEqual(['--option', 'extra-system-features', 'kvm nixos-test']);
    expect(vmFeatureArgs([])).toEqual([]);
  });
});

describe('messages', () => {
  it('names the attribute, the probe reason and both fixes, with the input as the platform spells it', () => {
    const github = refusalMessage('checks.x86_64-linux.vm', probe(), new RecordingPlatform());
    expect(github).toBe(
      "checks.x86_64-linux.vm is a NixOS VM test (it requires the 'nixos-test' system feature) and was not built: " +
        'KVM is not usable on this runner (a test guest did not reach HLT within 3 s). Run it on a runner with KVM ' +
        '(GitHub-hosted Linux runners have it once install-nix has added its udev rule for /dev/kvm), give it a ' +
        "remote builder offering 'nixos-test' (builders), or set 'allow-emulation: true' to run it under QEMU's " +
        'TCG emulation, which is much slower.',
    );
    const gitlab = Object.assign(new RecordingPlatform(), { name: 'gitlab' as const });
    expect(refusalMessage('checks.x86_64-linux.vm', probe(), gitlab)).toContain("'allow_emulation: true'");
  });

  it('warns that emulated tests are slow, and that a /dev/kvm accepting VMs may still be picked', () => {
    const p = new RecordingPlatform();
    const onBrokenKvm = emulationWarning(p, ['a', 'b'], probe());
    expect(onBrokenKvm).toMatch(/^Building 2 NixOS VM test\(s\) under emulation \(allow-emulation: true\)/);
    expect(onBrokenKvm).toContain('KVM is not usable (a test guest did not reach HLT within 3 s)');
    expect(onBrokenKvm).toContain('TCG emulation, much slower than with KVM: a, b.');
    expect(onBrokenKvm).toContain('/dev/kvm accepts VMs here');
    const noKvm = emulationWarning(p, ['a'], probe({ device: false, vmCreated: false, reason: 'no /dev/kvm' }));
    expect(noKvm).not.toContain('/dev/kvm accepts VMs');
  });
});

describe('prepareVmTests', () => {
  it('neither probes nor changes anything when no target is a VM test', async () => {
    const c = counting(probe());
    const p = new RecordingPlatform();
    expect(await prepareVmTests(p, [targets[1] as PreparedTarget], { allowEmulation: false, probe: c.fn })).toEqual({});
    expect(c.calls()).toBe(0);
  });

  it('refuses only the VM tests when KVM is not usable and emulation is not allowed', async () => {
    const p = new RecordingPlatform();
    const prep = await prepareVmTests(p, targets, { allowEmulation: false, probe: counting(probe()).fn });
    expect(prep.extraArgs).toBeUndefined();
    expect([...(prep.refused?.keys() ?? [])]).toEqual(['checks.x.vm']);
    expect(prep.refused?.get('checks.x.vm')).toBe(refusalMessage('checks.x.vm', probe(), p));
    expect(p.logs.filter((l) => l.level === 'warning').map((l) => l.message)).toEqual([
      'Not building 1 NixOS VM test(s), KVM is not usable on this runner (a test guest did not reach HLT within ' +
        "3 s): checks.x.vm. Use a runner with KVM, a remote builder offering 'nixos-test', or set " +
        "'allow-emulation: true' to emulate.",
    ]);
  });

  it('schedules them under emulation when allowed, declaring the missing features, with a warning', async () => {
    const p = new RecordingPlatform();
    const opts = { allowEmulation: true, probe: counting(probe()).fn, systemFeatures: ['benchmark'] };
    expect(await prepareVmTests(p, targets, opts)).toEqual({ extraArgs: vmFeatureArgs(VM) });
    expect(p.logs.filter((l) => l.level === 'warning').map((l) => l.message)).toEqual([
      emulationWarning(p, ['checks.x.vm'], probe()),
    ]);
    // Where Nix already offers them (it adds kvm whenever /dev/kvm is read-write), nothing needs declaring.
    const q = new RecordingPlatform();
    expect(await prepareVmTests(q, targets, { ...opts, systemFeatures: VM })).toEqual({});
    expect(q.logs.some((l) => l.level === 'warning' && l.message.includes('under emulation'))).toBe(true);
  });

  it('builds with KVM when usable, declaring features only where Nix lacks them, without warnings', async () => {
    const usable = counting(probe({ usable: true, guestRan: true, reason: 'a test guest ran to HLT' })).fn;
    const p = new RecordingPlatform();
    expect(await prepareVmTests(p, targets, { allowEmulation: false, probe: usable, systemFeatures: VM })).toEqual({});
    expect(p.logs).toContainEqual({
      level: 'info',
      message: 'KVM is usable (a test guest ran to HLT): building 1 NixOS VM test(s).',
      annotation: undefined,
    });
    const q = new RecordingPlatform();
    const lacking = await prepareVmTests(q, targets, { allowEmulation: false, probe: usable, systemFeatures: [] });
    expect(lacking).toEqual({ extraArgs: vmFeatureArgs(VM) });
    expect([...p.logs, ...q.logs].filter((l) => l.level === 'warning')).toEqual([]);
  });

  it('leaves VM tests a remote builder can take to Nix, declaring nothing, and refuses only the others', async () => {
    const machine = (systems: string[], supported: string[], mandatory: string[] = []): MachineSpec => ({
      uri: 'ssh://builder',
      systems,
      sshKey: '',
      supportedFeatures: supported,
      mandatoryFeatures: mandatory,
      hostKey: '',
    });
    const vmOn = (attr: string, system: string, features = VM): PreparedTarget => ({
      ...target(attr, features),
      system,
    });
    const tests = [
      vmOn('checks.x.vm', 'x86_64-linux'),
      vmOn('checks.a.vm', 'aarch64-linux'),
      targets[1] as PreparedTarget,
    ];
    const p = new RecordingPlatform();
    const remoteBuilders = [machine(['x86_64-linux'], ['kvm', 'nixos-test', 'big-parallel'])];
    const opts = { allowEmulation: false, probe: counting(probe()).fn, remoteBuilders, localSystem: 'x86_64-linux' };
    const prep = await prepareVmTests(p, tests, opts);
    expect(prep.extraArgs).toBeUndefined();
    expect([...(prep.refused?.keys() ?? [])]).toEqual(['checks.a.vm']);
    expect(p.logs.map((l) => l.message)).toContain(
      'KVM is not usable on this runner (a test guest did not reach HLT within 3 s); 1 NixOS VM test(s) go to the ' +
        'remote builders that offer their features: checks.x.vm.',
    );
    // All of them remote: nothing refused, nothing declared (Nix must send them away).
    expect(await prepareVmTests(new RecordingPlatform(), tests.slice(0, 1), opts)).toEqual({});
    // Machines that cannot take them: no nixos-test, a mandatory feature the test lacks, another system.
    for (const m of [
      machine(['x86_64-linux'], ['kvm']),
      machine(['x86_64-linux'], ['kvm', 'nixos-test'], ['benchmark']),
      machine(['aarch64-linux'], ['kvm', 'nixos-test']),
    ]) {
      const r = await prepareVmTests(new RecordingPlatform(), tests.slice(0, 1), { ...opts, remoteBuilders: [m] });
      expect([...(r.refused?.keys() ?? [])]).toEqual(['checks.x.vm']);
    }
    // A machine naming no system takes the local one.
    const bare = await prepareVmTests(new RecordingPlatform(), tests.slice(0, 1), {
      ...opts,
      remoteBuilders: [machine([], ['kvm', 'nixos-test'])],
    });
    expect(bare).toEqual({});
  });

  it('probes once per run however often it is asked', async () => {
    const c = counting(probe());
    const p = new RecordingPlatform();
    await prepareVmTests(p, targets, { allowEmulation: false, probe: c.fn });
    await prepareVmTests(p, targets, { allowEmulation: true, probe: c.fn, systemFeatures: [] });
    expect(c.calls()).toBe(1);
  });
});

describe('collectVmArtifacts without Nix', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-vm-unit-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function result(attr: string, over: Partial<AttrResult>): AttrResult {
    return {
      attr,
      attrPath: attr.split('.'),
      system: 'x86_64-linux',
      drvPath: `/nix/store/${'b'.repeat(32)}-x.drv`,
      outputs: {},
      features: VM,
      status: 'failed',
      duration: 7,
      attempts: 1,
      logTail: ['FIXTURE-VM: booting', 'FIXTURE-VM-ASSERTION: expected FreeBSD, got Linux'],
      ...over,
    };
  }

  it('keeps the log tail of failed VM tests that ran, under a file-name-safe directory per attribute', async () => {
    const p = new RecordingPlatform();
    const dir = path.join(tmp, 'a');
    const kept = await collectVmArtifacts(
      p,
      [
        result('checks.x."vm: fail"', {}),
        result('checks.x.timeout', { status: 'infra-failure', logTail: ['killed'] }),
        result('checks.x.refused', { attempts: 0, logTail: undefined, error: 'KVM is not usable' }),
        result('checks.x.dep', { status: 'dependency-failed' }),
        result('checks.x.ok', { status: 'built' }),
        result('checks.x.plain', { features: [] }),
      ],
      dir,
    );
    const failDir = path.join(dir, 'checks.x._vm_fail_');
    expect(kept).toEqual([
      { attr: 'checks.x."vm: fail"', files: [path.join(failDir, 'build.log')] },
      { attr: 'checks.x.timeout', files: [path.join(dir, 'checks.x.timeout', 'build.log')] },
    ]);
    expect(fs.readFileSync(path.join(failDir, 'build.log'), 'utf8')).toBe(
      `# flake-ci: the full build log of /nix/store/${'b'.repeat(32)}-x.drv was not available; its last 2 lines:\n` +
        'FIXTURE-VM: booting\nFIXTURE-VM-ASSERTION: expected FreeBSD, got Linux\n',
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['checks.x._vm_fail_', 'checks.x.timeout']);
    expect(p.logs.map((l) => l.message)).toContain(
      `Kept its build log (log tail) of failed VM test checks.x."vm: fail" in ${failDir}`,
    );
  });

  it('keeps nothing, and leaves no empty directory, when a failed test left no log', async () => {
    const dir = path.join(tmp, 'b');
    const p = new RecordingPlatform();
    expect(await collectVmArtifacts(p, [result('checks.x.silent', { logTail: [] })], dir)).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

/** Waits (boundedly) for `pid` to be gone, a zombie, or reused by another program. */
async function dies(pid: number, comm: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    if (!stat.startsWith(`${pid} (${comm}) `) || stat.startsWith(`${pid} (${comm}) Z `)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

describe('helpers', () => {
  it('makes unique, safe directory names', () => {
    const used = new Set<string>();
    expect(artifactDirName('checks.x86_64-linux.vm', used)).toBe('checks.x86_64-linux.vm');
    expect(artifactDirName('checks.x."a b"', used)).toBe('checks.x._a_b_');
    expect(artifactDirName('checks.x."a/b"', used)).toBe('checks.x._a_b_-2');
    expect(artifactDirName('..', used)).toBe('_');
    expect(artifactDirName('"<>|*?:"', used)).toBe('_-2');
  });

  it('bounds a driver run by the failed build time: 2 to 60 minutes', () => {
    expect(defaultDriverTimeoutSeconds(7)).toBe(120);
    expect(defaultDriverTimeoutSeconds(300)).toBe(660);
    expect(defaultDriverTimeoutSeconds(5000)).toBe(3600);
  });

  it('stops a program and everything it started at the deadline', async () => {
    const out = path.join(os.tmpdir(), `flake-ci-vm-spawn-${process.pid}`);
    const res = await spawnToFile('/bin/sh', ['-c', 'sleep 30 & echo $!; wait'], {
      env: { PATH: '/usr/bin:/bin' },
      out,
      timeoutMs: 300,
    });
    expect(res).toMatchObject({ timedOut: true, exitCode: null });
    const pid = Number(fs.readFileSync(out, 'utf8').trim());
    fs.rmSync(out);
    // The background sleep was in the group: it goes (or stays a zombie until init reaps it).
    expect(await dies(pid, 'sleep')).toBe(true);
  });

  it('reports a program that cannot start, and keeps stderr apart when asked', async () => {
    const out = path.join(os.tmpdir(), `flake-ci-vm-spawn2-${process.pid}`);
    const missing = await spawnToFile('/nonexistent/nix', [], { env: {}, out, timeoutMs: 5000 });
    expect(missing.error).toMatch(/ENOENT/);
    const split = await spawnToFile('/bin/sh', ['-c', 'echo out; echo err >&2; exit 4'], {
      env: { PATH: '/usr/bin:/bin' },
      out,
      timeoutMs: 5000,
    });
    expect(split).toMatchObject({ exitCode: 4, timedOut: false, stderr: 'err\n' });
    expect(fs.readFileSync(out, 'utf8')).toBe('out\n');
    fs.rmSync(out);
  });
});
