/** Fused ops against their composite definitions (the oracle) and finite differences. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/index.js';
import { crossEntropy, layerNorm, rmsNorm } from '../../src/ops/fused.js';
import { gradcheck, sample } from '../helpers/gradcheck.js';

function compositeLayerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const mu = x.mean(-1, true);
  const v = x.var(-1, { correction: 0, keepdim: true });
  return x.sub(mu).div(v.add(eps).sqrt()).mul(w).add(b);
}

function compositeRmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  return x.mul(x.square().mean(-1, true).add(eps).rsqrt()).mul(w);
}

function compositeCrossEntropy(logits: Tensor, target: Tensor, ignoreIndex: number, eps: number): Tensor {
  const C = logits.shape[logits.ndim - 1];
  const logp = logits.reshape(-1, C).logSoftmax(-1);
  const t = target.reshape(-1);
  const keep = t.ne(ignoreIndex);
  const safe = T.where(keep, t, 0).int();
  const nll = logp.gather(1, safe.unsqueeze(1)).squeeze(1).neg();
  const smooth = logp.mean(-1).neg();
  const per = nll.mul(1 - eps).add(smooth.mul(eps));
  return T.where(keep, per, 0).sum().div(keep.float().sum());
}

function grads(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): { out: number[]; grads: number[][] } {
  const leaves = inputs.map((x) => x.clone().requiresGrad_());
  const out = f(...leaves);
  out.backward(T.randn(out.shape, { generator: new T.Generator(3) }));
  return { out: out.toArray(), grads: leaves.map((l) => l.grad!.toArray()) };
}

function expectArraysClose(a: number[], b: number[], tol = 1e-5): void {
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(tol * (1 + Math.abs(b[i]))));
}

describe('fused ops equal their composite definitions', () => {
  it('layerNorm forward and backward', () => {
    const inputs = [sample([2, 3, 16], 1), sample([16], 2), sample([16], 3)];
    const fused = grads((x, w, b) => layerNorm(x, [16], w, b, 1e-5), inputs);
    const comp = grads((x, w, b) => compositeLayerNorm(x, w, b, 1e-5), inputs);
    expectArraysClose(fused.out, comp.out);
    fused.grads.forEach((g, i) => expectArraysClose(g, comp.grads[i], 1e-4));
  });
  it('rmsNorm forward and backward', () => {
    const inputs = [sample([5, 12], 4), sample([12], 5)];
    const fused = grads((x, w) => rmsNorm(x, [12], w, 1e-6), inputs);
    const comp = grads((x, w) => compositeRmsNorm(x, w, 1e-6), inputs);
    expectArraysClose(fused.out, comp.out);
    fused.grads.forEach((g, i) => expectArraysClose(g, comp.grads[i], 1e-4));
  });
  it('crossEntropy with ignoreIndex and label smoothing', () => {
    const target = T.tensor([[1, 4, 2], [0, 2, 3]], { dtype: 'int32' });
    const logits = sample([2, 3, 5], 6);
    const fused = grads((x) => crossEntropy(x, target, { ignoreIndex: 2, labelSmoothing: 0.1 }), [logits]);
    const comp = grads((x) => compositeCrossEntropy(x, target, 2, 0.1), [logits]);
    expectArraysClose(fused.out, comp.out);
    expectArraysClose(fused.grads[0], comp.grads[0], 1e-4);
  });
  it('crossEntropy stays finite for logits of ±1e4', () => {
    const logits = T.tensor([[1e4, -1e4, 0], [-1e4, -1e4, 1e4]], { requiresGrad: true });
    const loss = crossEntropy(logits, T.tensor([1, 2], { dtype: 'int32' }));
    loss.backward();
    expect(Number.isFinite(loss.item())).toBe(true);
    expect(loss.item()).toBeCloseTo(1e4, 0);
    expect(logits.grad!.toArray().every(Number.isFinite)).toBe(true);
  });
});

describe('fused ops: finite differences', () => {
  it('layerNorm', () => gradcheck('layerNorm', (x, w, b) => layerNorm(x, [6], w, b), [sample([3, 6], 10), sample([6], 11), sample([6], 12)]));
  it('rmsNorm', () => gradcheck('rmsNorm', (x, w) => rmsNorm(x, [6], w), [sample([3, 6], 13), sample([6], 14)]));
  it('crossEntropy sum and none', () => {
    const target = T.tensor([0, 3, 1], { dtype: 'int32' });
    gradcheck('ce sum', (x) => crossEntropy(x, target, { reduction: 'sum', labelSmoothing: 0.2 }), [sample([3, 4], 15)]);
    gradcheck('ce none', (x) => crossEntropy(x, target, { reduction: 'none' }), [sample([3, 4], 16)]);
  });
  it('errors name the shapes', () => {
    expect(() => crossEntropy(T.zeros([4, 7]), T.tensor([0, 1, 9, 2], { dtype: 'int32' }))).toThrow('crossEntropy: target 9 is out of bounds for 7 classes');
    expect(() => crossEntropy(T.zeros([4, 7]), T.tensor([0, 1], { dtype: 'int32' }))).toThrow('crossEntropy: logits shape [4, 7] (classes last) expects target shape [4], got target shape [2]');
    expect(() => layerNorm(T.zeros([2, 5]), [4])).toThrow(/input shape \[2, 5\] does not end with normalizedShape \[4\]/);
  });
});

describe('attention', () => {
  const compositeAttention = (q: Tensor, k: Tensor, v: Tensor, causal: boolean) => {
    const d = q.shape[q.ndim - 1];
    let s = q.matmul(k.mT).mul(1 / Math.sqrt(d));
    if (causal) {
      const [tq, tk] = [q.shape[q.ndim - 2], k.shape[k.ndim - 2]];
      s = s.maskedFill(T.ones([tq, tk]).tril().eq(0), -Infinity);
    }
    return s.softmax(-1).matmul(v);
  };
  it('fused causal attention equals the composite definition, forward and backward', async () => {
    const { scaledDotProductAttention } = await import('../../src/ops/attention.js');
    const inputs = [sample([2, 3, 5, 4], 20), sample([2, 3, 5, 4], 21), sample([2, 3, 5, 4], 22)];
    for (const causal of [true, false]) {
      const fused = grads((q, k, v) => scaledDotProductAttention(q, k, v, { isCausal: causal }), inputs);
      const comp = grads((q, k, v) => compositeAttention(q, k, v, causal), inputs);
      expectArraysClose(fused.out, comp.out);
      fused.grads.forEach((g, i) => expectArraysClose(g, comp.grads[i], 1e-4));
    }
  });
  it('bool masks and grouped (broadcast) key/value heads', async () => {
    const { scaledDotProductAttention } = await import('../../src/ops/attention.js');
    const mask = T.ones([4, 4]).tril().eq(1);
    const q = sample([1, 2, 2, 4, 3], 23); // [B, kvHeads, groups, T, D]
    const k = sample([1, 2, 1, 4, 3], 24);
    const v = sample([1, 2, 1, 4, 3], 25);
    const a = scaledDotProductAttention(q, k, v, { mask });
    const b = scaledDotProductAttention(q, k.expand(1, 2, 2, 4, 3), v.expand(1, 2, 2, 4, 3), { isCausal: true });
    expectArraysClose(a.toArray(), b.toArray());
  });
  it('finite differences through causal attention', async () => {
    const { scaledDotProductAttention } = await import('../../src/ops/attention.js');
    gradcheck('sdpa', (q, k, v) => scaledDotProductAttention(q, k, v, { isCausal: true }), [sample([2, 4, 3], 26), sample([2, 4, 3], 27), sample([2, 4, 3], 28)]);
  });
});
