/**
 * Pruners stop unpromising trials early from their intermediate validation losses.
 *
 * "Step" here is the trial's resource: optimizer steps for a step budget, tokens seen for a token
 * budget (trials with different batch sizes then still compare at equal data). Trials evaluate at
 * their own points, so another trial's value "at step s" is its last report at or before s — with
 * aligned evaluations (the usual case) that is exactly the value at s, and otherwise the
 * comparison leans towards keeping the trial (earlier values are higher losses).
 *
 * Both pruners are stateless functions of the study's trials, so any worker can decide for its
 * trial from what the storage holds, with no coordination.
 */
import { median } from './math.js';
import type { Intermediate, PrunerSettings, TrialRecord } from './types.js';

export interface PruneContext {
  /** The trial being decided: its intermediates so far, the newest last. */
  trial: { number: number; intermediates: readonly Intermediate[] };
  /** All other trials of the study (any state). */
  others: readonly TrialRecord[];
}

export interface Pruner {
  shouldPrune(ctx: PruneContext): boolean;
}

/** A trial's last reported value at a resource ≤ step, or null when it had not got that far. */
export function valueAtOrBefore(intermediates: readonly Intermediate[], step: number): number | null {
  let best: Intermediate | null = null;
  for (const r of intermediates) if (r.step <= step && (best === null || r.step > best.step)) best = r;
  return best ? best.value : null;
}

function latest(intermediates: readonly Intermediate[]): Intermediate | null {
  let out: Intermediate | null = null;
  for (const r of intermediates) if (out === null || r.step > out.step) out = r;
  return out;
}

export class NopPruner implements Pruner {
  shouldPrune(): boolean {
    return false;
  }
}

/**
 * Optuna's MedianPruner: after nStartupTrials complete trials and from nWarmupSteps on, prune when
 * the trial's best value so far is worse than the median of the complete trials' values at the
 * same step. Only complete trials vote: a pruned trial's curve stops early and would drag the
 * median of later steps towards the survivors.
 */
export class MedianPruner implements Pruner {
  constructor(
    readonly nStartupTrials = 5,
    readonly nWarmupSteps = 0,
  ) {
    if (!Number.isInteger(nStartupTrials) || nStartupTrials < 0) throw new Error(`median pruner: nStartupTrials must be a non-negative integer, got ${nStartupTrials}`);
    if (!(nWarmupSteps >= 0)) throw new Error(`median pruner: nWarmupSteps must be ≥ 0, got ${nWarmupSteps}`);
  }

  shouldPrune({ trial, others }: PruneContext): boolean {
    const now = latest(trial.intermediates);
    if (now === null) return false;
    if (Number.isNaN(now.value)) return true;
    if (now.step < this.nWarmupSteps) return false;
    const complete = others.filter((t) => t.state === 'complete');
    if (complete.length < this.nStartupTrials) return false;
    const peers = complete.map((t) => valueAtOrBefore(t.intermediates, now.step)).filter((v): v is number => v !== null && Number.isFinite(v));
    if (peers.length === 0) return false;
    const bestSoFar = Math.min(...trial.intermediates.filter((r) => r.step <= now.step).map((r) => r.value));
    return bestSoFar > median(peers);
  }
}

/**
 * Asynchronous successive halving (Li et al. 2018), as Optuna's SuccessiveHalvingPruner: rung k
 * sits at minResource·η^(k + minEarlyStoppingRate). When a trial first reaches a rung, its value
 * there is ranked against every trial's value at that rung (complete, pruned or running — all
 * that got there); it continues only if it is in the top ⌊n/η⌋ (while fewer than η trials have
 * reached the rung, only the best so far continues).
 */
export class AshaPruner implements Pruner {
  constructor(
    readonly minResource: number,
    readonly reductionFactor = 3,
    readonly minEarlyStoppingRate = 0,
  ) {
    if (!(minResource > 0)) throw new Error(`asha pruner: minResource must be positive, got ${minResource}`);
    if (!(reductionFactor >= 2)) throw new Error(`asha pruner: reductionFactor must be ≥ 2, got ${reductionFactor}`);
    if (!Number.isInteger(minEarlyStoppingRate) || minEarlyStoppingRate < 0) throw new Error(`asha pruner: minEarlyStoppingRate must be a non-negative integer, got ${minEarlyStoppingRate}`);
  }

  rung(k: number): number {
    return this.minResource * this.reductionFactor ** (k + this.minEarlyStoppingRate);
  }

  /** A trial's value at a rung: its first report at or past the rung's resource. */
  static valueAtRung(intermediates: readonly Intermediate[], resource: number): number | null {
    let first: Intermediate | null = null;
    for (const r of intermediates) if (r.step >= resource && (first === null || r.step < first.step)) first = r;
    return first ? first.value : null;
  }

  shouldPrune({ trial, others }: PruneContext): boolean {
    const now = latest(trial.intermediates);
    if (now === null) return false;
    if (Number.isNaN(now.value)) return true;
    const previous = trial.intermediates.reduce((m, r) => (r.step < now.step ? Math.max(m, r.step) : m), -Infinity);
    // Decide at every rung crossed by this report (a sparse evaluation may cross several).
    for (let k = 0; this.rung(k) <= now.step; k++) {
      const resource = this.rung(k);
      if (resource <= previous) continue;
      const competing = others.map((t) => AshaPruner.valueAtRung(t.intermediates, resource)).filter((v): v is number => v !== null && Number.isFinite(v));
      competing.push(now.value);
      competing.sort((a, b) => a - b);
      const promotable = Math.max(0, Math.floor(competing.length / this.reductionFactor) - 1);
      if (now.value > competing[promotable]) return true;
    }
    return false;
  }
}

export function createPruner(settings: PrunerSettings): Pruner {
  switch (settings.type) {
    case 'none':
      return new NopPruner();
    case 'median':
      return new MedianPruner(settings.nStartupTrials, settings.nWarmupSteps);
    case 'asha':
      return new AshaPruner(settings.minResource, settings.reductionFactor, settings.minEarlyStoppingRate);
  }
}
