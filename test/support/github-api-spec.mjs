// GitHub's published OpenAPI description (npm @octokit/openapi) turned into request/response checks for the GitHub
// REST test double (github-api.mjs). Loaded once per module instance (so once per Jest test file) and compiled
// lazily per operation, because the description holds ~1,100 operations and a test touches a handful.
//
// Why api.github.com.json and not the .deref.json variant: the referenced form is 13 MB instead of 73 MB (five times
// less to parse and hold), Ajv resolves its `$ref`s natively once the whole description is registered as one schema
// document, and recursive schemas stay finite. Operation schemas are compiled as JSON-pointer references into that
// document, so a `$ref: '#/components/...'` inside them resolves against the description's root as it should.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const require = createRequire(import.meta.url);
export const SPEC_FILE = require.resolve('@octokit/openapi/generated/api.github.com.json');
const DOC_ID = 'github-openapi';
const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'];

/**
 * OpenAPI 3.0 -> JSON Schema. `nullable: true` becomes `anyOf: [null, schema]` rather than Ajv's own `nullable`
 * support, because the description has 135 nullable schemas without `type` (Ajv refuses those) and 71 nullable
 * enums without `null` among their values (Ajv would reject the null that GitHub really sends).
 * `example`/`examples` are dropped: they are data, and may themselves contain `nullable` keys.
 */
function toJsonSchema(node) {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples') continue;
    out[key] = toJsonSchema(value);
  }
  if (out.nullable === true) {
    delete out.nullable;
    return { anyOf: [{ type: 'null' }, out] };
  }
  delete out.nullable;
  return out;
}

