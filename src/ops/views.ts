/**
 * View ops: they share the input's storage and change only shape, strides and offset.
 * Their backward maps the gradient back through the inverse view (or scatters it into zeros).
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { contiguousStrides, formatShape, isContiguous, normalizeDim, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { strided } from './elementwise.js';

function makeView(x: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  return new Tensor(x.storage, shape, strides, offset, x.dtype);
}

/**
 * Backward for views that pick a subset of elements (narrow, select, slice): the gradient is
 * scattered into zeros of the input's shape through the same view.
 */
function scatterBack(x: Tensor, g: Tensor, sameView: (z: Tensor) => Tensor): Tensor {
  const z = Tensor.empty(x.shape, 'float32');
  const target = sameView(z);
  kernels.copy(target.shape, strided(g), strided(target));
  return z;
}

export function contiguous(x: Tensor): Tensor {
  if (isContiguous(x.shape, x.strides)) return x;
  const out = Tensor.uninitialized(x.shape, x.dtype);
  kernels.copy(x.shape, strided(x), strided(out));
  return record(out, 'contiguous', [x], (g) => [g]);
}

export function clone(x: Tensor): Tensor {
  const out = Tensor.uninitialized(x.shape, x.dtype);
  kernels.copy(x.shape, strided(x), strided(out));
  return record(out, 'clone', [x], (g) => [g]);
}

/** Resolves one -1 in a requested shape and checks the element count. */
function inferShape(x: Tensor, shape: readonly number[], op: string): number[] {
  const out = shape.slice();
  const unknown = out.indexOf(-1);
  if (out.lastIndexOf(-1) !== unknown) throw new Error(`${op}: only one dimension can be inferred (-1) in ${formatShape(shape)}`);
  for (const d of out) {
    if (d !== -1 && (!Number.isInteger(d) || d < 0)) throw new RangeError(`${op}: invalid shape dimension ${d} in ${formatShape(shape)}`);
  }
  if (unknown >= 0) {
    const known = out.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0) {
      throw new Error(`${op}: shape ${formatShape(shape)} is invalid for input of size ${x.size} (shape ${formatShape(x.shape)})`);
    }
    out[unknown] = x.size / known;
  }
  if (shapeSize(out) !== x.size) {
    throw new Error(`${op}: shape ${formatShape(shape)} is invalid for input of size ${x.size} (shape ${formatShape(x.shape)})`);
  }
  return out;
}

/**
 * Strides that let `x` be read as `shape` without copying, or null when impossible
 * (PyTorch's rule: each group of merged dims must itself be contiguous in memory).
 */
function viewStrides(x: Tensor, shape: readonly number[]): number[] | null {
  if (isContiguous(x.shape, x.strides) || x.size === 0) return contiguousStrides(shape);
  const oldShape = x.shape;
  const oldStrides = x.strides;
  const strides = new Array<number>(shape.length).fill(1);
  // Walk the old dims from the innermost outward, in chunks that are contiguous among themselves;
  // each chunk must be covered exactly by a run of new dims, which get strides within the chunk.
  let viewD = shape.length - 1;
  let chunkBaseStride = oldStrides.length > 0 ? oldStrides[oldStrides.length - 1] : 1;
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = oldShape.length - 1; d >= 0; d--) {
    tensorNumel *= oldShape[d];
    const chunkEnds = d === 0 || (oldShape[d - 1] !== 1 && oldStrides[d - 1] !== tensorNumel * chunkBaseStride);
    if (!chunkEnds) continue;
    while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] === 1)) {
      strides[viewD] = viewNumel * chunkBaseStride;
      viewNumel *= shape[viewD];
      viewD--;
    }
    if (viewNumel !== tensorNumel) return null;
    if (d > 0) {
      chunkBaseStride = oldStrides[d - 1];
      tensorNumel = 1;
      viewNumel = 1;
    }
  }
  return viewD === -1 ? strides : null;
}

