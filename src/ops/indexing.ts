/** Indexing and joining: gather, indexSelect, indexAdd, maskedFill, tril/triu, cat, stack. */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape, normalizeDim, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguousData, strided, where } from './elementwise.js';
import { narrow, unsqueeze } from './views.js';

function checkIndexTensor(index: Tensor, op: string): Int32Array {
  if (index.dtype !== 'int32') throw new TypeError(`${op}: index must be an int32 tensor, got ${index.dtype}`);
  const { data, offset } = contiguousData(index);
  return offset === 0 && data.length === index.size ? (data as Int32Array) : (data.slice(offset, offset + index.size) as Int32Array);
}

function checkRange(values: Int32Array, size: number, op: string, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < 0 || v >= size) throw new RangeError(`${op}: ${what} ${v} is out of bounds for size ${size}`);
  }
}

/** out[i][j][k] = x[i][index[i][j][k]][k] for dim 1 (torch.gather). index has x's rank; other dims must match. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normalizeDim(dim, x.ndim, 'gather');
  if (index.ndim !== x.ndim) throw new Error(`gather: index ${formatShape(index.shape)} must have as many dims as input ${formatShape(x.shape)}`);
  for (let i = 0; i < x.ndim; i++) {
    if (i !== d && index.shape[i] !== x.shape[i]) {
      throw new Error(`gather: index ${formatShape(index.shape)} and input ${formatShape(x.shape)} differ at dim ${i} (only dim ${d} may differ)`);
    }
  }
  const idx = checkIndexTensor(index, 'gather');
  checkRange(idx, x.shape[d], 'gather', 'index');
  const out = Tensor.uninitialized(index.shape, x.dtype);
  const { data, offset } = contiguousData(x);
  const outer = shapeSize(x.shape.slice(0, d));
  const inner = shapeSize(x.shape.slice(d + 1));
  kernels.gather({ x: offset === 0 ? data : data.subarray(offset), index: idx, out: out.storage, outer, xSize: x.shape[d], indexSize: index.shape[d], inner });
  return record(out, 'gather', [x], (g) => {
    const gx = Tensor.empty(x.shape, 'float32');
    const gd = contiguousData(g);
    kernels.scatterAdd({ src: gd.data.subarray(gd.offset) as Float32Array, index: idx, out: gx.storage as Float32Array, outer, outSize: x.shape[d], indexSize: index.shape[d], inner });
    return [gx];
  });
}

/** Zeros of `shape` with `values` added at `index` along `dim` (scatter-add; the adjoint of gather). */
export function indexPut(shape: readonly number[], dim: number, index: Tensor, values: Tensor): Tensor {
  const out = Tensor.empty(shape, 'float32');
  const idx = checkIndexTensor(index, 'scatterAdd');
  const v = contiguousData(values);
  kernels.scatterAdd({
    src: v.data.subarray(v.offset) as Float32Array,
    index: idx,
    out: out.storage as Float32Array,
    outer: shapeSize(shape.slice(0, dim)),
    outSize: shape[dim],
    indexSize: index.shape[dim],
    inner: shapeSize(shape.slice(dim + 1)),
  });
  return out;
}

/** Rows (or other slices along `dim`) picked by a 1-D index (torch.index_select; embedding lookup). */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normalizeDim(dim, x.ndim, 'indexSelect');
  if (index.ndim > 1) throw new Error(`indexSelect: index must be 0-D or 1-D, got shape ${formatShape(index.shape)}`);
  const idx = checkIndexTensor(index, 'indexSelect');
  checkRange(idx, x.shape[d], 'indexSelect', 'index');
  const shape = x.shape.slice();
  shape[d] = idx.length;
  const out = Tensor.uninitialized(shape, x.dtype);
  const { data, offset } = contiguousData(x);
  const outer = shapeSize(x.shape.slice(0, d));
  const inner = shapeSize(x.shape.slice(d + 1));
  kernels.indexSelect({ x: offset === 0 ? data : data.subarray(offset), index: idx, out: out.storage, outer, xSize: x.shape[d], indexSize: idx.length, inner });
  return record(out, 'indexSelect', [x], (g) => {
    const gx = Tensor.empty(x.shape, 'float32');
    const gd = contiguousData(g);
    kernels.indexAdd({ src: gd.data.subarray(gd.offset) as Float32Array, index: idx, out: gx.storage as Float32Array, outer, outSize: x.shape[d], indexSize: idx.length, inner });
    return [gx];
  });
}

/**
 * x with the slices of `source` added at `index` along `dim` (torch.index_add): out[…, index[i], …]
 * += source[…, i, …], repeated indices accumulating. source has x's shape except source.shape[dim]
 * = index.length. The combine step of a mixture of experts (each token's expert outputs summed
 * back into its row). Backward: x gets the gradient as it is, source its rows picked by the same
 * index (indexSelect's forward is this op's adjoint and the other way round).
 */