/** A JSON pointer into the registered description, URI-encoded because path templates contain `{` and `}`. */
const pointer = (segments) =>
  `${DOC_ID}#${segments.map((s) => `/${encodeURIComponent(String(s).replace(/~/g, '~0').replace(/\//g, '~1'))}`).join('')}`;

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let loaded;

/** The parsed, indexed description with its Ajv instance; the first call pays for parsing (~0.4 s here). */
export function loadSpec() {
  if (loaded) return loaded;
  const t0 = performance.now();
  const raw = JSON.parse(readFileSync(SPEC_FILE, 'utf8'));
  const t1 = performance.now();
  // OpenAPI 3.1 schemas are JSON Schema 2020-12 (type arrays instead of `nullable`); 3.0 needs the translation.
  // The published description is 3.0.3 today; the 3.1 path keeps the double working if that changes.
  const is31 = /^3\.1\./.test(raw.openapi);
  const convert = is31 ? (x) => x : toJsonSchema;
  const doc = { $id: DOC_ID, components: convert(raw.components), paths: convert(raw.paths) };
  // strict: false because OpenAPI adds keywords JSON Schema lacks (discriminator, readOnly use, x-*);
  // allErrors so one 422 can list every problem, as GitHub's "Invalid request" does; verbose so an error carries the
  // offending value, which GitHub's messages quote ("143 were supplied"); validateSchema: false because the registered
  // document is a whole OpenAPI description, not a schema, and meta-validating 13 MB would only cost time.
  const ajv = new (is31 ? Ajv2020 : Ajv)({ strict: false, allErrors: true, verbose: true, validateSchema: false });
  addFormats(ajv);
  // Formats GitHub uses that no standard defines: `timestamp` (epoch seconds in a rate-limit header) and
  // `repo.nwo` (owner/name). Accepting them keeps Ajv from failing compilation over an unknown format.
  ajv.addFormat('timestamp', true);
  ajv.addFormat('repo.nwo', true);
  ajv.addSchema(doc);
  const operations = [];
  for (const [template, item] of Object.entries(raw.paths)) {
    for (const method of METHODS) {
      if (item[method]) operations.push(indexOperation(raw, doc, template, method, item));
    }
  }
  const t2 = performance.now();
  loaded = {
    raw,
    doc,
    ajv,
    operations,
    stats: {
      file: SPEC_FILE,
      openapi: raw.openapi,
      parseMs: t1 - t0,
      prepareMs: t2 - t1,
      compileMs: 0,
      compiledValidators: 0,
    },
  };
  return loaded;
}

function resolveLocal(raw, obj) {
  // Parameters and responses may be `$ref`s into components; return the target and its pointer segments.
  if (obj && obj.$ref) {
    const segments = obj.$ref.replace(/^#\//, '').split('/');
    return { value: segments.reduce((o, s) => o?.[s], raw), segments };
  }
  return { value: obj, segments: null };
}

function indexOperation(raw, doc, template, method, item) {
  const op = item[method];
  const base = ['paths', template, method];
  const params = [];
  const declared = [
    ...(item.parameters ?? []).map((p, i) => [p, ['paths', template, 'parameters', i]]),
    ...(op.parameters ?? []).map((p, i) => [p, [...base, 'parameters', i]]),
  ];
  for (const [p, at] of declared) {
    const { value, segments } = resolveLocal(raw, p);
    const where = segments ?? at;
    const schemaNode = where.reduce((o, s) => o?.[s], doc)?.schema;
    params.push({ ...value, schemaPointer: [...where, 'schema'], schemaNode });
  }
  let pattern = '';
  let literal = 0;
  for (const part of template.split(/(\{[^}]+\})/)) {
    const m = /^\{(.+)\}$/.exec(part);
    if (!m) {
      pattern += escapeRegExp(part);
      literal += part.length;
      continue;
    }
    const p = params.find((x) => x.in === 'path' && x.name === m[1]);
    // `x-multi-segment` marks parameters that may contain slashes (a ref like heads/main, a file path).
    pattern += p?.['x-multi-segment'] ? `(?<${safeGroup(m[1])}>.+)` : `(?<${safeGroup(m[1])}>[^/]+)`;
  }
  const bodyContent = op.requestBody?.content ?? null;
  return {
    method: method.toUpperCase(),
    template,
    operationId: op.operationId,
    docsUrl: op.externalDocs?.url ?? 'https://docs.github.com/rest',
    regex: new RegExp(`^${pattern}$`),
    literal,
    params,
    body: bodyContent
      ? {
          required: op.requestBody.required === true,
          json: Boolean(bodyContent['application/json']),
          pointer: [...base, 'requestBody', 'content', 'application/json', 'schema'],
        }
      : null,
    responses: op.responses ?? {},
    responsesPointer: [...base, 'responses'],
    validators: new Map(),
  };
}

// Named groups allow only identifier characters; map the parameter name and keep the original for lookups.
const safeGroup = (name) => `p_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;

/** The operation for a method and path, preferring the template with the most literal text (`caches/usage` over `caches/{cache_id}`). */
export function matchOperation(spec, method, pathname) {
  let best = null;
  for (const op of spec.operations) {
    if (op.method !== method) continue;
    const m = op.regex.exec(pathname);
    if (!m || (best && best.op.literal >= op.literal)) continue;
    const pathParams = {};
    for (const p of op.params) {
      if (p.in === 'path') pathParams[p.name] = m.groups?.[safeGroup(p.name)];
    }
    best = { op, pathParams };
  }
  return best;
}

function validatorFor(spec, op, key, segments) {
  if (op.validators.has(key)) return op.validators.get(key);
  const t0 = performance.now();
  const validate = spec.ajv.compile({ $ref: pointer(segments) });
  spec.stats.compileMs += performance.now() - t0;
  spec.stats.compiledValidators += 1;
  op.validators.set(key, validate);
  return validate;
}

/** Strings from a URL to the parameter's declared type, as GitHub's router does before validating. */
function coerce(value, schema) {
  const s = schema?.anyOf ? schema.anyOf.find((b) => b.type !== 'null') : schema;
  const type = Array.isArray(s?.type) ? s.type.find((t) => t !== 'null') : s?.type;
  if (type === 'array') {
    const list = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','));
    return list.map((v) => coerce(v, s.items));
  }
  if (Array.isArray(value)) value = value[value.length - 1];
  if ((type === 'integer' && /^-?\d+$/.test(value)) || (type === 'number' && value !== '' && !isNaN(Number(value)))) {
    return Number(value);
  }
  if (type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

/**
 * Checks path parameters, query parameters and the JSON body of a request against the operation.
 * Returns coerced params and problems as `{ kind, message, status }` (status: what GitHub answers for it).
 */
export function validateRequest(spec, op, { pathParams, query, body, rawBody }) {
  const problems = [];
  const params = {};
  for (const p of op.params.filter((x) => x.in === 'path')) {
    let value = pathParams[p.name];
    try {
      value = decodeURIComponent(value);
    } catch {
      problems.push({ kind: 'schema', status: 404, message: `path parameter ${p.name}: bad percent-encoding` });
    }
    params[p.name] = coerce(value, p.schemaNode);
    const validate = validatorFor(spec, op, `path:${p.name}`, p.schemaPointer);
    if (!validate(params[p.name])) {
      // GitHub's router does not match `check-runs/abc`: a malformed path parameter is a 404, not a 422.
      problems.push({ kind: 'schema', status: 404, message: `path parameter ${p.name}: ${ajvText(validate.errors)}` });
    }
  }
  const queryOut = {};
  const declaredQuery = op.params.filter((x) => x.in === 'query');
  for (const name of Object.keys(query)) {
    if (!declaredQuery.some((p) => p.name === name)) {
      // GitHub ignores unknown query parameters; a client sending one has a typo or the wrong endpoint.
      problems.push({ kind: 'unknown-parameter', status: null, message: `query parameter ${name} is not defined` });
    }
  }
  for (const p of declaredQuery) {
    if (!(p.name in query)) {
      if (p.required) problems.push({ kind: 'schema', status: 422, message: `"${p.name}" wasn't supplied.` });
      continue;
    }
    queryOut[p.name] = coerce(query[p.name], p.schemaNode);
    const validate = validatorFor(spec, op, `query:${p.name}`, p.schemaPointer);
    if (!validate(queryOut[p.name])) {
      problems.push({ kind: 'schema', status: 422, message: githubMessages(validate.errors, p.name).join('\n') });
    }
  }
  if (op.body?.json) {
    if (rawBody.length === 0 && op.body.required) {
      problems.push({ kind: 'schema', status: 422, message: 'the request body is required' });
    }
    const validate = validatorFor(spec, op, 'body', op.body.pointer);
    const value = body === undefined ? {} : body;
    if (!validate(value)) {
      problems.push({ kind: 'schema', status: 422, message: githubMessages(validate.errors).join('\n') });
    }
    const schema = op.body.pointer.reduce((o, s) => o?.[s], spec.doc);
    for (const field of unknownFields(spec.doc, schema, value, '')) {
      // GitHub drops unknown fields silently, which hides misspelt ones (`summery`); a double should not.
      problems.push({ kind: 'unknown-field', status: null, message: `body field ${field} is not defined` });
    }
  } else if (op.body) {
    problems.push({ kind: 'unvalidated', status: null, message: 'the body is not JSON; the double cannot check it' });
  } else if (rawBody.length > 0) {
    problems.push({ kind: 'unexpected-body', status: null, message: `${op.operationId} takes no request body` });
  }
  return { params, query: queryOut, problems };
}

