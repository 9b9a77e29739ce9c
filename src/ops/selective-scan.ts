/**
 * The sequential parts of a Mamba (S6) layer (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling
 * with Selective State Spaces", Alg. 2 and §3.5), forward and backward side by side:
 *
 * - selectiveScan: per channel d and state n, with a_t = exp(Δ_t,d·A_d,n) (zero-order hold of A)
 *   and the simplified (Euler) input discretisation Δ_t,d·B_t,n of the paper's reference code:
 *     h_t,d,n = exp(Δ_t,d·A_d,n)·h_t−1,d,n + Δ_t,d·B_t,n·x_t,d
 *     y_t,d   = Σ_n C_t,n·h_t,d,n + D_d·x_t,d
 *   The loops are the backend kernels selectiveScanForward / selectiveScanBackward (the float64
 *   reference in backends/js/scan.ts, a WASM SIMD one vectorised over N in backends/wasm).
 * - causalConv1d: a depthwise convolution over time with left zero padding (Conv1d with groups =
 *   channels, padding dConv − 1, truncated to the input length).
 * - softplus: log(1 + eˣ), PyTorch's threshold included (x > 20 returns x), for Δ.
 *
 * Channels are independent in the scan, so the backward kernel recomputes the states of one
 * (batch row, channel) at a time into an L·N scratch buffer and then runs the reverse scan over
 * it: the forward stores nothing beyond its inputs (the paper's "recomputation" in §3.3.2, per
 * channel instead of per SRAM tile), so training memory is that of the inputs, not B·L·Din·N
 * states.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape } from '../tensor/shape.js';
import { tensor } from '../tensor/creation.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData } from './elementwise.js';

function checkFloat(op: string, name: string, t: Tensor, shape: readonly number[], meaning: string): void {
  if (t.dtype !== 'float32' || t.ndim !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
    throw new Error(`${op}: ${name} must be float32 ${meaning} = ${formatShape(shape)}, got ${t.dtype} ${formatShape(t.shape)}`);
  }
}

// ---- softplus ------------------------------------------------------------------------------------

/** Above this, softplus(x) = x in float32 (torch.nn.functional.softplus's default threshold). */
export const SOFTPLUS_THRESHOLD = 20;

/** softplus(x) = log(1 + eˣ) elementwise; its derivative is the logistic sigmoid 1/(1 + e⁻ˣ). */
export function softplus(x: Tensor): Tensor {
  if (x.dtype !== 'float32') throw new TypeError(`softplus: input must be float32, got ${x.dtype}`);
  const src = floatData(x);
  const out = Tensor.uninitialized(x.shape, 'float32');
  const y = out.storage as Float32Array;
  // log1p keeps full precision where eˣ is tiny (Δ of a strongly negative pre-activation).
  for (let i = 0; i < src.length; i++) y[i] = src[i] > SOFTPLUS_THRESHOLD ? src[i] : Math.log1p(Math.exp(src[i]));
  return record(out, 'softplus', [x], (g) => {
    const gd = floatData(g);
    const gx = Tensor.uninitialized(x.shape, 'float32');
    const o = gx.storage as Float32Array;
    for (let i = 0; i < src.length; i++) o[i] = src[i] > SOFTPLUS_THRESHOLD ? gd[i] : gd[i] / (1 + Math.exp(-src[i]));
    return [gx];
  });
}

// ---- causal depthwise conv1d ---------------------------------------------------------------------

export interface CausalConv1dOptions {
  /**
   * The inputs before these ones, [B, Din, dConv − 1] (oldest first; a decoding cache's conv
   * state): they replace the left zero padding. No gradient reaches it (it is inference state).
   */
  state?: Tensor | null;
}

/**
 * out[b, t, d] = bias[d] + Σ_k weight[d, k]·x[b, t − (K − 1) + k, d] over x [B, L, Din] (channels
 * last, the layout of the projections around it) with weight [Din, K] and bias [Din] (or null);
 * inputs before t = 0 are zeros, or `state`. torch's Conv1d(Din, Din, K, groups=Din,
 * padding=K−1)(x.transpose(1, 2))[..., :L], transposed back.
 */
export function causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, options: CausalConv1dOptions = {}): Tensor {
  if (x.dtype !== 'float32' || x.ndim !== 3) throw new Error(`causalConv1d: x must be float32 [B, L, Din], got ${x.dtype} ${formatShape(x.shape)}`);
  const [B, L, D] = x.shape;
  if (weight.ndim !== 2 || weight.shape[0] !== D || weight.shape[1] < 1) throw new Error(`causalConv1d: weight must be [Din, dConv] with Din = ${D}, got ${formatShape(weight.shape)}`);
  const K = weight.shape[1];
  checkFloat('causalConv1d', 'weight', weight, [D, K], '[Din, dConv]');
  if (bias) checkFloat('causalConv1d', 'bias', bias, [D], '[Din]');
  const state = options.state ?? null;
  if (state) checkFloat('causalConv1d', 'state', state, [B, D, K - 1], '[B, Din, dConv − 1]');
  const xs = floatData(x);
  const w = floatData(weight);
  const bs = bias ? floatData(bias) : null;
  const st = state ? floatData(state) : null;
  // The input at time s (s < 0 reads the state's slot K − 1 + s, or a zero).
  const input = (b: number, s: number, d: number): number => (s >= 0 ? xs[(b * L + s) * D + d] : st ? st[(b * D + d) * (K - 1) + K - 1 + s] : 0);
  const out = Tensor.uninitialized([B, L, D], 'float32');
  const y = out.storage as Float32Array;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let d = 0; d < D; d++) {
        let acc = bs ? bs[d] : 0;
        for (let k = 0; k < K; k++) acc += w[d * K + k] * input(b, t - (K - 1) + k, d);
        y[(b * L + t) * D + d] = acc;
      }
    }
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, 'causalConv1d', inputs, (g) => {
    const gy = floatData(g);
    const gx = Tensor.uninitialized([B, L, D], 'float32');
    const dx = gx.storage as Float32Array;
    const dw = new Float64Array(D * K);
    const db = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < L; s++) {
        for (let d = 0; d < D; d++) {
          // x_s feeds the outputs t = s + (K − 1) − k that exist (t < L).
          let acc = 0;
          for (let k = Math.max(0, s + K - L); k < K; k++) acc += w[d * K + k] * gy[(b * L + s + K - 1 - k) * D + d];
          dx[(b * L + s) * D + d] = acc;
        }
      }
      for (let t = 0; t < L; t++) {
        for (let d = 0; d < D; d++) {
          const gv = gy[(b * L + t) * D + d];
          db[d] += gv;
          for (let k = 0; k < K; k++) dw[d * K + k] += gv * input(b, t - (K - 1) + k, d);
        }
      }
    }
    const grads: Tensor[] = [gx, tensor(Float32Array.from(dw), { shape: [D, K] })];
    if (bias) grads.push(tensor(Float32Array.from(db), { shape: [D] }));
    return grads;
  });
}

