/**
 * NixOS VM tests: derivations requiring the `nixos-test` system feature (and, on Linux, `kvm`). Before they are
 * built, KVM must be usable: install-nix's probe runs a real guest, because the device node existing proves nothing
 * (DESIGN.md; some hosts have a software /dev/kvm on which guests crawl). Without usable KVM they are refused with a
 * message naming the attribute, why, and the fix, unless `allow-emulation` lets QEMU fall back to its TCG emulation.
 * Either way Nix must be told it may schedule them: it offers `kvm` only when /dev/kvm was read-write when it started
 * (and install-nix drops `kvm` where the probe failed), so the missing features are declared for the build with
 * `--option extra-system-features`, which Nix 2.8 and 2.34 accept for `nix build` and `nix-store --realise` alike
 * (a daemon honours it only from trusted users; install-nix makes the job's user one).
 * A VM test that a remote builder can take (the `builders` input's machines, else Nix's own `builders` setting; its
 * system, `nixos-test` and the test's other features) does not need KVM here: without usable KVM it is left to Nix,
 * which sends it to that machine because this one does not offer the features (none are declared then), instead of
 * being refused.
 * Failed VM tests keep their logs and screenshots as artifacts: vm-artifacts.ts.
 */
import { errorMessage } from '../errors.js';
import { probeKvm, type KvmProbe } from '../install-nix/kvm.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { machineCanBuild, machinesFromSetting, type MachineSpec } from './builders-spec.js';
import { readNixConfig, type NixConfigInfo } from './cached.js';
import type { BuildPreparation, PreparedTarget } from './engine.js';
import type { AttrResult } from './results.js';
import { keepVmArtifacts, type VmArtifact, type VmArtifactOptions } from './vm-artifacts.js';

export type { VmArtifact, VmArtifactOptions };

/** The system features a NixOS VM test may require that only a KVM-capable (or emulating) builder offers. */
export const VM_FEATURES = ['kvm', 'nixos-test'] as const;

export interface VmOptions {
  allowEmulation: boolean;
  /** The installation that builds: its `system-features` decide which features must be declared. */
  nix?: NixCommand;
  /** Its settings when already read (the engine hands them to its hook); else they are asked of `nix`. */
  config?: NixConfigInfo;
  /** Nix's system-features when already known; without them and without `nix`, all VM features are declared. */
  systemFeatures?: readonly string[];
  /** The KVM check; default install-nix's probeKvm. Each probe function runs once per process (once per run). */
  probe?: () => Promise<KvmProbe>;
  /**
   * The remote machines builds may go to (the `builders` input's, which replace Nix's setting for the build): VM
   * tests one of them can take need no KVM here. Undefined: those of Nix's own `builders` setting.
   */
  remoteBuilders?: readonly MachineSpec[];
  /** This machine's system (for machines naming none); default Nix's `system` setting. */
  localSystem?: string;
}

export function isVmTest(features: readonly string[]): boolean {
  return features.includes('nixos-test');
}

const defaultProbe = (): Promise<KvmProbe> => probeKvm();
// Probing runs a guest and can take its whole deadline (3 s) on a host whose KVM emulates: once per run is enough.
const probes = new WeakMap<() => Promise<KvmProbe>, Promise<KvmProbe>>();

export function probeKvmOnce(probe: () => Promise<KvmProbe> = defaultProbe): Promise<KvmProbe> {
  let p = probes.get(probe);
  if (!p) {
    p = probe();
    probes.set(probe, p);
  }
  return p;
}

/** `allow-emulation` as the user writes it on this platform (GitLab inputs are snake_case). */
export function emulationInput(platform: Platform): string {
  return platform.name === 'gitlab' ? 'allow_emulation' : 'allow-emulation';
}

/** Why a VM test is not built, and what to do about it: it becomes the attribute's error in every report. */
export function refusalMessage(attr: string, probe: KvmProbe, platform: Platform): string {
  return (
    `${attr} is a NixOS VM test (it requires the 'nixos-test' system feature) and was not built: KVM is not ` +
    `usable on this runner (${probe.reason}). Run it on a runner with KVM (GitHub-hosted Linux runners have it ` +
    `once install-nix has added its udev rule for /dev/kvm), give it a remote builder offering 'nixos-test' ` +
    `(builders), or set '${emulationInput(platform)}: true' to run it under QEMU's TCG emulation, which is much ` +
    `slower.`
  );
}

/**
 * The VM features the tests need that Nix does not offer. Only features some VM test requires are declared;
 * `systemFeatures` undefined (unknown) means Nix offers none of them.
 */
export function missingVmFeatures(
  targets: readonly { features: readonly string[] }[],
  systemFeatures?: readonly string[],
): string[] {
  const needed = VM_FEATURES.filter((f) => targets.some((t) => isVmTest(t.features) && t.features.includes(f)));
  return needed.filter((f) => !(systemFeatures ?? []).includes(f));
}

/** Build arguments declaring `features` for this build only (nothing when there is nothing to declare). */
export function vmFeatureArgs(features: readonly string[]): string[] {
  return features.length === 0 ? [] : ['--option', 'extra-system-features', features.join(' ')];
}

