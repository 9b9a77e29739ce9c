/**
 * Learning-rate schedules, torch.optim.lr_scheduler's contract: a scheduler sets each param
 * group's `lr` when created (epoch 0) and on every `step()`, which is called after
 * `optimizer.step()`. Every schedule here is a closed form of (epoch, the group's initial lr), so
 * a schedule is exactly reproducible from its epoch alone — resuming needs only `lastEpoch`.
 *
 * The first scheduler attached to an optimizer records each group's starting lr as
 * `group.initialLr` (torch's `initial_lr`), so groups with different rates (μP) keep their ratios.
 */
import type { Optimizer, OptimizerHyperparams, ParamState } from './optimizer.js';
import { checkFinite, checkNonNegative } from './validate.js';

/** Any optimizer: schedulers touch only `paramGroups[i].lr` and `initialLr`. */
export type AnyOptimizer = Optimizer<OptimizerHyperparams, ParamState>;

/** The lr of one group at `epoch`, given the lr the group started from. */
export type LrFunction = (epoch: number, baseLr: number, groupIndex: number) => number;

export interface LRSchedulerOptions {
  /**
   * The index of the last epoch taken, -1 for a fresh start. Resuming with another value requires
   * every group to carry `initialLr` (restored with the optimizer's state dict), as in torch.
   */
  lastEpoch?: number;
}

export interface LRSchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
}

/** A scheduler from a closed-form lr function; the named schedules below are instances of it. */
export class LRScheduler {
  readonly optimizer: AnyOptimizer;
  /** Steps taken: 0 right after construction, as in torch (the constructor takes the first step). */
  lastEpoch: number;
  /** Each group's initial lr, in group order. */
  baseLrs: number[];
  private lastLr: number[] = [];
  private readonly lrFunction: LrFunction;
  protected readonly name: string;

  constructor(optimizer: AnyOptimizer, lrFunction: LrFunction, options: LRSchedulerOptions & { name?: string } = {}) {
    this.name = options.name ?? 'LRScheduler';
    this.optimizer = optimizer;
    this.lrFunction = lrFunction;
    const lastEpoch = options.lastEpoch ?? -1;
    if (!Number.isInteger(lastEpoch) || lastEpoch < -1) throw new Error(`${this.name}: invalid lastEpoch ${lastEpoch}`);
    optimizer.paramGroups.forEach((group, i) => {
      if (lastEpoch === -1) {
        // A second scheduler on the same optimizer keeps the first one's starting point.
        group.initialLr ??= group.lr;
      } else if (group.initialLr === undefined) {
        throw new Error(`${this.name}: paramGroups[${i}] has no initialLr, which resuming with lastEpoch ${lastEpoch} requires; load the optimizer's state dict first`);
      }
    });
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr as number);
    this.lastEpoch = lastEpoch;
    this.step();
  }

  /** Advances one epoch (call after `optimizer.step()`) and writes the new lr into every group. */
  step(): void {
    this.lastEpoch += 1;
    this.applyLr();
  }

  /** The lrs this scheduler computes for the current epoch, one per group. */
  getLr(): number[] {
    const groups = this.optimizer.paramGroups;
    if (groups.length !== this.baseLrs.length) {
      throw new Error(`${this.name}: the optimizer has ${groups.length} param groups, the scheduler was made for ${this.baseLrs.length}; create the scheduler after adding groups`);
    }
    return this.baseLrs.map((base, i) => this.lrFunction(this.lastEpoch, base, i));
  }

  /** The lrs last written into the groups (torch's `get_last_lr()`). */
  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  stateDict(): LRSchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: this.baseLrs.slice(), lastLr: this.lastLr.slice() };
  }

  /** Restores the epoch and base lrs, and writes the lrs for that epoch into the groups. */
  loadStateDict(dict: LRSchedulerStateDict): void {
    if (!Number.isInteger(dict.lastEpoch) || dict.lastEpoch < 0) throw new Error(`${this.name}: loaded state dict has an invalid lastEpoch ${dict.lastEpoch}`);
    if (!Array.isArray(dict.baseLrs) || dict.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw new Error(
        `${this.name}: loaded state dict has ${Array.isArray(dict.baseLrs) ? dict.baseLrs.length : 'no'} base lrs, the optimizer has ${this.optimizer.paramGroups.length} param groups`,
      );
    }
    this.lastEpoch = dict.lastEpoch;
    this.baseLrs = dict.baseLrs.slice();
    this.applyLr();
  }

  private applyLr(): void {
    const lrs = this.getLr();
    this.optimizer.paramGroups.forEach((group, i) => (group.lr = lrs[i]));
    this.lastLr = lrs;
  }
}

