/**
 * The transformer ops (embedding with paddingIdx, the bias-fused linear, the attention softmax,
 * fused RoPE): finite-difference gradient checks, strided inputs, and RoPE's defining property —
 * rotated query·key products depend only on the relative position.
 */
import { describe, expect, it } from 'vitest';
import { embedding, F, Generator, nn, noGrad, randn, rotaryEmbedding, rotaryTables, tensor, type Tensor } from '../../src/index.js';
import { scaledDotProductAttention, scaledSoftmax } from '../../src/ops/attention.js';
import { linear } from '../../src/ops/linear.js';
import { gradcheck } from '../helpers/gradcheck.js';

const gen = new Generator(2024);

describe('embedding op', () => {
  it('gathers rows for ids of any shape', () => {
    const w = tensor([[0, 1], [10, 11], [20, 21]]);
    const out = embedding(w, tensor([[2, 0], [1, 1]], { dtype: 'int32' }));
    expect(out.shape).toEqual([2, 2, 2]);
    expect(out.toArray()).toEqual([20, 21, 0, 1, 10, 11, 10, 11]);
  });

  it('passes a finite-difference check, and the padding row gets no gradient', () => {
    const ids = tensor([[1, 2, 1], [0, 2, 3]], { dtype: 'int32' });
    gradcheck('embedding', (w) => embedding(w, ids), [randn([4, 3], { generator: gen })]);
    const w = randn([4, 3], { generator: gen }).requiresGrad_();
    embedding(w, ids, 2).sum().backward();
    const g = (w.grad as Tensor).tolist() as number[][];
    expect(g[2]).toEqual([0, 0, 0]);
    expect(g[1]).toEqual([2, 2, 2]);
    expect(g[0]).toEqual([1, 1, 1]);
  });

  it('rejects out-of-range ids and non-int ids', () => {
    const w = randn([4, 3]);
    expect(() => embedding(w, tensor([4], { dtype: 'int32' }))).toThrow(/index 4 is out of range for an embedding of 4 rows/);
    expect(() => embedding(w, tensor([1]))).toThrow(/int32/);
  });
});

describe('linear op (bias fused into the GEMM)', () => {
  it('equals x·Wᵀ + b for plain, transposed and strided operands', () => {
    const w = randn([5, 3], { generator: gen });
    const b = randn([5], { generator: gen });
    const x = randn([4, 3], { generator: gen });
    const ref = F.linear(x, w, b).toArray();
    const close = (t: Tensor) => t.toArray().forEach((v, i) => expect(v).toBeCloseTo(ref[i], 5));
    close(linear(x, w, b));
    close(linear(x.t().contiguous().t(), w.t().contiguous().t(), b)); // column-major views of both
    close(linear(randn([4, 6], { generator: new Generator(1) }).narrow(1, 0, 3).mul(0).add(x), w, b));
    expect(linear(x, w, null).toArray()).toEqual(F.linear(x, w).toArray());
    expect(() => linear(x, randn([5, 4]), b)).toThrow('linear: input last dim is 3, expected 4 (weight shape [5, 4])');
  });

  it('passes a finite-difference check for x, weight and bias', () => {
    gradcheck('linear', (x, w, b) => linear(x, w, b), [randn([4, 3], { generator: gen }), randn([5, 3], { generator: gen }), randn([5], { generator: gen })]);
    gradcheck('linear (transposed x)', (x, w, b) => linear(x.t(), w, b), [randn([3, 4], { generator: gen }), randn([2, 3], { generator: gen }), randn([2], { generator: gen })]);
  });
});

describe('scaledSoftmax op and groupedAttention', () => {
  it('equals softmax with the causal (offset) mask, and passes finite differences', () => {
    const x = randn([2, 3, 5], { generator: gen });
    const causalMask = tensor(Array.from({ length: 3 }, (_, i) => Array.from({ length: 5 }, (_, j) => j > i + 1)));
    const y = scaledSoftmax(x, 1, true, 1).toArray();
    const ref = x.maskedFill(causalMask, -Infinity).softmax(-1).toArray();
    y.forEach((v, i) => expect(v).toBeCloseTo(ref[i], 6));
    const y2 = scaledSoftmax(x, 0.5, true, 1).toArray();
    const ref2 = x.mul(0.5).maskedFill(causalMask, -Infinity).softmax(-1).toArray();
    y2.forEach((v, i) => expect(v).toBeCloseTo(ref2[i], 6));
    gradcheck('scaledSoftmax', (t) => scaledSoftmax(t, 1, true, 1), [randn([2, 3, 5], { generator: gen })]);
    gradcheck('scaledSoftmax (no mask)', (t) => scaledSoftmax(t, 1, false), [randn([2, 4], { generator: gen })]);
    gradcheck('scaledSoftmax (scale 0.5)', (t) => scaledSoftmax(t, 0.5, true), [randn([2, 3, 4], { generator: new Generator(7) })]);
  });

  it('groupedAttention equals scaledDotProductAttention with k/v repeated per query head', () => {
    const q = randn([2, 2, 3, 4, 8], { generator: gen }); // [B, Hkv, G, Tq, D]
    const k = randn([2, 2, 6, 8], { generator: gen });
    const v = randn([2, 2, 6, 8], { generator: gen });
    const out = nn.groupedAttention(q, k, v, { causal: true, causalOffset: 2 });
    const ref = scaledDotProductAttention(q, k.unsqueeze(2).expand([2, 2, 3, 6, 8]), v.unsqueeze(2).expand([2, 2, 3, 6, 8]), { isCausal: true, causalOffset: 2 });
    const r = ref.toArray();
    out.toArray().forEach((val, i) => expect(val).toBeCloseTo(r[i], 5));
    gradcheck('groupedAttention', (a, b, c) => nn.groupedAttention(a, b, c, { causal: true }), [randn([1, 2, 2, 3, 4], { generator: gen }), randn([1, 2, 3, 4], { generator: gen }), randn([1, 2, 3, 4], { generator: gen })]);
  });
});

