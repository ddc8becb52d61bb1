// Azurite, the Azure Storage emulator, as the blob store behind the cache-service double (actions-cache-service.mjs),
// plus the runtime-token helpers. Real SAS URLs signed with Azurite's development key let @actions/cache run the real
// Azure SDK upload (and, with Azure-style hostnames, download) code against 127.0.0.1. Plain JS so benchmarks can
// share it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BlobSASPermissions,
  BlobServiceClient,
  SASProtocol,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Azurite's built-in development account; the key is a public constant (Azurite's README and
// dist/src/common/utils/constants.js), not a secret.
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
// @actions/cache downloads through the Azure SDK only when the URL's hostname ends with this suffix
// (downloadCache in internal/cacheHttpClient.js); anything else goes through a plain HTTP GET.
export const AZURE_BLOB_SUFFIX = '.blob.core.windows.net';

/**
 * Starts `azurite-blob` on 127.0.0.1 with an OS-chosen port and a fresh --location, and creates `container`.
 * hostnames 'ip' signs URLs as http://127.0.0.1:PORT/devstoreaccount1/...; 'azure' as
 * http://devstoreaccount1.blob.core.windows.net:PORT/... (Azurite reads the account from such a production-style
 * host), which only a client that resolves that name to 127.0.0.1 may use (the fixture client does).
 */
export async function startAzurite({ container = 'actions-cache', hostnames = 'ip', timeoutMs = 30_000 } = {}) {
  const bin = join(REPO_ROOT, 'node_modules/.bin/azurite-blob');
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: the cache-service tests need the npm package "azurite" (a devDependency)`);
  }
  if (Number(process.versions.node.split('.')[0]) < 22) {
    throw new Error(`the npm package "azurite" needs Node >= 22, this is ${process.version}: run through npm/npx`);
  }
  const location = mkdtempSync(join(tmpdir(), 'flake-ci-azurite-'));
  // process.execPath, not the shebang: the .bin script would pick whatever `node` PATH has (v20 here).
  // --disableTelemetry: Azurite otherwise reports usage to Microsoft, and tests talk to 127.0.0.1 only.
  // A clean env so a stray AZURITE_ACCOUNTS cannot replace the development account.
  const child = spawn(
    process.execPath,
    [
      realpathSync(bin),
      ...['--blobHost', '127.0.0.1', '--blobPort', '0', '--location', location],
      ...['--skipApiVersionCheck', '--silent', '--disableTelemetry'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: location } },
  );
  let output = '';
  const port = await new Promise((resolvePort, reject) => {
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(location, { recursive: true, force: true });
      reject(new Error(`azurite-blob did not start (${why}):\n${output}`));
    };
    const timer = setTimeout(() => fail(`no "listens on" line within ${timeoutMs} ms`), timeoutMs);
    const onData = (d) => {
      output += d;
      const m = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code, signal) => fail(`exited with ${code ?? signal}`));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('exit', r));

  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  const service = new BlobServiceClient(`http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`, credential);
  const containerClient = service.getContainerClient(container);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(location, { recursive: true, force: true });
  };
  try {
    await containerClient.createIfNotExists();
  } catch (e) {
    await stop();
    throw e;
  }
  const base =
    hostnames === 'azure'
      ? `http://${AZURITE_ACCOUNT}${AZURE_BLOB_SUFFIX}:${port}/${container}`
      : `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}/${container}`;

  return {
    port,
    container,
    location,
    /** A SAS URL for one blob: 'cw' to upload (create + write), 'r' to download. */
    sasUrl(blobName, permissions, ttlMs = 60 * 60_000) {
      const now = Date.now();
      const sas = generateBlobSASQueryParameters(
        {
          containerName: container,
          blobName,
          permissions: BlobSASPermissions.parse(permissions),
          // Five minutes of clock-skew slack, as Azure's own samples do.
          startsOn: new Date(now - 5 * 60_000),
          expiresOn: new Date(now + ttlMs),
          protocol: SASProtocol.HttpsAndHttp,
        },
        credential,
      ).toString();
      return `${base}/${blobName.split('/').map(encodeURIComponent).join('/')}?${sas}`;
    },
    /** Size in bytes, or undefined when the blob does not exist (nothing was uploaded). */
    async blobSize(blobName) {
      try {
        return (await containerClient.getBlockBlobClient(blobName).getProperties()).contentLength;
      } catch (e) {
        if (e?.statusCode === 404) return undefined;
        throw e;
      }
    },
    read: (blobName) => containerClient.getBlockBlobClient(blobName).downloadToBuffer(),
    write: (blobName, data) => containerClient.getBlockBlobClient(blobName).uploadData(data),
    /** Once per blob and mode: a copy with 16 bytes inverted mid-blob ('flip') or only its first half ('truncate'). */
    async corruptCopy(blobName, mode) {
      const target = `${blobName}.corrupt-${mode}`;
      if ((await this.blobSize(target)) !== undefined) return target;
      const data = Buffer.from(await this.read(blobName));
      const mid = Math.floor(data.length / 2);
      if (mode === 'truncate') await this.write(target, data.subarray(0, mid));
      else {
        for (let i = mid; i < Math.min(mid + 16, data.length); i++) data[i] ^= 0xff;
        await this.write(target, data);
      }
      return target;
    },
    stop,
  };
}

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * An unsigned runtime token shaped like the runner's ACTIONS_RUNTIME_TOKEN: `scp` holds
 * `Actions.Results:<runId>:<jobId>` (how clients find their run and job), and `ac` is a JSON *string* of cache scopes
 * `[{"Scope":"refs/heads/main","Permission":3}]` with Permission bits 1 = read, 2 = write (the claim Gitea emulates
 * and docker/actions-toolkit's printActionsRuntimeTokenACs decodes). The first writable scope is where new entries
 * go; restores search the readable scopes in order (current ref first, then the default branch).
 */
export function makeRuntimeToken({
  runId = '1',
  jobId = '1',
  scopes = [{ Scope: 'refs/heads/main', Permission: 3 }],
  expiresInSeconds = 3600,
} = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    scp: `Actions.Results:${runId}:${jobId}`,
    ac: JSON.stringify(scopes),
    nbf: now - 60,
    iat: now - 60,
    exp: now + expiresInSeconds,
  };
  // alg "none" with an empty signature: nothing in @actions/cache looks inside the token, and the double does not
  // verify signatures (it has no key to verify them with).
  return `${b64url({ typ: 'JWT', alg: 'none' })}.${b64url(payload)}.`;
}

/** The claims the double relies on, or an Error saying why the token is unusable (answered as unauthenticated). */
export function parseRuntimeToken(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return new Error('the token is not a JWT');
  let claims;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return new Error('the token payload is not JSON');
  }
  const results = String(claims.scp ?? '')
    .split(' ')
    .find((s) => s.startsWith('Actions.Results:'));
  const [, runId, jobId] = results?.split(':') ?? [];
  if (!runId || !jobId) return new Error('the token has no Actions.Results:<run>:<job> scope');
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) return new Error('the token has expired');
  let scopes = [];
  try {
    scopes = JSON.parse(claims.ac ?? '[]');
  } catch {
    return new Error('the token ac claim is not JSON');
  }
  if (!Array.isArray(scopes)) return new Error('the token ac claim is not a list');
  const valid = scopes.filter((s) => typeof s?.Scope === 'string' && Number.isInteger(s?.Permission));
  return {
    runId,
    jobId,
    readable: valid.filter((s) => s.Permission & 1).map((s) => s.Scope),
    writable: valid.filter((s) => s.Permission & 2).map((s) => s.Scope),
  };
}
