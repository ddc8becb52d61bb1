// Stateful behaviour of the GitHub REST test double (github-api.mjs): check runs, commit statuses and Actions caches,
// with GitHub's semantics where flake-ci depends on them (annotations appended by PATCH, conclusion implying
// `completed`, cache keys listed by prefix but deleted by exact key). Every body built here is checked against the
// published response schema by the caller, so the shapes cannot drift from GitHub's unnoticed.
/* global structuredClone */
import { createHash } from 'node:crypto';
import { URLSearchParams } from 'node:url';

/** GitHub's timestamps have no milliseconds ("2018-05-04T01:14:52Z"). */
export const iso = (d = new Date()) => new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');
const nodeId = (kind, id) => Buffer.from(`${kind}:${id}`).toString('base64');
const isSha = (s) => /^[0-9a-f]{40}$/.test(String(s));

function simpleUser(login, id, type, htmlUrl, avatarUrl) {
  // GitHub percent-encodes the login in URLs ("github-actions%5Bbot%5D"): `[` and `]` are not allowed in a URI path.
  const api = `https://api.github.com/users/${encodeURIComponent(login)}`;
  return {
    login,
    id,
    node_id: nodeId(type, id),
    avatar_url: avatarUrl ?? `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: '',
    url: api,
    html_url: htmlUrl ?? `https://github.com/${login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type,
    site_admin: false,
  };
}

// What a GITHUB_TOKEN acts as: check runs belong to the GitHub Actions app, statuses to its bot user.
const ACTIONS_AVATAR = 'https://avatars.githubusercontent.com/in/15368?v=4';
const BOT = simpleUser(
  'github-actions[bot]',
  41898282,
  'Bot',
  'https://github.com/apps/github-actions',
  ACTIONS_AVATAR,
);
const ACTIONS_APP = {
  id: 15368,
  slug: 'github-actions',
  node_id: 'MDM6QXBwMTUzNjg=',
  owner: simpleUser('github', 9919, 'Organization'),
  name: 'GitHub Actions',
  description: 'Automate your workflow from idea to production',
  external_url: 'https://help.github.com/en/actions',
  html_url: 'https://github.com/apps/github-actions',
  created_at: '2018-07-30T09:30:17Z',
  updated_at: '2019-12-10T19:04:12Z',
  permissions: { actions: 'write', checks: 'write', contents: 'write', metadata: 'read', statuses: 'write' },
  events: ['check_run', 'check_suite', 'push', 'pull_request', 'workflow_dispatch'],
};

export function createState() {
  return { nextId: 1, checkRuns: new Map(), suites: new Map(), statuses: [], caches: new Map() };
}

/** GitHub's error bodies: `status` is a string in them, and documentation_url points at the operation. */
export const errorBody = (ctx, status, message, extra = {}) => ({
  message,
  documentation_url: ctx.docsUrl,
  ...extra,
  status: String(status),
});
const fail = (ctx, status, message, extra) => ({ status, body: errorBody(ctx, status, message, extra) });
// A 422 the caller could have avoided by following the documentation: also recorded as a violation.
const misuse = (ctx, message, extra) => ({ ...fail(ctx, 422, message, extra), violation: message });
const invalid = (ctx, line) => misuse(ctx, `Invalid request.\n\n${line}`);
const notFound = (ctx) => fail(ctx, 404, 'Not Found');

/** per_page (default 30, GitHub caps it at 100) and page, with a Link header built from the request's own query. */
function paginate(ctx, items) {
  const perPage = Math.min(Math.max(ctx.query.per_page ?? 30, 1), 100);
  const page = Math.max(ctx.query.page ?? 1, 1);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const link = (n) => {
    const qs = new URLSearchParams(ctx.url.searchParams);
    qs.set('per_page', String(perPage));
    qs.set('page', String(n));
    return `<${ctx.base}${ctx.url.pathname}?${qs}>`;
  };
  const rels = [];
  if (page > 1) rels.push(`${link(page - 1)}; rel="prev"`);
  if (page < last) rels.push(`${link(page + 1)}; rel="next"`, `${link(last)}; rel="last"`);
  if (page > 1) rels.push(`${link(1)}; rel="first"`);
  return {
    slice: items.slice((page - 1) * perPage, page * perPage),
    headers: rels.length > 0 ? { link: rels.join(', ') } : {},
  };
}

