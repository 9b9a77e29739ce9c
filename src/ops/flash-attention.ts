/**
 * Flash attention: softmax(scale·q·kᵀ [causal / sliding-window band])·v as one differentiable op
 * whose memory is O(T·D) — the [Tq, Tk] scores and probabilities are never materialised.
 *
 * Forward (kernels.flashAttentionForward) runs FlashAttention-2's blocked online softmax: per block
 * of queries it walks the key blocks inside the band, keeping each row's running max, running sum
 * and output accumulator, and saves each row's logsumexp L. Backward
 * (kernels.flashAttentionBackward) recomputes the probabilities blockwise from q, k and L:
 * P = exp(scale·q·kᵀ − L), Δ_i = Σ_d dO_id·O_id, dV = Pᵀ dO, dP = dO Vᵀ, dS = P ⊙ (dP − Δ),
 * dQ = scale·dS K, dK = scale·dSᵀ Q — what it keeps is q, k, v, O and L.
 *
 * Grouped heads (GQA, MQA): q [..., H, Tq, D], k [..., Hkv, Tk, D] and v [..., Hkv, Tk, Dv] (Dv is
 * D in most models, not in MLA's) with Hkv dividing H, giving [..., H, Tq, Dv]; query
 * head h reads kv head ⌊h / (H/Hkv)⌋ (PyTorch's repeat_interleave order, as nn/attention.ts lays
 * its heads out), and the gradient of a kv head sums over its query heads. Leading dims must match.
 */
import { record } from '../autograd/engine.js';
import { activeFlashAttentionMinSeqLen, kernels } from '../backends/registry.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData } from './elementwise.js';

export interface FlashAttentionOptions {
  /** Multiplier of the scores q·k; default 1/√D. */
  scale?: number;
  /** Query i sees keys j ≤ i + causalOffset (top-left aligned like PyTorch when the offset is 0). */
  causal?: boolean;
  /** Shifts the causal diagonal (a cache of n earlier tokens decodes with n). Causal only. */
  causalOffset?: number;
  /** Sliding window W (causal only): query i also sees only keys j > i + causalOffset − W. */
  window?: number | null;
}

