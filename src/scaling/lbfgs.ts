/**
 * A small L-BFGS minimiser over Float64Array (Nocedal & Wright, "Numerical Optimization",
 * 2nd ed.: Algorithm 7.4 for the two-loop recursion, Algorithms 3.5/3.6 for the strong-Wolfe
 * line search with zoom). Written for the five-parameter scaling-law fits, where it runs
 * thousands of times, so it allocates its buffers once per call and never inside the loop.
 */

/** Writes the gradient at `x` into `grad` and returns the objective value. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Correction pairs kept for the inverse-Hessian approximation (default 10). */
  memory?: number;
  /** Iterations (accepted steps) before giving up (default 1000). */
  maxIterations?: number;
  /** Converged when max_i |g_i| ≤ gradTolerance (default 1e-10). */
  gradTolerance?: number;
  /**
   * Converged when (f_prev − f) ≤ functionTolerance · max(|f_prev|, |f|, tiny) — scipy's
   * `ftol` rule (default 1e-12, far tighter than scipy's 2.2e-9: the scaling-law objectives
   * are small sums where an early stop visibly biases the fit).
   */
  functionTolerance?: number;
  /** Sufficient-decrease constant of the Wolfe conditions (default 1e-4). */
  c1?: number;
  /** Curvature constant of the strong Wolfe conditions (default 0.9, the usual quasi-Newton choice). */
  c2?: number;
  /** Objective evaluations allowed per line search (default 40). */
  maxLineSearchEvaluations?: number;
}

export type LbfgsStopReason = 'gradient' | 'function' | 'max-iterations' | 'line-search';

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  /** max_i |g_i| at `x`. */
  gradNorm: number;
  iterations: number;
  evaluations: number;
  /** True when a tolerance was met ('gradient' or 'function'). */
  converged: boolean;
  /**
   * 'line-search': no step along the search direction lowered f any further — at a minimum
   * this is the usual floating-point floor, so it is reported rather than thrown.
   */
  reason: LbfgsStopReason;
}

const DEFAULTS: Required<LbfgsOptions> = {
  memory: 10,
  maxIterations: 1000,
  gradTolerance: 1e-10,
  functionTolerance: 1e-12,
  c1: 1e-4,
  c2: 0.9,
  maxLineSearchEvaluations: 40,
};

function checkOptions(o: Required<LbfgsOptions>): void {
  const positiveInt = (name: keyof LbfgsOptions, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`lbfgs: ${name} must be a positive integer, got ${v}`);
  };
  positiveInt('memory', o.memory);
  positiveInt('maxIterations', o.maxIterations);
  positiveInt('maxLineSearchEvaluations', o.maxLineSearchEvaluations);
  if (!(o.gradTolerance >= 0)) throw new RangeError(`lbfgs: gradTolerance must be ≥ 0, got ${o.gradTolerance}`);
  if (!(o.functionTolerance >= 0)) throw new RangeError(`lbfgs: functionTolerance must be ≥ 0, got ${o.functionTolerance}`);
  if (!(o.c1 > 0 && o.c1 < o.c2 && o.c2 < 1)) throw new RangeError(`lbfgs: need 0 < c1 < c2 < 1, got c1=${o.c1}, c2=${o.c2}`);
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > m || Number.isNaN(v)) m = v;
  }
  return m;
}

/**
 * Minimiser of the cubic that interpolates (a, fa, da) and (b, fb, db) (N&W eq. 3.59), or NaN
 * when the cubic has no finite minimiser — the caller then bisects.
 */
function cubicMin(a: number, fa: number, da: number, b: number, fb: number, db: number): number {
  const d1 = da + db - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - da * db;
  if (!(disc >= 0)) return NaN;
  const d2 = Math.sign(b - a) * Math.sqrt(disc);
  return b - (b - a) * ((db + d2 - d1) / (db - da + 2 * d2));
}

