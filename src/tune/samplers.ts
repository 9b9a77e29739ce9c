/**
 * Samplers propose the parameters of the next trial from the study's history.
 *
 * - grid: the cross product of every option's values, in a fixed order; the next trial takes the
 *   first point no trial has used yet (so several workers share one grid without repeats).
 * - random: independent draws per option, from a stream keyed by (study seed, trial number).
 * - tpe: the Tree-structured Parzen Estimator (Bergstra et al. 2011) as Optuna implements it
 *   (independent per option): random for the first nStartupTrials, then the finished trials are
 *   split at the γ-quantile of the objective into "good" and "bad", each set becomes a Parzen
 *   mixture l(x) and g(x) per option, nEiCandidates points are drawn from l, and the one with the
 *   largest l(x)/g(x) wins.
 */
import type { Generator } from '../tensor/random.js';
import { logSumExp, normalCdf, normalLogPdf, trialGenerator } from './math.js';
import { contains, snapToStep, stepValues, type Choice, type Distribution, type ParamValue, type Params, type SearchSpace } from './space.js';
import type { SamplerSettings, TrialRecord } from './types.js';

export interface SampleContext {
  space: SearchSpace;
  /** Every trial of the study so far, in any state. */
  history: readonly TrialRecord[];
  /** The number the new trial will get. */
  number: number;
  seed: number;
}

export interface Sampler {
  /** The new trial's params, or null when the sampler has nothing left to propose (a used-up grid). */
  sample(ctx: SampleContext): Params | null;
}

// ---------------------------------------------------------------------------------------------
// random

function sampleUniformly(dist: Distribution, gen: Generator): ParamValue {
  switch (dist.type) {
    case 'logUniform': {
      const x = Math.exp(Math.log(dist.low) + gen.random() * (Math.log(dist.high) - Math.log(dist.low)));
      return Math.min(dist.high, Math.max(dist.low, x));
    }
    case 'uniform':
      if (dist.step !== undefined) {
        const values = stepValues(dist.low, dist.high, dist.step);
        return values[gen.randint(0, values.length)];
      }
      return dist.low + gen.random() * (dist.high - dist.low);
    case 'int': {
      if (dist.log) {
        // Log-uniform over [low - ½, high + ½], rounded: each integer gets its log-width share.
        const x = Math.exp(Math.log(dist.low - 0.5) + gen.random() * (Math.log(dist.high + 0.5) - Math.log(dist.low - 0.5)));
        return Math.min(dist.high, Math.max(dist.low, Math.round(x)));
      }
      const step = dist.step ?? 1;
      return dist.low + step * gen.randint(0, Math.floor((dist.high - dist.low) / step) + 1);
    }
    case 'choice':
      return dist.values[gen.randint(0, dist.values.length)];
  }
}

