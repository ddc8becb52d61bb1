// A test double of the GitHub Actions cache service v2 (twirp, JSON) as @actions/cache 6 calls it, storing blobs in
// Azurite. What it answers, and why, is in actions-cache-service.d.mts; each answer imitates what the real service
// was seen to answer (issue threads quoting its messages) or what @actions/cache's source expects. Plain JS so
// benchmarks can share it.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRuntimeToken, parseRuntimeToken, startAzurite } from './actions-cache-azurite.mjs';

export { makeRuntimeToken, parseRuntimeToken } from './actions-cache-azurite.mjs';

export const TWIRP_SERVICE = 'github.actions.results.api.v1.CacheService';
const METHODS = new Set(['CreateCacheEntry', 'FinalizeCacheEntryUpload', 'GetCacheEntryDownloadURL']);
// Twirp's error codes and the HTTP statuses its spec pairs them with.
const STATUS = {
  invalid_argument: 400,
  malformed: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  bad_route: 404,
  already_exists: 409,
  resource_exhausted: 429,
  internal: 500,
  unavailable: 503,
};
const CODE_FOR_STATUS = { 429: 'resource_exhausted', 500: 'internal', 503: 'unavailable' };

class TwirpError extends Error {
  constructor(code, msg, result, headers = {}) {
    super(msg);
    Object.assign(this, { code, result, headers });
  }
}

