/**
 * A training run on disk, around the training core (loop.ts): resume from the latest checkpoint,
 * step until the planned step count (or the time budget: planner.ts), log metrics as JSON lines,
 * evaluate every evalInterval steps, keep the best and the latest checkpoint, stop cleanly on a
 * signal. Every stage that trains a model into a run directory — pretraining (trainer.ts), and
 * the fine-tuning stages (posttrain/) — sets up its model, data and evaluation and calls
 * `runLoop`; none of them writes this loop again.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeStaleTempFiles, writeFileAtomic } from '../data/files.js';
import type { AnyModule } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Generator } from '../tensor/random.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { readCheckpoint, saveCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { NonFiniteLossError, type StepResult, type TrainingCore } from './loop.js';
import { MetricsLog, type EvalRecord, type TrainRecord } from './metrics.js';
import { TimeBudgetPlanner } from './planner.js';

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

/**
 * The checkpoint a run resumes from (`resume`: its latest), or null for a new run, which may not
 * overwrite a run that is already there. Temporary files that a killed process left in the run
 * directory (atomic writes it never renamed into place) are removed first.
 */
export function openRun(files: RunFiles, resume: boolean): ReturnType<typeof readCheckpoint> | null {
  removeStaleTempFiles(files.dir);
  if (resume) {
    if (!existsSync(files.latest)) throw new Error(`--resume: no checkpoint at ${files.latest}`);
    return readCheckpoint(files.latest);
  }
  if (existsSync(files.latest)) throw new Error(`${files.dir} already holds a run; pass --resume to continue it, or --name to start a new one`);
  return null;
}

/** Creates the run directory; a new run also gets its config.json, tokenizer.json and an empty metrics.jsonl. */
export function prepareRunDirectory(files: RunFiles, runConfig: unknown, tokenizer: Tokenizer, resuming: boolean): void {
  mkdirSync(files.dir, { recursive: true });
  removeStaleTempFiles(files.dir);
  const configText = JSON.stringify(runConfig, null, 2) + '\n';
  if (resuming) {
    // A copied run directory resumes under its new name: its config.json says so too.
    let current: string | null = null;
    try {
      current = readFileSync(files.config, 'utf8');
    } catch {
      current = null;
    }
    if (current !== configText) writeFileAtomic(files.config, configText);
    return;
  }
  writeFileAtomic(files.config, configText);
  tokenizer.save(files.tokenizer);
  writeFileSync(files.metrics, '');
}

export interface RunHooks<C = unknown> {
  /** `dir`: where the run directory actually is (a copied run's config still names the original). */
  onStart?(info: { config: C; dir: string; startStep: number; plannedSteps: number; parameters: number; resumed: boolean; trainTokens: number; valTokens: number }): void;
  onTrainLog?(record: TrainRecord, plannedSteps: number): void;
  onPlanned?(plannedSteps: number): void;
  onEval?(record: EvalRecord): void;
  onCheckpoint?(path: string, step: number): void;
}

export interface RunControl {
  /** Checked after every step; when it returns true the run saves a checkpoint and stops. */
  shouldStop?: () => boolean;
  /** Stop after this many optimizer steps of this call (tests simulate interruptions). */
  stopAfterSteps?: number;
}

/** What an evaluation measured (the loop adds step, tokens and time). */
export interface Evaluation {
  trainLoss: number;
  valLoss: number;
  sample?: string;
  /** Further figures of the stage, e.g. held-out exact-match accuracy per task. */
  metrics?: Record<string, number>;
}

export interface RunLoopSettings {
  maxSteps: number;
  /** Seconds for the whole run (null: exactly maxSteps). */
  maxTime: number | null;
  warmupSteps: number;
  evalInterval: number;
  evalIters: number;
  logInterval: number;
}

export interface RunLoopSpec<M extends AnyModule, B> {
  files: RunFiles;
  /** The run's config as written to config.json; stored in every checkpoint's metadata. */
  runConfig: unknown;
  model: M;
  optimizer: Optimizer;
  core: TrainingCore<M, B>;
  /** The streams a checkpoint must restore for an exact resume. */
  generators: { data: Generator; dropout: Generator };
  settings: RunLoopSettings;
  /** The step's micro-batches (drawn from generators.data). */
  nextBatches: () => B[];
  /** Tokens a step's batches hold (for tokens/s and the tokens axis of the metrics). */
  tokensIn: (batches: readonly B[]) => number;
  /** Gradients computed elsewhere (e.g. DataParallel), resolving with the step's mean loss. */
  gradientsWith?: (batches: readonly B[]) => Promise<number>;
  /** Seeded by the step, not by history, so that a resumed run gives the same figures. */
  evaluate: (step: number) => Evaluation;
  /** The checkpoint to resume from (its model and optimizer state are loaded here), or null. */
  resumeFrom: ReturnType<typeof readCheckpoint> | null;
  hooks?: RunHooks;
  control?: RunControl;
  /** Counts for the onStart hook. */
  dataTokens?: { train: number; val: number };
}

export interface RunOutcome {
  step: number;
  plannedSteps: number;
  finalTrainLoss: number | null;
  finalValLoss: number | null;
  bestValLoss: number | null;
  tokensPerSecond: number;
  elapsedSeconds: number;
  stoppedEarly: 'interrupted' | 'time' | null;
  trainLosses: { step: number; loss: number }[];
  /**
   * A resumed run that had already finished (its planned steps, or its time budget): nothing was
   * trained, evaluated or written; the final losses are those of its last evaluation.
   */
  alreadyFinished?: boolean;
}

