/**
 * The training core: one optimizer step, one evaluation, one learning-rate schedule — and nothing
 * about files, terminals, timers or threads. Every loop in TensorLM is this core plus what its
 * setting needs: the CLI trainer (trainer.ts) adds run directories, checkpoints, metrics and the
 * time-budget planner; the browser loop (browser-loop.ts) adds a text held in memory; the
 * data-parallel workers (parallel.ts, parallel-worker.ts) call `accumulateGradients` on their
 * shards; the bench times `TrainingCore.step`. Like nanoGPT's train.py, read top to bottom:
 *
 *   const core = new TrainingCore({ model, optimizer, schedule: new LrSchedule({ lr: 3e-3, warmupSteps: 100, maxSteps: 5000 }),
 *                                   loss: languageModelLoss, gradClip: 1 });
 *   while (core.step < 5000) core.trainStep(getBatch());          // or several micro-batches: trainStep([b1, b2])
 *   const val = estimateLoss(model, languageModelLoss, (rng) => dataset.getBatch('val', 16, 128, rng), 20, seed);
 *
 * The loss is a parameter (`LossFunction`): a later stage (a masked fine-tuning loss, a preference
 * loss) plugs in its own without a new loop.
 */
import { backward } from '../autograd/engine.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { Batch } from '../data/dataset.js';
import type { LanguageModel } from '../models/language-model.js';
import type { AnyModule } from '../nn/module.js';
import { clipGradNorm } from '../optim/clip-grad.js';
import { warmupConstantLr, warmupCosineLr } from '../optim/lr-scheduler.js';
import type { Optimizer } from '../optim/optimizer.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

/** A scalar loss of `model` on `batch`, with a graph to backpropagate through. */
export type LossFunction<M, B> = (model: M, batch: B) => Tensor;

/**
 * Next-token cross-entropy of a language model on a batch of (ids, targets): pretraining's loss.
 * A packed batch (positions, documentIds) runs its documents apart within each row.
 */
export function languageModelLoss(model: LanguageModel, batch: Batch): Tensor {
  if (batch.positions || batch.documentIds) return model.forward(batch.x, batch.y, { positions: batch.positions, documentIds: batch.documentIds }).loss as Tensor;
  return model.forward(batch.x, batch.y).loss as Tensor;
}

/**
 * 'cosine': linear warmup, then cosine decay from lr to minLr at maxSteps (nanoGPT's get_lr).
 * 'constant': the same warmup, then lr for good (sweeps such as μTransfer, where a decay would
 * tie the LR's effect to the run length).
 */
export type LrScheduleKind = 'cosine' | 'constant';

export interface LrScheduleOptions {
  kind?: LrScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Where the cosine ends (default lr / 10). */
  minLr?: number;
  warmupSteps: number;
  /** Where the cosine reaches minLr. */
  maxSteps: number;
}

/**
 * The learning rate as a function of the step. `maxSteps` may change during a run: the CLI's
 * time-budget planner sets it once it has measured the speed (planner.ts).
 */
export class LrSchedule {
  readonly kind: LrScheduleKind;
  readonly lr: number;
  readonly minLr: number;
  readonly warmupSteps: number;
  maxSteps: number;

  constructor(options: LrScheduleOptions) {
    this.kind = options.kind ?? 'cosine';
    this.lr = options.lr;
    this.minLr = options.minLr ?? options.lr / 10;
    this.warmupSteps = options.warmupSteps;
    this.maxSteps = options.maxSteps;
    if (this.kind !== 'cosine' && this.kind !== 'constant') throw new RangeError(`LrSchedule: kind must be 'cosine' or 'constant', got '${String(this.kind)}'`);
    if (!(this.lr > 0 && Number.isFinite(this.lr))) throw new RangeError(`LrSchedule: lr must be a positive number, got ${this.lr}`);
    if (!(this.minLr >= 0 && Number.isFinite(this.minLr))) throw new RangeError(`LrSchedule: minLr must be a non-negative number, got ${this.minLr}`);
    if (!Number.isInteger(this.warmupSteps) || this.warmupSteps < 0) throw new RangeError(`LrSchedule: warmupSteps must be a non-negative integer, got ${this.warmupSteps}`);
  }

  /** nanoGPT's get_lr(it). */
  lrAt(step: number): number {
    if (this.kind === 'constant') return warmupConstantLr(step, { baseLr: this.lr, warmupSteps: this.warmupSteps });
    return warmupCosineLr(step, { baseLr: this.lr, warmupSteps: this.warmupSteps, maxSteps: this.maxSteps, minLr: this.minLr });
  }
}

/** Thrown when the loss stops being finite; the step's gradients are not applied. */
export class NonFiniteLossError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly loss: number,
  ) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

/**
 * Forward and backward of one (micro-)batch: the loss times `weight` is backpropagated into the
 * parameters' `.grad` (added to what is there), and the graph's buffers go back to the pool for
 * the next step (nothing of it is read afterwards but the loss value). Returns the unweighted
 * loss. A non-finite loss is returned without a backward pass: the caller decides what to do.
 */
