/** The optimizer contract beyond the golden trajectories: validation, groups, grads, state dicts, training. */
import { afterEach, describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/index.js';
import { registerBackend, setBackend } from '../../src/backends/registry.js';
import type { AdamStepArgs, SgdStepArgs } from '../../src/backends/kernels.js';
import { adamStep, sgdStep } from '../../src/backends/js/fused.js';
import { Adam, AdamW, SGD, type Optimizer, type OptimizerStateDict, type StateValue } from '../../src/optim/index.js';

function param(values: number[], shape: number[] = [values.length]): Tensor {
  return T.tensor(Float32Array.from(values), { shape, requiresGrad: true });
}

function grad(values: number[], shape: number[] = [values.length]): Tensor {
  return T.tensor(Float32Array.from(values), { shape });
}

/** Deterministic pseudo-gradients, different per step and parameter. */
function fakeGrad(p: Tensor, step: number, salt: number): Tensor {
  const g = new Float32Array(p.size);
  for (let i = 0; i < g.length; i++) g[i] = Math.sin(1.3 * i + 0.7 * step + salt) * (1 + 0.1 * salt);
  return T.tensor(g, { shape: p.shape });
}

function train(opt: Optimizer<{ lr: number }>, params: Tensor[], fromStep: number, steps: number): void {
  for (let k = fromStep; k < fromStep + steps; k++) {
    params.forEach((p, i) => (p.grad = fakeGrad(p, k, i)));
    opt.step();
  }
}

describe('option validation', () => {
  const p = () => [param([1, 2])];

  it('SGD', () => {
    expect(() => new SGD(p(), { lr: -0.1 })).toThrow('SGD: invalid learning rate -0.1');
    expect(() => new SGD(p(), { lr: NaN })).toThrow('SGD: invalid learning rate NaN');
    expect(() => new SGD(p(), { lr: 0.1, momentum: -0.5 })).toThrow('SGD: invalid momentum value -0.5');
    expect(() => new SGD(p(), { lr: 0.1, weightDecay: -1 })).toThrow('SGD: invalid weightDecay value -1');
    expect(() => new SGD(p(), { lr: 0.1, nesterov: true })).toThrow('SGD: nesterov momentum requires a momentum > 0 and zero dampening');
    expect(() => new SGD(p(), { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/nesterov momentum requires/);
    expect(() => new SGD(p(), { lr: 0.1, momentum: 0.9, nesterov: true })).not.toThrow();
  });

  it('Adam and AdamW', () => {
    expect(() => new Adam(p(), { betas: [1.5, 0.9] })).toThrow('Adam: invalid beta parameter at index 0: 1.5');
    expect(() => new Adam(p(), { betas: [0.9, 1] })).toThrow('Adam: invalid beta parameter at index 1: 1');
    expect(() => new AdamW(p(), { betas: [0.9, -0.1] })).toThrow('AdamW: invalid beta parameter at index 1: -0.1');
    expect(() => new Adam(p(), { lr: -1 })).toThrow('Adam: invalid learning rate -1');
    expect(() => new AdamW(p(), { eps: -1e-8 })).toThrow('AdamW: invalid epsilon value -1e-8');
    expect(() => new Adam(p(), { weightDecay: -0.1 })).toThrow('Adam: invalid weightDecay value -0.1');
  });

  it('per-group overrides are validated too', () => {
    expect(() => new SGD([{ params: p() }, { params: p(), lr: -2 }], { lr: 0.1 })).toThrow('SGD: invalid learning rate -2');
    const opt = new Adam([{ params: p() }]);
    expect(() => opt.addParamGroup({ params: p(), betas: [0.9, 2] })).toThrow('Adam: invalid beta parameter at index 1: 2');
    expect(opt.paramGroups).toHaveLength(1);
  });

  it('defaults match torch', () => {
    const adam = new Adam(p());
    expect(adam.defaults).toEqual({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false });
    expect(new AdamW(p()).defaults.weightDecay).toBe(1e-2);
    expect(new SGD(p(), { lr: 0.5 }).defaults).toEqual({ lr: 0.5, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false });
    // An explicit undefined means "the default", not "unset".
    expect(new Adam(p(), { lr: undefined }).paramGroups[0].lr).toBe(1e-3);
  });
});

describe('parameters', () => {
  it('must be contiguous float32 leaves that require grad', () => {
    expect(() => new SGD([], { lr: 0.1 })).toThrow('SGD: optimizer got an empty parameter list');
    expect(() => new SGD([grad([1, 2])], { lr: 0.1 })).toThrow('SGD: parameter 0 does not require grad');
    const x = param([1, 2]);
    expect(() => new SGD([x.mul(2)], { lr: 0.1 })).toThrow(/SGD: parameter 0 is not a leaf tensor \(it was computed by mul\)/);
    expect(() => new Adam([T.tensor([1, 2], { dtype: 'int32' })])).toThrow('Adam: parameter 0 has dtype int32');
    const strided = new Tensor(new Float32Array(6), [3, 2], [1, 3]).requiresGrad_();
    expect(() => new Adam([strided])).toThrow(/Adam: parameter 0 \(shape \[3, 2\]\) is not contiguous/);
    expect(() => new SGD([x, x], { lr: 0.1 })).toThrow(/appears more than once/);
    expect(() => new SGD([{ params: [x] }, { params: [x] }], { lr: 0.1 })).toThrow(/parameter 0 of group 1 appears more than once/);
    expect(() => new SGD([{ params: [x] }, x] as never, { lr: 0.1 })).toThrow(/all tensors or all param groups/);
    expect(() => new SGD([{ params: x }] as never, { lr: 0.1 })).toThrow(/not a single tensor/);
    expect(() => new SGD(x as never, { lr: 0.1 })).toThrow(/not a single tensor/);
    expect(() => new SGD([{ params: [x] }, { params: [grad([1])] }], { lr: 0.1 })).toThrow('SGD: parameter 0 of group 1 does not require grad');
  });

  it('accepts any iterable, e.g. a generator or a Set', () => {
    const a = param([1]);
    const b = param([2]);
    function* gen(): Generator<Tensor> {
      yield a;
      yield b;
    }
    expect(new SGD(gen(), { lr: 0.1 }).paramGroups[0].params).toEqual([a, b]);
    expect(new SGD(new Set([a, b]), { lr: 0.1 }).paramGroups[0].params).toEqual([a, b]);
  });
});

describe('param groups', () => {
  it('each group has its own hyperparameters, defaults filling the rest', () => {
    const a = param([1, 1]);
    const b = param([1, 1]);
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.01, momentum: 0.5 }], { lr: 0.1 });
    expect(opt.paramGroups[0]).toMatchObject({ lr: 0.1, momentum: 0 });
    expect(opt.paramGroups[1]).toMatchObject({ lr: 0.01, momentum: 0.5 });
    a.grad = grad([1, 1]);
    b.grad = grad([1, 1]);
    opt.step();
    expect(a.toArray()).toEqual([Math.fround(0.9), Math.fround(0.9)]);
    expect(b.toArray()).toEqual([Math.fround(0.99), Math.fround(0.99)]);
    // Changing a group's lr (what schedules do) takes effect on the next step.
    opt.paramGroups[0].lr = 0;
    opt.step();
    expect(a.toArray()).toEqual([Math.fround(0.9), Math.fround(0.9)]);
  });

  it('groups do not share the defaults\' betas array', () => {
    const opt = new Adam([{ params: [param([1])] }, { params: [param([1])] }]);
    expect(opt.paramGroups[0].betas).not.toBe(opt.paramGroups[1].betas);
    expect(Object.isFrozen(opt.defaults)).toBe(true);
  });

  it('addParamGroup adds parameters later (e.g. unfreezing)', () => {
    const a = param([1]);
    const b = param([1]);
    const opt = new AdamW([a], { lr: 0.1 });
    opt.addParamGroup({ params: [b], weightDecay: 0 });
    expect(opt.paramGroups[1]).toMatchObject({ lr: 0.1, weightDecay: 0 });
    expect(() => opt.addParamGroup({ params: [a] })).toThrow(/appears more than once/);
  });
});

