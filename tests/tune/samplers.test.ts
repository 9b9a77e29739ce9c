/** Grid, random and TPE samplers on synthetic objectives (no training). */
import { describe, expect, it } from 'vitest';
import { buildParzen, categoricalMixture, defaultGamma, defaultWeights, GridSampler, parzenLogPdf, RandomSampler, sampleParzen, TpeSampler, type Sampler } from '../../src/tune/samplers.js';
import { trialGenerator } from '../../src/tune/math.js';
import type { Params, SearchSpace } from '../../src/tune/space.js';
import type { TrialRecord } from '../../src/tune/types.js';
import { fakeTrial } from './helpers/trials.js';

/** Runs a sampler sequentially on an objective, like one worker would. */
function optimise(sampler: Sampler, space: SearchSpace, f: (p: Params) => number, trials: number, seed: number): TrialRecord[] {
  const history: TrialRecord[] = [];
  for (let i = 0; i < trials; i++) {
    const params = sampler.sample({ space, history, number: i, seed });
    if (params === null) break;
    history.push(fakeTrial(i, params, f(params)));
  }
  return history;
}

describe('grid sampler', () => {
  const space: SearchSpace = {
    warmupSteps: { type: 'int', low: 0, high: 20, step: 10 },
    'model.norm': { type: 'choice', values: ['layer', 'rms'] },
    lr: { type: 'logUniform', low: 1e-4, high: 1e-2 },
    weightDecay: { type: 'uniform', low: 0, high: 0.1 },
  };

  it('enumerates the whole cross product once, first option slowest, then stops', () => {
    const grid = new GridSampler(3);
    expect(grid.size(space)).toBe(3 * 2 * 3 * 3);
    const history = optimise(grid, space, () => 1, 1000, 0);
    expect(history).toHaveLength(54);
    const seen = new Set(history.map((t) => JSON.stringify(t.params)));
    expect(seen.size).toBe(54);
    for (const w of [0, 10, 20]) for (const n of ['layer', 'rms']) for (const lr of [1e-4, 1e-3, 1e-2]) for (const wd of [0, 0.05, 0.1]) {
      const found = history.some((t) => t.params.warmupSteps === w && t.params['model.norm'] === n && Math.abs((t.params.lr as number) / lr - 1) < 1e-12 && Math.abs((t.params.weightDecay as number) - wd) < 1e-12);
      expect(found, `grid point ${w} ${n} ${lr} ${wd}`).toBe(true);
    }
    expect(history[0].params).toEqual({ warmupSteps: 0, 'model.norm': 'layer', lr: 1e-4, weightDecay: 0 });
    expect(history[1].params).toEqual({ warmupSteps: 0, 'model.norm': 'layer', lr: 1e-4, weightDecay: 0.05 });
    expect(history[53].params).toEqual({ warmupSteps: 20, 'model.norm': 'rms', lr: 1e-2, weightDecay: 0.1 });
  });

  it('skips points other workers already took, whatever order they came in', () => {
    const grid = new GridSampler(2);
    const small: SearchSpace = { warmupSteps: { type: 'int', low: 0, high: 2 }, 'model.norm': { type: 'choice', values: ['layer', 'rms'] } };
    const taken = [fakeTrial(0, grid.pointAt(small, 3), null, 'running'), fakeTrial(1, grid.pointAt(small, 0), 1, 'failed')];
    expect(grid.sample({ space: small, history: taken, number: 2, seed: 0 })).toEqual(grid.pointAt(small, 1));
  });
});