// ---- selective scan ------------------------------------------------------------------------------

export interface SelectiveScanOptions {
  /** h before the first step, [B, Din, N] (a decoding cache's SSM state); zeros when absent. Differentiable. */
  initialState?: Tensor | null;
}

export interface SelectiveScanResult {
  /** [B, L, Din]: y_t,d = Σ_n C_t,n·h_t,d,n + D_d·x_t,d. */
  y: Tensor;
  /** h after the last step, [B, Din, N], for continuing the sequence; not part of the graph (no gradient flows back from it). */
  finalState: Tensor;
}

/**
 * Mamba's selective scan (see the file comment) over x [B, L, Din], delta [B, L, Din] (Δ, already
 * positive: softplus'ed), A [Din, N] (negative: −exp(A_log)), Bmat and C [B, L, N] (shared by all
 * channels, as in the paper) and dSkip [Din] (the D skip connection). Gradients reach x, delta, A,
 * Bmat, C, dSkip and the initial state.
 */
export function selectiveScan(x: Tensor, delta: Tensor, A: Tensor, Bmat: Tensor, C: Tensor, dSkip: Tensor, options: SelectiveScanOptions = {}): SelectiveScanResult {
  if (x.dtype !== 'float32' || x.ndim !== 3) throw new Error(`selectiveScan: x must be float32 [B, L, Din], got ${x.dtype} ${formatShape(x.shape)}`);
  const [Bn, L, D] = x.shape;
  if (A.ndim !== 2 || A.shape[0] !== D) throw new Error(`selectiveScan: A must be [Din, N] with Din = ${D}, got ${formatShape(A.shape)}`);
  const N = A.shape[1];
  checkFloat('selectiveScan', 'A', A, [D, N], '[Din, N]');
  checkFloat('selectiveScan', 'delta', delta, [Bn, L, D], '[B, L, Din] like x');
  checkFloat('selectiveScan', 'Bmat', Bmat, [Bn, L, N], '[B, L, N]');
  checkFloat('selectiveScan', 'C', C, [Bn, L, N], '[B, L, N]');
  checkFloat('selectiveScan', 'dSkip', dSkip, [D], '[Din]');
  const h0Tensor = options.initialState ?? null;
  if (h0Tensor) checkFloat('selectiveScan', 'initialState', h0Tensor, [Bn, D, N], '[B, Din, N]');
  const xs = floatData(x);
  const dt = floatData(delta);
  const a = floatData(A);
  const bm = floatData(Bmat);
  const cm = floatData(C);
  const ds = floatData(dSkip);
  const h0 = h0Tensor ? floatData(h0Tensor) : null;

  const out = Tensor.uninitialized([Bn, L, D], 'float32');
  const finalState = Tensor.uninitialized([Bn, D, N], 'float32');
  const common = { batch: Bn, length: L, channels: D, state: N, x: xs, delta: dt, a, bmat: bm, cmat: cm, dSkip: ds, h0 };
  kernels.selectiveScanForward({ ...common, y: out.storage as Float32Array, hLast: finalState.storage as Float32Array });

  const inputs = h0Tensor ? [x, delta, A, Bmat, C, dSkip, h0Tensor] : [x, delta, A, Bmat, C, dSkip];
  const yRecorded = record(out, 'selectiveScan', inputs, (g) => {
    const dx = Tensor.uninitialized([Bn, L, D], 'float32');
    const dDelta = Tensor.uninitialized([Bn, L, D], 'float32');
    const dA = Tensor.uninitialized([D, N], 'float32');
    const dB = Tensor.uninitialized([Bn, L, N], 'float32');
    const dC = Tensor.uninitialized([Bn, L, N], 'float32');
    const dD = Tensor.uninitialized([D], 'float32');
    const dh0 = h0Tensor ? Tensor.uninitialized([Bn, D, N], 'float32') : null;
    const f32 = (t: Tensor) => t.storage as Float32Array;
    // The kernel recomputes the states channel by channel: the forward saved nothing but its inputs.
    kernels.selectiveScanBackward({
      ...common,
      dy: floatData(g),
      dx: f32(dx),
      dDelta: f32(dDelta),
      dA: f32(dA),
      dBmat: f32(dB),
      dCmat: f32(dC),
      dDSkip: f32(dD),
      dh0: dh0 && f32(dh0),
    });
    return dh0 ? [dx, dDelta, dA, dB, dC, dD, dh0] : [dx, dDelta, dA, dB, dC, dD];
  });
  return { y: yRecorded, finalState };
}