export function emulationWarning(platform: Platform, attrs: readonly string[], probe: KvmProbe): string {
  // Where /dev/kvm accepts VMs but guests crawl, QEMU's `accel=kvm:tcg` fallback (NixOS's qemu-kvm) still picks it.
  const caveat = probe.vmCreated
    ? ` /dev/kvm accepts VMs here, so a QEMU that prefers KVM over TCG may still use it and crawl or hang.`
    : '';
  return (
    `Building ${attrs.length} NixOS VM test(s) under emulation (${emulationInput(platform)}: true): KVM is not ` +
    `usable (${probe.reason}), so QEMU runs them with its TCG emulation, much slower than with KVM: ` +
    `${attrs.join(', ')}.${caveat}`
  );
}

/** Nix's settings: given, or read at most once per preparation; undefined when there is no Nix to ask or it failed. */
function nixConfigOnce(platform: Platform, opts: VmOptions): () => Promise<NixConfigInfo | undefined> {
  let config: Promise<NixConfigInfo | undefined> | undefined = opts.config && Promise.resolve(opts.config);
  return () =>
    (config ??= opts.nix
      ? readNixConfig(opts.nix).catch((e: unknown) => {
          platform.log('debug', `Could not read Nix's settings (system-features, system): ${errorMessage(e)}`);
          return undefined;
        })
      : Promise.resolve(undefined));
}

/** The VM tests a remote builder can take (see the file comment). */
async function remoteVmTests(
  vm: readonly PreparedTarget[],
  opts: VmOptions,
  config: () => Promise<NixConfigInfo | undefined>,
): Promise<Set<string>> {
  const machines = opts.remoteBuilders ?? machinesFromSetting((await config())?.builders ?? '');
  if (machines.length === 0) return new Set();
  const local = opts.localSystem ?? (await config())?.system ?? '';
  const ok = vm.filter(
    (t) => t.system !== undefined && machines.some((m) => machineCanBuild(m, t.system as string, t.features, local)),
  );
  return new Set(ok.map((t) => t.attr));
}

/** The engine's prepareBuild hook for VM tests. */
export async function prepareVmTests(
  platform: Platform,
  targets: readonly PreparedTarget[],
  opts: VmOptions,
): Promise<BuildPreparation> {
  const vm = targets.filter((t) => isVmTest(t.features));
  if (vm.length === 0) return {};
  const attrs = vm.map((t) => t.attr);
  const probe = await probeKvmOnce(opts.probe);
  platform.log('debug', `KVM probe: ${JSON.stringify(probe)}`);
  const config = nixConfigOnce(platform, opts);

  if (!probe.usable && !opts.allowEmulation) {
    const remote = await remoteVmTests(vm, opts, config);
    if (remote.size > 0)
      platform.log(
        'info',
        `KVM is not usable on this runner (${probe.reason}); ${remote.size} NixOS VM test(s) go to the remote ` +
          `builders that offer their features: ${[...remote].join(', ')}.`,
      );
    const here = vm.filter((t) => !remote.has(t.attr));
    if (here.length === 0) return {};
    platform.log(
      'warning',
      `Not building ${here.length} NixOS VM test(s), KVM is not usable on this runner (${probe.reason}): ` +
        `${here.map((t) => t.attr).join(', ')}. Use a runner with KVM, a remote builder offering 'nixos-test', ` +
        `or set '${emulationInput(platform)}: true' to emulate.`,
    );
    return { refused: new Map(here.map((t) => [t.attr, refusalMessage(t.attr, probe, platform)])) };
  }

  const features = opts.systemFeatures ?? (await config())?.systemFeatures;
  if (!opts.systemFeatures && !features)
    platform.log('debug', "Nix's system-features are unknown: declaring all VM features.");
  const missing = missingVmFeatures(vm, features);
  if (probe.usable) platform.log('info', `KVM is usable (${probe.reason}): building ${vm.length} NixOS VM test(s).`);
  else platform.log('warning', emulationWarning(platform, attrs, probe));
  if (missing.length === 0) return {};
  platform.log(
    'info',
    `Nix's system-features lack '${missing.join(' ')}'; declaring them for this build so that Nix schedules the ` +
      `VM tests.`,
  );
  return { extraArgs: vmFeatureArgs(missing) };
}

/**
 * Keeps what failed VM tests left behind under `dir/<attr>/`: the full build log (the log tail when Nix has none or
 * no `nix` is given), and, when `nix` and `flake` are given and the test exposes a `driver` (NixOS tests do), what
 * its driver writes when run again (screenshots). Returns what was kept, for the summary; never throws.
 */
export async function collectVmArtifacts(
  platform: Platform,
  results: readonly AttrResult[],
  dir: string,
  opts: VmArtifactOptions = {},
): Promise<VmArtifact[]> {
  return keepVmArtifacts(
    platform,
    results.filter((r) => isVmTest(r.features)),
    dir,
    opts,
  );
}