function checkRunJson(ctx, run) {
  const url = `${ctx.base}/repos/${ctx.repo}/check-runs/${run.id}`;
  return {
    id: run.id,
    head_sha: run.head_sha,
    node_id: nodeId('CheckRun', run.id),
    external_id: run.external_id ?? '',
    url,
    html_url: `https://github.com/${ctx.repo}/runs/${run.id}`,
    details_url: run.details_url ?? ACTIONS_APP.external_url,
    status: run.status,
    conclusion: run.conclusion,
    started_at: run.started_at,
    completed_at: run.completed_at,
    output: {
      title: run.output.title ?? null,
      summary: run.output.summary ?? null,
      text: run.output.text ?? null,
      annotations_count: run.annotations.length,
      annotations_url: `${url}/annotations`,
    },
    name: run.name,
    check_suite: { id: run.suiteId },
    app: ACTIONS_APP,
    pull_requests: [],
  };
}

/** Documented rules the schema cannot express. Returns a 422 answer, or null plus soft violations. */
function checkRunRules(ctx, body, soft) {
  if (body.conclusion === 'stale') return invalid(ctx, 'conclusion "stale" can only be set by GitHub.');
  if ((body.status === 'completed' || body.completed_at) && !body.conclusion) {
    return invalid(ctx, '"conclusion" is required when status is completed or completed_at is given.');
  }
  for (const [i, a] of (body.output?.annotations ?? []).entries()) {
    if (a.title !== undefined && a.title.length > 255) {
      return invalid(ctx, `Only 255 characters are allowed; ${a.title.length} were supplied.`);
    }
    for (const f of ['message', 'raw_details']) {
      const size = a[f] === undefined ? 0 : Buffer.byteLength(a[f]);
      if (size > 64 * 1024) return invalid(ctx, `Only 65536 bytes are allowed in ${f}; ${size} were supplied.`);
    }
    // Documented ("omit ... if start_line and end_line have different values") but GitHub's answer to it is not,
    // so it is served and only recorded.
    if ((a.start_column !== undefined || a.end_column !== undefined) && a.start_line !== a.end_line) {
      soft.push(`annotation ${i}: start_column/end_column given for a multi-line range`);
    }
  }
  return null;
}

function applyOutput(run, output) {
  if (!output) return;
  for (const f of ['title', 'summary', 'text']) if (output[f] !== undefined) run.output[f] = output[f];
  for (const a of output.annotations ?? []) run.annotations.push({ ...a });
  for (const img of output.images ?? []) run.images.push({ ...img });
}

function applyStatus(run, body, now) {
  // "Providing conclusion will automatically set the status parameter to completed."
  if (body.conclusion) {
    run.conclusion = body.conclusion;
    run.status = 'completed';
    run.completed_at = body.completed_at ?? run.completed_at ?? now;
  } else if (body.status) {
    run.status = body.status;
  }
  if (body.started_at) run.started_at = body.started_at;
}

const findRun = (ctx) => ctx.state.checkRuns.get(ctx.params.check_run_id);