describe('rotaryEmbedding op', () => {
  const { cos, sin } = rotaryTables(16, 6, 100);

  for (const pairing of ['half', 'interleaved'] as const) {
    it(`${pairing}: passes a finite-difference check at an offset`, () => {
      gradcheck(`rope ${pairing}`, (x) => rotaryEmbedding(x, cos, sin, { offset: 5, pairing }), [randn([2, 3, 4, 6], { generator: gen })]);
    });

    it(`${pairing}: reads strided views (heads split by transpose) like their contiguous copy`, () => {
      const base = randn([2, 4, 3, 6], { generator: gen }); // [B, T, H, D]
      const view = base.transpose(1, 2); // [B, H, T, D], non-contiguous
      const a = rotaryEmbedding(view, cos, sin, { offset: 2, pairing });
      const b = rotaryEmbedding(view.contiguous(), cos, sin, { offset: 2, pairing });
      expect(a.toArray()).toEqual(b.toArray());
    });

    it(`${pairing}: q·k after rotation depends only on the relative position (shift test)`, () => {
      const q = randn([6], { generator: gen });
      const k = randn([6], { generator: gen });
      const rot = (x: Tensor, p: number) => rotaryEmbedding(x.reshape([1, 6]), cos, sin, { offset: p, pairing }).reshape([6]);
      const dot = (m: number, n: number) => rot(q, m).mul(rot(k, n)).sum().item();
      for (const [m, n] of [[3, 1], [7, 2], [4, 4], [0, 5]]) {
        for (const shift of [1, 5, 8]) expect(dot(m + shift, n + shift)).toBeCloseTo(dot(m, n), 5);
      }
      // …and it does depend on it.
      expect(Math.abs(dot(3, 1) - dot(3, 2))).toBeGreaterThan(1e-3);
      // Position 0 is the identity; rotations keep the norm.
      expect(rot(q, 0).toArray()).toEqual(q.toArray());
      expect(rot(q, 9).square().sum().item()).toBeCloseTo(q.square().sum().item(), 5);
    });
  }

  it('folds a scale into the rotation', () => {
    const x = randn([2, 3, 6], { generator: gen });
    const a = rotaryEmbedding(x, cos, sin, { offset: 2, scale: 0.25 }).toArray();
    const b = rotaryEmbedding(x, cos, sin, { offset: 2 }).mul(0.25).toArray();
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 6));
    gradcheck('rope scaled', (t) => rotaryEmbedding(t, cos, sin, { offset: 1, scale: 0.5, pairing: 'interleaved' }), [randn([2, 2, 6], { generator: gen })]);
  });

  it('the two pairings are the same function up to a permutation of the features', () => {
    const x = randn([1, 3, 6], { generator: gen });
    // interleaved position 2i ↔ half position i, 2i+1 ↔ i + D/2
    const perm = [0, 3, 1, 4, 2, 5];
    const toHalf = (t: Tensor) => {
      const v = t.toArray();
      const out = new Array<number>(v.length);
      for (let r = 0; r < v.length / 6; r++) perm.forEach((src, j) => (out[r * 6 + src] = v[r * 6 + j]));
      return out;
    };
    const inter = rotaryEmbedding(x, cos, sin, { offset: 1, pairing: 'interleaved' });
    const half = rotaryEmbedding(tensor(Float32Array.from(toHalf(x)), { shape: [1, 3, 6] }), cos, sin, { offset: 1, pairing: 'half' });
    const back = toHalf(inter);
    half.toArray().forEach((v, i) => expect(v).toBeCloseTo(back[i], 6));
  });

  it('matches float32 tables computed like PyTorch', () => {
    const t = rotaryTables(4, 4, 10000);
    // inv_freq = [1, 0.01]; angle p·inv_freq
    expect(t.cos.toArray()).toEqual([1, 1, Math.fround(Math.cos(1)), Math.fround(Math.cos(0.01)), Math.fround(Math.cos(2)), Math.fround(Math.cos(0.02)), Math.fround(Math.cos(3)), Math.fround(Math.cos(Math.fround(0.03)))].map((v) => Math.fround(v)));
  });

  it('rejects odd head dims and positions past the tables', () => {
    expect(() => rotaryEmbedding(randn([2, 5]), cos, sin)).toThrow(/even/);
    expect(() => rotaryEmbedding(randn([3, 6]), cos, sin, { offset: 14 })).toThrow(/exceed the 16 positions/);
    expect(() => new nn.RotaryEmbedding(5, 8)).toThrow(/even/);
  });

  it('gradients flow through RotaryEmbedding in noGrad-free code only', () => {
    const rope = new nn.RotaryEmbedding(6, 16);
    const x = randn([1, 2, 6], { generator: gen }).requiresGrad_();
    const y = noGrad(() => rope.forward(x));
    expect(y.requiresGrad).toBe(false);
    expect(rope.forward(x).requiresGrad).toBe(true);
  });
});
