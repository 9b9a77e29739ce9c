/**
 * The time-budget planner of `tensorlm train --max-time`: how many steps fit in the budget, so
 * that the cosine schedule decays to its floor just as time runs out.
 *
 * It measures the speed over the first steps after the JIT has warmed up, plans the total step
 * count from it (counting the time evaluations will take), and re-plans at every evaluation from
 * the speed since the plan: the machine may be shared, and a slowdown must not leave the run
 * cut off mid-decay. A plan is stored in checkpoints (as `plannedSteps`), so a resumed run keeps
 * its schedule and only re-plans.
 */

/** Steps before the speed measurement starts: the first steps run cold (JIT, buffer pool filling). */
export const CALIBRATION_START_STEP = 10;
/** The plan is made at the end of warmup (the cosine horizon is not used before then), but no earlier than this… */
export const MIN_PLAN_STEP = 13;
/** …and no later than this, so a long warmup does not leave the run unplanned for long. */
export const MAX_PLAN_STEP = 110;
/**
 * Share of the remaining time the first plan fills. The rest covers what the plan does not model:
 * the final evaluation, the last checkpoint and the planning error of a short measurement.
 */
export const PLAN_TIME_SHARE = 0.97;
/** Share of the remaining time a re-plan fills: its speed includes evaluations, so less slack is needed. */
export const REPLAN_TIME_SHARE = 0.98;
/**
 * An evaluation costs about 2·evalIters forward passes (train and val splits); a forward pass
 * takes about a third of a training step (forward + backward ≈ 3 forwards) …
 */
export const FORWARD_SHARE_OF_STEP = 1 / 3;
/** … plus a fixed cost per evaluation (sampling the text, saving the checkpoints), in steps. */
export const EVAL_FIXED_COST_STEPS = 0.15;

export interface PlannerOptions {
  /** The budget in seconds for the whole run (including time before a resume). */
  maxTime: number;
  /** The plan never exceeds this many steps. */
  maxSteps: number;
  warmupSteps: number;
  evalInterval: number;
  evalIters: number;
}

/**
 * Feed it every finished step (`afterStep`); it answers with a new planned step count when it
 * makes or changes a plan, and null otherwise. Times are in seconds of the run's clock.
 */
export class TimeBudgetPlanner {
  readonly #options: PlannerOptions;
  /** Steps this process has run (the calibration counts from them, not from a resumed step). */
  #done = 0;
  #calibrationStart = 0;
  #planAt: number;
  /** Where the current plan was made: re-plans measure the speed since then. */
  #planStart: { time: number; step: number } | null;
  plannedSteps: number;

  /**
   * `plannedSteps`: an existing plan (from a checkpoint), or null to plan from the measured speed.
   * `now`: the run's clock at the start of this process's steps.
   */
  constructor(options: PlannerOptions, plannedSteps: number | null, startStep: number, now: number) {
    this.#options = options;
    this.#planAt = Math.max(MIN_PLAN_STEP, Math.min(options.warmupSteps, MAX_PLAN_STEP));
    this.plannedSteps = plannedSteps ?? options.maxSteps;
    this.#planStart = plannedSteps !== null ? { time: now, step: startStep } : null;
  }

  get planned(): boolean {
    return this.#planStart !== null;
  }

  /** After step `step` (the count of steps taken) finished at `now`; `elapsed` is the run's seconds so far. */
  afterStep(step: number, now: number, elapsed: number): number | null {
    const o = this.#options;
    this.#done++;
    if (this.#planStart === null) {
      if (this.#done === CALIBRATION_START_STEP) this.#calibrationStart = now;
      if (this.#done !== this.#planAt) return null;
      const perStep = (now - this.#calibrationStart) / (this.#planAt - CALIBRATION_START_STEP);
      const evalCost = (2 * o.evalIters * FORWARD_SHARE_OF_STEP) / o.evalInterval + EVAL_FIXED_COST_STEPS / o.evalInterval;
      const remaining = o.maxTime - elapsed;
      this.plannedSteps = Math.min(o.maxSteps, Math.max(step + 1, step + Math.floor((PLAN_TIME_SHARE * remaining) / (perStep * (1 + evalCost)))));
      this.#planStart = { time: now, step };
      return this.plannedSteps;
    }
    // A run at its last step is over: re-planning it would add a step (past maxSteps, even).
    if (step % o.evalInterval !== 0 || step <= this.#planStart.step || step >= this.plannedSteps) return null;
    const perStep = (now - this.#planStart.time) / (step - this.#planStart.step);
    const remaining = o.maxTime - elapsed;
    const replanned = Math.min(o.maxSteps, Math.max(step + 1, step + Math.floor((REPLAN_TIME_SHARE * remaining) / perStep)));
    if (replanned === this.plannedSteps) return null;
    this.plannedSteps = replanned;
    return replanned;
  }
}