export async function startCacheService({
  rateLimit = { perMinute: 200 },
  failures = {},
  blobHostnames = 'ip',
  repository = 'flake-ci/fixture',
  ref = 'refs/heads/main',
} = {}) {
  const scratch = mkdtempSync(join(tmpdir(), 'flake-ci-cache-service-'));
  const azurite = await startAzurite({ hostnames: blobHostnames }).catch((e) => {
    rmSync(scratch, { recursive: true, force: true });
    throw e;
  });
  const calls = [];
  const store = [];
  const creations = [];
  let limit = rateLimit;
  // Copies: `status.times` counts down here, not in the caller's object.
  const copyFaults = (f) => ({ ...f, status: f.status && { ...f.status } });
  let faults = copyFaults(failures);
  let nextId = 1;

  const auth = (req) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) throw new TwirpError('unauthenticated', 'missing bearer token', 'unauthenticated');
    const claims = parseRuntimeToken(m[1]);
    if (claims instanceof Error) throw new TwirpError('unauthenticated', claims.message, 'unauthenticated');
    return claims;
  };
  const need = (value, what) => {
    if (typeof value !== 'string' || value === '') throw new TwirpError('invalid_argument', `${what} is required`);
    return value;
  };
  const checkKey = (key, what) => {
    need(key, what);
    if (key.length > 512 || key.includes(',')) throw new TwirpError('invalid_argument', `${what} is invalid`);
    return key;
  };
  const find = (scope, key, version) => store.find((e) => e.scope === scope && e.key === key && e.version === version);
  // Docs ("Cache key matching"): the exact key, then the key as a prefix, then each restore key as a prefix, in the
  // current ref's scope, then the same steps in the next readable scope; a prefix picks the newest entry. Only
  // finalized entries of the same version are visible.
  const match = (scopes, keys, version) => {
    for (const scope of scopes) {
      const visible = store.filter((e) => e.finalized && e.scope === scope && e.version === version);
      const exact = visible.find((e) => e.key === keys[0]);
      if (exact) return exact;
      for (const key of keys) {
        const hit = visible.filter((e) => e.key.startsWith(key)).sort((a, b) => b.id - a.id)[0];
        if (hit) return hit;
      }
    }
    return undefined;
  };

  const handlers = {
    async CreateCacheEntry(claims, body, call) {
      const key = checkKey(body.key, 'key');
      const version = need(body.version, 'version');
      Object.assign(call, { key, version });
      // The real service answers a read-only token with 200, ok=false and a `cache write denied:` message;
      // @actions/cache turns that prefix into CacheWriteDeniedError (a warning).
      const scope = claims.writable[0];
      if (scope === undefined) {
        call.result = 'write_denied';
        return { ok: false, signed_upload_url: '', message: 'cache write denied: token has no writable scopes' };
      }
      if (find(scope, key, version)) {
        throw new TwirpError(
          'already_exists',
          'cache entry with the same key, version, and scope already exists',
          'already_exists',
        );
      }
      // 200 new entries per minute per repository (changelog 2026-01-16), answered 429 with Retry-After; GitHub's
      // observed body is `rate limit exceeded`. Only accepted reservations count: a conflict uploads nothing.
      const now = Date.now();
      while (creations.length && creations[0] <= now - 60_000) creations.shift();
      if (limit && creations.length >= limit.perMinute) {
        const retryAfter = Math.max(1, Math.ceil((creations[0] + 60_000 - now) / 1000));
        throw new TwirpError('resource_exhausted', 'rate limit exceeded', 'rate_limited', {
          'Retry-After': String(retryAfter),
        });
      }
      creations.push(now);
      const entry = { id: nextId++, key, version, scope, finalized: false, createdAt: now };
      entry.blobName = `caches/${entry.id}`;
      store.push(entry);
      Object.assign(call, { result: 'ok', entryId: entry.id });
      return { ok: true, signed_upload_url: azurite.sasUrl(entry.blobName, 'cw'), message: '' };
    },

    async FinalizeCacheEntryUpload(claims, body, call) {
      const key = checkKey(body.key, 'key');
      const version = need(body.version, 'version');
      // int64 travels as a JSON string (protobuf JSON mapping); accept a number as protojson parsers do.
      const sizeBytes = Number(body.size_bytes ?? body.sizeBytes);
      Object.assign(call, { key, version, sizeBytes });
      if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new TwirpError('invalid_argument', 'bad size');
      const scope = claims.writable[0];
      if (scope === undefined) {
        call.result = 'write_denied';
        return { ok: false, entry_id: '0', message: 'cache write denied: token has no writable scopes' };
      }
      const entry = find(scope, key, version);
      if (!entry) throw new TwirpError('not_found', 'cache entry not found', 'not_found');
      if (entry.finalized) throw new TwirpError('already_exists', 'cache entry already finalized', 'already_exists');
      // Our choice (GitHub does not document it): refuse to publish an entry whose blob is missing or whose size
      // differs, so a test catches a client that finalizes before its upload completed.
      const actual = await azurite.blobSize(entry.blobName);
      if (actual !== sizeBytes) {
        call.result = 'size_mismatch';
        const message = `uploaded blob has ${actual ?? 'no'} bytes, size_bytes says ${sizeBytes}`;
        return { ok: false, entry_id: '0', message };
      }
      Object.assign(entry, { finalized: true, sizeBytes, finalizedAt: Date.now() });
      Object.assign(call, { result: 'ok', entryId: entry.id });
      return { ok: true, entry_id: String(entry.id), message: '' };
    },

    async GetCacheEntryDownloadURL(claims, body, call) {
      const key = checkKey(body.key, 'key');
      const restoreKeys = body.restore_keys ?? body.restoreKeys ?? [];
      if (!Array.isArray(restoreKeys)) throw new TwirpError('invalid_argument', 'restore_keys must be a list');
      restoreKeys.forEach((k) => checkKey(k, 'restore key'));
      const version = need(body.version, 'version');
      Object.assign(call, { key, version, restoreKeys });
      // The receiver answers twirp permission_denied (403) with a `cache read denied:` message; @actions/cache
      // matches that prefix (CacheReadDeniedError) and reports a miss.
      if (claims.readable.length === 0) {
        throw new TwirpError('permission_denied', 'cache read denied: token has no readable scopes', 'read_denied');
      }
      const entry = match(claims.readable, [key, ...restoreKeys], version);
      if (!entry) {
        call.result = 'miss';
        return { ok: false, signed_download_url: '', matched_key: '' };
      }
      entry.lastAccessedAt = Date.now();
      let blobName = entry.blobName;
      const mode = faults.corruptDownloads === true ? 'flip' : faults.corruptDownloads;
      // A separate blob with altered bytes, so the stored entry stays intact for restores without the fault.
      if (mode) blobName = await azurite.corruptCopy(entry.blobName, mode);
      Object.assign(call, { result: mode ? `ok_corrupt_${mode}` : 'ok', matchedKey: entry.key, entryId: entry.id });
      return { ok: true, signed_download_url: azurite.sasUrl(blobName, 'r'), matched_key: entry.key };
    },
  };

  const injected = (method) => {
    const f = faults.status;
    if (!f || (f.methods && !f.methods.includes(method))) return undefined;
    if (f.times !== undefined) {
      if (f.times <= 0) return undefined;
      f.times--;
    }
    return f.status;
  };

  const send = (res, status, body, headers = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/html' : 'application/json', ...headers });
    res.end(text);
  };

  const handle = async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const method = path.startsWith(`/twirp/${TWIRP_SERVICE}/`) ? path.split('/').pop() : undefined;
    const call = { method: method ?? path, at: Date.now() };
    calls.push(call);
    try {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      if (req.method !== 'POST' || !METHODS.has(method)) {
        throw new TwirpError('bad_route', `no handler for ${req.method} ${path}`, 'bad_route');
      }
      if (!String(req.headers['content-type']).startsWith('application/json')) {
        // The real service also speaks protobuf; @actions/cache only ever sends JSON, so the double does too.
        throw new TwirpError('bad_route', 'this double only speaks application/json', 'bad_route');
      }
      const status = injected(method);
      if (status !== undefined) {
        Object.assign(call, { status, result: 'injected' });
        // 502/504 come from a gateway in front of the service: an HTML page, not a twirp error.
        if (!CODE_FOR_STATUS[status]) return send(res, status, `<html><body>${status}</body></html>`);
        return send(res, status, { code: CODE_FOR_STATUS[status], msg: `injected failure (${status})` });
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        throw new TwirpError('malformed', 'the request body is not JSON', 'malformed');
      }
      call.body = body;
      const answer = await handlers[method](auth(req), body, call);
      call.status = 200;
      send(res, 200, answer);
    } catch (e) {
      // A bug in the double (or Azurite failing) is a twirp `internal` error recorded as `crash`, never a hang.
      const known = e instanceof TwirpError;
      const code = known ? e.code : 'internal';
      const msg = known ? e.message : String(e?.stack ?? e);
      Object.assign(call, { status: STATUS[code], result: known ? (e.result ?? code) : 'crash', message: msg });
      if (res.headersSent) res.destroy();
      else send(res, STATUS[code], { code, msg }, known ? e.headers : {});
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  const listen = (p) => new Promise((r, j) => server.once('error', j).listen(p, '127.0.0.1', () => r()));
  await listen(0).catch(async (e) => {
    await azurite.stop();
    rmSync(scratch, { recursive: true, force: true });
    throw e;
  });
  const port = server.address().port;
  let up = true;
  const setDown = async (down) => {
    if (down && up) {
      up = false;
      // Refused connections, as when nothing listens: close the listener and drop open keep-alive sockets.
      const closed = new Promise((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    } else if (!down && !up) {
      await listen(port);
      up = true;
    }
  };
  await setDown(Boolean(faults.down));

  const url = `http://127.0.0.1:${port}/`;
  return {
    url,
    blobHostnames,
    azurite,
    calls,
    entries: () => store.map((e) => ({ ...e })),
    token: (opts = {}) =>
      makeRuntimeToken({
        ...opts,
        scopes: opts.scopes ?? [{ Scope: ref, Permission: opts.readOnly ? 1 : 3 }],
      }),
    env(opts = {}) {
      const env = {
        ACTIONS_CACHE_SERVICE_V2: 'true',
        ACTIONS_RESULTS_URL: url,
        ACTIONS_RUNTIME_TOKEN: opts.token ?? this.token(opts),
        // github.com: on any other server (GHES) @actions/cache silently falls back to the v1 service.
        GITHUB_SERVER_URL: 'https://github.com',
        GITHUB_REPOSITORY: repository,
        GITHUB_REF: ref,
        RUNNER_TEMP: opts.runnerTemp ?? scratch,
      };
      if (opts.workspace) env.GITHUB_WORKSPACE = opts.workspace;
      return env;
    },
    async setFailures(next) {
      faults = copyFaults(next);
      await setDown(Boolean(faults.down));
    },
    setRateLimit(next) {
      limit = next;
      creations.length = 0;
    },
    async stop() {
      await setDown(true);
      await azurite.stop();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
