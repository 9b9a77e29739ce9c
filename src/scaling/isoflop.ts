/**
 * Chinchilla approach 2 (Hoffmann et al. 2022, §3.2): IsoFLOP profiles. Runs are grouped by
 * training compute; within each budget a parabola of loss in ln N is fitted by least squares
 * and its vertex gives N_opt(C), with D_opt = C / (6 N_opt). Power laws N_opt = k_N C^a and
 * D_opt = k_D C^b are then fitted across budgets by least squares in log-log space.
 */

/** What approach 2 needs of a run: N parameters, D tokens, C FLOPs, final loss. */
export interface IsoflopRun {
  readonly N: number;
  readonly D: number;
  readonly C: number;
  readonly loss: number;
}

export interface IsoflopOptions {
  /**
   * Budgets (FLOPs) to group runs by: each run joins the budget nearest to its C in log space,
   * if within `tolerance`. Without this, runs are bucketed by near-equal C instead.
   */
  budgets?: readonly number[];
  /**
   * Largest |log10 C − log10 budget| for a run to belong to a budget (default 0.05, i.e. about
   * ±12%); when bucketing, a bucket spans at most this many decades from its smallest C.
   */
  tolerance?: number;
}

/** loss ≈ c0 + c1 x + c2 x², x = ln N − center (centred for a well-conditioned solve). */
export interface Parabola {
  c0: number;
  c1: number;
  c2: number;
  center: number;
}

export interface BudgetFit<R extends IsoflopRun = IsoflopRun> {
  /** The budget in FLOPs (the given budget, or the geometric mean of the bucket's C). */
  C: number;
  runs: R[];
  /** Null when the budget was skipped; `reason` then says why. */
  parabola: Parabola | null;
  reason: string | null;
  Nopt: number | null;
  Dopt: number | null;
  lossAtOpt: number | null;
  /** The vertex lies outside the budget's range of N: the minimum is an extrapolation. */
  extrapolated: boolean;
}

export interface PowerLawFit {
  /** value = k · C^exponent */
  k: number;
  exponent: number;
  /** Standard error of the exponent (null with fewer than 3 budgets). */
  exponentStdErr: number | null;
  /** Coefficient of determination of the log-log fit. */
  r2: number;
  budgets: number;
}

export interface Approach2Result<R extends IsoflopRun = IsoflopRun> {
  budgets: BudgetFit<R>[];
  /** Runs that matched no given budget. */
  unassigned: R[];
  tolerance: number;
  /** Null when fewer than two budgets gave a minimum; `reason` says so. */
  N: PowerLawFit | null;
  D: PowerLawFit | null;
  reason: string | null;
}

/** Solves the 3×3 system M z = v by Gaussian elimination with partial pivoting; null if singular. */
function solve3(M: number[][], v: number[]): number[] | null {
  const A = M.map((row, i) => [...row, v[i]]);
  for (let col = 0; col < 3; col++) {
    let pivot = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(A[r][col]) > Math.abs(A[pivot][col])) pivot = r;
    if (!(Math.abs(A[pivot][col]) > 1e-12 * Math.max(1, Math.abs(A[0][0])))) return null;
    [A[col], A[pivot]] = [A[pivot], A[col]];
    for (let r = col + 1; r < 3; r++) {
      const factor = A[r][col] / A[col][col];
      for (let c = col; c < 4; c++) A[r][c] -= factor * A[col][c];
    }
  }
  const z = [0, 0, 0];
  for (let r = 2; r >= 0; r--) {
    let s = A[r][3];
    for (let c = r + 1; c < 3; c++) s -= A[r][c] * z[c];
    z[r] = s / A[r][r];
  }
  return z;
}

/** Least-squares parabola of y in x (x centred internally); null when x has fewer than 3 distinct values. */
export function fitParabola(x: readonly number[], y: readonly number[]): Parabola | null {
  if (x.length !== y.length) throw new RangeError(`fitParabola: x and y differ in length (${x.length} vs ${y.length})`);
  if (new Set(x).size < 3) return null;
  const center = x.reduce((s, v) => s + v, 0) / x.length;
  const S = [0, 0, 0, 0, 0];
  const T = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    const u = x[i] - center;
    let p = 1;
    for (let k = 0; k < 5; k++) {
      S[k] += p;
      if (k < 3) T[k] += p * y[i];
      p *= u;
    }
  }
  const z = solve3(
    [
      [S[0], S[1], S[2]],
      [S[1], S[2], S[3]],
      [S[2], S[3], S[4]],
    ],
    T,
  );
  return z === null ? null : { c0: z[0], c1: z[1], c2: z[2], center };
}

export function evalParabola(p: Parabola, x: number): number {
  const u = x - p.center;
  return p.c0 + p.c1 * u + p.c2 * u * u;
}

