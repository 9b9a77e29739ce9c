/** Median and ASHA pruners on synthetic learning curves. */
import { describe, expect, it } from 'vitest';
import { AshaPruner, MedianPruner, valueAtOrBefore, type Pruner } from '../../src/tune/pruners.js';
import { Generator } from '../../src/tensor/random.js';
import type { Intermediate, TrialRecord } from '../../src/tune/types.js';
import { curve, fakeTrial } from './helpers/trials.js';

const STEPS = [10, 20, 30, 40, 50, 60, 70, 80, 90];

const complete = (n: number, floor: number, steps = STEPS) => fakeTrial(n, {}, floor, 'complete', curve(steps, floor));
const ask = (p: Pruner, intermediates: Intermediate[], others: TrialRecord[]) => p.shouldPrune({ trial: { number: 99, intermediates }, others });

/**
 * Runs trials one after another through a pruner; each reports at STEPS until pruned.
 * Returns which were pruned and the steps spent.
 */
function simulate(pruner: Pruner, floors: readonly number[]): { pruned: boolean[]; steps: number } {
  const done: TrialRecord[] = [];
  const pruned: boolean[] = [];
  let steps = 0;
  floors.forEach((floor, n) => {
    const full = curve(STEPS, floor);
    const seen: Intermediate[] = [];
    let stopped = false;
    for (const point of full) {
      seen.push(point);
      steps += 10;
      if (point.step < STEPS[STEPS.length - 1] && pruner.shouldPrune({ trial: { number: n, intermediates: seen }, others: done })) {
        stopped = true;
        break;
      }
    }
    pruned.push(stopped);
    done.push(fakeTrial(n, {}, seen[seen.length - 1].value, stopped ? 'pruned' : 'complete', [...seen]));
  });
  return { pruned, steps };
}

function randomFloors(n: number, seed: number): number[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => 1 + 2 * g.random());
}

describe('valueAtOrBefore', () => {
  it("takes another trial's last report at or before the step", () => {
    const r = [
      { step: 10, value: 3 },
      { step: 25, value: 2 },
    ];
    expect(valueAtOrBefore(r, 5)).toBeNull();
    expect(valueAtOrBefore(r, 10)).toBe(3);
    expect(valueAtOrBefore(r, 24)).toBe(3);
    expect(valueAtOrBefore(r, 100)).toBe(2);
  });
});

describe('median pruner', () => {
  const others = [complete(0, 1.0), complete(1, 2.0), complete(2, 3.0)];

  it('prunes a trial whose best so far is worse than the median of complete trials at that step', () => {
    const p = new MedianPruner(3, 0);
    expect(ask(p, curve([10, 20], 2.5), others)).toBe(true);
    expect(ask(p, curve([10, 20], 1.5), others)).toBe(false);
    // Best so far, not latest: a noisy uptick below the median's level does not prune.
    const median20 = curve([20], 2.0)[0].value;
    expect(ask(p, [{ step: 10, value: median20 - 0.01 }, { step: 20, value: median20 + 0.5 }], others)).toBe(false);
  });

  it('waits for nStartupTrials complete trials and for nWarmupSteps', () => {
    expect(ask(new MedianPruner(4, 0), curve([10], 2.9), others)).toBe(false);
    expect(ask(new MedianPruner(3, 30), curve([10, 20], 2.9), others)).toBe(false);
    expect(ask(new MedianPruner(3, 30), curve([10, 20, 30], 2.9), others)).toBe(true);
  });

  it('only complete trials vote, and misaligned evaluations compare with the last report before', () => {
    const mixed = [fakeTrial(0, {}, 0.5, 'pruned', curve([10], 0.5)), fakeTrial(1, {}, null, 'running', curve([10], 0.5)), complete(2, 3.0)];
    expect(ask(new MedianPruner(1, 0), curve([10], 2.0), mixed)).toBe(false);
    // The complete trial reported at 10 and 30; at step 25 its value at 10 is used.
    const sparse = [complete(0, 2.0, [10, 30])];
    const at10 = curve([10], 2.0)[0].value;
    expect(ask(new MedianPruner(1, 0), [{ step: 25, value: at10 + 0.01 }], sparse)).toBe(true);
    expect(ask(new MedianPruner(1, 0), [{ step: 25, value: at10 - 0.01 }], sparse)).toBe(false);
    expect(ask(new MedianPruner(1, 0), [{ step: 5, value: 9 }], sparse)).toBe(false);
  });

  it('prunes a NaN at once', () => {
    expect(ask(new MedianPruner(99, 1000), [{ step: 10, value: Number.NaN }], [])).toBe(true);
  });

  it('on 30 random non-crossing curves: never prunes the best, saves over a third of the steps', () => {
    for (const seed of [1, 2, 3]) {
      const floors = randomFloors(30, seed);
      const { pruned, steps } = simulate(new MedianPruner(5, 0), floors);
      const best = floors.indexOf(Math.min(...floors));
      expect(pruned[best]).toBe(false);
      expect(pruned.slice(0, 5).every((p) => !p)).toBe(true);
      // Every pruned trial was worse than the median of the complete ones before it.
      expect(steps).toBeLessThan((2 / 3) * 30 * 90);
      // A trial is kept only if it beat the running median: the complete ones are mostly good.
      const keptMean = floors.filter((_, i) => !pruned[i]).reduce((s, x) => s + x, 0) / pruned.filter((p) => !p).length;
      expect(keptMean).toBeLessThan(floors.reduce((s, x) => s + x, 0) / floors.length);
    }
  });

  it('rejects bad settings', () => {
    expect(() => new MedianPruner(-1, 0)).toThrow(/nStartupTrials must be a non-negative integer/);
    expect(() => new MedianPruner(1, -5)).toThrow(/nWarmupSteps must be ≥ 0/);
  });
});

