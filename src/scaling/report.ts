/**
 * The whole `tensorlm scaling fit` job as one library call: load runs, fit approach 3 (with
 * bootstrap intervals) and/or approach 2, and return a plain-JSON report (what fit.json holds).
 */
import {
  bootstrapApproach3,
  computeOptimal,
  fitApproach3,
  type Approach3Fit,
  type BootstrapResult,
  type ComputeOptimal,
} from './chinchilla.js';
import { loadRunsCsv, type LoadRunsOptions, type Run, type RunsTable } from './data.js';
import { fitApproach2, type Approach2Result, type Parabola, type PowerLawFit } from './isoflop.js';
import type { LbfgsStopReason } from './lbfgs.js';

export type Approach = '2' | '3' | 'both';

export interface ScalingFitOptions extends LoadRunsOptions {
  csv: string;
  approach?: Approach;
  /** Bootstrap resamples for approach 3 (0 = no intervals; default 200). */
  bootstrap?: number;
  /** Starts per resample: 'full' or k best grid starts + the optimum (default 20); see bootstrapApproach3. */
  bootstrapStarts?: 'full' | number;
  seed?: number;
  level?: number;
  /** A training budget (FLOPs) for the compute-optimal allocation. */
  compute?: number;
  /** Approach 2 budgets (FLOPs); default: bucket runs by near-equal C. */
  budgets?: readonly number[];
  /** Approach 2 grouping tolerance in decades of C (default 0.05). */
  budgetTolerance?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Approach3Report {
  E: number;
  A: number;
  B: number;
  alpha: number;
  beta: number;
  a: number;
  b: number;
  e: number;
  /** The Huber objective (sum) at the optimum. */
  objective: number;
  delta: number;
  starts: number;
  startsAtBest: number;
  convergedStarts: number;
  best: { start: number[]; iterations: number; evaluations: number; reason: LbfgsStopReason; gradNorm: number };
  seconds: number;
  computeOptimal: ComputeOptimal | null;
  /** Why there is no compute-optimal allocation although a budget was given (α or β ≤ 0). */
  computeOptimalError: string | null;
  bootstrap: BootstrapReport | null;
  /** A fitted exponent outside the sane range (chinchilla.ts exponentWarnings), one sentence each. */
  warnings: string[];
}

/** The bootstrap as fit.json holds it: its intervals without the per-resample fits, and its wall time. */
export interface BootstrapReport extends Omit<BootstrapResult, 'samples'> {
  seconds: number;
}

export interface Approach2Report {
  tolerance: number;
  grouping: string;
  unassigned: number;
  budgets: {
    C: number;
    runs: number;
    Nopt: number | null;
    Dopt: number | null;
    lossAtOpt: number | null;
    extrapolated: boolean;
    parabola: Parabola | null;
    skipped: string | null;
  }[];
  N: PowerLawFit | null;
  D: PowerLawFit | null;
  reason: string | null;
}

export interface ScalingReport {
  source: string;
  format: RunsTable['format'];
  columns: RunsTable['columns'];
  derived: RunsTable['derived'];
  runs: number;
  dropped: Run[];
  compute: number | null;
  approach3: Approach3Report | null;
  approach2: Approach2Report | null;
}

export interface ScalingFitResult {
  report: ScalingReport;
  table: RunsTable;
  fit: Approach3Fit | null;
  bootstrap: BootstrapResult | null;
  approach2: Approach2Result<Run> | null;
}

export function runScalingFit(options: ScalingFitOptions): ScalingFitResult {
  const approach = options.approach ?? 'both';
  if (approach !== '2' && approach !== '3' && approach !== 'both') throw new RangeError(`approach must be '2', '3' or 'both', got '${String(approach)}'`);
  const resamples = options.bootstrap ?? 200;
  if (!Number.isInteger(resamples) || resamples < 0) throw new RangeError(`bootstrap must be a non-negative integer, got ${resamples}`);
  const compute = options.compute;
  if (compute !== undefined && (!(compute > 0) || !Number.isFinite(compute))) throw new RangeError(`compute must be a finite positive number of FLOPs, got ${compute}`);

  const table = loadRunsCsv(options.csv, options);
  const runs = table.runs;
  let fit: Approach3Fit | null = null;
  let bootstrap: BootstrapResult | null = null;
  let a3: Approach3Report | null = null;
  if (approach !== '2') {
    let t = performance.now();
    try {
      fit = fitApproach3(runs, { keepBestStarts: typeof options.bootstrapStarts === 'number' ? Math.max(32, options.bootstrapStarts) : 32 });
    } catch (error) {
      // Name the file: the fit's own messages know only the runs (and their CSV lines).
      if (error instanceof RangeError) throw new RangeError(`${table.source}: ${error.message}`);
      throw error;
    }
    const fitSeconds = (performance.now() - t) / 1000;
    let optimal: ComputeOptimal | null = null;
    let optimalError: string | null = null;
    if (compute !== undefined) {
      try {
        optimal = computeOptimal(fit, compute);
      } catch (error) {
        optimalError = (error as Error).message;
      }
    }
    let bootstrapReport: BootstrapReport | null = null;
    if (resamples > 0) {
      t = performance.now();
      bootstrap = bootstrapApproach3(runs, fit, {
        resamples,
        seed: options.seed,
        level: options.level,
        starts: options.bootstrapStarts,
        compute: optimal !== null && compute !== undefined ? [compute] : [],
        onProgress: options.onProgress,
      });
      const { samples: _samples, ...rest } = bootstrap;
      bootstrapReport = { ...rest, seconds: (performance.now() - t) / 1000 };
    }
    a3 = {
      E: fit.E,
      A: fit.A,
      B: fit.B,
      alpha: fit.alpha,
      beta: fit.beta,
      a: fit.a,
      b: fit.b,
      e: fit.e,
      objective: fit.loss,
      delta: fit.delta,
      starts: fit.starts,
      startsAtBest: fit.startsAtBest,
      convergedStarts: fit.convergedStarts,
      best: fit.best,
      seconds: fitSeconds,
      computeOptimal: optimal,
      computeOptimalError: optimalError,
      bootstrap: bootstrapReport,
      warnings: fit.warnings,
    };
  }
  let approach2: Approach2Result<Run> | null = null;
  let a2: Approach2Report | null = null;
  if (approach !== '3') {
    try {
      approach2 = fitApproach2(runs, { budgets: options.budgets, tolerance: options.budgetTolerance });
    } catch (error) {
      if (error instanceof RangeError) throw new RangeError(`${table.source}: ${error.message}`);
      throw error;
    }
    a2 = {
      tolerance: approach2.tolerance,
      grouping: options.budgets !== undefined ? `runs assigned to the nearest given budget within ${approach2.tolerance} decades` : `runs bucketed by C, each bucket spanning at most ${approach2.tolerance} decades`,
      unassigned: approach2.unassigned.length,
      budgets: approach2.budgets.map((b) => ({
        C: b.C,
        runs: b.runs.length,
        Nopt: b.Nopt,
        Dopt: b.Dopt,
        lossAtOpt: b.lossAtOpt,
        extrapolated: b.extrapolated,
        parabola: b.parabola,
        skipped: b.reason,
      })),
      N: approach2.N,
      D: approach2.D,
      reason: approach2.reason,
    };
  }
  return {
    report: {
      source: table.source,
      format: table.format,
      columns: table.columns,
      derived: table.derived,
      runs: runs.length,
      dropped: table.dropped,
      compute: compute ?? null,
      approach3: a3,
      approach2: a2,
    },
    table,
    fit,
    bootstrap,
    approach2,
  };
}