export async function runLoop<M extends AnyModule, B>(spec: RunLoopSpec<M, B>): Promise<RunOutcome> {
  const { files, model, optimizer, core, settings, generators: gens } = spec;
  const schedule = core.schedule;
  const hooks = spec.hooks ?? {};
  const control = spec.control ?? {};
  const metrics = new MetricsLog(files.metrics);
  let tokensSeen = 0;
  let elapsedBefore = 0;
  let bestValLoss: number | null = null;
  const checkpoint = spec.resumeFrom;
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
    // Resuming a finished run trains nothing and appends no second final evaluation (as
    // Lightning's "max_steps reached"): the caller says that it is finished.
    if (core.step >= schedule.maxSteps || (settings.maxTime !== null && elapsedBefore >= settings.maxTime)) {
      const last = metrics.read().filter((r): r is EvalRecord => r.kind === 'eval' && r.step <= core.step).pop();
      return {
        step: core.step,
        plannedSteps: schedule.maxSteps,
        finalTrainLoss: last?.trainLoss ?? null,
        finalValLoss: last?.valLoss ?? null,
        bestValLoss,
        tokensPerSecond: 0,
        elapsedSeconds: elapsedBefore,
        stoppedEarly: null,
        trainLosses: [],
        alreadyFinished: true,
      };
    }
    metrics.truncateAfter(core.step);
  }
  hooks.onStart?.({
    config: spec.runConfig,
    dir: files.dir,
    startStep: core.step,
    plannedSteps: schedule.maxSteps,
    parameters: model.numParameters(),
    resumed: checkpoint !== null,
    trainTokens: spec.dataTokens?.train ?? 0,
    valTokens: spec.dataTokens?.val ?? 0,
  });

  const startTime = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - startTime) / 1000;
  // With a time budget the step count is planned from the measured speed (planner.ts); the plan
  // lives in the schedule's horizon and is saved in checkpoints for resumes.
  const planner = settings.maxTime !== null ? new TimeBudgetPlanner({ ...settings, maxTime: settings.maxTime }, checkpoint ? checkpoint.meta.plannedSteps : null, core.step, startTime / 1000) : null;

  const meta = (): CheckpointMeta => ({
    step: core.step,
    tokensSeen,
    elapsedSeconds: elapsed(),
    bestValLoss,
    rng: { data: gens.data.getState(), dropout: gens.dropout.getState() },
    config: spec.runConfig,
    plannedSteps: schedule.maxSteps,
  });
  const save = (path: string) => {
    saveCheckpoint(path, model, optimizer, meta());
    hooks.onCheckpoint?.(path, core.step);
  };

  let lastLogTime = startTime;
  let lastLogTokens = tokensSeen;
  let finalTrainLoss: number | null = null;
  let finalValLoss: number | null = null;
  let stoppedEarly: RunOutcome['stoppedEarly'] = null;
  const trainLosses: { step: number; loss: number }[] = [];
  const stepsThisCall = control.stopAfterSteps ?? Infinity;
  let done = 0;
  let tokensThisCall = 0;

  /** Evaluates, keeps the best checkpoint, and (unless it is the end) saves the latest. */
  const evaluateAndSave = (saveLatest: boolean) => {
    const e = spec.evaluate(core.step);
    const record: EvalRecord = { kind: 'eval', step: core.step, tokens: tokensSeen, trainLoss: e.trainLoss, valLoss: e.valLoss, elapsedSeconds: elapsed() };
    if (e.sample !== undefined) record.sample = e.sample;
    if (e.metrics !== undefined) record.metrics = e.metrics;
    metrics.append(record);
    hooks.onEval?.(record);
    finalValLoss = record.valLoss;
    finalTrainLoss = record.trainLoss;
    if (bestValLoss === null || record.valLoss < bestValLoss) {
      bestValLoss = record.valLoss;
      save(files.best);
    }
    if (saveLatest) save(files.latest);
  };

  while (core.step < schedule.maxSteps) {
    const batches = spec.nextBatches();
    let result: StepResult;
    try {
      const gradientsWith = spec.gradientsWith;
      result = gradientsWith ? await core.trainStepWith(() => gradientsWith(batches)) : core.trainStep(batches);
    } catch (e) {
      if (!(e instanceof NonFiniteLossError)) throw e;
      throw new NonFiniteLossError(`${e.message}; stopping. The last good checkpoint is ${existsSync(files.latest) ? files.latest : '(none yet)'}; try a lower --lr`, e.step, e.loss);
    }
    const step = core.step;
    const tokens = spec.tokensIn(batches);
    done++;
    tokensSeen += tokens;
    tokensThisCall += tokens;
    trainLosses.push({ step, loss: result.loss });

    const replanned = planner?.afterStep(step, performance.now() / 1000, elapsed()) ?? null;
    if (replanned !== null) {
      schedule.maxSteps = replanned;
      hooks.onPlanned?.(replanned);
    }

    if (step % settings.logInterval === 0 || step === schedule.maxSteps) {
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
    if (step % settings.evalInterval === 0 && step < schedule.maxSteps) evaluateAndSave(true);
    // Let the event loop run (a Ctrl-C handler, progress output) between steps; costs microseconds.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (control.shouldStop?.()) {
      stoppedEarly = 'interrupted';
      break;
    }
    if (done >= stepsThisCall) break;
    if (settings.maxTime !== null && elapsed() > settings.maxTime) {
      stoppedEarly = 'time';
      break;
    }
  }

  if (core.step >= schedule.maxSteps || stoppedEarly === 'time') evaluateAndSave(false);
  save(files.latest);
  return {
    step: core.step,
    plannedSteps: schedule.maxSteps,
    finalTrainLoss,
    finalValLoss,
    bestValLoss,
    tokensPerSecond: tokensThisCall / ((performance.now() - startTime) / 1000),
    elapsedSeconds: elapsed(),
    stoppedEarly,
    trainLosses,
  };
}