describe('zeroGrad and step', () => {
  it('zeroGrad sets grads to null, or zeroes them in place', () => {
    const a = param([1, 2]);
    const b = param([3]);
    const opt = new SGD([a, b], { lr: 0.1 });
    a.grad = grad([5, 6]);
    const g = a.grad;
    opt.zeroGrad(false);
    expect(a.grad).toBe(g);
    expect(g.toArray()).toEqual([0, 0]);
    expect(b.grad).toBeNull();
    opt.zeroGrad();
    expect(a.grad).toBeNull();
  });

  it('a parameter whose grad is null is skipped and gets no state', () => {
    for (const make of [(ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 }), (ps: Tensor[]) => new Adam(ps, { lr: 0.1 })]) {
      const a = param([1, 2]);
      const b = param([3, 4]);
      const opt = make([a, b]);
      a.grad = grad([1, 1]);
      opt.step();
      expect(b.toArray()).toEqual([3, 4]);
      expect(opt.state.has(b)).toBe(false);
      expect(opt.state.has(a)).toBe(true);
      expect(a.toArray()[0]).toBeLessThan(1);
    }
  });

  it('updates the parameter storage in place, respecting its offset', () => {
    const storage = Float32Array.from([10, 20, 1, 2, 3, 30]);
    const p = new Tensor(storage, [3], undefined, 2).requiresGrad_();
    const view = p.detach(); // shares storage: sees the update
    const opt = new SGD([p], { lr: 0.5 });
    p.grad = grad([2, 2, 2]);
    opt.step();
    expect(Array.from(storage)).toEqual([10, 20, 0, 1, 2, 30]);
    expect(view.toArray()).toEqual([0, 1, 2]);
  });

  it('runs without recording a graph, and the params stay leaves', () => {
    const p = param([1, 2]);
    const opt = new Adam([p]);
    p.grad = grad([1, 1]);
    opt.step();
    expect(p.isLeaf).toBe(true);
    expect(p.gradFn).toBeNull();
    expect(T.isGradEnabled()).toBe(true);
  });

  it('reads a non-contiguous gradient correctly', () => {
    const base = grad([1, 2, 3, 4, 5, 6], [3, 2]);
    const a = param([0, 0, 0, 0, 0, 0], [2, 3]);
    const b = param([0, 0, 0, 0, 0, 0], [2, 3]);
    const optA = new Adam([a], { lr: 0.1 });
    const optB = new Adam([b], { lr: 0.1 });
    a.grad = base.transpose(0, 1);
    b.grad = base.transpose(0, 1).contiguous();
    expect(a.grad.isContiguous).toBe(false);
    optA.step();
    optB.step();
    expect(a.toArray()).toEqual(b.toArray());
  });

  it('rejects a gradient of the wrong shape or dtype', () => {
    const p = param([1, 2, 3]);
    const opt = new SGD([p], { lr: 0.1 });
    p.grad = grad([1, 2]);
    expect(() => opt.step()).toThrow('SGD: gradient of shape [2] does not match its parameter\'s shape [3]');
    p.grad = T.tensor([1, 2, 3], { dtype: 'int32' });
    expect(() => opt.step()).toThrow('SGD: gradient has dtype int32, expected float32');
  });

  it('AdamW decays decoupled from the gradient: with a zero gradient only the decay moves the param', () => {
    const a = param([2]);
    const b = param([2]);
    const adamw = new AdamW([a], { lr: 0.1, weightDecay: 0.5 });
    const adam = new Adam([b], { lr: 0.1, weightDecay: 0.5 });
    a.grad = grad([0]);
    b.grad = grad([0]);
    adamw.step();
    adam.step();
    expect(a.item()).toBeCloseTo(2 * (1 - 0.1 * 0.5), 6); // p·(1 − lr·wd), then a zero Adam step
    expect(b.item()).toBeCloseTo(2 - 0.1, 5); // L2: g = wd·p = 1, so a full lr-sized Adam step
  });

  it('calls the optimizer kernels through the active backend table', () => {
    const calls: string[] = [];
    registerBackend({
      name: 'optim-spy',
      priority: -1,
      kernels: {
        sgdStep: (args: SgdStepArgs) => (calls.push('sgd'), sgdStep(args)),
        adamStep: (args: AdamStepArgs) => (calls.push('adam'), adamStep(args)),
      },
    });
    setBackend('optim-spy');
    try {
      const p = param([1]);
      const sgd = new SGD([p], { lr: 0.1 });
      const adam = new Adam([p]);
      p.grad = grad([1]);
      sgd.step();
      adam.step();
    } finally {
      setBackend('js');
    }
    expect(calls).toEqual(['sgd', 'adam']);
  });
});

