/**
 * One stream of compressed chunks fed to several uploads at once (one per registry), so a layer is read and
 * compressed once however many registries it goes to. Memory stays bounded: the source is pulled only while the
 * fastest branch is fewer than `maxAhead` chunks ahead of the slowest, so a slow registry slows the others down
 * instead of making the process hold the whole layer. So the branches must be consumed concurrently (as the uploads
 * are), and a branch whose consumer gives up, even before it started reading (an upload that failed to open its
 * session), must be cancelled, or the others would wait for it forever. The source is closed when every branch has
 * stopped.
 */

export interface Branch extends AsyncIterable<Buffer> {
  /** This branch will read no more: it stops holding the others back. Idempotent. */
  cancel(): void;
}

export function tee(source: AsyncIterable<Buffer>, branches: number, maxAhead = 4): Branch[] {
  if (branches === 1)
    return [{ cancel: () => undefined, [Symbol.asyncIterator]: () => source[Symbol.asyncIterator]() }];
  const it = source[Symbol.asyncIterator]();
  const buffer: Buffer[] = [];
  let base = 0; // the position of buffer[0] in the stream
  const pos = new Array<number>(branches).fill(0);
  const active = new Array<boolean>(branches).fill(true);
  let ended = false;
  let failure: { error: unknown } | undefined;
  let pulling: Promise<void> | undefined;
  let waiters: Array<() => void> = [];

  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const slowest = () => {
    let min = Infinity;
    for (let i = 0; i < branches; i++) if (active[i]) min = Math.min(min, pos[i] as number);
    return min;
  };
  // Chunks every active branch has taken are dropped.
  const trim = () => {
    const min = slowest();
    while (base < min && buffer.length > 0) {
      buffer.shift();
      base++;
    }
  };
  const pull = (): Promise<void> => {
    pulling ??= it
      .next()
      .then(
        (r) => {
          if (r.done) ended = true;
          else buffer.push(r.value);
        },
        (error: unknown) => {
          failure = { error };
        },
      )
      .finally(() => {
        pulling = undefined;
        wake();
      });
    return pulling;
  };

  const stop = (i: number): void => {
    if (!active[i]) return;
    active[i] = false;
    trim();
    wake();
    if (!active.some(Boolean) && !ended && !failure) void it.return?.()?.catch(() => undefined);
  };

  const branch = (i: number): Branch => ({
    cancel: () => stop(i),
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const at = pos[i] as number;
          if (at < base + buffer.length) {
            const chunk = buffer[at - base] as Buffer;
            pos[i] = at + 1;
            trim();
            wake();
            yield chunk;
            continue;
          }
          if (failure) throw failure.error;
          if (ended) return;
          // Ahead of the slowest branch by the limit: wait for it, unless a pull is already on its way.
          if (at - slowest() < maxAhead || pulling) await pull();
          else await new Promise<void>((r) => waiters.push(r));
        }
      } finally {
        stop(i);
      }
    },
  });
  return Array.from({ length: branches }, (_, i) => branch(i));
}
