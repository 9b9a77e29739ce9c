/** Tensor factories, PyTorch-style: tensor, zeros, ones, full, arange, linspace, eye, rand, randn, randint. */
import { allocate, dtypeOfArray, type DType, type TypedArray } from './dtype.js';
import { defaultGenerator, type Generator } from './random.js';
import { checkShape, formatShape, shapeSize, type Shape } from './shape.js';
import { Tensor, type NestedArray } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** `[i, j, …]`: the position of flat element `flat` in a contiguous tensor of `shape`. */
function indexAt(flat: number, shape: Shape): string {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? Math.floor(flat / shape[d]) : 0;
  }
  return `[${index.join(', ')}]`;
}

/**
 * The error for a JS number that `dtype` cannot hold without a silent change, or null when it
 * fits: int32 takes finite numbers whose integer part is in [−2^31, 2^31 − 1] (the fraction is
 * truncated toward zero, as PyTorch's torch.tensor does); bool takes any number but NaN (0 is
 * false, anything else true). float32 takes every number (as PyTorch, rounding to float32).
 */
function valueError(value: number, dtype: DType, op: string, where: string): RangeError | null {
  if (dtype === 'int32') {
    // Both comparisons fail for NaN; ±Infinity fails one.
    if (value > INT32_MIN - 1 && value < INT32_MAX + 1) return null;
    return new RangeError(`${op}: value ${value}${where} does not fit int32 (expected a finite number in [${INT32_MIN}, ${INT32_MAX}]; it would become ${value | 0})`);
  }
  if (dtype === 'bool' && value !== value) return new RangeError(`${op}: value NaN${where} cannot be a bool (expected a number: 0 is false, any other true)`);
  return null;
}

/** Throws unless every value of `values` fits `dtype` (see valueError); one cheap pass, before any copy. */
function checkValues(values: ArrayLike<number>, dtype: DType, op: string, shape: Shape): void {
  if (dtype === 'float32') return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (dtype === 'int32' ? v > INT32_MIN - 1 && v < INT32_MAX + 1 : v === v) continue;
    throw valueError(v, dtype, op, ` at index ${indexAt(i, shape)}`) as RangeError;
  }
}

function checkValue(value: number, dtype: DType, op: string, what: string): void {
  const error = valueError(value, dtype, op, ` (${what})`);
  if (error) throw error;
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Shape of a (possibly ragged) nested array, or a clear error pointing at the ragged spot. */
function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = (level as readonly NestedArray[])[0];
  }
  return shape;
}

function flattenInto(data: NestedArray, shape: number[], dim: number, out: number[], path: number[]): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw new Error(`tensor: ragged nested array at index [${path.join(', ')}] (expected a number)`);
    const v = typeof data === 'boolean' ? (data ? 1 : 0) : (data as number);
    if (typeof v !== 'number') throw new TypeError(`tensor: expected numbers, got ${typeof data} at index [${path.join(', ')}]`);
    out.push(v);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new Error(
      `tensor: ragged nested array: expected length ${shape[dim]} at dim ${dim} (index [${path.join(', ')}]), got ${Array.isArray(data) ? data.length : 'a number'}`,
    );
  }
  (data as readonly NestedArray[]).forEach((item, i) => flattenInto(item, shape, dim + 1, out, [...path, i]));
}

function containsBoolean(data: NestedArray): boolean {
  if (typeof data === 'boolean') return true;
  return Array.isArray(data) && data.length > 0 && containsBoolean((data as readonly NestedArray[])[0]);
}

/**
 * A tensor from nested arrays, a typed array (shape defaults to 1-D) or a number (0-d).
 * The typed array is used as storage without copying; dtype defaults to float32 (bool for booleans).
 *
 * Values are checked against the dtype instead of being changed silently: int32 takes finite
 * numbers in [−2^31, 2^31 − 1] (fractions truncate toward zero, as in PyTorch), bool any number
 * but NaN; anything else (1e10 or NaN as int32, NaN as bool) is a RangeError naming the value, its
 * index and the range. PyTorch's torch.tensor raises on overflow too. (A conversion of an existing
 * tensor, `t.to('int32')`, is not checked: see Tensor.to.)
 */
export function tensor(data: NestedArray | TypedArray, options: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const typed = data as TypedArray;
    const shape = options.shape ?? [typed.length];
    checkShape(shape, 'tensor');
    if (shapeSize(shape) !== typed.length) throw new Error(`tensor: shape ${formatShape(shape)} needs ${shapeSize(shape)} elements, the array has ${typed.length}`);
    const own = dtypeOfArray(typed);
    if (options.dtype && options.dtype !== own && own === 'float32') checkValues(typed, options.dtype, 'tensor', shape);
    const storage = options.dtype && options.dtype !== own ? copyAs(typed, options.dtype) : typed;
    return finish(new Tensor(storage, shape), options);
  }
  const shape = inferShape(data as NestedArray);
  if (options.shape !== undefined) checkShape(options.shape, 'tensor');
  const flat: number[] = [];
  flattenInto(data as NestedArray, shape, 0, flat, []);
  const dtype = options.dtype ?? (containsBoolean(data as NestedArray) ? 'bool' : 'float32');
  checkValues(flat, dtype, 'tensor', shape);
  const storage = allocate(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) storage[i] = dtype === 'bool' ? (flat[i] !== 0 ? 1 : 0) : flat[i];
  const finalShape = options.shape ?? shape;
  if (shapeSize(finalShape) !== flat.length) throw new Error(`tensor: shape ${formatShape(finalShape)} does not fit ${flat.length} values`);
  return finish(new Tensor(storage, finalShape), options);
}

