/** Reductions over any set of dims, with keepdim. Composite ones (mean, var, logsumexp) reuse sum/amax. */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import type { ArgReduceOp, ReduceInput, ReduceOp } from '../backends/kernels.js';
import { normalizeDim, shapeSize } from '../tensor/shape.js';
import { Tensor, type MaxResult } from '../tensor/tensor.js';
import { add, compare, contiguousData, div, exp, log, mul, sub, where } from './elementwise.js';
import { indexPut } from './indexing.js';
import { permute, reshape } from './views.js';

export type Dims = number | readonly number[] | null | undefined;

/** Sorted, unique, non-negative dims; all dims when none are given. */
function normalizeDims(dims: Dims, rank: number, op: string): number[] {
  if (dims === null || dims === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  if (list.length === 0) return Array.from({ length: rank }, (_, i) => i);
  const out = [...new Set(list.map((d) => normalizeDim(d, rank, op)))].sort((a, b) => a - b);
  if (out.length !== list.length) throw new Error(`${op}: dim appears multiple times in the list of dims [${list.join(', ')}]`);
  return out;
}

function reducedShape(shape: readonly number[], dims: readonly number[], keepdim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!dims.includes(i)) out.push(d);
    else if (keepdim) out.push(1);
  });
  return out;
}

/**
 * Lays x out as a contiguous [outer, size, inner] block with the reduced dims in the middle:
 * without copying when they are adjacent, else by permuting them to the end first.
 */
function asBlock(x: Tensor, dims: readonly number[]): ReduceInput {
  const adjacent = dims.every((d, i) => i === 0 || d === dims[i - 1] + 1);
  if (adjacent && dims.length > 0) {
    const { data, offset } = contiguousData(x);
    const outer = shapeSize(x.shape.slice(0, dims[0]));
    const size = shapeSize(x.shape.slice(dims[0], dims[dims.length - 1] + 1));
    return { x: data, xOffset: offset, outer, size, inner: shapeSize(x.shape.slice(dims[dims.length - 1] + 1)) };
  }
  const kept = x.shape.map((_, i) => i).filter((i) => !dims.includes(i));
  const moved = permute(x.detach(), [...kept, ...dims]);
  const { data, offset } = contiguousData(moved);
  const size = shapeSize(dims.map((d) => x.shape[d]));
  return { x: data, xOffset: offset, outer: size === 0 ? 0 : x.size / Math.max(size, 1), size, inner: 1 };
}

function reduceForward(op: ReduceOp, x: Tensor, dims: number[], keepdim: boolean): Tensor {
  const out = Tensor.empty(reducedShape(x.shape, dims, keepdim), x.dtype === 'bool' ? 'int32' : x.dtype);
  const block = asBlock(x, dims);
  if (block.outer * block.inner === 0) return out;
  kernels.reduce({ ...block, op, out: out.storage });
  return out;
}

export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const dims = normalizeDims(dim, x.ndim, 'sum');
  const out = reduceForward('sum', x, dims, keepdim);
  // The gradient of a sum is the upstream gradient broadcast back over the reduced dims.
  return record(out, 'sum', [x], (g) => [reshape(g, reducedShape(x.shape, dims, true)).expand(x.shape)]);
}

export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const dims = normalizeDims(dim, x.ndim, 'mean');
  const count = shapeSize(dims.map((d) => x.shape[d]));
  const total = sum(x.dtype === 'float32' ? x : x.float(), dims, keepdim);
  return mul(total, 1 / count);
}

