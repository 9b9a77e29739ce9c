/**
 * Reference kernels of one recurrent step (RNN, LSTM, GRU) and its adjoint: the gate arithmetic
 * of a whole batch in one pass, after the two gate projections (matrix products) are done.
 * The formulas are in kernels.ts (RecurrentCellArgs); the derivatives used below:
 *   σ' = σ(1 − σ), tanh' = 1 − tanh², relu' = [y > 0] (read from the output y).
 */
import type { RecurrentCellArgs, RecurrentCellBackwardArgs } from '../kernels.js';

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

export function recurrentCell(a: RecurrentCellArgs): void {
  const { mode, batch: B, hidden: H, gi, gh, h, hOut } = a;
  const gates = mode === 'lstm' ? 4 : mode === 'gru' ? 3 : 1;
  const G = gates * H;
  const saved = a.saved;
  for (let b = 0; b < B; b++) {
    const i0 = a.giOffset + b * G;
    const j0 = a.ghOffset + b * G;
    const ho = a.hOutOffset + b * H;
    if (mode === 'rnnTanh' || mode === 'rnnRelu') {
      for (let k = 0; k < H; k++) {
        const v = gi[i0 + k] + gh[j0 + k];
        hOut[ho + k] = mode === 'rnnTanh' ? Math.tanh(v) : v > 0 ? v : 0;
      }
    } else if (mode === 'lstm') {
      const c = a.c as Float32Array;
      const cOut = a.cOut as Float32Array;
      const co = a.cOffset + b * H;
      const cn = a.cOutOffset + b * H;
      const so = a.savedOffset + b * 4 * H;
      for (let k = 0; k < H; k++) {
        const ig = sigmoid(gi[i0 + k] + gh[j0 + k]);
        const fg = sigmoid(gi[i0 + H + k] + gh[j0 + H + k]);
        const gg = Math.tanh(gi[i0 + 2 * H + k] + gh[j0 + 2 * H + k]);
        const og = sigmoid(gi[i0 + 3 * H + k] + gh[j0 + 3 * H + k]);
        // Rounded to float32 as stored, so that h' is computed from the c' that is kept.
        const cNew = Math.fround(fg * c[co + k] + ig * gg);
        cOut[cn + k] = cNew;
        hOut[ho + k] = og * Math.tanh(cNew);
        if (saved) {
          saved[so + k] = ig;
          saved[so + H + k] = fg;
          saved[so + 2 * H + k] = gg;
          saved[so + 3 * H + k] = og;
        }
      }
    } else {
      const hp = a.hOffset + b * H;
      const so = a.savedOffset + b * 4 * H;
      for (let k = 0; k < H; k++) {
        const r = sigmoid(gi[i0 + k] + gh[j0 + k]);
        const z = sigmoid(gi[i0 + H + k] + gh[j0 + H + k]);
        const ghn = gh[j0 + 2 * H + k];
        const n = Math.tanh(gi[i0 + 2 * H + k] + r * ghn);
        hOut[ho + k] = (1 - z) * n + z * h[hp + k];
        if (saved) {
          saved[so + k] = r;
          saved[so + H + k] = z;
          saved[so + 2 * H + k] = n;
          saved[so + 3 * H + k] = ghn;
        }
      }
    }
  }
}

export function recurrentCellBackward(a: RecurrentCellBackwardArgs): void {
  const { mode, batch: B, hidden: H, dh, dGi, dGh, dhPrev } = a;
  const gates = mode === 'lstm' ? 4 : mode === 'gru' ? 3 : 1;
  const G = gates * H;
  for (let b = 0; b < B; b++) {
    const d0 = b * H;
    const gi0 = a.dGiOffset + b * G;
    const gh0 = a.dGhOffset + b * G;
    if (mode === 'rnnTanh' || mode === 'rnnRelu') {
      const ho = a.hOutOffset + b * H;
      for (let k = 0; k < H; k++) {
        const y = a.hOut[ho + k];
        const da = dh[d0 + k] * (mode === 'rnnTanh' ? 1 - y * y : y > 0 ? 1 : 0);
        dGi[gi0 + k] = da;
        dGh[gh0 + k] = da;
        dhPrev[d0 + k] = 0;
      }
    } else if (mode === 'lstm') {
      const s = a.saved as Float32Array;
      const so = a.savedOffset + b * 4 * H;
      const c = a.c as Float32Array;
      const cOut = a.cOut as Float32Array;
      const dc = a.dc as Float32Array;
      const co = a.cOffset + b * H;
      const cn = a.cOutOffset + b * H;
      for (let k = 0; k < H; k++) {
        const ig = s[so + k];
        const fg = s[so + H + k];
        const gg = s[so + 2 * H + k];
        const og = s[so + 3 * H + k];
        const tc = Math.tanh(cOut[cn + k]);
        const dhk = dh[d0 + k];
        const dct = dc[d0 + k] + dhk * og * (1 - tc * tc);
        const dI = dct * gg * ig * (1 - ig);
        const dF = dct * c[co + k] * fg * (1 - fg);
        const dG = dct * ig * (1 - gg * gg);
        const dO = dhk * tc * og * (1 - og);
        dGi[gi0 + k] = dGh[gh0 + k] = dI;
        dGi[gi0 + H + k] = dGh[gh0 + H + k] = dF;
        dGi[gi0 + 2 * H + k] = dGh[gh0 + 2 * H + k] = dG;
        dGi[gi0 + 3 * H + k] = dGh[gh0 + 3 * H + k] = dO;
        dc[d0 + k] = dct * fg;
        dhPrev[d0 + k] = 0;
      }
    } else {
      const s = a.saved as Float32Array;
      const so = a.savedOffset + b * 4 * H;
      const hp = a.hOffset + b * H;
      for (let k = 0; k < H; k++) {
        const r = s[so + k];
        const z = s[so + H + k];
        const n = s[so + 2 * H + k];
        const ghn = s[so + 3 * H + k];
        const dhk = dh[d0 + k];
        const dN = dhk * (1 - z) * (1 - n * n);
        const dZ = dhk * (a.h[hp + k] - n) * z * (1 - z);
        const dR = dN * ghn * r * (1 - r);
        dGi[gi0 + k] = dGh[gh0 + k] = dR;
        dGi[gi0 + H + k] = dGh[gh0 + H + k] = dZ;
        dGi[gi0 + 2 * H + k] = dN;
        dGh[gh0 + 2 * H + k] = dN * r;
        dhPrev[d0 + k] = dhk * z;
      }
    }
  }
}
