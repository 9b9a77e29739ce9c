/**
 * `tensorlm scaling sweep`: trains a grid of model sizes × token budgets and collects
 * (N, D, C, loss) for `scaling fit`. It reuses the tuning machinery (src/tune): each token budget
 * is one study with a grid sampler over `model.dModel` × `model.nLayers` and no pruning, stored in
 * SQLite or PostgreSQL, so several `scaling sweep` processes (on one machine or many) share the
 * runs with the same atomic claims, dead-worker re-queueing and resume as `tensorlm tune`.
 *
 * N is counted from each trial's resolved model config: `N` without the embedding tables (token
 * and position embeddings, and the untied head if any — Kaplan et al.'s convention, which the
 * small models here need because the embeddings are a large share of them) and
 * `N_with_embeddings` (every parameter). D is the tokens the trial really trained on
 * (steps × batch × block), C = 6·N·D, and loss is the final validation loss.
 */
import { countParameters } from '../models/params.js';
import { loadText } from '../data/resolve.js';
import { SWEEP_HEADER } from './data.js';
import { trainObjective, trialTrainConfig } from '../tune/objective.js';
import type { SearchSpace } from '../tune/space.js';
import type { TuneStorage } from '../tune/storage/common.js';
import { openStudy, runWorker, workerIdentity, type WorkerSummary } from '../tune/study.js';
import type { TrainConfig } from '../train/config.js';
import { buildModelConfig } from '../models/presets.js';
import { isRecurrentConfig } from '../models/config.js';
import { makeTokenizer } from '../train/trainer.js';

export interface SweepInput {
  /** Study-name prefix: the budget of D tokens is study `<name>-d<D>`. */
  name: string;
  /** Model widths (dModel); dFF keeps the preset's ratio, heads stay as the base config has them. */
  widths: readonly number[];
  layers: readonly number[];
  /** Training tokens per run, one study each. */
  tokens: readonly number[];
  /** Base train config of every run (preset, data, batch, block, lr, ...). */
  base: Partial<TrainConfig>;
}

export interface SweepRow {
  study: string;
  trial: number;
  dModel: number;
  nLayers: number;
  /** Parameters without the embedding tables (what `scaling fit` fits by default). */
  N: number;
  N_with_embeddings: number;
  /** Tokens trained on. */
  D: number;
  /** 6·N·D. */
  C: number;
  loss: number;
}

function checkList(name: string, values: readonly number[], integer: boolean): void {
  if (values.length === 0) throw new Error(`scaling sweep: ${name} is empty`);
  for (const v of values) {
    if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new Error(`scaling sweep: ${name} must be positive ${integer ? 'integers' : 'numbers'}, got ${v}`);
  }
}

/** The studies of a sweep: one per token budget, each a grid over widths × layers. */
export function sweepStudies(input: SweepInput): { study: string; tokens: number; space: SearchSpace; trials: number }[] {
  checkList('--widths', input.widths, true);
  checkList('--layers', input.layers, true);
  checkList('--tokens', input.tokens, true);
  if (!/^[\w.-]+$/.test(input.name)) throw new Error(`scaling sweep: --name '${input.name}' may only contain letters, digits, '.', '_' and '-'`);
  const space: SearchSpace = {
    'model.dModel': { type: 'choice', values: [...input.widths] },
    'model.nLayers': { type: 'choice', values: [...input.layers] },
  };
  return input.tokens.map((tokens) => ({ study: `${input.name}-d${tokens}`, tokens, space, trials: input.widths.length * input.layers.length }));
}

export interface SweepWorkerOptions {
  outDir: string;
  dataDir?: string;
  log?: (line: string) => void;
  stop?: { requested: boolean };
}

/** Serves every study of the sweep in turn (the smallest budget first) until all are done. */
export async function runSweepWorker(storage: TuneStorage, input: SweepInput, options: SweepWorkerOptions): Promise<WorkerSummary[]> {
  const summaries: WorkerSummary[] = [];
  const identity = workerIdentity();
  for (const s of [...sweepStudies(input)].sort((a, b) => a.tokens - b.tokens)) {
    if (options.stop?.requested) break;
    const { study } = await openStudy(storage, s.study, { space: s.space, sampler: 'grid', pruner: 'none', budgetTokens: s.tokens, base: input.base, trials: s.trials, seed: 0 });
    options.log?.(`study '${s.study}': ${s.trials} model sizes × ${s.tokens} tokens`);
    summaries.push(
      await runWorker(storage, study, {
        identity,
        outDir: `${options.outDir}/${s.study}`,
        stop: options.stop,
        log: options.log,
        objective: trainObjective({ dataDir: options.dataDir }),
      }),
    );
  }
  return summaries;
}

/** The complete runs of a sweep as rows (N, D, C, loss), from the study storage alone. */
export async function sweepRows(storage: TuneStorage, input: SweepInput, options: { dataDir?: string } = {}): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  let vocabSize: number | null = null;
  for (const s of sweepStudies(input)) {
    const study = await storage.loadStudy(s.study);
    if (!study) continue;
    for (const trial of await storage.listTrials(study.id)) {
      if (trial.state !== 'complete' || trial.value === null) continue;
      const config = trialTrainConfig(study.settings, trial.params, 'runs', 'scaling-row', options.dataDir);
      if (vocabSize === null) vocabSize = makeTokenizer(config.tokenizer, await loadText(config.data, { dataDir: config.dataDir ?? undefined })).vocabSize;
      const modelConfig = buildModelConfig(config, vocabSize);
      if (isRecurrentConfig(modelConfig)) throw new Error(`scaling: preset '${config.preset}' is a recurrent model; scaling sweeps vary a transformer's dModel and nLayers`);
      const counts = countParameters(modelConfig);
      const N = counts.total - counts.embedding - counts.head;
      const D = config.maxSteps * config.batchSize * config.blockSize;
      rows.push({ study: s.study, trial: trial.number, dModel: Number(trial.params['model.dModel']), nLayers: Number(trial.params['model.nLayers']), N, N_with_embeddings: counts.total, D, C: 6 * N * D, loss: trial.value });
    }
  }
  return rows.sort((a, b) => a.D - b.D || a.N - b.N);
}

/** The sweep CSV that `scaling fit --csv` reads: exactly the header N,N_with_embeddings,D,C,loss (data.ts). */
export function sweepCsv(rows: readonly SweepRow[]): string {
  const lines = [SWEEP_HEADER.join(',')];
  for (const r of rows) lines.push([r.N, r.N_with_embeddings, r.D, r.C, r.loss].join(','));
  return lines.join('\n') + '\n';
}