/** Minimises `objective` from `x0` (not modified). Throws if f or its gradient is not finite at x0. */
export function lbfgs(objective: Objective, x0: Float64Array | readonly number[], options: LbfgsOptions = {}): LbfgsResult {
  const o: Required<LbfgsOptions> = { ...DEFAULTS, ...options };
  checkOptions(o);
  const n = x0.length;
  if (n === 0) throw new RangeError('lbfgs: x0 must have at least one element');
  const m = o.memory;

  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let xNew = new Float64Array(n);
  let gNew = new Float64Array(n);
  // The best trial point of a line search that ends without meeting strong Wolfe.
  const xLo = new Float64Array(n);
  const gLo = new Float64Array(n);
  const p = new Float64Array(n);
  const S = Array.from({ length: m }, () => new Float64Array(n));
  const Y = Array.from({ length: m }, () => new Float64Array(n));
  const rho = new Float64Array(m);
  const alphaBuf = new Float64Array(m);
  let stored = 0;
  let head = 0; // index of the next slot to overwrite

  let evaluations = 0;
  let f = objective(x, g);
  evaluations++;
  if (!Number.isFinite(f) || !Number.isFinite(maxAbs(g))) {
    throw new RangeError(`lbfgs: the objective or its gradient is not finite at the starting point (f=${f})`);
  }

  let iterations = 0;
  let reason: LbfgsStopReason = 'max-iterations';
  let gradNorm = maxAbs(g);
  if (gradNorm <= o.gradTolerance) reason = 'gradient';

  while (reason === 'max-iterations' && iterations < o.maxIterations) {
    // Two-loop recursion: p = −H g, with H0 = γ I and γ = sᵀy / yᵀy from the newest pair.
    for (let i = 0; i < n; i++) p[i] = -g[i];
    for (let k = 0; k < stored; k++) {
      const j = (head - 1 - k + m) % m;
      alphaBuf[j] = rho[j] * dot(S[j], p);
      const yj = Y[j];
      for (let i = 0; i < n; i++) p[i] -= alphaBuf[j] * yj[i];
    }
    if (stored > 0) {
      const j = (head - 1 + m) % m;
      const gamma = 1 / (rho[j] * dot(Y[j], Y[j]));
      for (let i = 0; i < n; i++) p[i] *= gamma;
    }
    for (let k = stored - 1; k >= 0; k--) {
      const j = (head - 1 - k + m) % m;
      const beta = rho[j] * dot(Y[j], p);
      const sj = S[j];
      for (let i = 0; i < n; i++) p[i] += (alphaBuf[j] - beta) * sj[i];
    }
    let d0 = dot(g, p);
    if (!(d0 < 0)) {
      // Rounding made the quasi-Newton direction useless: restart from steepest descent.
      stored = 0;
      for (let i = 0; i < n; i++) p[i] = -g[i];
      d0 = dot(g, p);
      if (!(d0 < 0)) {
        reason = 'line-search';
        break;
      }
    }
    // Without curvature information a unit step along −g has the gradient's units; scale it
    // to a step of length ≤ 1 instead (the usual first-iteration choice).
    const alpha0 = stored > 0 ? 1 : Math.min(1, 1 / Math.sqrt(-d0));

    const ls = lineSearch(objective, x, f, p, d0, alpha0, o, xNew, gNew, xLo, gLo);
    evaluations += ls.evaluations;
    if (ls.alpha === 0) {
      // A stale curvature model can point somewhere useless: retry once from steepest descent
      // before concluding that no further decrease is representable.
      if (stored > 0) {
        stored = 0;
        continue;
      }
      reason = 'line-search';
      break;
    }
    iterations++;
    const fPrev = f;
    const xn = ls.fromLo ? xLo : xNew;
    const gn = ls.fromLo ? gLo : gNew;
    // s = x_new − x, y = g_new − g, kept only when the curvature sᵀy is clearly positive.
    const s = S[head];
    const y = Y[head];
    for (let i = 0; i < n; i++) {
      s[i] = xn[i] - x[i];
      y[i] = gn[i] - g[i];
    }
    const sy = dot(s, y);
    if (sy > 1e-300 && sy > Number.EPSILON * Math.sqrt(dot(s, s) * dot(y, y))) {
      rho[head] = 1 / sy;
      head = (head + 1) % m;
      stored = Math.min(stored + 1, m);
    }
    if (ls.fromLo) {
      x.set(xLo);
      g.set(gLo);
    } else {
      [x, xNew] = [xNew, x];
      [g, gNew] = [gNew, g];
    }
    f = ls.f;
    gradNorm = maxAbs(g);
    if (gradNorm <= o.gradTolerance) reason = 'gradient';
    else if (fPrev - f <= o.functionTolerance * Math.max(Math.abs(fPrev), Math.abs(f), Number.MIN_VALUE)) reason = 'function';
  }
  return { x, f, gradNorm, iterations, evaluations, converged: reason === 'gradient' || reason === 'function', reason };
}

