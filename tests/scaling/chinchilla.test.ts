/**
 * Chinchilla approach 3: the objective's gradient against finite differences, recovery of a
 * planted law (exact data with the full 4,500-start grid; noisy data within the noise's own
 * linearised standard errors), the compute-optimal allocation against brute force, and the
 * bootstrap's determinism and consistency.
 */
import { describe, expect, it } from 'vitest';
import {
  CHINCHILLA_GRID,
  approach3Objective,
  bootstrapApproach3,
  computeOptimal,
  fitApproach3,
  gridStarts,
  predictLoss,
  quantile,
  toLogData,
  type ScalingLaw,
  type ScalingPoint,
} from '../../src/scaling/chinchilla.js';
import { Generator } from '../../src/tensor/random.js';

const HOFFMANN: ScalingLaw = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };

function logSpace(lo: number, hi: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.exp(Math.log(lo) + ((Math.log(hi) - Math.log(lo)) * i) / (count - 1)));
}

/** Runs on an N × D grid with loss multiplied by exp(σ ε), ε standard normal. */
function synthetic(law: ScalingLaw, Ns: number[], Ds: number[], sigma: number, seed: number): ScalingPoint[] {
  const g = new Generator(seed);
  return Ns.flatMap((N) => Ds.map((D) => ({ N, D, loss: predictLoss(law, N, D) * Math.exp(sigma * g.normal()) })));
}

const REDUCED_STARTS = gridStarts({ a: [0, 5, 10], b: [0, 5, 10], e: [0, 0.5], alpha: [0.5, 1], beta: [0.5, 1] });

/** Inverse of a small symmetric positive-definite matrix (Gauss–Jordan). */
function inverse(M: number[][]): number[][] {
  const n = M.length;
  const A = M.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    [A[c], A[p]] = [A[p], A[c]];
    const pivot = A[c][c];
    for (let k = 0; k < 2 * n; k++) A[c][k] /= pivot;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r][c];
      for (let k = 0; k < 2 * n; k++) A[r][k] -= f * A[c][k];
    }
  }
  return A.map((row) => row.slice(n));
}

