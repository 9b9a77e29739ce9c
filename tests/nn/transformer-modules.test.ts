/**
 * Behaviour of the transformer modules beyond the golden values: shapes of MHA/GQA/MQA, the KV
 * cache of a single attention layer, BatchNorm's running statistics and modes, padding rows,
 * dropout in train vs eval, and the errors.
 */
import { describe, expect, it } from 'vitest';
import { Generator, nn, noGrad, randn, tensor, zeros, type Tensor } from '../../src/index.js';

const gen = new Generator(77);
const maxDiff = (a: Tensor, b: Tensor) => {
  const x = a.toArray();
  const y = b.toArray();
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

describe('Embedding', () => {
  it('zero-initialises the padding row, accepts a negative paddingIdx, and maps ids to rows', () => {
    const e = new nn.Embedding(5, 3, { paddingIdx: -1, generator: gen });
    expect(e.paddingIdx).toBe(4);
    expect(e.weight.select(0, 4).toArray()).toEqual([0, 0, 0]);
    const out = e.forward(tensor([[4, 1]], { dtype: 'int32' }));
    expect(out.shape).toEqual([1, 2, 3]);
    expect(out.select(1, 1).toArray()).toEqual(e.weight.select(0, 1).toArray());
    expect(() => new nn.Embedding(5, 3, { paddingIdx: 5 })).toThrow(/paddingIdx/);
  });
});

describe('LayerNorm / RMSNorm', () => {
  it('have the parameters their options ask for', () => {
    expect(new nn.LayerNorm(4).namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    expect(new nn.LayerNorm(4, { bias: false }).namedParameters().map(([n]) => n)).toEqual(['weight']);
    expect(new nn.LayerNorm(4, { elementwiseAffine: false }).numParameters()).toBe(0);
    expect(new nn.RMSNorm(4).namedParameters().map(([n]) => n)).toEqual(['weight']);
    expect(new nn.RMSNorm([2, 4]).weight?.shape).toEqual([2, 4]);
  });

  it('RMSNorm output rows have unit RMS before the gain', () => {
    const y = new nn.RMSNorm(8, { eps: 0 }).forward(randn([3, 8], { generator: gen }).mul(5));
    const rms = y.square().mean(-1).sqrt().toArray();
    for (const v of rms) expect(v).toBeCloseTo(1, 5);
  });
});

describe('BatchNorm1d', () => {
  it('normalises with batch statistics in training and running statistics in eval', () => {
    const bn = new nn.BatchNorm1d(2, { momentum: 0.5 });
    const x = tensor([[1, 10], [3, 20], [5, 30]]);
    const y = bn.forward(x);
    const mean = y.mean(0).toArray();
    for (const v of mean) expect(Math.abs(v)).toBeLessThan(1e-6);
    // running mean = 0.5·0 + 0.5·[3, 20]; running var = 0.5·1 + 0.5·unbiased var [4, 100]
    expect(bn.runningMean?.toArray()).toEqual([1.5, 10]);
    expect(bn.runningVar?.toArray()).toEqual([2.5, 50.5]);
    expect(bn.numBatchesTracked?.item()).toBe(1);
    bn.eval();
    const z = bn.forward(tensor([[1.5, 10]]));
    for (const v of z.toArray()) expect(Math.abs(v)).toBeLessThan(1e-6);
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias', 'runningMean', 'runningVar', 'numBatchesTracked']);
  });

  it('handles [N, C, L], cumulative averages, and reports bad inputs', () => {
    const bn = new nn.BatchNorm1d(3, { momentum: null });
    bn.forward(randn([4, 3, 5], { generator: gen }));
    bn.forward(randn([4, 3, 5], { generator: gen }));
    expect(bn.numBatchesTracked?.item()).toBe(2);
    expect(() => bn.forward(randn([4, 2]))).toThrow(/2 channels .* expected 3/);
    expect(() => bn.forward(randn([4, 3, 2, 2]))).toThrow(/2-D \[N, C\] or 3-D/);
    expect(() => bn.forward(randn([1, 3]))).toThrow(/more than 1 value per channel/);
    const free = new nn.BatchNorm1d(3, { trackRunningStats: false, affine: false });
    expect(free.numParameters()).toBe(0);
    free.eval();
    expect(free.forward(randn([4, 3], { generator: gen })).shape).toEqual([4, 3]);
  });
});

describe('GLU and feed-forward layers', () => {
  it('GLU halves the dim and checks it is even', () => {
    expect(new nn.GLU().forward(randn([2, 6])).shape).toEqual([2, 3]);
    expect(new nn.GLU(0).forward(randn([4, 5])).shape).toEqual([2, 5]);
    expect(() => new nn.GLU().forward(randn([2, 5]))).toThrow(/must be even/);
  });

  it('SwiGLU has w1, w3 (gate/up) and w2 (down); FeedForward w1, w2', () => {
    const s = new nn.SwiGLU(4, 6);
    expect(s.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`)).toEqual(['w1.weight:6x4', 'w3.weight:6x4', 'w2.weight:4x6']);
    const f = new nn.FeedForward(4, 6);
    expect(f.namedParameters().map(([n]) => n)).toEqual(['w1.weight', 'w1.bias', 'w2.weight', 'w2.bias']);
    expect(s.forward(randn([2, 3, 4])).shape).toEqual([2, 3, 4]);
  });
});

describe('MultiHeadAttention', () => {
  for (const [label, h, kv] of [['MHA', 4, 4], ['GQA', 4, 2], ['MQA', 4, 1]] as const) {
    it(`${label}: projection shapes and output shape`, () => {
      const m = new nn.MultiHeadAttention(16, h, { nKvHeads: kv, bias: false, generator: gen });
      expect(m.wq.weight.shape).toEqual([16, 16]);
      expect(m.wk.weight.shape).toEqual([kv * 4, 16]);
      expect(m.wv.weight.shape).toEqual([kv * 4, 16]);
      expect(m.wo.weight.shape).toEqual([16, 16]);
      expect(m.forward(randn([2, 5, 16], { generator: gen })).shape).toEqual([2, 5, 16]);
    });
  }

  it('GQA equals MHA with each key/value head repeated for its group', () => {
    const gqa = new nn.MultiHeadAttention(8, 4, { nKvHeads: 2, generator: gen });
    const mha = new nn.MultiHeadAttention(8, 4, { nKvHeads: 4, generator: gen });
    // Head h of MHA uses kv head ⌊h/2⌋ of GQA: repeat each 2-row block (head dim 2) twice.
    const repeat = (w: Tensor) => {
      const blocks = [0, 0, 1, 1].map((kvh) => w.narrow(0, kvh * 2, 2));
      return blocks.reduce((acc, b) => (acc ? tensor(Float32Array.from([...acc.toArray(), ...b.toArray()]), { shape: [acc.shape[0] + 2, ...b.shape.slice(1)] }) : b.contiguous()), null as Tensor | null) as Tensor;
    };
    noGrad(() => {
      for (const name of ['wq', 'wo'] as const) {
        mha[name].weight.copy_(gqa[name].weight);
        mha[name].bias?.copy_(gqa[name].bias as Tensor);
      }
      for (const name of ['wk', 'wv'] as const) {
        mha[name].weight.copy_(repeat(gqa[name].weight));
        mha[name].bias?.copy_(repeat((gqa[name].bias as Tensor).reshape([4, 1])).reshape([8]));
      }
    });
    const x = randn([2, 5, 8], { generator: gen });
    expect(maxDiff(gqa.forward(x), mha.forward(x))).toBeLessThan(1e-5);
  });

  it('decoding token by token with its KV cache equals the full forward (GQA + RoPE)', () => {
    const rope = new nn.RotaryEmbedding(4, 16);
    const m = new nn.MultiHeadAttention(16, 4, { nKvHeads: 2, rope, generator: gen });
    const x = randn([2, 7, 16], { generator: gen });
    const full = noGrad(() => m.forward(x));
    const cache = m.createCache(2, 16);
    noGrad(() => {
      // a prefill of 3 tokens, then one at a time
      const first = m.forward(x.narrow(1, 0, 3), { cache });
      expect(maxDiff(first, full.narrow(1, 0, 3))).toBeLessThan(1e-5);
      for (let t = 3; t < 7; t++) {
        const y = m.forward(x.narrow(1, t, 1), { cache });
        expect(maxDiff(y, full.narrow(1, t, 1))).toBeLessThan(1e-5);
      }
    });
    expect(cache.length).toBe(7);
  });

  it('the cache is inference only, bounded, and must fit the input', () => {
    const m = new nn.MultiHeadAttention(8, 2, { generator: gen });
    const cache = m.createCache(1, 4);
    expect(() => m.forward(randn([1, 2, 8]), { cache })).toThrow(/inference only; run it inside noGrad/);
    noGrad(() => m.forward(randn([1, 3, 8]), { cache }));
    expect(() => noGrad(() => m.forward(randn([1, 2, 8]), { cache }))).toThrow(/exceed the cache length 4/);
    expect(() => noGrad(() => m.forward(randn([2, 1, 8]), { cache: m.createCache(1, 4) }))).toThrow(/does not fit input batch 2/);
  });

  it('a lower-triangular bool mask equals causal attention; other masks change the result', () => {
    const m = new nn.MultiHeadAttention(8, 4, { nKvHeads: 2, causal: false, generator: gen });
    const c = new nn.MultiHeadAttention(8, 4, { nKvHeads: 2, causal: true, generator: gen });
    c.loadStateDict(m.stateDict());
    const x = randn([2, 5, 8], { generator: gen });
    const tri = tensor(Array.from({ length: 5 }, (_, i) => Array.from({ length: 5 }, (_, j) => j <= i)));
    expect(maxDiff(m.forward(x, { mask: tri }), c.forward(x))).toBeLessThan(1e-5);
    const perHead = tri.reshape([1, 1, 5, 5]).expand([2, 4, 5, 5]);
    expect(maxDiff(m.forward(x, { mask: perHead }), c.forward(x))).toBeLessThan(1e-5);
    expect(maxDiff(m.forward(x), c.forward(x))).toBeGreaterThan(1e-3);
    expect(() => m.forward(x, { mask: tri.reshape([1, 5, 5]) })).toThrow(/mask must be/);
  });

  it('with RoPE too: a causal bool mask gives the same result as the causal fast path', () => {
    const rope = new nn.RotaryEmbedding(2, 8);
    const m = new nn.MultiHeadAttention(8, 4, { nKvHeads: 1, rope, generator: gen });
    const x = randn([1, 5, 8], { generator: gen });
    const tri = tensor(Array.from({ length: 5 }, (_, i) => Array.from({ length: 5 }, (_, j) => j <= i)));
    expect(maxDiff(m.forward(x, { mask: tri }), m.forward(x))).toBeLessThan(1e-5);
  });

  it('rejects bad head configurations', () => {
    expect(() => new nn.MultiHeadAttention(250, 8)).toThrow('dModel 250 is not divisible by nHeads 8');
    expect(() => new nn.MultiHeadAttention(64, 8, { nKvHeads: 3 })).toThrow('nHeads 8 not divisible by nKvHeads 3');
    expect(() => new nn.MultiHeadAttention(64, 8).forward(randn([2, 3, 32]))).toThrow(/input must be \[B, T, 64\]/);
  });
});

describe('TransformerBlock', () => {
  it('pre-norm and post-norm blocks have the same parameters and differ in output', () => {
    const opts = { dModel: 8, nHeads: 2, dFF: 16, generator: new Generator(5) };
    const pre = new nn.TransformerBlock(opts);
    const post = new nn.TransformerBlock({ ...opts, normPlacement: 'post', generator: new Generator(5) });
    expect(pre.namedParameters().map(([n]) => n)).toEqual(post.namedParameters().map(([n]) => n));
    const x = randn([1, 4, 8], { generator: gen });
    expect(maxDiff(pre.forward(x), post.forward(x))).toBeGreaterThan(1e-3);
    // post-norm output rows are normalised (LayerNorm with weight 1, bias 0)
    const y = post.forward(x);
    for (const v of y.mean(-1).toArray()) expect(Math.abs(v)).toBeLessThan(1e-5);
  });

  it('dropout is active in training and off in eval', () => {
    const b = new nn.TransformerBlock({ dModel: 8, nHeads: 2, dropout: 0.5, generator: gen, dropoutGenerator: new Generator(1) });
    const x = randn([1, 4, 8], { generator: gen });
    const a1 = b.forward(x);
    const a2 = b.forward(x);
    expect(maxDiff(a1, a2)).toBeGreaterThan(1e-4);
    b.eval();
    expect(maxDiff(b.forward(x), b.forward(x))).toBe(0);
  });
});

describe('positional encodings', () => {
  it('sinusoidal table values and offsets', () => {
    const pe = nn.sinusoidalTable(3, 4);
    const row = pe.select(0, 2).toArray();
    expect(row[0]).toBeCloseTo(Math.sin(2), 6);
    expect(row[1]).toBeCloseTo(Math.cos(2), 6);
    expect(row[2]).toBeCloseTo(Math.sin(2 / 100), 6);
    const enc = new nn.SinusoidalPositionalEncoding(6, 4);
    expect(enc.numParameters()).toBe(0);
    expect(Object.keys(enc.stateDict())).toEqual([]);
    expect(enc.forward(zeros([1, 2, 4]), 1).select(1, 1).toArray()).toEqual(enc.pe.select(0, 2).toArray());
    expect(() => enc.forward(zeros([1, 3, 4]), 4)).toThrow(/do not fit maxSeqLen 6/);
  });
});