/** A view when the layout allows, else a copy — like `torch.reshape`. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(x, shape, 'reshape');
  const strides = viewStrides(x, target);
  const source = strides ? x : contiguous(x);
  const out = makeView(source, target, strides ?? contiguousStrides(target), source.offset);
  return record(out, 'reshape', [source], (g) => [reshape(g, source.shape)]);
}

/** Always a view; throws when the strides do not allow one — like `torch.Tensor.view`. */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(x, shape, 'view');
  const strides = viewStrides(x, target);
  if (!strides) {
    throw new Error(
      `view: size is not compatible with input tensor's size and stride (shape ${formatShape(x.shape)}, ` +
        `strides ${formatShape(x.strides)}); use reshape() instead`,
    );
  }
  const out = makeView(x, target, strides, x.offset);
  return record(out, 'view', [x], (g) => [reshape(g, x.shape)]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normalizeDim(startDim, x.ndim, 'flatten');
  const e = normalizeDim(endDim, x.ndim, 'flatten');
  if (s > e) throw new Error(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const merged = x.shape.slice(s, e + 1).reduce((p, d) => p * d, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) {
    throw new Error(`permute: number of dims don't match (got ${dims.length} dims ${formatShape(dims)} for a tensor of shape ${formatShape(x.shape)})`);
  }
  const order = dims.map((d) => normalizeDim(d, x.ndim, 'permute'));
  if (new Set(order).size !== order.length) throw new Error(`permute: repeated dim in ${formatShape(dims)}`);
  const out = makeView(
    x,
    order.map((d) => x.shape[d]),
    order.map((d) => x.strides[d]),
    x.offset,
  );
  const inverse = new Array<number>(order.length);
  order.forEach((d, i) => (inverse[d] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  if (x.ndim === 0) return x;
  const a = normalizeDim(dim0, x.ndim, 'transpose');
  const b = normalizeDim(dim1, x.ndim, 'transpose');
  const order = x.shape.map((_, i) => i);
  order[a] = b;
  order[b] = a;
  return permute(x, order);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normalizeDim(dim, x.ndim + 1, 'unsqueeze');
  const shape = x.shape.slice();
  const strides = x.strides.slice();
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.ndim ? x.strides[d] * x.shape[d] : 1);
  const out = makeView(x, shape, strides, x.offset);
  return record(out, 'unsqueeze', [x], (g) => [reshape(g, x.shape)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  let keep: number[];
  if (dim === undefined) keep = x.shape.map((_, i) => i).filter((i) => x.shape[i] !== 1);
  else {
    if (x.ndim === 0) return x;
    const d = normalizeDim(dim, x.ndim, 'squeeze');
    keep = x.shape.map((_, i) => i).filter((i) => i !== d || x.shape[i] !== 1);
  }
  if (keep.length === x.ndim) return x;
  const out = makeView(
    x,
    keep.map((i) => x.shape[i]),
    keep.map((i) => x.strides[i]),
    x.offset,
  );
  return record(out, 'squeeze', [x], (g) => [reshape(g, x.shape)]);
}

/** Broadcasts size-1 dims (and new leading dims) to `shape` with zero strides; -1 keeps a size. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) {
    throw new Error(`expand: the number of sizes provided (${shape.length}) must be greater or equal to the number of dimensions in the tensor (${x.ndim})`);
  }
  const lead = shape.length - x.ndim;
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const have = i < lead ? 1 : x.shape[i - lead];
    const want = shape[i] === -1 ? have : shape[i];
    if (i < lead && shape[i] === -1) throw new Error(`expand: -1 is not allowed in a leading, non-existing dimension (${formatShape(shape)})`);
    if (have !== want && have !== 1) {
      throw new Error(`expand: the expanded size of the tensor (${want}) must match the existing size (${have}) at non-singleton dimension ${i}. Target sizes: ${formatShape(shape)}. Tensor sizes: ${formatShape(x.shape)}`);
    }
    outShape.push(want);
    strides.push(i < lead || (have === 1 && want !== 1) ? 0 : x.strides[i - lead]);
  }
  if (outShape.every((d, i) => d === x.shape[i]) && outShape.length === x.ndim) return x;
  const out = makeView(x, outShape, strides, x.offset);
  // The engine sums the broadcast gradient back to x's shape.
  return record(out, 'expand', [x], (g) => [g]);
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normalizeDim(dim, x.ndim, 'narrow');
  const size = x.shape[d];
  const s = start < 0 ? start + size : start;
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > size) {
    throw new RangeError(`narrow: start (${start}) + length (${length}) exceeds dimension size (${size}) of dim ${dim} for shape ${formatShape(x.shape)}`);
  }
  return sliceView(x, d, s, length, 1, 'narrow');
}

/** Python-style slice x[start:end:step] along `dim`; negative bounds count from the end, out-of-range bounds clamp. */
export function slice(x: Tensor, dim: number, start?: number, end?: number, step = 1): Tensor {
  const d = normalizeDim(dim, x.ndim, 'slice');
  if (!Number.isInteger(step) || step <= 0) throw new RangeError(`slice: step must be a positive integer, got ${step}`);
  const size = x.shape[d];
  const clampIndex = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const s = start === undefined ? 0 : clampIndex(start);
  const e = end === undefined ? size : clampIndex(end);
  const length = Math.max(0, Math.ceil((e - s) / step));
  return sliceView(x, d, s, length, step, 'slice');
}

function sliceView(x: Tensor, d: number, start: number, length: number, step: number, name: string): Tensor {
  const shape = x.shape.slice();
  const strides = x.strides.slice();
  shape[d] = length;
  strides[d] = x.strides[d] * step;
  const view = (t: Tensor) => makeView(t, shape, strides.map((s, i) => (i === d ? t.strides[d] * step : t.strides[i])), t.offset + start * t.strides[d]);
  const out = view(x);
  return record(out, name, [x], (g) => [scatterBack(x, g, view)]);
}

/** Indexes one position of `dim`, removing it — `x[i]` on dim 0. Negative indices count from the end. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = normalizeDim(dim, x.ndim, 'select');
  const size = x.shape[d];
  if (!Number.isInteger(index) || index < -size || index >= size) {
    throw new RangeError(`select: index ${index} is out of bounds for dimension ${dim} with size ${size} (shape ${formatShape(x.shape)})`);
  }
  const i = index < 0 ? index + size : index;
  const view = (t: Tensor) =>
    makeView(
      t,
      t.shape.filter((_, k) => k !== d),
      t.strides.filter((_, k) => k !== d),
      t.offset + i * t.strides[d],
    );
  const out = view(x);
  return record(out, 'select', [x], (g) => [scatterBack(x, g, view)]);
}
