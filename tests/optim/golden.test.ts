/** Optimizers, clipGradNorm and LR schedules against PyTorch (tests/golden/optim.json). */
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/index.js';
import {
  Adam,
  AdamW,
  clipGradNorm,
  CosineAnnealingLR,
  LambdaLR,
  LinearLR,
  SGD,
  StepLR,
  WarmupCosineLR,
  warmupCosineLr,
  type AnyOptimizer,
  type LRScheduler,
  type Optimizer,
} from '../../src/optim/index.js';
import { expectClose, fromGolden, loadGolden, type GoldenTensor } from '../helpers/golden.js';

interface OptimizerCase {
  name: string;
  optimizer: 'SGD' | 'Adam' | 'AdamW';
  options: Record<string, number | boolean | number[]>;
  params: GoldenTensor[];
  grads: GoldenTensor[][];
  trajectory: GoldenTensor[][];
}

interface ClipCase {
  name: string;
  grads: GoldenTensor[];
  maxNorm: number;
  normType: 2 | 'inf';
  totalNorm: number;
  clipped: GoldenTensor[];
}

interface ScheduleCase {
  name: string;
  schedule: 'StepLR' | 'CosineAnnealingLR' | 'LinearLR' | 'warmupCosine';
  baseLr: number;
  options: Record<string, number>;
  lrs: number[];
}

const golden = loadGolden<{ optimizers: OptimizerCase[]; clipGradNorm: ClipCase[]; schedules: ScheduleCase[] }>('optim.json');

function leaf(g: GoldenTensor, requiresGrad = true): Tensor {
  return fromGolden(g, requiresGrad).leaf;
}

function makeOptimizer(c: OptimizerCase, params: Tensor[]): Optimizer<{ lr: number }> {
  const o = c.options;
  if (c.optimizer === 'SGD') {
    return new SGD(params, {
      lr: o.lr as number,
      momentum: o.momentum as number,
      dampening: o.dampening as number,
      nesterov: o.nesterov as boolean,
      weightDecay: o.weightDecay as number,
    });
  }
  const options = {
    lr: o.lr as number,
    betas: [(o.betas as number[])[0], (o.betas as number[])[1]] as const,
    eps: o.eps as number,
    weightDecay: o.weightDecay as number,
    amsgrad: o.amsgrad as boolean,
  };
  return c.optimizer === 'Adam' ? new Adam(params, options) : new AdamW(params, options);
}

describe('optimizer trajectories (PyTorch, foreach=False)', () => {
  it('covers every optimizer kind', () => {
    expect(new Set(golden.optimizers.map((c) => c.optimizer))).toEqual(new Set(['SGD', 'Adam', 'AdamW']));
  });

  for (const c of golden.optimizers) {
    it(c.name, () => {
      const params = c.params.map((g) => leaf(g));
      const opt = makeOptimizer(c, params);
      c.grads.forEach((stepGrads, k) => {
        params.forEach((p, i) => (p.grad = leaf(stepGrads[i], false)));
        opt.step();
        params.forEach((p, i) => expectClose(p, c.trajectory[k][i], `${c.name} step ${k + 1} param ${i}`, 1e-5, 1e-6));
      });
    });
  }
});

describe('clipGradNorm (PyTorch clip_grad_norm_)', () => {
  for (const c of golden.clipGradNorm) {
    it(c.name, () => {
      const params = c.grads.map((g) => {
        const p = leaf(g).zerosLike().requiresGrad_();
        p.grad = leaf(g, false);
        return p;
      });
      const total = clipGradNorm(params, c.maxNorm, c.normType);
      expect(Math.abs(total - c.totalNorm)).toBeLessThanOrEqual(1e-6 * Math.abs(c.totalNorm));
      params.forEach((p, i) => expectClose(p.grad as Tensor, c.clipped[i], `${c.name} grad ${i}`, 1e-5, 1e-6));
    });
  }
});

function makeScheduler(c: ScheduleCase, opt: AnyOptimizer): LRScheduler {
  const o = c.options;
  switch (c.schedule) {
    case 'StepLR':
      return new StepLR(opt, { stepSize: o.stepSize, gamma: o.gamma });
    case 'CosineAnnealingLR':
      return new CosineAnnealingLR(opt, { tMax: o.tMax, etaMin: o.etaMin });
    case 'LinearLR':
      return new LinearLR(opt, { startFactor: o.startFactor, endFactor: o.endFactor, totalIters: o.totalIters });
    case 'warmupCosine':
      return new WarmupCosineLR(opt, { warmupSteps: o.warmupSteps, maxSteps: o.maxSteps, minLr: o.minLr });
  }
}

/** The lr each optimizer step used: read before the step, scheduler.step() after, as the generator did. */
function runSchedule(opt: AnyOptimizer, sched: LRScheduler, steps: number): number[] {
  const p = opt.paramGroups[0].params[0];
  const lrs: number[] = [];
  for (let k = 0; k < steps; k++) {
    lrs.push(opt.paramGroups[0].lr);
    expect(sched.getLastLr()).toEqual([opt.paramGroups[0].lr]);
    p.grad = p.zerosLike();
    opt.step();
    sched.step();
  }
  return lrs;
}

function expectLrsClose(actual: number[], expected: number[], label: string): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((lr, k) => {
    const tol = 1e-6 * Math.abs(expected[k]) + 1e-12;
    if (!(Math.abs(lr - expected[k]) <= tol)) expect.fail(`${label}: lr at step ${k} is ${lr}, expected ${expected[k]}`);
  });
}

describe('LR schedules (PyTorch lr_scheduler)', () => {
  for (const c of golden.schedules) {
    it(c.name, () => {
      const p = new Tensor(new Float32Array(1), [1]).requiresGrad_();
      const opt = new SGD([p], { lr: c.baseLr });
      const sched = makeScheduler(c, opt);
      expectLrsClose(runSchedule(opt, sched, c.lrs.length), c.lrs, c.name);
    });
  }

  it('warmupCosine golden case also matches LambdaLR with warmupCosineLr / baseLr (how torch produced it)', () => {
    const c = golden.schedules.find((s) => s.schedule === 'warmupCosine') as ScheduleCase;
    const p = new Tensor(new Float32Array(1), [1]).requiresGrad_();
    const opt = new SGD([p], { lr: c.baseLr });
    const o = { baseLr: c.baseLr, warmupSteps: c.options.warmupSteps, maxSteps: c.options.maxSteps, minLr: c.options.minLr };
    const sched = new LambdaLR(opt, (it) => warmupCosineLr(it, o) / c.baseLr);
    expectLrsClose(runSchedule(opt, sched, c.lrs.length), c.lrs, c.name);
    expectLrsClose(
      c.lrs.map((_, it) => warmupCosineLr(it, o)),
      c.lrs,
      `${c.name} (pure function)`,
    );
  });
});
