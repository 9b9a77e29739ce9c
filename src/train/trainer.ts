/**
 * `tensorlm train`: pretraining as a run on disk — the text, the tokenizer, the model from a preset,
 * AdamW with warmup + cosine decay (or a constant LR) — handed to runLoop (run-loop.ts: the
 * training core of loop.ts plus periodic evaluation, checkpoints that resume exactly, metrics as
 * JSON lines and the time-budget planner of planner.ts). A model config with `mup` trains under μP: its param groups
 * (models/mup.ts, muParamGroups) carry per-group LR multipliers that the schedule scales.
 * Everything the CLI does is callable from here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TextDataset, type Batch, type Split, type TokenSequence } from '../data/dataset.js';
import { loadText } from '../data/resolve.js';
import { ShardDataset } from '../data/shards.js';
import type { Generator } from '../tensor/random.js';
import { generateText } from '../models/generate.js';
import { createLanguageModel, type LanguageModel } from '../models/language-model.js';
import { TransformerLM } from '../models/transformer.js';
import { buildModelConfig } from '../models/presets.js';
import { resolveModelConfig, type ModelConfig, type TransformerConfig } from '../models/config.js';
import { applyLoRA, loraConfig, type LoRAConfig } from '../nn/lora.js';
import { skipInit } from '../nn/init.js';
import type { QuantFormat } from '../nn/quantized.js';
import { quantizeProgressively, type ProgressiveQuantization, type QuantizeStats } from '../models/quantize.js';
import { routerMetrics } from '../nn/moe.js';
import { DataParallel } from './parallel.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkCheckpointFitsModel, checkTokenizerBinding, readCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { truncateMessage } from '../io/json.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { estimateLoss, languageModelLoss, LrSchedule, TrainingCore } from './loop.js';
import { openRun, prepareRunDirectory, runFiles, runLoop, type Evaluation, type RunControl, type RunFiles, type RunHooks, type RunOutcome } from './run-loop.js';
import { buildTrainingSetup, SAMPLE_TEMPERATURE } from './setup.js';

export { buildTrainingSetup, runGenerators, SAMPLE_TEMPERATURE } from './setup.js';

export { runFiles, type RunFiles } from './run-loop.js';

/**
 * What a run directory's config.json holds: the training config and the resolved model config;
 * a fine-tuning stage adds its own fields (posttrain/), and `lora` when the model carries LoRA
 * adapters (loadRun applies them before loading the weights).
 */
export interface RunConfig {
  train: TrainConfig;
  /** A transformer's config, or a recurrent model's (it names an `arch`). */
  model: ModelConfig;
  /** The stage that made the run ('pretrain' when absent). */
  stage?: string;
  lora?: LoRAConfig | null;
}

export type TrainHooks = RunHooks<RunConfig>;

export interface TrainOptions extends RunControl {
  resume?: boolean;
  hooks?: TrainHooks;
}

export interface TrainResult extends RunOutcome {
  files: RunFiles;
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** The text in memory, or the token shards read on demand (`dataShards`). */
  dataset: TrainingData;
  config: RunConfig;
}

/** What training draws batches from: a TextDataset in memory or a ShardDataset on disk. */
export interface TrainingData {
  getBatch(split: Split, batchSize: number, blockSize: number, rng: Generator): Batch;
  /** A split's first `maxTokens` tokens (a shard set's splits may not fit in memory whole). */
  readSplit(split: Split, maxTokens?: number): TokenSequence;
  readonly trainTokens: number;
  readonly valTokens: number;
}

/**
 * Final and after-the-fact validation figures (`tensorlm train`'s last line, `tensorlm eval`, the
 * eval tasks' bits per byte, the report card) read at most this many tokens of a split: a shard
 * set's val split can be far larger than memory; tiny-shakespeare's (111,540) is read whole.
 */
export const VALIDATION_MAX_TOKENS = 500_000;

/**
 * A run's data encoded with its tokenizer: the shard set it trained on (`dataShards`), or its
 * text split at `trainFraction`. `dataDir` overrides where named datasets are looked for.
 * Used by training, `tensorlm eval` and the report card, so all three see the same splits.
 */
