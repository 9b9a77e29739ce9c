/**
 * The training loop behind `tensorlm train`: AdamW with warmup + cosine decay (or a constant LR),
 * gradient clipping, periodic evaluation, checkpoints (latest and best) that resume exactly, and
 * metrics as JSON lines. A model config with `mup` trains under μP: its param groups
 * (models/mup.ts, muParamGroups) carry per-group LR multipliers that the schedule scales.
 * Everything the CLI does is callable from here.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../autograd/engine.js';
import { noGrad } from '../autograd/grad-mode.js';
import { TextDataset, type Split } from '../data/dataset.js';
import { loadText } from '../data/resolve.js';
import { writeFileAtomic } from '../data/files.js';
import { TransformerLM } from '../models/transformer.js';
import { presetConfig } from '../models/presets.js';
import { resolveConfig, type TransformerConfig, type TransformerConfigOverrides } from '../models/config.js';
import { muParamGroups } from '../models/mup.js';
import { clipGradNorm } from '../optim/clip-grad.js';
import { AdamW } from '../optim/adam.js';
import { warmupConstantLr, warmupCosineLr } from '../optim/lr-scheduler.js';
import { DataParallel } from './parallel.js';
import { tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { readCheckpoint, saveCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { MetricsLog, type EvalRecord, type TrainRecord } from './metrics.js';

export interface RunFiles {
  dir: string;
  config: string;
  tokenizer: string;
  metrics: string;
  latest: string;
  best: string;
}

export function runFiles(outDir: string, name: string): RunFiles {
  const dir = join(outDir, name);
  return {
    dir,
    config: join(dir, 'config.json'),
    tokenizer: join(dir, 'tokenizer.json'),
    metrics: join(dir, 'metrics.jsonl'),
    latest: join(dir, 'latest.safetensors'),
    best: join(dir, 'best.safetensors'),
  };
}

/** What a run directory's config.json holds: the training config and the resolved model config. */
export interface RunConfig {
  train: TrainConfig;
  model: TransformerConfig;
}

export interface TrainHooks {
  onStart?(info: { config: RunConfig; startStep: number; plannedSteps: number; parameters: number; resumed: boolean; trainTokens: number; valTokens: number }): void;
  onTrainLog?(record: TrainRecord, plannedSteps: number): void;
  onPlanned?(plannedSteps: number): void;
  onEval?(record: EvalRecord): void;
  onCheckpoint?(path: string, step: number): void;
}

export interface TrainOptions {
  resume?: boolean;
  hooks?: TrainHooks;
  /** Checked after every step; when it returns true the run saves a checkpoint and stops. */
  shouldStop?: () => boolean;
  /** Stop after this many optimizer steps of this call (tests simulate interruptions). */
  stopAfterSteps?: number;
}

export interface TrainResult {
  files: RunFiles;
  model: TransformerLM;
  tokenizer: Tokenizer;
  dataset: TextDataset<Tokenizer>;
  config: RunConfig;
  step: number;
  plannedSteps: number;
  finalTrainLoss: number | null;
  finalValLoss: number | null;
  bestValLoss: number | null;
  tokensPerSecond: number;
  elapsedSeconds: number;
  stoppedEarly: 'interrupted' | 'time' | null;
  trainLosses: { step: number; loss: number }[];
}

/** Thrown when the loss stops being finite: the last good checkpoint is left in place. */
export class NonFiniteLossError extends Error {}

/** The data generators' seeds are derived from the run seed so each purpose has its own stream. */
function generators(seed: number): { init: Generator; data: Generator; dropout: Generator } {
  return { init: new Generator(seed), data: new Generator(seed + 1), dropout: new Generator(seed + 2) };
}

