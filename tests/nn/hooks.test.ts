/**
 * Forward hooks and pre-hooks on Module (src/nn/module.ts): call order, removal, output and input
 * replacement, the unwrapped forward when no hook is left, hooks on the submodules of a
 * TransformerLM, and MultiHeadAttention's attnDropout hook point for the attention probabilities.
 */
import { describe, expect, it } from 'vitest';
import { Generator, nn, noGrad, randint, randn, tensor, TransformerLM, zeros, type Tensor } from '../../src/index.js';

const { Module, Linear, MultiHeadAttention } = nn;

/** Doubles its input and logs each forward call, so the log shows where forward ran among the hooks. */
class Probe extends Module {
  constructor(readonly log: string[]) {
    super();
  }

  forward(x: Tensor): Tensor {
    this.log.push('forward');
    return x.mul(2);
  }
}

const hasOwnForward = (m: object): boolean => Object.prototype.hasOwnProperty.call(m, 'forward');

describe('forward hooks', () => {
  it('runs the pre-hooks, forward, then the hooks, each kind in registration order, with the module and its arguments', () => {
    const log: string[] = [];
    const m = new Probe(log);
    const x = tensor([1, 2, 3]);
    m.registerForwardPreHook((module, inputs) => {
      expect(module).toBe(m);
      expect(inputs[0]).toBe(x);
      log.push('pre 1');
    });
    m.registerForwardHook((module, [input], output) => {
      expect(module).toBe(m);
      expect(input).toBe(x);
      expect(output.toArray()).toEqual([2, 4, 6]);
      log.push('hook 1');
    });
    m.registerForwardPreHook(() => {
      log.push('pre 2');
    });
    m.registerForwardHook(() => {
      log.push('hook 2');
    });
    expect(m.forward(x).toArray()).toEqual([2, 4, 6]);
    expect(log).toEqual(['pre 1', 'pre 2', 'forward', 'hook 1', 'hook 2']);
  });

  it('remove() unregisters one hook, twice is harmless, and removing the last one unwraps forward', () => {
    const m = new Probe([]);
    const x = tensor([1]);
    expect(m.hasForwardHooks()).toBe(false);
    expect(hasOwnForward(m)).toBe(false);
    const counts = { a: 0, shared: 0, pre: 0 };
    const a = m.registerForwardHook(() => {
      counts.a++;
    });
    const shared = () => {
      counts.shared++;
    };
    const s1 = m.registerForwardHook(shared);
    const s2 = m.registerForwardHook(shared); // the same function twice is two hooks
    const pre = m.registerForwardPreHook(() => {
      counts.pre++;
    });
    expect(m.hasForwardHooks()).toBe(true);
    // The wrapper is not a field: registration, state dicts and printing do not see it.
    expect(Object.keys(m)).not.toContain('forward');
    expect(m.toString()).toBe('Probe()');
    m.forward(x);
    expect(counts).toEqual({ a: 1, shared: 2, pre: 1 });
    s1.remove();
    s1.remove();
    m.forward(x);
    expect(counts).toEqual({ a: 2, shared: 3, pre: 2 });
    a.remove();
    s2.remove();
    expect(m.hasForwardHooks()).toBe(true); // the pre-hook is left
    m.forward(x);
    expect(counts).toEqual({ a: 2, shared: 3, pre: 3 });
    pre.remove();
    expect(m.hasForwardHooks()).toBe(false);
    expect(hasOwnForward(m)).toBe(false);
    expect(m.forward).toBe(Probe.prototype.forward);
    m.forward(x);
    expect(counts).toEqual({ a: 2, shared: 3, pre: 3 });
    // A stale handle does not remove a hook registered after it.
    m.registerForwardHook(() => {
      counts.a++;
    });
    pre.remove();
    m.forward(x);
    expect(counts.a).toBe(3);
  });

  it('a hook added or removed by a hook takes effect from the next call', () => {
    const m = new Probe([]);
    const fired: string[] = [];
    const first = m.registerForwardHook(() => {
      fired.push('first');
      first.remove();
      m.registerForwardHook(() => {
        fired.push('added');
      });
    });
    m.registerForwardHook(() => {
      fired.push('second');
    });
    m.forward(tensor([1]));
    expect(fired).toEqual(['first', 'second']);
    m.forward(tensor([1]));
    expect(fired).toEqual(['first', 'second', 'second', 'added']);
  });

  it('a hook that returns a value replaces the output, for later hooks and for autograd', () => {
    const lin = new Linear(3, 2, { generator: new Generator(1) });
    const x = randn([4, 3], { generator: new Generator(2) });
    const plain = lin.forward(x);
    plain.sum().backward();
    const plainGrad = (lin.weight.grad as Tensor).toArray();
    lin.zeroGrad();

    let seen: Tensor | null = null;
    lin.registerForwardHook((_lin, _inputs, y) => y.mul(2));
    lin.registerForwardHook(() => undefined);
    lin.registerForwardHook((_lin, _inputs, y) => {
      seen = y;
    });
    const y = lin.forward(x);
    expect(seen).toBe(y);
    expect(y.toArray()).toEqual(plain.mul(2).toArray());
    y.sum().backward();
    expect((lin.weight.grad as Tensor).toArray()).toEqual(plainGrad.map((g) => 2 * g));
  });

  it('a pre-hook that returns an array replaces the arguments, for forward and the later hooks', () => {
    const lin = new Linear(3, 2, { generator: new Generator(1) });
    const x = randn([4, 3], { generator: new Generator(2) });
    let seenInput: Tensor | null = null;
    lin.registerForwardPreHook((_lin, [input]) => [zeros(input.shape)]);
    lin.registerForwardHook((_lin, [input]) => {
      seenInput = input;
    });
    const y = lin.forward(x);
    expect((seenInput as unknown as Tensor).toArray()).toEqual(new Array(12).fill(0));
    // 0·Wᵀ + b: every row is the bias.
    const bias = (lin.bias as Tensor).toArray();
    expect(y.toArray()).toEqual([...bias, ...bias, ...bias, ...bias]);
  });

  it('a pre-hook can replace the optional arguments of a multi-argument forward', () => {
    const attn = new MultiHeadAttention(8, 2, { causal: false, generator: new Generator(5) });
    const x = randn([1, 3, 8], { generator: new Generator(6) });
    const mask = tensor([
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ]);
    const masked = noGrad(() => attn.forward(x, { mask }));
    const handle = attn.registerForwardPreHook((_attn, [input]) => [input, { mask }]);
    const hooked = noGrad(() => attn.forward(x));
    handle.remove();
    expect(hooked.toArray()).toEqual(masked.toArray());
    expect(noGrad(() => attn.forward(x)).toArray()).not.toEqual(masked.toArray());
  });

  it('rejects a non-function hook and a pre-hook result that is not an argument array', () => {
    const lin = new Linear(3, 2);
    expect(() => lin.registerForwardHook(null as unknown as nn.ForwardHook<[Tensor], Tensor, typeof lin>)).toThrow('registerForwardHook: hook must be a function, got object');
    lin.registerForwardPreHook(((_lin: unknown, [x]: [Tensor]) => x) as unknown as nn.ForwardPreHook<[Tensor], typeof lin>);
    expect(() => lin.forward(randn([1, 3]))).toThrow('Linear: a forward pre-hook must return the inputs as an array (e.g. [x]) or nothing, got object');
  });
});