export async function openRunData(config: TrainConfig, tokenizer: Tokenizer, options: { dataDir?: string } = {}): Promise<TrainingData> {
  if (config.dataShards) return new ShardDataset(config.dataShards);
  const text = await loadText(config.data, { dataDir: options.dataDir ?? config.dataDir ?? undefined });
  return TextDataset.fromText(text, tokenizer, { trainFraction: config.trainFraction });
}

/**
 * The run's data and tokenizer: a shard set brings its own tokenizer; a text is read whole and
 * encoded with `config.tokenizer` (or, on resume, the run's tokenizer file).
 */
async function openTrainingData(config: TrainConfig, files: RunFiles, resuming: boolean): Promise<{ dataset: TrainingData; tokenizer: Tokenizer }> {
  const runTokenizer = resuming && existsSync(files.tokenizer) ? loadTokenizer(files.tokenizer) : null;
  if (config.dataShards !== null) {
    const shards = new ShardDataset(config.dataShards);
    const tokenizer = runTokenizer ?? loadTokenizer(join(config.dataShards, shards.manifest.tokenizer));
    if (tokenizer.vocabSize < shards.manifest.vocabSize) {
      throw new Error(`shards ${config.dataShards} hold ids up to ${shards.manifest.vocabSize - 1}, but the tokenizer has only ${tokenizer.vocabSize} tokens`);
    }
    return { dataset: shards, tokenizer };
  }
  const text = await loadText(config.data, { dataDir: config.dataDir ?? undefined });
  const tokenizer = runTokenizer ?? makeTokenizer(config.tokenizer, text);
  return { dataset: TextDataset.fromText(text, tokenizer, { trainFraction: config.trainFraction }), tokenizer };
}

export { NonFiniteLossError } from './loop.js';

export function makeTokenizer(spec: string, text: string): Tokenizer {
  if (spec === 'char') return CharTokenizer.fromText(text);
  if (!existsSync(spec)) throw new Error(`tokenizer file ${spec} does not exist (use 'char' or a BPE tokenizer JSON from 'tensorlm tokenizer train')`);
  return loadTokenizer(spec);
}

/** Sample text at an evaluation: up to this many tokens, whatever sampleTokens asks for at the end. */
const EVAL_SAMPLE_TOKENS = 200;