interface LineSearchResult {
  /** 0 when no step decreased f. */
  alpha: number;
  f: number;
  evaluations: number;
  /** The accepted point is in xLo/gLo (a fallback), not in xNew/gNew (the last evaluation). */
  fromLo: boolean;
}

/**
 * Strong-Wolfe line search (N&W Algorithm 3.5 with zoom, Algorithm 3.6), cubic interpolation
 * safeguarded to the middle 80% of the bracket. The point accepted by the Wolfe test is always
 * the last one evaluated, so it is left in xNew/gNew; if the evaluation budget runs out, the
 * lowest sufficient-decrease point seen (kept in xLo/gLo) is returned instead, because a step
 * that lowers f is still progress.
 */
function lineSearch(
  objective: Objective,
  x: Float64Array,
  f0: number,
  p: Float64Array,
  d0: number,
  alphaInit: number,
  o: Required<LbfgsOptions>,
  xNew: Float64Array,
  gNew: Float64Array,
  xLo: Float64Array,
  gLo: Float64Array,
): LineSearchResult {
  const n = x.length;
  let evaluations = 0;
  let bestAlpha = 0;
  let bestF = f0;
  const evaluate = (alpha: number): { f: number; d: number } => {
    for (let i = 0; i < n; i++) xNew[i] = x[i] + alpha * p[i];
    const f = objective(xNew, gNew);
    evaluations++;
    const d = dot(gNew, p);
    // NaN/Inf (e.g. overflow far from the data) counts as "too far": the search shrinks.
    if (!Number.isFinite(f) || !Number.isFinite(d)) return { f: Infinity, d: NaN };
    if (f < bestF && f <= f0 + o.c1 * alpha * d0) {
      bestAlpha = alpha;
      bestF = f;
      xLo.set(xNew);
      gLo.set(gNew);
    }
    return { f, d };
  };
  const fallback = (): LineSearchResult => ({ alpha: bestAlpha, f: bestF, evaluations, fromLo: true });
  const accept = (alpha: number, f: number): LineSearchResult => ({ alpha, f, evaluations, fromLo: false });

  const zoom = (lo: number, fLo: number, dLo: number, hi: number, fHi: number, dHi: number): LineSearchResult => {
    while (evaluations < o.maxLineSearchEvaluations) {
      const width = hi - lo;
      if (Math.abs(width) <= Number.EPSILON * Math.max(Math.abs(lo), Math.abs(hi))) break;
      let a = Number.isFinite(fHi) && Number.isFinite(dHi) ? cubicMin(lo, fLo, dLo, hi, fHi, dHi) : NaN;
      const left = Math.min(lo, hi) + 0.1 * Math.abs(width);
      const right = Math.max(lo, hi) - 0.1 * Math.abs(width);
      if (!(a >= left && a <= right)) a = lo + 0.5 * width;
      const t = evaluate(a);
      if (t.f > f0 + o.c1 * a * d0 || t.f >= fLo) {
        hi = a;
        fHi = t.f;
        dHi = t.d;
      } else {
        if (Math.abs(t.d) <= -o.c2 * d0) return accept(a, t.f);
        if (t.d * (hi - lo) >= 0) {
          hi = lo;
          fHi = fLo;
          dHi = dLo;
        }
        lo = a;
        fLo = t.f;
        dLo = t.d;
      }
    }
    return fallback();
  };

  let prev = 0;
  let fPrev = f0;
  let dPrev = d0;
  let alpha = alphaInit;
  for (let i = 0; evaluations < o.maxLineSearchEvaluations; i++) {
    const t = evaluate(alpha);
    if (t.f > f0 + o.c1 * alpha * d0 || (i > 0 && t.f >= fPrev)) return zoom(prev, fPrev, dPrev, alpha, t.f, t.d);
    if (Math.abs(t.d) <= -o.c2 * d0) return accept(alpha, t.f);
    if (t.d >= 0) return zoom(alpha, t.f, t.d, prev, fPrev, dPrev);
    prev = alpha;
    fPrev = t.f;
    dPrev = t.d;
    alpha *= 4;
  }
  return fallback();
}
