/**
 * `tensorlm train`: the training core (loop.ts: AdamW with warmup + cosine decay or a constant LR,
 * gradient clipping and accumulation) plus what a run on disk needs — a run directory, periodic
 * evaluation, checkpoints (latest and best) that resume exactly, metrics as JSON lines, and the
 * time-budget planner (planner.ts). A model config with `mup` trains under μP: its param groups
 * (models/mup.ts, muParamGroups) carry per-group LR multipliers that the schedule scales.
 * Everything the CLI does is callable from here.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextDataset, type Split } from '../data/dataset.js';
import { loadText } from '../data/resolve.js';
import { writeFileAtomic } from '../data/files.js';
import { generateText } from '../models/generate.js';
import { TransformerLM } from '../models/transformer.js';
import { buildModelConfig } from '../models/presets.js';
import { resolveConfig, type TransformerConfig } from '../models/config.js';
import { DataParallel } from './parallel.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { readCheckpoint, saveCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { estimateLoss, languageModelLoss, LrSchedule, NonFiniteLossError, TrainingCore, type StepResult } from './loop.js';
import { MetricsLog, type EvalRecord, type TrainRecord } from './metrics.js';
import { TimeBudgetPlanner } from './planner.js';
import { buildTrainingSetup, SAMPLE_TEMPERATURE } from './setup.js';

export { buildTrainingSetup, runGenerators, SAMPLE_TEMPERATURE } from './setup.js';

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

export { NonFiniteLossError } from './loop.js';

export function makeTokenizer(spec: string, text: string): Tokenizer {
  if (spec === 'char') return CharTokenizer.fromText(text);
  if (!existsSync(spec)) throw new Error(`tokenizer file ${spec} does not exist (use 'char' or a BPE tokenizer JSON from 'tensorlm tokenizer train')`);
  return loadTokenizer(spec);
}

/** Sample text at an evaluation: up to this many tokens, whatever sampleTokens asks for at the end. */
const EVAL_SAMPLE_TOKENS = 200;

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
  const { model, optimizer, generators: gens } = buildTrainingSetup(config, modelConfig);
  const metrics = new MetricsLog(files.metrics);
  const schedule = new LrSchedule({ kind: config.lrSchedule, lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  const core = new TrainingCore({ model, optimizer, schedule, loss: languageModelLoss, gradClip: config.gradClip });

  let tokensSeen = 0;
  let elapsedBefore = 0;
  let bestValLoss: number | null = null;
  if (checkpoint) {
    model.loadStateDict(checkpoint.modelState);
    optimizer.loadStateDict(checkpoint.optimizerState);
    gens.data.setState(checkpoint.meta.rng.data);
    gens.dropout.setState(checkpoint.meta.rng.dropout);
    core.step = checkpoint.meta.step;
    tokensSeen = checkpoint.meta.tokensSeen;
    elapsedBefore = checkpoint.meta.elapsedSeconds;
    bestValLoss = checkpoint.meta.bestValLoss;
    schedule.maxSteps = checkpoint.meta.plannedSteps;
    metrics.truncateAfter(core.step);
  }
  const tokensPerStep = config.batchSize * config.blockSize * config.gradAccumSteps;
  hooks.onStart?.({ config: runConfig, startStep: core.step, plannedSteps: schedule.maxSteps, parameters: model.numParameters(), resumed: resuming, trainTokens: dataset.train.length, valTokens: dataset.val.length });

  const startTime = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - startTime) / 1000;
  // With a time budget the step count is planned from the measured speed (planner.ts); the plan
  // lives in the schedule's horizon and is saved in checkpoints for resumes.
  const planner = config.maxTime !== null ? new TimeBudgetPlanner({ ...config, maxTime: config.maxTime }, checkpoint ? checkpoint.meta.plannedSteps : null, core.step, startTime / 1000) : null;

  const meta = (): CheckpointMeta => ({
    step: core.step,
    tokensSeen,
    elapsedSeconds: elapsed(),
    bestValLoss,
    rng: { data: gens.data.getState(), dropout: gens.dropout.getState() },
    config: runConfig,
    plannedSteps: schedule.maxSteps,
  });
  const save = (path: string) => {
    saveCheckpoint(path, model, optimizer, meta());
    hooks.onCheckpoint?.(path, core.step);
  };
  const lossOn = (split: Split, seed: number) => estimateLoss(model, languageModelLoss, (rng) => dataset.getBatch(split, config.batchSize, config.blockSize, rng), config.evalIters, seed);
  const evaluate = (): EvalRecord => {
    // Seeded by step, not by history: an evaluation gives the same figure in a resumed run.
    const evalSeed = config.seed + 7919 * (core.step + 1);
    const trainLoss = lossOn('train', evalSeed);
    const valLoss = lossOn('val', evalSeed + 1);
    const record: EvalRecord = { kind: 'eval', step: core.step, tokens: tokensSeen, trainLoss, valLoss, elapsedSeconds: elapsed() };
    if (config.sampleTokens > 0) {
      record.sample = generateText(model, tokenizer, '', { maxNewTokens: Math.min(config.sampleTokens, EVAL_SAMPLE_TOKENS), temperature: SAMPLE_TEMPERATURE, seed: config.seed }).text;
    }
    metrics.append(record);
    hooks.onEval?.(record);
    return record;
  };

  let lastLogTime = startTime;
  let lastLogTokens = tokensSeen;
  let finalTrainLoss: number | null = null;
  let finalValLoss: number | null = null;
  let stoppedEarly: TrainResult['stoppedEarly'] = null;
  const trainLosses: { step: number; loss: number }[] = [];
  const stepsThisCall = options.stopAfterSteps ?? Infinity;
  let done = 0;

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
  const microBatches = () => Array.from({ length: config.gradAccumSteps }, () => dataset.getBatch('train', config.batchSize, config.blockSize, gens.data));

  // Data parallelism over worker threads (src/train/parallel.ts): replicas − 1 workers.
  const dataParallel = config.replicas > 1 ? new DataParallel(model, { replicas: config.replicas, seed: config.seed + 3 }) : null;
  try {
    while (core.step < schedule.maxSteps) {
      let result: StepResult;
      try {
        if (dataParallel) {
          // Forward + backward of each batch's shards on the replicas; gradients land in model's .grad.
          const batches = microBatches();
          result = await core.trainStepWith(async () => {
            let total = 0;
            for (const { x, y } of batches) total += await dataParallel.step(x, y, 1 / batches.length);
            return total / batches.length;
          });
        } else result = core.trainStep(microBatches());
      } catch (e) {
        if (!(e instanceof NonFiniteLossError)) throw e;
        throw new NonFiniteLossError(`${e.message}; stopping. The last good checkpoint is ${existsSync(files.latest) ? files.latest : '(none yet)'}; try a lower --lr`, e.step, e.loss);
      }
      const step = core.step;
      done++;
      tokensSeen += tokensPerStep;
      trainLosses.push({ step, loss: result.loss });

      const replanned = planner?.afterStep(step, performance.now() / 1000, elapsed()) ?? null;
      if (replanned !== null) {
        schedule.maxSteps = replanned;
        hooks.onPlanned?.(replanned);
      }

      if (step % config.logInterval === 0 || step === schedule.maxSteps) {
        const now = performance.now();
        const record: TrainRecord = {
          kind: 'train',
          step,
          tokens: tokensSeen,
          loss: result.loss,
          // The schedule's value: each param group trains at lr × its lrScale (μP: hidden ones at lr/m).
          lr: result.lr,
          tokensPerSecond: ((tokensSeen - lastLogTokens) / (now - lastLogTime)) * 1000,
          elapsedSeconds: elapsed(),
        };
        lastLogTime = now;
        lastLogTokens = tokensSeen;
        metrics.append(record);
        hooks.onTrainLog?.(record, schedule.maxSteps);
      }
      // Evaluate right after the step that completes an interval, so a stop after it never skips it.
      if (step % config.evalInterval === 0 && step < schedule.maxSteps) evaluateAndSave(true);
      // Let the event loop run (a Ctrl-C handler, progress output) between steps; costs microseconds.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (options.shouldStop?.()) {
        stoppedEarly = 'interrupted';
        break;
      }
      if (done >= stepsThisCall) break;
      if (config.maxTime !== null && elapsed() > config.maxTime) {
        stoppedEarly = 'time';
        break;
      }
    }

    if (core.step >= schedule.maxSteps || stoppedEarly === 'time') evaluateAndSave(false);
    save(files.latest);
    return {
      files,
      model,
      tokenizer,
      dataset,
      config: runConfig,
      step: core.step,
      plannedSteps: schedule.maxSteps,
      finalTrainLoss,
      finalValLoss,
      bestValLoss,
      tokensPerSecond: (done * tokensPerStep) / ((performance.now() - startTime) / 1000),
      elapsedSeconds: elapsed(),
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
