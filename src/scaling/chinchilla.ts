/**
 * Chinchilla approach 3 (Hoffmann et al. 2022, §3.3 and Appendix D.2; the replication of
 * Besiroglu et al. 2024): fit L(N, D) = E + A/N^α + B/D^β to final losses, in log space,
 * with a Huber loss, by L-BFGS from a grid of starting points, and derive the compute-optimal
 * allocation under C ≈ 6ND. Bootstrap percentile intervals resample the runs.
 */
import { Generator } from '../tensor/random.js';
import { lbfgs, type LbfgsOptions, type LbfgsStopReason, type Objective } from './lbfgs.js';

/** One training run: N parameters, D training tokens, final loss L (nats/token). */
export interface ScalingPoint {
  readonly N: number;
  readonly D: number;
  readonly loss: number;
}

export interface ScalingLaw {
  E: number;
  A: number;
  B: number;
  alpha: number;
  beta: number;
}

/** The fit's parameter vector, in this order: [a, b, e, α, β] with A = e^a, B = e^b, E = e^e. */
export const PARAMETER_NAMES = ['a', 'b', 'e', 'alpha', 'beta'] as const;

export interface StartGrid {
  a: readonly number[];
  b: readonly number[];
  e: readonly number[];
  alpha: readonly number[];
  beta: readonly number[];
}

/** Hoffmann et al.'s initialisation grid: 6 · 6 · 5 · 5 · 5 = 4,500 starts. */
export const CHINCHILLA_GRID: StartGrid = Object.freeze({
  a: [0, 5, 10, 15, 20, 25],
  b: [0, 5, 10, 15, 20, 25],
  e: [-1, -0.5, 0, 0.5, 1],
  alpha: [0, 0.5, 1, 1.5, 2],
  beta: [0, 0.5, 1, 1.5, 2],
});

/** Hoffmann et al.'s δ. */
export const DEFAULT_HUBER_DELTA = 1e-3;

/** Tight enough that the fit does not stop early on the tiny (δ-scaled) objective; see lbfgs.ts. */
export const DEFAULT_FIT_LBFGS: LbfgsOptions = Object.freeze({ memory: 10, maxIterations: 2000, gradTolerance: 1e-12, functionTolerance: 1e-14 });

export function gridStarts(grid: StartGrid = CHINCHILLA_GRID): Float64Array[] {
  for (const key of PARAMETER_NAMES) {
    const values = grid[key];
    if (!Array.isArray(values) || values.length === 0 || !values.every(Number.isFinite)) {
      throw new RangeError(`start grid: '${key}' must be a non-empty list of finite numbers`);
    }
  }
  const starts: Float64Array[] = [];
  for (const a of grid.a) for (const b of grid.b) for (const e of grid.e) for (const alpha of grid.alpha) for (const beta of grid.beta) {
    starts.push(Float64Array.of(a, b, e, alpha, beta));
  }
  return starts;
}

/** Logs of the data, checked once; `weights` are per-point multiplicities (the bootstrap's resample counts). */
export interface LogData {
  lnN: Float64Array;
  lnD: Float64Array;
  lnL: Float64Array;
  weights: Float64Array;
}

export function toLogData(points: readonly ScalingPoint[]): LogData {
  if (!Array.isArray(points)) throw new TypeError('scaling fit: points must be an array of {N, D, loss}');
  const n = points.length;
  const lnN = new Float64Array(n);
  const lnD = new Float64Array(n);
  const lnL = new Float64Array(n);
  points.forEach((p, i) => {
    for (const key of ['N', 'D', 'loss'] as const) {
      const v = p[key];
      if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
        const line = (p as { line?: unknown }).line;
        throw new RangeError(`scaling fit: point ${i}${typeof line === 'number' ? ` (CSV line ${line})` : ''} has ${key} = ${String(v)}; expected a finite positive number`);
      }
    }
    lnN[i] = Math.log(p.N);
    lnD[i] = Math.log(p.D);
    lnL[i] = Math.log(p.loss);
  });
  return { lnN, lnD, lnL, weights: new Float64Array(n).fill(1) };
}

