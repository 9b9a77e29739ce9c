/**
 * Elementwise ops with NumPy broadcasting. Each op: forward through a kernel, backward beside it.
 * Gradients are returned at the broadcast shape; the autograd engine sums them back to each input.
 */
import { record } from '../autograd/engine.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { kernels } from '../backends/registry.js';
import type { BinaryOp, StridedArray, UnaryOp } from '../backends/kernels.js';
import { allocate, allocateUninitialized, promoteTypes, type DType } from '../tensor/dtype.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, isContiguous, isDenseRun, shapeSize, shapesEqual } from '../tensor/shape.js';
import { Tensor, type TensorLike } from '../tensor/tensor.js';

/** A number becomes a 0-d tensor: float32 unless it is an integer next to an integer tensor. */
export function toTensor(value: TensorLike, like?: Tensor): Tensor {
  if (value instanceof Tensor) return value;
  if (typeof value !== 'number') throw new TypeError(`expected a Tensor or a number, got ${typeof value}`);
  const dtype: DType = like && like.dtype !== 'float32' && Number.isInteger(value) ? 'int32' : 'float32';
  const out = Tensor.empty([], dtype);
  out.storage[0] = value;
  return out;
}

export function strided(t: Tensor, shape?: readonly number[]): StridedArray {
  return { data: t.storage, offset: t.offset, strides: shape ? broadcastStrides(t.shape, t.strides, shape) : t.strides };
}

/** The tensor's elements as a contiguous run: its own storage when possible, else a packed copy. */
export function contiguousData(t: Tensor): { data: Tensor['storage']; offset: number } {
  if (isContiguous(t.shape, t.strides)) return { data: t.storage, offset: t.offset };
  const out = allocate(t.dtype, t.size);
  kernels.copy(t.shape, strided(t), { data: out, offset: 0, strides: contiguousStrides(t.shape) });
  return { data: out, offset: 0 };
}

/**
 * t's elements in row-major order as exactly t.size floats: the storage itself when it is that,
 * a subarray of it when t is a contiguous window, a copy otherwise. For the fused ops, whose loops
 * and kernels take a bare array.
 */
export function floatData(t: Tensor): Float32Array {
  const { data, offset } = contiguousData(t);
  return (offset === 0 && data.length === t.size ? data : data.subarray(offset, offset + t.size)) as Float32Array;
}

/** Like floatData, for int32 tensors (class targets, token ids). */
export function intData(t: Tensor): Int32Array {
  const { data, offset } = contiguousData(t);
  return (offset === 0 && data.length === t.size ? data : data.subarray(offset, offset + t.size)) as Int32Array;
}

// ---- unary -------------------------------------------------------------------------------------

/** Ops that keep an integer dtype; every other unary op computes in float32. */
const INTEGER_PRESERVING = new Set<UnaryOp>(['neg', 'abs', 'sign', 'square', 'relu']);

function unaryForward(op: UnaryOp, x: Tensor): Tensor {
  const dtype: DType = op === 'logicalNot' ? 'bool' : x.dtype === 'float32' || !INTEGER_PRESERVING.has(op) ? 'float32' : x.dtype === 'bool' ? 'int32' : x.dtype;
  const out = Tensor.uninitialized(x.shape, dtype);
  const { data, offset } = contiguousData(x);
  kernels.unary(op, data, offset, x.size, out.storage);
  return out;
}

/** Defines a differentiable unary op from its kernel and its derivative rule. */
function unaryOp(op: UnaryOp, grad: (g: Tensor, x: Tensor, out: Tensor) => Tensor) {
  return (x: Tensor): Tensor => {
    const out = unaryForward(op, x);
    return record(out, op, [x], (g) => [grad(g, x, out)]);
  };
}

/** Backward kernels like reluBackward take (x, upstream) and return the input gradient in one pass. */
function kernelGrad(op: BinaryOp) {
  return (g: Tensor, x: Tensor): Tensor => binaryForward(op, x, g, 'float32');
}

