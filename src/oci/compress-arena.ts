/**
 * Reusable memory for a push's gzip members (compress-deflaters.ts). Written into fresh buffers, the members were most
 * of the garbage a push made: V8 ran a full collection (marking on its background threads, then freeing) every few
 * dozen MiB of it, the pages of each fresh buffer were faulted in again, and the peak RSS held whatever garbage the
 * last collection had not reached yet.
 *
 * Members are packed one after the other into arenas of ARENA bytes, each layer into arenas of its own (a lane): the
 * bytes of one arena then go out in one upload, in order, rather than pinning an arena until the slowest of several
 * layers' uploads is done. Whoever ends up with the bytes hands them back once nothing will read them again (an
 * upload: once the registry has acknowledged them), and an arena all of whose bytes came back is reused. Bytes never
 * handed back are simply collected with their arena, so a consumer that cannot tell when it is done (one stream fed to
 * several uploads) needs to do nothing; handing bytes back twice, though, would let an arena be overwritten while
 * still in use, so each must be handed back at most once.
 */

/**
 * Room for two stored members of a whole default-size block (1 MiB and 103 bytes of framing each): the common case
 * (incompressible files span whole blocks) then wastes no room. Smaller members pack in between.
 */
export const ARENA = (2 << 20) + 1024;

interface Arena {
  bytes: Buffer;
  used: number;
  /** Bytes lent out and not handed back yet. */
  out: number;
  /** Still a lane's current arena: takes more members, so it is not reused even when all its bytes are back. */
  open: boolean;
}

/** Where one layer's members are written. */
export interface ArenaLane {
  /** `n` bytes to write a member into. A member larger than an arena gets a buffer of its own, not tracked. */
  take(n: number): Buffer;
  /** The layer writes no more members: its last arena is reused once its bytes are back. */
  close(): void;
}

export class MemberArenas {
  private readonly free: Buffer[] = [];
  private readonly lent = new WeakMap<ArrayBufferLike, Arena>();
  private made = 0;

  /**
   * `keep`: idle arenas kept for reuse; more may be in use at once, the extra ones are dropped when they come back.
   * 16 (32 MiB) covers what a push's uploads hold unacknowledged (two 4 MiB chunks each, four at once): with 8, a 2 GB
   * push allocated 43 arenas and peaked at 185 MiB RSS, with 16 at 163 MiB (24: 159).
   */
  constructor(private readonly keep = 16) {}

  /** A lane of arenas for one layer. */
  lane(): ArenaLane {
    let current: Arena | undefined;
    return {
      take: (n) => {
        if (n > ARENA) return Buffer.allocUnsafe(n);
        let a = current;
        if (!a || a.bytes.length - a.used < n) {
          if (a) this.retire(a);
          a = { bytes: this.free.pop() ?? this.make(), used: 0, out: 0, open: true };
          this.lent.set(a.bytes.buffer, a);
          current = a;
        }
        const out = a.bytes.subarray(a.used, a.used + n);
        a.used += n;
        a.out += n;
        return out;
      },
      close: () => {
        if (current) this.retire(current);
        current = undefined;
      },
    };
  }

  /**
   * The consumer is done with these bytes, which may be any slices of what `take` gave (other buffers are ignored).
   * Each byte at most once.
   */
  giveBack(parts: Iterable<Buffer>): void {
    for (const p of parts) {
      const a = this.lent.get(p.buffer);
      if (!a) continue;
      a.out -= p.length;
      if (a.out === 0 && !a.open) this.recycle(a);
    }
  }

  /** Arenas allocated so far (tests check reuse with it). */
  get allocated(): number {
    return this.made;
  }

  private make(): Buffer {
    this.made++;
    return Buffer.allocUnsafeSlow(ARENA);
  }

  /** An arena that takes no more members: reused at once if all its bytes are back, else when the last one is. */
  private retire(a: Arena): void {
    a.open = false;
    if (a.out === 0) this.recycle(a);
  }

  private recycle(a: Arena): void {
    this.lent.delete(a.bytes.buffer);
    if (this.free.length < this.keep) this.free.push(a.bytes);
  }
}
