/** The time-budget planner (train/planner.ts) on a fake clock: plans, re-plans, resumes. */
import { describe, expect, it } from 'vitest';
import { CALIBRATION_START_STEP, EVAL_FIXED_COST_STEPS, FORWARD_SHARE_OF_STEP, MAX_PLAN_STEP, MIN_PLAN_STEP, PLAN_TIME_SHARE, REPLAN_TIME_SHARE, TimeBudgetPlanner } from '../../src/train/planner.js';

const options = { maxTime: 100, maxSteps: 100_000, warmupSteps: 50, evalInterval: 100, evalIters: 10 };

/** Runs steps of `secondsPerStep` each from `from` to `to`; returns every plan the planner announced. */
function drive(p: TimeBudgetPlanner, from: number, to: number, secondsPerStep: (step: number) => number, clock: { now: number }): { step: number; planned: number }[] {
  const plans: { step: number; planned: number }[] = [];
  for (let step = from + 1; step <= to; step++) {
    clock.now += secondsPerStep(step);
    const planned = p.afterStep(step, clock.now, clock.now);
    if (planned !== null) plans.push({ step, planned });
  }
  return plans;
}

describe('TimeBudgetPlanner', () => {
  it('plans at the end of warmup from the speed measured after the first steps, counting evaluations', () => {
    const clock = { now: 0 };
    const p = new TimeBudgetPlanner(options, null, 0, 0);
    expect(p.planned).toBe(false);
    const plans = drive(p, 0, 50, (s) => (s <= CALIBRATION_START_STEP ? 0.5 : 0.1), clock);
    expect(plans).toHaveLength(1);
    expect(plans[0].step).toBe(50);
    // 40 steps of 0.1 s measured; evaluations add 2·evalIters forward passes (a third of a step each) per interval.
    const evalCost = (2 * options.evalIters * FORWARD_SHARE_OF_STEP) / options.evalInterval + EVAL_FIXED_COST_STEPS / options.evalInterval;
    const perStep = (clock.now - (CALIBRATION_START_STEP * 0.5)) / (50 - CALIBRATION_START_STEP);
    expect(plans[0].planned).toBe(50 + Math.floor((PLAN_TIME_SHARE * (options.maxTime - clock.now)) / (perStep * (1 + evalCost))));
    expect(p.planned).toBe(true);
  });

  it('plans no earlier than MIN_PLAN_STEP and no later than MAX_PLAN_STEP', () => {
    for (const [warmupSteps, at] of [[0, MIN_PLAN_STEP], [1000, MAX_PLAN_STEP]]) {
      const plans = drive(new TimeBudgetPlanner({ ...options, warmupSteps }, null, 0, 0), 0, 200, () => 0.01, { now: 0 });
      expect(plans[0].step).toBe(at);
    }
  });

  it('re-plans at evaluations after a slowdown, so the schedule still ends inside the budget', () => {
    const clock = { now: 0 };
    const p = new TimeBudgetPlanner(options, null, 0, 0);
    const first = drive(p, 0, 50, () => 0.1, clock)[0].planned;
    const replans = drive(p, 50, 300, (s) => (s > 100 ? 0.3 : 0.1), clock);
    expect(replans.every((r) => r.step % options.evalInterval === 0)).toBe(true);
    expect(replans.at(-1)!.planned).toBeLessThan(first);
    // At the last re-plan: steps left × the speed since the plan fit in the share of the time left.
    const last = replans.at(-1)!;
    const perStep = (clock.now - 50 * 0.1) / (last.step - 50);
    expect(last.planned).toBe(last.step + Math.floor((REPLAN_TIME_SHARE * (options.maxTime - clock.now)) / perStep));
  });

  it('a resumed run keeps its plan and only re-plans; never below the next step, never above maxSteps', () => {
    const p = new TimeBudgetPlanner(options, 700, 500, 0);
    expect(p.planned).toBe(true);
    expect(p.plannedSteps).toBe(700);
    const clock = { now: 0 };
    expect(drive(p, 500, 599, () => 0.01, clock)).toEqual([]);
    // Over budget already: the plan ends at the next step.
    expect(p.afterStep(600, clock.now, 1000)).toBe(601);
    const q = new TimeBudgetPlanner({ ...options, maxSteps: 60 }, null, 0, 0);
    expect(drive(q, 0, 50, () => 0.001, { now: 0 })[0].planned).toBe(60);
    // Reaching the plan at an evaluation ends the run: no step is added past it (nor past maxSteps).
    const r = new TimeBudgetPlanner({ ...options, maxSteps: 200 }, 200, 0, 0);
    expect(r.afterStep(200, 1, 1)).toBeNull();
    expect(r.plannedSteps).toBe(200);
    const late = new TimeBudgetPlanner({ ...options, maxSteps: 100 }, 100, 0, 0);
    expect(late.afterStep(100, 1, 1e6)).toBeNull();
  });
});
