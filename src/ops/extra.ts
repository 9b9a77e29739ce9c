/**
 * Ops the transformer layers need that the core op set lacks, each one pass forward and one pass
 * backward:
 *   - `embedding`: a row lookup into a [V, D] table with a `paddingIdx` row that gets no gradient
 *     (indexSelect's backward would give that row one);
 *   - `rotaryEmbedding`: RoPE, the rotation of pairs of features by position-dependent angles.
 *     Composed from small ops it would be two strided views, four multiplies, two adds and a
 *     stack per call (and as many again backward); fused it reads x once and writes once;
 *   - `causalSoftmax`: softmax over the last dim with an optional causal mask, for attention
 *     scores computed from queries already multiplied by 1/√D (RoPE does that for free): unlike
 *     `scaledSoftmax` its backward needs no extra pass over the [.., T, T] scores to apply a scale;
 *   - `linear`: x·Wᵀ + b as one GEMM whose output starts as the broadcast bias (beta = 1), instead
 *     of a product followed by a broadcasting add (one pass, one allocation and one kernel call
 *     fewer per projection — what dominates single-token decoding).
 * The loops are plain typed-array loops like the reference kernels. They are not (yet) part of the
 * backend kernel interface, so a faster backend cannot replace them.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguousData } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { contiguous } from './views.js';

function intData(t: Tensor): Int32Array {
  const { data, offset } = contiguousData(t);
  return (offset === 0 && data.length === t.size ? data : data.subarray(offset, offset + t.size)) as Int32Array;
}

function floatData(t: Tensor): Float32Array {
  const { data, offset } = contiguousData(t);
  return (offset === 0 && data.length === t.size ? data : data.subarray(offset, offset + t.size)) as Float32Array;
}

/**
 * Rows of `weight` [V, D] picked by int32 `ids` of any shape: the result is [...ids.shape, D]
 * (torch.nn.functional.embedding). The gradient of `weight` is the scatter-add of the upstream
 * rows; the `paddingIdx` row (when given) receives none.
 */
