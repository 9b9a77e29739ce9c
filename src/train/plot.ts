/**
 * Loss curves as SVG (and PNG) with Vega-Lite: train and validation loss against steps and
 * against tokens seen, side by side; and loss against position in the window (eval --by-position).
 */
import { writeFileSync } from 'node:fs';
import type { TopLevelSpec } from 'vega-lite';
import type { MetricRecord } from './metrics.js';

interface Point {
  step: number;
  tokens: number;
  loss: number;
  series: string;
}

function points(records: readonly MetricRecord[], runName = ''): Point[] {
  const prefix = runName ? `${runName} ` : '';
  const out: Point[] = [];
  for (const r of records) {
    if (r.kind === 'train') out.push({ step: r.step, tokens: r.tokens, loss: r.loss, series: `${prefix}train (batch)` });
    else {
      out.push({ step: r.step, tokens: r.tokens, loss: r.trainLoss, series: `${prefix}train (eval)` });
      out.push({ step: r.step, tokens: r.tokens, loss: r.valLoss, series: `${prefix}val` });
    }
  }
  return out;
}

export function lossCurveSpec(runs: { name: string; records: readonly MetricRecord[] }[], title: string, baseline?: number): TopLevelSpec {
  const values = runs.flatMap((r) => points(r.records, runs.length > 1 ? r.name : ''));
  const layer = (x: 'step' | 'tokens', xTitle: string) => ({
    width: 420,
    height: 280,
    layer: [
      {
        mark: { type: 'line' as const, strokeWidth: 1.5 },
        encoding: {
          x: { field: x, type: 'quantitative' as const, title: xTitle },
          y: { field: 'loss', type: 'quantitative' as const, title: 'loss (nats/token)', scale: { zero: false } },
          color: { field: 'series', type: 'nominal' as const, title: null },
          opacity: { condition: { test: "indexof(datum.series, 'batch') >= 0", value: 0.35 }, value: 1 },
        },
      },
      ...(baseline !== undefined ? [{ mark: { type: 'rule' as const, strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: baseline } } }] : []),
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    hconcat: [layer('step', 'step'), layer('tokens', 'tokens seen')],
  } as TopLevelSpec;
}

/** Loss against position in the window (log scale: the first tokens change fastest), one line per run. */
export function positionCurveSpec(curves: { name: string; losses: readonly number[] }[], title: string): TopLevelSpec {
  const values = curves.flatMap((c) => c.losses.map((loss, i) => ({ position: i + 1, loss, series: c.name })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 320,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'position', type: 'quantitative', title: 'position in the window (tokens of context + 1)', scale: { type: 'log', domain: [1, Math.max(2, ...curves.map((c) => c.losses.length))], nice: false } },
      y: { field: 'loss', type: 'quantitative', title: 'mean loss (nats/token)', scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}

/**
 * Vega and Vega-Lite are imported when a chart is drawn, not with this module: the training
 * command imports it, and merely loading Vega (measured) doubled the resident memory of a
 * training run — the process's malloc heap grew from ~220 MB to ~560 MB over the first
 * evaluations of the tiny preset.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Writes `<base>.svg` and `<base>.png`; returns the paths written. */
export async function writeLossCurve(base: string, spec: TopLevelSpec): Promise<string[]> {
  const svg = await renderSvg(spec);
  writeFileSync(`${base}.svg`, svg);
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, { fitTo: { mode: 'width', value: 1200 }, background: 'white' }).render().asPng();
  writeFileSync(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}
