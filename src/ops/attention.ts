/**
 * Scaled dot-product attention: softmax(q·kᵀ·scale + mask)·v, PyTorch's
 * `F.scaled_dot_product_attention` contract. The two products run as (batched, transposed-view)
 * matmuls on the fastest gemm; scaling, the causal mask and the softmax are one fused pass
 * (`scaledSoftmax`), and masked scores are never exponentiated.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { dropout } from './dropout.js';
import { flashAttention, prefersFlashAttention } from './flash-attention.js';
import { add, contiguousData, mul, where } from './elementwise.js';
import { matmul } from './matmul.js';
import { softmax } from './softmax.js';
import { transpose } from './views.js';

export interface AttentionOptions {
  /** Bool mask (true = attend) or an additive float mask, broadcastable to [..., Tq, Tk]. */
  mask?: Tensor | null;
  /** Causal masking, top-left aligned like PyTorch: query i sees keys j ≤ i + causalOffset. */
  isCausal?: boolean;
  /** Shifts the causal diagonal; a KV cache of n past tokens decodes with causalOffset = n. */
  causalOffset?: number;
  /**
   * Sliding window W (with isCausal only): query i sees keys j with i + causalOffset − W < j ≤
   * i + causalOffset, itself and the W − 1 before it (Hugging Face Mistral's `sliding_window`).
   */
  window?: number | null;
  /** Defaults to 1/√(head dim). */
  scale?: number;
  dropoutP?: number;
  generator?: Generator;
}

/**
 * softmax(scale·x) along the last dim of x [..., Tq, Tk]; with `causal`, query row i
 * (i = row mod Tq) sees only columns j ≤ i + causalOffset (the others get probability 0 and are
 * never exponentiated), and with a `window` W also only columns j > i + causalOffset − W (a band:
 * the query itself and the W − 1 keys before it). One kernel pass each way.
 *
 * The one attention softmax: scaledDotProductAttention passes its scale here, groupedAttention
 * (nn/attention.ts) passes 1 because it has already folded the scale into q (for free inside the
 * RoPE rotation). With scale 1 the backward is the plain softmax backward; any other scale costs
 * one more pass over the [.., Tq, Tk] gradient to multiply by it. The window needs no backward of
 * its own: the probabilities outside the band are exactly 0, so softmax's backward
 * y·(g − Σ y·g) gives them a zero gradient.
 */
export function scaledSoftmax(x: Tensor, scale: number, causal: boolean, causalOffset = 0, window: number | null = null): Tensor {
  if (!(scale > 0)) throw new RangeError(`scaledSoftmax: scale must be positive, got ${scale}`);
  if (x.ndim < 2) throw new Error(`scaledSoftmax: input must be [..., Tq, Tk], got ${formatShape(x.shape)}`);
  if (x.dtype !== 'float32') throw new TypeError(`scaledSoftmax: input must be float32, got ${x.dtype}`);
  if (window !== null && !(Number.isSafeInteger(window) && window > 0)) throw new RangeError(`scaledSoftmax: window must be a positive integer or null, got ${String(window)}`);
  const cols = x.shape[x.ndim - 1];
  const tq = x.shape[x.ndim - 2];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.uninitialized(x.shape);
  const { data, offset } = contiguousData(x);
  const outData = out.storage as Float32Array;
  // The band's lower edge of the last query row: when it is ≤ 0 the window hides nothing here
  // (every decode step with a rolling cache), and the plain causal pass runs.
  const banded = causal && window !== null && tq - 1 + causalOffset - window + 1 > 0;
  if (banded) {
    // The kernel masks only the upper triangle; the columns left of the band are set to −∞ in
    // `out` (a copy of x, which the kernel then reads in place), so they exponentiate to 0. No
    // [Tq, Tk] mask tensor exists; the extra cost is the copy, small next to the q·kᵀ product.
    outData.set((data as Float32Array).subarray(offset, offset + rows * cols));
    for (let r = 0; r < rows; r++) {
      const lo = Math.min(cols, (r % tq) + causalOffset - window + 1);
      if (lo > 0) outData.fill(-Infinity, r * cols, r * cols + lo);
    }
    kernels.scaledSoftmax({ x: outData, xOffset: 0, rows, cols, tq, scale, causal, causalOffset, out: outData });
  } else {
    kernels.scaledSoftmax({ x: data as Float32Array, xOffset: offset, rows, cols, tq, scale, causal, causalOffset, out: outData });
  }
  return record(out, 'scaledSoftmax', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape);
    const gd = contiguousData(g);
    kernels.softmaxBackward({ y: outData, g: gd.data.subarray(gd.offset) as Float32Array, rows, cols, out: gx.storage as Float32Array, log: false });
    return [scale === 1 ? gx : mul(gx, scale)];
  });
}

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const { mask = null, isCausal = false, causalOffset = 0, dropoutP = 0, window = null } = options;
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) {
    throw new Error(`scaledDotProductAttention: q, k, v need at least 2 dims, got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  }
  const d = q.shape[q.ndim - 1];
  if (k.shape[k.ndim - 1] !== d) {
    throw new Error(`scaledDotProductAttention: q ${formatShape(q.shape)} and k ${formatShape(k.shape)} differ in the last (head) dim`);
  }
  if (k.shape[k.ndim - 2] !== v.shape[v.ndim - 2]) {
    throw new Error(`scaledDotProductAttention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} differ in sequence length`);
  }
  if (isCausal && mask) throw new Error('scaledDotProductAttention: pass either mask or isCausal, not both');
  const scale = options.scale ?? 1 / Math.sqrt(d);
  // Flash attention (O(T·D) memory) where it computes the same thing: no mask, no dropout, q, k, v
  // of one rank, k and v alike but for the last dim, their head dim (third from last) q's or 1 (broadcast).
  if (!mask && !(dropoutP > 0) && flashApplies(q, k, v) && prefersFlashAttention(q.shape[q.ndim - 2])) {
    return flashAttention(q, k, v, { scale, causal: isCausal, causalOffset: isCausal ? causalOffset : 0, window: isCausal ? window : null });
  }
  const scores = matmul(q, transpose(k, -2, -1));
  let probs: Tensor;
  if (!mask) probs = scaledSoftmax(scores, scale, isCausal, causalOffset, window);
  else {
    const scaled = mul(scores, scale);
    const masked = mask.dtype === 'bool' ? where(mask, scaled, -Infinity) : add(scaled, mask);
    probs = softmax(masked, -1);
  }
  if (dropoutP > 0) probs = dropout(probs, dropoutP, true, options.generator);
  return matmul(probs, v);
}

/** Whether sdpa's broadcasting q·kᵀ over these shapes is what flashAttention's grouped heads compute. */
function flashApplies(q: Tensor, k: Tensor, v: Tensor): boolean {
  const n = q.ndim;
  if (k.ndim !== n || v.ndim !== n || q.dtype !== 'float32' || k.dtype !== 'float32' || v.dtype !== 'float32') return false;
  for (let i = 0; i < n - 1; i++) if (k.shape[i] !== v.shape[i]) return false;
  for (let i = 0; i < n - 3; i++) if (k.shape[i] !== q.shape[i]) return false;
  return n < 3 || k.shape[n - 3] === q.shape[n - 3] || k.shape[n - 3] === 1;
}