export function embedding(weight: Tensor, ids: Tensor, paddingIdx: number | null = null): Tensor {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D [numEmbeddings, embeddingDim], got shape ${formatShape(weight.shape)}`);
  if (weight.dtype !== 'float32') throw new TypeError(`embedding: weight must be float32, got ${weight.dtype}`);
  if (ids.dtype !== 'int32') throw new TypeError(`embedding: ids must be an int32 tensor, got ${ids.dtype}`);
  const [rows, dim] = weight.shape;
  const idx = intData(ids);
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i];
    if (v < 0 || v >= rows) throw new RangeError(`embedding: index ${v} is out of range for an embedding of ${rows} rows`);
  }
  const out = Tensor.uninitialized([...ids.shape, dim]);
  const w = contiguousData(weight);
  kernels.indexSelect(w.offset === 0 ? w.data : w.data.subarray(w.offset), idx, out.storage, 1, rows, idx.length, dim);
  return record(out, 'embedding', [weight], (g) => {
    const gw = Tensor.empty(weight.shape);
    const gw32 = gw.storage as Float32Array;
    kernels.indexAdd(floatData(g), idx, gw32, 1, rows, idx.length, dim);
    if (paddingIdx !== null) gw32.fill(0, paddingIdx * dim, (paddingIdx + 1) * dim);
    return [gw];
  });
}

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
}

/**
 * Applies rotary position embeddings to x [..., T, D] (D even): feature pair (a, b) at position
 * p = offset + t becomes (a·cos − b·sin, a·sin + b·cos) with cos/sin read from the tables
 * `cos`, `sin` [P, D/2] (row p, column i). The result is a new contiguous tensor of x's shape;
 * x may be any strided view (e.g. heads split by reshape + transpose). Backward rotates the
 * gradient by −θ.
 */
export function rotaryEmbedding(x: Tensor, cos: Tensor, sin: Tensor, options: RotaryOptions = {}): Tensor {
  const { offset = 0, pairing = 'half', scale = 1 } = options;
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
  if (!Number.isInteger(offset) || offset < 0 || offset + t > cos.shape[0]) {
    throw new RangeError(`rotaryEmbedding: positions ${offset}..${offset + t - 1} exceed the ${cos.shape[0]} positions of the cos/sin tables`);
  }
  const c = floatData(cos);
  const s = floatData(sin);
  const out = Tensor.uninitialized(x.shape);
  const rows = d === 0 ? 0 : x.size / d;
  // Source offsets of every row of x (row-major over the leading dims), walked with an odometer.
  const lead = x.shape.slice(0, -1);
  const leadStrides = x.strides.slice(0, -1);
  const colStride = x.strides[x.ndim - 1];
  const counter = new Array<number>(lead.length).fill(0);
  const src = x.storage as Float32Array;
  const dst = out.storage as Float32Array;
  const interleaved = pairing === 'interleaved';
  let rowOffset = x.offset;
  for (let r = 0; r < rows; r++) {
    const tab = (offset + (r % t)) * half;
    const o = r * d;
    for (let i = 0; i < half; i++) {
      const ia = interleaved ? 2 * i : i;
      const ib = interleaved ? 2 * i + 1 : i + half;
      const a = src[rowOffset + ia * colStride];
      const b = src[rowOffset + ib * colStride];
      const ci = c[tab + i] * scale;
      const si = s[tab + i] * scale;
      dst[o + ia] = a * ci - b * si;
      dst[o + ib] = a * si + b * ci;
    }
    for (let k = lead.length - 1; k >= 0; k--) {
      rowOffset += leadStrides[k];
      if (++counter[k] < lead[k]) break;
      rowOffset -= leadStrides[k] * lead[k];
      counter[k] = 0;
    }
  }
  return record(out, 'rotaryEmbedding', [x], (g) => {
    const gd = floatData(g);
    const gx = Tensor.uninitialized(x.shape);
    const gxd = gx.storage as Float32Array;
    for (let r = 0; r < rows; r++) {
      const tab = (offset + (r % t)) * half;
      const o = r * d;
      for (let i = 0; i < half; i++) {
        const ia = interleaved ? 2 * i : i;
        const ib = interleaved ? 2 * i + 1 : i + half;
        const ga = gd[o + ia];
        const gb = gd[o + ib];
        const ci = c[tab + i] * scale;
        const si = s[tab + i] * scale;
        gxd[o + ia] = ga * ci + gb * si;
        gxd[o + ib] = gb * ci - ga * si;
      }
    }
    return [gx];
  });
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

/**
 * softmax along the last dim of x [..., Tq, Tk]; with `causal`, query row i (i = row mod Tq)
 * sees only columns j ≤ i + causalOffset (the others get probability 0 and are never
 * exponentiated). One kernel pass each way.
 */
export function causalSoftmax(x: Tensor, causal = true, causalOffset = 0): Tensor {
  if (x.ndim < 2) throw new Error(`causalSoftmax: input must be [..., Tq, Tk], got ${formatShape(x.shape)}`);
  if (x.dtype !== 'float32') throw new TypeError(`causalSoftmax: input must be float32, got ${x.dtype}`);
  const cols = x.shape[x.ndim - 1];
  const tq = x.shape[x.ndim - 2];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.uninitialized(x.shape);
  const { data, offset } = contiguousData(x);
  kernels.scaledSoftmax(data as Float32Array, offset, rows, cols, tq, 1, causal, causalOffset, out.storage as Float32Array);
  return record(out, 'causalSoftmax', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape);
    kernels.softmaxBackward(out.storage as Float32Array, floatData(g), rows, cols, gx.storage as Float32Array, false);
    return [gx];
  });
}

/** How gemm reads a 2-D operand: row-major (possibly with a larger row stride) or as a transposed view. */
function matrixLayout(t: Tensor): { t: Tensor; trans: boolean; ld: number } {
  const [rows, cols] = t.shape;
  const [rs, cs] = t.strides;
  if ((cs === 1 || cols === 1) && (rs >= Math.max(cols, 1) || rows === 1)) return { t, trans: false, ld: rows === 1 ? Math.max(cols, 1) : rs };
  if ((rs === 1 || rows === 1) && (cs >= Math.max(rows, 1) || cols === 1)) return { t, trans: true, ld: cols === 1 ? Math.max(rows, 1) : cs };
  const c = contiguous(t.detach());
  return { t: c, trans: false, ld: Math.max(cols, 1) };
}

/**
 * y = x·weightᵀ + bias for x [N, in], weight [out, in], bias [out] (or null): one GEMM with the
 * output initialised to the bias rows and beta = 1. Gradients: dx = g·W, dW = gᵀ·x, db = Σ_rows g.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (x.ndim !== 2 || weight.ndim !== 2 || x.shape[1] !== weight.shape[1]) {
    throw new Error(`linear: expected x [N, in] and weight [out, in], got ${formatShape(x.shape)} and ${formatShape(weight.shape)}`);
  }
  if (x.dtype !== 'float32' || weight.dtype !== 'float32') throw new TypeError('linear: x and weight must be float32');
  const [n, k] = x.shape;
  const m = weight.shape[0];
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== m)) throw new Error(`linear: bias must be [${m}], got ${formatShape(bias.shape)}`);
  if (!bias) return matmul(x, weight.transpose(0, 1));
  const out = Tensor.uninitialized([n, m]);
  const c = out.storage as Float32Array;
  const b = floatData(bias);
  // The bias broadcast over the rows, by doubling the filled prefix (log₂ n bulk copies, not n).
  if (n > 0) c.set(b, 0);
  for (let filled = 1; filled < n; filled *= 2) c.copyWithin(filled * m, 0, Math.min(filled, n - filled) * m);
  if (n > 0 && m > 0 && k > 0) {
    const a = matrixLayout(x);
    const w = matrixLayout(weight);
    kernels.gemm({
      transA: a.trans,
      transB: !w.trans,
      m: n,
      n: m,
      k,
      alpha: 1,
      a: a.t.storage as Float32Array,
      aOffset: a.t.offset,
      lda: a.ld,
      strideA: 0,
      b: w.t.storage as Float32Array,
      bOffset: w.t.offset,
      ldb: w.ld,
      strideB: 0,
      beta: 1,
      c,
      cOffset: 0,
      ldc: m,
      strideC: 0,
      batch: 1,
    });
  }
  return record(out, 'linear', [x, weight, bias], (g) => [
    x.requiresGrad ? matmul(g, weight.detach()) : null,
    weight.requiresGrad ? matmul(g.transpose(0, 1), x.detach()) : null,
    bias.requiresGrad ? sum(g, 0) : null,
  ]);
}
