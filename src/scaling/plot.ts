/**
 * Scaling-law plots as Vega-Lite specs (rendered to SVG by src/train/plot.ts's renderSvg):
 * loss against N with the fitted law, IsoFLOP profiles with their parabolas, and the
 * compute-optimal frontier.
 */
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../data/files.js';
import { renderSvg } from '../train/plot.js';
import { computeOptimal, predictLoss, type ScalingLaw, type ScalingPoint } from './chinchilla.js';
import { evalParabola, type Approach2Result, type IsoflopRun } from './isoflop.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** Log axes label only the powers of ten: the default labels crowd and repeat on wide ranges. */
const POWERS_OF_TEN = { labelExpr: "abs(round(log(datum.value) / LN10) - log(datum.value) / LN10) < 1e-6 ? format(datum.value, '.0e') : ''" };

function logSpace(lo: number, hi: number, count: number): number[] {
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: count }, (_, i) => Math.exp(a + ((b - a) * i) / (count - 1)));
}

function range(values: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** The frame of the one-panel plots (loss vs N, IsoFLOP profiles): one size for both. */
function onePanel(title: string, layer: readonly object[]): TopLevelSpec {
  return { $schema: SCHEMA, title, width: 520, height: 340, layer } as TopLevelSpec;
}

/** The D values to draw the law at: every distinct D of a grid sweep, else 6 log-spaced quantiles. */
function curveDs(points: readonly ScalingPoint[]): number[] {
  const distinct = [...new Set(points.map((p) => p.D))].sort((a, b) => a - b);
  if (distinct.length <= 8) return distinct;
  const logs = points.map((p) => Math.log(p.D)).sort((a, b) => a - b);
  return [0.05, 0.23, 0.41, 0.59, 0.77, 0.95].map((q) => Math.exp(logs[Math.round(q * (logs.length - 1))]));
}

/** Loss against N, points coloured by D, with the law L(N, D) drawn at a few D. */
export function lossVsNSpec(points: readonly ScalingPoint[], law: ScalingLaw, title = 'Loss vs parameters (Chinchilla approach 3)'): TopLevelSpec {
  const [nLo, nHi] = range(points.map((p) => p.N));
  const grid = logSpace(nLo / 1.5, nHi * 1.5, 80);
  const curves = curveDs(points).flatMap((D, k) => grid.map((N) => ({ N, D, log10D: Math.log10(D), loss: predictLoss(law, N, D), curve: k })));
  // Colour by log10 D on a linear scale: Vega gives a log colour scale a crowded symbol legend.
  const color = { field: 'log10D', type: 'quantitative' as const, title: 'log10 tokens D', scale: { scheme: 'viridis' }, legend: { format: '.1f' } };
  return onePanel(title, [
    {
      data: { values: curves },
      mark: { type: 'line', strokeWidth: 1.5, clip: true },
      encoding: {
        x: { field: 'N', type: 'quantitative', scale: { type: 'log' }, title: 'parameters N' },
        y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'final loss' },
        color,
        detail: { field: 'curve', type: 'nominal' },
      },
    },
    {
      data: { values: points.map((p) => ({ N: p.N, D: p.D, log10D: Math.log10(p.D), loss: p.loss })) },
      mark: { type: 'point', filled: true, size: 30, opacity: 0.85 },
      encoding: {
        x: { field: 'N', type: 'quantitative', scale: { type: 'log' } },
        y: { field: 'loss', type: 'quantitative', scale: { zero: false } },
        color,
      },
    },
  ]);
}

/** IsoFLOP profiles: loss against N per budget, the fitted parabolas and their minima. */
export function isoflopSpec<R extends IsoflopRun>(result: Approach2Result<R>, title = 'IsoFLOP profiles (Chinchilla approach 2)'): TopLevelSpec {
  const points = result.budgets.flatMap((b) => b.runs.map((r) => ({ N: r.N, loss: r.loss, C: b.C, log10C: Math.log10(b.C) })));
  const curves = result.budgets.flatMap((b, k) => {
    if (b.parabola === null) return [];
    const parabola = b.parabola;
    const [lo, hi] = range(b.runs.map((r) => Math.log(r.N)));
    const pad = 0.15 * (hi - lo);
    return logSpace(Math.exp(lo - pad), Math.exp(hi + pad), 50).map((N) => ({ N, loss: evalParabola(parabola, Math.log(N)), C: b.C, log10C: Math.log10(b.C), budget: k }));
  });
  const minima = result.budgets.filter((b) => b.Nopt !== null).map((b) => ({ N: b.Nopt, loss: b.lossAtOpt, C: b.C }));
  const color = { field: 'log10C', type: 'quantitative' as const, title: 'log10 C (FLOPs)', scale: { scheme: 'plasma' }, legend: { format: '.1f' } };
  const x = { field: 'N', type: 'quantitative' as const, scale: { type: 'log' as const }, title: 'parameters N' };
  const y = { field: 'loss', type: 'quantitative' as const, scale: { zero: false }, title: 'final loss' };
  return onePanel(title, [
    { data: { values: curves }, mark: { type: 'line', strokeWidth: 1.5, clip: true }, encoding: { x, y, color, detail: { field: 'budget', type: 'nominal' } } },
    { data: { values: points }, mark: { type: 'point', filled: true, size: 28, opacity: 0.8 }, encoding: { x, y, color } },
    { data: { values: minima }, mark: { type: 'point', shape: 'diamond', size: 110, filled: false, strokeWidth: 2, color: 'black' }, encoding: { x, y } },
  ]);
}

