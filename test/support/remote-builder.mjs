// A REAL second host for remote-builder tests: its own network namespace (a veth pair with a private 10.x /30), its
// own mount, UTS and PID namespaces with its own /nix (a temp directory bind-mounted there) and its own /root, and
// Debian's sshd listening on the namespace's address with a throwaway host key and an authorized_keys for a
// throwaway ed25519 client key. Remote commands see PATH (the chosen Nix first) and NIX_CONF_DIR through sshd's
// SetEnv, so `nix-store --serve --write` (ssh://) and `nix-daemon --stdio` (ssh-ng://) run the Nix under test.
// Plain JS so benchmarks and scripts can share it. Needs root. Traffic goes only to the address created here.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SSHD = '/usr/sbin/sshd';
const TOOLS = [
  [SSHD, 'openssh-server'],
  ['/usr/bin/ssh', 'openssh-client'],
  ['/usr/bin/ssh-keygen', 'openssh-client'],
  ['/usr/bin/unshare', 'util-linux'],
];
/** Namespaces are named after the creating process, so a crashed run's leftovers can be found and removed. */
const NS_PREFIX = 'flakeci-rb-';
const DIR_PREFIX = 'flake-ci-remote-';

function ipBinary() {
  return ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
}

/** Fails loudly, naming the Debian package, when a tool is missing; network namespaces need root. */
export function requireRemoteBuilderTools() {
  for (const [file, pkg] of TOOLS) if (!existsSync(file)) throw new Error(`${file} is missing: apt-get install ${pkg}`);
  if (!ipBinary()) throw new Error('ip is missing: apt-get install iproute2');
  if (process.getuid?.() !== 0) throw new Error('A remote builder needs root (network and mount namespaces).');
}

function must(file, args) {
  const res = spawnSync(file, args, { encoding: 'utf8' });
  if (res.status !== 0)
    throw new Error(`${file} ${args.join(' ')} failed (${res.status ?? res.signal}): ${res.stderr || res.error}`);
  return res.stdout;
}

