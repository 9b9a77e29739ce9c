/**
 * Multi-head latent attention in the DecodeEngine (models/decode.ts), in DeepSeek-V2's absorbed
 * form (§2.1.2, "W^UK can be absorbed into W^Q, and W^UV into W^O"): the cache holds only the
 * latents c_KV [B, maxLen, kvLoraRank] and the rotary keys k^R [B, maxLen, qkRopeHeadDim] (the
 * layout of the graph path's LatentKVCacheLayer), and no per-head key or value is ever
 * decompressed. For query head i of a new token:
 *
 *   q̃_i = W_UK,iᵀ q^C_i                    [r]   (q^C_i·k^C_i(j) = q^C_i·W_UK,i c_j = q̃_i·c_j)
 *   score_j = (q̃_i·c_j + q^R_i·k^R_j) · scale,   p = softmax(score)   over the cached j ≤ position
 *   ĉ_i = Σ_j p_j c_j                        [r]
 *   o_i = W_UV,i ĉ_i + b_UV,i                [dv]  (Σ_j p_j (W_UV,i c_j + b) = W_UV,i ĉ_i + b, as Σ p = 1)
 *   out = W_O [o_1; …; o_H] + b_O
 *
 * A bias of W_UK adds q^C_i·b_UK,i to every score of a query alike, which the softmax ignores, so
 * it is left out. The two per-head products are one batched GEMM each (a stride per head).
 */
import { kernels } from '../backends/registry.js';
import { floatData } from '../ops/elementwise.js';
import type { Linear } from '../nn/layers.js';
import { exponentiateScores, project, rotate } from './decode-ops.js';
import type { MultiHeadLatentAttention } from '../nn/mla.js';
import type { RMSNorm } from '../nn/normalization.js';

/**
 * One query head over n cached positions: ctx = Σ_j softmax_j((q̃·c_j + qR·kR_j)·scale) c_j.
 * q̃ at qa[qo..qo+r), qR at qr[ro..ro+rope), the row's cache from latent[lo], ropeKey[ko].
 */
function attendLatent(qa: Float32Array, qo: number, qr: Float32Array, ro: number, latent: Float32Array, lo: number, ropeKey: Float32Array, ko: number, n: number, r: number, rope: number, scale: number, scores: Float32Array, ctx: Float32Array, co: number): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const cj = lo + j * r;
    const kj = ko + j * rope;
    let s = 0;
    for (let i = 0; i < r; i++) s += qa[qo + i] * latent[cj + i];
    let sr = 0;
    for (let i = 0; i < rope; i++) sr += qr[ro + i] * ropeKey[kj + i];
    const v = (s + sr) * scale;
    scores[j] = v;
    if (v > max) max = v;
  }
  const inv = exponentiateScores(scores, n, max);
  ctx.fill(0, co, co + r);
  for (let j = 0; j < n; j++) {
    const w = scores[j] * inv;
    const cj = lo + j * r;
    for (let i = 0; i < r; i++) ctx[co + i] += w * latent[cj + i];
  }
}

/** Scratch buffers of MLA decoding, grown to the rows of a call and reused across layers and calls. */
export class MlaDecodeScratch {
  #rows = 0;
  #scoresLen = 0;
  cq = new Float32Array(0);
  cqNorm = new Float32Array(0);
  qc = new Float32Array(0);
  qr = new Float32Array(0);
  ckv = new Float32Array(0);
  ckvNorm = new Float32Array(0);
  kr = new Float32Array(0);
  qAbs = new Float32Array(0);
  ctx = new Float32Array(0);
  o = new Float32Array(0);
  rstd = new Float32Array(0);
  scores = new Float32Array(0);