/** lr = baseLr · lrLambda(epoch): torch's LambdaLR (the lambda gives a factor, not an lr). */
export class LambdaLR extends LRScheduler {
  constructor(optimizer: AnyOptimizer, lrLambda: ((epoch: number) => number) | readonly ((epoch: number) => number)[], options: LRSchedulerOptions = {}) {
    const lambdas = typeof lrLambda === 'function' ? null : lrLambda.slice();
    if (lambdas !== null && lambdas.length !== optimizer.paramGroups.length) {
      throw new Error(`LambdaLR: expected ${optimizer.paramGroups.length} lrLambdas (one per param group), got ${lambdas.length}`);
    }
    super(optimizer, (epoch, base, i) => base * (lambdas === null ? (lrLambda as (epoch: number) => number)(epoch) : lambdas[i](epoch)), { ...options, name: 'LambdaLR' });
  }
}

export interface StepLROptions extends LRSchedulerOptions {
  stepSize: number;
  gamma?: number;
}

/** lr = baseLr · gamma^⌊epoch / stepSize⌋. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: AnyOptimizer, options: StepLROptions) {
    const { stepSize, gamma = 0.1 } = options;
    if (!Number.isInteger(stepSize) || stepSize < 1) throw new Error(`StepLR: invalid stepSize ${stepSize} (expected an integer >= 1)`);
    checkFinite('StepLR', 'gamma', gamma);
    super(optimizer, (epoch, base) => base * gamma ** Math.floor(epoch / stepSize), { ...options, name: 'StepLR' });
    this.stepSize = stepSize;
    this.gamma = gamma;
  }
}

export interface CosineAnnealingLROptions extends LRSchedulerOptions {
  /** Half the period: the lr reaches etaMin at epoch tMax. */
  tMax: number;
  etaMin?: number;
}

/**
 * lr = etaMin + (baseLr − etaMin)·(1 + cos(π·epoch/tMax))/2, for every epoch: past tMax the lr
 * rises again along the cosine, as PyTorch's recursive form does (it is not clamped at etaMin).
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: AnyOptimizer, options: CosineAnnealingLROptions) {
    const { tMax, etaMin = 0 } = options;
    if (typeof tMax !== 'number' || !Number.isFinite(tMax) || tMax <= 0) throw new Error(`CosineAnnealingLR: invalid tMax ${tMax} (expected a number > 0)`);
    checkFinite('CosineAnnealingLR', 'etaMin', etaMin);
    super(optimizer, (epoch, base) => etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * epoch) / tMax))) / 2, { ...options, name: 'CosineAnnealingLR' });
    this.tMax = tMax;
    this.etaMin = etaMin;
  }
}

export interface LinearLROptions extends LRSchedulerOptions {
  startFactor?: number;
  endFactor?: number;
  totalIters?: number;
}

/** The factor on baseLr moves linearly from startFactor to endFactor over totalIters epochs, then stays. */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;

  constructor(optimizer: AnyOptimizer, options: LinearLROptions = {}) {
    const { startFactor = 1 / 3, endFactor = 1, totalIters = 5 } = options;
    if (!(startFactor > 0 && startFactor <= 1)) throw new Error(`LinearLR: invalid startFactor ${startFactor} (expected 0 < startFactor <= 1)`);
    if (!(endFactor >= 0 && endFactor <= 1)) throw new Error(`LinearLR: invalid endFactor ${endFactor} (expected 0 <= endFactor <= 1)`);
    if (!Number.isInteger(totalIters) || totalIters < 1) throw new Error(`LinearLR: invalid totalIters ${totalIters} (expected an integer >= 1)`);
    super(optimizer, (epoch, base) => base * (startFactor + ((endFactor - startFactor) * Math.min(epoch, totalIters)) / totalIters), { ...options, name: 'LinearLR' });
    this.startFactor = startFactor;
    this.endFactor = endFactor;
    this.totalIters = totalIters;
  }
}