export function indexAdd(x: Tensor, dim: number, index: Tensor, source: Tensor): Tensor {
  const d = normalizeDim(dim, x.ndim, 'indexAdd');
  if (index.ndim !== 1) throw new Error(`indexAdd: index must be 1-D, got shape ${formatShape(index.shape)}`);
  const expected = x.shape.slice();
  expected[d] = index.shape[0];
  if (source.ndim !== x.ndim || source.shape.some((n, i) => n !== expected[i])) {
    throw new Error(`indexAdd: source must have shape ${formatShape(expected)} (input ${formatShape(x.shape)} with dim ${d} = index length ${index.shape[0]}), got ${formatShape(source.shape)}`);
  }
  const idx = checkIndexTensor(index, 'indexAdd');
  checkRange(idx, x.shape[d], 'indexAdd', 'index');
  const base = contiguousData(x);
  const out = Tensor.uninitialized(x.shape, 'float32');
  out.storage.set(base.data.subarray(base.offset, base.offset + x.size));
  const src = contiguousData(source);
  const outer = shapeSize(x.shape.slice(0, d));
  const inner = shapeSize(x.shape.slice(d + 1));
  kernels.indexAdd({ src: src.data.subarray(src.offset) as Float32Array, index: idx, out: out.storage as Float32Array, outer, outSize: x.shape[d], indexSize: idx.length, inner });
  return record(out, 'indexAdd', [x, source], (g) => [g, indexSelect(g, d, index)]);
}

/** x with `value` where mask is true; the mask broadcasts to x's shape. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (mask.dtype !== 'bool') throw new TypeError(`maskedFill: mask must be a bool tensor, got ${mask.dtype}`);
  const shape = x.shape;
  // Validate broadcasting towards x only (the mask may not grow x).
  const lead = shape.length - mask.ndim;
  if (lead < 0 || mask.shape.some((d, i) => d !== 1 && d !== shape[lead + i])) {
    throw new Error(`maskedFill: mask of shape ${formatShape(mask.shape)} cannot be broadcast to input shape ${formatShape(shape)}`);
  }
  const filled = Tensor.empty([], x.dtype);
  filled.storage[0] = value;
  const out = Tensor.uninitialized(shape, x.dtype);
  kernels.where(shape, strided(mask, shape), strided(filled, shape), strided(x, shape), out.storage);
  return record(out, 'maskedFill', [x], (g) => [where(mask, 0, g)]);
}

/** A bool mask of shape [rows, cols] that is true where col - row ≤ k (lower) or ≥ k (upper). */
function triangleMask(rows: number, cols: number, k: number, lower: boolean): Tensor {
  const mask = Tensor.empty([rows, cols], 'bool');
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mask.storage[i * cols + j] = (lower ? j - i <= k : j - i >= k) ? 1 : 0;
  return mask;
}

export function tril(x: Tensor, k = 0): Tensor {
  if (x.ndim < 2) throw new Error(`tril: input tensor must have at least 2 dimensions, got shape ${formatShape(x.shape)}`);
  return where(triangleMask(x.shape[x.ndim - 2], x.shape[x.ndim - 1], k, true), x, 0);
}

export function triu(x: Tensor, k = 0): Tensor {
  if (x.ndim < 2) throw new Error(`triu: input tensor must have at least 2 dimensions, got shape ${formatShape(x.shape)}`);
  return where(triangleMask(x.shape[x.ndim - 2], x.shape[x.ndim - 1], k, false), x, 0);
}

/** Joins tensors along an existing dim; all other dims must match. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: expected a non-empty list of tensors');
  const first = tensors[0];
  const d = normalizeDim(dim, first.ndim, 'cat');
  const dtype = tensors.some((t) => t.dtype === 'float32') ? 'float32' : first.dtype;
  let total = 0;
  tensors.forEach((t, n) => {
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new Error(
        `cat: sizes of tensors must match except in dimension ${d}: tensor 0 has shape ${formatShape(first.shape)}, tensor ${n} has shape ${formatShape(t.shape)}`,
      );
    }
    total += t.shape[d];
  });
  const shape = first.shape.slice();
  shape[d] = total;
  const out = Tensor.uninitialized(shape, dtype);
  let start = 0;
  for (const t of tensors) {
    const target = narrow(out, d, start, t.shape[d]);
    kernels.copy(t.shape, strided(t), strided(target));
    start += t.shape[d];
  }
  return record(out, 'cat', tensors, (g) => {
    let s = 0;
    return tensors.map((t) => {
      const piece = narrow(g, d, s, t.shape[d]);
      s += t.shape[d];
      return piece;
    });
  });
}

/** Joins tensors of the same shape along a new dim. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: expected a non-empty list of tensors');
  const first = tensors[0];
  tensors.forEach((t, n) => {
    if (t.shape.length !== first.shape.length || t.shape.some((s, i) => s !== first.shape[i])) {
      throw new Error(`stack: expects each tensor to be equal size, but got ${formatShape(first.shape)} at entry 0 and ${formatShape(t.shape)} at entry ${n}`);
    }
  });
  const d = normalizeDim(dim, first.ndim + 1, 'stack');
  return cat(
    tensors.map((t) => unsqueeze(t, d)),
    d,
  );
}
