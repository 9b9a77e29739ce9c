/**
 * Rotary position embeddings (RoPE): the rotation of pairs of features by position-dependent
 * angles, and the cos/sin tables. Composed from small ops it would be two strided views, four
 * multiplies, two adds and a stack per call (and as many again backward); fused it reads x once
 * and writes once. The loops are plain typed-array loops, not (yet) a backend kernel.
 */
import { record } from '../autograd/engine.js';
import { contiguousStrides, formatShape, RowCursor } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData } from './elementwise.js';

/**
 * Which features RoPE rotates together (head dim D, i < D/2, angle θ_i = p·theta^(−2i/D)):
 *   - 'half'        pairs (i, i + D/2): GPT-NeoX and Hugging Face Llama checkpoints ("rotate_half");
 *   - 'interleaved' pairs (2i, 2i + 1): GPT-J and Meta's original Llama code.
 * The two compute the same function up to a fixed permutation of the q/k projection rows.
 */
export type RopePairing = 'half' | 'interleaved';

export interface RotaryOptions {
  /** Position of the first row along the sequence dim (a KV cache of n tokens decodes at n). */
  offset?: number;
  pairing?: RopePairing;
  /** Multiplies the result (attention folds 1/√D into the queries here, at no cost). Default 1. */
  scale?: number;
  /**
   * Explicit per-token positions, int32 [B, T] with B = x.shape[0] and T = x.shape[−2] (packed
   * sequences restart at 0 per document); replaces `offset`. Rows of the tables are read at these
   * positions, so a token gets exactly the rotation it would get at that position otherwise.
   */
  positions?: Tensor | null;
}

interface Rotation {
  cos: Float32Array;
  sin: Float32Array;
  /** Rows per sequence (T): row r is at position offset + r mod T. */
  t: number;
  offset: number;
  half: number;
  scale: number;
  interleaved: boolean;
  /** With explicit positions: rows of x per sequence of the batch. */
  perBatch: number;
}

/**
 * Rotates every feature pair (a, b) of the rows `rows` walks in `src` (elements `colStride`
 * apart) into the contiguous `dst`: (a·cos − b·sin, a·sin + b·cos), scaled. `sign` −1 rotates by
 * −θ, which is the backward: negating sin is exact, so forward and backward round as before.
 */
function rotate(src: Float32Array, rows: RowCursor, colStride: number, dst: Float32Array, rot: Rotation, positions: Int32Array | null, sign: 1 | -1): void {
  const { cos, sin, t, offset, half, scale, interleaved, perBatch } = rot;
  const d = 2 * half;
  for (let r = 0; r < rows.rows; r++, rows.next()) {
    const rowOffset = rows.offsets[0];
    // Row r is token r mod T (of sequence ⌊r / perBatch⌋ when positions are explicit: packed rows).
    const tab = (positions === null ? offset + (r % t) : positions[Math.floor(r / perBatch) * t + (r % t)]) * half;
    const o = r * d;
    for (let i = 0; i < half; i++) {
      const ia = interleaved ? 2 * i : i;
      const ib = interleaved ? 2 * i + 1 : i + half;
      const a = src[rowOffset + ia * colStride];
      const b = src[rowOffset + ib * colStride];
      const ci = cos[tab + i] * scale;
      const si = sign * (sin[tab + i] * scale);
      dst[o + ia] = a * ci - b * si;
      dst[o + ib] = a * si + b * ci;
    }
  }
}

/**
 * Applies rotary position embeddings to x [..., T, D] (D even): feature pair (a, b) at position
 * p = offset + t becomes (a·cos − b·sin, a·sin + b·cos) with cos/sin read from the tables
 * `cos`, `sin` [P, D/2] (row p, column i). The result is a new contiguous tensor of x's shape;
 * x may be any strided view (e.g. heads split by reshape + transpose). Backward rotates the
 * gradient by −θ.
 */