export const neg = unaryOp('neg', (g) => neg(g));
export const exp = unaryOp('exp', (g, _x, out) => mul(g, out));
export const log = unaryOp('log', (g, x) => div(g, x));
export const sqrt = unaryOp('sqrt', (g, _x, out) => div(g, mul(out, 2)));
export const rsqrt = unaryOp('rsqrt', (g, _x, out) => mul(mul(g, pow(out, 3)), -0.5));
export const abs = unaryOp('abs', (g, x) => mul(g, sign(x)));
export const sign = unaryOp('sign', (g) => mul(g, 0));
export const square = unaryOp('square', (g, x) => mul(g, mul(x, 2)));
export const sin = unaryOp('sin', (g, x) => mul(g, cos(x)));
export const cos = unaryOp('cos', (g, x) => neg(mul(g, sin(x))));
export const tanh = unaryOp('tanh', (g, _x, out) => mul(g, sub(1, square(out))));
export const sigmoid = unaryOp('sigmoid', (g, _x, out) => mul(g, mul(out, sub(1, out))));
export const relu = unaryOp('relu', kernelGrad('reluBackward'));
const geluInference = unaryOp('gelu', kernelGrad('geluBackward'));
/**
 * Exact GELU. When a graph is recorded, the forward pass also writes GELU's derivative (one fused
 * kernel: the erf is evaluated once), and the backward is g·derivative — one multiply instead of
 * re-evaluating erf and exp; the cost is one saved activation-sized tensor.
 */
export function gelu(x: Tensor): Tensor {
  if (!isGradEnabled() || !x.requiresGrad || x.dtype !== 'float32') return geluInference(x);
  const out = Tensor.uninitialized(x.shape, 'float32');
  const derivative = Tensor.uninitialized(x.shape, 'float32');
  const { data, offset } = contiguousData(x);
  kernels.geluWithDerivative({ x: data as Float32Array, xOffset: offset, n: x.size, out: out.storage as Float32Array, deriv: derivative.storage as Float32Array });
  return record(out, 'gelu', [x], (g) => [mul(g, derivative)], [derivative]);
}
export const geluTanh = unaryOp('geluTanh', kernelGrad('geluTanhBackward'));
export const silu = unaryOp('silu', kernelGrad('siluBackward'));

export function logicalNot(x: Tensor): Tensor {
  return unaryForward('logicalNot', x);
}

// ---- binary ------------------------------------------------------------------------------------

const isScalarLike = (t: Tensor): boolean => t.size === 1;

/**
 * A binary op between a permuted dense view and a scalar (or a view with the same layout) keeps
 * that layout, as PyTorch's TensorIterator does: one flat pass in memory order instead of a strided
 * walk (10× slower for the [B, H, T, D] head views), and the output is a view of the same order.
 */
function layoutPreservingBinary(op: BinaryOp, a: Tensor, b: Tensor, shape: readonly number[], dtype: DType): Tensor | null {
  const dense = isScalarLike(a) ? b : a;
  const other = dense === a ? b : a;
  if (dense.ndim !== shape.length || dense.size !== shapeSize(shape) || dense.size < 1024) return null;
  if (isContiguous(dense.shape, dense.strides)) return null;
  if (!isDenseRun(dense.shape, dense.strides)) return null;
  const sameLayout = (t: Tensor) => shapesEqual(t.shape, dense.shape) && t.strides.every((s, i) => s === dense.strides[i] || dense.shape[i] === 1);
  if (!isScalarLike(other) && !sameLayout(other)) return null;
  const n = dense.size;
  const flat = (t: Tensor): StridedArray => ({ data: t.storage, offset: t.offset, strides: [isScalarLike(t) ? 0 : 1] });
  const storage = allocateUninitialized(dtype, n);
  kernels.binary(op, [n], flat(a), flat(b), storage);
  // The output is a fresh run with the dense operand's strides (its first element at slot 0).
  return new Tensor(storage, shape, dense.strides, 0, dtype);
}

function binaryForward(op: BinaryOp, a: Tensor, b: Tensor, dtype: DType): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const preserved = layoutPreservingBinary(op, a, b, shape, dtype);
  if (preserved) return preserved;
  const out = Tensor.uninitialized(shape, dtype);
  kernels.binary(op, shape, strided(a, shape), strided(b, shape), out.storage);
  return out;
}

function arithmetic(op: BinaryOp, a: TensorLike, b: TensorLike): { x: Tensor; y: Tensor; out: Tensor } {
  const x = a instanceof Tensor ? a : toTensor(a, b instanceof Tensor ? b : undefined);
  const y = toTensor(b, x);
  let dtype = promoteTypes(x.dtype, y.dtype);
  if (op === 'div' || (op === 'pow' && y.dtype === 'float32')) dtype = 'float32';
  return { x, y, out: binaryForward(op, x, y, dtype) };
}

/**
 * target ← target + addend, in place and outside autograd, for a dense contiguous float32 `target`
 * that nothing else reads (the engine's gradient accumulation); `addend` broadcasts to it.
 */
export function addInto(target: Tensor, addend: Tensor): void {
  kernels.binary('add', target.shape, strided(target), strided(addend, target.shape), target.storage);
}