describe('hooks inside a TransformerLM', () => {
  const config = { vocabSize: 11, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: 8, pos: 'learned', tieWeights: false } as const;

  it('fire on every submodule in forward order and change nothing when they return nothing', () => {
    const model = new TransformerLM(config, { generator: new Generator(3) });
    const ids = randint(0, 11, [2, 6], { generator: new Generator(4) });
    const before = noGrad(() => model.forward(ids)).logits.toArray();
    const fired: string[] = [];
    const handles = model.namedModules().map(([name, m]) =>
      m.registerForwardHook(() => {
        fired.push(name);
      }),
    );
    const hooked = noGrad(() => model.forward(ids)).logits.toArray();
    const block = (i: number) =>
      ['attnNorm', 'attn.wq', 'attn.wk', 'attn.wv', 'attn.attnDropout', 'attn.wo', 'attn', 'dropout', 'ffnNorm', 'ffn.w1', 'ffn.w2', 'ffn', 'dropout'].map((n) => `layers.${i}.${n}`).concat(`layers.${i}`);
    // A hook fires when its module's forward returns, so children come before their parent.
    expect(fired).toEqual(['tokEmb', 'posEmb', 'drop', ...block(0), ...block(1), 'norm', 'head', '']);
    // Every module fired except the ModuleList, which has no forward.
    expect(new Set(fired)).toEqual(new Set(model.namedModules().map(([name]) => name).filter((name) => name !== 'layers')));
    expect(hooked).toEqual(before);
    for (const h of handles) h.remove();
    for (const [name, m] of model.namedModules()) expect(hasOwnForward(m), name).toBe(false);
    expect(noGrad(() => model.forward(ids)).logits.toArray()).toEqual(before);
  });

  it('observing the attention probabilities in training mode gives the same dropout draws and outputs', () => {
    const model = new TransformerLM({ ...config, dropout: 0.2 }, { generator: new Generator(3), dropoutGenerator: new Generator(9) });
    const ids = randint(0, 11, [2, 6], { generator: new Generator(4) });
    const dropGen = new Generator(9);
    const run = () => {
      // The same dropout stream for both runs.
      const m = new TransformerLM({ ...config, dropout: 0.2 }, { generator: new Generator(3), dropoutGenerator: dropGen });
      m.loadStateDict(model.stateDict());
      return m;
    };
    const state = dropGen.getState();
    const plain = run();
    const unhooked = plain.forward(ids).logits.toArray();
    dropGen.setState(state);
    const observed = run();
    const probs: number[][] = [];
    for (let i = 0; i < observed.layers.length; i++) {
      observed.block(i).attn.attnDropout.registerForwardHook((_d, [p], out) => {
        expect(out).not.toBe(p); // training mode: the output is the dropped-out probabilities
        probs.push(p.toArray());
      });
    }
    expect(observed.forward(ids).logits.toArray()).toEqual(unhooked);
    expect(probs.length).toBe(2);
    // [B, H, T, T] causal probabilities: rows sum to 1.
    for (const p of probs) {
      expect(p.length).toBe(2 * 4 * 6 * 6);
      for (let r = 0; r < p.length / 6; r++) expect(Math.abs(p.slice(r * 6, r * 6 + 6).reduce((s, v) => s + v, 0) - 1)).toBeLessThan(1e-5);
    }
  });
});

