/**
 * KVM: an honest probe for the `kvm` output, and the udev rule that lets Nix build users open /dev/kvm.
 *
 * The device node existing, opening, even KVM_CREATE_VM succeeding do not mean guests run: on some hosts guests
 * are emulated and hang for all practical purposes (DESIGN.md: never take the node's presence as proof). So
 * `usable` is true only when the probe (kvm-probe.pl.ts) ran a test guest to HLT and ran a 2^25-iteration loop in
 * the guest at hardware speed.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors.js';
import { run } from '../exec.js';
import type { Platform } from '../platform/types.js';
import { KVM_PROBE_PL } from './kvm-probe.pl.js';

export interface KvmProbe {
  usable: boolean;
  device: boolean;
  readWrite: boolean;
  vmCreated: boolean;
  guestRan: boolean | 'not-attempted';
  reason: string;
  /** Progress markers the probe printed, in order (`open`, `vm`, `mem`, `vcpu`, `regs`, `run`, `hlt`, ...). */
  stages: string[];
  elapsedMs: number;
}

export const DEFAULT_KVM_DEVICE = '/dev/kvm';
export const KVM_UDEV_RULE = 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"\n';
export const KVM_RULE_FILE = '99-flake-ci-kvm.rules';

// kvm_run exit reasons by number, for readable reasons (17 is INTERNAL_ERROR).
const EXIT_NAMES = 'UNKNOWN EXCEPTION IO HYPERCALL DEBUG HLT MMIO IRQ_WINDOW_OPEN SHUTDOWN FAIL_ENTRY INTR'.split(' ');

const [yes, no] = [() => true, () => false];
const exists = (file: string) => fs.stat(file).then(yes, no);
const isReadWrite = (file: string) => fs.access(file, fsConstants.R_OK | fsConstants.W_OK).then(yes, no);

interface PerlOutcome {
  stdout: string;
  stderr: string;
  /** Set when the probe did not finish and was killed. */
  killed: boolean;
  spawnError?: string;
  elapsedMs: number;
}

/**
 * Runs perl with a hard deadline. exec.ts has no timeout, and a vCPU stuck in KVM_RUN must not hang the action:
 * at the deadline we SIGKILL and, if the process still has not gone (a task stuck in the kernel), stop waiting.
 */
function runPerl(perl: string, args: string[], timeoutMs: number): Promise<PerlOutcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let done = false;
    const child = spawn(perl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const finish = (extra: Partial<PerlOutcome>) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve({ stdout, stderr, killed: false, elapsedMs: Date.now() - start, ...extra });
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => finish({ spawnError: errorMessage(e) }));
    child.on('close', () => finish({}));
    // Handlers above only fire asynchronously, after this is initialised.
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      // Give a killable process a moment to flush its exit; never wait for one stuck in the kernel.
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        child.unref();
        finish({ killed: true });
      }, 250).unref();
      child.once('exit', () => finish({ killed: true }));
    }, timeoutMs);
  });
}

const FAILED: Omit<KvmProbe, 'reason' | 'stages' | 'elapsedMs'> = {
  usable: false,
  device: true,
  readWrite: false,
  vmCreated: false,
  guestRan: false,
};

