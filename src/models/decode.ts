/**
 * DecodeEngine: TransformerLM inference without the autograd graph — llm.c's style of flat
 * buffers and one function per layer step. Every buffer is allocated once per engine (the KV
 * cache of each layer in place, [B, Hkv, maxLen, D]; the activations of up to `maxLen` new tokens
 * per row), each projection is one GEMM call (BLAS sgemm/sgemv on Node, the WASM GEMM elsewhere)
 * that starts from the bias, norms and activations are the fused kernels, softmax attention over
 * the cache is one kernels.decodeAttention call per token and layer (WASM SIMD on Node, all heads
 * at once), and RoPE, linear attention and the residual adds are plain loops over the buffers.
 * Prefill is the same code with T > 1 tokens per row: one pass for the whole prompt.
 *
 *   const engine = new DecodeEngine(model, 1);
 *   let logits = engine.forward(promptIds, promptIds.length);   // [B, V] of each row's last token
 *   logits = engine.forward(Int32Array.of(next), 1);             // one more token per row
 *
 * It reads the model's parameters at every call (no copies), so a model that keeps training is
 * decoded with its current weights. Tokens and logits equal the graph path's (tests/models/decode.test.ts).
 */
import { kernels } from '../backends/registry.js';
import { floatData } from '../ops/elementwise.js';
import { LINEAR_ATTENTION_EPS } from '../ops/linear-attention.js';
import type { FeedForward, SwiGLU } from '../nn/feedforward.js';
import type { TransformerBlock } from '../nn/transformer.js';
import { MixtureOfExperts, topKIndices } from '../nn/moe.js';
import type { LayerNorm, RMSNorm } from '../nn/normalization.js';
import type { Tensor } from '../tensor/tensor.js';
import { inputMultiplier, readoutMultiplier } from './mup.js';
import { linear, project, rotate } from './decode-ops.js';
import { MlaDecodeScratch, mlaDecodeAttention } from './mla-decode.js';
import type { MultiHeadLatentAttention } from '../nn/mla.js';
import { layerKinds, layerWindows, type TransformerConfig } from './config.js';
import type { TransformerLM } from './transformer.js';

/**
 * Why the engine cannot run a model with this config, or null when it can. Architecture options
 * it does not implement yet are decoded on the graph KV-cache path instead
 * (TransformerLM.createDecoder), which every option supports.
 */
export function decodeEngineUnsupported(c: TransformerConfig): string | null {
  if (layerKinds(c).includes('mamba')) return "'mamba' layers are not implemented in the decode engine (the graph path runs their recurrence)";
  return null;
}

export class DecodeEngine {
  readonly model: TransformerLM;
  readonly batch: number;
  readonly maxLen: number;
  /**
   * Positions stored by each layer: maxLen, or min(W, maxLen) with a sliding window W — then that
   * layer's cache is a ring (position p in slot p mod slots) that always holds the last W
   * positions. 0 for linear attention, which keeps a constant-size state instead (layerState).
   */
  readonly layerSlots: number[];
  /** The most positions any layer stores (all of them without per-layer windows). */
  readonly slots: number;
  /** Tokens each row has been fed (the absolute position of the next one; ≤ maxLen). */
  length = 0;
  readonly #k: Float32Array[];
  readonly #v: Float32Array[];
  /** Linear attention's state per layer: S [B, Hkv, D, D] = Σ φ(k)vᵀ and z [B, Hkv, D] = Σ φ(k); empty for softmax. */
  readonly #s: Float32Array[];
  readonly #z: Float32Array[];
  #rows = 0;
  #x = new Float32Array(0);
  #h = new Float32Array(0);
  #q = new Float32Array(0);
  #kNew = new Float32Array(0);
  #vNew = new Float32Array(0);
  #att = new Float32Array(0);
  #proj = new Float32Array(0);
  #ff1 = new Float32Array(0);
  #ff3 = new Float32Array(0);
  /** MoE scratch: router scores [rows, E], each row's k experts and weights, one expert's rows in and out. */
  #route = new Float32Array(0);
  #chosen = new Int32Array(0);
  #chosenWeight = new Float32Array(0);
  #members = new Int32Array(0);
  #expertIn = new Float32Array(0);
  #expertOut = new Float32Array(0);
  #mean = new Float32Array(0);
  #rstd = new Float32Array(0);
  readonly #last: Float32Array;
  readonly #lastNorm: Float32Array;
  readonly #logits: Float32Array;
  /** Head geometry, from the config: query heads, kv heads, head dim, queries per kv head, kv row width. */
  readonly #heads: { H: number; Hkv: number; D: number; g: number; kvw: number };
  /** MLA's scratch buffers (models/mla-decode.ts), grown on first use. */
  readonly #mlaScratch = new MlaDecodeScratch();

