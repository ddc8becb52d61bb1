/**
 * Multi-user Nix: build users, store ownership, and the daemon. With systemd the daemon is the release's own
 * socket-activated unit; without it (containers, the GitLab shell executor) the action starts nix-daemon itself,
 * waits for its socket, and the post step stops it.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { cpus } from 'node:os';
import * as path from 'node:path';
import { run } from '../exec.js';
import type { Platform } from '../platform/types.js';
import { DAEMON_SOCKET } from './existing.js';
import type { Privilege } from './privilege.js';

export const BUILD_GROUP = 'nixbld';
const WHY = 'Multi-user Nix';

export function buildUserCount(): number {
  return Math.min(32, Math.max(8, 2 * cpus().length));
}

async function exists(p: Platform, db: 'group' | 'passwd', name: string): Promise<boolean> {
  const r = await run(p, 'getent', [db, name], { allowFailure: true });
  return r.exitCode === 0;
}

export async function ensureBuildUsers(p: Platform, priv: Privilege, count = buildUserCount()): Promise<void> {
  if (!(await exists(p, 'group', BUILD_GROUP))) await priv.run(p, WHY, 'groupadd', ['--system', BUILD_GROUP]);
  const nologin = ['/usr/sbin/nologin', '/sbin/nologin'].find((s) => existsSync(s)) ?? '/bin/false';
  for (let i = 1; i <= count; i++) {
    const user = `${BUILD_GROUP}${i}`;
    if (await exists(p, 'passwd', user)) continue;
    await priv.run(p, WHY, 'useradd', [
      ...['--system', '--no-create-home', '--home-dir', '/var/empty', '--shell', nologin],
      ...['--gid', BUILD_GROUP, '--groups', BUILD_GROUP, '--comment', `Nix build user ${i}`, user],
    ]);
  }
}

/** Hands /nix to root with the store writable by the build group only through the daemon. */
export async function secureStore(p: Platform, priv: Privilege): Promise<void> {
  await priv.run(p, WHY, 'chown', ['-R', 'root:root', '/nix']);
  // The daemon refuses a world-writable /nix (a tmpfs or a hand-made directory often is).
  await priv.run(p, WHY, 'chmod', ['0755', '/nix']);
  // nix-daemon.service has ConditionPathIsReadWrite on this directory: without it systemd skips the daemon.
  await priv.run(p, WHY, 'mkdir', ['-p', '-m', '0755', path.dirname(DAEMON_SOCKET)]);
  await priv.run(p, WHY, 'chgrp', [BUILD_GROUP, '/nix/store']);
  await priv.run(p, WHY, 'chmod', ['1775', '/nix/store']);
}

async function waitForSocket(timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(DAEMON_SOCKET)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export interface DaemonHandle {
  via: 'systemd' | 'spawned' | 'already-running';
  pid?: number;
  log?: string;
}

export async function startSystemdDaemon(p: Platform, priv: Privilege, nixStorePath: string): Promise<DaemonHandle> {
  const units = path.join(nixStorePath, 'lib/systemd/system');
  for (const unit of ['nix-daemon.socket', 'nix-daemon.service']) {
    const src = path.join(units, unit);
    if (!existsSync(src))
      throw new Error(`The release has no ${unit} at ${src}; cannot start the daemon with systemd.`);
    await priv.run(p, WHY, 'ln', ['-sfn', src, `/etc/systemd/system/${unit}`]);
  }
  await priv.run(p, WHY, 'systemctl', ['daemon-reload']);
  await priv.run(p, WHY, 'systemctl', ['enable', '--now', 'nix-daemon.socket']);
  if (!(await waitForSocket(10_000))) throw new Error(`systemd did not create ${DAEMON_SOCKET} within 10 s.`);
  return { via: 'systemd' };
}

/** Starts nix-daemon detached (it must outlive this step); its output goes to a log file under temp. */
export async function spawnDaemon(
  p: Platform,
  priv: Privilege,
  nixStorePath: string,
  env: Record<string, string>,
): Promise<DaemonHandle> {
  const nixBin = path.join(nixStorePath, 'bin');
  if (existsSync(DAEMON_SOCKET)) {
    // A stale socket file (a daemon that died) would make clients fail; a live daemon answers this query.
    const probe = await run(p, path.join(nixBin, 'nix-store'), ['--store', 'daemon', '-q', '--hash', nixStorePath], {
      allowFailure: true,
    });
    if (probe.exitCode === 0) return { via: 'already-running' };
    await priv.run(p, WHY, 'rm', ['-f', DAEMON_SOCKET]);
  }
  const log = path.join(p.runner.temp, 'nix-daemon.log');
  const fd = openSync(log, 'a', 0o600);
  const [cmd, ...args] = [...priv.prefix, path.join(nixBin, 'nix-daemon')];
  const child = spawn(cmd as string, args, { detached: true, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const pid = child.pid;
  child.unref();
  if (!(await waitForSocket(15_000))) {
    // Not left running: nothing would stop it, since the post step only stops daemons main reported as started.
    if (pid) await priv.run(p, WHY, 'kill', ['-KILL', String(pid)], { allowFailure: true });
    throw new Error(`nix-daemon did not create ${DAEMON_SOCKET} within 15 s; see ${log}.`);
  }
  p.log('info', `Started nix-daemon (pid ${pid}); the post step stops it.`);
  return { via: 'spawned', pid, log };
}

export async function stopDaemon(p: Platform, priv: Privilege, pid: number): Promise<void> {
  const r = await priv.run(p, 'Stopping nix-daemon', 'kill', ['-TERM', String(pid)], { allowFailure: true });
  if (r.exitCode !== 0) p.log('debug', `nix-daemon ${pid} was already gone.`);
  else p.log('info', `Stopped nix-daemon (pid ${pid}).`);
}

/** After nix.conf changes, a running daemon must re-read it. */
export async function restartSystemdDaemon(p: Platform, priv: Privilege): Promise<void> {
  const r = await priv.run(p, WHY, 'systemctl', ['restart', 'nix-daemon.service'], { allowFailure: true });
  if (r.exitCode !== 0) p.log('warning', `Could not restart nix-daemon; new settings apply after its next start.`);
}
