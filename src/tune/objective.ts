/**
 * The objective of a tuning study: train the base config with the trial's params for the study's
 * budget and return the validation loss of the final evaluation (at the last step, over the
 * config's evalIters batches). The final value, not the best one seen: with the cosine schedule
 * ending at the budget, the final loss is what the configuration achieves in that budget, and
 * picking the minimum of several noisy evaluations would reward noise.
 *
 * Intermediate evaluations are reported to the study (which asks the pruner) from `onEval`, and a
 * prune decision stops `train()` through `shouldStop`, checked after every step.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TRAIN_CONFIG, resolveTrainConfig, type TrainConfig } from '../train/config.js';
import type { EvalRecord } from '../train/metrics.js';
import { train } from '../train/trainer.js';
import { applyParams, type Params } from './space.js';
import type { Budget, StudySettings, TrialOutcome } from './types.js';

export type ReportDecision = 'continue' | 'prune' | 'lost';

export interface TrialContext {
  number: number;
  params: Params;
  settings: StudySettings;
  /** The study's folder for trial runs; the trial's run is `<outDir>/<runName>`. */
  outDir: string;
  runName: string;
  /** Stores an intermediate value and asks the pruner; 'lost' when another worker took the trial over. */
  report(step: number, value: number): Promise<ReportDecision>;
  /** The worker was asked to stop (Ctrl-C): end the trial as soon as possible. */
  stopRequested(): boolean;
  /** The trial was declared dead and re-queued (a missed heartbeat): its result no longer counts. */
  lost(): boolean;
}

/** interrupted: stopped by the worker (the trial is re-queued); lost: taken over by another worker. */
export type ObjectiveResult = TrialOutcome | { state: 'interrupted' } | { state: 'lost' };

export type Objective = (ctx: TrialContext) => Promise<ObjectiveResult>;

/** Evaluations per trial when the base config does not set evalInterval: enough points for a pruner. */
const EVALS_PER_TRIAL = 8;

/** The resource pruners compare at: steps for a step budget, tokens seen for a token budget. */
export function resourceOf(budget: Budget, record: { step: number; tokens: number }): number {
  return 'steps' in budget ? record.step : record.tokens;
}

export function budgetResource(budget: Budget): number {
  return 'steps' in budget ? budget.steps : budget.tokens;
}

/**
 * The full train config of a trial. Beyond base + params:
 * - maxSteps is the budget (tokens become ceil(tokens / (batchSize·blockSize)) steps) and there is
 *   no time limit, so a trial's result does not depend on how busy the machine is;
 * - minLr follows lr at the default ratio (3e-4 / 3e-3) unless the base config or the space sets
 *   it, so a space over lr does not produce lr < minLr;
 * - evalInterval, unless set, gives about 8 evaluations per trial; sample text is off unless set.
 */
export function trialTrainConfig(settings: StudySettings, params: Params, outDir: string, runName: string, dataDir?: string): TrainConfig {
  const base = settings.base;
  const merged: Partial<TrainConfig> = { ...applyParams(base, params), name: runName, outDir, maxTime: null };
  if (dataDir !== undefined) merged.dataDir = dataDir;
  if (!('minLr' in base) && !('minLr' in params)) merged.minLr = (merged.lr ?? DEFAULT_TRAIN_CONFIG.lr) * (DEFAULT_TRAIN_CONFIG.minLr / DEFAULT_TRAIN_CONFIG.lr);
  if (!('sampleTokens' in base) && !('sampleTokens' in params)) merged.sampleTokens = 0;
  const provisional = resolveTrainConfig(merged);
  const steps = 'steps' in settings.budget ? settings.budget.steps : Math.ceil(settings.budget.tokens / (provisional.batchSize * provisional.blockSize));
  const evalInterval = 'evalInterval' in base || 'evalInterval' in params ? provisional.evalInterval : Math.max(1, Math.ceil(steps / EVALS_PER_TRIAL));
  return resolveTrainConfig(merged, { maxSteps: steps, evalInterval });
}