export function buildModelConfig(train: TrainConfig, vocabSize: number): TransformerConfig {
  const overrides: TransformerConfigOverrides = { ...train.model, vocabSize };
  if (train.dropout !== null) overrides.dropout = train.dropout;
  // A preset with full multi-head attention stays MHA when only nHeads is overridden.
  const base = presetConfig(train.preset);
  if (overrides.nHeads !== undefined && overrides.nKvHeads === undefined && base.nKvHeads === base.nHeads) overrides.nKvHeads = overrides.nHeads;
  // A narrower or wider model keeps the preset's FFN ratio (tiny: dFF = 4·dModel) unless dFF is given.
  if (overrides.dModel !== undefined && overrides.dFF === undefined && overrides.dModel !== base.dModel) overrides.dFF = Math.max(1, Math.round((base.dFF * overrides.dModel) / base.dModel));
  const model = presetConfig(train.preset, overrides);
  if (train.blockSize > model.maxSeqLen) {
    throw new Error(`blockSize ${train.blockSize} is larger than the model's maxSeqLen ${model.maxSeqLen} (preset '${train.preset}')`);
  }
  return model;
}

export function makeTokenizer(spec: string, text: string): Tokenizer {
  if (spec === 'char') return CharTokenizer.fromText(text);
  if (!existsSync(spec)) throw new Error(`tokenizer file ${spec} does not exist (use 'char' or a BPE tokenizer JSON from 'tensorlm tokenizer train')`);
  return loadTokenizer(spec);
}

/** Mean loss over `iters` random batches of a split, with a generator seeded for this evaluation. */
export function estimateLoss(model: TransformerLM, dataset: TextDataset<Tokenizer>, split: Split, batchSize: number, blockSize: number, iters: number, seed: number): number {
  const wasTraining = model.training;
  model.eval();
  const rng = new Generator(seed);
  let total = 0;
  noGrad(() => {
    for (let i = 0; i < iters; i++) {
      const { x, y } = dataset.getBatch(split, batchSize, blockSize, rng);
      total += (model.forward(x, y).loss as Tensor).item();
    }
  });
  model.train(wasTraining);
  return total / iters;
}

export function sampleText(model: TransformerLM, tokenizer: Tokenizer, prompt: string, tokens: number, seed: number, temperature = 0.8, topK?: number): string {
  const context = prompt ? tokenizer.encode(prompt) : [0];
  const ids = tensor(Int32Array.from(context), { shape: [1, context.length] });
  const out = model.generate(ids, { maxNewTokens: tokens, temperature, topK, generator: new Generator(seed) });
  return tokenizer.decode(out.toArray().slice(prompt ? 0 : 1));
}