describe('random sampler', () => {
  const space: SearchSpace = {
    lr: { type: 'logUniform', low: 1e-5, high: 1e-1 },
    weightDecay: { type: 'uniform', low: 0, high: 0.3, step: 0.1 },
    beta2: { type: 'uniform', low: 0.9, high: 0.99 },
    batchSize: { type: 'int', low: 1, high: 64, log: true },
    warmupSteps: { type: 'int', low: 0, high: 4 },
    'model.norm': { type: 'choice', values: ['layer', 'rms', null] },
  };

  it('is a function of (seed, trial number): reproducible, and different across trials and seeds', () => {
    const r = new RandomSampler();
    const a = r.sample({ space, history: [], number: 5, seed: 42 });
    expect(r.sample({ space, history: [fakeTrial(0, {}, 1)], number: 5, seed: 42 })).toEqual(a);
    expect(r.sample({ space, history: [], number: 6, seed: 42 })).not.toEqual(a);
    expect(r.sample({ space, history: [], number: 5, seed: 43 })).not.toEqual(a);
  });

  it('covers each distribution with the right shape', () => {
    const r = new RandomSampler();
    const draws = Array.from({ length: 4000 }, (_, i) => r.sample({ space, history: [], number: i, seed: 7 }));
    const lrs = draws.map((p) => p.lr as number);
    expect(Math.min(...lrs)).toBeGreaterThanOrEqual(1e-5);
    expect(Math.max(...lrs)).toBeLessThanOrEqual(1e-1);
    // Log-uniform: each decade gets a quarter (binomial sd ≈ 0.007 at n = 4000).
    for (let d = -5; d < -1; d++) expect(Math.abs(lrs.filter((x) => x >= 10 ** d && x < 10 ** (d + 1)).length / 4000 - 0.25)).toBeLessThan(0.03);
    expect(new Set(draws.map((p) => p.weightDecay))).toEqual(new Set([0, 0.1, 0.2, 0.3]));
    expect(new Set(draws.map((p) => p.warmupSteps))).toEqual(new Set([0, 1, 2, 3, 4]));
    expect(new Set(draws.map((p) => p['model.norm']))).toEqual(new Set(['layer', 'rms', null]));
    const batch = draws.map((p) => p.batchSize as number);
    expect(batch.every((b) => Number.isInteger(b) && b >= 1 && b <= 64)).toBe(true);
    // Log-uniform over [0.5, 64.5], rounded: P(b ≤ 8) = ln(8.5 / 0.5) / ln(64.5 / 0.5) ≈ 0.583.
    expect(Math.abs(batch.filter((b) => b <= 8).length / 4000 - Math.log(17) / Math.log(129))).toBeLessThan(0.03);
    expect(batch.filter((b) => b === 1).length).toBeGreaterThan(0);
    expect(batch.filter((b) => b === 64).length).toBeGreaterThan(0);
    const beta2 = draws.map((p) => p.beta2 as number);
    expect(Math.abs(beta2.reduce((s, x) => s + x, 0) / 4000 - 0.945)).toBeLessThan(0.002);
  });

  it('per-trial streams are independent of each other', () => {
    // Adjacent trial numbers and seeds must not give correlated first draws.
    const xs = Array.from({ length: 2000 }, (_, i) => trialGenerator(1, i).random());
    const ys = Array.from({ length: 2000 }, (_, i) => trialGenerator(1, i + 1).random());
    const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
    const [mx, my] = [mean(xs), mean(ys)];
    const cov = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0) / xs.length;
    expect(Math.abs(cov / (1 / 12))).toBeLessThan(0.08);
  });
});

