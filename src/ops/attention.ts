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
  /** Defaults to 1/√(head dim). */
  scale?: number;
  dropoutP?: number;
  generator?: Generator;
}

/**
 * softmax(scale·x) along the last dim of x [..., Tq, Tk]; with `causal`, query row i
 * (i = row mod Tq) sees only columns j ≤ i + causalOffset (the others get probability 0 and are
 * never exponentiated). One kernel pass each way.
 *
 * The one attention softmax: scaledDotProductAttention passes its scale here, groupedAttention
 * (nn/attention.ts) passes 1 because it has already folded the scale into q (for free inside the
 * RoPE rotation). With scale 1 the backward is the plain softmax backward; any other scale costs
 * one more pass over the [.., Tq, Tk] gradient to multiply by it.
 */
export function scaledSoftmax(x: Tensor, scale: number, causal: boolean, causalOffset = 0): Tensor {
  if (!(scale > 0)) throw new RangeError(`scaledSoftmax: scale must be positive, got ${scale}`);
  if (x.ndim < 2) throw new Error(`scaledSoftmax: input must be [..., Tq, Tk], got ${formatShape(x.shape)}`);
  if (x.dtype !== 'float32') throw new TypeError(`scaledSoftmax: input must be float32, got ${x.dtype}`);
  const cols = x.shape[x.ndim - 1];
  const tq = x.shape[x.ndim - 2];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.uninitialized(x.shape);
  const { data, offset } = contiguousData(x);
  kernels.scaledSoftmax({ x: data as Float32Array, xOffset: offset, rows, cols, tq, scale, causal, causalOffset, out: out.storage as Float32Array });
  return record(out, 'scaledSoftmax', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape);
    const gd = contiguousData(g);
    kernels.softmaxBackward({ y: out.storage as Float32Array, g: gd.data.subarray(gd.offset) as Float32Array, rows, cols, out: gx.storage as Float32Array, log: false });
    return [scale === 1 ? gx : mul(gx, scale)];
  });
}

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const { mask = null, isCausal = false, causalOffset = 0, dropoutP = 0 } = options;
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
  const scores = matmul(q, transpose(k, -2, -1));
  let probs: Tensor;
  if (!mask) probs = scaledSoftmax(scores, scale, isCausal, causalOffset);
  else {
    const scaled = mul(scores, scale);
    const masked = mask.dtype === 'bool' ? where(mask, scaled, -Infinity) : add(scaled, mask);
    probs = softmax(masked, -1);
  }
  if (dropoutP > 0) probs = dropout(probs, dropoutP, true, options.generator);
  return matmul(probs, v);
}