/**
 * Σ_i w_i Huber_δ(LSE(a − α ln N_i, b − β ln D_i, e) − ln L_i) and its exact gradient, over
 * x = [a, b, e, α, β]. A sum, not a mean: a mean makes the objective so small that L-BFGS
 * stops on its tolerances before reaching the minimum (Besiroglu et al. 2024).
 */
export function approach3Objective(data: LogData, delta = DEFAULT_HUBER_DELTA): Objective {
  if (!(delta > 0) || !Number.isFinite(delta)) throw new RangeError(`scaling fit: delta must be a finite positive number, got ${delta}`);
  const { lnN, lnD, lnL, weights } = data;
  const n = lnN.length;
  const halfDelta = 0.5 * delta;
  return (x, grad) => {
    const a = x[0];
    const b = x[1];
    const e = x[2];
    const alpha = x[3];
    const beta = x[4];
    let f = 0;
    let ga = 0;
    let gb = 0;
    let ge = 0;
    let gAlpha = 0;
    let gBeta = 0;
    for (let i = 0; i < n; i++) {
      const w = weights[i];
      if (w === 0) continue;
      const u1 = a - alpha * lnN[i];
      const u2 = b - beta * lnD[i];
      const m = u1 > u2 ? (u1 > e ? u1 : e) : u2 > e ? u2 : e;
      const t1 = Math.exp(u1 - m);
      const t2 = Math.exp(u2 - m);
      const t3 = Math.exp(e - m);
      const s = t1 + t2 + t3;
      const r = m + Math.log(s) - lnL[i];
      let h: number; // Huber'(r), times w and divided by s: the common factor of every partial
      if (r > delta) {
        f += w * delta * (r - halfDelta);
        h = (w * delta) / s;
      } else if (r < -delta) {
        f += w * delta * (-r - halfDelta);
        h = (-w * delta) / s;
      } else {
        f += w * 0.5 * r * r;
        h = (w * r) / s;
      }
      // ∂LSE/∂u_k is the softmax weight t_k / s.
      const h1 = h * t1;
      const h2 = h * t2;
      ga += h1;
      gb += h2;
      ge += h * t3;
      gAlpha -= h1 * lnN[i];
      gBeta -= h2 * lnD[i];
    }
    grad[0] = ga;
    grad[1] = gb;
    grad[2] = ge;
    grad[3] = gAlpha;
    grad[4] = gBeta;
    return f;
  };
}

export interface Approach3Options {
  /** Huber δ (default 1e-3). */
  delta?: number;
  /** Starting points [a, b, e, α, β]; default: every point of CHINCHILLA_GRID (4,500). */
  starts?: readonly (Float64Array | readonly number[])[];
  lbfgs?: LbfgsOptions;
  /** How many of the best starts to report in `bestStarts` (default 32); the bootstrap reuses them. */
  keepBestStarts?: number;
}

export interface StartOutcome {
  /** The starting point [a, b, e, α, β]. */
  start: number[];
  /** The objective where L-BFGS from this start ended. */
  loss: number;
}

export interface Approach3Fit extends ScalingLaw {
  /** ln A, ln B, ln E: the parameters actually fitted. */
  a: number;
  b: number;
  e: number;
  /** The Huber objective (a sum over points) at the optimum. */
  loss: number;
  delta: number;
  points: number;
  /** Starts run, and how many of them ended within 1e-9 (relative, plus 1e-15 absolute) of the best objective. */
  starts: number;
  startsAtBest: number;
  /** Starts whose L-BFGS met a tolerance (the rest hit the iteration cap or a line-search floor). */
  convergedStarts: number;
  /** The L-BFGS run that produced the optimum. */
  best: { start: number[]; iterations: number; evaluations: number; reason: LbfgsStopReason; gradNorm: number };
  /** The lowest-objective starts, best first (at most keepBestStarts). */
  bestStarts: StartOutcome[];
  /** Fitted exponents outside SANE_EXPONENT_RANGE, one sentence each (exponentWarnings); empty when sane. */
  warnings: string[];
}