describe('TPE', () => {
  it('follows Optuna: gamma, weights, kernel widths with magic clip, a prior kernel', () => {
    expect([1, 9, 10, 11, 100, 1000].map(defaultGamma)).toEqual([1, 1, 1, 2, 10, 25]);
    expect(defaultWeights(3)).toEqual([1, 1, 1]);
    const w = defaultWeights(30);
    expect(w).toHaveLength(30);
    expect(w[0]).toBeCloseTo(1 / 30, 12);
    expect(w[4]).toBeCloseTo(1, 12);
    expect(w.slice(5)).toEqual(new Array(25).fill(1));
    // Observations 0.2 and 0.7 on [0, 1]: sorted with the prior mid 0.5 and the ends,
    // 0 | 0.2 | 0.5 | 0.7 | 1 → widths: first and last use their inner gap (0.3, 0.2);
    // minimum width 1 / (1 + 3) = 0.25 → [0.3, 0.25]; prior width 1.
    const m = buildParzen([0.2, 0.7], 0, 1, 1, defaultWeights);
    expect(m.mus).toEqual([0.2, 0.7, 0.5]);
    expect(m.sigmas[0]).toBeCloseTo(0.3, 12);
    expect(m.sigmas[1]).toBeCloseTo(0.25, 12);
    expect(m.sigmas[2]).toBe(1);
    expect(m.weights).toEqual([1 / 3, 1 / 3, 1 / 3]);
    // The truncated mixture is a density on [low, high]: it integrates to 1.
    let integral = 0;
    for (let i = 0; i < 10000; i++) integral += Math.exp(parzenLogPdf(m, (i + 0.5) / 10000)) / 10000;
    expect(integral).toBeCloseTo(1, 4);
    const gen = trialGenerator(0, 0);
    for (let i = 0; i < 200; i++) {
      const x = sampleParzen(m, gen);
      expect(x >= 0 && x <= 1).toBe(true);
    }
    // Categorical: each observation's kernel puts most mass on its category; a prior smooths.
    const p = categoricalMixture([0, 0, 2], 3, 1, defaultWeights);
    expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
    expect(p[0]).toBeGreaterThan(p[2]);
    expect(p[2]).toBeGreaterThan(p[1]);
    expect(p[1]).toBeGreaterThan(0);
  });

  it('is random for the startup trials, then ranks pruned trials after complete ones', () => {
    const space: SearchSpace = { lr: { type: 'logUniform', low: 1e-4, high: 1e-2 } };
    const tpe = new TpeSampler({ nStartupTrials: 3 });
    const random = new RandomSampler();
    const history = [fakeTrial(0, { lr: 1e-3 }, 1), fakeTrial(1, { lr: 2e-3 }, 2)];
    expect(tpe.sample({ space, history, number: 2, seed: 3 })).toEqual(random.sample({ space, history, number: 2, seed: 3 }));
    const ranked = TpeSampler.rank([
      fakeTrial(0, {}, 3, 'pruned', [{ step: 10, value: 3 }]),
      fakeTrial(1, {}, 2.5),
      fakeTrial(2, {}, 2.9, 'pruned', [{ step: 10, value: 2.9 }]),
      fakeTrial(3, {}, 3.5, 'pruned', [{ step: 10, value: 4 }, { step: 20, value: 3.5 }]),
      fakeTrial(4, {}, null, 'failed'),
      fakeTrial(5, {}, null, 'running'),
      fakeTrial(6, {}, 1.5),
    ]);
    expect(ranked.map((t) => t.number)).toEqual([6, 1, 3, 2, 0]);
  });

  it('finds better configurations than random search at equal trials (20 seeds × 40 trials)', () => {
    // A 3-option objective: optimum at lr = 10^-2.5, y = 0.7, c = 'c'.
    const space: SearchSpace = {
      lr: { type: 'logUniform', low: 1e-5, high: 1e-1 },
      y: { type: 'uniform', low: -2, high: 2 },
      c: { type: 'choice', values: ['a', 'b', 'c', 'd'] },
    };
    const f = (p: Params) => (Math.log10(p.lr as number) + 2.5) ** 2 + (((p.y as number) - 0.7) / 0.5) ** 2 + (p.c === 'c' ? 0 : 1);
    const trials = 40;
    const startup = 10;
    let wins = 0;
    let nearTpe = 0;
    let nearRandom = 0;
    let bestCategoryTpe = 0;
    const seeds = 20;
    for (let seed = 0; seed < seeds; seed++) {
      const tpe = optimise(new TpeSampler({ nStartupTrials: startup }), space, f, trials, seed);
      const random = optimise(new RandomSampler(), space, f, trials, seed);
      const best = (h: TrialRecord[]) => Math.min(...h.map((t) => t.value as number));
      if (best(tpe) < best(random)) wins++;
      // Where the proposals after the startup trials go: within half a decade of the best lr.
      const near = (h: TrialRecord[]) => h.slice(startup).filter((t) => Math.abs(Math.log10(t.params.lr as number) + 2.5) < 0.5).length;
      nearTpe += near(tpe);
      nearRandom += near(random);
      bestCategoryTpe += tpe.slice(startup).filter((t) => t.params.c === 'c').length;
    }
    const proposals = seeds * (trials - startup);
    // Under "TPE is no better than random", ≥ 15 wins of 20 has probability 0.02.
    expect(wins).toBeGreaterThanOrEqual(15);
    // Random puts a quarter of its proposals in that band (1 of 4 decades); TPE about half.
    expect(nearRandom / proposals).toBeLessThan(0.32);
    expect(nearTpe / proposals).toBeGreaterThan(0.4);
    // The best category: 1/4 under random.
    expect(bestCategoryTpe / proposals).toBeGreaterThan(0.4);
  });

  it('concentrates on a 1-D optimum, for integer and stepped options too', () => {
    const space: SearchSpace = { warmupSteps: { type: 'int', low: 0, high: 100 }, weightDecay: { type: 'uniform', low: 0, high: 1, step: 0.05 } };
    const f = (p: Params) => Math.abs((p.warmupSteps as number) - 70) / 100 + Math.abs((p.weightDecay as number) - 0.2);
    let closeTpe = 0;
    let closeRandom = 0;
    for (let seed = 0; seed < 10; seed++) {
      const tpe = optimise(new TpeSampler({ nStartupTrials: 8 }), space, f, 30, seed);
      const random = optimise(new RandomSampler(), space, f, 30, seed);
      for (const t of tpe) {
        expect(Number.isInteger(t.params.warmupSteps)).toBe(true);
        expect(Math.round((t.params.weightDecay as number) / 0.05) * 0.05).toBeCloseTo(t.params.weightDecay as number, 12);
      }
      const close = (h: TrialRecord[]) => h.slice(8).filter((t) => Math.abs((t.params.warmupSteps as number) - 70) <= 15).length;
      closeTpe += close(tpe);
      closeRandom += close(random);
    }
    // Random: 31 of 101 values are within ±15, i.e. about 0.31 of proposals.
    expect(closeTpe).toBeGreaterThan(1.5 * closeRandom);
  });
});