  reserve(attn: MultiHeadLatentAttention, rows: number, maxLen: number): void {
    if (maxLen > this.#scoresLen) {
      this.#scoresLen = maxLen;
      this.scores = new Float32Array(maxLen);
    }
    if (rows <= this.#rows) return;
    const { kvLoraRank: r, qLoraRank, qkNopeHeadDim: nope, qkRopeHeadDim: rope, vHeadDim: dv } = attn.dims;
    const H = attn.nHeads;
    const qr = qLoraRank ?? 0;
    this.#rows = rows;
    this.cq = new Float32Array(rows * qr);
    this.cqNorm = new Float32Array(rows * qr);
    this.qc = new Float32Array(rows * H * nope);
    this.qr = new Float32Array(rows * H * rope);
    this.ckv = new Float32Array(rows * r);
    this.ckvNorm = new Float32Array(rows * r);
    this.kr = new Float32Array(rows * rope);
    this.qAbs = new Float32Array(rows * H * r);
    this.ctx = new Float32Array(rows * H * r);
    this.o = new Float32Array(rows * H * dv);
    this.rstd = new Float32Array(rows);
  }
}

function rmsNorm(norm: RMSNorm, x: Float32Array, rows: number, out: Float32Array, rstd: Float32Array): void {
  kernels.rmsNorm({ x, rows, cols: norm.normalizedShape[0], weight: norm.weight ? floatData(norm.weight) : null, eps: norm.eps, out, rstd });
}

/**
 * MLA over the t new tokens of each of B rows (input [B·t, dModel], row-major by batch row then
 * token): appends their c_KV and k^R at positions past.. of the cache (latent [B, maxLen, r],
 * ropeKey [B, maxLen, rope]), attends causally in the absorbed form and writes the layer's
 * output [B·t, dModel] to `out`.
 */
export function mlaDecodeAttention(
  attn: MultiHeadLatentAttention,
  input: Float32Array,
  batch: number,
  t: number,
  past: number,
  maxLen: number,
  latent: Float32Array,
  ropeKey: Float32Array,
  out: Float32Array,
  s: MlaDecodeScratch,
): void {
  const rows = batch * t;
  s.reserve(attn, rows, maxLen);
  const H = attn.nHeads;
  const { kvLoraRank: r, qkNopeHeadDim: nope, qkRopeHeadDim: rope, vHeadDim: dv } = attn.dims;
  const cos = floatData(attn.rope.cos);
  const sin = floatData(attn.rope.sin);
  const interleaved = attn.rope.pairing === 'interleaved';
  // Queries: q^C and the rotated q^R, from h or the normalised c_Q.
  let qIn = input;
  if (attn.wDq && attn.qNorm) {
    project(input, rows, attn.wDq, s.cq);
    rmsNorm(attn.qNorm, s.cq, rows, s.cqNorm, s.rstd);
    qIn = s.cqNorm;
  }
  project(qIn, rows, (attn.wq ?? attn.wUq) as Linear, s.qc);
  project(qIn, rows, attn.wQr, s.qr);
  rotate(s.qr, rows, t, past, H, rope, cos, sin, interleaved);
  // The new tokens' c_KV and k^R, into the cache.
  project(input, rows, attn.wDkv, s.ckv);
  rmsNorm(attn.kvNorm, s.ckv, rows, s.ckvNorm, s.rstd);
  project(input, rows, attn.wKr, s.kr);
  rotate(s.kr, rows, t, past, 1, rope, cos, sin, interleaved);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < t; i++) {
      const row = b * t + i;
      latent.set(s.ckvNorm.subarray(row * r, (row + 1) * r), (b * maxLen + past + i) * r);
      ropeKey.set(s.kr.subarray(row * rope, (row + 1) * rope), (b * maxLen + past + i) * rope);
    }
  }
  // q̃_i = q^C_i · W_UK,i for every head at once: A [rows, nope] at column i·nope, B = W_UK's rows i·nope.. [nope, r].
  kernels.gemm({ transA: false, transB: false, m: rows, n: r, k: nope, alpha: 1, a: s.qc, aOffset: 0, lda: H * nope, strideA: nope, b: floatData(attn.wUk.weight), bOffset: 0, ldb: r, strideB: nope * r, beta: 0, c: s.qAbs, cOffset: 0, ldc: H * r, strideC: r, batch: H });
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < t; i++) {
      const row = b * t + i;
      for (let hh = 0; hh < H; hh++) {
        attendLatent(s.qAbs, (row * H + hh) * r, s.qr, (row * H + hh) * rope, latent, b * maxLen * r, ropeKey, b * maxLen * rope, past + i + 1, r, rope, attn.scale, s.scores, s.ctx, (row * H + hh) * r);
      }
    }
  }
  // o_i = ĉ_i · W_UV,iᵀ (+ b_UV,i) for every head at once, then W_O.
  kernels.gemm({ transA: false, transB: true, m: rows, n: dv, k: r, alpha: 1, a: s.ctx, aOffset: 0, lda: H * r, strideA: r, b: floatData(attn.wUv.weight), bOffset: 0, ldb: r, strideB: dv * r, beta: 0, c: s.o, cOffset: 0, ldc: H * dv, strideC: dv, batch: H });
  if (attn.wUv.bias) {
    const bias = floatData(attn.wUv.bias);
    for (let row = 0; row < rows; row++) for (let j = 0; j < H * dv; j++) s.o[row * H * dv + j] += bias[j];
  }
  project(s.o, rows, attn.wo, out);
}