export const handlers = {
  'checks/create'(ctx) {
    const b = ctx.body;
    if (!isSha(b.head_sha)) return misuse(ctx, `No commit found for SHA: ${b.head_sha}`);
    const soft = [];
    const refused = checkRunRules(ctx, b, soft);
    if (refused) return refused;
    const now = iso();
    if (!ctx.state.suites.has(b.head_sha)) ctx.state.suites.set(b.head_sha, ctx.state.nextId++);
    const run = {
      id: ctx.state.nextId++,
      name: b.name,
      head_sha: b.head_sha,
      external_id: b.external_id,
      details_url: b.details_url,
      status: b.status ?? 'queued',
      conclusion: null,
      started_at: b.started_at ?? now,
      completed_at: null,
      output: {},
      annotations: [],
      images: [],
      actions: b.actions ?? [],
      suiteId: ctx.state.suites.get(b.head_sha),
      requests: 1,
    };
    applyStatus(run, b, now);
    applyOutput(run, b.output);
    ctx.state.checkRuns.set(run.id, run);
    return { status: 201, body: checkRunJson(ctx, run), soft };
  },

  'checks/update'(ctx) {
    const run = findRun(ctx);
    if (!run) return notFound(ctx);
    const soft = [];
    const refused = checkRunRules(ctx, ctx.body, soft);
    if (refused) return refused;
    for (const f of ['name', 'details_url', 'external_id']) if (ctx.body[f] !== undefined) run[f] = ctx.body[f];
    if (ctx.body.actions) run.actions = ctx.body.actions;
    applyStatus(run, ctx.body, iso());
    // "Each time you update the check run, annotations are appended to the list of annotations that already exist."
    applyOutput(run, ctx.body.output);
    run.requests += 1;
    return { status: 200, body: checkRunJson(ctx, run), soft };
  },

  'checks/get'(ctx) {
    const run = findRun(ctx);
    return run ? { status: 200, body: checkRunJson(ctx, run) } : notFound(ctx);
  },

  'checks/list-annotations'(ctx) {
    const run = findRun(ctx);
    if (!run) return notFound(ctx);
    const all = run.annotations.map((a) => ({
      path: a.path,
      start_line: a.start_line,
      end_line: a.end_line,
      start_column: a.start_column ?? null,
      end_column: a.end_column ?? null,
      annotation_level: a.annotation_level,
      title: a.title ?? null,
      message: a.message,
      raw_details: a.raw_details ?? null,
      blob_href: `https://github.com/${ctx.repo}/blob/${run.head_sha}/${a.path}`,
    }));
    const { slice, headers } = paginate(ctx, all);
    return { status: 200, body: slice, headers };
  },

  'checks/list-for-ref'(ctx) {
    let runs = [...ctx.state.checkRuns.values()].filter((r) => r.head_sha === ctx.params.ref);
    if (ctx.query.check_name) runs = runs.filter((r) => r.name === ctx.query.check_name);
    if (ctx.query.status) runs = runs.filter((r) => r.status === ctx.query.status);
    // filter=latest (the default) keeps the newest run of each name, as a re-run replaces the old one in the UI.
    if ((ctx.query.filter ?? 'latest') === 'latest') {
      const newest = new Map();
      for (const r of runs) if (!newest.has(r.name) || newest.get(r.name).id < r.id) newest.set(r.name, r);
      runs = [...newest.values()];
    }
    runs.sort((a, b) => b.id - a.id);
    const { slice, headers } = paginate(ctx, runs);
    return {
      status: 200,
      body: { total_count: runs.length, check_runs: slice.map((r) => checkRunJson(ctx, r)) },
      headers,
    };
  },

  'repos/create-commit-status'(ctx) {
    const { sha } = ctx.params;
    const b = ctx.body;
    if (!isSha(sha)) return misuse(ctx, `No commit found for SHA: ${sha}`);
    const context = b.context ?? 'default';
    const validation = (message) =>
      misuse(ctx, 'Validation Failed', {
        errors: [{ resource: 'Status', code: 'custom', field: 'description', message }],
      });
    if (typeof b.description === 'string' && b.description.length > 140) {
      return validation('description is too long (maximum is 140 characters)');
    }
    const same = ctx.state.statuses.filter((s) => s.sha === sha && s.context.toLowerCase() === context.toLowerCase());
    if (same.length >= 1000) return validation('This SHA and context has reached the maximum number of statuses.');
    const now = iso();
    const status = {
      sha,
      id: ctx.state.nextId++,
      state: b.state,
      description: b.description ?? null,
      target_url: b.target_url ?? null,
      context,
      created_at: now,
      updated_at: now,
    };
    ctx.state.statuses.push(status);
    const url = `${ctx.base}/repos/${ctx.repo}/statuses/${sha}`;
    return { status: 201, body: statusJson(ctx, status), headers: { location: url } };
  },

  'repos/list-commit-statuses-for-ref'(ctx) {
    const list = ctx.state.statuses.filter((s) => s.sha === ctx.params.ref).reverse();
    const { slice, headers } = paginate(ctx, list);
    return { status: 200, body: slice.map((s) => statusJson(ctx, s)), headers };
  },

  'actions/get-actions-cache-list'(ctx) {
    let list = [...ctx.state.caches.values()];
    // `key` is "an explicit key or prefix"; `ref` is a full ref (refs/heads/<branch>, refs/pull/<n>/merge).
    if (ctx.query.key !== undefined) list = list.filter((c) => c.key.startsWith(ctx.query.key));
    if (ctx.query.ref !== undefined) list = list.filter((c) => c.ref === ctx.query.ref);
    const sort = ctx.query.sort ?? 'last_accessed_at';
    const dir = (ctx.query.direction ?? 'desc') === 'desc' ? -1 : 1;
    const keyOf = (c) => (sort === 'size_in_bytes' ? c.size_in_bytes : Date.parse(c[sort]));
    list.sort((a, b) => dir * (keyOf(a) - keyOf(b)) || dir * (a.id - b.id));
    const { slice, headers } = paginate(ctx, list);
    return { status: 200, body: { total_count: list.length, actions_caches: slice.map(cacheJson) }, headers };
  },

  'actions/delete-actions-cache-by-id'(ctx) {
    return ctx.state.caches.delete(ctx.params.cache_id) ? { status: 204 } : notFound(ctx);
  },

  'actions/delete-actions-cache-by-key'(ctx) {
    // Unlike listing, deletion takes the complete key: a prefix deletes nothing.
    const gone = [...ctx.state.caches.values()].filter(
      (c) => c.key === ctx.query.key && (ctx.query.ref === undefined || c.ref === ctx.query.ref),
    );
    if (gone.length === 0) return notFound(ctx);
    for (const c of gone) ctx.state.caches.delete(c.id);
    return { status: 200, body: { total_count: gone.length, actions_caches: gone.map(cacheJson) } };
  },
};

