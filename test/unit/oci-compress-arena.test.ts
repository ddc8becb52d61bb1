// gzip members are written into reusable arenas (src/oci/compress-arena.ts), each layer into its own: an arena is
// written again only once every byte lent from it has been handed back and its layer writes no more, and a layer
// compressed after the previous one was handed back allocates none. The real upload path (bytes handed back once a
// registry acknowledged them) is in test/integration/oci-registry.test.ts.
import { describe, expect, it } from '@jest/globals';
import { ARENA, MemberArenas } from '../../src/oci/compress-arena.js';
import { CompressionPool, compressLayer } from '../../src/oci/compress.js';
import { MiB, once, sha, tool } from './helpers/compress-fixtures.js';
import { rng } from './helpers/tar-fixtures.js';

const noise = (n: number, seed: number) => {
  const next = rng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
};

describe('MemberArenas', () => {
  it('packs members into an arena and writes it again only when all its bytes are back', () => {
    const arenas = new MemberArenas();
    const lane = arenas.lane();
    const a = lane.take(1000);
    const b = lane.take(ARENA - 1000); // fills the first arena exactly
    expect(b.buffer).toBe(a.buffer);
    const c = lane.take(10); // a second arena; the first takes no more members
    expect(c.buffer).not.toBe(a.buffer);
    // Handed back in slices (as an upload's chunks cut a member), and not yet all of it.
    arenas.giveBack([a, b.subarray(0, 5000)]);
    arenas.giveBack([Buffer.alloc(64)]); // not lent from here: ignored
    expect(arenas.allocated).toBe(2);
    arenas.giveBack([b.subarray(5000)]);
    // The third arena is the first one again.
    const d = lane.take(ARENA);
    expect(d.buffer).toBe(a.buffer);
    expect(arenas.allocated).toBe(2);
  });

  it('gives a member larger than an arena a buffer of its own, and keeps no more idle arenas than told', () => {
    const arenas = new MemberArenas(1);
    const lane = arenas.lane();
    const big = lane.take(ARENA + 1);
    expect(big.length).toBe(ARENA + 1);
    expect(arenas.allocated).toBe(0);
    const lent = [lane.take(ARENA), lane.take(ARENA), lane.take(ARENA)];
    lane.take(1); // the third arena is retired too
    arenas.giveBack(lent);
    expect(arenas.allocated).toBe(4);
    // One was kept: the next arena reuses it, the one after is new.
    const again = [lane.take(ARENA), lane.take(ARENA)];
    expect(lent.map((x) => x.buffer)).toContain(again[0]!.buffer);
    expect(arenas.allocated).toBe(5);
  });
});

describe('MemberArenas lanes', () => {
  it("keep each layer's members in arenas of its own, reused once the layer is done and its bytes are back", () => {
    const arenas = new MemberArenas();
    const a = arenas.lane();
    const b = arenas.lane();
    // Interleaved, as two layers compressing at once write them.
    const a1 = a.take(1000);
    const b1 = b.take(1000);
    const a2 = a.take(2000);
    expect(a2.buffer).toBe(a1.buffer);
    expect(b1.buffer).not.toBe(a1.buffer);
    expect(arenas.allocated).toBe(2);
    // All of a's bytes are back, but a is still writing: its arena is not handed to anyone else...
    arenas.giveBack([a1, a2]);
    expect(b.take(ARENA - 1000).buffer).toBe(b1.buffer);
    expect(arenas.lane().take(10).buffer).not.toBe(a1.buffer);
    expect(arenas.allocated).toBe(3);
    // ...until a is closed.
    a.close();
    expect(arenas.lane().take(10).buffer).toBe(a1.buffer);
    expect(arenas.allocated).toBe(3);
  });
});

describe('stored members of a compressed layer', () => {
  const text = (n: number, seed: number) => noise(n, seed).map((x, i) => (i % 7 === 0 ? 0x20 : 0x61 + (x % 8)));

  it('come from the pool, whose arenas the next layer reuses once the first was handed back', async () => {
    const pool = new CompressionPool(2);
    const raw = Buffer.concat([noise(MiB, 1), text(MiB / 2, 2), noise(MiB / 2, 3)]);
    const push = async () => {
      const layer = compressLayer(once(raw), { compression: 'gzip', chunkSize: MiB, parallelism: 2, pool });
      const out: Buffer[] = [];
      for await (const c of layer.chunks) out.push(c);
      // The bytes are whole until handed back...
      const gz = Buffer.concat(out);
      expect(tool('gzip', ['-dc'], gz).equals(raw)).toBe(true);
      pool.members.giveBack(out);
      return { gz, digest: (await layer.result).digest };
    };
    const first = await push();
    const made = pool.members.allocated;
    expect(made).toBeGreaterThan(0);
    const second = await push();
    // ...and the second layer, written into the same arenas, is the same bytes.
    expect(pool.members.allocated).toBe(made);
    expect(second.digest).toBe(first.digest);
    expect(sha(second.gz)).toBe(first.digest);
  });
});
