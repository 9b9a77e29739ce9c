/**
 * Reference flash attention (FlashAttention-2's blocked online softmax), forward and backward.
 * Scores are never stored beyond one key block of one query row; arithmetic is in float64.
 */
import type { DecodeAttentionArgs, FlashAttentionArgs, FlashAttentionBackwardArgs } from '../kernels.js';

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

/** decodeAttention's scores, grown to the longest cache seen (no allocation per call). */
let decodeScores = new Float32Array(0);

/**
 * One token's attention over a KV cache, head by head (kernels.ts: DecodeAttentionArgs): the
 * scores with dot products unrolled by 4, their softmax, then V's columns four at a time summed in
 * locals over the positions — one store per output instead of a read-modify-write at every
 * position, which made this loop the decode engine's largest cost.
 */
export function decodeAttention(a: DecodeAttentionArgs): void {
  const { q, k: K, v: V, n, slots, heads, kvHeads, dim: D, scale, out } = a;
  if (decodeScores.length < n) decodeScores = new Float32Array(Math.max(n, 2 * decodeScores.length));
  const scores = decodeScores;
  const g = heads / kvHeads;
  const D4 = D - (D % 4);
  for (let h = 0; h < heads; h++) {
    const qo = a.qOffset + h * D;
    const oo = a.outOffset + h * D;
    const base = a.kvOffset + Math.floor(h / g) * slots * D;
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      const ko = base + j * D;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let i = 0;
      for (; i < D4; i += 4) {
        s0 += q[qo + i] * K[ko + i];
        s1 += q[qo + i + 1] * K[ko + i + 1];
        s2 += q[qo + i + 2] * K[ko + i + 2];
        s3 += q[qo + i + 3] * K[ko + i + 3];
      }
      for (; i < D; i++) s0 += q[qo + i] * K[ko + i];
      const v = (s0 + s1 + (s2 + s3)) * scale;
      scores[j] = v;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(scores[j] - max);
      scores[j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    let i = 0;
    for (; i < D4; i += 4) {
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let j = 0, vo = base + i; j < n; j++, vo += D) {
        const w = scores[j];
        a0 += w * V[vo];
        a1 += w * V[vo + 1];
        a2 += w * V[vo + 2];
        a3 += w * V[vo + 3];
      }
      out[oo + i] = a0 * inv;
      out[oo + i + 1] = a1 * inv;
      out[oo + i + 2] = a2 * inv;
      out[oo + i + 3] = a3 * inv;
    }
    for (; i < D; i++) {
      let acc = 0;
      for (let j = 0, vo = base + i; j < n; j++, vo += D) acc += scores[j] * V[vo];
      out[oo + i] = acc * inv;
    }
  }
}