export function flashAttention(q: Tensor, k: Tensor, v: Tensor, options: FlashAttentionOptions = {}): Tensor {
  const shapes = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`;
  if (q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim) throw new Error(`flashAttention: expected q [..., H, Tq, D], k [..., Hkv, Tk, D] and v [..., Hkv, Tk, Dv] of the same rank, got ${shapes}`);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'float32') throw new TypeError(`flashAttention: ${name} must be float32, got ${t.dtype}`);
  }
  const nd = q.ndim;
  const d = q.shape[nd - 1];
  const tq = q.shape[nd - 2];
  const tk = k.shape[nd - 2];
  const dValue = v.shape[nd - 1];
  if (k.shape[nd - 1] !== d) throw new Error(`flashAttention: q and k must share the head dim D, got ${shapes}`);
  if (v.shape[nd - 2] !== tk) throw new Error(`flashAttention: k and v differ in sequence length, got ${shapes}`);
  const h = nd >= 3 ? q.shape[nd - 3] : 1;
  const hkv = nd >= 3 ? k.shape[nd - 3] : 1;
  if (nd >= 3 && v.shape[nd - 3] !== hkv) throw new Error(`flashAttention: k and v differ in head count, got ${shapes}`);
  if (hkv === 0 || h % hkv !== 0) throw new Error(`flashAttention: the kv head count must divide the query head count, got ${shapes}`);
  for (let i = 0; i < nd - 3; i++) {
    if (k.shape[i] !== q.shape[i] || v.shape[i] !== q.shape[i]) throw new Error(`flashAttention: q, k and v must share the leading dims, got ${shapes}`);
  }
  const { causal = false, causalOffset = 0, window = null } = options;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  if (!(Number.isFinite(scale) && scale > 0)) throw new RangeError(`flashAttention: scale must be a positive number, got ${String(scale)}`);
  if (!Number.isSafeInteger(causalOffset)) throw new RangeError(`flashAttention: causalOffset must be an integer, got ${String(causalOffset)}`);
  if (window !== null && !(Number.isSafeInteger(window) && window > 0)) throw new RangeError(`flashAttention: window must be a positive integer or null, got ${String(window)}`);
  if (window !== null && !causal) throw new Error('flashAttention: a sliding window needs causal attention');
  let heads = 1;
  for (let i = 0; i < nd - 2; i++) heads *= q.shape[i];
  const group = h / hkv;
  const out = Tensor.uninitialized([...q.shape.slice(0, nd - 1), dValue]);
  const lse = new Float32Array(heads * tq);
  const qd = floatData(q);
  const kd = floatData(k);
  const vd = floatData(v);
  const common = { heads, group, tq, tk, d, valueDim: dValue, scale, causal, causalOffset, window: causal ? (window ?? 0) : 0 };
  if (out.size > 0) kernels.flashAttentionForward({ ...common, q: qd, k: kd, v: vd, out: out.storage as Float32Array, lse });
  return record(out, 'flashAttention', [q, k, v], (g) => {
    const dq = Tensor.uninitialized(q.shape);
    const dk = Tensor.uninitialized(k.shape);
    const dv = Tensor.uninitialized(v.shape);
    if (out.size === 0) {
      for (const t of [dq, dk, dv]) (t.storage as Float32Array).fill(0);
    } else {
      kernels.flashAttentionBackward({
        ...common,
        q: qd,
        k: kd,
        v: vd,
        out: out.storage as Float32Array,
        lse,
        dOut: floatData(g),
        dq: dq.storage as Float32Array,
        dk: dk.storage as Float32Array,
        dv: dv.storage as Float32Array,
      });
    }
    return [dq, dk, dv];
  });
}

// ---- choosing between flash and materialised attention ------------------------------------------

/**
 * From this many query positions up, attention that flash can compute (no explicit mask, no
 * attention dropout, no hook on the probabilities) takes the flash path under 'auto'; shorter
 * sequences keep the materialised path (two GEMMs around the fused softmax), whose BLAS GEMM is
 * faster per flop than the single-threaded WASM flash kernel while the scores are small.
 *
 * Measured 2026-12-07 on the shared 2-core host (blas backend; bench/flash-attention.ts, causal,
 * B 1, H 4, D 64, forward + backward, medians of alternated repeats; flash/materialised time):
 * T 64: 0.66–1.58× (noise around ~1 ms; four runs up to 1024, two above), 128: 0.71–1.15×, 256: 0.79–1.00×, 512: 0.68–1.02×,
 * 1024: 0.87–1.07×, 2048: 0.76–0.90×, 4096: 0.51–0.79×. A whole TransformerLM step (dModel 256,
 * 4 heads, 2 layers) gave 1.22× at T 128, 0.90× at 256, 0.93× at 512, 0.85× at 1024. From 256 on
 * flash is at parity or faster, and it keeps O(T·D) instead of O(T²) memory (at T 4096: 4 MiB kept
 * for backward instead of 516 MiB), so 256 it is. A quiet-machine re-measure (three runs of the op)
 * put 256–1024 at 0.87–1.20× — parity within the noise — and flash faster in every run from 2048:
 * the threshold is kept for the memory, not the time.
 */
export const FLASH_ATTENTION_MIN_SEQ_LEN = 256;

export type AttentionImplementation = 'auto' | 'flash' | 'materialized';

let implementation: AttentionImplementation = 'auto';

/**
 * Forces the attention path of scaledDotProductAttention and groupedAttention (so of every model):
 * 'flash' wherever flash applies, 'materialized' never, 'auto' (default) from
 * FLASH_ATTENTION_MIN_SEQ_LEN query positions up. For tests and benchmarks; returns the previous one.
 */
export function setAttentionImplementation(impl: AttentionImplementation): AttentionImplementation {
  if (impl !== 'auto' && impl !== 'flash' && impl !== 'materialized') throw new RangeError(`setAttentionImplementation: expected 'auto', 'flash' or 'materialized', got ${String(impl)}`);
  const previous = implementation;
  implementation = impl;
  return previous;
}

export function getAttentionImplementation(): AttentionImplementation {
  return implementation;
}

/**
 * Whether attention over tq queries that flash can compute should take the flash path: under
 * 'auto', from the active backend's threshold (the native backend's is 128: its flash kernels beat
 * the materialised path there, 0.90–0.94× the time of a whole tiny training step) or
 * FLASH_ATTENTION_MIN_SEQ_LEN.
 */
export function prefersFlashAttention(tq: number): boolean {
  return implementation === 'flash' || (implementation === 'auto' && tq >= (activeFlashAttentionMinSeqLen() ?? FLASH_ATTENTION_MIN_SEQ_LEN));
}
