/**
 * The Tensor: a typed array the garbage collector owns, plus shape, strides and an offset.
 * Views (reshape, transpose, narrow, expand, …) share the array and change only the metadata.
 * There is no dispose(): memory is reclaimed when the last tensor viewing it becomes unreachable.
 *
 * The methods here are thin: each forwards to the op in `src/ops/`, where the forward and the
 * backward of that op are written side by side.
 */
import { backward as runBackward, type BackwardOptions, type GradFn } from '../autograd/engine.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
// The kernels' live binding. Which backends exist is up to the program's entry point (src/index.ts,
// src/browser.ts set an installer), so importing Tensor loads nothing and chooses nothing.
import { kernels } from '../backends/registry.js';
import * as ew from '../ops/elementwise.js';
import * as idx from '../ops/indexing.js';
import { matmul } from '../ops/matmul.js';
import * as red from '../ops/reduce.js';
import { logSoftmax, softmax } from '../ops/softmax.js';
import * as views from '../ops/views.js';
import { allocate, allocateUninitialized, type DType, type TypedArray } from './dtype.js';
import { allocationSize, contiguousStrides, formatShape, isContiguous, shapeSize, type Shape } from './shape.js';
import { formatTensor } from './format.js';

export type TensorLike = Tensor | number;
/** A nested array of numbers or booleans, e.g. [[1, 2], [3, 4]]. */
export type NestedArray = number | boolean | readonly NestedArray[];

export interface MaxResult {
  values: Tensor;
  indices: Tensor;
}

export class Tensor {
  /** The backing array, shared by all views of it. */
  readonly storage: TypedArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Index of element [0, 0, …] in `storage`. */
  readonly offset: number;
  readonly dtype: DType;
  /** Accumulated gradient, set by `backward()` on leaves (and on tensors that `retainGrad()`). */
  grad: Tensor | null = null;
  private _requiresGrad = false;
  private _gradFn: GradFn | null = null;
  private _retainsGrad = false;

  constructor(storage: TypedArray, shape: Shape, strides?: readonly number[], offset = 0, dtype?: DType) {
    this.storage = storage;
    // Copied, not frozen (the types make them readonly): frozen arrays are another elements kind
    // in V8, and mixing them with plain ones made every shape-handling function polymorphic —
    // decoding ran 25% slower.
    this.shape = shape.slice();
    this.strides = strides ? strides.slice() : contiguousStrides(shape);
    this.offset = offset;
    this.dtype = dtype ?? (storage instanceof Float32Array ? 'float32' : storage instanceof Int32Array ? 'int32' : 'bool');
  }

  /** A new contiguous tensor of zeros (the op layer's allocation primitive). */
  static empty(shape: Shape, dtype: DType = 'float32'): Tensor {
    return new Tensor(allocate(dtype, allocationSize(shape, 'Tensor.empty')), shape);
  }

  /** A new contiguous tensor with unspecified contents, for op outputs a kernel fully overwrites. */
  static uninitialized(shape: Shape, dtype: DType = 'float32'): Tensor {
    return new Tensor(allocateUninitialized(dtype, allocationSize(shape, 'Tensor.uninitialized')), shape);
  }

  // ---- metadata -------------------------------------------------------------------------------