  constructor(model: TransformerLM, batch = 1, maxLen = model.config.maxSeqLen) {
    const c = model.config;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`DecodeEngine: batch must be a positive integer, got ${batch}`);
    if (!Number.isInteger(maxLen) || maxLen < 1 || maxLen > c.maxSeqLen) throw new RangeError(`DecodeEngine: maxLen must be an integer in [1, ${c.maxSeqLen}], got ${maxLen}`);
    const unsupported = decodeEngineUnsupported(c);
    if (unsupported !== null) throw new Error(`DecodeEngine: ${unsupported}; use model.createDecoder(), which falls back to the KV-cache path`);
    this.model = model;
    this.batch = batch;
    this.maxLen = maxLen;
    const linear = c.attention === 'linear';
    this.layerSlots = layerWindows(c).map((w) => (linear ? 0 : w === null ? maxLen : Math.min(w, maxLen)));
    this.slots = Math.max(0, ...this.layerSlots);
    const D = c.dModel / c.nHeads;
    this.#heads = { H: c.nHeads, Hkv: c.nKvHeads, D, g: c.nHeads / c.nKvHeads, kvw: c.nKvHeads * D };
    // Allocated once: the state does not grow with the sequence.
    this.#s = Array.from({ length: linear ? c.nLayers : 0 }, () => new Float32Array(batch * c.nKvHeads * D * D));
    this.#z = Array.from({ length: linear ? c.nLayers : 0 }, () => new Float32Array(batch * c.nKvHeads * D));
    // MLA caches the latent c_KV [B, slots, kvLoraRank] as k and the rotary key k^R [B, slots, qkRopeHeadDim] as v.
    this.#k = this.layerSlots.map((slots) => new Float32Array(batch * slots * (c.mla ? c.mla.kvLoraRank : c.nKvHeads * D)));
    this.#v = this.layerSlots.map((slots) => new Float32Array(batch * slots * (c.mla ? c.mla.qkRopeHeadDim : c.nKvHeads * D)));
    this.#last = new Float32Array(batch * c.dModel);
    this.#lastNorm = new Float32Array(batch * c.dModel);
    this.#logits = new Float32Array(batch * c.vocabSize);
  }

  /**
   * Layer l's cached keys and values, [B, Hkv, slots, D] row-major (position p in slot p mod
   * slots); with mla the latents c_KV [B, slots, kvLoraRank] as k and the rotary keys k^R
   * [B, slots, qkRopeHeadDim] as v. The engine's own buffers, for inspection only.
   */
  layerCache(l: number): { k: Float32Array; v: Float32Array } {
    if (!(Number.isInteger(l) && l >= 0 && l < this.#k.length)) throw new RangeError(`DecodeEngine: layer must be an integer in [0, ${this.#k.length}), got ${l}`);
    return { k: this.#k[l], v: this.#v[l] };
  }

  /**
   * Layer l's linear-attention state, S [B, Hkv, D, D] and z [B, Hkv, D] row-major; the engine's
   * own buffers, for inspection only.
   */
  layerState(l: number): { s: Float32Array; z: Float32Array } {
    if (!(Number.isInteger(l) && l >= 0 && l < this.#s.length)) throw new RangeError(`DecodeEngine: layerState needs linear attention and a layer in [0, ${this.#s.length}), got ${l}`);
    return { s: this.#s[l], z: this.#z[l] };
  }

  /** Forgets every row's tokens (the buffers stay; a linear-attention state is zeroed). */
  reset(): void {
    this.length = 0;
    for (const a of this.#s) a.fill(0);
    for (const a of this.#z) a.fill(0);
  }

  /** Scratch for `rows` new tokens at once (grown, never shrunk). */
  #reserve(rows: number): void {
    if (rows <= this.#rows) return;
    const c = this.model.config;
    const d = c.dModel;
    const kv = c.nKvHeads * (d / c.nHeads);
    this.#rows = rows;
    this.#x = new Float32Array(rows * d);
    this.#h = new Float32Array(rows * d);
    this.#q = new Float32Array(rows * d);
    this.#kNew = new Float32Array(rows * kv);
    this.#vNew = new Float32Array(rows * kv);
    this.#att = new Float32Array(rows * d);
    this.#proj = new Float32Array(rows * d);
    // The widest feed-forward: the dense one, or an MoE's expert (gathered rows ≤ rows) or shared experts.
    const width = c.moe ? Math.max(c.moe.dExpert, c.moe.dExpert * c.moe.nSharedExperts) : c.dFF;
    this.#ff1 = new Float32Array(rows * width);
    this.#ff3 = new Float32Array(rows * width);
    if (c.moe) {
      const k = c.moe.topK;
      this.#route = new Float32Array(rows * c.moe.nExperts);
      this.#chosen = new Int32Array(rows * k);
      this.#chosenWeight = new Float32Array(rows * k);
      this.#members = new Int32Array(rows * k);
      this.#expertIn = new Float32Array(rows * d);
      this.#expertOut = new Float32Array(rows * d);
    }
    this.#mean = new Float32Array(rows);
    this.#rstd = new Float32Array(rows);
  }

  /**
   * Appends `t` tokens to every row (ids: B·t, row-major) and returns the next-token logits of
   * each row's last one, [B, V] (a view of the engine's buffer, valid until the next call).
   */
  forward(ids: Int32Array, t: number): Float32Array {
    const m = this.model;
    const c = m.config;
    const B = this.batch;
    if (!Number.isInteger(t) || t < 1 || ids.length !== B * t) throw new Error(`DecodeEngine: expected ${B} rows of t ≥ 1 tokens (${B}·t ids), got ${ids.length} ids for t = ${t}`);
    if (this.length + t > this.maxLen) throw new RangeError(`DecodeEngine: ${t} tokens after the ${this.length} in the cache exceed its length ${this.maxLen}`);
    for (let i = 0; i < ids.length; i++) if (!(ids[i] >= 0 && ids[i] < c.vocabSize)) throw new RangeError(`DecodeEngine: token ${ids[i]} is outside [0, ${c.vocabSize})`);
    const rows = B * t;
    this.#reserve(rows);
    const d = c.dModel;
    const x = this.#x;
    // Embeddings (+ positions), times μP's input multiplier.
    const emb = floatData(m.tokEmb.weight);
    const pos = m.posEmb ? floatData('pe' in m.posEmb ? m.posEmb.pe : m.posEmb.weight) : null;
    const inMul = inputMultiplier(c);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < t; s++) {
        const r = b * t + s;
        const tok = ids[r] * d;
        const p = (this.length + s) * d;
        for (let i = 0; i < d; i++) {
          let v = emb[tok + i];
          if (pos) v += pos[p + i];
          x[r * d + i] = inMul === 1 ? v : v * inMul;
        }
      }
    }
    for (let l = 0; l < c.nLayers; l++) this.#layer(l, t);
    // Each row's last token through the final norm and the head.
    const last = this.#last;
    for (let b = 0; b < B; b++) last.set(x.subarray((b * t + t - 1) * d, (b * t + t) * d), b * d);
    let h = last;
    if (m.norm) {
      this.#norm(m.norm, last, B, this.#lastNorm);
      h = this.#lastNorm;
    }
    const outMul = readoutMultiplier(c);
    if (outMul !== 1) for (let i = 0; i < B * d; i++) h[i] *= outMul;
    if (m.head) project(h, B, m.head, this.#logits);
    else linear(h, B, m.tokEmb.weight, null, this.#logits);
    this.length += t;
    return this.#logits;
  }

  #norm(norm: LayerNorm | RMSNorm, x: Float32Array, rows: number, out: Float32Array): void {
    const cols = this.model.config.dModel;
    const weight = norm.weight ? floatData(norm.weight) : null;
    if ('bias' in norm) {
      kernels.layerNorm({ x, rows, cols, weight, bias: norm.bias ? floatData(norm.bias) : null, eps: norm.eps, out, mean: this.#mean, rstd: this.#rstd });
    } else {
      kernels.rmsNorm({ x, rows, cols, weight, eps: norm.eps, out, rstd: this.#rstd });
    }
  }

  /** Post-norm: x = norm(x), through #h (free at that point), so no buffer is allocated per token. */
  #postNorm(norm: LayerNorm | RMSNorm, rows: number): void {
    this.#h.set(this.#x.subarray(0, rows * this.model.config.dModel));
    this.#norm(norm, this.#h, rows, this.#x);
  }

  /** One transformer block over the t new tokens of every row, in place on #x. */
  #layer(l: number, t: number): void {
    const m = this.model;
    const c = m.config;
    const block = m.block(l);
    const attn = block.attn;
    // Multi-head latent attention has a block step of its own (and narrows attn to MultiHeadAttention below).
    if (!('wk' in attn)) return this.#mlaLayer(l, t, attn);
    const B = this.batch;
    const rows = B * t;
    const d = c.dModel;
    const { H, Hkv, D } = this.#heads;
    const pre = block.normPlacement === 'pre';
    const x = this.#x;
    const h = this.#h;
    const input = pre ? h : x;
    if (pre) this.#norm(block.attnNorm, x, rows, h);
    project(input, rows, attn.wq, this.#q);
    project(input, rows, attn.wk, this.#kNew);
    project(input, rows, attn.wv, this.#vNew);
    const rope = attn.rope;
    if (rope) {
      const cos = floatData(rope.cos);
      const sin = floatData(rope.sin);
      const interleaved = rope.pairing === 'interleaved';
      rotate(this.#q, rows, t, this.length, H, D, cos, sin, interleaved);
      rotate(this.#kNew, rows, t, this.length, Hkv, D, cos, sin, interleaved);
    }
    if (c.attention === 'linear') this.#linearAttention(l, t);
    else this.#softmaxAttention(l, t, attn.scale);
    project(this.#att, rows, attn.wo, this.#proj);
    const proj = this.#proj;
    for (let i = 0; i < rows * d; i++) x[i] += proj[i];
    if (!pre) this.#postNorm(block.attnNorm, rows);
    this.#feedForwardSublayer(block, rows);
  }

  /** The block's second half on #x: norm, feed-forward (dense or MoE) and residual add, pre- or post-norm. */
  #feedForwardSublayer(block: TransformerBlock, rows: number): void {
    const d = this.model.config.dModel;
    const pre = block.normPlacement === 'pre';
    const x = this.#x;
    const h = this.#h;
    const proj = this.#proj;
    if (pre) this.#norm(block.ffnNorm, x, rows, h);
    const ffIn = pre ? h : x;
    const ffn = block.ffn;
    if (ffn instanceof MixtureOfExperts) this.#mixture(ffn, ffIn, rows, proj);
    else this.#feedForward(ffn, ffIn, rows, proj);
    for (let i = 0; i < rows * d; i++) x[i] += proj[i];
    if (!pre) this.#postNorm(block.ffnNorm, rows);
  }

  /**
   * One block whose attention is MLA: the absorbed form over layer l's latent cache (#k = c_KV,
   * #v = k^R; models/mla-decode.ts), then the residual and the same feed-forward sublayer as #layer.
   */
  #mlaLayer(l: number, t: number, attn: MultiHeadLatentAttention): void {
    const block = this.model.block(l);
    const rows = this.batch * t;
    const d = this.model.config.dModel;
    const pre = block.normPlacement === 'pre';
    const x = this.#x;
    const h = this.#h;
    if (pre) this.#norm(block.attnNorm, x, rows, h);
    const proj = this.#proj;
    mlaDecodeAttention(attn, pre ? h : x, this.batch, t, this.length, this.layerSlots[l], this.#k[l], this.#v[l], proj, this.#mlaScratch);
    for (let i = 0; i < rows * d; i++) x[i] += proj[i];
    if (!pre) this.#postNorm(block.attnNorm, rows);
    this.#feedForwardSublayer(block, rows);
  }

  /** out[rows, d] = ffn(input[rows, d]) — a GELU MLP or SwiGLU of any width (an expert's too). */
  #feedForward(ffn: FeedForward | SwiGLU, input: Float32Array, rows: number, out: Float32Array): void {
    const f1 = this.#ff1;
    // The activations through the elementwise kernels (vectorised exp / erf in WASM).
    const n = rows * ffn.w1.outFeatures;
    project(input, rows, ffn.w1, f1);
    if ('w3' in ffn) {
      project(input, rows, ffn.w3, this.#ff3);
      kernels.unary('silu', f1, 0, n, f1);
      const f3 = this.#ff3;
      for (let i = 0; i < n; i++) f1[i] *= f3[i];
    } else {
      kernels.unary('gelu', f1, 0, n, f1);
    }
    project(f1, rows, ffn.w2, out);
  }

  /**
   * out[rows, d] = the mixture of experts of input[rows, d], as nn/moe.ts computes it: router
   * scores, each row's top-k (same tie rule), weights (renormalised or not), then expert by expert
   * in ascending order the rows routed to it gathered, run through it and added with their
   * weights, and the shared experts last.
   */
  #mixture(moe: MixtureOfExperts, input: Float32Array, rows: number, out: Float32Array): void {
    const d = this.model.config.dModel;
    const E = moe.nExperts;
    const k = moe.topK;
    const scores = this.#route;
    project(input, rows, moe.router, scores);
    const chosen = this.#chosen;
    const weight = this.#chosenWeight;
    for (let r = 0; r < rows; r++) {
      const o = r * E;
      if (moe.routerKind === 'softmax') {
        let max = -Infinity;
        for (let e = 0; e < E; e++) max = Math.max(max, scores[o + e]);
        let sum = 0;
        for (let e = 0; e < E; e++) sum += scores[o + e] = Math.exp(scores[o + e] - max);
        for (let e = 0; e < E; e++) scores[o + e] /= sum;
      } else {
        for (let e = 0; e < E; e++) scores[o + e] = 1 / (1 + Math.exp(-scores[o + e]));
      }
      topKIndices(scores, o, E, k, chosen, r * k);
      let total = 0;
      for (let j = 0; j < k; j++) total += weight[r * k + j] = scores[o + chosen[r * k + j]];
      if (moe.normalizeTopK) for (let j = 0; j < k; j++) weight[r * k + j] /= total;
    }
    out.fill(0, 0, rows * d);
    const gathered = this.#expertIn;
    const result = this.#expertOut;
    const members = this.#members;
    for (let e = 0; e < E; e++) {
      let count = 0;
      for (let a = 0; a < rows * k; a++) {
        if (chosen[a] !== e) continue;
        members[count] = a;
        gathered.set(input.subarray(Math.floor(a / k) * d, Math.floor(a / k) * d + d), count * d);
        count++;
      }
      if (count === 0) continue;
      this.#feedForward(moe.experts.at(e), gathered, count, result);
      for (let i = 0; i < count; i++) {
        const a = members[i];
        const w = weight[a];
        const o = Math.floor(a / k) * d;
        for (let j = 0; j < d; j++) out[o + j] += w * result[i * d + j];
      }
    }
    if (moe.shared) {
      this.#feedForward(moe.shared, input, rows, result);
      for (let i = 0; i < rows * d; i++) out[i] += result[i];
    }
  }

  /**
   * Causal linear attention of the t new tokens of every row, in order (the recurrent form):
   * token p first adds φ(k_p)v_pᵀ to S and φ(k_p) to z (in place), then each of its query heads
   * reads out φ(q)ᵀS / (φ(q)ᵀz + eps) — the parallel form's sum over j ≤ p, itself included.
   */
  #linearAttention(l: number, t: number): void {
    const B = this.batch;
    const d = this.model.config.dModel;
    const { H, Hkv, D, g, kvw } = this.#heads;
    const S = this.#s[l];
    const Z = this.#z[l];
    const q = this.#q;
    const kn = this.#kNew;
    const vn = this.#vNew;
    const out = this.#att;
    const phi = (v: number): number => (v > 0 ? v + 1 : Math.exp(v));
    for (let i = 0; i < B * t * d; i++) q[i] = phi(q[i]);
    for (let i = 0; i < B * t * kvw; i++) kn[i] = phi(kn[i]);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < t; s++) {
        const r = b * t + s;
        for (let hk = 0; hk < Hkv; hk++) {
          const ko = r * kvw + hk * D;
          const so = (b * Hkv + hk) * D * D;
          const zo = (b * Hkv + hk) * D;
          for (let i = 0; i < D; i++) {
            const ki = kn[ko + i];
            Z[zo + i] += ki;
            const row = so + i * D;
            for (let j = 0; j < D; j++) S[row + j] += ki * vn[ko + j];
          }
        }
        for (let hh = 0; hh < H; hh++) {
          const hk = Math.floor(hh / g);
          const qo = r * d + hh * D;
          const so = (b * Hkv + hk) * D * D;
          const zo = (b * Hkv + hk) * D;
          let den = 0;
          for (let i = 0; i < D; i++) den += q[qo + i] * Z[zo + i];
          const inv = 1 / (den + LINEAR_ATTENTION_EPS);
          out.fill(0, qo, qo + D);
          for (let i = 0; i < D; i++) {
            const qi = q[qo + i] * inv;
            const row = so + i * D;
            for (let j = 0; j < D; j++) out[qo + j] += qi * S[row + j];
          }
        }
      }
    }
  }

  /** Softmax attention of the t new tokens of every row over the KV cache (into #att). */
  #softmaxAttention(l: number, t: number, scale: number): void {
    const B = this.batch;
    const d = this.model.config.dModel;
    const { H, Hkv, D, kvw } = this.#heads;
    // Each new token in order: store its k and v in the cache [B, Hkv, slots, D], then attend over
    // the cache (its own position included). Storing token s + 1 only after token s has attended
    // matters for a ring: it overwrites a position that token s may still see.
    const K = this.#k[l];
    const V = this.#v[l];
    const S = this.layerSlots[l];
    const q = this.#q;
    const kNew = this.#kNew;
    const vNew = this.#vNew;
    const out = this.#att;
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < t; s++) {
        const r = b * t + s;
        const p = this.length + s;
        // D floats per kv head, by a plain loop: two subarray views per head cost more than the copy.
        for (let hk = 0; hk < Hkv; hk++) {
          const at = ((b * Hkv + hk) * S + (p % S)) * D;
          const from = r * kvw + hk * D;
          for (let i = 0; i < D; i++) {
            K[at + i] = kNew[from + i];
            V[at + i] = vNew[from + i];
          }
        }
        // Positions 0..p while they fit (slot = position); after that the ring holds exactly the
        // last S ≤ W positions, all visible, and softmax over a set does not depend on their order.
        const n = Math.min(p + 1, S);
        kernels.decodeAttention({ q, qOffset: r * d, k: K, v: V, kvOffset: b * Hkv * S * D, slots: S, n, heads: H, kvHeads: Hkv, dim: D, scale, out, outOffset: r * d });
      }
    }
  }
}
