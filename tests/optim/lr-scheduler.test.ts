/** LR schedules beyond the golden cases: groups, resuming, the nanoGPT function, validation. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import {
  Adam,
  CosineAnnealingLR,
  LambdaLR,
  LinearLR,
  LRScheduler,
  SGD,
  StepLR,
  WarmupCosineLR,
  warmupCosineLr,
  type AnyOptimizer,
} from '../../src/optim/index.js';

const p = () => T.zeros([2], { requiresGrad: true });

function lrsOver(opt: AnyOptimizer, sched: LRScheduler, steps: number): number[][] {
  const out: number[][] = [];
  for (let k = 0; k < steps; k++) {
    out.push(opt.paramGroups.map((g) => g.lr));
    sched.step();
  }
  return out;
}

describe('warmupCosineLr (nanoGPT get_lr)', () => {
  const o = { baseLr: 6e-4, warmupSteps: 10, maxSteps: 100, minLr: 6e-5 };
  it('warms up linearly, decays along the cosine, then stays at minLr', () => {
    expect(warmupCosineLr(0, o)).toBeCloseTo((6e-4 * 1) / 11, 15);
    expect(warmupCosineLr(9, o)).toBeCloseTo((6e-4 * 10) / 11, 15);
    expect(warmupCosineLr(10, o)).toBe(6e-4);
    expect(warmupCosineLr(55, o)).toBeCloseTo((6e-4 + 6e-5) / 2, 15);
    expect(warmupCosineLr(100, o)).toBeCloseTo(6e-5, 15);
    expect(warmupCosineLr(101, o)).toBe(6e-5);
    expect(warmupCosineLr(10_000, o)).toBe(6e-5);
  });
});

describe('LRScheduler', () => {
  it('sets lr at construction (epoch 0) and records initialLr on every group', () => {
    const opt = new SGD([{ params: [p()] }, { params: [p()], lr: 0.01 }], { lr: 0.1 });
    const sched = new LinearLR(opt, { startFactor: 0.5, totalIters: 2 });
    expect(sched.lastEpoch).toBe(0);
    expect(opt.paramGroups.map((g) => g.initialLr)).toEqual([0.1, 0.01]);
    expect(sched.baseLrs).toEqual([0.1, 0.01]);
    expect(sched.getLastLr()).toEqual([0.05, 0.005]);
    const expected = [
      [0.05, 0.005],
      [0.075, 0.0075],
      [0.1, 0.01],
      [0.1, 0.01],
    ];
    lrsOver(opt, sched, 4).forEach((lrs, k) => lrs.forEach((lr, i) => expect(lr).toBeCloseTo(expected[k][i], 15)));
  });

  it('keeps the ratio between groups (μP-style per-group rates) for every schedule', () => {
    const makers: ((o: AnyOptimizer) => LRScheduler)[] = [
      (o) => new StepLR(o, { stepSize: 3 }),
      (o) => new CosineAnnealingLR(o, { tMax: 7 }),
      (o) => new LinearLR(o),
      (o) => new LambdaLR(o, (e) => 1 / (e + 1)),
      (o) => new WarmupCosineLR(o, { warmupSteps: 2, maxSteps: 8, minLr: [0.01, 0.0025] }),
    ];
    for (const make of makers) {
      const opt = new Adam([{ params: [p()], lr: 0.1 }, { params: [p()], lr: 0.025 }]);
      for (const [a, b] of lrsOver(opt, make(opt), 12)) {
        if (a === 0) expect(b).toBe(0); // the cosine's trough with etaMin 0
        else expect(b / a).toBeCloseTo(0.25, 12);
      }
    }
  });

  it('StepLR defaults to gamma 0.1; LinearLR to 1/3 → 1 over 5; CosineAnnealingLR keeps following the cosine past tMax', () => {
    const o1 = new SGD([p()], { lr: 1 });
    expect(lrsOver(o1, new StepLR(o1, { stepSize: 2 }), 5).flat()).toEqual([1, 1, 0.1, 0.1, 0.1 ** 2]);
    const o2 = new SGD([p()], { lr: 0.3 });
    const linear = lrsOver(o2, new LinearLR(o2), 7).flat();
    expect(linear[0]).toBeCloseTo(0.1, 15);
    expect(linear[5]).toBeCloseTo(0.3, 15);
    expect(linear[6]).toBeCloseTo(0.3, 15);
    const o3 = new SGD([p()], { lr: 1 });
    const cos = lrsOver(o3, new CosineAnnealingLR(o3, { tMax: 4, etaMin: 0.2 }), 9).flat();
    expect(cos[4]).toBeCloseTo(0.2, 15);
    expect(cos[6]).toBeCloseTo(cos[2], 15);
    expect(cos[8]).toBeCloseTo(1, 15);
  });

  it('LambdaLR takes one lambda per group too', () => {
    const opt = new SGD([{ params: [p()] }, { params: [p()] }], { lr: 1 });
    const sched = new LambdaLR(opt, [(e) => e + 1, (e) => 0.5 ** e]);
    expect(lrsOver(opt, sched, 3)).toEqual([
      [1, 1],
      [2, 0.5],
      [3, 0.25],
    ]);
    expect(() => new LambdaLR(opt, [(e) => e])).toThrow('LambdaLR: expected 2 lrLambdas (one per param group), got 1');
  });

  it('a second scheduler starts from the groups\' initialLr, not the lr the first one set', () => {
    const opt = new SGD([p()], { lr: 1 });
    new LinearLR(opt, { startFactor: 0.5 });
    expect(opt.paramGroups[0].lr).toBe(0.5);
    const second = new StepLR(opt, { stepSize: 1, gamma: 0.5 });
    expect(second.baseLrs).toEqual([1]);
    expect(opt.paramGroups[0].lr).toBe(1);
  });

  it('resumes from state dicts: the optimizer\'s (lr, initialLr) and the scheduler\'s (epoch)', () => {
    const make = () => {
      const opt = new SGD([{ params: [p()] }, { params: [p()], lr: 0.05 }], { lr: 0.2, momentum: 0.9 });
      return { opt, sched: new WarmupCosineLR(opt, { warmupSteps: 3, maxSteps: 20, minLr: [0.02, 0.005] }) };
    };
    const a = make();
    lrsOver(a.opt, a.sched, 7);
    const optState = a.opt.stateDict();
    const schedState = a.sched.stateDict();
    expect(schedState).toEqual({ lastEpoch: 7, baseLrs: [0.2, 0.05], lastLr: a.opt.paramGroups.map((g) => g.lr) });

    // The usual order: build both, then load both.
    const b = make();
    b.opt.loadStateDict(optState);
    b.sched.loadStateDict(schedState);
    expect(b.sched.getLastLr()).toEqual(a.sched.getLastLr());
    expect(lrsOver(b.opt, b.sched, 10)).toEqual(lrsOver(a.opt, a.sched, 10));

    // torch's other way: load the optimizer, then construct the scheduler with lastEpoch.
    const c = make().opt;
    c.loadStateDict(a.opt.stateDict());
    const cs = new WarmupCosineLR(c, { warmupSteps: 3, maxSteps: 20, minLr: [0.02, 0.005], lastEpoch: a.sched.lastEpoch - 1 });
    expect(cs.lastEpoch).toBe(a.sched.lastEpoch);
    expect(c.paramGroups.map((g) => g.lr)).toEqual(a.opt.paramGroups.map((g) => g.lr));
  });

  it('validates options and state', () => {
    const opt = new SGD([p()], { lr: 0.1 });
    expect(() => new StepLR(opt, { stepSize: 0 })).toThrow('StepLR: invalid stepSize 0');
    expect(() => new CosineAnnealingLR(opt, { tMax: 0 })).toThrow('CosineAnnealingLR: invalid tMax 0');
    expect(() => new LinearLR(opt, { startFactor: 0 })).toThrow('LinearLR: invalid startFactor 0');
    expect(() => new LinearLR(opt, { endFactor: 1.5 })).toThrow('LinearLR: invalid endFactor 1.5');
    expect(() => new WarmupCosineLR(opt, { warmupSteps: 5, maxSteps: 5, minLr: 0 })).toThrow('WarmupCosineLR: invalid maxSteps 5');
    expect(() => new WarmupCosineLR(opt, { warmupSteps: 1, maxSteps: 5, minLr: [0, 0] })).toThrow('WarmupCosineLR: expected 1 minLr values');
    expect(() => new WarmupCosineLR(opt, { warmupSteps: 1, maxSteps: 5, minLr: -1 })).toThrow('WarmupCosineLR: invalid minLr -1');
    const fresh = new SGD([p()], { lr: 0.1 });
    expect(() => new StepLR(fresh, { stepSize: 2, lastEpoch: 3 })).toThrow(/StepLR: paramGroups\[0\] has no initialLr/);
    const sched = new StepLR(opt, { stepSize: 2 });
    expect(() => sched.loadStateDict({ lastEpoch: 1, baseLrs: [0.1, 0.2], lastLr: [] })).toThrow('StepLR: loaded state dict has 2 base lrs, the optimizer has 1 param groups');
    opt.addParamGroup({ params: [p()] });
    expect(() => sched.step()).toThrow('StepLR: the optimizer has 2 param groups, the scheduler was made for 1');
  });

  it('a custom schedule is an LRScheduler with an lr function', () => {
    const opt = new SGD([p()], { lr: 0.1 });
    const sched = new LRScheduler(opt, (epoch, base) => base / Math.sqrt(epoch + 1));
    expect(lrsOver(opt, sched, 3).flat()).toEqual([0.1, 0.1 / Math.SQRT2, 0.1 / Math.sqrt(3)]);
  });
});