function checkPointCount(n: number): void {
  // Five free parameters: fewer points than that cannot determine them.
  if (n < 5) throw new RangeError(`scaling fit: need at least 5 runs to fit E, A, B, α, β; got ${n}`);
}

/** Fewest distinct N (and D) values that identify A and α (B and β); see checkDesign. */
export const MIN_DISTINCT_VALUES = 3;

/** Distinct values of `xs`, counting values within a relative 1e-9 as one (CSV round-off). */
function distinctValues(xs: Float64Array): number[] {
  const sorted = Array.from(xs).sort((x, y) => x - y);
  const out: number[] = [];
  for (const x of sorted) if (out.length === 0 || x - out[out.length - 1] > 1e-9 * Math.abs(x)) out.push(x);
  return out;
}

/**
 * Throws unless the runs can identify the exponents. The N term A/N^α only shows in differences
 * of the loss between distinct N (a constant goes into E): k distinct N give k − 1 differences,
 * and A and α need 2, so at least 3 distinct N; the same for D with B and β. With fewer, L-BFGS
 * still returns numbers — e.g. α = −0.03 from 30 copies of one run — that mean nothing.
 */
export function checkDesign(data: LogData): void {
  const problems: string[] = [];
  for (const [key, logs, pair] of [['N', data.lnN, 'A and α'], ['D', data.lnD, 'B and β']] as const) {
    const values = distinctValues(logs).map((x) => Math.exp(x));
    if (values.length < MIN_DISTINCT_VALUES) {
      problems.push(`${values.length} distinct ${key} (${values.map((v) => v.toPrecision(4)).join(', ')}) where ${pair} need at least ${MIN_DISTINCT_VALUES}`);
    }
  }
  if (problems.length > 0) {
    throw new RangeError(`scaling fit: the runs cannot identify the exponents: ${problems.join('; ')}. Add runs at more model sizes and token counts`);
  }
}

/** The exponents a fit may report without a warning: published fits lie well inside (Chinchilla α 0.34, β 0.28; Kaplan 0.076, 0.095). */
export const SANE_EXPONENT_RANGE = Object.freeze({ min: 0, max: 2 });

/**
 * Warnings about a fitted law whose exponents are outside SANE_EXPONENT_RANGE: α or β ≤ 0 (the
 * loss does not fall with more N or D: no extrapolation and no compute-optimal allocation), or
 * above the range (steeper than any published law, and than the start grid). Empty when sane.
 */
export function exponentWarnings(law: Pick<ScalingLaw, 'alpha' | 'beta'>): string[] {
  const warnings: string[] = [];
  for (const [name, value, what] of [['α', law.alpha, 'parameters N'], ['β', law.beta, 'training tokens D']] as const) {
    if (!(value > SANE_EXPONENT_RANGE.min)) {
      warnings.push(`${name} = ${value.toPrecision(3)} ≤ 0: the fitted loss does not fall with more ${what}, so the law cannot be extrapolated (too few, too noisy or too narrow runs?)`);
    } else if (value > SANE_EXPONENT_RANGE.max) {
      warnings.push(`${name} = ${value.toPrecision(3)} > ${SANE_EXPONENT_RANGE.max}: far steeper than published fits (0.07–0.8); check the runs before trusting it`);
    }
  }
  return warnings;
}

function checkStarts(starts: readonly (Float64Array | readonly number[])[]): void {
  if (starts.length === 0) throw new RangeError('scaling fit: starts must not be empty');
  for (const start of starts) {
    if (start.length !== 5 || !Array.from(start).every(Number.isFinite)) {
      throw new RangeError(`scaling fit: each start must be 5 finite numbers [a, b, e, alpha, beta], got [${Array.from(start).join(', ')}]`);
    }
  }
}