describe('approach 3 objective', () => {
  const g = new Generator(3);
  const points = synthetic(HOFFMANN, logSpace(3e7, 5e9, 5), logSpace(1e9, 3e11, 4), 0.05, 11);

  it('has an analytic gradient that matches central finite differences in both Huber regions', () => {
    const data = toLogData(points);
    // δ = 0.03 with 5% noise and perturbed parameters: some residuals are quadratic, some linear.
    const delta = 0.03;
    const objective = approach3Objective(data, delta);
    const grad = new Float64Array(5);
    const scratch = new Float64Array(5);
    for (let trial = 0; trial < 6; trial++) {
      const x = Float64Array.of(Math.log(HOFFMANN.A) + g.normal(), Math.log(HOFFMANN.B) + g.normal(), Math.log(HOFFMANN.E) + 0.1 * g.normal(), 0.34 + 0.05 * g.normal(), 0.28 + 0.05 * g.normal());
      objective(x, grad);
      // Precondition: the point exercises both branches of the Huber loss.
      const residuals = points.map((p) => Math.log(Math.exp(x[0] - x[3] * Math.log(p.N)) + Math.exp(x[1] - x[4] * Math.log(p.D)) + Math.exp(x[2])) - Math.log(p.loss));
      if (trial === 0) {
        expect(residuals.some((r) => Math.abs(r) < delta)).toBe(true);
        expect(residuals.some((r) => Math.abs(r) > delta)).toBe(true);
      }
      for (let j = 0; j < 5; j++) {
        const h = 1e-6;
        const xp = Float64Array.from(x);
        const xm = Float64Array.from(x);
        xp[j] += h;
        xm[j] -= h;
        const fd = (objective(xp, scratch) - objective(xm, scratch)) / (2 * h);
        expect(Math.abs(grad[j] - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
      }
    }
  });

  it('value is the sum of Huber losses of the log-space residuals', () => {
    const data = toLogData(points);
    const x = Float64Array.of(6, 6.2, 0.5, 0.3, 0.3);
    const delta = 0.02;
    let expected = 0;
    for (const p of points) {
      const r = Math.log(Math.exp(x[0] - x[3] * Math.log(p.N)) + Math.exp(x[1] - x[4] * Math.log(p.D)) + Math.exp(x[2])) - Math.log(p.loss);
      expected += Math.abs(r) <= delta ? 0.5 * r * r : delta * (Math.abs(r) - 0.5 * delta);
    }
    expect(approach3Objective(data, delta)(x, new Float64Array(5))).toBeCloseTo(expected, 12);
  });

  it('weights act as multiplicities: weight 2 equals a duplicated point, weight 0 a missing one', () => {
    const data = toLogData(points);
    const weights = new Float64Array(points.length).fill(1);
    weights[0] = 2;
    weights[1] = 0;
    const duplicated = toLogData([points[0], ...points.slice(2), points[0]]);
    const x = Float64Array.of(6, 6.2, 0.5, 0.3, 0.3);
    const g1 = new Float64Array(5);
    const g2 = new Float64Array(5);
    const f1 = approach3Objective({ ...data, weights })(x, g1);
    const f2 = approach3Objective(duplicated)(x, g2);
    expect(f1).toBeCloseTo(f2, 12);
    for (let j = 0; j < 5; j++) expect(g1[j]).toBeCloseTo(g2[j], 10);
  });
});

describe('fitApproach3', () => {
  it('recovers an exactly planted law with the full 4,500-start grid', () => {
    const points = synthetic(HOFFMANN, [1e7, 1e8, 1e9, 1e10], [1e8, 1e9, 1e10, 1e11], 0, 0);
    const fit = fitApproach3(points);
    expect(fit.starts).toBe(4500);
    expect(fit.points).toBe(16);
    for (const key of ['E', 'A', 'B', 'alpha', 'beta'] as const) expect(Math.abs(fit[key] / HOFFMANN[key] - 1)).toBeLessThan(1e-6);
    expect(fit.loss).toBeLessThan(1e-20);
    expect(fit.startsAtBest).toBeGreaterThanOrEqual(1);
    expect(fit.bestStarts.length).toBe(32);
    expect(fit.bestStarts[0].loss).toBe(fit.loss);
  });

  it('recovers a noisy planted law within 4 standard errors implied by the noise', () => {
    // σ = 3e-4 in log loss keeps residuals inside δ = 1e-3, so the fit is least squares and its
    // covariance is σ² (JᵀJ)⁻¹ with J the Jacobian of the log-space model at the truth.
    const sigma = 3e-4;
    const Ns = logSpace(1e7, 1e10, 8);
    const Ds = logSpace(1e8, 1e12, 8);
    const points = synthetic(HOFFMANN, Ns, Ds, sigma, 5);
    const fit = fitApproach3(points, { starts: REDUCED_STARTS });
    const truth = [Math.log(HOFFMANN.A), Math.log(HOFFMANN.B), Math.log(HOFFMANN.E), HOFFMANN.alpha, HOFFMANN.beta];
    const JtJ = Array.from({ length: 5 }, () => new Array<number>(5).fill(0));
    for (const p of points) {
      const t1 = HOFFMANN.A / p.N ** HOFFMANN.alpha;
      const t2 = HOFFMANN.B / p.D ** HOFFMANN.beta;
      const s = t1 + t2 + HOFFMANN.E;
      const row = [t1 / s, t2 / s, HOFFMANN.E / s, (-t1 / s) * Math.log(p.N), (-t2 / s) * Math.log(p.D)];
      for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) JtJ[i][j] += row[i] * row[j];
    }
    const cov = inverse(JtJ);
    const estimate = [fit.a, fit.b, fit.e, fit.alpha, fit.beta];
    for (let j = 0; j < 5; j++) {
      const se = sigma * Math.sqrt(cov[j][j]);
      expect(Math.abs(estimate[j] - truth[j])).toBeLessThan(4 * se);
    }
    // The optimum is at least as good as the truth (a global-minimum necessary condition).
    const objective = approach3Objective(toLogData(points));
    expect(fit.loss).toBeLessThanOrEqual(objective(Float64Array.from(truth), new Float64Array(5)));
    // α and β well inside their planted neighbourhood (the standard errors are ~1e-3 here).
    expect(Math.abs(fit.alpha - 0.34)).toBeLessThan(0.01);
    expect(Math.abs(fit.beta - 0.28)).toBeLessThan(0.01);
  });

  it('rejects bad input with errors naming the problem', () => {
    const ok = synthetic(HOFFMANN, [1e7, 1e8, 1e9], [1e9, 1e10], 0, 0);
    expect(() => fitApproach3(ok.slice(0, 4))).toThrow(/at least 5 runs.*got 4/);
    expect(() => fitApproach3([...ok.slice(0, 5), { N: -1, D: 1e9, loss: 3 }])).toThrow(/point 5 has N = -1/);
    expect(() => fitApproach3([...ok.slice(0, 5), { N: 1e8, D: 1e9, loss: NaN }])).toThrow(/point 5 has loss = NaN/);
    expect(() => fitApproach3(ok, { starts: [[1, 2, 3]] })).toThrow(/5 finite numbers/);
    expect(() => fitApproach3(ok, { delta: 0 })).toThrow(/delta must be a finite positive number/);
    expect(() => gridStarts({ ...CHINCHILLA_GRID, e: [] })).toThrow(/'e' must be a non-empty list/);
  });
});

describe('computeOptimal', () => {
  it('matches a brute-force minimisation of L along 6ND = C', () => {
    for (const C of [1e19, 5.76e23, 1e26]) {
      const o = computeOptimal(HOFFMANN, C);
      expect(6 * o.N * o.D).toBeCloseTo(C, -Math.floor(Math.log10(C)) + 10);
      expect(o.tokensPerParameter).toBeCloseTo(o.D / o.N, 10);
      expect(o.a + o.b).toBeCloseTo(1, 14);
      // Golden-section search over ln N for min L(N, C / 6N).
      const loss = (lnN: number) => predictLoss(HOFFMANN, Math.exp(lnN), C / (6 * Math.exp(lnN)));
      let lo = Math.log(1e3);
      let hi = Math.log(C / 6 / 1e3);
      const phi = (Math.sqrt(5) - 1) / 2;
      for (let i = 0; i < 200; i++) {
        const m1 = hi - phi * (hi - lo);
        const m2 = lo + phi * (hi - lo);
        if (loss(m1) < loss(m2)) hi = m2;
        else lo = m1;
      }
      expect(Math.abs(Math.log(o.N) - (lo + hi) / 2)).toBeLessThan(1e-6);
      expect(o.loss).toBeCloseTo(loss((lo + hi) / 2), 10);
    }
  });

  it('gives the exponents a = β/(α+β), b = α/(α+β)', () => {
    const o = computeOptimal(HOFFMANN, 1e21);
    expect(o.a).toBeCloseTo(0.28 / 0.62, 14);
    expect(o.b).toBeCloseTo(0.34 / 0.62, 14);
    const o10 = computeOptimal(HOFFMANN, 1e22);
    expect(Math.log10(o10.N / o.N)).toBeCloseTo(o.a, 10);
  });

  it('refuses a law without an optimum and a bad budget', () => {
    expect(() => computeOptimal({ ...HOFFMANN, beta: 0 }, 1e21)).toThrow(/alpha > 0 and beta > 0/);
    expect(() => computeOptimal(HOFFMANN, -1)).toThrow(/C \(training FLOPs\) must be a finite positive number/);
  });
});

describe('bootstrapApproach3', () => {
  const points = synthetic(HOFFMANN, logSpace(1e7, 1e10, 6), logSpace(1e8, 1e12, 5), 0.01, 9);
  const fit = fitApproach3(points, { starts: REDUCED_STARTS });

  it('is deterministic for a seed, differs across seeds, and brackets the estimate', () => {
    const a = bootstrapApproach3(points, fit, { resamples: 12, seed: 4, starts: 4, compute: [1e21] });
    const b = bootstrapApproach3(points, fit, { resamples: 12, seed: 4, starts: 4, compute: [1e21] });
    const c = bootstrapApproach3(points, fit, { resamples: 12, seed: 5, starts: 4, compute: [1e21] });
    expect(a.samples).toEqual(b.samples);
    expect(a.samples).not.toEqual(c.samples);
    expect(a.startsPerResample).toBe(5);
    expect(a.startSet).toMatch(/optimum plus its 4 best grid starts/);
    for (const key of ['E', 'A', 'B', 'alpha', 'beta'] as const) {
      const i = a[key];
      expect(i.estimate).toBe(fit[key]);
      expect(i.lower).toBeLessThan(i.upper);
      const sorted = a.samples.map((s) => s[key]).sort((x, y) => x - y);
      expect(i.lower).toBe(quantile(sorted, 0.025));
      expect(i.upper).toBe(quantile(sorted, 0.975));
    }
    const tpp = a.compute[0].tokensPerParameter;
    expect(tpp).not.toBeNull();
    expect(tpp!.estimate).toBeCloseTo(computeOptimal(fit, 1e21).tokensPerParameter, 12);
    expect(tpp!.lower).toBeLessThan(tpp!.upper);
    expect(a.compute[0].excluded).toBe(0);
  });

  it('nests intervals by level (same resamples, wider coverage)', () => {
    const narrow = bootstrapApproach3(points, fit, { resamples: 12, seed: 1, starts: 2, level: 0.5 });
    const wide = bootstrapApproach3(points, fit, { resamples: 12, seed: 1, starts: 2, level: 0.9 });
    for (const key of ['E', 'alpha', 'beta'] as const) {
      expect(wide[key].lower).toBeLessThanOrEqual(narrow[key].lower);
      expect(wide[key].upper).toBeGreaterThanOrEqual(narrow[key].upper);
    }
  });

  it('the reduced start set finds the same resample optima as the full start set', () => {
    const reduced = bootstrapApproach3(points, fit, { resamples: 3, seed: 2, starts: 3 });
    const full = bootstrapApproach3(points, fit, { resamples: 3, seed: 2, starts: 'full', fullStarts: REDUCED_STARTS });
    expect(full.startsPerResample).toBe(REDUCED_STARTS.length);
    for (let r = 0; r < 3; r++) {
      for (const key of ['E', 'alpha', 'beta'] as const) expect(reduced.samples[r][key]).toBeCloseTo(full.samples[r][key], 6);
    }
  });

  it('rejects bad options', () => {
    expect(() => bootstrapApproach3(points, fit, { resamples: 0 })).toThrow(/resamples must be a positive integer/);
    expect(() => bootstrapApproach3(points, fit, { level: 1 })).toThrow(/level must be in \(0, 1\)/);
    expect(() => bootstrapApproach3(points, fit, { starts: 100 })).toThrow(/kept only 32 best starts/);
    expect(() => bootstrapApproach3(points.slice(1), fit)).toThrow(/made on 30 points but 29 were given/);
  });
});