export function rotaryEmbedding(x: Tensor, cos: Tensor, sin: Tensor, options: RotaryOptions = {}): Tensor {
  const { offset = 0, pairing = 'half', scale = 1, positions = null } = options;
  if (pairing !== 'half' && pairing !== 'interleaved') throw new Error(`rotaryEmbedding: pairing must be 'half' or 'interleaved', got '${String(pairing)}'`);
  if (x.ndim < 2) throw new Error(`rotaryEmbedding: input must be [..., T, D], got shape ${formatShape(x.shape)}`);
  if (x.dtype !== 'float32') throw new TypeError(`rotaryEmbedding: input must be float32, got ${x.dtype}`);
  const d = x.shape[x.ndim - 1];
  const t = x.shape[x.ndim - 2];
  const half = d / 2;
  if (d % 2 !== 0) throw new Error(`rotaryEmbedding: the last (head) dim must be even, got ${d}`);
  if (cos.ndim !== 2 || cos.shape[1] !== half || sin.ndim !== 2 || sin.shape[1] !== half || sin.shape[0] !== cos.shape[0]) {
    throw new Error(`rotaryEmbedding: cos ${formatShape(cos.shape)} and sin ${formatShape(sin.shape)} must both be [positions, ${half}]`);
  }
  if (positions === null && (!Number.isInteger(offset) || offset < 0 || offset + t > cos.shape[0])) {
    throw new RangeError(`rotaryEmbedding: positions ${offset}..${offset + t - 1} exceed the ${cos.shape[0]} positions of the cos/sin tables`);
  }
  const pos = positions === null ? null : checkedPositions(positions, x, cos.shape[0]);
  const perBatch = x.size === 0 ? 1 : x.size / d / x.shape[0];
  const rot: Rotation = { cos: floatData(cos), sin: floatData(sin), t, offset, half, scale, interleaved: pairing === 'interleaved', perBatch };
  const out = Tensor.uninitialized(x.shape);
  // x is read through its own strides (any view); the result and the gradient are contiguous.
  const apply = (src: Float32Array, rows: RowCursor, colStride: number, dst: Float32Array, sign: 1 | -1): void => {
    rotate(src, rows, colStride, dst, rot, pos, sign);
  };
  if (d > 0) apply(x.storage as Float32Array, new RowCursor(x.shape, [x.strides], [x.offset]), x.strides[x.ndim - 1], out.storage as Float32Array, 1);
  return record(out, 'rotaryEmbedding', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape);
    if (d > 0) apply(floatData(g), new RowCursor(x.shape, [contiguousStrides(x.shape)], [0]), 1, gx.storage as Float32Array, -1);
    return [gx];
  });
}

/** The positions [B, T] of x [B, ..., T, D] as a flat Int32Array, each in [0, tableRows). */
function checkedPositions(positions: Tensor, x: Tensor, tableRows: number): Int32Array {
  const b = x.shape[0];
  const t = x.shape[x.ndim - 2];
  if (x.ndim < 3 || positions.dtype !== 'int32' || positions.ndim !== 2 || positions.shape[0] !== b || positions.shape[1] !== t) {
    throw new Error(`rotaryEmbedding: positions must be int32 [B, T] = [${b}, ${t}] for input ${formatShape(x.shape)}, got ${positions.dtype} ${formatShape(positions.shape)}`);
  }
  const data = positions.contiguous().toTypedArray() as Int32Array;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0 || data[i] >= tableRows) throw new RangeError(`rotaryEmbedding: position ${data[i]} is outside the ${tableRows} positions of the cos/sin tables`);
  }
  return data;
}

/**
 * cos/sin tables [positions, headDim/2] for RoPE with base `theta`, computed with float32
 * rounding at each step as PyTorch / Hugging Face do (inv_freq = 1 / theta^(2i/D) in float32,
 * angle = p·inv_freq in float32), so long positions match their tables bit for bit or within an ulp.
 */
export function rotaryTables(positions: number, headDim: number, theta = 10000): { cos: Tensor; sin: Tensor } {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) throw new Error(`rotaryTables: headDim must be a positive even integer, got ${headDim}`);
  if (!(theta > 0)) throw new RangeError(`rotaryTables: theta must be positive, got ${theta}`);
  const half = headDim / 2;
  const f = Math.fround;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = f(1 / f(Math.pow(theta, f(f(2 * i) / headDim))));
  const cos = Tensor.empty([positions, half]);
  const sin = Tensor.empty([positions, half]);
  const cd = cos.storage as Float32Array;
  const sd = sin.storage as Float32Array;
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * invFreq[i]);
      cd[p * half + i] = Math.cos(angle);
      sd[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