function copyAs(src: TypedArray, dtype: DType): TypedArray {
  const out = allocate(dtype, src.length);
  for (let i = 0; i < src.length; i++) out[i] = dtype === 'int32' ? Math.trunc(src[i]) : dtype === 'bool' ? (src[i] !== 0 ? 1 : 0) : src[i];
  return out;
}

/** A tensor of `shape` filled with `value`, which must fit the dtype (as for `tensor`; bool stores 0 or 1). */
export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  checkShape(shape, 'full');
  const dtype = options.dtype ?? 'float32';
  checkValue(value, dtype, 'full', 'the fill value');
  const t = Tensor.empty(shape, dtype);
  if (value !== 0) t.storage.fill(dtype === 'bool' ? 1 : value);
  return finish(t, options);
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return zeros(t.shape, { dtype: t.dtype, ...options });
}

export function onesLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return ones(t.shape, { dtype: t.dtype, ...options });
}

export function fullLike(t: Tensor, value: number, options: TensorOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, ...options });
}

/**
 * Values start, start+step, … below end. `arange(5)` is [0..4]. The dtype is int32 when all
 * arguments are integers (as in PyTorch), else float32.
 */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new RangeError('arange: step must be nonzero');
  if (![start, end, step].every(Number.isFinite)) throw new RangeError(`arange: start, end and step must be finite numbers, got ${start}, ${end}, ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  checkShape([n], 'arange');
  const dtype = options.dtype ?? ([start, end, step].every(Number.isInteger) ? 'int32' : 'float32');
  if (n > 0) {
    checkValue(start, dtype, 'arange', 'the first value');
    checkValue(start + (n - 1) * step, dtype, 'arange', 'the last value');
  }
  const t = Tensor.empty([n], dtype);
  for (let i = 0; i < n; i++) t.storage[i] = start + i * step;
  return finish(t, options);
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`linspace: steps must be a non-negative integer, got ${steps}`);
  checkShape([steps], 'linspace');
  const dtype = options.dtype ?? 'float32';
  if (steps > 0) {
    checkValue(start, dtype, 'linspace', 'start');
    checkValue(end, dtype, 'linspace', 'end');
  }
  const t = Tensor.empty([steps], dtype);
  const delta = steps > 1 ? (end - start) / (steps - 1) : 0;
  for (let i = 0; i < steps; i++) t.storage[i] = i === steps - 1 ? end : start + i * delta;
  return finish(t, options);
}

export function eye(n: number, m = n, options: TensorOptions = {}): Tensor {
  const t = zeros([n, m], options);
  for (let i = 0; i < Math.min(n, m); i++) t.storage[i * m + i] = 1;
  return t;
}

/** Uniform samples in [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, 'rand');
  const gen = options.generator ?? defaultGenerator;
  const t = Tensor.empty(shape, 'float32');
  for (let i = 0; i < t.storage.length; i++) t.storage[i] = gen.random();
  return finish(t, options);
}

/** Standard normal samples. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, 'randn');
  const gen = options.generator ?? defaultGenerator;
  const t = Tensor.empty(shape, 'float32');
  for (let i = 0; i < t.storage.length; i++) t.storage[i] = gen.normal();
  return finish(t, options);
}

/** Integers uniformly in [low, high), int32 by default. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, 'randint');
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  const dtype = options.dtype ?? 'int32';
  if (dtype === 'int32') {
    checkValue(low, dtype, 'randint', 'low');
    checkValue(high - 1, dtype, 'randint', 'high − 1');
  }
  const gen = options.generator ?? defaultGenerator;
  const t = Tensor.empty(shape, dtype);
  for (let i = 0; i < t.storage.length; i++) t.storage[i] = gen.randint(low, high);
  return finish(t, options);
}

/** A random permutation of 0..n-1 (Fisher–Yates). */
export function randperm(n: number, options: RandomOptions = {}): Tensor {
  const gen = options.generator ?? defaultGenerator;
  const t = arange(n, undefined, 1, { dtype: 'int32' });
  const a = t.storage;
  for (let i = n - 1; i > 0; i--) {
    const j = gen.randint(0, i + 1);
    const tmp = a[i];
    a[i] = a[j];
    a[j] = tmp;
  }
  return t;
}
