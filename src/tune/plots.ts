/**
 * Study plots as SVG (Vega-Lite, rendered by the same `renderSvg` as the loss curves):
 * - objective.svg: the objective of every finished trial against its number, with the best so far;
 * - params.svg: one panel per option, its value against the objective (log axes for log ranges);
 * - intermediate.svg: every trial's validation loss curve, pruned ones marked.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg } from '../train/plot.js';
import type { SearchSpace } from './space.js';
import type { StudyRecord, TrialRecord } from './types.js';

const STATE_COLORS = { domain: ['complete', 'pruned', 'baseline'], range: ['#1f77b4', '#ff7f0e', '#2ca02c'] };

function finished(trials: readonly TrialRecord[]): TrialRecord[] {
  return trials.filter((t) => (t.state === 'complete' || t.state === 'pruned') && t.value !== null && Number.isFinite(t.value));
}

const kindOf = (t: TrialRecord) => (t.origin === 'baseline' && t.state === 'complete' ? 'baseline' : t.state);

export function objectiveSpec(study: StudyRecord, trials: readonly TrialRecord[]): TopLevelSpec {
  const points = finished(trials).map((t) => ({ trial: t.number, value: t.value, state: kindOf(t) }));
  let best = Infinity;
  const bestSoFar = [...trials]
    .filter((t) => t.state === 'complete' && t.value !== null)
    .sort((a, b) => a.number - b.number)
    .map((t) => ({ trial: t.number, best: (best = Math.min(best, t.value as number)) }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${study.name}: objective by trial`,
    width: 520,
    height: 300,
    layer: [
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 50 },
        encoding: {
          x: { field: 'trial', type: 'quantitative', title: 'trial', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'value', type: 'quantitative', title: 'validation loss (pruned: last reported)', scale: { zero: false } },
          color: { field: 'state', type: 'nominal', title: null, scale: STATE_COLORS },
        },
      },
      {
        data: { values: bestSoFar },
        mark: { type: 'line', interpolate: 'step-after', color: 'black', strokeDash: [4, 3] },
        encoding: { x: { field: 'trial', type: 'quantitative' }, y: { field: 'best', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

export function paramsSpec(study: StudyRecord, trials: readonly TrialRecord[], space: SearchSpace = study.settings.space): TopLevelSpec {
  const done = finished(trials);
  const panels = Object.entries(space).map(([key, dist]) => {
    const values = done.map((t) => ({ x: dist.type === 'choice' ? String(t.params[key]) : t.params[key], value: t.value, state: kindOf(t) }));
    const log = dist.type === 'logUniform' || (dist.type === 'int' && dist.log === true);
    const x =
      dist.type === 'choice'
        ? { field: 'x', type: 'ordinal' as const, title: key, sort: dist.values.map(String) }
        : { field: 'x', type: 'quantitative' as const, title: key, scale: log ? { type: 'log' as const } : { zero: false } };
    return {
      width: 240,
      height: 180,
      data: { values },
      mark: { type: 'point' as const, filled: true, size: 45 },
      encoding: {
        x,
        y: { field: 'value', type: 'quantitative' as const, title: 'validation loss', scale: { zero: false } },
        color: { field: 'state', type: 'nominal' as const, title: null, scale: STATE_COLORS },
      },
    };
  });
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: `${study.name}: options against the objective`, concat: panels, columns: 3 } as TopLevelSpec;
}

export function intermediateSpec(study: StudyRecord, trials: readonly TrialRecord[]): TopLevelSpec {
  const unit = 'steps' in study.settings.budget ? 'step' : 'tokens seen';
  const values = trials.flatMap((t) => t.intermediates.filter((r) => Number.isFinite(r.value)).map((r) => ({ trial: `#${t.number}`, step: r.step, value: r.value, state: t.state })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${study.name}: validation loss during each trial`,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true, strokeWidth: 1.2 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: unit },
      y: { field: 'value', type: 'quantitative', title: 'validation loss', scale: { zero: false } },
      detail: { field: 'trial', type: 'nominal' },
      color: { field: 'state', type: 'nominal', title: null },
      opacity: { condition: { test: "datum.state === 'pruned'", value: 0.45 }, value: 0.9 },
    },
  } as TopLevelSpec;
}

/** Writes the three SVGs into `dir`; returns their paths. */
export async function writeStudyPlots(dir: string, study: StudyRecord, trials: readonly TrialRecord[]): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  for (const [name, spec] of [
    ['objective', objectiveSpec(study, trials)],
    ['params', paramsSpec(study, trials)],
    ['intermediate', intermediateSpec(study, trials)],
  ] as const) {
    const path = join(dir, `${name}.svg`);
    writeFileSync(path, await renderSvg(spec));
    out.push(path);
  }
  return out;
}