function fitLogData(data: LogData, options: Approach3Options): Approach3Fit {
  const delta = options.delta ?? DEFAULT_HUBER_DELTA;
  const starts = options.starts ?? gridStarts();
  checkStarts(starts);
  const keep = options.keepBestStarts ?? 32;
  if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`scaling fit: keepBestStarts must be a non-negative integer, got ${keep}`);
  const lbfgsOptions = { ...DEFAULT_FIT_LBFGS, ...options.lbfgs };
  const objective = approach3Objective(data, delta);

  const outcomes: StartOutcome[] = [];
  let best: ReturnType<typeof lbfgs> | undefined;
  let bestStart: number[] = [];
  let converged = 0;
  for (const start of starts) {
    const r = lbfgs(objective, start, lbfgsOptions);
    if (r.converged) converged++;
    outcomes.push({ start: Array.from(start), loss: r.f });
    // Strictly lower: ties keep the earlier start, so the result does not depend on float noise in ordering.
    if (best === undefined || r.f < best.f) {
      best = r;
      bestStart = Array.from(start);
    }
  }
  if (best === undefined) throw new Error('scaling fit: no start was run');
  const fBest = best.f;
  // Relative, plus a tiny absolute floor so that an exact fit (objective ≈ 0) still counts near-zero ends.
  const atBest = outcomes.filter((o) => o.loss - fBest <= 1e-9 * Math.abs(fBest) + 1e-15).length;
  const ranked = outcomes
    .map((o, i) => ({ o, i }))
    .sort((p, q) => p.o.loss - q.o.loss || p.i - q.i)
    .slice(0, keep)
    .map(({ o }) => o);
  const [a, b, e, alpha, beta] = best.x;
  return {
    E: Math.exp(e),
    A: Math.exp(a),
    B: Math.exp(b),
    alpha,
    beta,
    a,
    b,
    e,
    loss: best.f,
    delta,
    points: data.lnN.length,
    starts: starts.length,
    startsAtBest: atBest,
    convergedStarts: converged,
    best: { start: bestStart, iterations: best.iterations, evaluations: best.evaluations, reason: best.reason, gradNorm: best.gradNorm },
    bestStarts: ranked,
    warnings: exponentWarnings({ alpha, beta }),
  };
}

/**
 * Fits L(N, D) = E + A/N^α + B/D^β by Hoffmann et al.'s method (the full 4,500-start grid unless
 * `starts` is given). Runs that cannot identify the exponents (fewer than MIN_DISTINCT_VALUES
 * distinct N or D) are an error, not a fit; a fitted exponent outside SANE_EXPONENT_RANGE is
 * returned with `warnings` (see exponentWarnings).
 */
export function fitApproach3(points: readonly ScalingPoint[], options: Approach3Options = {}): Approach3Fit {
  const data = toLogData(points);
  checkPointCount(points.length);
  approach3Objective(data, options.delta ?? DEFAULT_HUBER_DELTA); // checks delta
  if (options.starts !== undefined) checkStarts(options.starts);
  checkDesign(data);
  return fitLogData(data, options);
}

/** The fitted law's prediction. */
export function predictLoss(law: ScalingLaw, N: number, D: number): number {
  return law.E + law.A / N ** law.alpha + law.B / D ** law.beta;
}

export interface ComputeOptimal {
  /** Training FLOPs. */
  C: number;
  N: number;
  D: number;
  tokensPerParameter: number;
  /** N_opt ∝ C^a, D_opt ∝ C^b. */
  a: number;
  b: number;
  G: number;
  /** The law's loss at (N, D). */
  loss: number;
}

/**
 * The allocation minimising L(N, D) subject to 6ND = C: N = G (C/6)^a, D = G⁻¹ (C/6)^b,
 * G = (αA / βB)^(1/(α+β)), a = β/(α+β), b = α/(α+β). Computed in logs so large A, B or C do
 * not overflow.
 */
