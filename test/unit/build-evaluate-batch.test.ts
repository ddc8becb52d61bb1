import { describe, expect, it } from '@jest/globals';
import { batchExpression, MAX_BATCH, planBatches } from '../../src/build/evaluate-batch.js';
import type { SelectedAttr } from '../../src/build/select.js';

const attr = (...path: string[]): SelectedAttr => ({ attr: path.join('.'), attrPath: path, system: 'x86_64-linux' });

describe('batched evaluation', () => {
  it('keeps every worker busy with batches no larger than the cap, one root per batch', () => {
    const checks = Array.from({ length: 210 }, (_, i) => attr('checks', 'x86_64-linux', `t${i}`));
    const pkgs = [attr('packages', 'x86_64-linux', 'a'), attr('packages', 'x86_64-linux', 'b')];
    const batches = planBatches([...checks, ...pkgs], 4);
    expect(batches.flat()).toHaveLength(212);
    expect(new Set(batches.flat()).size).toBe(212);
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(MAX_BATCH);
      expect(new Set(b.map((x) => x.attrPath[0])).size).toBe(1);
    }
    expect(batches.length).toBeGreaterThanOrEqual(4);
    expect(planBatches(checks.slice(0, 3), 4)).toHaveLength(3);
  });

  it('selects each attribute inside tryEval under an index key, with names as Nix strings', () => {
    const expr = batchExpression([attr('checks', 'x86_64-linux', 'a'), attr('checks', 'x86_64-linux', 'b${x}"')]);
    expect(expr).toContain('builtins.tryEval');
    expect(expr).toContain('"a0" = one (');
    expect(expr).toContain('"a1" = one (');
    // User text is quoted: no interpolation can reach the evaluator.
    expect(expr).not.toContain('b${x}');
  });
});
