/** Picks the platform from the environment: GitLab CI sets GITLAB_CI, everything else is treated as GitHub. */
import { GitHubPlatform } from './github.js';
import { GitLabPlatform } from './gitlab.js';
import type { Platform } from './types.js';

export function detectPlatform(env: NodeJS.ProcessEnv, action: string): Platform {
  return env.GITLAB_CI === 'true' ? new GitLabPlatform(env, { action }) : new GitHubPlatform(env);
}
