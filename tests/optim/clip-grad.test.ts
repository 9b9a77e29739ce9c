/** clipGradNorm / clipGradValue beyond the golden cases: norm types, non-finite norms, views. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/index.js';
import { clipGradNorm, clipGradValue } from '../../src/optim/index.js';

function withGrad(values: number[], shape: number[] = [values.length]): Tensor {
  const p = T.zeros(shape, { requiresGrad: true });
  p.grad = T.tensor(Float32Array.from(values), { shape });
  return p;
}

describe('clipGradNorm', () => {
  it('returns the joint 2-norm and scales by maxNorm / (norm + 1e-6) when above maxNorm', () => {
    const a = withGrad([3, 0]);
    const b = withGrad([4]);
    const total = clipGradNorm([a, b], 1);
    expect(total).toBe(5);
    const coef = Math.fround(1 / Math.fround(5 + 1e-6));
    expect(a.grad!.toArray()).toEqual([Math.fround(3 * coef), 0]);
    expect(b.grad!.toArray()).toEqual([Math.fround(4 * coef)]);
  });

  it('large gradients (the kernel path, a gradient that is a view at an offset): the norm of sequential float64 sums and bit-exact scaling', () => {
    // Sizes past the kernels' small-input cut-off, so the scaling runs in the backend's multiply
    // kernel: each product must round once, exactly as `g[i] *= coef` in float32 would.
    const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.37) * (1 + (i % 7)));
    const a = withGrad(values(4099, 1));
    const b = T.zeros([3, 1000], { requiresGrad: true });
    const base = T.tensor(Float32Array.from(values(4000, 2)), { shape: [4, 1000] });
    b.grad = base.narrow(0, 1, 3); // contiguous, offset 1000 into its storage
    const before = [a.grad!.toArray() as number[], b.grad!.toArray() as number[]];
    const norms = before.map((g) => Math.fround(Math.sqrt(g.reduce((s, v) => s + v * v, 0))));
    const expectedTotal = Math.fround(Math.sqrt(norms[0] ** 2 + norms[1] ** 2));
    const total = clipGradNorm([a, b], 1);
    expect(total).toBe(expectedTotal);
    const coef = Math.fround(1 / Math.fround(total + 1e-6));
    expect(a.grad!.toArray()).toEqual(before[0].map((v) => Math.fround(v * coef)));
    expect(b.grad!.toArray()).toEqual(before[1].map((v) => Math.fround(v * coef)));
    expect((base.toArray() as number[]).slice(0, 1000)).toEqual(values(1000, 2).map(Math.fround)); // outside the view: untouched
  });

  it('leaves gradients below maxNorm unchanged', () => {
    const a = withGrad([0.3, 0.4]);
    expect(clipGradNorm(a, 1)).toBeCloseTo(0.5, 7);
    expect(a.grad!.toArray()).toEqual([Math.fround(0.3), Math.fround(0.4)]);
  });

  it('inf-norm: Infinity and "inf" are the same; other p-norms work too', () => {
    const make = () => [withGrad([1, -6]), withGrad([2, 3])];
    const x = make();
    const y = make();
    expect(clipGradNorm(x, 2, 'inf')).toBe(6);
    expect(clipGradNorm(y, 2, Infinity)).toBe(6);
    expect(x[0].grad!.toArray()).toEqual(y[0].grad!.toArray());
    expect(x[0].grad!.toArray()[1]).toBeCloseTo(-2, 5);
    expect(clipGradNorm(make(), 100, 1)).toBe(12);
    expect(clipGradNorm(make(), 100, 3)).toBeCloseTo(Math.cbrt(1 + 216 + 8 + 27), 5);
  });

  it('ignores parameters without a gradient; no gradients at all gives 0', () => {
    const none = T.zeros([2], { requiresGrad: true });
    expect(clipGradNorm([none], 1)).toBe(0);
    expect(clipGradNorm([none, withGrad([3, 4])], 10)).toBe(5);
    expect(none.grad).toBeNull();
  });

  it('non-finite norms: an error only when errorIfNonfinite, else scaled like torch', () => {
    const nan = () => withGrad([1, Number.NaN]);
    expect(() => clipGradNorm(nan(), 1, 2, { errorIfNonfinite: true })).toThrow(/clipGradNorm: the total norm of order 2 for gradients is non-finite \(NaN\)/);
    expect(() => clipGradNorm(withGrad([Infinity]), 1, 'inf', { errorIfNonfinite: true })).toThrow(/non-finite \(Infinity\)/);
    const p = nan();
    expect(clipGradNorm(p, 1)).toBeNaN();
    expect(p.grad!.toArray().every(Number.isNaN)).toBe(true);
    const inf = withGrad([2, Infinity]);
    expect(clipGradNorm(inf, 1)).toBe(Infinity);
    // torch: coef = 1 / (inf + 1e-6) = 0, so finite entries become 0 and inf·0 = NaN.
    expect(inf.grad!.toArray()[0]).toBe(0);
    expect(inf.grad!.toArray()[1]).toBeNaN();
  });

  it('scales a non-contiguous gradient and one at an offset in place', () => {
    const p = T.zeros([2, 3], { requiresGrad: true });
    const base = T.tensor([[3, 0], [0, 0], [4, 0]]);
    p.grad = base.transpose(0, 1);
    const q = T.zeros([2], { requiresGrad: true });
    const storage = Float32Array.from([100, 0, 0, 100]);
    q.grad = new Tensor(storage, [2], undefined, 1);
    expect(clipGradNorm([p, q], 1)).toBe(5);
    expect(base.toArray()[0]).toBeCloseTo(0.6, 6);
    expect(base.toArray()[4]).toBeCloseTo(0.8, 6);
    expect(Array.from(storage)).toEqual([100, 0, 0, 100]);
  });

  it('validates its arguments', () => {
    expect(() => clipGradNorm([withGrad([1])], 1, 0)).toThrow('clipGradNorm: invalid normType 0');
    expect(() => clipGradNorm([withGrad([1])], 1, 'two' as never)).toThrow(/invalid normType two/);
    expect(() => clipGradNorm([withGrad([1])], Number.NaN)).toThrow('clipGradNorm: invalid maxNorm NaN');
  });
});

describe('clipGradValue', () => {
  it('clamps every element to [-clipValue, clipValue] in place, contiguous or not', () => {
    const a = withGrad([-3, 0.5, 2, -0.1]);
    const b = T.zeros([2, 2], { requiresGrad: true });
    const base = T.tensor([[5, -5], [0.2, 1]]);
    b.grad = base.transpose(0, 1);
    clipGradValue([a, b], 1);
    expect(a.grad!.toArray()).toEqual([-1, 0.5, 1, Math.fround(-0.1)]);
    expect(base.toArray()).toEqual([1, -1, Math.fround(0.2), 1]);
    expect(() => clipGradValue(a, -1)).toThrow('clipGradValue: invalid clipValue -1');
  });
});
