/**
 * The GitLab child pipeline: one job per shard, each extending our two templates (`.flake-ci-nix` from
 * install-nix.yml, then `.flake-ci-build` from build.yml) with the shard's attributes as INPUT_ATTRIBUTES and its
 * runner tags, for the parent's `trigger: include: - artifact: <file> job: <plan job>`.
 *
 * Where the child gets the templates: FLAKE_CI_CHILD_INCLUDE (build.yml's `child_include` input), one JSON object:
 *   {"project": "group/flake-ci", "ref": "v1.0.0", "dir": "/gitlab-templates"}   a project on this instance
 *   {"remote": "https://example.com/flake-ci/-/raw/v1.0.0/gitlab-templates"}      a public base URL
 *   {"local": "ci/flake-ci"}                                                      a directory of this project
 * plus optionally "inputs": {"install-nix": {...}, "build": {...}}, passed as each include's `inputs:` (e.g. the
 * install-nix inputs the shards need: substituters, extra_conf, ...). `dir` defaults to /gitlab-templates, `ref` to
 * FLAKE_CI_SUITE_REF. A path to one of the two files works too (`"file": "gitlab-templates/build.yml"` with a
 * project, or a local or remote path ending in .yml): its directory is taken, since both files are included. YAML
 * flow syntax (`{local: ci/flake-ci}`) is accepted as well. When it is empty, the project and ref come from FLAKE_CI_SUITE_URL and FLAKE_CI_SUITE_REF if
 * that URL is on this GitLab instance (CI_SERVER_HOST): GitLab can include a project only from its own instance.
 * Variables cannot be used in a child pipeline's `include:` (GitLab resolves them to empty), hence literal values.
 */
import { Document, parse } from 'yaml';
import { InputError, errorMessage } from '../../errors.js';
import type { Shard } from './pack.js';

export const TEMPLATES = ['install-nix', 'build'] as const;
export type TemplateName = (typeof TEMPLATES)[number];

export type ChildInclude = ({ project: string; ref: string; dir: string } | { remote: string } | { local: string }) & {
  inputs: Partial<Record<TemplateName, Record<string, string | number | boolean>>>;
};

export interface SuiteEnv {
  /** FLAKE_CI_CHILD_INCLUDE */
  childInclude?: string;
  /** FLAKE_CI_SUITE_URL / _REF */
  suiteUrl?: string;
  suiteRef?: string;
  /** CI_SERVER_HOST, CI_SERVER_URL */
  serverHost?: string;
  serverUrl?: string;
}

const FORMS =
  `{"project": "<group>/flake-ci", "ref": "<tag>"} (a copy on this GitLab), {"remote": "<URL of the ` +
  `gitlab-templates directory>"} or {"local": "<directory of this project holding install-nix.yml and build.yml>"}`;

function bad(why: string): InputError {
  return new InputError(`Input 'child_include' ${why}. Give one JSON object: ${FORMS}.`);
}

