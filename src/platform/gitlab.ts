/**
 * The GitLab CI platform. GitLab has no workflow commands, no runtime masking and no step boundaries, so everything
 * goes through files under `$CI_PROJECT_DIR/.flake-ci` that the templates wire up: a dotenv report (+ JSON for values
 * dotenv cannot carry), a Code Quality report, a Markdown summary artifact, state for `after_script`, and an `env.sh`
 * the template sources. Every byte we print or write is redacted first (DESIGN.md). Never import @actions/core here:
 * it would print `::add-mask::<secret>` in clear.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../errors.js';
import { asRecord, readJson, renderDotenv, shellQuote, writeAtomic } from './gitlab-files.js';
import { Redactor, defuse } from './redact.js';
import type { Annotation, LogLevel, Platform, RunnerContext } from './types.js';

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const RESET = '\x1b[0m';
const STYLE = { notice: '\x1b[36mnotice:', warning: '\x1b[33mwarning:', error: '\x1b[31merror:' } as const;

export interface CodeQualityIssue {
  description: string;
  check_name: string;
  fingerprint: string;
  severity: 'minor' | 'major' | 'critical';
  location: { path: string; lines: { begin: number } };
}

interface PendingIssue {
  level: 'warning' | 'error';
  message: string;
  annotation: Annotation & { file: string };
}

export { dotenvKey, shellQuote } from './gitlab-files.js';

export class GitLabPlatform implements Platform {
  readonly name = 'gitlab' as const;
  readonly runner: RunnerContext;
  /** `.flake-ci/<action>`: reports, state and summary of this action (paths the templates reference). */
  readonly dir: string;
  /** `.flake-ci/env.sh`: shared by all actions, sourced by the templates after each action. */
  readonly envFile: string;

  private readonly action: string;
  private readonly out: NodeJS.WritableStream;
  private readonly redactor = new Redactor();
  private readonly outputs = new Map<string, string>();
  private readonly issues: PendingIssue[] = [];
  private readonly jobId: string;
  private sections = 0;
  private prepared = false;
  private envChecked = false;

  constructor(
    private readonly environment: NodeJS.ProcessEnv = process.env,
    opts: { action?: string; out?: NodeJS.WritableStream } = {},
  ) {
    // The action name becomes a directory name: keep it one safe path segment.
    const action = (opts.action || environment.FLAKE_CI_ACTION || 'flake-ci').replace(/[^A-Za-z0-9_.-]/g, '_');
    this.action = /^\.+$/.test(action) ? 'flake-ci' : action;
    this.out = opts.out ?? process.stdout;
    this.jobId = environment.CI_JOB_ID ?? '';
    const workspace = environment.CI_PROJECT_DIR || process.cwd();
    const root = path.join(workspace, '.flake-ci');
    this.dir = path.join(root, this.action);
    this.envFile = path.join(root, 'env.sh');
    this.runner = {
      os: process.platform,
      arch: process.arch,
      temp: path.join(root, 'tmp'),
      // GitLab jobs start from a clean project dir, so a tool cache there would be copied and never reused: only a
      // directory the runner keeps (FLAKE_CI_TOOL_CACHE, e.g. on a shell executor) is worth writing.
      toolCache: environment.FLAKE_CI_TOOL_CACHE ?? '',
      workspace,
      // GitLab gives no reliable "ephemeral VM" signal (shared runners vary), so the template or user says so.
      hosted: environment.FLAKE_CI_HOSTED === 'true',
      serverUrl: environment.CI_SERVER_URL || 'https://gitlab.com',
      repository: environment.CI_PROJECT_PATH || '',
      sha: environment.CI_COMMIT_SHA || '',
      debug: environment.CI_DEBUG_TRACE === 'true' || environment.FLAKE_CI_DEBUG === 'true',
    };
  }

  getInput(name: string): string {
    return this.getMultilineInput(name).trim();
  }
  /** GitLab variable names cannot hold dashes, so kebab-case and snake_case names meet at the same INPUT_*. */
  getMultilineInput(name: string): string {
    return this.environment[`INPUT_${name.replace(/[- ]/g, '_').toUpperCase()}`] ?? '';
  }
  env(name: string): string | undefined {
    return this.environment[name];
  }

  setOutput(name: string, value: string): void {
    this.outputs.set(name, value);
  }

  /** Written at once: the post phase is another process (after_script), possibly after main was killed. */
  setState(name: string, value: string): void {
    const file = path.join(this.prepare(), 'state.json');
    const state = asRecord(readJson(file));
    state[name] = this.redact(value);
    writeAtomic(file, JSON.stringify(state), 0o600);
  }
  getState(name: string): string {
    if (!this.fresh()) return '';
    const v = asRecord(readJson(path.join(this.dir, 'state.json')))[name];
    return typeof v === 'string' ? v : '';
  }

  exportVariable(name: string, value: string): void {
    if (!VAR_NAME.test(name))
      throw new InputError(`Cannot export '${name}': variable names must match [A-Za-z_][A-Za-z0-9_]*.`);
    this.environment[name] = value;
    const written = this.redact(value);
    if (written !== value)
      this.log('warning', `${name} contains a registered secret; later script lines get it as [MASKED].`);
    this.appendEnv(`export ${name}=${shellQuote(written)}`);
  }
  addPath(dir: string): void {
    const current = this.environment.PATH;
    this.environment.PATH = current ? `${dir}${path.delimiter}${current}` : dir;
    this.appendEnv(`export PATH=${shellQuote(this.redact(dir))}:"$PATH"`);
  }

  setSecret(value: string): void {
    const skipped = this.redactor.add(value);
    if (skipped > 0)
      this.log('debug', `${skipped} line(s) of a multi-line secret are too short to redact on their own.`);
  }

  log(level: LogLevel, message: string, annotation?: Annotation): void {
    if (level === 'debug') {
      if (this.runner.debug) this.print(message.replace(/^/gm, '[debug] '));
      return;
    }
    if (level === 'info') return this.print(message);
    const title = annotation?.title ? `${annotation.title}: ` : '';
    let where = '';
    if (annotation?.file) {
      where = ` (${annotation.file}${annotation.startLine ? `:${annotation.startLine}` : ''})`;
      if (level !== 'notice')
        this.issues.push({ level, message, annotation: { ...annotation, file: annotation.file } });
    }
    this.print(`${STYLE[level]}${RESET} ${title}${message}${where}`);
  }

  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    const shown = defuse(this.redact(title).replace(/[\r\n]+/g, ' '));
    const words = shown.toLowerCase().match(/[a-z0-9_.-]+/g) ?? [];
    // pid + counter: main and post (after_script) are separate processes writing to the same job log.
    const id = `${words.join('_').slice(0, 40)}_${process.pid}_${++this.sections}`;
    const now = () => Math.floor(Date.now() / 1000);
    this.out.write(`\x1b[0Ksection_start:${now()}:${id}[collapsed=true]\r\x1b[0K${shown}\n`);
    try {
      return await fn();
    } finally {
      this.out.write(`\x1b[0Ksection_end:${now()}:${id}\r\x1b[0K\n`);
    }
  }

  async appendSummary(markdown: string): Promise<void> {
    await fs.promises.appendFile(path.join(this.prepare(), 'summary.md'), `${this.redact(markdown)}\n`);
  }

  setFailed(message: string): void {
    this.log('error', message);
    process.exitCode = 1;
  }

  /**
   * Writes the reports. Main and post both call this, so outputs and issues already on disk from the other phase of
   * the same job are kept and merged rather than overwritten. Files are written even when empty so that
   * `artifacts:reports:*` in the template never points at a missing file.
   */
  async finish(): Promise<void> {
    const dir = this.prepare();
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries(asRecord(readJson(path.join(dir, 'outputs.json')))))
      if (typeof v === 'string') all[k] = v;
    for (const [k, v] of this.outputs) all[k] = this.redact(v);
    writeAtomic(path.join(dir, 'outputs.json'), `${JSON.stringify(all, null, 2)}\n`);
    // Outputs merged from the other phase were already reported by it.
    const skipped = (name: string, why: string) => {
      if (this.outputs.has(name))
        this.log('warning', `Output '${name}' is not in the dotenv report (${why}); read it from outputs.json.`);
    };
    writeAtomic(path.join(dir, 'outputs.env'), renderDotenv(all, skipped));

    const issues = new Map<string, CodeQualityIssue>();
    const before = readJson(path.join(dir, 'codequality.json'));
    if (Array.isArray(before)) for (const i of before as CodeQualityIssue[]) issues.set(i.fingerprint, i);
    for (const p of this.issues) {
      const issue = this.codeQualityIssue(p);
      issues.set(issue.fingerprint, issue);
    }
    writeAtomic(path.join(dir, 'codequality.json'), `${JSON.stringify([...issues.values()], null, 2)}\n`);
  }

  private codeQualityIssue(p: PendingIssue): CodeQualityIssue {
    const description = this.redact(p.message);
    const check_name = this.redact(p.annotation.title || this.action);
    const ws = this.runner.workspace;
    const abs = path.isAbsolute(p.annotation.file);
    // Code Quality paths are relative to the repository root.
    const file = this.redact(abs ? path.relative(ws, p.annotation.file) : p.annotation.file);
    const begin = p.annotation.startLine ?? 1;
    const fingerprint = createHash('sha256').update([check_name, file, begin, description].join('\0')).digest('hex');
    const severity = p.level === 'error' ? 'major' : 'minor';
    return { description, check_name, fingerprint, severity, location: { path: file, lines: { begin } } };
  }

  private redact(text: string): string {
    return this.redactor.redact(text);
  }

  private print(text: string): void {
    this.out.write(`${defuse(this.redact(text))}\n`);
  }

  /**
   * The action directory is tied to a job by a `job` marker: with `GIT_STRATEGY: none` or a reused volume, state and
   * reports from an earlier job would otherwise be read back (a post phase acting on another job's state).
   */
  private fresh(): boolean {
    const marker = path.join(this.dir, 'job');
    return !this.jobId || (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === this.jobId);
  }

  /** Creates the action directory on first write (no side effects before use), dropping a stale one. */
  private prepare(): string {
    if (this.prepared) return this.dir;
    if (!this.fresh()) fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(this.dir, { recursive: true });
    if (this.jobId) fs.writeFileSync(path.join(this.dir, 'job'), this.jobId);
    this.prepared = true;
    return this.dir;
  }

  /** env.sh starts with a header naming the job; a file from another job is started afresh, not appended to. */
  private appendEnv(line: string): void {
    const header = `# flake-ci: sourced by the GitLab templates (job ${this.jobId || 'local'})\n`;
    if (!this.envChecked) {
      fs.mkdirSync(path.dirname(this.envFile), { recursive: true });
      const current = fs.existsSync(this.envFile) ? fs.readFileSync(this.envFile, 'utf8') : '';
      if (!current.startsWith(header)) writeAtomic(this.envFile, header, 0o600);
      this.envChecked = true;
    }
    fs.appendFileSync(this.envFile, `${line}\n`);
  }
}
