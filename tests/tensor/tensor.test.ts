import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';

describe('creation', () => {
  it('builds from nested arrays, typed arrays and numbers', () => {
    const a = T.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe('float32');
    expect(a.tolist()).toEqual([[1, 2, 3], [4, 5, 6]]);
    const typed = new Float32Array([1, 2, 3, 4]);
    const b = T.tensor(typed, { shape: [2, 2] });
    expect(b.storage).toBe(typed); // no copy
    expect(T.tensor(3.5).shape).toEqual([]);
    expect(T.tensor(3.5).item()).toBe(3.5);
    expect(T.tensor([true, false]).dtype).toBe('bool');
    expect(T.tensor([1, 2], { dtype: 'int32' }).storage).toBeInstanceOf(Int32Array);
  });

  it('rejects ragged arrays with the offending index', () => {
    expect(() => T.tensor([[1, 2], [3]])).toThrow(/ragged.*index \[1\]/);
  });

  it('zeros, ones, full, arange, linspace, eye', () => {
    expect(T.zeros([2, 2]).toArray()).toEqual([0, 0, 0, 0]);
    expect(T.ones([3]).toArray()).toEqual([1, 1, 1]);
    expect(T.full([2], 7).toArray()).toEqual([7, 7]);
    expect(T.arange(5).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(T.arange(5).dtype).toBe('int32');
    expect(T.arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(T.arange(1, 2, 0.25).dtype).toBe('float32');
    expect(T.linspace(0, 1, 5).toArray()).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(T.eye(2, 3).tolist()).toEqual([[1, 0, 0], [0, 1, 0]]);
  });

  it('random tensors are reproducible per seed and have the right moments', () => {
    T.manualSeed(42);
    const a = T.randn([1000]);
    T.manualSeed(42);
    const b = T.randn([1000]);
    expect(a.toArray()).toEqual(b.toArray());
    const big = T.randn([20000], { generator: new T.Generator(1) });
    expect(Math.abs(big.mean().item())).toBeLessThan(0.03);
    expect(Math.abs(big.std().item() - 1)).toBeLessThan(0.03);
    const u = T.rand([20000], { generator: new T.Generator(2) });
    expect(u.min().item()).toBeGreaterThanOrEqual(0);
    expect(u.max().item()).toBeLessThan(1);
    const r = T.randint(3, 7, [1000], { generator: new T.Generator(3) });
    expect(r.dtype).toBe('int32');
    expect(new Set(r.toArray())).toEqual(new Set([3, 4, 5, 6]));
  });

  it('generator state round-trips exactly', () => {
    const g = new T.Generator(9);
    g.normal();
    const state = g.getState();
    const x = [g.normal(), g.random(), g.randint(0, 100)];
    g.setState(state);
    expect([g.normal(), g.random(), g.randint(0, 100)]).toEqual(x);
  });

  it('randperm is a permutation', () => {
    const p = T.randperm(50, { generator: new T.Generator(4) }).toArray();
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe('views share storage', () => {
  const x = T.arange(24).reshape(2, 3, 4);
  it('reshape, transpose, permute, narrow, select, expand do not copy', () => {
    for (const v of [x.reshape(6, 4), x.transpose(0, 2), x.permute(1, 2, 0), x.narrow(2, 1, 2), x.select(1, 0), x.narrow(0, 0, 1).expand(5, 3, 4), x.unsqueeze(0), x.slice(2, 0, 4, 2)]) {
      expect(v.storage).toBe(x.storage);
    }
  });
  it('transpose is metadata only and contiguous() copies', () => {
    const t = x.transpose(1, 2);
    expect(t.isContiguous).toBe(false);
    expect(t.strides).toEqual([12, 1, 4]);
    const c = t.contiguous();
    expect(c.storage).not.toBe(x.storage);
    expect(c.isContiguous).toBe(true);
    expect(c.tolist()).toEqual(t.tolist());
  });
  it('view of a non-contiguous tensor that cannot be a view throws, reshape copies', () => {
    const t = x.transpose(0, 2);
    expect(() => t.view(-1)).toThrow(/view: size is not compatible.*use reshape\(\) instead/);
    expect(t.reshape(-1).toArray()).toEqual(t.contiguous().toArray());
  });
  it('view merges dims that are contiguous among themselves', () => {
    const t = x.narrow(2, 0, 2); // [2,3,2] with strides [12,4,1]
    expect(() => t.view(6, 2)).not.toThrow();
    expect(t.view(6, 2).tolist()).toEqual(t.contiguous().view(6, 2).tolist());
  });
  it('slicing with Python semantics', () => {
    const v = T.arange(10);
    expect(v.slice(0, -3).toArray()).toEqual([7, 8, 9]);
    expect(v.slice(0, 1, 8, 3).toArray()).toEqual([1, 4, 7]);
    expect(v.slice(0, 5, 100).toArray()).toEqual([5, 6, 7, 8, 9]);
    expect(x.get(1, 2).toArray()).toEqual([20, 21, 22, 23]);
  });
});

describe('elementwise and dtypes', () => {
  it('broadcasts like NumPy', () => {
    const a = T.tensor([[1], [2], [3]]);
    const b = T.tensor([10, 20]);
    expect(a.add(b).tolist()).toEqual([[11, 21], [12, 22], [13, 23]]);
  });
  it('promotes int + float to float, keeps int + int, divides to float', () => {
    const i = T.tensor([1, 2, 3], { dtype: 'int32' });
    expect(i.add(i).dtype).toBe('int32');
    expect(i.add(0.5).dtype).toBe('float32');
    expect(i.add(2).dtype).toBe('int32');
    expect(i.div(2).toArray()).toEqual([0.5, 1, 1.5]);
  });
  it('comparisons give bool masks usable by where and maskedFill', () => {
    const x = T.tensor([-1, 0, 2]);
    const m = x.gt(0);
    expect(m.dtype).toBe('bool');
    expect(m.tolist()).toEqual([false, false, true]);
    expect(T.where(m, x, 0).toArray()).toEqual([0, 0, 2]);
    expect(x.maskedFill(m.logicalNot(), -Infinity).toArray()).toEqual([-Infinity, -Infinity, 2]);
    expect(m.float().mean().item()).toBeCloseTo(1 / 3);
  });
  it('in-place updates refuse tensors that require grad outside noGrad', () => {
    const w = T.ones([2], { requiresGrad: true });
    expect(() => w.add_(1)).toThrow(/in place outside noGrad/);
    T.noGrad(() => w.add_(T.tensor([1, 2]), 0.5));
    expect(w.toArray()).toEqual([1.5, 2]);
    const v = T.zeros([2, 3]);
    v.narrow(1, 1, 1).fill_(5);
    expect(v.tolist()).toEqual([[0, 5, 0], [0, 5, 0]]);
  });
});

describe('printing', () => {
  it('prints like PyTorch', () => {
    expect(T.tensor([[1, 2], [3, 4]]).toString()).toBe('tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]])');
    expect(T.tensor([1, 2], { dtype: 'int32' }).toString()).toBe('tensor([1, 2], dtype=int32)');
    expect(T.tensor([1], { requiresGrad: true }).toString()).toBe('tensor([1.0000], requiresGrad=true)');
    expect(T.zeros([2000]).toString()).toContain('...');
  });
});

describe('clear errors for bad input', () => {
  it('matmul of [2,3]·[4,5]', () => {
    expect(() => T.zeros([2, 3]).matmul(T.zeros([4, 5]))).toThrow('matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)');
  });
  it('broadcasting [3] + [4]', () => {
    expect(() => T.zeros([3]).add(T.zeros([4]))).toThrow('add: shapes [3] and [4] cannot be broadcast together (dimension 0: 3 vs 4)');
  });
  it('reshape to a wrong size', () => {
    expect(() => T.zeros([2, 3]).reshape(4, 2)).toThrow('reshape: shape [4, 2] is invalid for input of size 6 (shape [2, 3])');
  });
  it('dimension out of range', () => {
    expect(() => T.zeros([2, 3]).sum(2)).toThrow('sum: dimension 2 out of range (expected to be in range of [-2, 1])');
  });
  it('gather and indexSelect with out-of-range indices', () => {
    expect(() => T.zeros([2, 3]).gather(1, T.tensor([[0], [3]], { dtype: 'int32' }))).toThrow('gather: index 3 is out of bounds for size 3');
    expect(() => T.zeros([2, 3]).indexSelect(0, T.tensor([0, 1], { dtype: 'float32' }))).toThrow('indexSelect: index must be an int32 tensor');
  });
  it('cat with mismatched shapes', () => {
    expect(() => T.cat([T.zeros([2, 3]), T.zeros([3, 3])], 1)).toThrow(/cat: sizes of tensors must match except in dimension 1/);
  });
  it('item of a multi-element tensor and requiresGrad on int', () => {
    expect(() => T.zeros([2]).item()).toThrow(/only one-element tensors/);
    expect(() => T.zeros([2], { dtype: 'int32', requiresGrad: true })).toThrow(/only float32 tensors can require gradients/);
  });
  it('expand to an incompatible size', () => {
    expect(() => T.zeros([3, 2]).expand(3, 4)).toThrow(/expanded size of the tensor \(4\) must match the existing size \(2\)/);
  });
});
