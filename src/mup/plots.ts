/**
 * Vega-Lite specs for the μP figures, rendered to SVG with `renderSvg` (src/train/plot.ts):
 * the coordinate check (mean |x| against width, log-log, one line per layer, a panel per
 * parametrization) and the μTransfer curves (final train loss against log2 LR, one line per
 * width, a panel per parametrization).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { CoordCheckResult, Parametrization } from './coord-check.js';
import { transferMeans, type TransferRecord } from './transfer.js';

const LABEL: Record<Parametrization, string> = { sp: 'SP', mup: 'μP' };

/**
 * Coordinate-check plot. `step`: one step (default the last) as one row of panels SP | μP, or
 * 'all' for a grid (rows: parametrization, columns: step). `delta` plots mean |x − x₀| instead.
 */
export function coordCheckSpec(result: CoordCheckResult, options: { step?: number | 'all'; delta?: boolean } = {}): TopLevelSpec {
  const step = options.step ?? result.settings.steps;
  const field = options.delta ? 'meanAbsDelta' : 'meanAbs';
  const values = result.records
    .filter((r) => (step === 'all' || r.step === step) && (!options.delta || r.step > 0))
    .map((r) => ({ ...r, panel: LABEL[r.parametrization], value: r[field] }))
    .filter((r) => r.value > 0);
  const yTitle = options.delta ? 'mean |x − x₀|' : 'mean |x|';
  const order = result.settings.parametrizations.map((p) => LABEL[p]);
  const inner = {
    width: step === 'all' ? 150 : 300,
    height: step === 'all' ? 130 : 240,
    mark: { type: 'line' as const, point: true, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'width', type: 'quantitative' as const, scale: { type: 'log' as const, base: 2 }, axis: { values: result.settings.widths }, title: 'width (dModel)' },
      y: { field: 'value', type: 'quantitative' as const, scale: { type: 'log' as const }, title: yTitle },
      color: { field: 'layer', type: 'nominal' as const, sort: result.layers, title: 'layer output' },
    },
  };
  const title = `μP coordinate check: ${yTitle} vs width (${result.settings.nLayers} layers, AdamW lr ${result.settings.lr}, ${step === 'all' ? `steps 0–${result.settings.steps}` : `after ${step} steps`})`;
  const facet =
    step === 'all'
      ? { row: { field: 'panel', type: 'nominal' as const, sort: order, title: null }, column: { field: 'step', type: 'ordinal' as const, title: 'step' } }
      : { column: { field: 'panel', type: 'nominal' as const, sort: order, title: null } };
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, data: { values }, facet, spec: inner } as TopLevelSpec;
}

/**
 * μTransfer plot: seed-mean final train loss against log2 LR, one line per width, panels SP | μP.
 * LRs where a seed diverged are left out; losses above `yMax` (default: the largest loss that is
 * not worse than the uniform-prediction baseline, when given) are clipped to the frame.
 */
export function transferSpec(records: readonly TransferRecord[], options: { title?: string; yMax?: number } = {}): TopLevelSpec {
  const means = transferMeans(records).filter((m) => m.loss !== null);
  const widths = [...new Set(means.map((m) => m.width))].sort((a, b) => a - b);
  const losses = means.map((m) => m.loss as number);
  const lo = Math.min(...losses);
  const hi = Math.min(Math.max(...losses), options.yMax ?? Infinity);
  const values = means.map((m) => ({ ...m, panel: LABEL[m.parametrization], width: String(m.width) }));
  const order = (['sp', 'mup'] as const).filter((p) => means.some((m) => m.parametrization === p)).map((p) => LABEL[p]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: options.title ?? 'μTransfer: final train loss vs learning rate',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', sort: order, title: null } },
    spec: {
      width: 320,
      height: 240,
      mark: { type: 'line', point: true, strokeWidth: 1.5, clip: true },
      encoding: {
        x: { field: 'log2Lr', type: 'quantitative', title: 'log2 learning rate', scale: { zero: false } },
        y: { field: 'loss', type: 'quantitative', title: 'final train loss (nats/char)', scale: { zero: false, domain: [Math.floor(lo * 10) / 10, Math.ceil(hi * 10) / 10] } },
        color: { field: 'width', type: 'ordinal', sort: widths.map(String), title: 'width', scale: { scheme: 'viridis' } },
      },
    },
  } as TopLevelSpec;
}