export interface WarmupCosineOptions {
  /** Iterations of linear warmup; lr(it) = baseLr·(it+1)/(warmupSteps+1) before it reaches warmupSteps. */
  warmupSteps: number;
  /** Iteration at which the cosine reaches minLr; later iterations stay at minLr. */
  maxSteps: number;
  /** The floor the cosine decays to. */
  minLr: number;
}

/**
 * nanoGPT's `get_lr`: linear warmup, cosine decay from baseLr to minLr between warmupSteps and
 * maxSteps, then minLr. A pure function of the iteration, for loops that set the lr themselves.
 */
export function warmupCosineLr(it: number, options: WarmupCosineOptions & { baseLr: number }): number {
  const { baseLr, warmupSteps, maxSteps, minLr } = options;
  if (it < warmupSteps) return (baseLr * (it + 1)) / (warmupSteps + 1);
  if (it > maxSteps) return minLr;
  const ratio = (it - warmupSteps) / (maxSteps - warmupSteps);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return minLr + coeff * (baseLr - minLr);
}

/**
 * The same linear warmup as `warmupCosineLr`, then baseLr for good: the constant-LR schedule of
 * short sweeps such as μTransfer's (where a decay would mix the LR's effect with the horizon's).
 */
export function warmupConstantLr(it: number, options: { baseLr: number; warmupSteps: number }): number {
  const { baseLr, warmupSteps } = options;
  return it < warmupSteps ? (baseLr * (it + 1)) / (warmupSteps + 1) : baseLr;
}

export interface WarmupCosineLROptions extends LRSchedulerOptions {
  warmupSteps: number;
  maxSteps: number;
  /**
   * The floor, as an lr: one number for every group (like CosineAnnealingLR's etaMin), or one per
   * group — for groups with different rates (μP) pass e.g. `groups.map((g) => g.lr / 10)`.
   */
  minLr: number | readonly number[];
}

/** `warmupCosineLr` as a scheduler: each group follows it from its own initial lr. */
export class WarmupCosineLR extends LRScheduler {
  readonly warmupSteps: number;
  readonly maxSteps: number;
  readonly minLr: number | readonly number[];

  constructor(optimizer: AnyOptimizer, options: WarmupCosineLROptions) {
    const { warmupSteps, maxSteps, minLr } = options;
    if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`WarmupCosineLR: invalid warmupSteps ${warmupSteps} (expected an integer >= 0)`);
    if (!Number.isInteger(maxSteps) || maxSteps <= warmupSteps) {
      throw new Error(`WarmupCosineLR: invalid maxSteps ${maxSteps} (expected an integer > warmupSteps = ${warmupSteps})`);
    }
    const floors = typeof minLr === 'number' ? optimizer.paramGroups.map(() => minLr) : minLr.slice();
    if (floors.length !== optimizer.paramGroups.length) {
      throw new Error(`WarmupCosineLR: expected ${optimizer.paramGroups.length} minLr values (one per param group), got ${floors.length}`);
    }
    floors.forEach((m) => checkNonNegative('WarmupCosineLR', 'minLr', m));
    super(optimizer, (epoch, baseLr, i) => warmupCosineLr(epoch, { baseLr, warmupSteps, maxSteps, minLr: floors[i] }), { ...options, name: 'WarmupCosineLR' });
    this.warmupSteps = warmupSteps;
    this.maxSteps = maxSteps;
    this.minLr = typeof minLr === 'number' ? minLr : floors.slice();
  }
}