export interface TrainObjectiveOptions {
  /** Where named datasets are cached on this machine (not part of the study: it differs per machine). */
  dataDir?: string;
  /** Keep each trial's checkpoints (by default only complete trials keep best.safetensors). */
  keepCheckpoints?: boolean;
  onEval?: (trialNumber: number, record: EvalRecord) => void;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The objective that trains a TransformerLM; see the module comment for what it returns. */
export function trainObjective(options: TrainObjectiveOptions = {}): Objective {
  return async (ctx) => {
    const runDir = join(ctx.outDir, ctx.runName);
    // The trial number was claimed atomically, so anything already here is a leftover of an
    // earlier study of the same name and not another worker's run.
    rmSync(runDir, { recursive: true, force: true });
    let config: TrainConfig;
    try {
      config = trialTrainConfig(ctx.settings, ctx.params, ctx.outDir, ctx.runName, options.dataDir);
    } catch (error) {
      return { state: 'failed', error: `invalid config: ${message(error)}` };
    }
    let pruned: { value: number } | null = null;
    let nonFinite: string | null = null;
    let reportError: unknown = null;
    let lost = false;
    let pending: Promise<void> = Promise.resolve();
    const budget = ctx.settings.budget;

    let outcome: ObjectiveResult;
    try {
      const result = await train(config, {
        shouldStop: () => pruned !== null || nonFinite !== null || lost || reportError !== null || ctx.lost() || ctx.stopRequested(),
        hooks: {
          onEval: (record) => {
            options.onEval?.(ctx.number, record);
            if (!Number.isFinite(record.valLoss)) nonFinite = `validation loss became ${record.valLoss} at step ${record.step}`;
            const resource = resourceOf(budget, record);
            const last = record.step >= config.maxSteps;
            // onEval is synchronous; the report runs on the event loop, which train() lets run
            // between steps, and the decision takes effect a step or so later.
            pending = pending.then(async () => {
              if (reportError !== null) return;
              try {
                const decision = await ctx.report(resource, record.valLoss);
                if (decision === 'lost') lost = true;
                // At the last evaluation the trial is done anyway: it completes.
                else if (decision === 'prune' && !last && pruned === null) pruned = { value: record.valLoss };
              } catch (error) {
                reportError = error;
              }
            });
          },
        },
      });
      await pending;
      if (reportError !== null) throw reportError;
      if (lost || ctx.lost()) outcome = { state: 'lost' };
      else if (nonFinite !== null) outcome = { state: 'failed', error: nonFinite };
      else if (pruned !== null) outcome = { state: 'pruned', value: (pruned as { value: number }).value };
      else if (result.stoppedEarly === 'interrupted') outcome = { state: 'interrupted' };
      else if (result.finalValLoss === null || !Number.isFinite(result.finalValLoss)) outcome = { state: 'failed', error: `final validation loss is ${result.finalValLoss}` };
      else outcome = { state: 'complete', value: result.finalValLoss };
    } catch (error) {
      await pending;
      if (reportError !== null) throw reportError;
      // A diverging run (NonFiniteLossError) or a config that train() rejects (blockSize larger
      // than the model's context, heads not dividing dModel …) fails this trial, not the worker.
      outcome = { state: 'failed', error: message(error) };
    }
    if (!options.keepCheckpoints) {
      rmSync(join(runDir, 'latest.safetensors'), { force: true });
      if (outcome.state !== 'complete' && existsSync(join(runDir, 'best.safetensors'))) rmSync(join(runDir, 'best.safetensors'), { force: true });
    }
    return outcome;
  };
}

/**
 * The train config a trial ran with, as a config file for `tensorlm train --config`: only what
 * differs from the defaults, with the trial's step count and no time limit.
 */
export function tunedTrainConfig(settings: StudySettings, params: Params, name = 'tuned'): Partial<TrainConfig> {
  const full = trialTrainConfig(settings, params, DEFAULT_TRAIN_CONFIG.outDir, name);
  const out: Record<string, unknown> = {};
  const defaults = DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(full)) {
    if (key === 'outDir' || key === 'sampleTokens' || key === 'dataDir') continue;
    if (JSON.stringify(value) !== JSON.stringify(defaults[key])) out[key] = value;
  }
  return out as Partial<TrainConfig>;
}
