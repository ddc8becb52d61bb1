/**
 * Getting one blob into every target repository at the least cost: a HEAD says it is there already (skipped); a
 * cross-repository mount from a repository of the same registry that has it costs one request (mounted); otherwise
 * the bytes are sent once per registry, fed to the registries concurrently from one stream (tee.ts), and mounted into
 * that registry's other target repositories. A registry that refuses a mount (no pull on the source, or no mount
 * support) is remembered, and from then on every repository there gets its own upload.
 */
import type { Digest } from '../oci/types.js';
import type { Repo } from './targets.js';
import { tee, type Branch } from './tee.js';

export interface Placement {
  action: 'uploaded' | 'mounted' | 'skipped';
  /** Bytes sent for this repository. */
  bytes: number;
  seconds: number;
}

/** Repository key -> what happened there. */
export type Placements = Map<string, Placement>;

export interface Placed {
  placed: Placements;
  /** Targets that still lack the blob. */
  missing: Repo[];
  /** Size as a registry reported it (HEAD), when one did. */
  size?: number;
}

const repoName = (key: string, registry: string) => key.slice(registry.length + 1);

/**
 * Bytes per PATCH. The client holds two chunks per upload (one sent, one filling; the compressor's own buffers, not
 * copies), so this sets much of a push's memory: 4 MiB instead of the client's 8 MiB default took ~10 MiB off the peak
 * RSS of a 2 GB push. The cost is one round trip per 4 MiB per upload, which parallel layer uploads hide.
 */
const UPLOAD_CHUNK = 4 << 20;

export class BlobPlacer {
  /** `<repo key>@<digest>` -> its size there, or undefined when absent. Shared by all layers of a push. */
  private readonly presence = new Map<string, Promise<number | undefined>>();
  private readonly noMount = new Set<string>();

  constructor(readonly targets: Repo[]) {}

  /** HEAD, asked once per repository and digest. */
  has(repo: Repo, digest: Digest): Promise<number | undefined> {
    const key = `${repo.key}@${digest}`;
    let p = this.presence.get(key);
    if (!p) {
      p = repo.client.hasBlob(repo.repository, digest);
      // A failed HEAD is not cached: the next layer asking may succeed.
      p.catch(() => this.presence.delete(key));
      this.presence.set(key, p);
    }
    return p;
  }

  private present(repo: Repo, digest: Digest, size: number): void {
    this.presence.set(`${repo.key}@${digest}`, Promise.resolve(size));
  }

  /** Starts HEADs early (the answers are cached), e.g. for every blob the known layers name. */
  prefetch(digests: Digest[], limit = 8): void {
    const queue = this.targets.flatMap((r) => digests.map((d) => () => this.has(r, d)));
    const next = (): Promise<void> | undefined => {
      const job = queue.shift();
      return job?.().then(next, next);
    };
    for (let i = 0; i < limit; i++) void next();
  }

  /** Places the blob without sending it: HEAD in each target, else a mount from a same-registry holder. */
  async place(digest: Digest, seenIn: Iterable<string>, started: number, targets = this.targets): Promise<Placed> {
    const placed: Placements = new Map();
    const seconds = () => (Date.now() - started) / 1000;
    let size: number | undefined;
    const lacking: Repo[] = [];
    await Promise.all(
      targets.map(async (r) => {
        const s = await this.has(r, digest);
        if (s === undefined) return void lacking.push(r);
        size = s;
        placed.set(r.key, { action: 'skipped', bytes: 0, seconds: seconds() });
      }),
    );
    const missing: Repo[] = [];
    for (const r of lacking) {
      const holders = [...seenIn, ...targets.filter((t) => placed.has(t.key)).map((t) => t.key)];
      const from = holders.find((k) => k !== r.key && k.startsWith(`${r.registry}/`));
      if (from && !this.noMount.has(r.registry) && (await this.mount(r, digest, repoName(from, r.registry), size))) {
        placed.set(r.key, { action: 'mounted', bytes: 0, seconds: seconds() });
      } else missing.push(r);
    }
    return { placed, missing, size };
  }

  private async mount(r: Repo, digest: Digest, from: string, size: number | undefined): Promise<boolean> {
    const ok = await r.client.mountBlob(r.repository, digest, from);
    if (!ok) {
      r.client.debug(`mount of ${digest} from ${from} into ${r.repository} refused: uploading instead`);
      this.noMount.add(r.registry);
    } else if (size !== undefined) this.present(r, digest, size);
    return ok;
  }

  /**
   * Sends a stream to `repos` (see the module comment). `unmounted` lists repositories a mount failed for; they
   * need the bytes again, which only the caller can produce. `source`: the producer's digest of the stream, so the
   * uploads need not hash it again; `sent`: told of the stream's bytes the registry has acknowledged, when a single
   * upload reads the stream (upload.ts).
   */
  async upload(
    repos: Repo[],
    chunks: AsyncIterable<Buffer>,
    started: number,
    digests: { expected?: Digest; source?: () => Promise<Digest>; sent?: (parts: Buffer[]) => void } = {},
  ): Promise<{ digest: Digest; size: number; placed: Placements; unmounted: Repo[] }> {
    const byRegistry = new Map<string, Repo[]>();
    for (const r of repos) byRegistry.set(r.registry, [...(byRegistry.get(r.registry) ?? []), r]);
    const branches: Repo[] = [];
    const later: { repo: Repo; from: Repo }[] = [];
    for (const [registry, list] of byRegistry) {
      if (this.noMount.has(registry)) branches.push(...list);
      else {
        branches.push(list[0] as Repo);
        for (const r of list.slice(1)) later.push({ repo: r, from: list[0] as Repo });
      }
    }
    const streams = tee(chunks, branches.length);
    const results = await Promise.allSettled(
      branches.map((r, i) => {
        const stream = streams[i] as Branch;
        // However the upload ends, even before reading, its branch must stop holding the others back (tee.ts).
        return r.client
          .uploadBlob(r.repository, stream, {
            expectedDigest: digests.expected,
            sourceDigest: digests.source,
            // Only a sole upload knows when the stream's bytes are done with; tee.ts shares them between several.
            sent: branches.length === 1 ? digests.sent : undefined,
            chunkSize: UPLOAD_CHUNK,
          })
          .finally(() => stream.cancel());
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const ok = results as PromiseFulfilledResult<{ digest: Digest; size: number }>[];
    const { digest, size } = (ok[0] as PromiseFulfilledResult<{ digest: Digest; size: number }>).value;
    const placed: Placements = new Map();
    for (const r of branches) {
      placed.set(r.key, { action: 'uploaded', bytes: size, seconds: (Date.now() - started) / 1000 });
      this.present(r, digest, size);
    }
    const unmounted: Repo[] = [];
    for (const { repo, from } of later) {
      // A mount of a blob the repository already has succeeds too, so no HEAD first.
      if (await this.mount(repo, digest, from.repository, size)) {
        placed.set(repo.key, { action: 'mounted', bytes: 0, seconds: (Date.now() - started) / 1000 });
      } else unmounted.push(repo);
    }
    return { digest, size, placed, unmounted };
  }
}
