/**
 * The training configuration: a plain typed object with defaults and a validator, filled from a
 * JSON config file and then command-line flags (flags win), like nanoGPT's configurator.
 */
import ms from 'ms';
import type { TransformerConfigOverrides } from '../models/config.js';
import type { LrScheduleKind } from './loop.js';

export interface TrainConfig {
  /** Run name: the run lives in `<outDir>/<name>/`. */
  name: string;
  outDir: string;
  /** A dataset name ('tinyshakespeare') or a path to a text file or a directory of them. */
  data: string;
  /** Where named datasets are cached (TENSORLM_DATA_DIR, else ~/.cache/tensorlm). */
  dataDir: string | null;
  /** 'char', or a path to a trained BPE tokenizer JSON. */
  tokenizer: string;
  /**
   * The model preset; `model` overrides its fields (vocabSize always comes from the tokenizer),
   * e.g. `{ dModel: 256, mup: { baseWidth: 128 } }` for μP relative to width 128.
   */
  preset: string;
  model: TransformerConfigOverrides;
  batchSize: number;
  /**
   * Micro-batches of batchSize sequences whose gradients make one optimizer step (nanoGPT's
   * gradient_accumulation_steps): the step sees batchSize × gradAccumSteps sequences.
   */
  gradAccumSteps: number;
  /** Context length of training windows; at most the model's maxSeqLen. */
  blockSize: number;
  maxSteps: number;
  /**
   * Training time budget in seconds (null: train exactly maxSteps). The step count is planned
   * from the measured speed and re-planned at each evaluation, so the schedule ends in time on a
   * busy machine; such a run is not bit-reproducible (timing decides its length), so exact
   * resume-equals-uninterrupted holds for step-based runs (`--max-time none`).
   */
  maxTime: number | null;
  /** Peak LR; under μP the LR at the base width (hidden matrices get lr/m). */
  lr: number;
  minLr: number;
  warmupSteps: number;
  lrSchedule: LrScheduleKind;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Max global gradient norm (0 disables clipping). */
  gradClip: number;
  /** Dropout; overrides the preset's when not null. */
  dropout: number | null;
  evalInterval: number;
  /** Batches averaged per split at each evaluation. */
  evalIters: number;
  logInterval: number;
  /** Characters (tokens) of sample text printed at each evaluation and at the end. */
  sampleTokens: number;
  trainFraction: number;
  seed: number;
  /**
   * Replicas computing each step (data parallelism over worker threads, src/train/parallel.ts):
   * 1 is a plain single-thread step; 2 splits the batch over the main thread and one worker.
   */
  replicas: number;
}

export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  name: 'shakespeare-char',
  outDir: 'runs',
  data: 'tinyshakespeare',
  dataDir: null,
  tokenizer: 'char',
  preset: 'tiny',
  model: {},
  batchSize: 16,
  gradAccumSteps: 1,
  blockSize: 128,
  maxSteps: 5000,
  // 9.5 minutes of training, so the whole default run (data, final evaluation, sample) takes
  // about 10 minutes; the step count is planned from the measured speed.
  maxTime: 570,
  lr: 3e-3,
  minLr: 3e-4,
  warmupSteps: 100,
  lrSchedule: 'cosine',
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradClip: 1.0,
  dropout: null,
  evalInterval: 250,
  evalIters: 20,
  logInterval: 10,
  sampleTokens: 300,
  trainFraction: 0.9,
  seed: 1337,
  replicas: 1,
});

/** Parses '10m', '90s', '1h' or a plain number of seconds; 'none' means no time budget. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') return value;
  const trimmed = value.trim();
  if (trimmed === 'none' || trimmed === 'off') return null;
  const seconds = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : ms(trimmed as ms.StringValue) / 1000;
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`invalid duration '${value}' (use e.g. 90s, 10m, 1h)`);
  return seconds;
}

const KEYS = Object.keys(DEFAULT_TRAIN_CONFIG) as (keyof TrainConfig)[];

/** Merges layers of partial configs over the defaults and validates the result. */
export function resolveTrainConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const merged: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, model: {} };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!KEYS.includes(key as keyof TrainConfig)) throw new Error(`unknown train config key '${key}' (known: ${KEYS.join(', ')})`);
      if (key === 'model') merged.model = { ...merged.model, ...(value as TransformerConfigOverrides) };
      else (merged as unknown as Record<string, unknown>)[key] = value;
    }
  }
  validateTrainConfig(merged);
  return merged;
}

export function validateTrainConfig(c: TrainConfig): void {
  const problems: string[] = [];
  const positiveInt = (key: keyof TrainConfig) => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) problems.push(`${key} must be a positive integer, got ${String(v)}`);
  };
  const nonNegative = (key: keyof TrainConfig) => {
    const v = c[key];
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) problems.push(`${key} must be a non-negative number, got ${String(v)}`);
  };
  for (const k of ['batchSize', 'gradAccumSteps', 'blockSize', 'maxSteps', 'evalInterval', 'evalIters', 'logInterval', 'replicas'] as const) positiveInt(k);
  for (const k of ['minLr', 'weightDecay', 'gradClip', 'sampleTokens', 'warmupSteps'] as const) nonNegative(k);
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) problems.push(`lr must be a positive number, got ${c.lr}`);
  if (c.lrSchedule !== 'cosine' && c.lrSchedule !== 'constant') problems.push(`lrSchedule must be 'cosine' or 'constant', got '${String(c.lrSchedule)}'`);
  // A constant schedule never reaches minLr, so only the cosine needs it below lr.
  if (c.lrSchedule !== 'constant' && c.minLr > c.lr) problems.push(`minLr ${c.minLr} is larger than lr ${c.lr}`);
  for (const k of ['beta1', 'beta2'] as const) if (!(c[k] >= 0 && c[k] < 1)) problems.push(`${k} must be in [0, 1), got ${c[k]}`);
  if (c.dropout !== null && !(c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${c.dropout}`);
  if (!(c.trainFraction > 0 && c.trainFraction < 1)) problems.push(`trainFraction must be in (0, 1), got ${c.trainFraction}`);
  if (c.maxTime !== null && !(c.maxTime > 0)) problems.push(`maxTime must be positive, got ${c.maxTime}`);
  if (!Number.isInteger(c.seed)) problems.push(`seed must be an integer, got ${c.seed}`);
  if (!/^[\w.-]+$/.test(c.name)) problems.push(`name '${c.name}' may only contain letters, digits, '.', '_' and '-'`);
  if (problems.length) throw new Error(problems.join('; '));
}