function deref(doc, schema) {
  let s = schema;
  for (let i = 0; s?.$ref && i < 32; i++)
    s = s.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce((o, k) => o?.[k], doc);
  return s;
}

/** Paths of body fields that no branch of the schema declares (objects with additionalProperties are open). */
function unknownFields(doc, schema, value, path) {
  const s = deref(doc, schema);
  if (!s || value === null || typeof value !== 'object') return [];
  const branches = [s, ...(s.allOf ?? []), ...(s.anyOf ?? []), ...(s.oneOf ?? [])].map((b) => deref(doc, b));
  if (Array.isArray(value)) {
    const items = branches.find((b) => b?.items)?.items;
    return items ? value.flatMap((v, i) => unknownFields(doc, items, v, `${path}[${i}]`)) : [];
  }
  const props = new Map();
  for (const b of branches)
    for (const [k, v] of Object.entries(b?.properties ?? {})) if (!props.has(k)) props.set(k, v);
  const open = (s.additionalProperties !== undefined && s.additionalProperties !== false) || props.size === 0;
  const out = [];
  for (const [k, v] of Object.entries(value)) {
    const at = path ? `${path}.${k}` : k;
    if (props.has(k)) out.push(...unknownFields(doc, props.get(k), v, at));
    else if (!open) out.push(at);
  }
  return out;
}

