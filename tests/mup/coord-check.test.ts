/**
 * The μP coordinate check: with μP each layer's mean |x| is flat in width after a few AdamW steps;
 * with SP it grows. Widths 32…256 keep it to a few seconds.
 *
 * Thresholds, from measurement (lr 1e-3, 4 steps, 8×32 batch, widths 32…256). This run (seed 0):
 * μP's largest |slope| after 4 steps is 0.10 (layers.0.attn; the logits' −0.07 is what is left of
 * the tied readout's init term, −0.42 at step 0, which fades as the learned part takes over), its
 * largest |Δ slope| 0.09; averaging two seeds gave at most 0.11. SP after 4 steps: 0.57 (layers.0.attn)
 * to 1.23, and 1.26–1.66 for the first update alone (Δ at step 1); SP's outputs grow ≈ ∝ width
 * even at init because SP keeps GPT-2's constant init std. So: μP below 0.15 everywhere; SP's worst
 * layer above 0.5, every SP layer above 0.3 and every first-update Δ above 0.5. At lr 1e-2 the
 * base model's loss spikes within 5 steps on one batch and every width is chaotic, which is why
 * the check runs at 1e-3 (docs/mup.md).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { coordCheck, coordSlope, logLogSlope, type CoordCheckResult, type Parametrization } from '../../src/mup/coord-check.js';

const FLAT = 0.15;
const GROWING = 0.5;
const CLEARLY_UP = 0.3;

/** The largest |slope| over the layers at the last step (Δ: of mean |x − x₀|). */
function worst(r: CoordCheckResult, p: Parametrization, delta = false): number {
  return Math.max(...r.layers.map((l) => Math.abs(coordSlope(r, p, l, r.settings.steps, delta) as number)));
}

describe('coordinate check', () => {
  let result: CoordCheckResult;
  beforeAll(() => {
    result = coordCheck({ widths: [32, 64, 128, 256], steps: 4, lr: 1e-3 });
  });

  it('records every layer output at every step for both parametrizations', () => {
    expect(result.layers).toEqual(['embedding', 'layers.0.attn', 'layers.0.ffn', 'layers.1.attn', 'layers.1.ffn', 'logits']);
    expect(result.records.length).toBe(2 * 4 * 5 * 6);
    expect(result.slopes.length).toBe(2 * 5 * 6);
    // the base width is the smallest, where SP and μP are the same model
    const at32 = (p: Parametrization) => result.records.filter((r) => r.width === 32 && r.parametrization === p).map((r) => r.meanAbs);
    expect(at32('mup')).toEqual(at32('sp'));
  });

  it('μP: every layer is flat in width after a few steps', () => {
    expect(worst(result, 'mup')).toBeLessThan(FLAT);
    expect(worst(result, 'mup', true)).toBeLessThan(FLAT);
  });

  it('SP: the hidden layers and logits grow with width, the embedding does not', () => {
    expect(worst(result, 'sp')).toBeGreaterThan(GROWING);
    for (const layer of ['layers.0.attn', 'layers.0.ffn', 'layers.1.attn', 'layers.1.ffn', 'logits']) {
      expect(coordSlope(result, 'sp', layer) as number).toBeGreaterThan(CLEARLY_UP);
      // the first update alone already grows ∝ width or faster
      expect(coordSlope(result, 'sp', layer, 1, true) as number).toBeGreaterThan(GROWING);
    }
    expect(Math.abs(coordSlope(result, 'sp', 'embedding') as number)).toBeLessThan(FLAT);
  });

  it('validates its options', () => {
    expect(() => coordCheck({ widths: [32] })).toThrow(/at least 2 widths/);
    expect(() => coordCheck({ widths: [32, 50] })).toThrow(/width 50 is not divisible by nHeads 4/);
    expect(() => coordCheck({ widths: [32, 64], lr: 0 })).toThrow(/lr must be a positive number/);
    expect(() => coordCheck({ widths: [32, 64], parametrizations: ['ntk' as never] })).toThrow(/'sp' or 'mup'/);
  });
});

describe('logLogSlope', () => {
  it('fits the exponent of a power law and refuses non-positive values', () => {
    const xs = [32, 64, 128, 256];
    expect(logLogSlope(xs, xs.map((x) => 3 * x ** 0.5))).toBeCloseTo(0.5, 12);
    expect(logLogSlope(xs, xs.map(() => 2))).toBeCloseTo(0, 12);
    expect(logLogSlope(xs, [1, 0, 1, 1])).toBeNull();
    expect(() => logLogSlope([1, 2], [1])).toThrow(/2 x values but 1 y values/);
  });
});