/** Turns the probe's markers into a KvmProbe. Exported for tests; `out` is what runPerl returned. */
export function interpretProbe(device: string, out: PerlOutcome, timeoutMs: number): KvmProbe {
  const lines = out.stdout.split('\n').filter((l) => l.trim() !== '');
  const stages = lines.map((l) => l.split(' ')[0] ?? '');
  const field = (stage: string): string[] | undefined =>
    lines.find((l) => l.startsWith(`${stage} `) || l === stage)?.split(' ');
  const base = {
    ...FAILED,
    readWrite: stages.includes('open'),
    vmCreated: stages.includes('vm'),
    stages,
    elapsedMs: out.elapsedMs,
  };
  const hlt = field('hlt');
  const guestRan = hlt?.[1] === '1'; // rip advanced past the `hlt` at 0: the guest really executed it
  const secs = `${(timeoutMs / 1000).toFixed(1).replace(/\.0$/, '')} s`;
  if (out.spawnError) return { ...base, reason: `could not run perl to probe KVM: ${out.spawnError}` };

  const error = field('error');
  if (error) {
    const [, stage = '?', errno = '0', ...text] = error;
    const why = text.join(' ');
    if (stage === 'open') {
      const missing = errno === '2';
      return { ...base, device: !missing, reason: `cannot open ${device} read-write: ${why}` };
    }
    const what = stage.startsWith('KVM_') ? `ioctl ${stage}` : stage;
    return { ...base, guestRan, reason: `${what} failed on ${device}: ${why}` };
  }
  const skip = field('skip');
  if (skip) {
    return {
      ...base,
      guestRan: 'not-attempted',
      reason:
        `${device} answers KVM_CREATE_VM and KVM_CREATE_VCPU, but the test guest run was not attempted on ` +
        `${skip[1] ?? 'this architecture'} (it is implemented for x86_64 only), so KVM is not reported usable`,
    };
  }
  const exit = field('exit');
  if (exit) {
    const [, phase, code = '?'] = exit;
    const what = phase === 'hlt' ? 'the test guest' : 'the speed-test guest';
    const name = EXIT_NAMES[Number(code)] ?? 'unexpected';
    return { ...base, guestRan, reason: `${what} stopped with KVM exit reason ${code} (${name}) instead of HLT` };
  }
  if (field('stuck')) {
    return { ...base, reason: `a test guest did not reach HLT within ${field('stuck')?.[2]} ms (KVM_RUN timed out)` };
  }
  const loops = Number(field('loop')?.[1] ?? 0);
  const fast = field('fast');
  if (fast && guestRan) {
    return {
      ...base,
      usable: true,
      guestRan: true,
      reason: `a test guest ran to HLT and a ${loops}-iteration loop finished in ${fast[2]} ms`,
    };
  }
  const slow = field('slow');
  if (slow && guestRan) {
    const [, done = '0', ms = '0'] = slow;
    const rate = (Number(done) / Math.max(Number(ms), 1) / 1000).toFixed(1);
    return {
      ...base,
      guestRan: true,
      reason:
        `a test guest ran to HLT, but a ${loops}-iteration loop got through only ${done} in ${ms} ms ` +
        `(${rate}M/s; hardware-assisted KVM does hundreds of millions per second): guest code is emulated or ` +
        `starved, so VM tests would not finish`,
    };
  }
  const last = stages.at(-1) ?? 'start';
  if (out.killed) {
    const which = stages.includes('hlt') ? 'the speed-test guest did not return' : 'a test guest did not reach HLT';
    return { ...base, guestRan, reason: `${which} within ${secs} (probe killed after '${last}')` };
  }
  const tail = out.stderr.trim().split('\n').slice(-3).join(' ');
  return {
    ...base,
    guestRan,
    reason: `the KVM probe stopped after '${last}' without a result${tail ? `: ${tail}` : ''}`,
  };
}

/** Probes KVM for real: open the device, create a VM and a vCPU, and run test guests. Never throws. */
export async function probeKvm(opts: { device?: string; timeoutMs?: number; perl?: string } = {}): Promise<KvmProbe> {
  const device = opts.device ?? DEFAULT_KVM_DEVICE;
  const timeoutMs = opts.timeoutMs ?? 3000;
  if (!(await exists(device))) {
    return {
      ...FAILED,
      device: false,
      reason: `${device} does not exist (no KVM module loaded, or the runner does not expose it)`,
      stages: [],
      elapsedMs: 0,
    };
  }
  // Each of the two guest runs gets a third of the budget (capped at 1 s), leaving time for set-up and exit.
  const phaseMs = Math.max(50, Math.min(1000, Math.floor(timeoutMs / 3)));
  const out = await runPerl(opts.perl ?? 'perl', ['-e', KVM_PROBE_PL, '--', device, String(phaseMs)], timeoutMs);
  const probe = interpretProbe(device, out, timeoutMs);
  // Without perl we still know whether the node is accessible, just not whether KVM works.
  return out.spawnError ? { ...probe, readWrite: await isReadWrite(device) } : probe;
}

