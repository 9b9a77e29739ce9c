/** Chinchilla approach 2: planted IsoFLOP parabolas, skip rules, grouping, and agreement with approach 3's law. */
import { describe, expect, it } from 'vitest';
import { computeOptimal, predictLoss, type ScalingLaw } from '../../src/scaling/chinchilla.js';
import { fitApproach2, fitParabola, fitPowerLaw, type IsoflopRun } from '../../src/scaling/isoflop.js';

const A_PLANTED = 0.45;
const K_PLANTED = 0.1;
const BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21];
const OFFSETS = [-1.3, -0.7, -0.2, 0.4, 0.9, 1.5]; // ln N − ln N_opt: deliberately asymmetric

/** Runs whose loss is exactly a parabola in ln N with its vertex at N_opt = k C^a. */
function plantedRuns(budgets = BUDGETS, jitter = 0): IsoflopRun[] {
  return budgets.flatMap((C) => {
    const lnOpt = Math.log(K_PLANTED * C ** A_PLANTED);
    const floor = 2 + 10 * C ** -0.1;
    return OFFSETS.map((o, i) => {
      // Alternating ±jitter in C: the budget's geometric mean stays exactly C.
      const c = C * Math.exp(i % 2 === 0 ? jitter : -jitter);
      const N = Math.exp(lnOpt + o);
      return { N, D: c / (6 * N), C: c, loss: floor + 0.05 * o * o };
    });
  });
}

describe('fitApproach2', () => {
  it('recovers the planted exponents and coefficients exactly', () => {
    const result = fitApproach2(plantedRuns(BUDGETS, 0.04));
    expect(result.budgets).toHaveLength(BUDGETS.length);
    expect(result.reason).toBeNull();
    result.budgets.forEach((b, i) => {
      expect(b.C / BUDGETS[i]).toBeCloseTo(1, 12);
      expect(b.runs).toHaveLength(OFFSETS.length);
      expect(Math.log(b.Nopt!)).toBeCloseTo(Math.log(K_PLANTED * BUDGETS[i] ** A_PLANTED), 8);
      expect(b.Dopt! * 6 * b.Nopt!).toBeCloseTo(b.C, -Math.floor(Math.log10(b.C)) + 8);
      expect(b.parabola!.c2).toBeCloseTo(0.05, 10);
      expect(b.extrapolated).toBe(false);
    });
    expect(result.N!.exponent).toBeCloseTo(A_PLANTED, 9);
    expect(result.N!.k).toBeCloseTo(K_PLANTED, 9);
    expect(result.D!.exponent).toBeCloseTo(1 - A_PLANTED, 9);
    expect(result.D!.k).toBeCloseTo(1 / (6 * K_PLANTED), 8);
    expect(result.N!.r2).toBeCloseTo(1, 12);
    expect(result.N!.budgets).toBe(BUDGETS.length);
  });

  it('skips budgets with fewer than 3 runs or a downward parabola, and says why', () => {
    const runs = plantedRuns();
    // Two runs at 1e22, and a concave profile at 1e23.
    runs.push({ N: 1e10, D: 1e22 / 6e10, C: 1e22, loss: 2.1 }, { N: 2e10, D: 1e22 / 12e10, C: 1e22, loss: 2.0 });
    for (const o of [-1, 0, 1, 2]) {
      const N = 3e10 * Math.exp(o);
      runs.push({ N, D: 1e23 / (6 * N), C: 1e23, loss: 2 - 0.1 * o * o });
    }
    const result = fitApproach2(runs);
    const two = result.budgets.find((b) => Math.abs(Math.log10(b.C) - 22) < 1e-9)!;
    expect(two.Nopt).toBeNull();
    expect(two.reason).toMatch(/only 2 runs \(a parabola needs at least 3\)/);
    const concave = result.budgets.find((b) => Math.abs(Math.log10(b.C) - 23) < 1e-9)!;
    expect(concave.Nopt).toBeNull();
    expect(concave.reason).toMatch(/opens downwards/);
    // The skipped budgets do not disturb the power laws.
    expect(result.N!.exponent).toBeCloseTo(A_PLANTED, 9);
    expect(result.N!.budgets).toBe(BUDGETS.length);
  });

  it('skips budgets with fewer than 3 distinct model sizes', () => {
    const runs = plantedRuns([1e19, 1e20]);
    runs.push(...[2.5, 2.6, 2.7].map((loss, i) => ({ N: i < 2 ? 1e9 : 2e9, D: 1e21 / 6e9, C: 1e21, loss })));
    const result = fitApproach2(runs);
    expect(result.budgets[2].reason).toMatch(/fewer than 3 distinct model sizes/);
  });

  it('flags a vertex outside the sampled N as extrapolated', () => {
    const runs = [0.5, 1, 1.5, 2].map((o) => {
      const N = 1e9 * Math.exp(o);
      return { N, D: 1e20 / (6 * N), C: 1e20, loss: 2 + 0.1 * o * o };
    });
    const result = fitApproach2(runs);
    expect(result.budgets[0].Nopt).toBeCloseTo(1e9, -1);
    expect(result.budgets[0].extrapolated).toBe(true);
    expect(result.N).toBeNull();
    expect(result.reason).toMatch(/only 1 budget gave a minimum; the power laws need at least 2/);
  });

  it('assigns runs to explicit budgets within the tolerance and reports the rest', () => {
    const runs = plantedRuns([1e19, 1e20, 1e21], 0.03);
    runs.push({ N: 1e9, D: 3e20 / 6e9, C: 3e20, loss: 2.5 }); // 0.48 decades from any budget
    const result = fitApproach2(runs, { budgets: [1e21, 1e19, 1e20, 1e20], tolerance: 0.1 });
    expect(result.budgets.map((b) => b.C)).toEqual([1e19, 1e20, 1e21]);
    expect(result.budgets.map((b) => b.runs.length)).toEqual([6, 6, 6]);
    expect(result.unassigned).toHaveLength(1);
    expect(result.N!.exponent).toBeCloseTo(A_PLANTED, 9);
    // A tolerance narrower than the jitter leaves runs unassigned.
    expect(fitApproach2(runs, { budgets: [1e19, 1e20, 1e21], tolerance: 0.01 }).unassigned).toHaveLength(runs.length);
  });

  it("agrees with approach 3's compute-optimal exponent on IsoFLOP runs generated from a law", () => {
    const law: ScalingLaw = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };
    const budgets = [1e18, 1e19, 1e20, 1e21, 1e22];
    const runs = budgets.flatMap((C) => {
      const center = Math.log(computeOptimal(law, C).N);
      return [-0.6, -0.3, 0, 0.3, 0.6].map((o) => {
        const N = Math.exp(center + o);
        const D = C / (6 * N);
        return { N, D, C, loss: predictLoss(law, N, D) };
      });
    });
    const result = fitApproach2(runs);
    // About its optimum y = ln N − ln N_opt the profile is E + K(C)(e^(−αy) + (α/β) e^(βy)): the
    // same shape at every budget, only scaled. The parabola's vertex is off by the same amount
    // in y everywhere (~0.3% of N here), so N_opt is slightly biased but the exponent is exact.
    for (const b of result.budgets) expect(Math.abs(Math.log(b.Nopt! / computeOptimal(law, b.C).N))).toBeLessThan(0.005);
    expect(result.N!.exponent).toBeCloseTo(law.beta / (law.alpha + law.beta), 10);
    expect(result.D!.exponent).toBeCloseTo(law.alpha / (law.alpha + law.beta), 10);
  });

  it('rejects bad input', () => {
    expect(() => fitApproach2(plantedRuns(), { tolerance: 0 })).toThrow(/tolerance must be a finite positive number/);
    expect(() => fitApproach2(plantedRuns(), { budgets: [] })).toThrow(/budgets must not be empty/);
    expect(() => fitApproach2(plantedRuns(), { budgets: [1e20, -1] })).toThrow(/budgets must be finite positive FLOP counts, got -1/);
    expect(() => fitApproach2([{ N: 1e9, D: 1e10, C: NaN, loss: 2 }])).toThrow(/run 0 has C = NaN/);
  });
});