/** Ordinary least squares of ln(value) on ln(C). */
export function fitPowerLaw(C: readonly number[], value: readonly number[]): PowerLawFit {
  const m = C.length;
  if (m < 2 || value.length !== m) throw new RangeError(`fitPowerLaw: need at least 2 (C, value) pairs of equal length, got ${m} and ${value.length}`);
  const x = C.map(Math.log);
  const y = value.map(Math.log);
  const mx = x.reduce((s, v) => s + v, 0) / m;
  const my = y.reduce((s, v) => s + v, 0) / m;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < m; i++) {
    sxx += (x[i] - mx) ** 2;
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) ** 2;
  }
  if (!(sxx > 0)) throw new RangeError('fitPowerLaw: all budgets have the same C, so no exponent can be fitted');
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const ssr = Math.max(0, syy - slope * sxy);
  return {
    k: Math.exp(intercept),
    exponent: slope,
    exponentStdErr: m >= 3 ? Math.sqrt(ssr / (m - 2) / sxx) : null,
    r2: syy > 0 ? 1 - ssr / syy : 1,
    budgets: m,
  };
}

function groupRuns<R extends IsoflopRun>(runs: readonly R[], options: IsoflopOptions, tolerance: number): { groups: { C: number; runs: R[] }[]; unassigned: R[] } {
  const log10 = (v: number) => Math.log10(v);
  if (options.budgets !== undefined) {
    const budgets = [...new Set(options.budgets)];
    if (budgets.length === 0) throw new RangeError('isoflop: budgets must not be empty (leave it out to bucket runs by C)');
    for (const b of budgets) if (!(b > 0) || !Number.isFinite(b)) throw new RangeError(`isoflop: budgets must be finite positive FLOP counts, got ${b}`);
    budgets.sort((p, q) => p - q);
    const groups = budgets.map((C) => ({ C, runs: [] as R[] }));
    const unassigned: R[] = [];
    for (const run of runs) {
      let best = -1;
      let bestGap = Infinity;
      groups.forEach((g, i) => {
        const gap = Math.abs(log10(run.C) - log10(g.C));
        if (gap < bestGap) {
          bestGap = gap;
          best = i;
        }
      });
      if (bestGap <= tolerance) groups[best].runs.push(run);
      else unassigned.push(run);
    }
    return { groups, unassigned };
  }
  // Greedy buckets in order of C: a bucket spans at most `tolerance` decades from its first run.
  const sorted = [...runs].sort((p, q) => p.C - q.C);
  const buckets: R[][] = [];
  let start = -Infinity;
  for (const run of sorted) {
    if (log10(run.C) - start > tolerance) {
      buckets.push([]);
      start = log10(run.C);
    }
    buckets[buckets.length - 1].push(run);
  }
  return {
    groups: buckets.map((b) => ({ C: Math.exp(b.reduce((s, r) => s + Math.log(r.C), 0) / b.length), runs: b })),
    unassigned: [],
  };
}

/** ` (CSV line k)` for a run read from a CSV (data.ts Run.line), else nothing. */
function lineOf(run: object): string {
  const line = (run as { line?: unknown }).line;
  return typeof line === 'number' ? ` (CSV line ${line})` : '';
}

export function fitApproach2<R extends IsoflopRun>(runs: readonly R[], options: IsoflopOptions = {}): Approach2Result<R> {
  const tolerance = options.tolerance ?? 0.05;
  if (!(tolerance > 0) || !Number.isFinite(tolerance)) throw new RangeError(`isoflop: tolerance must be a finite positive number of decades, got ${tolerance}`);
  runs.forEach((r, i) => {
    for (const key of ['N', 'D', 'C', 'loss'] as const) {
      const v = r[key];
      if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new RangeError(`isoflop: run ${i}${lineOf(r)} has ${key} = ${String(v)}; expected a finite positive number`);
    }
  });
  const { groups, unassigned } = groupRuns(runs, options, tolerance);
  const budgets = groups.map(({ C, runs: members }): BudgetFit<R> => {
    const base = { C, runs: members, parabola: null, Nopt: null, Dopt: null, lossAtOpt: null, extrapolated: false };
    if (members.length < 3) return { ...base, reason: `only ${members.length} run${members.length === 1 ? '' : 's'} (a parabola needs at least 3)` };
    const x = members.map((r) => Math.log(r.N));
    const parabola = fitParabola(
      x,
      members.map((r) => r.loss),
    );
    if (parabola === null) return { ...base, reason: `fewer than 3 distinct model sizes among its ${members.length} runs` };
    if (!(parabola.c2 > 0)) return { ...base, reason: `the parabola opens downwards (curvature ${parabola.c2.toPrecision(3)} ≤ 0), so it has no minimum` };
    const xOpt = parabola.center - parabola.c1 / (2 * parabola.c2);
    const Nopt = Math.exp(xOpt);
    return {
      ...base,
      parabola,
      reason: null,
      Nopt,
      Dopt: C / (6 * Nopt),
      lossAtOpt: evalParabola(parabola, xOpt),
      extrapolated: xOpt < Math.min(...x) || xOpt > Math.max(...x),
    };
  });
  const ok = budgets.filter((b) => b.Nopt !== null);
  if (ok.length < 2) {
    return { budgets, unassigned, tolerance, N: null, D: null, reason: `only ${ok.length} budget${ok.length === 1 ? '' : 's'} gave a minimum; the power laws need at least 2` };
  }
  const Cs = ok.map((b) => b.C);
  return {
    budgets,
    unassigned,
    tolerance,
    N: fitPowerLaw(Cs, ok.map((b) => b.Nopt as number)),
    D: fitPowerLaw(Cs, ok.map((b) => b.Dopt as number)),
    reason: null,
  };
}
