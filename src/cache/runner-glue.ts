/**
 * What the cache action needs to know about the job it runs in: which backend, which Nix, a unique entry suffix, and
 * whether this job may write to the cache at all.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { NixCommand, nixBinOnPath } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import type { Backend } from './backend.js';
import { githubAvailable, githubBackend } from './github-backend.js';
import { gitlabBackend } from './gitlab-backend.js';
import type { CacheInputs } from './inputs.js';
import { storeBackend } from './store-glue.js';

/** `auto`: the CI's own cache (GitHub when its cache service is there, GitLab on GitLab), else `store-url`. */
export function chooseBackend(p: Platform, inputs: Pick<CacheInputs, 'backend' | 'storeUrl'>): Backend {
  const onGitLab = p.name === 'gitlab' || p.env('GITLAB_CI') === 'true';
  let name = inputs.backend;
  if (name === 'auto') {
    if (onGitLab) name = 'gitlab';
    else if (githubAvailable(p)) name = 'github';
    else if (inputs.storeUrl !== '') name = 'store';
    else
      throw new InputError(
        'backend: auto found no cache: neither the GitHub Actions cache service (ACTIONS_RESULTS_URL) nor GitLab ' +
          "CI. Set 'backend: store' with a 'store-url'.",
      );
  }
  if (name === 'github' && onGitLab)
    // @actions/cache prints workflow commands, which GitLab would show as they are.
    throw new InputError('backend: github works only on GitHub Actions; use backend: gitlab or store on GitLab.');
  if (name === 'store') return storeBackend(inputs.storeUrl);
  return name === 'github' ? githubBackend : gitlabBackend;
}

/** The first `nix` on the job's PATH (install-nix put it there); its directory also holds nix-store & co. */
export async function resolveNix(p: Platform): Promise<NixCommand> {
  const bin = nixBinOnPath(p);
  if (bin !== undefined) return NixCommand.detect(p, bin);
  throw new InputError('No nix on PATH: run install-nix (or another Nix installer) before the cache action.');
}

/**
 * Unique per job run, so a second job (a re-run, another matrix leg with the same key) never collides with an
 * immutable entry: run id, attempt, job id and a random part (matrix legs share the job id).
 */
export function entrySuffix(p: Platform): string {
  const clean = (s: string | undefined) => (s ?? '').replace(/[^A-Za-z0-9_.]/g, '_').slice(0, 40);
  const parts = [
    clean(p.env('GITHUB_RUN_ID') ?? p.env('CI_PIPELINE_ID')),
    clean(p.env('GITHUB_RUN_ATTEMPT') ?? ''),
    clean(p.env('GITHUB_JOB') ?? p.env('CI_JOB_ID')),
    randomBytes(3).toString('hex'),
  ];
  return parts.filter((s) => s !== '').join('-');
}

/**
 * Why this job cannot write to the cache, or undefined. ACTIONS_CACHE_MODE=read is the runner telling us the cache
 * is read-only; a pull request from a fork gets a read-only token (and no secrets) whatever the workflow asks.
 */
export async function readOnlyReason(p: Platform): Promise<string | undefined> {
  if (p.env('ACTIONS_CACHE_MODE') === 'read') return 'the cache is read-only for this job (ACTIONS_CACHE_MODE=read)';
  if (await pullRequestFromFork(p)) return 'this is a pull request from a fork, whose token cannot write the cache';
  return undefined;
}

export async function pullRequestFromFork(p: Platform): Promise<boolean> {
  const event = p.env('GITHUB_EVENT_NAME') ?? '';
  const file = p.env('GITHUB_EVENT_PATH');
  if (!event.startsWith('pull_request') || event === 'pull_request_target' || !file) return false;
  try {
    const payload = JSON.parse(await readFile(file, 'utf8')) as {
      pull_request?: { head?: { repo?: { full_name?: string } | null }; base?: { repo?: { full_name?: string } } };
    };
    const pr = payload.pull_request;
    if (!pr) return false;
    // A deleted fork has `head.repo: null`: still not this repository.
    return pr.head?.repo?.full_name !== pr.base?.repo?.full_name;
  } catch {
    return false;
  }
}
