/**
 * The KVM probe against things that are not a working KVM (real perl, no /dev/kvm needed), stand-in perl programs
 * for the outcomes this machine cannot produce (success, a hung KVM_RUN), and the udev rule writing with a
 * temporary rules directory and a temporary file standing in for the device.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  KVM_RULE_FILE,
  KVM_UDEV_RULE,
  ensureKvmAccess,
  fixKvmAccess,
  interpretProbe,
  probeKvm,
} from '../../src/install-nix/kvm.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kvm-test-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Writes an executable shell script standing in for perl, udevadm or sudo. */
async function script(name: string, body: string): Promise<string> {
  const file = path.join(tmp, name);
  await fs.writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

const SETUP = 'arch x86_64-linux\nopen\napi 12\nvm\nmem\nvcpu\nregs\nrun\n';
const outcome = (stdout: string, extra: { killed?: boolean } = {}) => ({
  stdout,
  stderr: '',
  killed: false,
  elapsedMs: 5,
  ...extra,
});

describe('probeKvm with real perl', () => {
  it('reports a missing device without running anything', async () => {
    const p = await probeKvm({ device: path.join(tmp, 'no-such-kvm') });
    expect(p).toMatchObject({ usable: false, device: false, readWrite: false, vmCreated: false, guestRan: false });
    expect(p.reason).toMatch(/no-such-kvm does not exist/);
  });

  it.each([['/dev/null'], ['regular file']])('reports %s as not KVM because the ioctl fails', async (which) => {
    const device = which === '/dev/null' ? which : path.join(tmp, 'fake-kvm');
    if (device !== '/dev/null') await fs.writeFile(device, '');
    const p = await probeKvm({ device });
    expect(p).toMatchObject({ usable: false, device: true, readWrite: true, vmCreated: false, guestRan: false });
    expect(p.reason).toMatch(/ioctl KVM_GET_API_VERSION failed on .*: Inappropriate ioctl for device/);
    expect(p.stages).toEqual(['arch', 'open', 'error']);
  });

  it('says so when perl cannot be run', async () => {
    const p = await probeKvm({ device: '/dev/null', perl: path.join(tmp, 'no-perl') });
    expect(p.usable).toBe(false);
    expect(p.reason).toMatch(/could not run perl/);
  });
});

describe('probeKvm with a stand-in perl', () => {
  it('kills a probe stuck in KVM_RUN at the deadline and says how far it got', async () => {
    const perl = await script('stuck-perl', `printf '${SETUP}'\nexec sleep 30`);
    const start = Date.now();
    const p = await probeKvm({ device: '/dev/null', perl, timeoutMs: 500 });
    expect(Date.now() - start).toBeLessThan(2000);
    expect(p).toMatchObject({ usable: false, readWrite: true, vmCreated: true, guestRan: false });
    expect(p.stages.at(-1)).toBe('run');
    expect(p.reason).toBe("a test guest did not reach HLT within 0.5 s (probe killed after 'run')");
  });

  // The positive control for the interpretation: a probe that reports HLT and a fast loop means usable.
  it('reports usable only when the guest ran to HLT and the loop ran at hardware speed', async () => {
    const perl = await script('fast-perl', `printf '${SETUP}hlt 1 0\\nloop 33554432\\nfast 33554432 20\\n'`);
    const p = await probeKvm({ device: '/dev/null', perl });
    expect(p).toMatchObject({ usable: true, device: true, readWrite: true, vmCreated: true, guestRan: true });
    expect(p.reason).toBe('a test guest ran to HLT and a 33554432-iteration loop finished in 20 ms');
  });
});

describe('interpretProbe', () => {
  it('reports an emulated (slow) guest as not usable, though it ran', () => {
    const p = interpretProbe('/dev/kvm', outcome(`${SETUP}hlt 1 0\nloop 33554432\nslow 2000000 1000\n`), 3000);
    expect(p).toMatchObject({ usable: false, vmCreated: true, guestRan: true });
    expect(p.reason).toMatch(/got through only 2000000 in 1000 ms \(2\.0M\/s;.*would not finish/);
  });

  it('does not count a HLT exit as a guest run unless rip moved past the hlt', () => {
    const p = interpretProbe('/dev/kvm', outcome(`${SETUP}hlt 0 0\nloop 33554432\nfast 33554432 20\n`), 3000);
    expect(p).toMatchObject({ usable: false, guestRan: false });
  });

  it('says the guest run was not attempted on other architectures', () => {
    const p = interpretProbe(
      '/dev/kvm',
      outcome('arch aarch64-linux\nopen\napi 12\nvm\nvcpu\nskip aarch64-linux\n'),
      3000,
    );
    expect(p).toMatchObject({ usable: false, vmCreated: true, guestRan: 'not-attempted' });
    expect(p.reason).toMatch(/test guest run was not attempted on aarch64-linux/);
  });

  it('names unexpected exit reasons, timeouts and permission problems', () => {
    expect(interpretProbe('/dev/kvm', outcome(`${SETUP}exit hlt 9 0\n`), 3000).reason).toBe(
      'the test guest stopped with KVM exit reason 9 (FAIL_ENTRY) instead of HLT',
    );
    expect(interpretProbe('/dev/kvm', outcome(`${SETUP}stuck hlt 1000\n`), 3000).reason).toBe(
      'a test guest did not reach HLT within 1000 ms (KVM_RUN timed out)',
    );
    const denied = interpretProbe('/dev/kvm', outcome('arch x\nerror open 13 Permission denied\n'), 3000);
    expect(denied).toMatchObject({
      device: true,
      readWrite: false,
      reason: 'cannot open /dev/kvm read-write: Permission denied',
    });
    const hung = interpretProbe('/dev/kvm', outcome(`${SETUP}hlt 1 0\nloop 1\n`, { killed: true }), 3000);
    expect(hung).toMatchObject({ guestRan: true, usable: false });
    expect(hung.reason).toBe("the speed-test guest did not return within 3 s (probe killed after 'loop')");
  });
});

describe('KVM access', () => {
  async function setup(name: string) {
    const dir = path.join(tmp, name);
    await fs.mkdir(dir);
    const device = path.join(dir, 'kvm');
    await fs.writeFile(device, '', { mode: 0o600 });
    const calls = path.join(dir, 'calls');
    const udevadm = await script(`${name}-udevadm`, `echo "$@" >> ${calls}\nexit 0`);
    return { dir, device, calls, udevadm, rulesDir: path.join(dir, 'rules.d') };
  }

  it('writes the rule, reloads udev and falls back to chmod when udev did not help', async () => {
    const s = await setup('root');
    const p = new RecordingPlatform();
    const opts = { device: s.device, canWriteSystem: true, sudo: [], rulesDir: s.rulesDir, udevadm: s.udevadm };
    const res = await fixKvmAccess(p, opts, true, async () => true);
    expect(res).toEqual({ ruleInstalled: true, changed: true });
    const rule = path.join(s.rulesDir, KVM_RULE_FILE);
    expect(await fs.readFile(rule, 'utf8')).toBe(
      'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"\n',
    );
    expect((await fs.stat(rule)).mode & 0o777).toBe(0o644);
    expect(await fs.readFile(s.calls, 'utf8')).toBe(
      'control --reload-rules\ntrigger --name-match=kvm\nsettle --timeout=5\n',
    );
    expect((await fs.stat(s.device)).mode & 0o777).toBe(0o666);
    expect(p.logs.some((l) => l.level === 'debug' && /chmod 0666/.test(l.message))).toBe(true);

    // Idempotent: the same rule is not rewritten, and udev having done its job means no chmod.
    const again = await fixKvmAccess(p, opts, true, async () => false);
    expect(again).toEqual({ ruleInstalled: true, changed: false });
  });

  it('goes through sudo, with the rule on stdin, and tolerates udev not running', async () => {
    const s = await setup('sudo');
    const sudoLog = path.join(s.dir, 'sudo-calls');
    const sudo = await script('fake-sudo', `printf '%s\\n' "$*" >> ${sudoLog}\nshift\nexec "$@"`);
    const udevadm = await script('broken-udevadm', 'echo "Failed to send reload request: No such file" >&2\nexit 1');
    const p = new RecordingPlatform();
    const opts = { device: s.device, canWriteSystem: true, sudo: [sudo, '-n'], rulesDir: s.rulesDir, udevadm };
    const res = await fixKvmAccess(p, opts, true, async () => true);
    expect(res).toEqual({ ruleInstalled: true, changed: true });
    expect(await fs.readFile(path.join(s.rulesDir, KVM_RULE_FILE), 'utf8')).toBe(KVM_UDEV_RULE);
    const rule = path.join(s.rulesDir, KVM_RULE_FILE);
    expect((await fs.readFile(sudoLog, 'utf8')).split('\n')).toEqual([
      `-n mkdir -p ${s.rulesDir}`,
      `-n tee ${rule}`,
      `-n chmod 0644 ${rule}`,
      `-n ${udevadm} control --reload-rules`,
      `-n chmod 0666 ${s.device}`,
      '',
    ]);
    expect(p.logs.some((l) => l.level === 'debug' && /udev not running/.test(l.message))).toBe(true);
    expect(p.logs.some((l) => l.level === 'warning')).toBe(false);
  });

  it('changes nothing when access is fine or system files may not be written', async () => {
    const s = await setup('noop');
    const p = new RecordingPlatform();
    const opts = { device: s.device, canWriteSystem: true, sudo: [], rulesDir: s.rulesDir, udevadm: s.udevadm };
    expect(await fixKvmAccess(p, opts, false)).toEqual({ ruleInstalled: false, changed: false });
    expect(await fixKvmAccess(p, { ...opts, canWriteSystem: false }, true)).toEqual({
      ruleInstalled: false,
      changed: false,
    });
    // As root the stand-in device is accessible, so the real decision is "nothing to do".
    expect(await ensureKvmAccess(p, opts)).toEqual({ ruleInstalled: false, changed: false });
    expect(await ensureKvmAccess(p, { ...opts, device: path.join(s.dir, 'none') })).toEqual({
      ruleInstalled: false,
      changed: false,
    });
    await expect(fs.stat(s.rulesDir)).rejects.toThrow();
    expect((await fs.stat(s.device)).mode & 0o777).toBe(0o600);
  });

  it('lets fixKvmAccess failures propagate (ensureKvmAccess turns them into a warning)', async () => {
    const s = await setup('fail');
    const p = new RecordingPlatform();
    const blocker = path.join(s.dir, 'file');
    await fs.writeFile(blocker, '');
    const opts = { device: s.device, canWriteSystem: true, sudo: [], rulesDir: path.join(blocker, 'rules.d') };
    await expect(fixKvmAccess(p, opts, true)).rejects.toThrow(/ENOTDIR|EEXIST/);
  });
});
