/**
 * How many layers of a push are in flight. A layer first reads and compresses (CPU, and its compression blocks in
 * memory), then sends the last chunks of its upload, which the registry acknowledges one PATCH at a time (each ends
 * with an fsync in distribution). Holding one slot for both phases made the layers move in lockstep: the layers in
 * flight finished compressing at about the same time and then only uploaded, every core idle, until their slots
 * freed (~20% of a 350 MB push's time on 2 cores). So a layer past its compression moves to a second set of slots,
 * and the next layer starts compressing meanwhile; a layer in that set holds only its last upload chunks. The two sets
 * together are the `concurrency` input: never more layers than that upload at once.
 */
import { Semaphore } from '../oci/compress-pool.js';

export interface LayerSlot {
  /** The layer has been compressed (or needs no CPU): it may make room for the next one. Idempotent. */
  compressed(): void;
  /** The layer is done, whatever the outcome. Call once. */
  leave(): void;
}

export class LayerSlots {
  private readonly work: Semaphore;
  private readonly tails: Semaphore;
  private readonly hasTails: boolean;

  /** `work` layers reading and compressing, plus `tails` more finishing their uploads (0: a layer keeps its slot). */
  constructor(work: number, tails: number) {
    this.work = new Semaphore(work);
    this.tails = new Semaphore(tails);
    this.hasTails = tails > 0;
  }

  /** Waits for a free slot for one more layer. */
  async enter(): Promise<LayerSlot> {
    await this.work.acquire();
    let state: 'work' | 'moving' | 'tail' | 'left' = 'work';
    return {
      compressed: () => {
        if (state !== 'work' || !this.hasTails) return;
        state = 'moving';
        // The work slot is given up only once a tail slot is held: both sets stay bounded.
        void this.tails.acquire().then(() => {
          if (state === 'moving') {
            state = 'tail';
            this.work.release();
          } else this.tails.release(); // it left meanwhile, giving back its work slot itself
        });
      },
      leave: () => {
        if (state === 'tail') this.tails.release();
        else if (state !== 'left') this.work.release();
        state = 'left';
      },
    };
  }
}