export function computeOptimal(law: ScalingLaw, C: number): ComputeOptimal {
  if (!(C > 0) || !Number.isFinite(C)) throw new RangeError(`computeOptimal: C (training FLOPs) must be a finite positive number, got ${C}`);
  const { alpha, beta, A, B } = law;
  if (!(alpha > 0) || !(beta > 0)) {
    throw new RangeError(`computeOptimal: the allocation needs alpha > 0 and beta > 0 (otherwise more of N or D never helps); got alpha=${alpha}, beta=${beta}`);
  }
  if (!(A > 0) || !(B > 0)) throw new RangeError(`computeOptimal: A and B must be positive, got A=${A}, B=${B}`);
  const s = alpha + beta;
  const a = beta / s;
  const b = alpha / s;
  const lnG = (Math.log(alpha) + Math.log(A) - Math.log(beta) - Math.log(B)) / s;
  const lnC6 = Math.log(C / 6);
  const N = Math.exp(lnG + a * lnC6);
  const D = Math.exp(-lnG + b * lnC6);
  return { C, N, D, tokensPerParameter: Math.exp(-2 * lnG + (b - a) * lnC6), a, b, G: Math.exp(lnG), loss: predictLoss(law, N, D) };
}

export interface Interval {
  /** The full-data fit's value. */
  estimate: number;
  lower: number;
  upper: number;
}

export interface BootstrapOptions {
  /** Resamples (default 200). */
  resamples?: number;
  /** Seed of the resampling generator (default 0). */
  seed?: number;
  /** Central coverage of the percentile intervals (default 0.95). */
  level?: number;
  /**
   * Starts per resample: 'full' reruns the full fit's start set for every resample; a number k
   * uses the k lowest-objective starts of the full fit plus the full fit's optimum (default 20).
   * The optimum of a resample is close to the full fit's, so these starts find it at a small
   * fraction of the cost; 'full' is the exact method.
   */
  starts?: 'full' | number;
  /** Budgets (FLOPs) for which to give intervals on the compute-optimal N, D and D/N. */
  compute?: readonly number[];
  /** Forwarded to the fits; must match the full fit for the intervals to mean anything. */
  delta?: number;
  lbfgs?: LbfgsOptions;
  /** Starts used by the full fit (needed only with starts: 'full' when the fit used a custom set). */
  fullStarts?: readonly (Float64Array | readonly number[])[];
  onProgress?: (done: number, total: number) => void;
}

export interface ComputeOptimalIntervals {
  C: number;
  N: Interval | null;
  D: Interval | null;
  tokensPerParameter: Interval | null;
  /**
   * Resamples whose α or β came out ≤ 0, which have no compute-optimal allocation; they are
   * left out of these three intervals (which are null if every resample was left out).
   */
  excluded: number;
}

export interface BootstrapResult {
  resamples: number;
  seed: number;
  level: number;
  /** Starts run per resample, and a sentence saying which. */
  startsPerResample: number;
  startSet: string;
  E: Interval;
  A: Interval;
  B: Interval;
  alpha: Interval;
  beta: Interval;
  compute: ComputeOptimalIntervals[];
  /** Per-resample fitted parameters, for anyone who wants other statistics. */
  samples: ScalingLaw[];
}

/** Linear-interpolation quantile (Hyndman & Fan type 7, NumPy's default) of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile: no values');
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function interval(values: readonly number[], estimate: number, level: number, what: string): Interval {
  const sorted = values.filter(Number.isFinite).sort((x, y) => x - y);
  if (sorted.length === 0) throw new RangeError(`bootstrap: no resample gave a finite ${what}`);
  const tail = (1 - level) / 2;
  return { estimate, lower: quantile(sorted, tail), upper: quantile(sorted, 1 - tail) };
}

/**
 * Percentile bootstrap: draw n runs with replacement (as per-run multiplicities), refit, and
 * take the (1 − level)/2 and (1 + level)/2 quantiles of each parameter. Deterministic for a seed.
 */
