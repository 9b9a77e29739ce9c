/**
 * The training configuration: a plain typed object with defaults and a validator, filled from a
 * JSON config file and then command-line flags (flags win), like nanoGPT's configurator.
 */
import ms from 'ms';
import type { ModelConfigOverrides } from '../models/config.js';
import { buildModelConfig } from '../models/presets.js';
import { readFileSync } from 'node:fs';
import { describeValue, isJsonObject, parseJsonText, quoteText, truncateList, truncateMessage } from '../io/json.js';
import type { LrScheduleKind } from './loop.js';

export interface TrainConfig {
  /** Run name: the run lives in `<outDir>/<name>/`. */
  name: string;
  outDir: string;
  /** A dataset name ('tinyshakespeare') or a path to a text file or a directory of them. */
  data: string;
  /** Where named datasets are cached (TENSORLM_DATA_DIR, else ~/.cache/tensorlm). */
  dataDir: string | null;
  /**
   * A token shard directory (`tensorlm data shard`) to train on instead of `data`: windows are
   * read from its files on demand, its splits are train and val, and its tokenizer is the run's.
   */
  dataShards: string | null;
  /** 'char', or a path to a trained BPE tokenizer JSON. */
  tokenizer: string;
  /**
   * The model preset; `model` overrides its fields (vocabSize always comes from the tokenizer),
   * e.g. `{ dModel: 256, mup: { baseWidth: 128 } }` for μP relative to width 128.
   */
  preset: string;
  model: ModelConfigOverrides;
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
  dataShards: null,
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
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`invalid duration ${typeof value === 'string' ? quoteText(value, 40) : value} (use e.g. 90s, 10m, 1h)`);
  return seconds;
}

const KEYS = Object.keys(DEFAULT_TRAIN_CONFIG) as (keyof TrainConfig)[];