export async function train(input: Partial<TrainConfig>, options: TrainOptions = {}): Promise<TrainResult> {
  const hooks = options.hooks ?? {};
  let config = resolveTrainConfig(input);
  const files = runFiles(config.outDir, config.name);
  const resuming = options.resume === true;
  let checkpoint: ReturnType<typeof readCheckpoint> | null = null;
  if (resuming) {
    if (!existsSync(files.latest)) throw new Error(`--resume: no checkpoint at ${files.latest}`);
    checkpoint = readCheckpoint(files.latest);
    // The run's own config wins: a resume continues the same experiment.
    const saved = (checkpoint.meta.config as RunConfig).train;
    config = resolveTrainConfig(saved, pickResumeOverrides(input));
  } else if (existsSync(files.latest)) {
    throw new Error(`${files.dir} already holds a run; pass --resume to continue it, or --name to start a new one`);
  }

  const text = await loadText(config.data, { dataDir: config.dataDir ?? undefined });
  const tokenizer = resuming && existsSync(files.tokenizer) ? loadTokenizer(files.tokenizer) : makeTokenizer(config.tokenizer, text);
  const dataset = TextDataset.fromText(text, tokenizer, { trainFraction: config.trainFraction });
  const modelConfig = buildModelConfig(config, tokenizer.vocabSize);
  const runConfig: RunConfig = { train: config, model: modelConfig };
  // Compared resolved, so a checkpoint from before a config field existed (e.g. `mup`) still matches.
  if (checkpoint && JSON.stringify(resolveConfig((checkpoint.meta.config as RunConfig).model)) !== JSON.stringify(modelConfig)) {
    throw new Error(`checkpoint ${files.latest} was made with a different model config than this run's`);
  }

  mkdirSync(files.dir, { recursive: true });
  if (!resuming) {
    writeFileAtomic(files.config, JSON.stringify(runConfig, null, 2) + '\n');
    tokenizer.save(files.tokenizer);
    writeFileSync(files.metrics, '');
  }
  const gens = generators(config.seed);
  const model = new TransformerLM(modelConfig, { generator: gens.init, dropoutGenerator: gens.dropout });
  model.train();
  // Matrices decay, biases and norm gains do not (nanoGPT); under μP the hidden matrices get their
  // own groups with LR lr/m (and weight decay per mup.weightDecay): models/mup.ts.
  const groups = muParamGroups(model, { lr: config.lr, weightDecay: config.weightDecay });
  const optimizer = new AdamW(groups, { lr: config.lr, betas: [config.beta1, config.beta2], weightDecay: config.weightDecay });
  const metrics = new MetricsLog(files.metrics);

  let step = 0;
  let tokensSeen = 0;
  let elapsedBefore = 0;
  let bestValLoss: number | null = null;
  let plannedSteps = config.maxSteps;
  let planned = config.maxTime === null;
  if (checkpoint) {
    model.loadStateDict(checkpoint.modelState);
    optimizer.loadStateDict(checkpoint.optimizerState);
    gens.data.setState(checkpoint.meta.rng.data);
    gens.dropout.setState(checkpoint.meta.rng.dropout);
    step = checkpoint.meta.step;
    tokensSeen = checkpoint.meta.tokensSeen;
    elapsedBefore = checkpoint.meta.elapsedSeconds;
    bestValLoss = checkpoint.meta.bestValLoss;
    plannedSteps = checkpoint.meta.plannedSteps;
    planned = true;
    metrics.truncateAfter(step);
  }
  const tokensPerStep = config.batchSize * config.blockSize;
  hooks.onStart?.({ config: runConfig, startStep: step, plannedSteps, parameters: model.numParameters(), resumed: resuming, trainTokens: dataset.train.length, valTokens: dataset.val.length });

  const meta = (): CheckpointMeta => ({
    step,
    tokensSeen,
    elapsedSeconds: elapsedBefore + (performance.now() - startTime) / 1000,
    bestValLoss,
    rng: { data: gens.data.getState(), dropout: gens.dropout.getState() },
    config: runConfig,
    plannedSteps,
  });
  const save = (path: string) => {
    saveCheckpoint(path, model, optimizer, meta());
    hooks.onCheckpoint?.(path, step);
  };
  const evaluate = (): EvalRecord => {
    // Seeded by step, not by history: an evaluation gives the same figure in a resumed run.
    const evalSeed = config.seed + 7919 * (step + 1);
    const trainLoss = estimateLoss(model, dataset, 'train', config.batchSize, config.blockSize, config.evalIters, evalSeed);
    const valLoss = estimateLoss(model, dataset, 'val', config.batchSize, config.blockSize, config.evalIters, evalSeed + 1);
    const record: EvalRecord = { kind: 'eval', step, tokens: tokensSeen, trainLoss, valLoss, elapsedSeconds: elapsedBefore + (performance.now() - startTime) / 1000 };
    if (config.sampleTokens > 0) record.sample = sampleText(model, tokenizer, '', Math.min(config.sampleTokens, 200), config.seed);
    metrics.append(record);
    hooks.onEval?.(record);
    return record;
  };

  const startTime = performance.now();
  let lastLogTime = startTime;
  let lastLogTokens = tokensSeen;
  let finalTrainLoss: number | null = null;
  let finalValLoss: number | null = null;
  let stoppedEarly: TrainResult['stoppedEarly'] = null;
  const trainLosses: { step: number; loss: number }[] = [];
  const stepsThisCall = options.stopAfterSteps ?? Infinity;
  let done = 0;
  let calibrationStart = 0;
  // Where the time-budget plan was made (a resumed run re-plans from its own start).
  let planStart: { time: number; step: number } | null = config.maxTime !== null && planned ? { time: performance.now(), step } : null;

  /** Evaluates, keeps the best checkpoint, and (unless it is the end) saves the latest. */
  const evaluateAndSave = (saveLatest: boolean) => {
    const r = evaluate();
    finalValLoss = r.valLoss;
    finalTrainLoss = r.trainLoss;
    if (bestValLoss === null || r.valLoss < bestValLoss) {
      bestValLoss = r.valLoss;
      save(files.best);
    }
    if (saveLatest) save(files.latest);
  };

  // Data parallelism over worker threads (src/train/parallel.ts): replicas − 1 workers.
  const dataParallel = config.replicas > 1 ? new DataParallel(model, { replicas: config.replicas, seed: config.seed + 3 }) : null;
  try {
    while (step < plannedSteps) {
      const lr =
        config.lrSchedule === 'constant'
          ? warmupConstantLr(step, { baseLr: config.lr, warmupSteps: config.warmupSteps })
          : warmupCosineLr(step, { baseLr: config.lr, warmupSteps: config.warmupSteps, maxSteps: plannedSteps, minLr: config.minLr });
      // Scale each group relatively, never overwrite: μP's hidden groups train at lr/m all along
      // (lrScale is 1 for every standard group, and x·1 is x exactly).
      for (const group of optimizer.paramGroups) group.lr = lr * (group.lrScale ?? 1);
      const { x, y } = dataset.getBatch('train', config.batchSize, config.blockSize, gens.data);
      let lossValue: number;
      if (dataParallel) {
        // Forward + backward of the batch's shards on the replicas; gradients land in model's .grad.
        optimizer.zeroGrad();
        lossValue = await dataParallel.step(x, y);
      } else {
        const loss = model.forward(x, y).loss as Tensor;
        lossValue = loss.item();
        if (Number.isFinite(lossValue)) {
          optimizer.zeroGrad();
          // The loop holds nothing of the graph but the loss: its buffers go to the next step.
          backward(loss, undefined, { recycleIntermediates: true });
        }
      }
      if (!Number.isFinite(lossValue)) {
        throw new NonFiniteLossError(`loss became ${lossValue} at step ${step}; stopping. The last good checkpoint is ${existsSync(files.latest) ? files.latest : '(none yet)'}; try a lower --lr`);
      }
      if (config.gradClip > 0) clipGradNorm(model.parameters(), config.gradClip);
      optimizer.step();
      step++;
      done++;
      tokensSeen += tokensPerStep;
      trainLosses.push({ step, loss: lossValue });

      // With a time budget, plan the schedule from the measured speed, counting evaluation passes.
      // The cosine horizon is not used before warmup ends, so the measurement runs through the
      // warmup steps (past the JIT's warm-up); the plan is saved in checkpoints for resumes.
      if (!planned && config.maxTime !== null) {
        const planAt = Math.max(13, Math.min(config.warmupSteps, 110));
        if (done === 10) calibrationStart = performance.now();
        if (done === planAt) {
          const perStep = (performance.now() - calibrationStart) / 1000 / (planAt - 10);
          const evalCost = (2 * config.evalIters) / 3 / config.evalInterval + 0.15 / config.evalInterval;
          const remaining = config.maxTime - (elapsedBefore + (performance.now() - startTime) / 1000);
          plannedSteps = Math.max(step + 1, Math.min(config.maxSteps, step + Math.floor((0.97 * remaining) / (perStep * (1 + evalCost)))));
          planned = true;
          planStart = { time: performance.now(), step };
          hooks.onPlanned?.(plannedSteps);
        }
      }
      // The machine may be shared: at every evaluation, re-plan from the speed since the last plan
      // (evaluations included), so the decay still ends inside the budget after a slowdown.
      if (planStart && config.maxTime !== null && step % config.evalInterval === 0 && step > planStart.step) {
        const now = performance.now();
        const perStep = (now - planStart.time) / 1000 / (step - planStart.step);
        const remaining = config.maxTime - (elapsedBefore + (now - startTime) / 1000);
        const replanned = Math.max(step + 1, Math.min(config.maxSteps, step + Math.floor((0.98 * remaining) / perStep)));
        if (replanned !== plannedSteps) {
          plannedSteps = replanned;
          hooks.onPlanned?.(plannedSteps);
        }
      }

      if (step % config.logInterval === 0 || step === plannedSteps) {
        const now = performance.now();
        const record: TrainRecord = {
          kind: 'train',
          step,
          tokens: tokensSeen,
          loss: lossValue,
          // The schedule's value: each param group trains at lr × its lrScale (μP: hidden ones at lr/m).
          lr,
          tokensPerSecond: ((tokensSeen - lastLogTokens) / (now - lastLogTime)) * 1000,
          elapsedSeconds: elapsedBefore + (now - startTime) / 1000,
        };
        lastLogTime = now;
        lastLogTokens = tokensSeen;
        metrics.append(record);
        hooks.onTrainLog?.(record, plannedSteps);
      }
      // Evaluate right after the step that completes an interval, so a stop after it never skips it.
      if (step % config.evalInterval === 0 && step < plannedSteps) evaluateAndSave(true);
      // Let the event loop run (a Ctrl-C handler, progress output) between steps; costs microseconds.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (options.shouldStop?.()) {
        stoppedEarly = 'interrupted';
        break;
      }
      if (done >= stepsThisCall) break;
      if (config.maxTime !== null && elapsedBefore + (performance.now() - startTime) / 1000 > config.maxTime) {
        stoppedEarly = 'time';
        break;
      }
    }

    if (step >= plannedSteps || stoppedEarly === 'time') evaluateAndSave(false);
    save(files.latest);
    const elapsedSeconds = elapsedBefore + (performance.now() - startTime) / 1000;
    return {
      files,
      model,
      tokenizer,
      dataset,
      config: runConfig,
      step,
      plannedSteps,
      finalTrainLoss,
      finalValLoss,
      bestValLoss,
      tokensPerSecond: (done * tokensPerStep) / ((performance.now() - startTime) / 1000),
      elapsedSeconds,
      stoppedEarly,
      trainLosses,
    };
  } finally {
    await dataParallel?.close();
  }
}

