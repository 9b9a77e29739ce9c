/**
 * Reference flash attention (FlashAttention-2's blocked online softmax), forward and backward.
 * Scores are never stored beyond one key block of one query row; arithmetic is in float64.
 */
import type { FlashAttentionArgs, FlashAttentionBackwardArgs } from '../kernels.js';

/** Query rows per block: the band of visible keys is computed per block, and blocks outside it are skipped. */
export const FLASH_BLOCK_Q = 32;
/** Keys per block. */
export const FLASH_BLOCK_K = 64;

/** The keys [lo, hi) query i sees. */
export function flashKeyRange(i: number, tk: number, causal: boolean, causalOffset: number, window: number): [number, number] {
  if (!causal) return [0, tk];
  const hi = Math.max(0, Math.min(tk, i + causalOffset + 1));
  const lo = window > 0 ? Math.min(hi, Math.max(0, i + causalOffset - window + 1)) : 0;
  return [lo, hi];
}

export function flashAttentionForward(a: FlashAttentionArgs): void {
  const { heads, group, tq, tk, d, valueDim: dv, q, k, v, scale, causal, causalOffset, window, out, lse } = a;
  const s = new Float64Array(FLASH_BLOCK_K);
  const acc = new Float64Array(FLASH_BLOCK_Q * dv);
  const m = new Float64Array(FLASH_BLOCK_Q);
  const l = new Float64Array(FLASH_BLOCK_Q);
  for (let n = 0; n < heads; n++) {
    const kvBase = Math.floor(n / group) * tk * d;
    const vBase = Math.floor(n / group) * tk * dv;
    for (let i0 = 0; i0 < tq; i0 += FLASH_BLOCK_Q) {
      const i1 = Math.min(tq, i0 + FLASH_BLOCK_Q);
      // The block's band: the union of its rows' key ranges.
      const blockLo = flashKeyRange(i0, tk, causal, causalOffset, window)[0];
      const blockHi = flashKeyRange(i1 - 1, tk, causal, causalOffset, window)[1];
      acc.fill(0);
      m.fill(-Infinity);
      l.fill(0);
      for (let j0 = Math.floor(blockLo / FLASH_BLOCK_K) * FLASH_BLOCK_K; j0 < blockHi; j0 += FLASH_BLOCK_K) {
        const j1 = Math.min(tk, j0 + FLASH_BLOCK_K);
        for (let i = i0; i < i1; i++) {
          const [lo, hi] = flashKeyRange(i, tk, causal, causalOffset, window);
          const a0 = Math.max(j0, lo);
          const a1 = Math.min(j1, hi);
          if (a0 >= a1) continue;
          const qi = (n * tq + i) * d;
          const r = i - i0;
          let blockMax = -Infinity;
          for (let j = a0; j < a1; j++) {
            const kj = kvBase + j * d;
            let dot = 0;
            for (let c = 0; c < d; c++) dot += q[qi + c] * k[kj + c];
            const x = dot * scale;
            s[j - j0] = x;
            if (x > blockMax) blockMax = x;
          }
          const mNew = Math.max(m[r], blockMax);
          const corr = m[r] === -Infinity ? 0 : Math.exp(m[r] - mNew);
          const ar = r * dv;
          if (corr !== 1) for (let c = 0; c < dv; c++) acc[ar + c] *= corr;
          let sum = 0;
          for (let j = a0; j < a1; j++) {
            const p = Math.exp(s[j - j0] - mNew);
            sum += p;
            const vj = vBase + j * dv;
            for (let c = 0; c < dv; c++) acc[ar + c] += p * v[vj + c];
          }
          l[r] = l[r] * corr + sum;
          m[r] = mNew;
        }
      }
      for (let i = i0; i < i1; i++) {
        const r = i - i0;
        const oi = (n * tq + i) * dv;
        if (l[r] === 0) {
          out.fill(0, oi, oi + dv);
          lse[n * tq + i] = -Infinity;
          continue;
        }
        const inv = 1 / l[r];
        for (let c = 0; c < dv; c++) out[oi + c] = acc[r * dv + c] * inv;
        lse[n * tq + i] = m[r] + Math.log(l[r]);
      }
    }
  }
}

export function flashAttentionBackward(a: FlashAttentionBackwardArgs): void {
  const { heads, group, tq, tk, d, valueDim: dw, q, k, v, scale, causal, causalOffset, window, out, lse, dOut, dq, dk, dv } = a;
  const kvHeads = heads / group;
  const dk64 = new Float64Array(kvHeads * tk * d);
  const dv64 = new Float64Array(kvHeads * tk * dw);
  const dqRow = new Float64Array(d);
  for (let n = 0; n < heads; n++) {
    const kvBase = Math.floor(n / group) * tk * d;
    const vBase = Math.floor(n / group) * tk * dw;
    for (let i0 = 0; i0 < tq; i0 += FLASH_BLOCK_Q) {
      const i1 = Math.min(tq, i0 + FLASH_BLOCK_Q);
      for (let i = i0; i < i1; i++) {
        const row = n * tq + i;
        const qi = row * d;
        const oi = row * dw;
        const [lo, hi] = flashKeyRange(i, tk, causal, causalOffset, window);
        dqRow.fill(0);
        const L = lse[row];
        if (lo < hi && L !== -Infinity) {
          // Δ_i = Σ_c dO_ic·O_ic (= Σ_j P_ij·dP_ij).
          let delta = 0;
          for (let c = 0; c < dw; c++) delta += dOut[oi + c] * out[oi + c];
          for (let j = lo; j < hi; j++) {
            const kj = kvBase + j * d;
            const vj = vBase + j * dw;
            let dot = 0;
            let dp = 0;
            for (let c = 0; c < d; c++) dot += q[qi + c] * k[kj + c];
            for (let c = 0; c < dw; c++) dp += dOut[oi + c] * v[vj + c];
            const p = Math.exp(dot * scale - L);
            const ds = p * (dp - delta) * scale;
            for (let c = 0; c < dw; c++) dv64[vj + c] += p * dOut[oi + c];
            for (let c = 0; c < d; c++) {
              dqRow[c] += ds * k[kj + c];
              dk64[kj + c] += ds * q[qi + c];
            }
          }
        }
        for (let c = 0; c < d; c++) dq[qi + c] = dqRow[c];
      }
    }
  }
  dk.set(dk64);
  dv.set(dv64);
}
