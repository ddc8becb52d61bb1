/**
 * Where a push goes: the tags grouped by registry and repository (each repository receives the image once, by digest,
 * then its tags), and one RegistryClient per registry with the credentials resolveCredentials picks for it. The
 * username/password inputs are sent only to the registries named in `tags`; a `cache-from` or `sources` registry
 * elsewhere gets what docker config.json or the platform defaults say, else anonymous access. All clients draw their
 * retries from one budget, the `retry-budget` input: it bounds the retries of the whole push, whatever the registries.
 */
import { RegistryClient, RetryBudget } from '../oci/registry/client.js';
import { resolveCredentials } from '../oci/registry/credentials.js';
import type { ImageRef } from '../oci/types.js';
import type { Platform } from '../platform/types.js';
import type { PushInputs } from './inputs.js';

export interface Repo {
  registry: string;
  repository: string;
  /** `registry/repository`: map key and message text. */
  key: string;
  tags: string[];
  client: RegistryClient;
}

export class Registries {
  private readonly clients = new Map<string, RegistryClient>();
  private readonly tagRegistries: Set<string>;
  private readonly budget: RetryBudget;

  constructor(
    private readonly p: Platform,
    private readonly inputs: Pick<
      PushInputs,
      'tags' | 'credentials' | 'registryDefaults' | 'retryBudget' | 'timeoutMs' | 'concurrency'
    >,
  ) {
    this.tagRegistries = new Set(inputs.tags.map((t) => t.registry));
    this.budget = new RetryBudget(
      inputs.retryBudget,
      `raise input 'retry-budget' (now ${inputs.retryBudget}) if the registry needs longer to recover`,
    );
  }

  /** The client for a registry, created on first use. Credentials are logged by where they came from, never shown. */
  client(registry: string): RegistryClient {
    const existing = this.clients.get(registry);
    if (existing) return existing;
    const own = this.tagRegistries.has(registry) ? this.inputs.credentials : undefined;
    const resolved = resolveCredentials({
      registry,
      username: own?.username,
      password: own?.password,
      env: (name) => this.p.env(name),
      platform: this.p.name,
      githubToken: this.inputs.registryDefaults['ghcr.io']?.password,
      debug: (m) => this.p.log('debug', m),
    });
    const fallback = this.inputs.registryDefaults[registry];
    const credentials = resolved ?? (fallback ? { ...fallback, source: 'the platform default' } : undefined);
    if (credentials) this.p.setSecret(credentials.password); // config.json passwords too (GitLab redacts only these)
    this.p.log(
      'info',
      `${registry}: ${credentials ? `user '${credentials.username}' from ${credentials.source}` : 'anonymous access'}`,
    );
    const client = new RegistryClient({
      registry,
      credentials: credentials && { username: credentials.username, password: credentials.password },
      platform: this.p,
      timeoutMs: this.inputs.timeoutMs,
      // Parallel uploads, their HEADs and mounts, plus the manifest reads that overlap them.
      maxSockets: Math.max(8, this.inputs.concurrency * 2),
      retry: { budget: this.budget },
    });
    this.clients.set(registry, client);
    return client;
  }

  /** The target repositories in the order their first tag was given, each with its tags (none: push by digest). */
  targets(tags: ImageRef[]): Repo[] {
    const repos = new Map<string, Repo>();
    for (const t of tags) {
      const key = `${t.registry}/${t.repository}`;
      let repo = repos.get(key);
      if (!repo) {
        repo = { registry: t.registry, repository: t.repository, key, tags: [], client: this.client(t.registry) };
        repos.set(key, repo);
      }
      if (t.tag && !repo.tags.includes(t.tag)) repo.tags.push(t.tag);
    }
    return [...repos.values()];
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