export function parseChildInclude(env: SuiteEnv): ChildInclude {
  const text = (env.childInclude ?? '').trim();
  if (text === '') return fromSuite(env);
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw bad(`is not valid JSON (${errorMessage(e).split('\n')[0]})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('must be a JSON object');
  const o = doc as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw bad(`has a '${k}' that is not a non-empty string`);
    return v.trim();
  };
  const known = new Set(['project', 'ref', 'dir', 'file', 'remote', 'local', 'inputs']);
  const unknown = Object.keys(o).filter((k) => !known.has(k));
  if (unknown.length > 0) throw bad(`has unknown key(s) ${unknown.join(', ')}`);
  const forms = ['project', 'remote', 'local'].filter((k) => o[k] !== undefined);
  if (forms.length !== 1) throw bad(`must have exactly one of 'project', 'remote' or 'local' (got ${forms.length})`);
  const inputs = parseInputs(o.inputs);
  const project = str('project');
  if (project !== undefined) {
    const ref = str('ref') ?? env.suiteRef?.trim();
    if (!ref) throw bad("names a project but no 'ref' (a flake-ci release tag)");
    const file = str('file');
    if (file !== undefined && o.dir !== undefined) throw bad("has both 'dir' and 'file'; give one");
    const dir = file !== undefined ? directoryOf(file) : (str('dir') ?? '/gitlab-templates');
    return { project: project.replace(/^\/+|\/+$/g, ''), ref, dir, inputs };
  }
  if (o.ref !== undefined || o.dir !== undefined || o.file !== undefined) {
    throw bad("uses 'ref', 'dir' or 'file', which go with 'project' only");
  }
  const remote = str('remote');
  if (remote !== undefined) {
    if (!/^https?:\/\//.test(remote)) throw bad(`has a 'remote' that is not an http(s) URL: ${remote}`);
    return { remote: directoryOf(remote), inputs };
  }
  return { local: directoryOf(str('local') as string), inputs };
}

/** `ci/build.yml` -> `ci` (a path to one template names their directory); a directory stays, minus its last `/`. */
function directoryOf(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  if (!/\.ya?ml$/i.test(trimmed)) return trimmed;
  const slash = trimmed.lastIndexOf('/');
  return slash === -1 ? '' : trimmed.slice(0, slash);
}

function parseInputs(v: unknown): ChildInclude['inputs'] {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad("has 'inputs' that is not an object");
  const out: ChildInclude['inputs'] = {};
  for (const [name, values] of Object.entries(v as Record<string, unknown>)) {
    if (!(TEMPLATES as readonly string[]).includes(name)) {
      throw bad(`has inputs for ${JSON.stringify(name)}; only ${TEMPLATES.join(' and ')} are included`);
    }
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
      throw bad(`has inputs.${name} that is not an object of input values`);
    }
    const clean: Record<string, string | number | boolean> = {};
    for (const [k, x] of Object.entries(values as Record<string, unknown>)) {
      if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') {
        throw bad(`has inputs.${name}.${k} that is not a string, number or boolean`);
      }
      clean[k] = x;
    }
    out[name as TemplateName] = clean;
  }
  return out;
}

/** The suite's own repository, when it lives on this instance: `https://host/group/flake-ci.git` -> group/flake-ci. */
function fromSuite(env: SuiteEnv): ChildInclude {
  const url = (env.suiteUrl ?? '').trim();
  const ref = (env.suiteRef ?? '').trim();
  const host = (env.serverHost ?? '').trim().toLowerCase();
  const parsed = parseGitUrl(url);
  if (parsed && ref !== '' && host !== '' && parsed.host.toLowerCase() === host) {
    let project = parsed.path;
    // An instance under a relative URL root (https://host/gitlab) has it in front of every project path.
    const root = env.serverUrl ? new URL(env.serverUrl).pathname.replace(/^\/+|\/+$/g, '') : '';
    if (root !== '' && project.startsWith(`${root}/`)) project = project.slice(root.length + 1);
    return { project, ref, dir: '/gitlab-templates', inputs: {} };
  }
  throw bad(
    `is empty, and the suite (suite_url ${JSON.stringify(url)}, suite_ref ${JSON.stringify(ref)}) is not a ` +
      `project on this GitLab (${host || 'CI_SERVER_HOST unset'}), which a child pipeline could include; say ` +
      `where the shard jobs get install-nix.yml and build.yml`,
  );
}

/** host and project path of `https://host[:port]/a/b.git`, `ssh://git@host[:port]/a/b.git` or `git@host:a/b.git`. */
export function parseGitUrl(url: string): { host: string; path: string } | undefined {
  const clean = (p: string) =>
    p
      .replace(/^\/+/, '')
      .replace(/\/+$/, '')
      .replace(/\.git$/, '');
  const scp = /^[^/@:]+@([^/:]+):(?!\/\/)(.+)$/.exec(url);
  if (scp) return { host: scp[1] as string, path: clean(scp[2] as string) };
  try {
    const u = new URL(url);
    if (!['https:', 'http:', 'ssh:'].includes(u.protocol) || clean(u.pathname) === '') return undefined;
    return { host: u.hostname, path: clean(decodeURIComponent(u.pathname)) };
  } catch {
    return undefined;
  }
}

function includeEntry(inc: ChildInclude, template: TemplateName): Record<string, unknown> {
  const name = `${template}.yml`;
  const under = (dir: string) => (dir.replace(/\/+$/, '') === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`);
  const entry: Record<string, unknown> =
    'project' in inc
      ? { project: inc.project, ref: inc.ref, file: under(inc.dir) }
      : 'remote' in inc
        ? { remote: under(inc.remote) }
        : { local: under(inc.local) };
  const inputs = inc.inputs[template];
  if (inputs && Object.keys(inputs).length > 0) entry.inputs = inputs;
  return entry;
}

/**
 * Inputs build.yml carries under names of its own, because install-nix.yml or cache.yml have inputs of the same name
 * with other meanings; its script hands them to the bundle as INPUT_* only for the build step.
 */
const TEMPLATE_VARIABLES: Readonly<Record<string, string>> = {
  mode: 'FLAKE_CI_BUILD_MODE',
  'github-token': 'FLAKE_CI_BUILD_GITHUB_TOKEN',
  timeout: 'FLAKE_CI_BUILD_TIMEOUT',
  strict: 'FLAKE_CI_BUILD_STRICT',
};

/** `skip-cached` -> INPUT_SKIP_CACHED, as the GitLab platform reads it (or the name build.yml uses instead). */
export function inputVariable(name: string): string {
  return TEMPLATE_VARIABLES[name] ?? `INPUT_${name.replace(/[- ]/g, '_').toUpperCase()}`;
}

/** A job variable GitLab passes as is: `expand: false` where a `$` would otherwise start a variable reference. */
function raw(value: string): string | { value: string; expand: false } {
  return value.includes('$') ? { value, expand: false } : value;
}

export interface ChildPipelineOptions {
  include: ChildInclude;
  /** Inputs for every shard (kebab-case names), as the planning job got them. */
  passInputs: Readonly<Record<string, string>>;
  /** FLAKE_CI_SUITE_URL/REF/DIR of the planning job, so shards run the suite it ran. */
  suite: Readonly<Record<string, string>>;
  /** Each shard's patterns, as for GitHub. */
  patterns: readonly (readonly string[])[];
  attributes: number;
}

/** Inputs a shard must not inherit: it builds its own attributes, and never plans again. */
const NOT_PASSED = new Set(['mode', 'attributes', 'select', 'systems', 'max-shards', 'runner-map']);
/** The child YAML is an artifact anyone with read access can download: never a secret in it, whatever is passed. */
const SECRET = /(token|password|secret|key)$/i;

export function passedInputs(passInputs: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(passInputs)) if (!NOT_PASSED.has(k) && !SECRET.test(k)) out[k] = v;
  return out;
}

export function jobName(shard: Shard): string {
  return `build ${shard.name}`;
}

export function childPipelineYaml(shards: readonly Shard[], opts: ChildPipelineOptions): string {
  const config: Record<string, unknown> = {};
  if (shards.length === 0) {
    // GitLab refuses a pipeline without jobs, so an empty plan still has one.
    config['flake-ci: nothing to build'] = { script: ['echo "flake-ci: the plan selected no attributes to build."'] };
  } else {
    config.include = TEMPLATES.map((t) => includeEntry(opts.include, t));
    const common: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(opts.suite)) if (v !== '') common[k] = raw(v);
    for (const [k, v] of Object.entries(passedInputs(opts.passInputs))) common[inputVariable(k)] = raw(v);
    shards.forEach((shard, i) => {
      const job: Record<string, unknown> = { extends: ['.flake-ci-nix', '.flake-ci-build'] };
      if (shard.labels.length > 0) job.tags = [...shard.labels];
      job.variables = { ...common, INPUT_ATTRIBUTES: raw((opts.patterns[i] ?? []).join(' ')) };
      config[jobName(shard)] = job;
    });
  }
  const doc = new Document(config);
  doc.commentBefore =
    ` flake-ci build, mode: matrix: ${opts.attributes} attribute(s) in ${shards.length} shard(s).\n` +
    ' Generated for trigger: include: artifact:. Do not edit; it is written again by every planning job.';
  return doc.toString({ lineWidth: 0 });
}