describe('MultiHeadAttention.attnDropout', () => {
  const x = randn([2, 3, 8], { generator: new Generator(6) });
  const mask = tensor([
    [true, false, true],
    [true, true, false],
    [false, true, true],
  ]);

  it('sees the probabilities of a masked forward, which then matches the unhooked one', () => {
    const attn = new MultiHeadAttention(8, 4, { nKvHeads: 2, generator: new Generator(5) });
    const unhooked = noGrad(() => attn.forward(x, { mask })).toArray();
    let probs: Tensor | null = null;
    attn.attnDropout.registerForwardHook((_d, [p]) => {
      probs = p;
    });
    const hooked = noGrad(() => attn.forward(x, { mask })).toArray();
    // The hooked path scales q rather than the scores: equal up to rounding.
    expect(Math.max(...hooked.map((v, i) => Math.abs(v - unhooked[i])))).toBeLessThan(1e-6);
    const p = probs as unknown as Tensor;
    expect(p.shape).toEqual([2, 4, 3, 3]);
    const rows = p.toArray();
    const allowed = mask.toArray();
    for (let r = 0; r < rows.length / 3; r++) {
      const row = rows.slice(r * 3, r * 3 + 3);
      row.forEach((v, j) => (allowed[(r % 3) * 3 + j] ? expect(v).toBeGreaterThan(0) : expect(v).toBe(0)));
      expect(Math.abs(row.reduce((s, v) => s + v, 0) - 1)).toBeLessThan(1e-6);
    }
  });

  it('a hook returning other probabilities changes the output, and a wrong shape is an error', () => {
    const attn = new MultiHeadAttention(8, 4, { nKvHeads: 2, generator: new Generator(5) });
    const handle = attn.attnDropout.registerForwardHook((_d, [p]) => p.mul(0));
    // Zero probabilities: the heads output 0, so y = wo(0) = wo's bias at every position.
    const y = noGrad(() => attn.forward(x)).toArray();
    const bias = (attn.wo.bias as Tensor).toArray();
    y.forEach((v, i) => expect(v).toBeCloseTo(bias[i % 8], 6));
    handle.remove();
    attn.attnDropout.registerForwardHook((_d, [p]) => p.sum(-1));
    expect(() => noGrad(() => attn.forward(x))).toThrow('MultiHeadAttention: attnDropout returned [2, 4, 3], expected the probabilities\' shape [2, 4, 3, 3]');
  });
});