/** Max/min values over dims (no indices): the gradient is split evenly among tied maxima, as in torch.amax. */
export function amax(x: Tensor, op: 'max' | 'min', dim?: Dims, keepdim = false): Tensor {
  const name = op === 'max' ? 'amax' : 'amin';
  const dims = normalizeDims(dim, x.ndim, name);
  if (x.size === 0) throw new Error(`${name}: cannot reduce an empty tensor (shape [${x.shape.join(', ')}]): the operation has no identity`);
  const out = reduceForward(op, x, dims, keepdim);
  return record(out, name, [x], (g) => {
    const keptShape = reducedShape(x.shape, dims, true);
    const hits = compare('eq', x, reshape(out.detach(), keptShape)).float();
    const count = sum(hits, dims, true);
    return [div(mul(hits, reshape(g, keptShape)), count)];
  });
}

export function maxAll(x: Tensor, op: 'max' | 'min'): Tensor {
  return amax(x, op, null, false);
}

/** Max/min along one dim with the index of the (first) extreme: `{ values, indices }`. */
export function maxDim(x: Tensor, op: 'max' | 'min', dim: number, keepdim: boolean): MaxResult {
  const d = normalizeDim(dim, x.ndim, op);
  if (x.ndim > 0 && x.shape[d] === 0) throw new Error(`${op}: cannot reduce over dimension ${dim} of size 0`);
  const shape = reducedShape(x.shape, [d], keepdim);
  const values = Tensor.empty(shape, x.dtype === 'bool' ? 'int32' : x.dtype);
  const indices = Tensor.empty(shape, 'int32');
  const { data, offset } = contiguousData(x);
  const outer = shapeSize(x.shape.slice(0, d));
  const inner = shapeSize(x.shape.slice(d + 1));
  kernels.argReduce({ op: op === 'max' ? 'argmax' : 'argmin', x: data, xOffset: offset, outer, size: x.ndim === 0 ? 1 : x.shape[d], inner, indices: indices.storage as Int32Array, values: values.storage });
  record(values, op, [x], (g) => {
    const keptShape = reducedShape(x.shape, [d], true);
    return [indexPut(x.shape, d, reshape(indices, keptShape), reshape(g, keptShape))];
  });
  return { values, indices };
}

export function argReduce(x: Tensor, op: ArgReduceOp, dim: number | null | undefined, keepdim: boolean): Tensor {
  if (dim === null || dim === undefined) {
    if (x.size === 0) throw new Error(`${op}: cannot reduce an empty tensor`);
    const flat = reshape(x.detach(), [x.size]);
    const out = argReduce(flat, op, 0, false);
    return keepdim ? reshape(out, x.shape.map(() => 1)) : out;
  }
  const d = normalizeDim(dim, x.ndim, op);
  const shape = reducedShape(x.shape, [d], keepdim);
  const indices = Tensor.empty(shape, 'int32');
  const { data, offset } = contiguousData(x);
  kernels.argReduce({ op, x: data, xOffset: offset, outer: shapeSize(x.shape.slice(0, d)), size: x.ndim === 0 ? 1 : x.shape[d], inner: shapeSize(x.shape.slice(d + 1)), indices: indices.storage as Int32Array, values: null });
  return indices;
}

/** Variance with `correction` (1 = Bessel, unbiased); composed of differentiable ops. */
export function variance(x: Tensor, dim: Dims, correction: number, keepdim: boolean): Tensor {
  const dims = normalizeDims(dim, x.ndim, 'var');
  const count = shapeSize(dims.map((d) => x.shape[d]));
  const centered = sub(x, mean(x, dims, true));
  return div(sum(mul(centered, centered), dims, keepdim), Math.max(0, count - correction));
}

/** log Σ exp(x) over dims, computed stably around the max. */
export function logsumexp(x: Tensor, dim: Dims, keepdim = false): Tensor {
  const dims = normalizeDims(dim, x.ndim, 'logsumexp');
  const m = amax(x.detach(), 'max', dims, true);
  const finiteMax = where(compare('eq', m.abs(), Infinity), 0, m);
  const out = add(log(sum(exp(sub(x, finiteMax)), dims, true)), finiteMax);
  return keepdim ? out : reshape(out, reducedShape(x.shape, dims, false));
}
