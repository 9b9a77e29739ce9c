/**
 * Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"), feature map
 * φ(x) = elu(x) + 1 (positive, so every normaliser is > 0):
 *
 *   out_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + eps),   S_i = Σ_{j≤i} φ(k_j) v_jᵀ,   z_i = Σ_{j≤i} φ(k_j)
 *
 * There is no 1/√D scale: a scale on q cancels between numerator and denominator up to eps, so
 * the paper has none and neither do we. Training uses the parallel form
 * ((φ(Q)φ(K)ᵀ ⊙ causal) V, normaliser = row sums), O(T²) but exact and composed of differentiable
 * ops, so autograd supplies its gradients; decoding uses the recurrent form on a state (S, z)
 * of constant size (nn/attention.ts KVCacheLayer.state, models/decode.ts).
 */
import { record } from '../autograd/engine.js';
import { tensor } from '../tensor/creation.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguousData, mul, where } from './elementwise.js';
import { matmul } from './matmul.js';

/** Added to every normaliser φ(q_i)ᵀ z_i (which is > 0 anyway): guards only against underflow. */
export const LINEAR_ATTENTION_EPS = 1e-6;

/**
 * φ(x) = elu(x) + 1 = x + 1 for x > 0, eˣ otherwise; φ'(x) = 1 for x > 0, eˣ (= φ(x)) otherwise.
 * One pass each way; the backward reuses the output, so nothing else is saved.
 */
export function eluFeatureMap(x: Tensor): Tensor {
  if (x.dtype !== 'float32') throw new TypeError(`eluFeatureMap: input must be float32, got ${x.dtype}`);
  const out = Tensor.uninitialized(x.shape, 'float32');
  const { data, offset } = contiguousData(x);
  const src = data as Float32Array;
  const y = out.storage as Float32Array;
  for (let i = 0; i < x.size; i++) {
    const v = src[offset + i];
    y[i] = v > 0 ? v + 1 : Math.exp(v);
  }
  return record(out, 'eluFeatureMap', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape, 'float32');
    const gd = contiguousData(g);
    const gs = gd.data as Float32Array;
    const o = gx.storage as Float32Array;
    for (let i = 0; i < x.size; i++) o[i] = src[offset + i] > 0 ? gs[gd.offset + i] : gs[gd.offset + i] * y[i];
    return [gx];
  });
}

/** Lower-triangular [T, T] float 0/1 (query i sees keys j ≤ i), shared per length. */
const CAUSAL = new Map<number, Tensor>();
function causalOnes(t: number): Tensor {
  let m = CAUSAL.get(t);
  if (!m) {
    const a = new Float32Array(t * t);
    for (let i = 0; i < t; i++) a.fill(1, i * t, i * t + i + 1);
    m = tensor(a, { shape: [t, t] });
    if (t <= 4096) CAUSAL.set(t, m);
  }
  return m;
}

export interface LinearAttentionOptions {
  /** Added to the normaliser (default LINEAR_ATTENTION_EPS). */
  eps?: number;
  /**
   * The state of the tokens before these ones (a cache): S [B, Hkv, D, D] = Σ φ(k_j) v_jᵀ and
   * z [B, Hkv, D] = Σ φ(k_j). Every new query also sees all of it.
   */
  state?: { s: Tensor; z: Tensor } | null;
  /**
   * Bool mask [Tq, Tk] or broadcasting against [B, Hkv, G, Tq, Tk] (true = attend), in place of
   * the causal one (packed rows: causal within each document). Not with `state`.
   */
  mask?: Tensor | null;
}

/**
 * Causal linear attention in the parallel form on feature-mapped queries and keys:
 * fq = φ(q) [B, Hkv, G, T, D] (G query heads share a key/value head, as in groupedAttention),
 * fk = φ(k) and v [B, Hkv, T, D]; returns [B, Hkv, G, T, D]. With a `state` the result equals
 * running the recurrence over the earlier tokens and then these.
 */
export function causalLinearAttention(fq: Tensor, fk: Tensor, v: Tensor, options: LinearAttentionOptions = {}): Tensor {
  if (fq.ndim !== 5 || fk.ndim !== 4 || v.ndim !== 4 || fk.shape[2] !== fq.shape[3] || v.shape[2] !== fq.shape[3]) {
    throw new Error(`causalLinearAttention: expected fq [B, Hkv, G, T, D] and fk, v [B, Hkv, T, D], got ${formatShape(fq.shape)}, ${formatShape(fk.shape)}, ${formatShape(v.shape)}`);
  }
  const [b, hkv, g, t, d] = fq.shape;
  const { eps = LINEAR_ATTENTION_EPS, state = null, mask = null } = options;
  if (state && mask) throw new Error('causalLinearAttention: pass either state or mask, not both');
  const fqm = fq.reshape([b, hkv, g * t, d]);
  // A[i, j] = φ(q_i)·φ(k_j) ≥ 0, zeroed above the diagonal (or outside the mask): the unnormalised weights.
  const a = matmul(fqm, fk.transpose(-2, -1)).view([b, hkv, g, t, t]);
  const am = mask ? where(mask, a, 0) : mul(a, causalOnes(t));
  const amm = am.reshape([b, hkv, g * t, t]);
  let num = matmul(amm, v);
  let den = amm.sum(-1, true);
  if (state) {
    // The earlier tokens' share: φ(q_i)ᵀ S and φ(q_i)ᵀ z.
    num = num.add(matmul(fqm, state.s));
    den = den.add(matmul(fqm, state.z.unsqueeze(-1)));
  }
  return num.div(den.add(eps)).view([b, hkv, g, t, d]);
}