export function accumulateGradients<M, B>(model: M, loss: LossFunction<M, B>, batch: B, weight = 1): number {
  const value = loss(model, batch);
  if (!(value instanceof Tensor) || value.size !== 1) {
    throw new TypeError(`the loss function must return a scalar tensor, got ${value instanceof Tensor ? `shape [${value.shape.join(', ')}]` : typeof value}`);
  }
  const lossValue = value.item();
  if (!Number.isFinite(lossValue)) return lossValue;
  backward(value, weight === 1 ? undefined : new Tensor(Float32Array.of(weight), value.shape.slice()), { recycleIntermediates: true });
  return lossValue;
}

export interface TrainingCoreOptions<M extends AnyModule, B> {
  model: M;
  optimizer: Optimizer;
  schedule: LrSchedule;
  loss: LossFunction<M, B>;
  /** Max global gradient norm (0 disables clipping). */
  gradClip: number;
}

export interface StepResult {
  /** The step's mean loss over its micro-batches. */
  loss: number;
  /** The schedule's value for this step (each param group trains at lr × its lrScale). */
  lr: number;
}

/**
 * One optimizer step at a time: set the LR from the schedule, zero the gradients, accumulate them
 * over the step's micro-batches, clip, update. `step` counts the steps taken (the next step's
 * index), so a resumed run sets it and continues on the same schedule.
 */
export class TrainingCore<M extends AnyModule, B> {
  readonly model: M;
  readonly optimizer: Optimizer;
  readonly schedule: LrSchedule;
  readonly loss: LossFunction<M, B>;
  readonly gradClip: number;
  step = 0;

  constructor(options: TrainingCoreOptions<M, B>) {
    this.model = options.model;
    this.optimizer = options.optimizer;
    this.schedule = options.schedule;
    this.loss = options.loss;
    this.gradClip = options.gradClip;
    if (!(this.gradClip >= 0)) throw new RangeError(`gradClip must be ≥ 0 (0 disables clipping), got ${this.gradClip}`);
  }

  /**
   * One step on a batch, or on several micro-batches whose gradients are averaged (gradient
   * accumulation: the same update as one batch of all their rows when the losses are means over
   * equally many targets). Throws NonFiniteLossError, leaving the parameters untouched, when a
   * loss is not finite.
   */
  trainStep(batches: B | readonly B[]): StepResult {
    const list = (Array.isArray(batches) ? batches : [batches]) as readonly B[];
    if (list.length === 0) throw new RangeError('trainStep: no batches given');
    return this.#finish(this.#begin(), () => {
      let total = 0;
      for (const batch of list) {
        const value = accumulateGradients(this.model, this.loss, batch, 1 / list.length);
        if (!Number.isFinite(value)) return value;
        total += value;
      }
      return total / list.length;
    });
  }

  /**
   * The same step with the gradients computed elsewhere: `computeGradients` fills the parameters'
   * `.grad` (e.g. DataParallel over worker threads) and resolves with the loss.
   */
  async trainStepWith(computeGradients: () => Promise<number>): Promise<StepResult> {
    const lr = this.#begin();
    const loss = await computeGradients();
    return this.#finish(lr, () => loss);
  }

  #begin(): number {
    const lr = this.schedule.lrAt(this.step);
    // Scale each group relatively, never overwrite: μP's hidden groups train at lr/m all along
    // (lrScale is 1 for every standard group, and x·1 is x exactly).
    for (const group of this.optimizer.paramGroups) group.lr = lr * (group.lrScale ?? 1);
    this.optimizer.zeroGrad();
    return lr;
  }

  #finish(lr: number, gradients: () => number): StepResult {
    const loss = gradients();
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(`loss became ${loss} at step ${this.step}`, this.step, loss);
    if (this.gradClip > 0) clipGradNorm(this.model.parameters(), this.gradClip);
    this.optimizer.step();
    this.step++;
    return { loss, lr };
  }
}

/**
 * nanoGPT's estimate_loss: the mean loss over `iters` batches drawn by `nextBatch` from a
 * generator seeded with `seed` (so an evaluation gives the same figure in a resumed run), in eval
 * mode without gradients; the model's mode is restored afterwards.
 */
export function estimateLoss<M extends AnyModule, B>(model: M, loss: LossFunction<M, B>, nextBatch: (rng: Generator) => B, iters: number, seed: number): number {
  if (!Number.isInteger(iters) || iters < 1) throw new RangeError(`estimateLoss: iters must be a positive integer, got ${iters}`);
  const wasTraining = model.training;
  model.eval();
  const rng = new Generator(seed);
  let total = 0;
  try {
    noGrad(() => {
      for (let i = 0; i < iters; i++) total += loss(model, nextBatch(rng)).item();
    });
  } finally {
    model.train(wasTraining);
  }
  return total / iters;
}