describe('stateDict / loadStateDict', () => {
  const makers: [string, (ps: Tensor[]) => Optimizer<{ lr: number }>][] = [
    ['SGD momentum nesterov', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
    ['Adam amsgrad', (ps) => new Adam(ps, { lr: 0.01, amsgrad: true, weightDecay: 0.1 })],
    ['AdamW two groups', (ps) => new AdamW([{ params: [ps[0]] }, { params: [ps[1]], lr: 0.003, weightDecay: 0 }], { lr: 0.01 })],
  ];

  for (const [label, make] of makers) {
    it(`resumes exactly: ${label}`, () => {
      const params = [param([0.5, -1, 2, 0.25, 3, -2], [2, 3]), param([1, -1, 0.5])];
      const opt = make(params);
      train(opt, params, 0, 5);
      const saved = opt.stateDict();

      const clones = params.map((p) => p.detach().clone().requiresGrad_());
      const resumed = make(clones);
      resumed.loadStateDict(saved);
      train(opt, params, 5, 5);
      train(resumed, clones, 5, 5);
      params.forEach((p, i) => expect(clones[i].toArray()).toEqual(p.toArray()));
      expect(resumed.stateDict()).toEqual(opt.stateDict());
    });
  }

  it('uses torch\'s layout: state keyed by parameter index, groups list indices; values are plain or Float32Array', () => {
    const a = param([1, 2]);
    const b = param([3]);
    const c = param([4, 5, 6]);
    const opt = new Adam([{ params: [a, b] }, { params: [c], lr: 0.1 }], { amsgrad: true });
    a.grad = grad([1, 1]);
    c.grad = grad([1, 1, 1]);
    opt.step();
    const sd = opt.stateDict();
    expect(sd.paramGroups).toEqual([
      { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: true, params: [0, 1] },
      { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: true, params: [2] },
    ]);
    expect(Object.keys(sd.state)).toEqual(['0', '2']);
    expect(sd.state[2].step).toBe(1);
    expect(sd.state[2].expAvg).toBeInstanceOf(Float32Array);
    expect((sd.state[2].expAvg as Float32Array).length).toBe(3);
    // A JSON round trip (buffers as number arrays) rebuilds an equivalent dict.
    const json = JSON.stringify(sd, (_k, v: unknown) => (v instanceof Float32Array ? { f32: Array.from(v) } : v));
    const back = JSON.parse(json, (_k, v: unknown) =>
      v !== null && typeof v === 'object' && 'f32' in v ? Float32Array.from((v as { f32: number[] }).f32) : v,
    ) as OptimizerStateDict;
    expect(back).toEqual(sd);
  });

  it('a taken state dict is a snapshot: later steps do not change it', () => {
    const p = param([1, 2]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
    p.grad = grad([1, 1]);
    opt.step();
    const sd = opt.stateDict();
    const before = Array.from(sd.state[0].momentumBuffer as Float32Array);
    opt.step();
    expect(Array.from(sd.state[0].momentumBuffer as Float32Array)).toEqual(before);
  });

  it('restores group hyperparameters (e.g. an lr a schedule changed)', () => {
    const p = param([1]);
    const opt = new SGD([p], { lr: 0.1 });
    opt.paramGroups[0].lr = 0.025;
    opt.paramGroups[0].initialLr = 0.1;
    const fresh = new SGD([param([1])], { lr: 0.1 });
    fresh.loadStateDict(opt.stateDict());
    expect(fresh.paramGroups[0]).toMatchObject({ lr: 0.025, initialLr: 0.1 });
  });

  it('rejects mismatched groups, parameter counts and buffers, leaving the optimizer unchanged', () => {
    const p = param([1, 2]);
    const q = param([3]);
    const opt = new Adam([p, q]);
    p.grad = grad([1, 1]);
    q.grad = grad([1]);
    opt.step();
    const sd = opt.stateDict();

    const twoGroups = new Adam([{ params: [param([1, 2])] }, { params: [param([3])] }]);
    expect(() => twoGroups.loadStateDict(sd)).toThrow('Adam: loaded state dict has 1 parameter groups, the optimizer has 2');
    const oneParam = new Adam([param([1, 2])]);
    expect(() => oneParam.loadStateDict(sd)).toThrow("Adam: loaded state dict's group 0 has 2 parameters, the optimizer's group 0 has 1");

    const swapped = new Adam([param([3]), param([1, 2])]);
    expect(() => swapped.loadStateDict(sd)).toThrow("Adam: loaded state of parameter 0: 'expAvg' has 2 elements, the parameter has 1");
    expect(swapped.state.size).toBe(0);

    const target = new Adam([param([1, 2]), param([3])]);
    const bad = (state: Record<string, StateValue>): OptimizerStateDict => ({ ...sd, state: { ...sd.state, 1: state } });
    expect(() => target.loadStateDict(bad({ ...sd.state[1], step: -1 }))).toThrow('Adam: loaded state of parameter 1 has an invalid step -1');
    expect(() => target.loadStateDict(bad({ step: 1, expAvgSq: new Float32Array(1), maxExpAvgSq: null }))).toThrow(
      "Adam: loaded state of parameter 1 has no Float32Array 'expAvg'",
    );
    expect(() => target.loadStateDict({ ...sd, state: { 5: sd.state[0] } })).toThrow('Adam: loaded state dict has state for parameter 5, which no group lists');
    expect(() => target.loadStateDict({ ...sd, paramGroups: [{ ...sd.paramGroups[0], lr: -1 }] })).toThrow('Adam: invalid learning rate -1');
    expect(target.state.size).toBe(0);
    expect(target.paramGroups[0].lr).toBe(1e-3);

    const sgd = new SGD([param([1, 2]), param([3])], { lr: 0.1, momentum: 0.9 });
    expect(() => sgd.loadStateDict({ paramGroups: sd.paramGroups, state: { 0: { momentumBuffer: new Float32Array(3) } } })).toThrow(
      "SGD: loaded state of parameter 0: 'momentumBuffer' has 3 elements, the parameter has 2",
    );
  });

  it('loaded buffers are copies: the dict can be loaded twice', () => {
    const p = param([1, 2]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
    p.grad = grad([1, 1]);
    opt.step();
    const sd = opt.stateDict();
    const other = new SGD([param([1, 2])], { lr: 0.1, momentum: 0.9 });
    other.loadStateDict(sd);
    expect(other.state.values().next().value?.momentumBuffer).not.toBe(sd.state[0].momentumBuffer);
  });
});

describe('training end to end', () => {
  afterEach(() => T.manualSeed(0));

  it('AdamW fits a linear least-squares problem through tensor ops and backward', () => {
    const gen = new T.Generator(1234);
    const x = T.randn([32, 4], { generator: gen });
    const wTrue = T.tensor([[1.5], [-2], [0.5], [3]]);
    const y = x.matmul(wTrue).add(0.25);
    const w = T.zeros([4, 1], { requiresGrad: true });
    const b = T.zeros([1], { requiresGrad: true });
    const opt = new AdamW([{ params: [w] }, { params: [b], weightDecay: 0 }], { lr: 0.05, weightDecay: 1e-4 });
    const loss = (): Tensor => x.matmul(w).add(b).sub(y).square().mean();
    const first = loss().item();
    let last = first;
    for (let k = 0; k < 400; k++) {
      opt.zeroGrad();
      const l = loss();
      l.backward();
      opt.step();
      last = l.item();
    }
    expect(first).toBeGreaterThan(5);
    expect(last).toBeLessThan(1e-3);
    w.toArray().forEach((v, i) => expect(v).toBeCloseTo(wTrue.toArray()[i], 1));
  });
});
