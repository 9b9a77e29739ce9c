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
 */
export function tensor(data: NestedArray | TypedArray, options: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const typed = data as TypedArray;
    const shape = options.shape ?? [typed.length];
    if (shapeSize(shape) !== typed.length) throw new Error(`tensor: shape ${formatShape(shape)} needs ${shapeSize(shape)} elements, the array has ${typed.length}`);
    const own = dtypeOfArray(typed);
    const storage = options.dtype && options.dtype !== own ? copyAs(typed, options.dtype) : typed;
    return finish(new Tensor(storage, shape), options);
  }
  const shape = inferShape(data as NestedArray);
  const flat: number[] = [];
  flattenInto(data as NestedArray, shape, 0, flat, []);
  const dtype = options.dtype ?? (containsBoolean(data as NestedArray) ? 'bool' : 'float32');
  const storage = allocate(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) storage[i] = dtype === 'bool' ? (flat[i] !== 0 ? 1 : 0) : flat[i];
  const finalShape = options.shape ?? shape;
  if (shapeSize(finalShape) !== flat.length) throw new Error(`tensor: shape ${formatShape(finalShape)} does not fit ${flat.length} values`);
  return finish(new Tensor(storage, finalShape), options);
}

function copyAs(src: TypedArray, dtype: DType): TypedArray {
  const out = allocate(dtype, src.length);
  for (let i = 0; i < src.length; i++) out[i] = dtype === 'int32' ? Math.trunc(src[i]) : src[i];
  return out;
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  checkShape(shape, 'full');
  const t = Tensor.empty(shape, options.dtype ?? 'float32');
  if (value !== 0) t.storage.fill(value);
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
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dtype = options.dtype ?? ([start, end, step].every(Number.isInteger) ? 'int32' : 'float32');
  const t = Tensor.empty([n], dtype);
  for (let i = 0; i < n; i++) t.storage[i] = start + i * step;
  return finish(t, options);
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`linspace: steps must be a non-negative integer, got ${steps}`);
  const t = Tensor.empty([steps], options.dtype ?? 'float32');
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
  const gen = options.generator ?? defaultGenerator;
  const t = Tensor.empty(shape, options.dtype ?? 'int32');
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