export class RandomSampler implements Sampler {
  sample(ctx: SampleContext): Params {
    const gen = trialGenerator(ctx.seed, ctx.number);
    const out: Params = {};
    for (const [key, dist] of Object.entries(ctx.space)) out[key] = sampleUniformly(dist, gen);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// grid

/** Refuses grids no one would want to run, with a hint, instead of enumerating for minutes. */
const MAX_VALUES_PER_OPTION = 1000;

/** The grid values of one option: every int / step value / choice, or gridPoints spread over a continuous range. */
export function gridValues(key: string, dist: Distribution, gridPoints: number): ParamValue[] {
  let values: ParamValue[];
  switch (dist.type) {
    case 'choice':
      values = [...dist.values];
      break;
    case 'int': {
      const step = dist.step ?? 1;
      const n = Math.floor((dist.high - dist.low) / step) + 1;
      if (n > MAX_VALUES_PER_OPTION) throw new Error(`grid sampler: '${key}' has ${n} integer values; use a choice of a few values, or the random/tpe sampler`);
      values = Array.from({ length: n }, (_, k) => dist.low + k * step);
      break;
    }
    case 'uniform':
      if (dist.step !== undefined) {
        values = stepValues(dist.low, dist.high, dist.step);
        if (values.length > MAX_VALUES_PER_OPTION) throw new Error(`grid sampler: '${key}' has ${values.length} step values; use a larger step or a choice`);
      } else {
        values = gridPoints === 1 ? [(dist.low + dist.high) / 2] : Array.from({ length: gridPoints }, (_, k) => dist.low + ((dist.high - dist.low) * k) / (gridPoints - 1));
      }
      break;
    case 'logUniform': {
      const [a, b] = [Math.log(dist.low), Math.log(dist.high)];
      // Endpoints exactly as written (exp(log(x)) can be off by an ulp).
      values = gridPoints === 1 ? [Math.exp((a + b) / 2)] : Array.from({ length: gridPoints }, (_, k) => (k === 0 ? dist.low : k === gridPoints - 1 ? dist.high : Math.exp(a + ((b - a) * k) / (gridPoints - 1))));
      break;
    }
  }
  return values;
}

export class GridSampler implements Sampler {
  constructor(readonly gridPoints: number) {
    if (!Number.isInteger(gridPoints) || gridPoints < 1) throw new Error(`grid sampler: gridPoints must be a positive integer, got ${gridPoints}`);
  }

  private axes(space: SearchSpace): [string, ParamValue[]][] {
    return Object.entries(space).map(([key, dist]) => [key, gridValues(key, dist, this.gridPoints)]);
  }

  /** Number of points in the grid. */
  size(space: SearchSpace): number {
    return this.axes(space).reduce((n, [, values]) => n * values.length, 1);
  }

  /** Point `index` of the grid; the first option varies slowest, like nested loops in key order. */
  pointAt(space: SearchSpace, index: number): Params {
    const axes = this.axes(space);
    const out: Params = {};
    let rest = index;
    for (let i = axes.length - 1; i >= 0; i--) {
      const [key, values] = axes[i];
      out[key] = values[rest % values.length];
      rest = Math.floor(rest / values.length);
    }
    // Rebuild in key order (the loop above filled it backwards).
    return Object.fromEntries(axes.map(([key]) => [key, out[key]]));
  }

  sample(ctx: SampleContext): Params | null {
    const used = new Set(ctx.history.map((t) => paramsKey(ctx.space, t.params)));
    const size = this.size(ctx.space);
    for (let i = 0; i < size; i++) {
      const point = this.pointAt(ctx.space, i);
      if (!used.has(paramsKey(ctx.space, point))) return point;
    }
    return null;
  }
}

function paramsKey(space: SearchSpace, params: Params): string {
  return JSON.stringify(Object.keys(space).map((k) => params[k] ?? null));
}

// ---------------------------------------------------------------------------------------------
// TPE

export interface TpeOptions {
  /** Random trials before the model is used (finished = complete or pruned). */
  nStartupTrials: number;
  /** Candidates drawn from l(x) per option; the best by l/g is taken. */
  nEiCandidates: number;
  /** Weight of the prior kernel (a wide normal over the range, or a uniform over the choices). */
  priorWeight: number;
  /** How many of n ranked trials count as good: Optuna's min(⌈0.1·n⌉, 25). */
  gamma: (n: number) => number;
  /** Kernel weights for n trials ordered oldest first: Optuna's flat up to 25, older ones ramped down. */
  weights: (n: number) => number[];
}

export const defaultGamma = (n: number): number => Math.min(Math.ceil(0.1 * n), 25);

export function defaultWeights(n: number): number[] {
  if (n < 25) return new Array<number>(n).fill(1);
  const ramp = Array.from({ length: n - 25 }, (_, i) => (n - 25 === 1 ? 1 / n : 1 / n + ((1 - 1 / n) * i) / (n - 26)));
  return [...ramp, ...new Array<number>(25).fill(1)];
}

/** A mixture of normals truncated to [low, high] (one kernel per observation plus the prior). */
export interface ParzenMixture {
  low: number;
  high: number;
  mus: number[];
  sigmas: number[];
  weights: number[];
}

/**
 * Optuna's univariate Parzen estimator: each observation is a kernel whose width is the larger
 * gap to its sorted neighbours (the prior's midpoint and the range ends included), clipped to
 * [range / min(100, 1 + kernels), range] ("magic clip"), plus a prior kernel N(mid, range).
 */
export function buildParzen(observations: readonly number[], low: number, high: number, priorWeight: number, weightsFn: (n: number) => number[]): ParzenMixture {
  const n = observations.length;
  const range = high - low;
  const priorMu = 0.5 * (low + high);
  let sigmas: number[] = [];
  if (n > 0) {
    const withPrior = [...observations, priorMu];
    const order = withPrior.map((_, i) => i).sort((a, b) => withPrior[a] - withPrior[b]);
    const sorted = [low, ...order.map((i) => withPrior[i]), high];
    const sortedSigmas = order.map((_, j) => Math.max(sorted[j + 1] - sorted[j], sorted[j + 2] - sorted[j + 1]));
    // Without "consider endpoints", the outermost kernels use their inner gap only.
    if (sorted.length >= 4) {
      sortedSigmas[0] = sorted[2] - sorted[1];
      sortedSigmas[sortedSigmas.length - 1] = sorted[sorted.length - 2] - sorted[sorted.length - 3];
    }
    const byIndex = new Array<number>(withPrior.length);
    order.forEach((i, j) => (byIndex[i] = sortedSigmas[j]));
    sigmas = byIndex.slice(0, n);
  }
  const minSigma = range / Math.min(100, 1 + (n + 1));
  sigmas = sigmas.map((s) => Math.min(range, Math.max(minSigma, s)));
  const rawWeights = [...weightsFn(n), priorWeight];
  const total = rawWeights.reduce((a, b) => a + b, 0);
  return { low, high, mus: [...observations, priorMu], sigmas: [...sigmas, range], weights: rawWeights.map((w) => w / total) };
}

function pickComponent(weights: readonly number[], gen: Generator): number {
  let u = gen.random();
  for (let i = 0; i < weights.length - 1; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

export function sampleParzen(m: ParzenMixture, gen: Generator): number {
  const i = pickComponent(m.weights, gen);
  // Rejection sampling: every kernel is centred inside the range with σ ≤ range, so at least
  // about a third of draws land inside.
  for (let tries = 0; tries < 100; tries++) {
    const x = m.mus[i] + m.sigmas[i] * gen.normal();
    if (x >= m.low && x <= m.high) return x;
  }
  return Math.min(m.high, Math.max(m.low, m.mus[i]));
}

export function parzenLogPdf(m: ParzenMixture, x: number): number {
  const terms = m.mus.map((mu, i) => {
    const s = m.sigmas[i];
    const mass = normalCdf((m.high - mu) / s) - normalCdf((m.low - mu) / s);
    return Math.log(m.weights[i]) + normalLogPdf(x, mu, s) - Math.log(Math.max(mass, 1e-300));
  });
  return logSumExp(terms);
}

/** Where an option lives for the estimator: log space for log distributions, ± half a step for discrete ones. */
interface NumericDomain {
  low: number;
  high: number;
  toInternal(v: number): number;
  fromInternal(x: number): number;
}

function numericDomain(dist: Exclude<Distribution, Choice>): NumericDomain {
  const id = (x: number) => x;
  switch (dist.type) {
    case 'logUniform':
      return { low: Math.log(dist.low), high: Math.log(dist.high), toInternal: Math.log, fromInternal: (x) => Math.min(dist.high, Math.max(dist.low, Math.exp(x))) };
    case 'uniform': {
      if (dist.step === undefined) return { low: dist.low, high: dist.high, toInternal: id, fromInternal: (x) => Math.min(dist.high, Math.max(dist.low, x)) };
      const step = dist.step;
      const values = stepValues(dist.low, dist.high, step);
      return { low: dist.low - step / 2, high: values[values.length - 1] + step / 2, toInternal: id, fromInternal: (x) => snapToStep(x, dist.low, dist.high, step) };
    }
    case 'int': {
      if (dist.log) {
        return { low: Math.log(dist.low - 0.5), high: Math.log(dist.high + 0.5), toInternal: Math.log, fromInternal: (x) => Math.min(dist.high, Math.max(dist.low, Math.round(Math.exp(x)))) };
      }
      const step = dist.step ?? 1;
      const last = dist.low + step * Math.floor((dist.high - dist.low) / step);
      return { low: dist.low - step / 2, high: last + step / 2, toInternal: id, fromInternal: (x) => snapToStep(x, dist.low, last, step) };
    }
  }
}

/** Categorical kernels as Optuna builds them: each observation's category plus a smoothing prior. */
export function categoricalMixture(observations: readonly number[], nChoices: number, priorWeight: number, weightsFn: (n: number) => number[]): number[] {
  const n = observations.length;
  const rows = n + 1;
  const kernelWeights = [...weightsFn(n), priorWeight];
  const totalWeight = kernelWeights.reduce((a, b) => a + b, 0);
  const probs = new Array<number>(nChoices).fill(0);
  for (let i = 0; i < rows; i++) {
    const row = new Array<number>(nChoices).fill(priorWeight / rows);
    if (i < n) row[observations[i]] += 1;
    const rowSum = row.reduce((a, b) => a + b, 0);
    for (let c = 0; c < nChoices; c++) probs[c] += (kernelWeights[i] / totalWeight) * (row[c] / rowSum);
  }
  return probs;
}

export class TpeSampler implements Sampler {
  readonly options: TpeOptions;
  private readonly random = new RandomSampler();

  constructor(options: Partial<TpeOptions> = {}) {
    this.options = { nStartupTrials: 10, nEiCandidates: 24, priorWeight: 1, gamma: defaultGamma, weights: defaultWeights, ...options };
    const { nStartupTrials, nEiCandidates } = this.options;
    if (!Number.isInteger(nStartupTrials) || nStartupTrials < 0) throw new Error(`tpe sampler: nStartupTrials must be a non-negative integer, got ${nStartupTrials}`);
    if (!Number.isInteger(nEiCandidates) || nEiCandidates < 1) throw new Error(`tpe sampler: nEiCandidates must be a positive integer, got ${nEiCandidates}`);
  }

  /**
   * Ranks finished trials best first: complete ones by objective, then pruned ones — those that
   * got further first, then by their last intermediate value (as Optuna does). Pruned trials thus
   * only count as good while there are too few complete ones.
   */
  static rank(history: readonly TrialRecord[]): TrialRecord[] {
    const complete = history.filter((t) => t.state === 'complete' && t.value !== null && Number.isFinite(t.value)).sort((a, b) => (a.value as number) - (b.value as number));
    const lastStep = (t: TrialRecord) => t.intermediates.reduce((m, r) => Math.max(m, r.step), -1);
    const pruned = history
      .filter((t) => t.state === 'pruned')
      .sort((a, b) => lastStep(b) - lastStep(a) || (a.value ?? Infinity) - (b.value ?? Infinity));
    return [...complete, ...pruned];
  }

  sample(ctx: SampleContext): Params {
    const ranked = TpeSampler.rank(ctx.history);
    if (ranked.length < this.options.nStartupTrials || ranked.length === 0) return this.random.sample(ctx);
    const nBelow = this.options.gamma(ranked.length);
    const byNumber = (a: TrialRecord, b: TrialRecord) => a.number - b.number;
    const below = ranked.slice(0, nBelow).sort(byNumber);
    const above = ranked.slice(nBelow).sort(byNumber);
    const gen = trialGenerator(ctx.seed, ctx.number, 1);
    const out: Params = {};
    for (const [key, dist] of Object.entries(ctx.space)) {
      const good = below.map((t) => t.params[key]).filter((v) => v !== undefined && contains(dist, v));
      const bad = above.map((t) => t.params[key]).filter((v) => v !== undefined && contains(dist, v));
      out[key] = this.sampleOption(dist, good, bad, gen);
    }
    return out;
  }

  private sampleOption(dist: Distribution, good: ParamValue[], bad: ParamValue[], gen: Generator): ParamValue {
    const { priorWeight, weights, nEiCandidates } = this.options;
    if (dist.type === 'choice') {
      const index = (v: ParamValue) => dist.values.findIndex((c) => c === v);
      const l = categoricalMixture(good.map(index), dist.values.length, priorWeight, weights);
      const g = categoricalMixture(bad.map(index), dist.values.length, priorWeight, weights);
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i < nEiCandidates; i++) {
        const c = pickComponent(l, gen);
        const score = Math.log(l[c]) - Math.log(g[c]);
        if (score > bestScore) [best, bestScore] = [c, score];
      }
      return dist.values[best];
    }
    const domain = numericDomain(dist);
    const l = buildParzen(good.map((v) => domain.toInternal(v as number)), domain.low, domain.high, priorWeight, weights);
    const g = buildParzen(bad.map((v) => domain.toInternal(v as number)), domain.low, domain.high, priorWeight, weights);
    let best = l.mus[0];
    let bestScore = -Infinity;
    for (let i = 0; i < nEiCandidates; i++) {
      const x = sampleParzen(l, gen);
      const score = parzenLogPdf(l, x) - parzenLogPdf(g, x);
      if (score > bestScore) [best, bestScore] = [x, score];
    }
    return domain.fromInternal(best);
  }
}

export function createSampler(settings: SamplerSettings): Sampler {
  switch (settings.type) {
    case 'random':
      return new RandomSampler();
    case 'grid':
      return new GridSampler(settings.gridPoints);
    case 'tpe':
      return new TpeSampler({ nStartupTrials: settings.nStartupTrials, nEiCandidates: settings.nEiCandidates });
  }
}