export function bootstrapApproach3(points: readonly ScalingPoint[], fit: Approach3Fit, options: BootstrapOptions = {}): BootstrapResult {
  const resamples = options.resamples ?? 200;
  if (!Number.isInteger(resamples) || resamples < 1) throw new RangeError(`bootstrap: resamples must be a positive integer, got ${resamples}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`bootstrap: seed must be a non-negative integer, got ${seed}`);
  const level = options.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrap: level must be in (0, 1), got ${level}`);
  const startsOption = options.starts ?? 20;
  const compute = options.compute ?? [];
  for (const C of compute) if (!(C > 0) || !Number.isFinite(C)) throw new RangeError(`bootstrap: compute budgets must be finite positive numbers, got ${C}`);
  const data = toLogData(points);
  checkPointCount(points.length);
  if (data.lnN.length !== fit.points) throw new RangeError(`bootstrap: the fit was made on ${fit.points} points but ${points.length} were given`);

  let starts: readonly (Float64Array | readonly number[])[];
  let startSet: string;
  if (startsOption === 'full') {
    starts = options.fullStarts ?? gridStarts();
    startSet = `every start of the full fit (${starts.length})`;
  } else {
    if (!Number.isInteger(startsOption) || startsOption < 0) throw new RangeError(`bootstrap: starts must be 'full' or a non-negative integer, got ${startsOption}`);
    if (startsOption > fit.bestStarts.length) {
      throw new RangeError(`bootstrap: starts=${startsOption} but the full fit kept only ${fit.bestStarts.length} best starts (raise keepBestStarts)`);
    }
    starts = [[fit.a, fit.b, fit.e, fit.alpha, fit.beta], ...fit.bestStarts.slice(0, startsOption).map((s) => s.start)];
    startSet = `the full fit's optimum plus its ${startsOption} best grid starts (reduced from ${fit.starts})`;
  }

  const generator = new Generator(seed);
  const n = data.lnN.length;
  const samples: ScalingLaw[] = [];
  for (let r = 0; r < resamples; r++) {
    const weights = new Float64Array(n);
    for (let i = 0; i < n; i++) weights[generator.randint(0, n)] += 1;
    const refit = fitLogData({ ...data, weights }, { delta: options.delta ?? fit.delta, starts, lbfgs: options.lbfgs, keepBestStarts: 0 });
    samples.push({ E: refit.E, A: refit.A, B: refit.B, alpha: refit.alpha, beta: refit.beta });
    options.onProgress?.(r + 1, resamples);
  }

  const pick = (key: keyof ScalingLaw) => interval(samples.map((s) => s[key]), fit[key], level, key);
  const computeIntervals = compute.map((C): ComputeOptimalIntervals => {
    const full = computeOptimal(fit, C);
    const ok = samples.filter((s) => s.alpha > 0 && s.beta > 0 && s.A > 0 && s.B > 0 && Number.isFinite(s.A) && Number.isFinite(s.B)).map((s) => computeOptimal(s, C));
    const excluded = samples.length - ok.length;
    if (ok.length === 0) return { C, N: null, D: null, tokensPerParameter: null, excluded };
    return {
      C,
      N: interval(ok.map((o) => o.N), full.N, level, 'N_opt'),
      D: interval(ok.map((o) => o.D), full.D, level, 'D_opt'),
      tokensPerParameter: interval(ok.map((o) => o.tokensPerParameter), full.tokensPerParameter, level, 'tokens per parameter'),
      excluded,
    };
  });
  return {
    resamples,
    seed,
    level,
    startsPerResample: starts.length,
    startSet,
    E: pick('E'),
    A: pick('A'),
    B: pick('B'),
    alpha: pick('alpha'),
    beta: pick('beta'),
    compute: computeIntervals,
    samples,
  };
}
