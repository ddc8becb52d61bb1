// A local GitHub REST API double for the reporting and purge tests (TESTING.md "GitHub REST"). Every request is
// matched against GitHub's published OpenAPI description (@octokit/openapi), its headers, parameters and JSON body are
// validated, and it is recorded; anything a real client should not have sent is a violation a test can assert on.
// Check runs, commit statuses and Actions caches are implemented with state, and every answer is validated against the
// documented response schema too. Plain JS so benchmarks and scripts could share it; github-api.d.mts types it.
/* global structuredClone */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createState, errorBody, handlers, seedCache, snapshotCheckRuns } from './github-api-handlers.mjs';
import { loadSpec, matchOperation, validateRequest, validateResponse } from './github-api-spec.mjs';

// Which GITHUB_TOKEN permission each implemented operation needs (docs.github.com "Permissions required for GitHub
// Apps"); GitHub answers a token without it with 403 "Resource not accessible by integration".
const PERMISSION = {
  'checks/create': ['checks', 'write'],
  'checks/update': ['checks', 'write'],
  'checks/get': ['checks', 'read'],
  'checks/list-annotations': ['checks', 'read'],
  'checks/list-for-ref': ['checks', 'read'],
  'repos/create-commit-status': ['statuses', 'write'],
  'repos/list-commit-statuses-for-ref': ['statuses', 'read'],
  'actions/get-actions-cache-list': ['actions', 'read'],
  'actions/delete-actions-cache-by-id': ['actions', 'write'],
  'actions/delete-actions-cache-by-key': ['actions', 'write'],
};
const LEVEL = { none: 0, read: 1, write: 2 };
// "Requests without the X-GitHub-Api-Version header will default to use the 2022-11-28 version"; an unsupported
// version is a 400.
const API_VERSIONS = ['2022-11-28'];
// Media types GitHub serves JSON for: its own (with optional version/preview/format parts), plain JSON, anything.
const ACCEPT_OK = /(^|,)\s*(application\/vnd\.github(\.[\w.-]+)?(\+json)?|application\/json|\*\/\*)\s*(;|,|$)/i;
const MAX_BODY = 25 * 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new Error('request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * @param {import('./github-api.d.mts').GitHubApiOptions} opts
 * @returns {Promise<import('./github-api.d.mts').GitHubApi>}
 */
export async function startGitHubApi(opts) {
  if (!opts?.token) throw new Error('startGitHubApi needs the token clients must present');
  const [owner, repoName, extra] = String(opts.repo ?? '').split('/');
  if (!owner || !repoName || extra !== undefined) throw new Error(`repo must be owner/name, got ${opts.repo}`);
  const token = opts.token;
  const spec = loadSpec();
  const validateResponses = opts.validateResponses !== false;
  const apiVersions = opts.apiVersions ?? API_VERSIONS;
  const defaults = { checks: 'write', statuses: 'write', actions: 'write' };
  let permissions = { ...defaults, ...opts.permissions };
  let state = createState();
  let records = [];
  let faults = [];
  let seq = 0;
  const freshRate = () => ({
    // GITHUB_TOKEN: 1,000 requests per hour per repository.
    limit: opts.rateLimit?.limit ?? 1000,
    remaining: opts.rateLimit?.remaining ?? opts.rateLimit?.limit ?? 1000,
    reset: Math.floor(Date.now() / 1000) + 3600,
  });
  let rate = freshRate();

  // The token may only ever be seen by the Authorization check: everything recorded is scrubbed of it.
  const scrub = (v) => {
    if (typeof v === 'string') return v.split(token).join('***');
    if (Array.isArray(v)) return v.map(scrub);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x)]));
    return v;
  };

  async function handle(req, res) {
    const rawBody = await readBody(req);
    const url = new URL(req.url, base);
    const method = String(req.method).toUpperCase();
    const record = { seq: ++seq, method, path: url.pathname + url.search, operationId: null, params: {}, query: {} };
    record.body = undefined;
    record.status = 0;
    record.valid = true;
    record.errors = [];
    const violations = [];
    const note = (kind, message) => violations.push({ kind, message });
    const text = rawBody.toString('utf8');

    if (text.includes(token)) note('token-leak', 'the token appears in the request body');
    if (req.url.includes(token)) note('token-leak', 'the token appears in the URL');
    for (const [name, value] of Object.entries(req.headers)) {
      if (name !== 'authorization' && String(value).includes(token)) {
        note('token-leak', `the token appears in the ${name} header`);
      }
    }
    let body;
    let parseError = false;
    if (rawBody.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        parseError = true;
      }
    }
    record.body = parseError ? text : body;

    const match = matchOperation(spec, method, url.pathname);
    const op = match?.op;
    const ctxBase = { docsUrl: op?.docsUrl ?? 'https://docs.github.com/rest' };
    let authenticated = false;

    const finish = (status) => {
      record.status = status;
      record.errors = violations.map((v) => `${v.kind}: ${v.message}`);
      record.violations = violations;
      record.valid = violations.length === 0;
      Object.assign(record, scrub({ ...record }));
    };
    const reply = (status, payload, headers = {}, { skipResponseCheck = false } = {}) => {
      if (authenticated) rate.remaining = Math.max(0, rate.remaining - 1);
      const out = {
        'x-github-request-id': randomUUID().toUpperCase(),
        'x-github-api-version-selected': apiVersions[0],
        'x-github-media-type': 'github.v3; format=json',
        'x-ratelimit-limit': String(authenticated ? rate.limit : 60),
        'x-ratelimit-remaining': String(authenticated ? rate.remaining : 59),
        'x-ratelimit-reset': String(rate.reset),
        'x-ratelimit-used': String(authenticated ? rate.limit - rate.remaining : 1),
        'x-ratelimit-resource': 'core',
        ...headers,
      };
      if (op && validateResponses && !skipResponseCheck) {
        for (const e of validateResponse(spec, op, status, payload)) note('response-schema', e);
      }
      finish(status);
      if (payload === undefined) {
        res.writeHead(status, out).end();
      } else {
        res
          .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...out })
          .end(JSON.stringify(payload));
      }
    };
    records.push(record);

    if (!op) {
      note('unknown-route', `${method} ${url.pathname} is not an operation of GitHub's REST API description`);
      return reply(404, errorBody(ctxBase, 404, 'Not Found'));
    }
    record.operationId = op.operationId;

    // Headers: every problem is noted before any of them ends the request.
    const accept = req.headers.accept;
    if (!accept) note('header', 'no Accept header (GitHub recommends application/vnd.github+json)');
    else if (!ACCEPT_OK.test(accept)) note('header', `Accept ${accept} is not a media type GitHub serves as JSON`);
    if (rawBody.length > 0 && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      note('header', `body sent as ${req.headers['content-type'] ?? 'no Content-Type'}, not application/json`);
    }

    // GitHub rejects a request without User-Agent outright.
    if (!req.headers['user-agent']) {
      note('header', 'no User-Agent header');
      return reply(
        403,
        errorBody(
          ctxBase,
          403,
          'Request forbidden by administrative rules. Please make sure your request has a User-Agent header.',
        ),
      );
    }
    const version = req.headers['x-github-api-version'];
    if (version !== undefined && !apiVersions.includes(version)) {
      note('header', `unsupported X-GitHub-Api-Version ${version}`);
      return reply(400, errorBody(ctxBase, 400, `API version '${version}' is not supported.`));
    }

    const auth = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!req.headers.authorization) {
      note('auth', 'no Authorization header');
      return reply(401, errorBody(ctxBase, 401, 'Requires authentication'));
    }
    if (!auth || auth[1] !== token) {
      note('auth', 'the Authorization header does not carry the expected token');
      return reply(401, errorBody(ctxBase, 401, 'Bad credentials'));
    }
    authenticated = true;

    if (parseError) {
      note('schema', 'the body is not valid JSON');
      return reply(400, errorBody(ctxBase, 400, 'Problems parsing JSON'));
    }
    const checked = validateRequest(spec, op, { pathParams: match.pathParams, query: queryObject(url), body, rawBody });
    for (const p of checked.problems) note(p.kind, p.message);
    record.params = checked.params;
    record.query = checked.query;

    const p = checked.params;
    if ('owner' in p && 'repo' in p && `${p.owner}/${p.repo}`.toLowerCase() !== opts.repo.toLowerCase()) {
      // A GITHUB_TOKEN sees only its own repository; for any other GitHub answers 404 to hide its existence.
      note('wrong-repository', `${p.owner}/${p.repo} is not ${opts.repo}`);
      return reply(404, errorBody(ctxBase, 404, 'Not Found'));
    }
    if (rate.remaining <= 0) {
      return reply(403, errorBody(ctxBase, 403, 'API rate limit exceeded for installation ID 1.'), {
        'x-ratelimit-remaining': '0',
      });
    }

    const fault = faults.find(
      (f) => f.times > 0 && (!f.method || f.method === method) && (!f.operationId || f.operationId === op.operationId),
    );
    if (fault) {
      fault.times -= 1;
      record.injected = fault.status;
      if (fault.delayMs) await sleep(fault.delayMs);
      if (fault.status === 'reset') {
        finish(0);
        req.socket.destroy();
        return;
      }
      if (fault.status !== 'delay') return replyFault(fault, reply, ctxBase);
    }

    const need = PERMISSION[op.operationId];
    if (need && LEVEL[permissions[need[0]] ?? 'none'] < LEVEL[need[1]]) {
      return reply(403, errorBody(ctxBase, 403, 'Resource not accessible by integration'), {
        'x-accepted-github-permissions': `${need[0]}=${need[1]}`,
      });
    }
    const blocking = checked.problems.find((x) => x.status);
    if (blocking?.status === 404) return reply(404, errorBody(ctxBase, 404, 'Not Found'));
    if (blocking) {
      const lines = checked.problems.filter((x) => x.status === 422).map((x) => x.message);
      return reply(422, errorBody(ctxBase, 422, `Invalid request.\n\n${lines.join('\n')}`));
    }

    const handler = handlers[op.operationId];
    if (!handler) {
      note('unimplemented', `${op.operationId} is valid but the double does not implement it`);
      const msg = `${op.operationId} is not implemented by the GitHub API test double`;
      return reply(501, errorBody(ctxBase, 501, msg), {}, { skipResponseCheck: true });
    }
    const ctx = { ...ctxBase, state, params: p, query: checked.query, body, url, base, repo: `${owner}/${repoName}` };
    const result = handler(ctx);
    if (result.violation) note('semantic', result.violation);
    for (const s of result.soft ?? []) note('semantic', s);
    return reply(result.status, result.body, result.headers);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      // A bug in the double must show up as a violation of the test that hit it, not hang it.
      const message = String(err?.stack ?? err);
      const entry = { seq: ++seq, method: req.method, path: req.url, operationId: null, status: 500, valid: false };
      records.push(
        scrub({ ...entry, errors: [`double-error: ${message}`], violations: [{ kind: 'double-error', message }] }),
      );
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'Server Error' }));
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;

  return {
    url: base,
    get specStats() {
      return { ...spec.stats };
    },
    requests: () => structuredClone(records),
    violations: () =>
      records.flatMap((r) =>
        (r.violations ?? []).map((v) => ({
          seq: r.seq,
          method: r.method,
          path: r.path,
          operationId: r.operationId,
          ...v,
        })),
      ),
    checkRuns: () => snapshotCheckRuns(state),
    statuses: () => structuredClone(state.statuses),
    caches: () => structuredClone([...state.caches.values()]),
    addCache: (entry) => seedCache(state, entry),
    setPermissions(p) {
      permissions = { ...permissions, ...p };
    },
    injectFault(f) {
      faults.push({ times: 1, ...f });
    },
    clearRecords() {
      records = [];
    },
    reset() {
      records = [];
      faults = [];
      state = createState();
      rate = freshRate();
      permissions = { ...defaults, ...opts.permissions };
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function queryObject(url) {
  // Repeated keys become arrays (GitHub's form-style array parameters); single keys stay strings.
  const out = {};
  for (const [k, v] of url.searchParams) {
    if (k in out) out[k] = [].concat(out[k], v);
    else out[k] = v;
  }
  return out;
}

function replyFault(fault, reply, ctx) {
  const headers = {};
  if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
  const limited = fault.status === 429 || (fault.status === 403 && fault.retryAfter !== undefined);
  const message =
    fault.message ??
    (limited
      ? 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'
      : 'Server Error');
  const body = limited
    ? {
        message,
        documentation_url:
          'https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits',
        status: String(fault.status),
      }
    : errorBody(ctx, fault.status, message);
  return reply(fault.status, body, headers);
}