export function add(a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic('add', a, b);
  return record(out, 'add', [x, y], (g) => [g, g]);
}

export function sub(a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic('sub', a, b);
  return record(out, 'sub', [x, y], (g) => [g, neg(g)]);
}

export function mul(a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic('mul', a, b);
  return record(out, 'mul', [x, y], (g) => [x.requiresGrad ? mul(g, y) : null, y.requiresGrad ? mul(g, x) : null]);
}

export function div(a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic('div', a, b);
  return record(out, 'div', [x, y], (g) => [x.requiresGrad ? div(g, y) : null, y.requiresGrad ? neg(div(mul(g, out), y)) : null]);
}

export function pow(a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic('pow', a, b);
  return record(out, 'pow', [x, y], (g) => [
    // d/dx x^y = y·x^(y-1); for the exponent, d/dy x^y = x^y·ln x
    x.requiresGrad ? mul(g, mul(y, pow(x, sub(y, 1)))) : null,
    y.requiresGrad ? mul(g, mul(out, log(x))) : null,
  ]);
}

/** maximum/minimum: the gradient goes to the winner, split evenly on ties (as PyTorch does). */
function extremum(op: 'maximum' | 'minimum', a: TensorLike, b: TensorLike): Tensor {
  const { x, y, out } = arithmetic(op, a, b);
  return record(out, op, [x, y], (g) => {
    const half = mul(g, 0.5);
    const wins = (p: Tensor, q: Tensor) => where(compare('eq', p, q), half, where(compare(op === 'maximum' ? 'gt' : 'lt', p, q), g, 0));
    return [x.requiresGrad ? wins(x, y) : null, y.requiresGrad ? wins(y, x) : null];
  });
}

export function maximum(a: TensorLike, b: TensorLike): Tensor {
  return extremum('maximum', a, b);
}

export function minimum(a: TensorLike, b: TensorLike): Tensor {
  return extremum('minimum', a, b);
}

export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'logicalAnd' | 'logicalOr';

/** Comparisons and logical ops give bool tensors and carry no gradient. */
export function compare(op: CompareOp, a: TensorLike, b: TensorLike): Tensor {
  const x = a instanceof Tensor ? a : toTensor(a, b instanceof Tensor ? b : undefined);
  return binaryForward(op, x, toTensor(b, x), 'bool');
}

/** Elements of a where cond is true, else of b (torch.where). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const x = a instanceof Tensor ? a : toTensor(a, b instanceof Tensor ? b : undefined);
  const y = toTensor(b, x);
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, 'where'), y.shape, 'where');
  const out = Tensor.uninitialized(shape, promoteTypes(x.dtype, y.dtype));
  kernels.where(shape, strided(cond, shape), strided(x, shape), strided(y, shape), out.storage);
  return record(out, 'where', [x, y], (g) => [x.requiresGrad ? where(cond, g, 0) : null, y.requiresGrad ? where(cond, 0, g) : null]);
}

/** Limits values to [min, max]; the gradient flows where min ≤ x ≤ max (PyTorch's convention). */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min === undefined && max === undefined) throw new Error('clamp: at least one of min or max must be given');
  let out = Tensor.empty(x.shape, x.dtype);
  const shape = x.shape;
  let current: Tensor = x;
  if (min !== undefined) {
    kernels.binary('maximum', shape, strided(current), strided(toTensor(min, x), shape), out.storage);
    current = out;
  }
  if (max !== undefined) {
    const next = Tensor.empty(x.shape, x.dtype);
    kernels.binary('minimum', shape, strided(current), strided(toTensor(max, x), shape), next.storage);
    out = next;
  }
  return record(out, 'clamp', [x], (g) => {
    let pass: Tensor | null = null;
    if (min !== undefined) pass = compare('ge', x, min);
    if (max !== undefined) pass = pass ? compare('logicalAnd', pass, compare('le', x, max)) : compare('le', x, max);
    return [where(pass as Tensor, g, 0)];
  });
}

/** A dtype conversion; float → int truncates toward zero like PyTorch. Differentiable float → float only. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = Tensor.uninitialized(x.shape, dtype);
  const { data, offset } = contiguousData(x);
  const n = shapeSize(x.shape);
  if (dtype === 'bool') for (let i = 0; i < n; i++) out.storage[i] = data[offset + i] !== 0 ? 1 : 0;
  else if (dtype === 'int32') for (let i = 0; i < n; i++) out.storage[i] = Math.trunc(data[offset + i]);
  else for (let i = 0; i < n; i++) out.storage[i] = data[offset + i];
  return out;
}