describe('ASHA pruner', () => {
  it('places rungs at minResource·η^(k + s)', () => {
    const p = new AshaPruner(10, 3, 0);
    expect([0, 1, 2].map((k) => p.rung(k))).toEqual([10, 30, 90]);
    expect(new AshaPruner(10, 2, 1).rung(0)).toBe(20);
  });

  it('promotes the top 1/η at a rung and prunes the rest, deciding only when a rung is reached', () => {
    const p = new AshaPruner(10, 3);
    // Eight trials reached rung 10 with values 1..8; with the new one that is 9 → top 3 continue.
    const others = Array.from({ length: 8 }, (_, i) => fakeTrial(i, {}, null, i % 2 ? 'pruned' : 'complete', [{ step: 10, value: i + 1 }]));
    expect(ask(p, [{ step: 10, value: 2.5 }], others)).toBe(false);
    expect(ask(p, [{ step: 10, value: 3.5 }], others)).toBe(true);
    // At step 20 no new rung is reached: no decision, however bad.
    expect(ask(p, [{ step: 10, value: 2.5 }, { step: 20, value: 100 }], others)).toBe(false);
  });

  it('keeps only the best while fewer than η trials reached the rung, and the first trial always', () => {
    const p = new AshaPruner(10, 3);
    expect(ask(p, [{ step: 10, value: 50 }], [])).toBe(false);
    const one = [fakeTrial(0, {}, null, 'running', [{ step: 10, value: 2 }])];
    expect(ask(p, [{ step: 10, value: 1.9 }], one)).toBe(false);
    expect(ask(p, [{ step: 10, value: 2.1 }], one)).toBe(true);
  });

  it('uses the first report past a rung, and checks every rung a sparse report crosses', () => {
    const p = new AshaPruner(10, 3);
    // The others evaluated at 15 and 45: their rung-10 value is the one at 15, their rung-30 value the one at 45.
    const others = Array.from({ length: 5 }, (_, i) => fakeTrial(i, {}, null, 'complete', [{ step: 15, value: 10 + i }, { step: 45, value: i }]));
    // This trial jumps from nothing to step 40: it crosses rungs 10 and 30 with value 2.
    // Rung 10: competing 10..14 and 2 → best, kept. Rung 30: 0..4 and 2 → 6 values, top 2 are 0 and 1 → pruned.
    expect(ask(p, [{ step: 40, value: 2 }], others)).toBe(true);
    expect(ask(p, [{ step: 40, value: 0.5 }], others)).toBe(false);
    expect(AshaPruner.valueAtRung([{ step: 45, value: 1 }, { step: 15, value: 2 }], 10)).toBe(2);
    expect(AshaPruner.valueAtRung([{ step: 5, value: 1 }], 10)).toBeNull();
  });

  it('on 27 random non-crossing curves: never prunes the best, and few trials get the full budget', () => {
    for (const seed of [4, 5, 6]) {
      const floors = randomFloors(27, seed);
      const { pruned, steps } = simulate(new AshaPruner(10, 3), floors);
      expect(pruned[floors.indexOf(Math.min(...floors))]).toBe(false);
      expect(pruned.filter((p) => !p).length).toBeLessThanOrEqual(12);
      expect(steps).toBeLessThan(0.5 * 27 * 90);
    }
  });

  it('rejects bad settings', () => {
    expect(() => new AshaPruner(0)).toThrow(/minResource must be positive/);
    expect(() => new AshaPruner(10, 1)).toThrow(/reductionFactor must be ≥ 2/);
    expect(() => new AshaPruner(10, 3, 0.5)).toThrow(/minEarlyStoppingRate must be a non-negative integer/);
  });
});
