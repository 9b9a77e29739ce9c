/** Reference elementwise kernels: scalar formulas and strided loops, written for clarity first. */
import { erf as erfFit } from '../../math.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { collapseDims, contiguousStrides, RowCursor } from '../../tensor/shape.js';
import type { BinaryOp, GeluWithDerivativeArgs, StridedArray, UnaryOp } from '../kernels.js';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_TANH_C = Math.sqrt(2 / Math.PI);

/** erf to ~1e-7 absolute (Abramowitz & Stegun 7.1.26 is not enough near 0, so use W. J. Cody's series split). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 0.5) {
    // Maclaurin series: converges fast for small |x|.
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 12; n++) {
      term *= -x2 / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Beyond, Numerical Recipes' erfcc fit (1.2e-7 relative on erfc), shared with tune's normal CDF.
  return erfFit(x);
}

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

const unaryFunctions: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  sign: Math.sign,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x > 0 ? x : 0),
  square: (x) => x * x,
  sin: Math.sin,
  cos: Math.cos,
  gelu: (x) => 0.5 * x * (1 + erf(x * SQRT1_2)),
  geluTanh: (x) => 0.5 * x * (1 + Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x))),
  silu: (x) => x * sigmoid(x),
  logicalNot: (x) => (x === 0 ? 1 : 0),
};

const binaryFunctions: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a > b || Number.isNaN(a) ? a : b),
  minimum: (a, b) => (a < b || Number.isNaN(a) ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  logicalAnd: (a, b) => (a !== 0 && b !== 0 ? 1 : 0),
  logicalOr: (a, b) => (a !== 0 || b !== 0 ? 1 : 0),
  reluBackward: (x, g) => (x > 0 ? g : 0),
  geluBackward: (x, g) => g * (0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x)),
  geluTanhBackward: (x, g) => {
    const t = Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x));
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * x * x));
  },
  siluBackward: (x, g) => {
    const s = sigmoid(x);
    return g * s * (1 + x * (1 - s));
  },
};

export function unary(op: UnaryOp, x: TypedArray, xOffset: number, n: number, out: TypedArray): void {
  const f = unaryFunctions[op];
  for (let i = 0; i < n; i++) out[i] = f(x[xOffset + i]);
}

/** One row of a binary op; the common arithmetic ops get their own loops (no call per element). */
function binaryRow(op: BinaryOp, ad: TypedArray, ia: number, sa: number, bd: TypedArray, ib: number, sb: number, out: TypedArray, io: number, n: number): void {
  switch (op) {
    case 'add':
      for (let i = 0; i < n; i++, ia += sa, ib += sb) out[io + i] = ad[ia] + bd[ib];
      return;
    case 'sub':
      for (let i = 0; i < n; i++, ia += sa, ib += sb) out[io + i] = ad[ia] - bd[ib];
      return;
    case 'mul':
      for (let i = 0; i < n; i++, ia += sa, ib += sb) out[io + i] = ad[ia] * bd[ib];
      return;
    case 'div':
      for (let i = 0; i < n; i++, ia += sa, ib += sb) out[io + i] = ad[ia] / bd[ib];
      return;
    default: {
      const f = binaryFunctions[op];
      for (let i = 0; i < n; i++, ia += sa, ib += sb) out[io + i] = f(ad[ia], bd[ib]);
    }
  }
}

export function binary(op: BinaryOp, shape: readonly number[], a: StridedArray, b: StridedArray, out: TypedArray): void {
  const c = collapseDims(shape, [a.strides, b.strides, contiguousStrides(shape)]);
  const rank = c.shape.length;
  const sa = c.strides[0][rank - 1];
  const sb = c.strides[1][rank - 1];
  const cursor = new RowCursor(c.shape, c.strides, [a.offset, b.offset, 0]);
  for (let r = 0; r < cursor.rows; r++, cursor.next()) {
    const o = cursor.offsets;
    binaryRow(op, a.data, o[0], sa, b.data, o[1], sb, out, o[2], cursor.length);
  }
}

export function where(shape: readonly number[], cond: StridedArray, a: StridedArray, b: StridedArray, out: TypedArray): void {
  const c = collapseDims(shape, [cond.strides, a.strides, b.strides, contiguousStrides(shape)]);
  const rank = c.shape.length;
  const [sc, sa, sb] = [c.strides[0][rank - 1], c.strides[1][rank - 1], c.strides[2][rank - 1]];
  const cd = cond.data;
  const ad = a.data;
  const bd = b.data;
  const cursor = new RowCursor(c.shape, c.strides, [cond.offset, a.offset, b.offset, 0]);
  for (let r = 0; r < cursor.rows; r++, cursor.next()) {
    let [ic, ia, ib] = cursor.offsets;
    const io = cursor.offsets[3];
    for (let i = 0; i < cursor.length; i++, ic += sc, ia += sa, ib += sb) out[io + i] = cd[ic] !== 0 ? ad[ia] : bd[ib];
  }
}

export function copy(shape: readonly number[], src: StridedArray, dst: StridedArray): void {
  const c = collapseDims(shape, [src.strides, dst.strides]);
  const rank = c.shape.length;
  const ss = c.strides[0][rank - 1];
  const ds = c.strides[1][rank - 1];
  const sd = src.data;
  const dd = dst.data;
  const cursor = new RowCursor(c.shape, c.strides, [src.offset, dst.offset]);
  const n = cursor.length;
  // A bulk set pays off only for long runs; short ones (attention heads) are cheaper as a loop.
  const bulk = ss === 1 && ds === 1 && n >= 64 && sd.constructor === dd.constructor;
  for (let r = 0; r < cursor.rows; r++, cursor.next()) {
    let is = cursor.offsets[0];
    let id = cursor.offsets[1];
    if (bulk) {
      (dd as Float32Array).set((sd as Float32Array).subarray(is, is + n), id);
      continue;
    }
    for (let i = 0; i < n; i++, is += ss, id += ds) dd[id] = sd[is];
  }
}

/** GELU and its derivative (the reference's own formulas for gelu and geluBackward with g = 1). */
export function geluWithDerivative({ x, xOffset, n, out, deriv }: GeluWithDerivativeArgs): void {
  for (let i = 0; i < n; i++) {
    const v = x[xOffset + i];
    const cdf = 0.5 * (1 + erf(v * SQRT1_2));
    out[i] = v * cdf;
    deriv[i] = cdf + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v);
  }
}