export interface FrontierInput<R extends IsoflopRun = IsoflopRun> {
  law?: ScalingLaw;
  approach2?: Approach2Result<R>;
  /** The range of C to draw (FLOPs). */
  cRange: [number, number];
  /** A budget to mark with a rule. */
  compute?: number;
}

/** Compute-optimal N and D against C on log-log axes, from approach 3 and/or approach 2. */
export function frontierSpec<R extends IsoflopRun>(input: FrontierInput<R>, title = 'Compute-optimal frontier'): TopLevelSpec {
  type Row = { C: number; value: number; quantity: string; source: string };
  const rows: Row[] = [];
  const grid = logSpace(input.cRange[0], input.cRange[1], 60);
  const law = input.law;
  if (law !== undefined && law.alpha > 0 && law.beta > 0) {
    for (const C of grid) {
      const o = computeOptimal(law, C);
      rows.push({ C, value: o.N, quantity: 'N_opt', source: 'approach 3 (fitted law)' }, { C, value: o.D, quantity: 'D_opt', source: 'approach 3 (fitted law)' });
    }
  }
  const a2 = input.approach2;
  if (a2 !== undefined) {
    for (const b of a2.budgets) {
      if (b.Nopt === null || b.Dopt === null) continue;
      rows.push({ C: b.C, value: b.Nopt, quantity: 'N_opt', source: 'approach 2 (budget minima)' }, { C: b.C, value: b.Dopt, quantity: 'D_opt', source: 'approach 2 (budget minima)' });
    }
    if (a2.N !== null && a2.D !== null) {
      const fitN = a2.N;
      const fitD = a2.D;
      for (const C of grid) {
        rows.push({ C, value: fitN.k * C ** fitN.exponent, quantity: 'N_opt', source: 'approach 2 (power-law fit)' }, { C, value: fitD.k * C ** fitD.exponent, quantity: 'D_opt', source: 'approach 2 (power-law fit)' });
      }
    }
  }
  const panel = (quantity: string, yTitle: string) => ({
    width: 340,
    height: 300,
    transform: [{ filter: { field: 'quantity', equal: quantity } }],
    layer: [
      {
        transform: [{ filter: "indexof(datum.source, 'minima') < 0" }],
        mark: { type: 'line', opacity: 0.8 },
        encoding: {
          // Approaches 2 and 3 often agree: draw 3 wider so it stays visible under 2.
          strokeWidth: { condition: { test: "indexof(datum.source, 'approach 3') >= 0", value: 4 }, value: 1.5 },
          x: { field: 'C', type: 'quantitative', scale: { type: 'log' }, title: 'training FLOPs C', axis: POWERS_OF_TEN },
          y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: yTitle, axis: POWERS_OF_TEN },
          color: { field: 'source', type: 'nominal', title: null, legend: { labelLimit: 400, orient: 'bottom', direction: 'vertical' } },
          strokeDash: { field: 'source', type: 'nominal', legend: null },
        },
      },
      {
        transform: [{ filter: "indexof(datum.source, 'minima') >= 0" }],
        mark: { type: 'point', filled: true, size: 40 },
        encoding: {
          x: { field: 'C', type: 'quantitative', scale: { type: 'log' } },
          y: { field: 'value', type: 'quantitative', scale: { type: 'log' } },
          color: { field: 'source', type: 'nominal', title: null },
        },
      },
      ...(input.compute !== undefined ? [{ mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { datum: input.compute } } }] : []),
    ],
  });
  return {
    $schema: SCHEMA,
    title,
    data: { values: rows },
    hconcat: [panel('N_opt', 'compute-optimal parameters N'), panel('D_opt', 'compute-optimal tokens D')],
  } as TopLevelSpec;
}

export interface ScalingPlotsInput<R extends IsoflopRun> {
  points: readonly ScalingPoint[];
  law?: ScalingLaw;
  approach2?: Approach2Result<R>;
  compute?: number;
}

/** Renders the plots that apply to `dir` as SVG (written atomically); returns the paths written. */
export async function writeScalingPlots<R extends IsoflopRun>(dir: string, input: ScalingPlotsInput<R>): Promise<string[]> {
  const written: string[] = [];
  const write = async (name: string, spec: TopLevelSpec) => {
    const path = join(dir, name);
    writeFileAtomic(path, await renderSvg(spec));
    written.push(path);
  };
  if (input.law !== undefined) await write('loss-vs-n.svg', lossVsNSpec(input.points, input.law));
  if (input.approach2 !== undefined && input.approach2.budgets.length > 0) await write('isoflop.svg', isoflopSpec(input.approach2));
  if (input.law !== undefined || input.approach2?.N) {
    const Cs = input.points.map((p) => 6 * p.N * p.D);
    if (input.compute !== undefined) Cs.push(input.compute);
    const [lo, hi] = range(Cs);
    await write('frontier.svg', frontierSpec({ law: input.law, approach2: input.approach2, cRange: [lo / 3, hi * 3], compute: input.compute }));
  }
  return written;
}
