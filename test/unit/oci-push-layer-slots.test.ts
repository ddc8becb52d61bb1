// Layer slots (src/oci-push/layer-slots.ts): a layer past its compression makes room for the next one, and neither
// the layers compressing nor those finishing their uploads ever exceed the limit.
import { describe, expect, it } from '@jest/globals';
import { LayerSlots, type LayerSlot } from '../../src/oci-push/layer-slots.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Enters a slot in the background; `got` is set once it has one. */
function entering(slots: LayerSlots): { got?: LayerSlot } {
  const state: { got?: LayerSlot } = {};
  void slots.enter().then((s) => (state.got = s));
  return state;
}

describe('LayerSlots', () => {
  it('lets the next layer in once one has compressed, but not past the limit of either set', async () => {
    const slots = new LayerSlots(2, 2);
    const a = await slots.enter();
    const b = await slots.enter();
    const c = entering(slots);
    await tick();
    expect(c.got).toBeUndefined(); // two compressing
    a.compressed();
    await tick();
    expect(c.got).toBeDefined(); // a moved on to its upload's tail
    a.compressed(); // idempotent
    b.compressed();
    const d = entering(slots);
    await tick();
    expect(d.got).toBeDefined(); // b moved on too: two tails, c and d compressing
    c.got!.compressed(); // no tail slot free: c keeps its work slot
    const e = entering(slots);
    await tick();
    expect(e.got).toBeUndefined();
    a.leave(); // a tail frees: c moves there, and its work slot goes to e
    await tick();
    expect(e.got).toBeDefined();
  });

  it('gives back the right slot whenever a layer leaves, even while it is moving', async () => {
    const slots = new LayerSlots(1, 1);
    const a = await slots.enter();
    a.compressed(); // moves to the tail set at once
    await tick();
    const b = await slots.enter();
    b.compressed(); // waits for the tail slot a holds
    b.leave(); // leaves while waiting: gives back its work slot
    const c = entering(slots);
    await tick();
    expect(c.got).toBeDefined();
    a.leave();
    await tick();
    // b's late tail slot was given back, not kept: c can still move on and another layer enter.
    c.got!.compressed();
    const d = entering(slots);
    await tick();
    expect(d.got).toBeDefined();
    a.leave(); // a second leave is harmless
  });

  it('keeps a layer in its slot when there are no tail slots (concurrency 1)', async () => {
    const slots = new LayerSlots(1, 0);
    const a = await slots.enter();
    a.compressed();
    const b = entering(slots);
    await tick();
    expect(b.got).toBeUndefined();
    a.leave();
    await tick();
    expect(b.got).toBeDefined();
  });
});