describe('least-squares helpers', () => {
  it('fitParabola recovers exact coefficients and refuses degenerate x', () => {
    const x = [1, 2, 4, 7, 8];
    const p = fitParabola(
      x,
      x.map((v) => 3 - 2 * v + 0.5 * v * v),
    )!;
    // Expand the centred form back to powers of x.
    const c2 = p.c2;
    const c1 = p.c1 - 2 * p.c2 * p.center;
    const c0 = p.c0 - p.c1 * p.center + p.c2 * p.center * p.center;
    expect(c0).toBeCloseTo(3, 10);
    expect(c1).toBeCloseTo(-2, 10);
    expect(c2).toBeCloseTo(0.5, 10);
    expect(fitParabola([1, 1, 2, 2], [1, 2, 3, 4])).toBeNull();
  });

  it('fitPowerLaw: exact on power laws, standard error only from 3 budgets', () => {
    const C = [1e18, 1e19, 1e20];
    const fit = fitPowerLaw(C, C.map((c) => 2 * c ** 0.3));
    expect(fit.exponent).toBeCloseTo(0.3, 12);
    expect(fit.k).toBeCloseTo(2, 9);
    expect(fit.exponentStdErr).toBeCloseTo(0, 9);
    expect(fitPowerLaw(C.slice(0, 2), [1, 2]).exponentStdErr).toBeNull();
    expect(() => fitPowerLaw([1e20, 1e20], [1, 2])).toThrow(/same C/);
  });
});