/** On resume only run-independent settings may change (where data lives); the rest comes from the run. */
function pickResumeOverrides(input: Partial<TrainConfig>): Partial<TrainConfig> {
  const out: Partial<TrainConfig> = {};
  if (input.dataDir !== undefined) out.dataDir = input.dataDir;
  // How many threads compute a step changes speed, not the experiment.
  if (input.replicas !== undefined) out.replicas = input.replicas;
  return out;
}

/** Loads a finished (or interrupted) run for sampling or evaluation. */
export function loadRun(dir: string, which: 'best' | 'latest' = 'best'): { model: TransformerLM; tokenizer: Tokenizer; config: RunConfig; meta: CheckpointMeta; checkpoint: string } {
  const files = { config: join(dir, 'config.json'), tokenizer: join(dir, 'tokenizer.json') };
  if (!existsSync(files.config)) throw new Error(`${dir} is not a run directory (no config.json)`);
  let path = join(dir, `${which}.safetensors`);
  if (!existsSync(path)) path = join(dir, 'latest.safetensors');
  const checkpoint = readCheckpoint(path);
  const config = checkpoint.meta.config as RunConfig;
  const tokenizer = loadTokenizer(files.tokenizer);
  const model = new TransformerLM(config.model);
  model.loadStateDict(checkpoint.modelState);
  model.eval();
  return { model, tokenizer, config, meta: checkpoint.meta, checkpoint: path };
}