function ip(args) {
  return must(ipBinary(), args);
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/**
 * Removes namespaces and directories left by test processes that no longer exist (a killed jest cannot run its
 * afterAll); their sshd died with them, and its mounts with its mount namespace.
 */
function removeStale() {
  for (const line of ip(['netns', 'list']).split('\n')) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-[0-9a-f]+\\b`).exec(line.trim());
    if (m && !pidAlive(Number(m[1])))
      spawnSync(ipBinary(), ['netns', 'del', line.trim().split(/\s/)[0]], { stdio: 'ignore' });
  }
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** A random 10.x /30 whose /24 no interface or route on this machine uses (other tests may run beside us). */
function pickSubnet() {
  const used = ip(['-4', '-o', 'addr']) + ip(['-4', 'route']);
  for (let i = 0; i < 50; i++) {
    const [a, b, c] = randomBytes(3);
    const prefix = `10.${200 + (a % 50)}.${b}`;
    if (used.includes(`${prefix}.`)) continue;
    const base = (c % 64) * 4;
    return { host: `${prefix}.${base + 1}`, remote: `${prefix}.${base + 2}` };
  }
  throw new Error('no free 10.x /30 found for the remote builder');
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// Runs inside the new namespaces (argv: dir, hostname). /nix and /root become the remote's own; /run is a tmpfs so
// sshd's privilege-separation directory never lands on the host. `mkdir -p /nix` only matters on a host without it.
const NAMESPACE_SCRIPT = `set -e
mkdir -p /nix
mount --bind "$1/nix" /nix
mount --bind "$1/root" /root
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
hostname "$2"
exec ${SSHD} -D -E "$1/sshd.log" -f "$1/sshd_config"`;

/**
 * Starts the remote. opts.nixBin: the Nix whose nix-store / nix-daemon the remote runs (default /usr/bin);
 * opts.hostname: the remote's host name (default flake-ci-remote-<random>), which builds there can read.
 */
export async function startRemoteBuilder(opts = {}) {
  requireRemoteBuilderTools();
  removeStale();
  const nixBin = opts.nixBin ?? '/usr/bin';
  const id = randomBytes(3).toString('hex');
  const hostname = opts.hostname ?? `flake-ci-remote-${id}`;
  const ns = `${NS_PREFIX}${process.pid}-${id}`;
  const vethHost = `rb${id}h`;
  const vethRemote = `rb${id}r`;
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  let child;
  let log = '';
  let exited = false;

  const stop = async () => {
    if (child && !exited) {
      const done = new Promise((resolve) => child.once('exit', resolve));
      // unshare --kill-child: killing unshare SIGKILLs the namespace's init, and with it every process inside.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(timer);
    }
    // Deleting the namespace destroys the veth end inside it, and with it the host end.
    spawnSync(ipBinary(), ['netns', 'del', ns], { stdio: 'ignore' });
    spawnSync(ipBinary(), ['link', 'del', vethHost], { stdio: 'ignore' });
    // Store paths are read-only; as root rmSync removes them anyway.
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const d of ['nix', 'root/.ssh', 'nix-conf', 'xdg', 'client'])
      mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    chmodSync(join(dir, 'nix'), 0o755);
    chmodSync(join(dir, 'root'), 0o700);
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const clientKey = join(dir, 'client', 'id_ed25519');
    must('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'flake-ci-remote-host', '-f', hostKey]);
    must('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'flake-ci-test-client', '-f', clientKey]);
    writeFileSync(join(dir, 'root/.ssh/authorized_keys'), readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    writeFileSync(
      join(dir, 'nix-conf/nix.conf'),
      [
        'build-users-group =',
        'sandbox = false',
        'substituters =',
        'experimental-features = nix-command flakes',
        'trusted-users = root',
        ...(opts.systemFeatures ? [`system-features = ${opts.systemFeatures.join(' ')}`] : []),
        '',
      ].join('\n'),
    );

    const { host, remote } = pickSubnet();
    ip(['netns', 'add', ns]);
    ip(['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethRemote]);
    ip(['link', 'set', vethRemote, 'netns', ns]);
    ip(['addr', 'add', `${host}/30`, 'dev', vethHost]);
    ip(['link', 'set', vethHost, 'up']);
    ip(['-n', ns, 'addr', 'add', `${remote}/30`, 'dev', vethRemote]);
    ip(['-n', ns, 'link', 'set', vethRemote, 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);

    const remotePath = `${nixBin}:/usr/bin:/bin:/usr/sbin:/sbin`;
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `ListenAddress ${remote}:22`,
        `HostKey ${hostKey}`,
        'PidFile none',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'AuthorizedKeysFile .ssh/authorized_keys',
        'PrintMotd no',
        'LogLevel VERBOSE',
        // Overrides sshd's default PATH for every session: the Nix under test is the one `nix-store` resolves to.
        `SetEnv PATH=${remotePath} NIX_CONF_DIR=${dir}/nix-conf XDG_CONFIG_HOME=${dir}/xdg XDG_CACHE_HOME=${dir}/xdg`,
        '',
      ].join('\n'),
    );

    const unshare = ['--mount', '--uts', '--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private'];
    child = spawn(
      ipBinary(),
      ['netns', 'exec', ns, '/usr/bin/unshare', ...unshare, '--', '/bin/sh', '-c'].concat([
        NAMESPACE_SCRIPT,
        'sh',
        dir,
        hostname,
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (d) => (log += d.toString()));
    child.stderr.on('data', (d) => (log += d.toString()));
    child.on('exit', () => (exited = true));

    const deadline = Date.now() + 15_000;
    while (!(await canConnect(remote, 22))) {
      if (exited || Date.now() > deadline) {
        const file = join(dir, 'sshd.log');
        const sshdLog = existsSync(file) ? readFileSync(file, 'utf8') : '';
        throw new Error(`sshd did not start on ${remote}:22:\n${log}${sshdLog}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }

    const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim();
    const knownHosts = join(dir, 'client', 'known_hosts');
    writeFileSync(knownHosts, `${remote} ${hostPublicKey}\n`);
    return {
      address: remote,
      hostAddress: host,
      user: 'root',
      hostname,
      nixBin,
      /** The remote's /nix/store as seen from this host. */
      storeDir: join(dir, 'nix', 'store'),
      clientKey: readFileSync(clientKey, 'utf8'),
      clientKeyPath: clientKey,
      hostPublicKey,
      /** The host key as Nix's machine spec wants it (field 8): base64 of the public key line. */
      hostKeyBase64: Buffer.from(hostPublicKey).toString('base64'),
      uri: (scheme = 'ssh') => `${scheme}://root@${remote}`,
      /** sshd's log so far (LogLevel VERBOSE: connections, accepted and refused keys) and its stderr. */
      log: () => {
        const file = join(dir, 'sshd.log');
        return (existsSync(file) ? readFileSync(file, 'utf8') : '') + log;
      },
      /** Runs a command on the remote over ssh with the client key (test code only; arguments are quoted). */
      ssh: (args) =>
        spawnSync(
          '/usr/bin/ssh',
          [
            '-i',
            clientKey,
            '-o',
            'BatchMode=yes',
            '-o',
            `UserKnownHostsFile=${knownHosts}`,
            '-o',
            'StrictHostKeyChecking=yes',
            `root@${remote}`,
            args.map(shellQuote).join(' '),
          ],
          { encoding: 'utf8' },
        ),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