export async function train(input: Partial<TrainConfig>, options: TrainOptions = {}): Promise<TrainResult> {
  let config = resolveTrainConfig(input);
  const files = runFiles(config.outDir, config.name);
  const resuming = options.resume === true;
  const checkpoint = openRun(files, resuming);
  // The run's own config wins: a resume continues the same experiment.
  // Where the run is stays where it is: a copied run directory's checkpoint names the original.
  if (checkpoint) config = resumeTrainConfig(checkpoint.meta.config as RunConfig, files.latest, { ...input, name: config.name, outDir: config.outDir });

  const { dataset, tokenizer } = await openTrainingData(config, files, resuming);
  if (checkpoint) checkTokenizerBinding(checkpoint, files.latest, tokenizer, existsSync(files.tokenizer) ? files.tokenizer : `'${config.tokenizer}'`);
  const modelConfig = buildModelConfig(config, tokenizer.vocabSize);
  const runConfig: RunConfig = { train: config, model: modelConfig };
  // Compared resolved, so a checkpoint from before a config field existed (e.g. `mup`) still matches.
  if (checkpoint) checkSameModelConfig(resolveModelConfig((checkpoint.meta.config as RunConfig).model), modelConfig, files.latest);

  prepareRunDirectory(files, runConfig, tokenizer, resuming);
  const { model, optimizer, generators: gens } = buildTrainingSetup(config, modelConfig);
  if (checkpoint) checkCheckpointFitsModel(model, checkpoint, files.latest);
  const schedule = new LrSchedule({ kind: config.lrSchedule, lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  const core = new TrainingCore({ model, optimizer, schedule, loss: languageModelLoss, gradClip: config.gradClip });
  const lossOn = (split: Split, seed: number) => estimateLoss(model, languageModelLoss, (rng) => dataset.getBatch(split, config.batchSize, config.blockSize, rng), config.evalIters, seed);
  const evaluate = (step: number): Evaluation => {
    const evalSeed = config.seed + 7919 * (step + 1);
    const trainLoss = lossOn('train', evalSeed);
    // Expert utilisation is measured on the validation batches (the same on every replica count).
    const moeLayers = model instanceof TransformerLM ? model.moeLayers() : [];
    for (const layer of moeLayers) layer.resetRouterStats();
    const e: Evaluation = { trainLoss, valLoss: lossOn('val', evalSeed + 1) };
    if (moeLayers.length > 0) e.metrics = routerMetrics(moeLayers);
    if (config.sampleTokens > 0) {
      e.sample = generateText(model, tokenizer, '', { maxNewTokens: Math.min(config.sampleTokens, EVAL_SAMPLE_TOKENS), temperature: SAMPLE_TEMPERATURE, seed: config.seed }).text;
    }
    return e;
  };
  const tokensPerBatch = config.batchSize * config.blockSize;

  // Data parallelism over worker threads (src/train/parallel.ts): replicas − 1 workers.
  const dataParallel = config.replicas > 1 ? new DataParallel(model, { replicas: config.replicas, seed: config.seed + 3 }) : null;
  try {
    const outcome = await runLoop({
      files,
      runConfig,
      model,
      optimizer,
      core,
      generators: gens,
      settings: config,
      nextBatches: () => Array.from({ length: config.gradAccumSteps }, () => dataset.getBatch('train', config.batchSize, config.blockSize, gens.data)),
      tokensIn: (batches) => batches.length * tokensPerBatch,
      // Forward + backward of each batch's shards on the replicas; gradients land in model's .grad.
      gradientsWith: dataParallel
        ? async (batches) => {
            let total = 0;
            for (const { x, y } of batches) total += await dataParallel.step(x, y, 1 / batches.length);
            return total / batches.length;
          }
        : undefined,
      evaluate,
      resumeFrom: checkpoint,
      hooks: options.hooks as RunHooks,
      control: options,
      dataTokens: { train: dataset.trainTokens, val: dataset.valTokens },
    });
    return { files, model, tokenizer, dataset, config: runConfig, ...outcome };
  } finally {
    await dataParallel?.close();
  }
}

/** On resume only run-independent settings may change (where data lives); the rest comes from the run. */
function pickResumeOverrides(input: Partial<TrainConfig>): Partial<TrainConfig> {
  const out: Partial<TrainConfig> = {};
  // The run's name and directory are where it is now (a copy of runs/a resumed as runs/b is b).
  if (input.name !== undefined) out.name = input.name;
  if (input.outDir !== undefined) out.outDir = input.outDir;
  if (input.dataDir !== undefined) out.dataDir = input.dataDir;
  // The same shards may have moved (a copied run, another disk); their tokenizer binding is checked.
  if (input.dataShards !== undefined && input.dataShards !== null) out.dataShards = input.dataShards;
  // How many threads compute a step changes speed, not the experiment.
  if (input.replicas !== undefined) out.replicas = input.replicas;
  return out;
}

/** The training config a resume continues with: the checkpoint's, validated, errors naming the file. */
function resumeTrainConfig(runConfig: RunConfig, path: string, input: Partial<TrainConfig>): TrainConfig {
  try {
    return resolveTrainConfig(runConfig.train, pickResumeOverrides(input));
  } catch (error) {
    throw new Error(`checkpoint ${path}: meta.config.train: ${truncateMessage(error instanceof Error ? error.message : String(error), 240)}`);
  }
}

/** A resume must build the model its checkpoint holds; the error names the file and the first differing field. */
function checkSameModelConfig(saved: ModelConfig, now: ModelConfig, path: string): void {
  if (JSON.stringify(saved) === JSON.stringify(now)) return;
  const was = saved as unknown as Record<string, unknown>;
  const is = now as unknown as Record<string, unknown>;
  const key = [...new Set([...Object.keys(is), ...Object.keys(was)])].find((k) => JSON.stringify(was[k]) !== JSON.stringify(is[k]));
  const shown = (v: unknown) => truncateMessage(JSON.stringify(v) ?? 'undefined', 60);
  const detail = key === undefined ? '' : ` (${key}: ${shown(was[key])} in the checkpoint, ${shown(is[key])} now)`;
  throw new Error(`checkpoint ${path} was made with a different model config than this run's${detail}`);
}

/** What loadRun returns. */
export interface LoadedRun<M extends LanguageModel = LanguageModel> {
  model: M;
  tokenizer: Tokenizer;
  config: RunConfig;
  meta: CheckpointMeta;
  checkpoint: string;
  /** With loadRun's `quantize`: what quantizing did (describeQuantization prints it); else null. */
  quantization: QuantizeStats | null;
}

export interface LoadRunOptions {
  /**
   * Quantize the transformer's projections (quantizeModel) while the checkpoint is read, each
   * layer as soon as its weight arrives, so the float32 model is never whole in memory; a
   * recurrent run is refused before anything is read.
   */
  quantize?: QuantFormat;
}

/**
 * loadRun for what needs a transformer (the post-training stages, chat, attention maps): the same
 * run, or a one-line error naming `what` when the run holds a recurrent model.
 */
export function loadTransformerRun(dir: string, which: 'best' | 'latest', what: string, options: LoadRunOptions = {}): LoadedRun<TransformerLM> & { config: RunConfig & { model: TransformerConfig } } {
  const run = loadRun(dir, which, options);
  if (!(run.model instanceof TransformerLM)) throw new Error(`${what} needs a transformer model; run ${dir} holds a recurrent '${(run.config.model as { arch?: string }).arch}' model`);
  return run as LoadedRun<TransformerLM> & { config: RunConfig & { model: TransformerConfig } };
}

/**
 * Loads a finished (or interrupted) run for sampling or evaluation: the checkpoint's metadata, the
 * model's size and the tokenizer are checked before the model is built, then the weights are read
 * straight from the file into the model (readCheckpoint's `model`) and the optimizer's buffers only
 * checksummed — one copy of the weights in memory, not two or more.
 */
export function loadRun(dir: string, which: 'best' | 'latest' = 'best', options: LoadRunOptions = {}): LoadedRun {
  const files = { config: join(dir, 'config.json'), tokenizer: join(dir, 'tokenizer.json') };
  if (!existsSync(files.config)) throw new Error(`${dir} is not a run directory (no config.json)`);
  let path = join(dir, `${which}.safetensors`);
  if (!existsSync(path)) path = join(dir, 'latest.safetensors');
  // Read by the builder below, between the checkpoint's checks and the model's allocation.
  const read: { tokenizer?: Tokenizer; quantizer?: ProgressiveQuantization } = {};
  const { meta, model } = readCheckpoint(path, {
    optimizer: false,
    onWeightRead: (name) => read.quantizer?.weightRead(name),
    destination: (name, own) => read.quantizer?.destination(name, own) ?? own,
    model: (checkpoint) => {
      const config = checkpoint.meta.config as RunConfig;
      const tokenizer = (read.tokenizer = loadTokenizer(files.tokenizer));
      checkTokenizerBinding(checkpoint, path, tokenizer, files.tokenizer);
      if (tokenizer.vocabSize > config.model.vocabSize) {
        throw new Error(`tokenizer ${files.tokenizer} has ${tokenizer.vocabSize} tokens, more than the ${config.model.vocabSize} of the model in checkpoint ${path}`);
      }
      // No random init: readCheckpoint checks that the file names every weight, then overwrites them all.
      const built = skipInit(() => {
        const m = createLanguageModel(config.model);
        if (config.lora) {
          if (!(m instanceof TransformerLM)) throw new Error(`checkpoint ${path}: LoRA adapters (meta.config.lora) need a transformer model, and this one is a recurrent '${(config.model as { arch?: string }).arch}' model`);
          applyLoRA(m, loraConfig(config.lora));
        }
        return m;
      });
      if (options.quantize !== undefined) {
        if (!(built instanceof TransformerLM)) throw new Error(`--quantize needs a transformer run; run ${dir} holds a recurrent '${(config.model as { arch?: string }).arch}' model`);
        read.quantizer = quantizeProgressively(built, options.quantize);
      }
      return built;
    },
  });
  if (read.tokenizer === undefined) throw new Error(`checkpoint ${path}: internal error: the model was loaded without its tokenizer`);
  const quantization = read.quantizer?.finish() ?? null;
  model.eval();
  return { model, tokenizer: read.tokenizer, config: meta.config as RunConfig, meta, checkpoint: path, quantization };
}
