/**
 * recurrence: a whole RNN/LSTM/GRU sequence as one differentiable op — forward over the time steps
 * and backward through time side by side, like llm.c's layer_forward / layer_backward pairs.
 *
 * The input projection of every step (gi = x·W_ihᵀ + b_ih, [T, B, G]) is one matrix product done
 * by the caller (nn/recurrent.ts), so it is an ordinary graph node. What is sequential stays here:
 * at each step one GEMM h·W_hhᵀ (+ b_hh) and one fused gate kernel (kernels.recurrentCell); no
 * graph node per step or per gate. Backward runs the steps in reverse: the gate kernel's adjoint,
 * one GEMM dGh·W_hh for the gradient reaching the previous state, and at the end one GEMM each for
 * dW_hh = Σ_t dGh_tᵀ·h_{t−1} over all steps at once and a column sum for db_hh.
 *
 * The output packs the states of every step: [S, T, B, H] with S = 2 for LSTM (hidden states,
 * then cell states) and 1 otherwise; callers take the outputs and the final states as views of it,
 * so gradients reaching the final cell state flow back as well.
 */
import { record } from '../autograd/engine.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { kernels } from '../backends/registry.js';
import type { RecurrentCellMode } from '../backends/kernels.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData } from './elementwise.js';

export type { RecurrentCellMode } from '../backends/kernels.js';

/** Gates per mode: G = gates · H. */
export const RECURRENT_GATES: Readonly<Record<RecurrentCellMode, number>> = { rnnTanh: 1, rnnRelu: 1, lstm: 4, gru: 3 };

export interface RecurrenceOptions {
  /** The initial cell state [B, H] (LSTM only; zeros when absent). */
  c0?: Tensor | null;
  /** b_hh [G], or null for none. */
  biasHh?: Tensor | null;
  /** Runs from the last step to the first (the backward direction of a bidirectional layer). */
  reverse?: boolean;
}

/** C (m×n) = A·op(B) (+ C when accumulate), all row-major and contiguous from their offsets. */
function gemmInto(a: Float32Array, aOffset: number, b: Float32Array, transB: boolean, c: Float32Array, cOffset: number, m: number, n: number, k: number, accumulate: boolean, transA = false): void {
  kernels.gemm({
    transA,
    transB,
    m,
    n,
    k,
    alpha: 1,
    a,
    aOffset,
    lda: transA ? m : k,
    strideA: 0,
    b,
    bOffset: 0,
    ldb: transB ? k : n,
    strideB: 0,
    beta: accumulate ? 1 : 0,
    c,
    cOffset,
    ldc: n,
    strideC: 0,
    batch: 1,
  });
}

/**
 * Runs the recurrence over gi [T, B, G] from h0 [B, H] with W_hh [G, H]; returns the packed states
 * [S, T, B, H] (see the file comment). Step t's output sits at index t in both directions.
 */
