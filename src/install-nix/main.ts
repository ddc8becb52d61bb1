/** install-nix main phase: pick the source, install or reuse Nix, configure it, export it to later steps. */
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../exec.js';
import { InputError } from '../errors.js';
import { saveState } from '../platform/state.js';
import type { Platform } from '../platform/types.js';
import { confPath, managedBlock, writeAccessTokens, writeNixConf } from './config.js';
import {
  ensureBuildUsers,
  restartSystemdDaemon,
  secureStore,
  spawnDaemon,
  startSystemdDaemon,
  type DaemonHandle,
} from './daemon.js';
import { installFromDistro } from './distro.js';
import { exportEnvironment } from './environment.js';
import { DEFAULT_PROFILE, findExistingNix, parseVersionLine } from './existing.js';
import { hostSupport } from './host.js';
import { parseInstallInputs, type InstallInputs } from './inputs.js';
import { ensureKvmAccess, probeKvm, type KvmProbe } from './kvm.js';
import { Privilege } from './privilege.js';
import { installFromTarball } from './tarball-install.js';

export interface InstallState {
  daemonPid?: number;
  secretsFile?: string;
}

interface Installed {
  binDir: string;
  source: 'tarball' | 'tool-cache' | 'existing' | 'distro';
  multiUser: boolean;
  /** Set when this run installed the store paths itself (so it may set up the daemon from them). */
  nixStorePath?: string;
}

function currentUser(p: Platform): string {
  return p.env('USER') || os.userInfo().username;
}

async function obtainNix(p: Platform, inputs: InstallInputs, system: string, priv: Privilege): Promise<Installed> {
  const existing = inputs.source === 'auto' || inputs.source === 'existing' ? await findExistingNix(p) : undefined;
  if (existing) {
    p.log('info', `Using the Nix ${existing.version} already installed at ${existing.nix}.`);
    if (inputs.mode !== 'auto' && (inputs.mode === 'multi-user') !== existing.daemon)
      p.log(
        'warning',
        `mode: ${inputs.mode} was asked, but the existing Nix is ${existing.daemon ? 'multi' : 'single'}-user; kept as it is.`,
      );
    return { binDir: existing.binDir, source: 'existing', multiUser: existing.daemon };
  }
  if (inputs.source === 'existing')
    throw new InputError(
      "source: existing, but no Nix was found (looked in the default profile, ~/.nix-profile, NixOS's system profile, /usr/bin and PATH). Use 'source: auto' or 'source: tarball' to install one.",
    );
  if (inputs.source === 'distro') {
    const nix = await installFromDistro(p, priv);
    return { binDir: nix.binDir, source: 'distro', multiUser: nix.daemon };
  }
  const multiUser = inputs.mode === 'auto' ? !priv.isRoot : inputs.mode === 'multi-user';
  if (multiUser) priv.require('mode: multi-user');
  const t = await installFromTarball(p, inputs, system, priv);
  p.log(
    'info',
    `Installed Nix from ${t.source === 'tool-cache' ? 'the tool cache' : 'the release tarball'} (${t.added} new store paths).`,
  );
  return { binDir: path.join(DEFAULT_PROFILE, 'bin'), source: t.source, multiUser, nixStorePath: t.nixStorePath };
}

async function kvmSetup(p: Platform, inputs: InstallInputs, priv: Privilege): Promise<KvmProbe | undefined> {
  if (!inputs.kvm) return undefined;
  await ensureKvmAccess(p, { canWriteSystem: priv.canWriteSystem, sudo: priv.prefix });
  const probe = await probeKvm();
  p.log(
    probe.usable || !probe.device ? 'info' : 'warning',
    `KVM: ${probe.usable ? 'usable' : 'not usable'} (${probe.reason})`,
  );
  return probe;
}

async function startDaemon(
  p: Platform,
  priv: Privilege,
  hasSystemd: boolean,
  nixStorePath: string,
): Promise<DaemonHandle> {
  await ensureBuildUsers(p, priv);
  await secureStore(p, priv);
  if (hasSystemd) return startSystemdDaemon(p, priv, nixStorePath);
  const env: Record<string, string> = {
    PATH: `${path.join(nixStorePath, 'bin')}:/usr/bin:/bin`,
    TMPDIR: p.runner.temp,
  };
  const certs = p.env('NIX_SSL_CERT_FILE');
  if (certs) env.NIX_SSL_CERT_FILE = certs;
  return spawnDaemon(p, priv, nixStorePath, env);
}

export async function main(p: Platform): Promise<void> {
  const inputs = parseInstallInputs(p);
  const host = hostSupport(p.runner);
  host.checkInstallable();
  const priv = await Privilege.detect(p);
  const state: InstallState = {};

  const probing = kvmSetup(p, inputs, priv);
  probing.catch(() => undefined); // awaited below; this keeps a failure during the install from going unhandled
  const nix = await p.group('Install Nix', () => obtainNix(p, inputs, host.system, priv));
  const kvm = await probing;
  if (kvm)
    p.log(
      kvm.usable || !kvm.device ? 'info' : 'warning',
      `KVM: ${kvm.usable ? 'usable' : 'not usable'} (${kvm.reason})`,
    );

  await p.group('Configure Nix', async () => {
    if (inputs.githubToken && p.runner.serverUrl)
      state.secretsFile = await writeAccessTokens(
        p,
        path.join(p.runner.temp, 'flake-ci-nix-secrets'),
        p.runner.serverUrl,
        inputs.githubToken,
      );
    // Saved as soon as there is something to undo, so the post step cleans up even if a later part fails.
    saveState(p, state);
    const block = managedBlock(inputs, {
      multiUser: nix.multiUser,
      user: currentUser(p),
      kvm,
      secretsFile: state.secretsFile,
    });
    await writeNixConf(p, priv, confPath(p, priv), block);
    if (nix.multiUser && nix.nixStorePath) {
      const daemon = await startDaemon(p, priv, host.hasSystemd(), nix.nixStorePath);
      if (daemon.via === 'spawned') {
        state.daemonPid = daemon.pid;
        saveState(p, state);
      }
    } else if (nix.multiUser && host.hasSystemd() && priv.canWriteSystem) await restartSystemdDaemon(p, priv);
  });

  exportEnvironment(p, { binDir: nix.binDir, multiUser: nix.multiUser });
  const nixBin = path.join(nix.binDir, 'nix');
  // exportEnvironment also applied NIX_REMOTE and PATH to this process, so this runs as later steps will.
  const v = await run(p, nixBin, ['--version']);
  const version = parseVersionLine(v.stdout) ?? 'unknown';

  const mode = nix.multiUser ? 'multi-user' : 'single-user';
  p.setOutput('nix-version', version);
  p.setOutput('nix-path', nixBin);
  p.setOutput('mode', mode);
  p.setOutput('kvm', kvm?.usable ? 'true' : 'false');
  p.setOutput('source', nix.source);
  p.log('info', `Nix ${version} ready (${mode}, source ${nix.source}, KVM ${kvm?.usable ? 'usable' : 'not usable'}).`);
  await p.appendSummary(
    `### Nix ${version}\n\n| source | mode | KVM |\n|---|---|---|\n| ${nix.source} | ${mode} | ${kvm ? (kvm.usable ? 'usable' : `not usable: ${kvm.reason}`) : 'not probed'} |\n`,
  );
}
