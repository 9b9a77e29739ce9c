/**
 * A training loop for one text held in memory, driven one step at a time: what the browser
 * playground runs in its Web Worker (web/playground), and what bench/browser.ts runs in Node to
 * compare the same steps across backends. No file system, no timers, no threads.
 *
 * It is the training core (loop.ts) with what the CLI trainer builds around it, minus the files:
 * a char tokenizer from the text, the first `trainFraction` of the tokens for training and the
 * rest for validation, random windows from a seeded Generator, the model and optimizer as
 * trainer.ts builds them (buildTrainingSetup: same seeds, so the same text and settings start from
 * the same weights and batches), linear warmup + cosine decay, clipping, seeded evaluations.
 */
import { isRecurrentConfig, resolveConfig, type TransformerConfig, type TransformerConfigOverrides } from '../models/config.js';
import { generateText } from '../models/generate.js';
import { buildModelConfig } from '../models/presets.js';
import type { TransformerLM } from '../models/transformer.js';
import type { AdamW } from '../optim/adam.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { randomWindows } from '../data/windows.js';
import { CharTokenizer } from '../tokenizers/char.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG, validateTrainConfig, type TrainConfig } from './config.js';
import { estimateLoss, languageModelLoss, LrSchedule, NonFiniteLossError, TrainingCore } from './loop.js';
import { buildTrainingSetup, SAMPLE_TEMPERATURE } from './setup.js';

/** The CLI's settings that apply to a loop over one text in memory. */
const LOOP_KEYS = ['preset', 'model', 'batchSize', 'blockSize', 'maxSteps', 'lr', 'minLr', 'warmupSteps', 'weightDecay', 'beta1', 'beta2', 'gradClip', 'evalInterval', 'evalIters', 'sampleTokens', 'trainFraction', 'seed'] as const;

/**
 * The settings of a loop: the CLI's (train/config.ts, same meaning), except that `evalInterval`
 * may be 0 (evaluate only at the end).
 */
export type LoopConfig = Pick<TrainConfig, (typeof LOOP_KEYS)[number]>;

/** The CLI's defaults, with a shorter run and shorter evaluations for a browser tab. */
export const DEFAULT_LOOP_CONFIG: Readonly<LoopConfig> = Object.freeze({
  ...(Object.fromEntries(LOOP_KEYS.map((k) => [k, DEFAULT_TRAIN_CONFIG[k]])) as LoopConfig),
  maxSteps: 500,
  warmupSteps: 50,
  evalInterval: 50,
  evalIters: 4,
  sampleTokens: 120,
});

export interface LoopPreset {
  name: string;
  description: string;
  /** The library preset and the overrides applied to it. */
  preset: string;
  model: TransformerConfigOverrides;
  /** Batch and block size that suit it in a browser tab. */
  batchSize: number;
  blockSize: number;
}

/** Model sizes offered in the playground: the CLI's tiny, and two smaller ones built from it. */
export const LOOP_PRESETS: readonly LoopPreset[] = Object.freeze([
  { name: 'tiny', description: 'tiny: 4 layers, d=128, 4 heads (the CLI default, ~0.8M parameters)', preset: 'tiny', model: {}, batchSize: 16, blockSize: 128 },
  { name: 'micro', description: 'micro: 2 layers, d=64, 4 heads (~0.1M parameters)', preset: 'tiny', model: { dModel: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, dFF: 256 }, batchSize: 16, blockSize: 64 },
  { name: 'nano', description: 'nano: 1 layer, d=32, 2 heads (~15k parameters; trains in seconds)', preset: 'tiny', model: { dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 128 }, batchSize: 8, blockSize: 32 },
]);

export function loopPreset(name: string): LoopPreset {
  const p = LOOP_PRESETS.find((q) => q.name === name);
  if (!p) throw new Error(`unknown playground preset '${name}' (known: ${LOOP_PRESETS.map((q) => q.name).join(', ')})`);
  return p;
}

export function resolveLoopConfig(input: Partial<LoopConfig> = {}): LoopConfig {
  const c: LoopConfig = { ...DEFAULT_LOOP_CONFIG, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)), model: { ...(input.model ?? {}) } };
  for (const key of Object.keys(input)) if (!(LOOP_KEYS as readonly string[]).includes(key)) throw new Error(`unknown loop config key '${key}' (known: ${LOOP_KEYS.join(', ')})`);
  // The CLI's validation, with the one difference: evalInterval 0 (only at the end) is allowed here.
  if (!Number.isInteger(c.evalInterval) || c.evalInterval < 0) throw new Error(`evalInterval must be a non-negative integer, got ${c.evalInterval}`);
  validateTrainConfig({ ...DEFAULT_TRAIN_CONFIG, ...c, evalInterval: Math.max(1, c.evalInterval) });
  return c;
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  /** Tokens in this step's batch divided by the step's wall time. */
  tokensPerSecond: number;
  /** Wall time of this step (forward, backward, clip, optimizer). */
  stepSeconds: number;
}

export interface EvalRecord {
  step: number;
  trainLoss: number;
  valLoss: number;
  sample?: string;
}

