/** Shape and stride arithmetic shared by tensors and kernels. */

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Normalises a possibly negative dimension, with PyTorch's error message when it is out of range. */
export function normalizeDim(dim: number, rank: number, op: string): number {
  const lo = rank === 0 ? -1 : -rank;
  const hi = rank === 0 ? 0 : rank - 1;
  if (!Number.isInteger(dim) || dim < lo || dim > hi) {
    throw new RangeError(`${op}: dimension ${dim} out of range (expected to be in range of [${lo}, ${hi}])`);
  }
  return dim < 0 ? dim + Math.max(rank, 1) : dim;
}

/** NumPy broadcasting of two shapes, or a clear error naming the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together ` +
          `(dimension ${i}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of `shape`/`strides` as if it had the (broadcast) shape `target`. */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const lead = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    out[lead + i] = shape[i] === 1 && target[lead + i] !== 1 ? 0 : strides[i];
  }
  return out;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/**
 * Whether a tensor's elements fill one gap-free run of `size` storage slots from its offset, in
 * some dim order (a permuted or transposed view of a dense block, e.g. attention heads split out
 * of a projection). Elementwise ops can then run over the run in memory order.
 */
export function isDenseRun(shape: Shape, strides: readonly number[]): boolean {
  const dims: number[] = [];
  for (let i = 0; i < shape.length; i++) if (shape[i] !== 1) dims.push(i);
  dims.sort((x, y) => strides[y] - strides[x]);
  let expected = 1;
  for (let j = dims.length - 1; j >= 0; j--) {
    if (strides[dims[j]] !== expected) return false;
    expected *= shape[dims[j]];
  }
  return true;
}

/**
 * Most elements one tensor may hold: 2^31 − 1, the int32 range of the element indices kernels
 * compute (8 GiB of float32). A larger shape is almost always a mistake (a token count passed as a
 * dimension); without this limit it would fail inside V8 with 'Invalid typed array length'.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

/**
 * Throws a RangeError naming `op` and the shape unless every dimension is a non-negative safe
 * integer and the element count is at most MAX_TENSOR_ELEMENTS.
 */
export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${op}: invalid shape ${formatShape(shape)} (dimensions must be non-negative integers)`);
    }
  }
  const size = shapeSize(shape);
  if (size > MAX_TENSOR_ELEMENTS) {
    throw new RangeError(`${op}: shape ${formatShape(shape)} has ${size} elements, more than the limit of ${MAX_TENSOR_ELEMENTS} (MAX_TENSOR_ELEMENTS)`);
  }
}

/**
 * The element count of a shape about to be allocated: shapeSize, plus one integer comparison that
 * sends anything outside [0, MAX_TENSOR_ELEMENTS] (or fractional, or NaN) to checkShape's error.
 */
export function allocationSize(shape: Shape, op: string): number {
  const size = shapeSize(shape);
  if ((size | 0) !== size || size < 0) {
    checkShape(shape, op);
    throw new RangeError(`${op}: invalid shape ${formatShape(shape)} (${size} elements)`);
  }
  return size;
}

// ---- strided iteration ---------------------------------------------------------------------------
// Shared by ops (matmul's batch loop), the reference kernels and the WASM backend: they all walk
// the same collapsed index spaces, so the helpers live here, below all three.

/**
 * Merges neighbouring dimensions that every operand walks contiguously, and drops size-1 ones,
 * so the common cases (same-shape, bias-add, scalar) become one or two flat loops.
 */
export function collapseDims(shape: Shape, stridesList: (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = stridesList.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && stridesList.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      stridesList.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      stridesList.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  if (outShape.length === 0) {
    outShape.push(1);
    outStrides.forEach((s) => s.push(0));
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * Walks the rows (runs of the innermost dimension) of an N-d index space, keeping the starting
 * offset of every operand. Callers loop over `rows`, read `offsets`, then call `next()`: no
 * closure per row, so short rows (e.g. 32-wide attention heads) stay cheap.
 */
export class RowCursor {
  readonly rows: number;
  readonly length: number;
  readonly offsets: number[];
  private readonly counter: number[];
  constructor(
    private readonly shape: Shape,
    private readonly strides: readonly (readonly number[])[],
    baseOffsets: readonly number[],
  ) {
    const rank = shape.length;
    this.length = shape[rank - 1];
    let rows = 1;
    for (let d = 0; d < rank - 1; d++) rows *= shape[d];
    this.rows = rows;
    this.offsets = baseOffsets.slice();
    this.counter = new Array<number>(rank).fill(0);
  }
  next(): void {
    const { shape, strides, offsets, counter } = this;
    for (let d = shape.length - 2; d >= 0; d--) {
      counter[d]++;
      for (let k = 0; k < offsets.length; k++) offsets[k] += strides[k][d];
      if (counter[d] < shape[d]) return;
      for (let k = 0; k < offsets.length; k++) offsets[k] -= strides[k][d] * shape[d];
      counter[d] = 0;
    }
  }
}

/** Calls `row(offsets, length)` for each innermost run (see RowCursor). */
export function forEachRow(
  shape: Shape,
  strides: readonly (readonly number[])[],
  baseOffsets: readonly number[],
  row: (offsets: number[], length: number) => void,
): void {
  const cursor = new RowCursor(shape, strides, baseOffsets);
  for (let r = 0; r < cursor.rows; r++, cursor.next()) row(cursor.offsets, cursor.length);
}