/**
 * Ajv errors in GitHub's words. The two limits tests rely on use the text GitHub really returns ("No more than 50
 * items are allowed; 143 were supplied.", "Only 65535 characters are allowed; 115770 were supplied."); the rest
 * follow the same "For 'properties/x', ..." pattern but are approximations.
 */
export function githubMessages(errors, field) {
  const relevant = (errors ?? []).filter(
    // The null branch of a nullable wrapper and the anyOf summary only repeat what the real branch says.
    (e) => !(e.keyword === 'type' && e.params.type === 'null') && e.keyword !== 'anyOf',
  );
  const missing = new Map();
  const lines = [];
  for (const e of relevant) {
    const where = field ?? (e.instancePath.split('/').filter(Boolean).pop() || 'body');
    if (e.keyword === 'required') {
      const list = missing.get(e.instancePath) ?? [];
      list.push(e.params.missingProperty);
      missing.set(e.instancePath, list);
    } else if (e.keyword === 'maxItems') {
      lines.push(`No more than ${e.params.limit} items are allowed; ${e.data?.length ?? '?'} were supplied.`);
    } else if (e.keyword === 'maxLength') {
      lines.push(`Only ${e.params.limit} characters are allowed; ${e.data?.length ?? '?'} were supplied.`);
    } else if (e.keyword === 'type') {
      const article = /^[aeiou]/.test(e.params.type) ? 'an' : 'a';
      lines.push(`For 'properties/${where}', ${JSON.stringify(e.data)} is not ${article} ${e.params.type}.`);
    } else if (e.keyword === 'enum') {
      lines.push(
        `For 'properties/${where}', ${JSON.stringify(e.data)} is not a member of ${JSON.stringify(e.params.allowedValues)}.`,
      );
    } else {
      lines.push(`For 'properties/${where}', ${e.message}.`);
    }
  }
  for (const names of missing.values()) {
    const quoted = [...new Set(names)].sort().map((n) => `"${n}"`);
    lines.unshift(`${quoted.join(', ')} ${quoted.length === 1 ? "wasn't" : "weren't"} supplied.`);
  }
  return lines.length > 0 ? lines : ['the value does not match the schema'];
}

function ajvText(errors) {
  const all = errors ?? [];
  // As in githubMessages: the nullable wrapper's "must be null" and "must match a schema in anyOf" are noise when a
  // more specific error exists.
  const specific = all.filter((e) => !(e.keyword === 'type' && e.params.type === 'null') && e.keyword !== 'anyOf');
  return (specific.length > 0 ? specific : all).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

/**
 * The double's own answer checked against the operation's documented response, so a handler cannot drift from
 * GitHub's shapes unnoticed. Statuses the description does not list (GitHub's 403/422 on most operations) are
 * checked against basic-error, the shape every GitHub error body has.
 */
export function validateResponse(spec, op, status, body) {
  const key = String(status);
  let entry = op.responses[key];
  let segments = [...op.responsesPointer, key];
  if (entry?.$ref) {
    const r = resolveLocal(spec.raw, entry);
    entry = r.value;
    segments = r.segments;
  }
  if (!entry) {
    if (status >= 400) {
      const validate = validatorFor(spec, op, 'error', ['components', 'schemas', 'basic-error']);
      return validate(body) ? [] : [`error body: ${ajvText(validate.errors)}`];
    }
    return [`status ${status} is not documented for ${op.operationId}`];
  }
  if (!entry.content) return body === undefined ? [] : [`status ${status} has no body in the description`];
  if (!entry.content['application/json']) return [];
  const validate = validatorFor(spec, op, `response:${key}`, [...segments, 'content', 'application/json', 'schema']);
  return validate(body) ? [] : [`response ${status}: ${ajvText(validate.errors)}`];
}