  get ndim(): number {
    return this.shape.length;
  }
  /** Number of elements (PyTorch's numel()). */
  get size(): number {
    return shapeSize(this.shape);
  }
  numel(): number {
    return this.size;
  }
  dim(): number {
    return this.shape.length;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  // ---- autograd -------------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(value: boolean) {
    if (value && this.dtype !== 'float32') {
      throw new TypeError(`requiresGrad: only float32 tensors can require gradients, this one is ${this.dtype}`);
    }
    if (!value && this._gradFn !== null) {
      throw new Error('requiresGrad: cannot turn off gradients of a non-leaf tensor; use detach()');
    }
    this._requiresGrad = value;
  }
  /** In-place setter returning this, like `tensor.requires_grad_()`. */
  requiresGrad_(value = true): this {
    this.requiresGrad = value;
    return this;
  }
  get gradFn(): GradFn | null {
    return this._gradFn;
  }
  /** Used by `record()` only: marks this tensor as the output of a differentiable op. */
  setGradFn(fn: GradFn): void {
    this._gradFn = fn;
    this._requiresGrad = true;
  }
  get isLeaf(): boolean {
    return this._gradFn === null;
  }
  get retainsGrad(): boolean {
    return this._retainsGrad;
  }
  /** Keep `.grad` on this non-leaf tensor after backward. */
  retainGrad(): this {
    this._retainsGrad = true;
    return this;
  }
  /**
   * Backpropagates from this tensor into the `.grad` of the leaves; scalar outputs need no
   * gradient argument. In a training loop pass `{ recycleIntermediates: true }`: the graph's
   * activations then go back to the buffer pool for the next step, as in TensorLM's own loops
   * (fewer allocations and GC pauses) — read what you need first (`loss.item()` stays valid; the
   * logits and other results computed on the way to this tensor do not).
   *
   *   loss.backward();                                  // like PyTorch
   *   loss.backward({ recycleIntermediates: true });    // the fast path of a training loop
   *   y.backward(gradient, { recycleIntermediates: true });
   */
  backward(gradient?: Tensor | BackwardOptions, options?: BackwardOptions): void {
    if (gradient === undefined || gradient instanceof Tensor) runBackward(this, gradient, options);
    else runBackward(this, undefined, gradient);
  }
  /** The same data, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset, this.dtype);
  }

  // ---- conversion -----------------------------------------------------------------------------

  /** Element at a flat (row-major) position, for the few places that need scalar access. */
  private flatIndexToOffset(i: number): number {
    let off = this.offset;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      const n = this.shape[d];
      off += (i % n) * this.strides[d];
      i = Math.floor(i / n);
    }
    return off;
  }
  /** The value of a one-element tensor as a number. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: only one-element tensors can be converted to a number, got shape ${formatShape(this.shape)}`);
    return this.storage[this.flatIndexToOffset(0)];
  }
  /** A contiguous copy of the values as a typed array of the tensor's dtype. */
  toTypedArray(): TypedArray {
    const c = this.contiguous();
    if (c.offset === 0 && c.storage.length === c.size) return c === this ? c.storage.slice() : c.storage;
    return c.storage.slice(c.offset, c.offset + c.size);
  }
  /** Values as a flat number array (row-major). */
  toArray(): number[] {
    return Array.from(this.toTypedArray());
  }
  /** Values as nested arrays, like `tensor.tolist()`; a 0-d tensor gives a number. */
  tolist(): NestedArray {
    const flat = this.toTypedArray();
    const asValue = (v: number): number | boolean => (this.dtype === 'bool' ? v !== 0 : v);
    const build = (dim: number, start: number): NestedArray => {
      if (dim === this.ndim) return asValue(flat[start]);
      const n = this.shape[dim];
      const step = shapeSize(this.shape.slice(dim + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++) out.push(build(dim + 1, start + i * step));
      return out;
    };
    return build(0, 0);
  }
  toString(): string {
    return formatTensor(this);
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
  /**
   * A converted copy (or this tensor when the dtype already matches), like `tensor.to(dtype)`.
   * As in PyTorch, a conversion is not checked element by element: float → int32 truncates toward
   * zero, and NaN, ±Infinity or values outside int32's range come out as JavaScript's ToInt32 makes
   * them (NaN → 0, 2^32 + k → k); → bool is `value !== 0` (NaN → true). Check the values first (a
   * comparison with the range, `x.ne(x)` for NaN) where such values may occur. Creating a tensor from JS numbers
   * (`tensor`, `full`, `arange`, …) checks instead and throws.
   */
  to(dtype: DType): Tensor {
    return ew.cast(this, dtype);
  }
  float(): Tensor {
    return this.to('float32');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }

  // ---- memory and views ----------------------------------------------------------------------

  contiguous(): Tensor {
    return views.contiguous(this);
  }
  clone(): Tensor {
    return views.clone(this);
  }
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return views.reshape(this, flattenShapeArgs(shape));
  }
  view(...shape: number[] | [readonly number[]]): Tensor {
    return views.view(this, flattenShapeArgs(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return views.flatten(this, startDim, endDim);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return views.transpose(this, dim0, dim1);
  }
  /** Transpose of a matrix (≤ 2-D), like `tensor.t()`. */
  t(): Tensor {
    if (this.ndim > 2) throw new Error(`t: expects a tensor with <= 2 dimensions, but got ${this.ndim}; use transpose(dim0, dim1)`);
    return this.ndim < 2 ? this : this.transpose(0, 1);
  }
  /** Transpose of the last two dimensions (PyTorch's `mT`). */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  permute(...dims: number[] | [readonly number[]]): Tensor {
    return views.permute(this, flattenShapeArgs(dims));
  }
  unsqueeze(dim: number): Tensor {
    return views.unsqueeze(this, dim);
  }
  squeeze(dim?: number): Tensor {
    return views.squeeze(this, dim);
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return views.expand(this, flattenShapeArgs(shape));
  }
  expandAs(other: Tensor): Tensor {
    return views.expand(this, other.shape);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return views.narrow(this, dim, start, length);
  }
  /** Elements start ≤ i < end (negative counts from the end) with a step, like `x[:, start:end:step]`. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return views.slice(this, dim, start, end, step);
  }
  /** Removes `dim` by taking one index, like `x[:, i]`. */
  select(dim: number, index: number): Tensor {
    return views.select(this, dim, index);
  }
  /** `x.get(i, j)` is `x[i, j]`: integer indices on the leading dimensions. */
  get(...indices: number[]): Tensor {
    let out: Tensor = this;
    for (const i of indices) out = out.select(0, i);
    return out;
  }

  // ---- elementwise ---------------------------------------------------------------------------

  add(other: TensorLike, alpha?: number): Tensor {
    return ew.add(this, alpha === undefined ? other : ew.mul(ew.toTensor(other, this), alpha));
  }
  sub(other: TensorLike, alpha?: number): Tensor {
    return ew.sub(this, alpha === undefined ? other : ew.mul(ew.toTensor(other, this), alpha));
  }
  mul(other: TensorLike): Tensor {
    return ew.mul(this, other);
  }
  div(other: TensorLike): Tensor {
    return ew.div(this, other);
  }
  pow(exponent: TensorLike): Tensor {
    return ew.pow(this, exponent);
  }
  maximum(other: TensorLike): Tensor {
    return ew.maximum(this, other);
  }
  minimum(other: TensorLike): Tensor {
    return ew.minimum(this, other);
  }
  neg(): Tensor {
    return ew.neg(this);
  }
  exp(): Tensor {
    return ew.exp(this);
  }
  log(): Tensor {
    return ew.log(this);
  }
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  rsqrt(): Tensor {
    return ew.rsqrt(this);
  }
  abs(): Tensor {
    return ew.abs(this);
  }
  sign(): Tensor {
    return ew.sign(this);
  }
  square(): Tensor {
    return ew.square(this);
  }
  sin(): Tensor {
    return ew.sin(this);
  }
  cos(): Tensor {
    return ew.cos(this);
  }
  tanh(): Tensor {
    return ew.tanh(this);
  }
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  relu(): Tensor {
    return ew.relu(this);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return ew.clamp(this, min ?? undefined, max ?? undefined);
  }
  eq(other: TensorLike): Tensor {
    return ew.compare('eq', this, other);
  }
  ne(other: TensorLike): Tensor {
    return ew.compare('ne', this, other);
  }
  lt(other: TensorLike): Tensor {
    return ew.compare('lt', this, other);
  }
  le(other: TensorLike): Tensor {
    return ew.compare('le', this, other);
  }
  gt(other: TensorLike): Tensor {
    return ew.compare('gt', this, other);
  }
  ge(other: TensorLike): Tensor {
    return ew.compare('ge', this, other);
  }
  logicalAnd(other: TensorLike): Tensor {
    return ew.compare('logicalAnd', this, other);
  }
  logicalOr(other: TensorLike): Tensor {
    return ew.compare('logicalOr', this, other);
  }
  logicalNot(): Tensor {
    return ew.logicalNot(this);
  }
  /** Elements of this where `condition` is false, `other` where true: `torch.where(cond, other, x)` */
  maskedFill(mask: Tensor, value: number): Tensor {
    return idx.maskedFill(this, mask, value);
  }
  onesLike(): Tensor {
    const out = Tensor.empty(this.shape, this.dtype);
    out.storage.fill(1);
    return out;
  }
  zerosLike(): Tensor {
    return Tensor.empty(this.shape, this.dtype);
  }

  // ---- reductions ----------------------------------------------------------------------------

  sum(dim?: number | readonly number[] | null, keepdim = false): Tensor {
    return red.sum(this, dim, keepdim);
  }
  mean(dim?: number | readonly number[] | null, keepdim = false): Tensor {
    return red.mean(this, dim, keepdim);
  }
  /** Without a dim: the maximum value. With a dim: `{ values, indices }`, like `torch.max(x, dim)`. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): MaxResult;
  max(dim?: number, keepdim = false): Tensor | MaxResult {
    return dim === undefined ? red.maxAll(this, 'max') : red.maxDim(this, 'max', dim, keepdim);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): MaxResult;
  min(dim?: number, keepdim = false): Tensor | MaxResult {
    return dim === undefined ? red.maxAll(this, 'min') : red.maxDim(this, 'min', dim, keepdim);
  }
  /** Maximum values over dims (no indices), like `torch.amax`. */
  amax(dim?: number | readonly number[] | null, keepdim = false): Tensor {
    return red.amax(this, 'max', dim, keepdim);
  }
  amin(dim?: number | readonly number[] | null, keepdim = false): Tensor {
    return red.amax(this, 'min', dim, keepdim);
  }
  argmax(dim?: number | null, keepdim = false): Tensor {
    return red.argReduce(this, 'argmax', dim, keepdim);
  }
  argmin(dim?: number | null, keepdim = false): Tensor {
    return red.argReduce(this, 'argmin', dim, keepdim);
  }
  /** Variance with Bessel's correction by default (`correction: 1`), like `torch.var`. */
  var(dim?: number | readonly number[] | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return red.variance(this, dim, options.correction ?? 1, options.keepdim ?? false);
  }
  std(dim?: number | readonly number[] | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return this.var(dim, options).sqrt();
  }
  logsumexp(dim: number | readonly number[], keepdim = false): Tensor {
    return red.logsumexp(this, dim, keepdim);
  }

  // ---- linear algebra, softmax, indexing --------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return matmul(this, other);
  }
  softmax(dim: number): Tensor {
    return softmax(this, dim);
  }
  logSoftmax(dim: number): Tensor {
    return logSoftmax(this, dim);
  }
  gather(dim: number, index: Tensor): Tensor {
    return idx.gather(this, dim, index);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return idx.indexSelect(this, dim, index);
  }
  /** torch.Tensor.index_add: this with source's slices added at index along dim (a new tensor). */
  indexAdd(dim: number, index: Tensor, source: Tensor): Tensor {
    return idx.indexAdd(this, dim, index, source);
  }
  tril(k = 0): Tensor {
    return idx.tril(this, k);
  }
  triu(k = 0): Tensor {
    return idx.triu(this, k);
  }

  // ---- in-place updates (for optimizers and initialisers; not recorded by autograd) -----------

  private checkInPlace(op: string): void {
    if (isGradEnabled() && this._requiresGrad) {
      throw new Error(`${op}: a tensor that requires grad cannot be modified in place outside noGrad()`);
    }
  }
  /** Copies `src` (broadcast to this shape) into this tensor's elements. */
  copy_(src: TensorLike): this {
    this.checkInPlace('copy_');
    const s = ew.toTensor(src, this);
    const b = s.expand(this.shape);
    kernels.copy(this.shape, { data: b.storage, offset: b.offset, strides: b.strides }, { data: this.storage, offset: this.offset, strides: this.strides });
    return this;
  }
  fill_(value: number): this {
    return this.copy_(value);
  }
  zero_(): this {
    return this.copy_(0);
  }
  /** this ← this + alpha·other */
  add_(other: TensorLike, alpha = 1): this {
    this.checkInPlace('add_');
    return this.copy_(ew.add(this, alpha === 1 ? other : ew.mul(ew.toTensor(other, this), alpha)));
  }
  mul_(other: TensorLike): this {
    this.checkInPlace('mul_');
    return this.copy_(ew.mul(this, other));
  }
}

function flattenShapeArgs(args: number[] | [readonly number[]]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return (args[0] as readonly number[]).slice();
  return args as number[];
}
