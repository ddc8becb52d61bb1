// An HTTP Nix binary cache on 127.0.0.1: Debian's nginx serving a directory, with WebDAV PUT so that
// `nix copy --to http://127.0.0.1:PORT` really uploads. Plain JS so benchmarks and scripts can share it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NGINX = '/usr/sbin/nginx';

/** Fails loudly, naming the package, when nginx (with its DAV module: nginx-light or nginx-full) is missing. */
export function requireNginx() {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install nginx-light`);
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx in the foreground (`daemon off`) as a child of this process, so stop() ends exactly it.
 * opts.root: the directory served (default: a new one inside the temp dir); a `nix-cache-info` is written there first
 * (Nix reads it before anything else). opts.priority: the cache's Priority (default 30).
 */
export async function startNginxCache(opts = {}) {
  requireNginx();
  const dir = mkdtempSync(join(tmpdir(), 'flake-ci-nginx-'));
  const root = opts.root ?? join(dir, 'cache');
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'nix-cache-info'),
    `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${opts.priority ?? 30}\n`,
  );
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const port = await freePort();
  // Workers must be able to write into root: as root, run them as root; otherwise they run as the caller anyway.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const conf = `
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
${user}
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  // -e: nginx opens its compiled-in error log before reading the config; point it into the temp dir too.
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start on 127.0.0.1:${port}:\n${stderr}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const accessLog = () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    root,
    /** Access log lines so far: `"PUT /nar/... HTTP/1.1" 201` and the like. */
    accessLog,
    /** Requests with this method whose path matches `re`. */
    count: (method, re) =>
      accessLog()
        .split('\n')
        .filter((l) => l.includes(`"${method} `) && (!re || re.test(l))).length,
    stop: async () => {
      if (!exited) {
        // SIGQUIT: graceful; the master waits for its worker and exits.
        const done = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