export interface KvmAccessOptions {
  device?: string;
  canWriteSystem: boolean;
  /** [] when root, ['sudo', '-n'] otherwise. */
  sudo: string[];
  rulesDir?: string;
  /** The udevadm program (tests point it at a stand-in). */
  udevadm?: string;
}

export interface KvmAccessResult {
  /** Our rule file is in place (written now, or found with the same content). */
  ruleInstalled: boolean;
  /** This call changed something: wrote the rule or chmod-ed the device. */
  changed: boolean;
}

const NOTHING: KvmAccessResult = { ruleInstalled: false, changed: false };

/**
 * Makes the KVM device readable and writable by everyone, as Nix's build users need (they lose supplementary
 * groups, DESIGN.md), when it is not already. Never throws: KVM is optional, so problems are warnings.
 */
export async function ensureKvmAccess(platform: Platform, opts: KvmAccessOptions): Promise<KvmAccessResult> {
  const device = opts.device ?? DEFAULT_KVM_DEVICE;
  try {
    if (!(await exists(device))) {
      platform.log('debug', `${device} does not exist; no KVM access to grant`);
      return NOTHING;
    }
    return await fixKvmAccess(platform, opts, !(await isReadWrite(device)));
  } catch (e) {
    platform.log('warning', `Could not make ${device} accessible, VM tests may lack KVM: ${errorMessage(e)}`);
    return NOTHING;
  }
}

/**
 * The rule-writing half of ensureKvmAccess, with the access decision as a parameter (as root everything is
 * accessible, so tests could not reach this otherwise). `stillNeedsFix` decides whether udev did its job.
 */
export async function fixKvmAccess(
  platform: Platform,
  opts: KvmAccessOptions,
  needsFix: boolean,
  stillNeedsFix: (device: string) => Promise<boolean> = async (d) => !(await isReadWrite(d)),
): Promise<KvmAccessResult> {
  const device = opts.device ?? DEFAULT_KVM_DEVICE;
  if (!needsFix) {
    platform.log('debug', `${device} is already readable and writable`);
    return NOTHING;
  }
  if (!opts.canWriteSystem) {
    platform.log('info', `${device} is not readable and writable by this user, and system files may not be changed`);
    return NOTHING;
  }
  const dir = opts.rulesDir ?? '/etc/udev/rules.d';
  const file = path.join(dir, KVM_RULE_FILE);
  const [sudoCmd, ...sudoArgs] = opts.sudo;
  // Argument arrays only; through sudo when not root.
  const asRoot = (file_: string, args: string[], input?: string) =>
    sudoCmd === undefined
      ? run(platform, file_, args, { input })
      : run(platform, sudoCmd, [...sudoArgs, file_, ...args], { input });

  let changed = false;
  const current = await fs.readFile(file, 'utf8').catch(() => '');
  if (current !== KVM_UDEV_RULE) {
    if (sudoCmd === undefined) {
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(file, KVM_UDEV_RULE, { mode: 0o644 });
      await fs.chmod(file, 0o644); // writeFile's mode only applies to new files (and passes through the umask)
    } else {
      await asRoot('mkdir', ['-p', dir]);
      await asRoot('tee', [file], KVM_UDEV_RULE);
      await asRoot('chmod', ['0644', file]);
    }
    changed = true;
    platform.log('info', `Installed ${file} so that Nix build users can use ${device}`);
  }

  // udev may not run (containers): its failures are expected, the chmod below covers them.
  const udevadm = opts.udevadm ?? 'udevadm';
  for (const args of [
    ['control', '--reload-rules'],
    ['trigger', '--name-match=kvm'],
    ['settle', '--timeout=5'],
  ]) {
    try {
      await asRoot(udevadm, args);
    } catch (e) {
      platform.log('debug', `${udevadm} ${args.join(' ')} failed (udev not running?): ${errorMessage(e)}`);
      break;
    }
  }
  if (await stillNeedsFix(device)) {
    platform.log('debug', `${device} is still not accessible after udev; chmod 0666 ${device}`);
    if (sudoCmd === undefined) await fs.chmod(device, 0o666);
    else await asRoot('chmod', ['0666', device]);
    changed = true;
  }
  return { ruleInstalled: true, changed };
}
