/**
 * A training loop for one text held in memory, driven one step at a time: what the browser
 * playground runs in its Web Worker (web/playground), and what bench/browser.ts runs in Node to
 * compare the same steps across backends. No file system, no timers, no threads.
 *
 * It is the CLI loop (trainer.ts) without files: a char tokenizer from the text, the first
 * `trainFraction` of the tokens for training and the rest for validation, random windows from a
 * seeded Generator, TransformerLM from a preset plus overrides, AdamW (matrices decay, biases and
 * norm gains do not) with linear warmup + cosine decay, gradient clipping, seeded evaluations.
 * The seeds are derived as trainer.ts derives them, so the same text and settings start from the
 * same weights and batches.
 */
import { backward } from '../autograd/engine.js';
import { noGrad } from '../autograd/grad-mode.js';
import { resolveConfig, type TransformerConfig, type TransformerConfigOverrides } from '../models/config.js';
import { muParamGroups } from '../models/mup.js';
import { presetConfig } from '../models/presets.js';
import { TransformerLM } from '../models/transformer.js';
import { AdamW } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip-grad.js';
import { warmupCosineLr } from '../optim/lr-scheduler.js';
import { tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { randomWindows } from '../data/windows.js';
import { CharTokenizer } from '../tokenizers/char.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

export interface LoopConfig {
  /** A preset name (presets.ts); `model` overrides its fields (vocabSize comes from the tokenizer). */
  preset: string;
  model: TransformerConfigOverrides;
  batchSize: number;
  blockSize: number;
  maxSteps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Max global gradient norm (0 disables clipping). */
  gradClip: number;
  /** Steps between evaluations (0: only at the end). */
  evalInterval: number;
  /** Batches averaged per split at each evaluation. */
  evalIters: number;
  /** Characters of sample text at each evaluation (0: none). */
  sampleTokens: number;
  trainFraction: number;
  seed: number;
}

/** The CLI's defaults (train/config.ts) where they apply, with shorter evaluations. */
export const DEFAULT_LOOP_CONFIG: Readonly<LoopConfig> = Object.freeze({
  preset: 'tiny',
  model: {},
  batchSize: 16,
  blockSize: 128,
  maxSteps: 500,
  lr: 3e-3,
  minLr: 3e-4,
  warmupSteps: 50,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradClip: 1.0,
  evalInterval: 50,
  evalIters: 4,
  sampleTokens: 120,
  trainFraction: 0.9,
  seed: 1337,
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

/** The model config for a loop config and vocabulary (trainer.ts's buildModelConfig, without dropout). */
export function loopModelConfig(config: Pick<LoopConfig, 'preset' | 'model' | 'blockSize'>, vocabSize: number): TransformerConfig {
  const overrides: TransformerConfigOverrides = { ...config.model, vocabSize };
  const base = presetConfig(config.preset);
  if (overrides.nHeads !== undefined && overrides.nKvHeads === undefined && base.nKvHeads === base.nHeads) overrides.nKvHeads = overrides.nHeads;
  if (overrides.dModel !== undefined && overrides.dFF === undefined && overrides.dModel !== base.dModel) overrides.dFF = Math.max(1, Math.round((base.dFF * overrides.dModel) / base.dModel));
  const model = presetConfig(config.preset, overrides);
  if (config.blockSize > model.maxSeqLen) throw new Error(`block size ${config.blockSize} is larger than the model's maxSeqLen ${model.maxSeqLen}`);
  return model;
}

export function resolveLoopConfig(input: Partial<LoopConfig> = {}): LoopConfig {
  const c: LoopConfig = { ...DEFAULT_LOOP_CONFIG, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)), model: { ...(input.model ?? {}) } };
  const problems: string[] = [];
  for (const k of ['batchSize', 'blockSize', 'maxSteps', 'evalIters'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) problems.push(`${k} must be a positive integer, got ${c[k]}`);
  for (const k of ['evalInterval', 'sampleTokens', 'warmupSteps'] as const) if (!Number.isInteger(c[k]) || c[k] < 0) problems.push(`${k} must be a non-negative integer, got ${c[k]}`);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) problems.push(`lr must be a positive number, got ${c.lr}`);
  if (!(c.minLr >= 0 && c.minLr <= c.lr)) problems.push(`minLr must be in [0, lr], got ${c.minLr}`);
  if (!(c.weightDecay >= 0) || !(c.gradClip >= 0)) problems.push('weightDecay and gradClip must be non-negative');
  if (!(c.trainFraction > 0 && c.trainFraction < 1)) problems.push(`trainFraction must be in (0, 1), got ${c.trainFraction}`);
  if (!Number.isInteger(c.seed)) problems.push(`seed must be an integer, got ${c.seed}`);
  if (problems.length) throw new Error(problems.join('; '));
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

export interface GenerateTextOptions {
  maxNewTokens: number;
  /** 0 is greedy. */
  temperature?: number;
  topK?: number | null;
  seed?: number;
  /** Called every `every` tokens (and at the end) with the text so far. */
  onProgress?: (text: string, tokens: number) => void;
  every?: number;
}

export interface GeneratedText {
  /** The continuation only (without the prompt). */
  text: string;
  /** Its token ids. */
  tokens: number[];
}

/**
 * A continuation of `prompt` (token 0 stands in for an empty prompt and is not returned), decoded
 * as it grows. With temperature 0 it is `model.generate`'s greedy continuation.
 */
export function generateText(model: TransformerLM, tokenizer: Tokenizer, prompt: string, options: GenerateTextOptions): GeneratedText {
  const context = prompt ? tokenizer.encode(prompt) : [0];
  if (context.length === 0) context.push(0);
  const ids = tensor(Int32Array.from(context), { shape: [1, context.length] });
  const tokens: number[] = [];
  const every = options.every ?? 16;
  const generator = new Generator(options.seed ?? 0);
  noGrad(() => {
    for (const next of model.generateStream(ids, { maxNewTokens: options.maxNewTokens, temperature: options.temperature ?? 0.8, topK: options.topK ?? null, generator })) {
      tokens.push(next[0]);
      if (options.onProgress && tokens.length % every === 0) options.onProgress(tokenizer.decode(tokens), tokens.length);
    }
  });
  const text = tokenizer.decode(tokens);
  options.onProgress?.(text, tokens.length);
  return { text, tokens };
}

/** Training on one text, a step at a time; `step()` until `done`. */
export class TextTrainer {
  readonly config: LoopConfig;
  readonly tokenizer: Tokenizer;
  readonly modelConfig: TransformerConfig;
  readonly model: TransformerLM;
  readonly optimizer: AdamW;
  readonly train: Int32Array;
  readonly val: Int32Array;
  /** Optimizer steps taken. */
  step = 0;
  /** Seconds spent in step() (evaluations and sampling excluded). */
  trainSeconds = 0;
  private readonly dataRng: Generator;
  /** Block size used for evaluating the validation split (shorter when the split is short). */
  private readonly evalBlock: number;

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
    this.evalBlock = Math.min(c.blockSize, this.val.length - 1);
    this.modelConfig = loopModelConfig(c, this.tokenizer.vocabSize);
    // As trainer.ts: init from seed, data from seed + 1 (dropout, seed + 2, is 0 in these presets).
    this.model = new TransformerLM(this.modelConfig, { generator: new Generator(c.seed), dropoutGenerator: new Generator(c.seed + 2) });
    this.model.train();
    this.dataRng = new Generator(c.seed + 1);
    const groups = muParamGroups(this.model, { lr: c.lr, weightDecay: c.weightDecay });
    this.optimizer = new AdamW(groups, { lr: c.lr, betas: [c.beta1, c.beta2], weightDecay: c.weightDecay });
  }

  get done(): boolean {
    return this.step >= this.config.maxSteps;
  }

  get tokensPerStep(): number {
    return this.config.batchSize * this.config.blockSize;
  }

  /** The learning rate of step `it` (warmup, then cosine to minLr at maxSteps). */
  lrAt(it: number): number {
    const c = this.config;
    return warmupCosineLr(it, { baseLr: c.lr, warmupSteps: c.warmupSteps, maxSteps: c.maxSteps, minLr: c.minLr });
  }

  /** One optimizer step on a random batch; throws when the loss stops being finite. */
  trainStep(): StepRecord {
    const c = this.config;
    const t0 = performance.now();
    const lr = this.lrAt(this.step);
    for (const group of this.optimizer.paramGroups) group.lr = lr * (group.lrScale ?? 1);
    const { x, y } = randomWindows(this.train, c.batchSize, c.blockSize, this.dataRng);
    const loss = this.model.forward(x, y).loss as Tensor;
    const lossValue = loss.item();
    if (!Number.isFinite(lossValue)) throw new Error(`the loss became ${lossValue} at step ${this.step}; try a lower learning rate`);
    this.optimizer.zeroGrad();
    backward(loss, undefined, { recycleIntermediates: true });
    if (c.gradClip > 0) clipGradNorm(this.model.parameters(), c.gradClip);
    this.optimizer.step();
    this.step++;
    const seconds = (performance.now() - t0) / 1000;
    this.trainSeconds += seconds;
    return { step: this.step, loss: lossValue, lr, tokensPerSecond: this.tokensPerStep / seconds, stepSeconds: seconds };
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
    const record: EvalRecord = { step: this.step, trainLoss: this.meanLoss(this.train, c.blockSize, seed), valLoss: this.meanLoss(this.val, this.evalBlock, seed + 1) };
    if (c.sampleTokens > 0) record.sample = generateText(this.model, this.tokenizer, '', { maxNewTokens: c.sampleTokens, temperature: 0.8, seed: c.seed }).text;
    return record;
  }

  private meanLoss(data: Int32Array, blockSize: number, seed: number): number {
    const wasTraining = this.model.training;
    this.model.eval();
    const rng = new Generator(seed);
    let total = 0;
    noGrad(() => {
      for (let i = 0; i < this.config.evalIters; i++) {
        const { x, y } = randomWindows(data, this.config.batchSize, blockSize, rng);
        total += (this.model.forward(x, y).loss as Tensor).item();
      }
    });
    this.model.train(wasTraining);
    return total / this.config.evalIters;
  }

  /** What a CLI run directory's config.json holds ({train, model}), for this run. */
  runConfig(): { train: Record<string, unknown>; model: TransformerConfig } {
    const c = this.config;
    return { train: { ...c, tokenizer: 'char', data: '(browser text)', lrSchedule: 'cosine', dropout: null }, model: resolveConfig(this.modelConfig) };
  }
}
