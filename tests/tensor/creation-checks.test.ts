/**
 * Numerics that used to fail silently (issue #20, item 8): JS numbers that do not fit the dtype
 * they are created as, and shapes too large to allocate.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { MAX_TENSOR_ELEMENTS } from '../../src/tensor/shape.js';
import { Tensor } from '../../src/tensor/tensor.js';

describe('creating tensors from JS numbers', () => {
  it('rejects values int32 cannot hold, naming the value, its index and the range', () => {
    // Used to wrap to 1410065408.
    expect(() => T.tensor([1e10], { dtype: 'int32' })).toThrow(/^tensor: value 10000000000 at index \[0\] does not fit int32 \(expected a finite number in \[-2147483648, 2147483647\]; it would become 1410065408\)$/);
    // Used to become 0.
    expect(() => T.tensor([[1, 2], [3, NaN]], { dtype: 'int32' })).toThrow(/^tensor: value NaN at index \[1, 1\] does not fit int32/);
    expect(() => T.tensor([-Infinity], { dtype: 'int32' })).toThrow(/value -Infinity at index \[0\] does not fit int32/);
    expect(() => T.tensor([2 ** 31], { dtype: 'int32' })).toThrow(/value 2147483648 at index \[0\]/);
    expect(() => T.tensor(new Float32Array([0, 5e9]), { dtype: 'int32' })).toThrow(/value 5000000000 at index \[1\] does not fit int32/);
    expect(() => T.full([2, 2], 1e10, { dtype: 'int32' })).toThrow(/^full: value 10000000000 \(the fill value\) does not fit int32/);
    expect(() => T.full([2], NaN, { dtype: 'int32' })).toThrow(/full: value NaN \(the fill value\) does not fit int32/);
    expect(() => T.arange(2 ** 31 - 2, 2 ** 31 + 1)).toThrow(/arange: value 2147483648 \(the last value\) does not fit int32/);
    expect(() => T.randint(0, 2 ** 32, [2])).toThrow(/randint: value 4294967295 \(high − 1\) does not fit int32/);
    expect(() => T.linspace(0, 1e10, 3, { dtype: 'int32' })).toThrow(/linspace: value 10000000000 \(end\) does not fit int32/);
  });

  it('keeps what fits: the int32 extremes, fractions truncated toward zero (as PyTorch), float32 unchecked', () => {
    expect(T.tensor([-(2 ** 31), 2 ** 31 - 1, 2.9, -2.9], { dtype: 'int32' }).toArray()).toEqual([-(2 ** 31), 2 ** 31 - 1, 2, -2]);
    expect(T.tensor(new Float32Array([1.5, -7]), { dtype: 'int32' }).toArray()).toEqual([1, -7]);
    expect(T.full([2], -3, { dtype: 'int32' }).toArray()).toEqual([-3, -3]);
    expect(T.arange(2 ** 31 - 3, 2 ** 31 - 1).toArray()).toEqual([2 ** 31 - 3, 2 ** 31 - 2]);
    expect(T.tensor([NaN, 1e40]).toArray()).toEqual([NaN, Infinity]);
  });

  it('bool from numbers: 0 is false, any other number true, NaN an error (it used to store 2, or 256 as false)', () => {
    expect(() => T.tensor([1, NaN], { dtype: 'bool' })).toThrow(/^tensor: value NaN at index \[1\] cannot be a bool/);
    expect(() => T.full([1], NaN, { dtype: 'bool' })).toThrow(/full: value NaN \(the fill value\) cannot be a bool/);
    expect(T.full([2], 2, { dtype: 'bool' }).storage).toEqual(new Uint8Array([1, 1]));
    expect(T.full([1], 256, { dtype: 'bool' }).storage).toEqual(new Uint8Array([1]));
    expect(T.tensor(new Float32Array([0, 0.5, 256, -Infinity]), { dtype: 'bool' }).storage).toEqual(new Uint8Array([0, 1, 1, 1]));
  });

  it('an existing tensor converts unchecked, as PyTorch\'s .to(torch.int32) does', () => {
    expect(T.tensor([1e10, NaN, 2.7]).to('int32').toArray()).toEqual([1410065408, 0, 2]);
  });
});

describe('shapes', () => {
  it('a shape with too many elements is a clear error naming the shape, not V8\'s "Invalid typed array length"', () => {
    expect(() => T.zeros([1e10])).toThrow(/^full: shape \[10000000000\] has 10000000000 elements, more than the limit of 2147483647 \(MAX_TENSOR_ELEMENTS\)$/);
    expect(() => T.ones([100000, 100000])).toThrow(/shape \[100000, 100000\] has 10000000000 elements/);
    expect(() => T.randn([2 ** 31])).toThrow(/randn: shape \[2147483648\]/);
    expect(() => T.arange(0, 1e12)).toThrow(/arange: shape \[1000000000000\] has/);
    expect(() => T.zeros([2 ** 53])).toThrow(/full: invalid shape \[9007199254740992\] \(dimensions must be non-negative integers\)/);
    expect(() => T.zeros([-1])).toThrow(/full: invalid shape \[-1\]/);
    expect(() => T.zeros([2.5])).toThrow(/full: invalid shape \[2.5\]/);
    expect(() => T.tensor(new Float32Array(4), { shape: [-2, -2] })).toThrow(/tensor: invalid shape \[-2, -2\]/);
    expect(MAX_TENSOR_ELEMENTS).toBe(2 ** 31 - 1);
  });

  it('an op output that large fails at its allocation with the shape, not inside V8', () => {
    expect(() => Tensor.empty([1e5, 1e5])).toThrow(/^Tensor\.empty: shape \[100000, 100000\] has 10000000000 elements, more than the limit/);
    expect(() => Tensor.uninitialized([3, NaN])).toThrow(/Tensor\.uninitialized: invalid shape \[3, NaN\]/);
    // Broadcasting two small operands into a huge output: the op's allocation says so.
    expect(() => T.zeros([100000, 1]).add(T.zeros([1, 100000]))).toThrow(/shape \[100000, 100000\] has 10000000000 elements/);
    expect(Tensor.empty([0, 5]).shape).toEqual([0, 5]);
  });
});