function statusJson(ctx, s) {
  return {
    url: `${ctx.base}/repos/${ctx.repo}/statuses/${s.sha}`,
    avatar_url: ACTIONS_AVATAR,
    id: s.id,
    node_id: nodeId('StatusContext', s.id),
    state: s.state,
    description: s.description,
    target_url: s.target_url,
    context: s.context,
    created_at: s.created_at,
    updated_at: s.updated_at,
    creator: BOT,
  };
}

const cacheJson = (c) => ({ ...c });

/** A cache entry as the Actions cache service would have stored it; `version` is a hash, as GitHub's is. */
export function seedCache(state, { key, ref = 'refs/heads/main', size = 1024, created_at, last_accessed_at, version }) {
  const created = iso(created_at ?? new Date());
  const entry = {
    id: state.nextId++,
    ref,
    key,
    version: version ?? createHash('sha256').update(`${key}\0${ref}`).digest('hex'),
    last_accessed_at: iso(last_accessed_at ?? created),
    created_at: created,
    size_in_bytes: size,
  };
  state.caches.set(entry.id, entry);
  return { ...entry };
}

/** The state as tests read it: plain copies, so a test cannot change the double by accident. */
export function snapshotCheckRuns(state) {
  return [...state.checkRuns.values()].map((r) => structuredClone(r));
}