export function recurrence(mode: RecurrentCellMode, gi: Tensor, h0: Tensor, weightHh: Tensor, options: RecurrenceOptions = {}): Tensor {
  const gates = RECURRENT_GATES[mode];
  if (gates === undefined) throw new Error(`recurrence: mode must be 'rnnTanh', 'rnnRelu', 'lstm' or 'gru', got '${String(mode)}'`);
  const isLSTM = mode === 'lstm';
  const c0 = options.c0 ?? null;
  const biasHh = options.biasHh ?? null;
  const reverse = options.reverse ?? false;
  if (gi.ndim !== 3) throw new Error(`recurrence: gi must be [T, B, G], got shape ${formatShape(gi.shape)}`);
  const [T, B, G] = gi.shape;
  if (weightHh.ndim !== 2 || weightHh.shape[0] !== G || weightHh.shape[0] !== gates * weightHh.shape[1]) {
    throw new Error(`recurrence: weightHh must be [${gates}·H, H] with ${gates}·H = ${G} (gi's last dim), got shape ${formatShape(weightHh.shape)}`);
  }
  const H = weightHh.shape[1];
  if (!shapesEqual(h0.shape, [B, H])) throw new Error(`recurrence: h0 must be [B, H] = ${formatShape([B, H])}, got ${formatShape(h0.shape)}`);
  if (isLSTM && c0 && !shapesEqual(c0.shape, [B, H])) throw new Error(`recurrence: c0 must be [B, H] = ${formatShape([B, H])}, got ${formatShape(c0.shape)}`);
  if (!isLSTM && c0) throw new Error(`recurrence: c0 is for mode 'lstm' only, got mode '${mode}'`);
  if (biasHh && !shapesEqual(biasHh.shape, [G])) throw new Error(`recurrence: biasHh must be [${G}], got ${formatShape(biasHh.shape)}`);
  if (T < 1 || B < 1) throw new Error(`recurrence: need at least one step and one sequence, got gi shape ${formatShape(gi.shape)}`);

  const S = isLSTM ? 2 : 1;
  const BH = B * H;
  const BG = B * G;
  const giData = floatData(gi);
  const w = floatData(weightHh);
  const h0Data = floatData(h0);
  const c0Data = isLSTM ? (c0 ? floatData(c0) : new Float32Array(BH)) : null;
  const inputs = [gi, h0, weightHh, ...(c0 ? [c0] : []), ...(biasHh ? [biasHh] : [])];
  const needsGrad = isGradEnabled() && inputs.some((t) => t.requiresGrad);

  const out = Tensor.uninitialized([S, T, B, H]);
  const states = out.storage as Float32Array;
  const cBase = T * BH; // cell states follow the hidden states
  const saved = needsGrad && mode !== 'rnnTanh' && mode !== 'rnnRelu' ? Tensor.uninitialized([T, B, 4 * H]) : null;
  const savedData = saved ? (saved.storage as Float32Array) : null;
  // b_hh broadcast over the batch once; each step's gh starts as a copy of it.
  const biasRows = new Float32Array(BG);
  if (biasHh) {
    const b = floatData(biasHh);
    for (let r = 0; r < B; r++) biasRows.set(b, r * G);
  }
  const gh = new Float32Array(BG);
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    const prev = reverse ? t + 1 : t - 1;
    const [hData, hOffset] = s === 0 ? [h0Data, 0] : [states, prev * BH];
    gh.set(biasRows);
    gemmInto(hData, hOffset, w, true, gh, 0, B, G, H, true);
    kernels.recurrentCell({
      mode,
      batch: B,
      hidden: H,
      gi: giData,
      giOffset: t * BG,
      gh,
      ghOffset: 0,
      h: hData,
      hOffset,
      c: isLSTM ? (s === 0 ? c0Data : states) : null,
      cOffset: s === 0 ? 0 : cBase + prev * BH,
      hOut: states,
      hOutOffset: t * BH,
      cOut: isLSTM ? states : null,
      cOutOffset: cBase + t * BH,
      saved: savedData,
      savedOffset: t * 4 * BH,
    });
  }
  if (!needsGrad) return out;

  return record(
    out,
    'recurrence',
    inputs,
    (g) => {
      const grad = floatData(g);
      const dGi = Tensor.uninitialized([T, B, G]);
      const dGiData = dGi.storage as Float32Array;
      // Only GRU's n block differs between the two projections' gradients; the others share one buffer.
      const dGhData = mode === 'gru' ? new Float32Array(T * BG) : dGiData;
      const dhCarry = new Float32Array(BH);
      const dcCarry = isLSTM ? new Float32Array(BH) : null;
      const dh = new Float32Array(BH);
      const dhPrev = new Float32Array(BH);
      for (let s = T - 1; s >= 0; s--) {
        const t = reverse ? T - 1 - s : s;
        const prev = reverse ? t + 1 : t - 1;
        for (let i = 0; i < BH; i++) dh[i] = grad[t * BH + i] + dhCarry[i];
        if (dcCarry) for (let i = 0; i < BH; i++) dcCarry[i] += grad[cBase + t * BH + i];
        const [hData, hOffset] = s === 0 ? [h0Data, 0] : [states, prev * BH];
        kernels.recurrentCellBackward({
          mode,
          batch: B,
          hidden: H,
          saved: savedData,
          savedOffset: t * 4 * BH,
          hOut: states,
          hOutOffset: t * BH,
          h: hData,
          hOffset,
          c: isLSTM ? (s === 0 ? c0Data : states) : null,
          cOffset: s === 0 ? 0 : cBase + prev * BH,
          cOut: isLSTM ? states : null,
          cOutOffset: cBase + t * BH,
          dh,
          dc: dcCarry,
          dGi: dGiData,
          dGiOffset: t * BG,
          dGh: dGhData,
          dGhOffset: t * BG,
          dhPrev,
        });
        // The gradient reaching the previous state: its direct part plus dGh_t · W_hh.
        dhCarry.set(dhPrev);
        gemmInto(dGhData, t * BG, w, false, dhCarry, 0, B, H, G, true);
      }
      let dW: Tensor | null = null;
      if (weightHh.requiresGrad) {
        // dW_hh = Σ_t dGh_tᵀ · h_{t−1}: the first processed step reads h0, the others the stored
        // states one step behind, which are contiguous — two GEMMs for the whole sequence.
        dW = Tensor.empty([G, H]);
        const dWData = dW.storage as Float32Array;
        const first = reverse ? T - 1 : 0;
        gemmInto(dGhData, first * BG, h0Data, false, dWData, 0, G, H, B, true, true);
        if (T > 1) {
          const [gFrom, hFrom] = reverse ? [0, 1] : [1, 0];
          gemmInto(dGhData, gFrom * BG, states.subarray(hFrom * BH, (hFrom + T - 1) * BH), false, dWData, 0, G, H, (T - 1) * B, true, true);
        }
      }
      const grads: (Tensor | null)[] = [gi.requiresGrad ? dGi : null, h0.requiresGrad ? new Tensor(dhCarry, [B, H]) : null, dW];
      if (c0) grads.push(c0.requiresGrad ? new Tensor(dcCarry as Float32Array, [B, H]) : null);
      if (biasHh) {
        let db: Tensor | null = null;
        if (biasHh.requiresGrad) {
          db = Tensor.empty([G]);
          kernels.reduce({ op: 'sum', x: dGhData, xOffset: 0, outer: 1, size: T * B, inner: G, out: db.storage as Float32Array });
        }
        grads.push(db);
      }
      return grads;
    },
    saved ? [saved] : undefined,
  );
}