/** Merges layers of partial configs over the defaults and validates the result. */
export function resolveTrainConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const merged: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, model: {} };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!KEYS.includes(key as keyof TrainConfig)) throw new Error(`unknown train config key ${quoteText(key, 40)} (known: ${truncateList(KEYS, 8)})`);
      if (key === 'model') {
        if (!isJsonObject(value)) throw new Error(`model must be an object of model config overrides, got ${describeValue(value)}`);
        merged.model = { ...merged.model, ...(value as ModelConfigOverrides) } as ModelConfigOverrides;
      }
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
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) problems.push(`${key} must be a positive integer, got ${describeValue(v)}`);
  };
  const nonNegative = (key: keyof TrainConfig) => {
    const v = c[key];
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) problems.push(`${key} must be a non-negative number, got ${describeValue(v)}`);
  };
  const number = (key: keyof TrainConfig) => typeof c[key] === 'number';
  for (const k of ['name', 'outDir', 'data', 'tokenizer', 'preset'] as const) {
    if (typeof c[k] !== 'string' || c[k] === '') problems.push(`${k} must be a non-empty string, got ${describeValue(c[k])}`);
  }
  if (c.dataDir !== null && typeof c.dataDir !== 'string') problems.push(`dataDir must be a string or null, got ${describeValue(c.dataDir)}`);
  if (c.dataShards !== null && (typeof c.dataShards !== 'string' || c.dataShards === '')) problems.push(`dataShards must be a shard directory or null, got ${describeValue(c.dataShards)}`);
  if (!isJsonObject(c.model)) problems.push(`model must be an object, got ${describeValue(c.model)}`);
  for (const k of ['lr', 'beta1', 'beta2', 'trainFraction', 'seed'] as const) if (!number(k)) problems.push(`${k} must be a number, got ${describeValue(c[k])}`);
  if (c.dropout !== null && !number('dropout')) problems.push(`dropout must be a number or null, got ${describeValue(c.dropout)}`);
  if (c.maxTime !== null && !number('maxTime')) problems.push(`maxTime must be a number of seconds or null, got ${describeValue(c.maxTime)}`);
  for (const k of ['batchSize', 'gradAccumSteps', 'blockSize', 'maxSteps', 'evalInterval', 'evalIters', 'logInterval', 'replicas'] as const) positiveInt(k);
  for (const k of ['minLr', 'weightDecay', 'gradClip', 'sampleTokens', 'warmupSteps'] as const) nonNegative(k);
  if (number('lr') && (!(c.lr > 0) || !Number.isFinite(c.lr))) problems.push(`lr must be a positive number, got ${c.lr}`);
  if (c.lrSchedule !== 'cosine' && c.lrSchedule !== 'constant') problems.push(`lrSchedule must be 'cosine' or 'constant', got ${describeValue(c.lrSchedule)}`);
  // A constant schedule never reaches minLr, so only the cosine needs it below lr.
  if (c.lrSchedule !== 'constant' && c.minLr > c.lr) problems.push(`minLr ${c.minLr} is larger than lr ${c.lr}`);
  for (const k of ['beta1', 'beta2'] as const) if (number(k) && !(c[k] >= 0 && c[k] < 1)) problems.push(`${k} must be in [0, 1), got ${c[k]}`);
  if (typeof c.dropout === 'number' && !(c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${c.dropout}`);
  if (number('trainFraction') && !(c.trainFraction > 0 && c.trainFraction < 1)) problems.push(`trainFraction must be in (0, 1), got ${c.trainFraction}`);
  if (typeof c.maxTime === 'number' && !(c.maxTime > 0 && c.maxTime <= Number.MAX_SAFE_INTEGER)) problems.push(`maxTime must be positive, got ${c.maxTime}`);
  if (number('seed') && !Number.isSafeInteger(c.seed)) problems.push(`seed must be an integer, got ${c.seed}`);
  if (typeof c.name === 'string' && !/^[\w.-]+$/.test(c.name)) problems.push(`name ${quoteText(c.name, 40)} may only contain letters, digits, '.', '_' and '-'`);
  // One line of bounded length, whatever the config holds.
  if (problems.length) throw new Error(problems.length > 4 ? `${problems.slice(0, 3).join('; ')}; … and ${problems.length - 3} more problems` : problems.join('; '));
}

/**
 * A training config JSON file (`tensorlm train --config`): a partial TrainConfig, or a run's
 * config.json ({ train, model }), whose `train` is taken. A UTF-8 byte-order mark is accepted;
 * `maxTime` may be a duration ('10m') or null. Errors are one line naming the file.
 */
export function readTrainConfigFile(path: string): Partial<TrainConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(`config file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (error as Error).message})`}`);
  }
  let json = parseJsonText(text, `config file ${path}`);
  if (isJsonObject(json) && isJsonObject(json.train) && !KEYS.includes('train' as keyof TrainConfig)) json = json.train;
  if (!isJsonObject(json)) throw new Error(`config file ${path} must hold a JSON object of training settings, got ${describeValue(json)}`);
  const { maxTime, ...rest } = json as Record<string, unknown>;
  try {
    let config = rest as Partial<TrainConfig>;
    if (maxTime !== undefined) {
      if (maxTime !== null && typeof maxTime !== 'string' && typeof maxTime !== 'number') throw new Error(`maxTime must be a duration such as '10m', a number of seconds or null, got ${describeValue(maxTime)}`);
      config = { ...rest, maxTime: maxTime === null ? null : parseDuration(maxTime) } as Partial<TrainConfig>;
    }
    // The file on its own (over the defaults) must be a valid config, so that an error names it:
    // every setting, and the model its overrides describe (the vocabulary size comes from the
    // tokenizer, and blockSize against maxSeqLen is checked once flags have had their say).
    const resolved = resolveTrainConfig(config);
    if (isJsonObject(config.model) && Object.hasOwn(config.model, 'vocabSize')) throw new Error('model.vocabSize cannot be set: the vocabulary size is the tokenizer\'s');
    try {
      buildModelConfig({ ...resolved, blockSize: 1 }, 2);
    } catch (error) {
      throw new Error(`model: ${(error as Error).message.replace(/^TransformerConfig: /, '')}`);
    }
    return config;
  } catch (error) {
    throw new Error(`config file ${path}: ${truncateMessage((error as Error).message, 200)}`);
  }
}