/** Training on one text, a step at a time; `trainStep()` until `done`. */
export class TextTrainer {
  readonly config: LoopConfig;
  readonly tokenizer: Tokenizer;
  readonly modelConfig: TransformerConfig;
  readonly model: TransformerLM;
  readonly optimizer: AdamW;
  readonly train: Int32Array;
  readonly val: Int32Array;
  /** Seconds spent in trainStep() (evaluations and sampling excluded). */
  trainSeconds = 0;
  readonly #core: TrainingCore<TransformerLM, { x: Tensor; y: Tensor }>;
  readonly #dataRng: Generator;
  /** Block size used for evaluating the validation split (shorter when the split is short). */
  readonly #evalBlock: number;

  constructor(text: string, config: Partial<LoopConfig> = {}, tokenizer?: Tokenizer) {
    this.config = resolveLoopConfig(config);
    const c = this.config;
    if (!text) throw new Error('the training text is empty');
    this.tokenizer = tokenizer ?? CharTokenizer.fromText(text);
    const tokens = this.tokenizer.encodeToInt32Array(text);
    const nTrain = Math.floor(c.trainFraction * tokens.length);
    this.train = tokens.subarray(0, nTrain);
    this.val = tokens.subarray(nTrain);
    if (c.blockSize >= this.train.length) {
      throw new Error(`the text is too short: block size ${c.blockSize} needs more than ${c.blockSize} training tokens, and ${this.train.length} of its ${tokens.length} go to training`);
    }
    if (this.val.length < 2) throw new Error(`the text is too short for a validation split (${this.val.length} tokens)`);
    this.#evalBlock = Math.min(c.blockSize, this.val.length - 1);
    const modelConfig = buildModelConfig(c, this.tokenizer.vocabSize);
    if (isRecurrentConfig(modelConfig)) throw new Error(`preset '${c.preset}' is a recurrent model; the in-browser loop trains transformer presets (its views show attention)`);
    this.modelConfig = modelConfig;
    const setup = buildTrainingSetup(c, this.modelConfig);
    this.model = setup.model as TransformerLM;
    this.optimizer = setup.optimizer;
    this.#dataRng = setup.generators.data;
    const schedule = new LrSchedule({ lr: c.lr, minLr: c.minLr, warmupSteps: c.warmupSteps, maxSteps: c.maxSteps });
    this.#core = new TrainingCore({ model: this.model, optimizer: this.optimizer, schedule, loss: languageModelLoss, gradClip: c.gradClip });
  }

  /** Optimizer steps taken. */
  get step(): number {
    return this.#core.step;
  }

  get done(): boolean {
    return this.step >= this.config.maxSteps;
  }

  get tokensPerStep(): number {
    return this.config.batchSize * this.config.blockSize;
  }

  /** The learning rate of step `it` (warmup, then cosine to minLr at maxSteps). */
  lrAt(it: number): number {
    return this.#core.schedule.lrAt(it);
  }

  /** One optimizer step on a random batch; throws when the loss stops being finite. */
  trainStep(): StepRecord {
    const c = this.config;
    const t0 = performance.now();
    const batch = randomWindows(this.train, c.batchSize, c.blockSize, this.#dataRng);
    let result;
    try {
      result = this.#core.trainStep(batch);
    } catch (e) {
      if (e instanceof NonFiniteLossError) throw new NonFiniteLossError(`the ${e.message}; try a lower learning rate`, e.step, e.loss);
      throw e;
    }
    const seconds = (performance.now() - t0) / 1000;
    this.trainSeconds += seconds;
    return { step: this.step, loss: result.loss, lr: result.lr, tokensPerSecond: this.tokensPerStep / seconds, stepSeconds: seconds };
  }

  /** Whether an evaluation is due after the step just taken (every evalInterval steps, and at the end). */
  evalDue(): boolean {
    const every = this.config.evalInterval;
    return this.step > 0 && ((every > 0 && this.step % every === 0) || this.done);
  }

  /** Mean loss over evalIters random batches of each split (seeded by step, as trainer.ts), and a sample. */
  evaluate(): EvalRecord {
    const c = this.config;
    const seed = c.seed + 7919 * (this.step + 1);
    const lossOn = (data: Int32Array, blockSize: number, s: number) => estimateLoss(this.model, languageModelLoss, (rng) => randomWindows(data, c.batchSize, blockSize, rng), c.evalIters, s);
    const record: EvalRecord = { step: this.step, trainLoss: lossOn(this.train, c.blockSize, seed), valLoss: lossOn(this.val, this.#evalBlock, seed + 1) };
    if (c.sampleTokens > 0) record.sample = generateText(this.model, this.tokenizer, '', { maxNewTokens: c.sampleTokens, temperature: SAMPLE_TEMPERATURE, seed: c.seed }).text;
    return record;
  }

  /** What a CLI run directory's config.json holds ({train, model}), for this run. */
  runConfig(): { train: Record<string, unknown>; model: TransformerConfig } {
    const c = this.config;
    return { train: { ...c, tokenizer: 'char', data: '(browser text)', lrSchedule: 'cosine', dropout: null }, model: resolveConfig(this.modelConfig) };
  }
}
