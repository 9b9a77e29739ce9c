/**
 * Multi-head latent attention (MLA; DeepSeek-AI 2024, "DeepSeek-V2", §2.1, eq. 9–19 and 37–47):
 * keys and values are decompressed from one small latent per token, so a KV cache stores that
 * latent (plus one shared rotary key) instead of every head's keys and values.
 *
 * For a token's input h [dModel] (c.f. the paper's symbols; H heads, r = kvLoraRank):
 *   c_KV  = kvNorm(W_DKV h)                       [r]          the cached latent (DeepSeek's kv_a_layernorm)
 *   k^C_i = W_UK,i c_KV                           [qkNopeHeadDim]   per head i
 *   v_i   = W_UV,i c_KV                           [vHeadDim]        per head i
 *   k^R   = RoPE(W_KR h)                          [qkRopeHeadDim]   shared by every head, cached
 *   queries, plain:     q^C_i = W_Q,i h,  q^R_i = RoPE(W_QR,i h)
 *   queries, low-rank:  c_Q = qNorm(W_DQ h) [qLoraRank],  q^C_i = W_UQ,i c_Q,  q^R_i = RoPE(W_QR,i c_Q)
 *   q_i = [q^C_i; q^R_i],  k_i = [k^C_i; k^R]
 *   o_i = Σ_j softmax_j(q_i·k_{i,j} · scale) v_{i,j},   u = W_O [o_1; …; o_H]
 * with scale = 1/√(qkNopeHeadDim + qkRopeHeadDim) unless given (μP is refused with MLA in
 * models/config.ts: its latent matrices have no fan-in rule yet). RoPE is the model's
 * RotaryEmbedding built for qkRopeHeadDim features; the softmax, causal / window / packed-document
 * masks and dropout are groupedAttention's (nn/attention.ts), with one query head per group.
 *
 * State-dict names (Linear weights are [out, in]; biases only with `bias`; the norms are RMSNorm):
 *   wq [H·nope, dModel]                      (plain queries), or
 *   wDq [qLoraRank, dModel], qNorm.weight [qLoraRank], wUq [H·nope, qLoraRank]   (low-rank queries),
 *   wQr [H·rope, dModel or qLoraRank],
 *   wDkv [kvLoraRank, dModel], kvNorm.weight [kvLoraRank], wKr [rope, dModel],
 *   wUk [H·nope, kvLoraRank], wUv [H·vHeadDim, kvLoraRank], wo [dModel, H·vHeadDim].
 * The paper's matrices are kept apart (Hugging Face's DeepSeek fuses W_DKV with W_KR as
 * kv_a_proj_with_mqa and W_UK with W_UV as kv_b_proj): each one is a Linear of its own, so the
 * absorbed decoding form (W_UK folded into the query, W_UV into the output) reads them directly.
 *
 * The KV cache (LatentKVCacheLayer) keeps, per token, c_KV after its norm (kvLoraRank floats)
 * and the rotated k^R (qkRopeHeadDim floats) — nothing else; k^C and v are decompressed from the
 * cached latents at every step on this graph path; the DecodeEngine (models/mla-decode.ts) keeps
 * the same two arrays and never decompresses them, folding W_UK into the query and W_UV into the
 * output (the paper's absorbed form).
 */
import { isGradEnabled } from '../autograd/grad-mode.js';
import { cat } from '../ops/indexing.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { groupedAttention, KVCacheLayer, type AttentionForwardOptions } from './attention.js';
import { Dropout, Linear } from './layers.js';
import { Module } from './module.js';
import { RMSNorm } from './normalization.js';
import type { RotaryEmbedding } from './positional.js';

/**
 * The dimensions of MLA, Hugging Face DeepseekV2Config's names in camelCase (kv_lora_rank,
 * q_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim).
 */
export interface MlaConfig {
  /** r = d_c: the width of the cached latent c_KV. */
  kvLoraRank: number;
  /** d_c': the width of the query latent c_Q, or null for plain queries W_Q h (DeepSeek-V2-Lite). */
  qLoraRank: number | null;
  /** Per-head width of the decompressed ("no position") parts q^C, k^C. */
  qkNopeHeadDim: number;
  /** Width of the decoupled rotary parts q^R, k^R (even). */
  qkRopeHeadDim: number;
  /** Per-head width of the values. */
  vHeadDim: number;
}

const MLA_KEYS: readonly (keyof MlaConfig)[] = ['kvLoraRank', 'qLoraRank', 'qkNopeHeadDim', 'qkRopeHeadDim', 'vHeadDim'];

/** What a caller gives for `mla`: any subset of the dimensions, the rest defaulted (mlaDefaults). */
export type MlaConfigInput = Partial<MlaConfig>;

/**
 * DeepSeek-V2's proportions relative to the head dim D = dModel/nHeads (V2: D = 128, d_c = 4·D =
 * 512, d_h^R = D/2 = 64): kvLoraRank 4·D, qLoraRank null, qkNopeHeadDim D, qkRopeHeadDim D/2
 * (rounded down to an even number, at least 2), vHeadDim D.
 */
export function mlaDefaults(dModel: number, nHeads: number): MlaConfig {
  const d = Math.max(1, Math.floor(dModel / nHeads));
  return { kvLoraRank: 4 * d, qLoraRank: null, qkNopeHeadDim: d, qkRopeHeadDim: Math.max(2, 2 * Math.floor(d / 4)), vHeadDim: d };
}

/**
 * Fills the defaults of `input` and pushes one line per problem onto `problems` (unknown keys,
 * dimensions that are not positive integers, an odd qkRopeHeadDim). The result is frozen.
 */
export function resolveMla(input: MlaConfigInput, dModel: number, nHeads: number, problems: string[]): MlaConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    problems.push(`mla must be an object like { kvLoraRank: 64 } (or {} for the defaults) or null, got ${Array.isArray(input) ? 'an array' : String(input)}`);
    return input as unknown as MlaConfig;
  }
  for (const key of Object.keys(input)) if (!(MLA_KEYS as readonly string[]).includes(key)) problems.push(`unknown mla key '${key}' (known: ${MLA_KEYS.join(', ')})`);
  const defaults = mlaDefaults(dModel, nHeads);
  const m: MlaConfig = {
    kvLoraRank: input.kvLoraRank ?? defaults.kvLoraRank,
    qLoraRank: input.qLoraRank === undefined ? defaults.qLoraRank : input.qLoraRank,
    qkNopeHeadDim: input.qkNopeHeadDim ?? defaults.qkNopeHeadDim,
    qkRopeHeadDim: input.qkRopeHeadDim ?? defaults.qkRopeHeadDim,
    vHeadDim: input.vHeadDim ?? defaults.vHeadDim,
  };
  const positive = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  for (const key of ['kvLoraRank', 'qkNopeHeadDim', 'qkRopeHeadDim', 'vHeadDim'] as const) {
    if (!positive(m[key])) problems.push(`mla.${key} must be a positive integer, got ${String(m[key])}`);
  }
  if (m.qLoraRank !== null && !positive(m.qLoraRank)) problems.push(`mla.qLoraRank must be a positive integer or null (plain queries), got ${String(m.qLoraRank)}`);
  if (positive(m.qkRopeHeadDim) && m.qkRopeHeadDim % 2 !== 0) problems.push(`mla.qkRopeHeadDim must be even (RoPE rotates pairs), got ${m.qkRopeHeadDim}`);
  return Object.freeze(m);
}

// ---- the latent KV cache ------------------------------------------------------------------------

/**
 * MLA's KV cache of one layer: per sequence and position the normalised latent c_KV
 * (kvLoraRank floats) and the rotated shared key k^R (qkRopeHeadDim floats) — nothing else.
 * It is a KVCacheLayer with a single "head" whose keys are the latents and whose values are the
 * rotary keys, so appending, `length`, `reset` and the KVCache around it work unchanged:
 * `latent` = k [batch, 1, maxLen, kvLoraRank], `ropeKey` = v [batch, 1, maxLen, qkRopeHeadDim],
 * position p in slot p.
 */
export class LatentKVCacheLayer extends KVCacheLayer {
  constructor(batch: number, maxLen: number, kvLoraRank: number, qkRopeHeadDim: number) {
    super(batch, 1, maxLen, kvLoraRank, null, 'softmax', qkRopeHeadDim);
  }

  get kvLoraRank(): number {
    return this.headDim;
  }

  get qkRopeHeadDim(): number {
    return this.valueDim;
  }

  /** c_KV of every slot, [batch, 1, maxLen, kvLoraRank] (the first `length` are filled). */
  get latent(): Tensor {
    return this.k;
  }

  /** k^R of every slot, after RoPE, [batch, 1, maxLen, qkRopeHeadDim]. */
  get ropeKey(): Tensor {
    return this.v;
  }
}

// ---- the module ---------------------------------------------------------------------------------

export interface MultiHeadLatentAttentionOptions {
  /** Biases on every Linear (the RMSNorms have none) — default true. */
  bias?: boolean;
  /** Dropout on the attention probabilities (training mode only). */
  dropout?: number;
  /** Causal self-attention — default true. */
  causal?: boolean;
  /** The rotary embedding of the decoupled parts: qkRopeHeadDim features (shared by the model's layers). Required. */
  rope: RotaryEmbedding;
  /** Multiplier of the attention logits; default 1/√(qkNopeHeadDim + qkRopeHeadDim). */
  scale?: number;
  /** eps of kvNorm and qNorm; default 1e-6. */
  normEps?: number;
  generator?: Generator;
  dropoutGenerator?: Generator;
}

/**
 * MLA self-attention: forward(x [B, T, dModel], { cache | mask | positions }) → [B, T, dModel].
 * See the file header for the equations and parameter names.
 */
export class MultiHeadLatentAttention extends Module<[Tensor, AttentionForwardOptions?], Tensor> {
  readonly dModel: number;
  readonly nHeads: number;
  readonly dims: MlaConfig;
  readonly dropoutP: number;
  readonly causal: boolean;
  /** Multiplier of the attention logits. */
  readonly scale: number;
  /** Plain query projection (null with qLoraRank). */
  wq: Linear | null;
  /** Low-rank query down-projection, its norm, and the up-projection of q^C (null without qLoraRank). */
  wDq: Linear | null;
  qNorm: RMSNorm | null;
  wUq: Linear | null;
  /** The rotary query parts, from h (plain) or c_Q (low-rank). */
  wQr: Linear;
  wDkv: Linear;
  kvNorm: RMSNorm;
  wKr: Linear;
  wUk: Linear;
  wUv: Linear;
  wo: Linear;
  /** Dropout on the probabilities as a module, so that hooks observe them ([B, nHeads, Tq, Tk]; see MultiHeadAttention.attnDropout). */
  attnDropout: Dropout;
  readonly #rope: RotaryEmbedding;
  readonly #dropoutGenerator: Generator | undefined;

  constructor(dModel: number, nHeads: number, dims: MlaConfig, options: MultiHeadLatentAttentionOptions) {
    super();
    for (const [what, n] of [['dModel', dModel], ['nHeads', nHeads], ['kvLoraRank', dims.kvLoraRank], ['qkNopeHeadDim', dims.qkNopeHeadDim], ['qkRopeHeadDim', dims.qkRopeHeadDim], ['vHeadDim', dims.vHeadDim]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`MultiHeadLatentAttention: ${what} must be a positive integer, got ${n}`);
    }
    if (dims.qLoraRank !== null && !(Number.isInteger(dims.qLoraRank) && dims.qLoraRank > 0)) throw new RangeError(`MultiHeadLatentAttention: qLoraRank must be a positive integer or null, got ${dims.qLoraRank}`);
    const rope = options?.rope;
    if (!rope) throw new Error('MultiHeadLatentAttention: needs a rotary embedding (options.rope) for its decoupled key');
    if (rope.headDim !== dims.qkRopeHeadDim) throw new Error(`MultiHeadLatentAttention: rope headDim ${rope.headDim} differs from qkRopeHeadDim ${dims.qkRopeHeadDim}`);
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new RangeError(`MultiHeadLatentAttention: dropout must be in [0, 1), got ${p}`);
    const scale = options.scale ?? 1 / Math.sqrt(dims.qkNopeHeadDim + dims.qkRopeHeadDim);
    if (!(typeof scale === 'number' && Number.isFinite(scale) && scale > 0)) throw new RangeError(`MultiHeadLatentAttention: scale must be a positive number, got ${String(scale)}`);
    this.dModel = dModel;
    this.nHeads = nHeads;
    this.dims = Object.freeze({ ...dims });
    this.dropoutP = p;
    this.causal = options.causal ?? true;
    this.scale = scale;
    this.#rope = rope;
    this.#dropoutGenerator = options.dropoutGenerator;
    const { kvLoraRank: r, qLoraRank, qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, vHeadDim: dv } = dims;
    const lin = { bias: options.bias ?? true, generator: options.generator };
    const eps = options.normEps ?? 1e-6;
    // Declared in the paper's order (queries, then keys/values, then output): state-dict order.
    this.wq = qLoraRank === null ? new Linear(dModel, nHeads * nope, lin) : null;
    this.wDq = qLoraRank === null ? null : new Linear(dModel, qLoraRank, lin);
    this.qNorm = qLoraRank === null ? null : new RMSNorm(qLoraRank, { eps });
    this.wUq = qLoraRank === null ? null : new Linear(qLoraRank, nHeads * nope, lin);
    this.wQr = new Linear(qLoraRank ?? dModel, nHeads * ropeDim, lin);
    this.wDkv = new Linear(dModel, r, lin);
    this.kvNorm = new RMSNorm(r, { eps });
    this.wKr = new Linear(dModel, ropeDim, lin);
    this.wUk = new Linear(r, nHeads * nope, lin);
    this.wUv = new Linear(r, nHeads * dv, lin);
    this.wo = new Linear(nHeads * dv, dModel, lin);
    this.attnDropout = new Dropout(p, { generator: options.dropoutGenerator });
  }

  get rope(): RotaryEmbedding {
    return this.#rope;
  }

  /** Always null: MLA with a sliding window is not implemented (models/config.ts refuses the combination). */
  get slidingWindow(): null {
    return null;
  }

  set slidingWindow(w: number | null) {
    if (w !== null) throw new Error(`MultiHeadLatentAttention: slidingWindow is not implemented for MLA, got ${w}`);
  }

  /** Always 'softmax' (linear attention has no MLA form here). */
  get attention(): 'softmax' {
    return 'softmax';
  }

  set attention(kind: 'softmax' | 'linear') {
    if (kind !== 'softmax') throw new Error(`MultiHeadLatentAttention: attention must be 'softmax', got '${String(kind)}'`);
  }

  /** An empty latent cache: c_KV and k^R per position, (kvLoraRank + qkRopeHeadDim) floats a token. */
  createCache(batch: number, maxLen: number): LatentKVCacheLayer {
    return new LatentKVCacheLayer(batch, maxLen, this.dims.kvLoraRank, this.dims.qkRopeHeadDim);
  }

  /**
   * The cached quantities of x [B, T, dModel] at positions `at` (an offset or int32 [B, T]):
   * c_KV = kvNorm(W_DKV x) [B, 1, T, kvLoraRank] and k^R = RoPE(W_KR x) [B, 1, T, qkRopeHeadDim].
   */
  latents(x: Tensor, at: number | Tensor = 0): { latent: Tensor; ropeKey: Tensor } {
    const [b, t] = x.shape;
    const x2 = x.reshape([b * t, this.dModel]);
    const latent = this.kvNorm.forward(this.wDkv.forward(x2)).view([b, 1, t, this.dims.kvLoraRank]);
    const ropeKey = this.#rope.forward(this.wKr.forward(x2).view([b, 1, t, this.dims.qkRopeHeadDim]), at);
    return { latent, ropeKey };
  }

  forward(x: Tensor, options: AttentionForwardOptions = {}): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dModel) throw new Error(`MultiHeadLatentAttention: input must be [B, T, ${this.dModel}], got ${formatShape(x.shape)}`);
    const [b, t] = x.shape;
    const h = this.nHeads;
    const { kvLoraRank: r, qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, vHeadDim: dv } = this.dims;
    const cache = options.cache ?? null;
    const mask = options.mask ?? null;
    const positions = options.positions ?? null;
    if (positions && cache) throw new Error('MultiHeadLatentAttention: explicit positions cannot be combined with a KV cache (the cache numbers its tokens itself)');
    if (cache) {
      if (!(cache instanceof LatentKVCacheLayer)) throw new Error('MultiHeadLatentAttention: the cache must be a LatentKVCacheLayer (from createCache), got a key/value cache');
      if (isGradEnabled() && (x.requiresGrad || this.wo.weight.requiresGrad)) throw new Error('MultiHeadLatentAttention: decoding with a KV cache is inference only; run it inside noGrad()');
      if (cache.batch !== b || cache.kvLoraRank !== r || cache.qkRopeHeadDim !== ropeDim) {
        throw new Error(`MultiHeadLatentAttention: cache (batch ${cache.batch}, kvLoraRank ${cache.kvLoraRank}, qkRopeHeadDim ${cache.qkRopeHeadDim}) does not fit input batch ${b} with kvLoraRank ${r}, qkRopeHeadDim ${ropeDim}`);
      }
    }
    const offset = cache ? cache.length : 0;
    const at = positions ?? offset;
    const x2 = x.reshape([b * t, this.dModel]);
    // Queries: q^C [B, H, T, nope] and q^R [B, H, T, rope] from h, or from the normalised latent c_Q.
    const qIn = this.wDq && this.qNorm ? this.qNorm.forward(this.wDq.forward(x2)) : x2;
    const qC = (this.wq ?? (this.wUq as Linear)).forward(qIn).view([b, t, h, nope]).permute(0, 2, 1, 3);
    const qR = this.#rope.forward(this.wQr.forward(qIn).view([b, t, h, ropeDim]).permute(0, 2, 1, 3), at);
    // What the cache stores: c_KV and the rotated shared key, then every cached token's.
    let { latent, ropeKey } = this.latents(x, at);
    let causalOffset = offset;
    if (cache) ({ k: latent, v: ropeKey, offset: causalOffset } = cache.append(latent, ropeKey));
    const n = latent.shape[2];
    const c2 = latent.reshape([b * n, r]);
    const kC = this.wUk.forward(c2).view([b, n, h, nope]).permute(0, 2, 1, 3);
    const v = this.wUv.forward(c2).view([b, n, h, dv]).permute(0, 2, 1, 3);
    // q_i = [q^C_i; q^R_i], k_i = [k^C_i; k^R]: one head per group of groupedAttention.
    const q = cat([qC, qR], -1).unsqueeze(2);
    const k = cat([kC, ropeKey.expand([b, h, n, ropeDim])], -1);
    const observed = this.attnDropout.hasForwardHooks();
    const y = groupedAttention(q, k, v, {
      causal: this.causal && !mask,
      causalOffset,
      mask: mask ? this.#groupedMask(mask, b) : null,
      scale: this.scale,
      dropoutP: this.training ? this.dropoutP : 0,
      generator: this.#dropoutGenerator,
      applyToProbs: observed ? (probs) => this.#hookedProbs(probs) : undefined,
    });
    // [B, H, 1, T, dv] → [B, T, H, dv] → [B·T, H·dv].
    const merged = y.permute(0, 3, 1, 2, 4).reshape([b * t, h * dv]);
    return this.wo.forward(merged).view([b, t, this.dModel]);
  }

  /** Runs probs [B, H, 1, Tq, Tk] through attnDropout (and so its hooks) as [B, H, Tq, Tk]. */
  #hookedProbs(probs: Tensor): Tensor {
    const [b, h, , tq, tk] = probs.shape;
    const out = this.attnDropout.forward(probs.reshape([b, h, tq, tk]));
    if (out.ndim !== 4 || out.shape.some((d, i) => d !== [b, h, tq, tk][i])) {
      throw new Error(`MultiHeadLatentAttention: attnDropout returned ${formatShape(out.shape)}, expected the probabilities' shape ${formatShape([b, h, tq, tk])}`);
    }
    return out.reshape([b, h, 1, tq, tk]);
  }

  /** A mask [Tq, Tk] or [B|1, 1|H, Tq, Tk] laid out for the scores [B, H, 1, Tq, Tk]. */
  #groupedMask(mask: Tensor, b: number): Tensor {
    if (mask.ndim === 2) return mask;
    if (mask.ndim === 4 && (mask.shape[0] === 1 || mask.shape[0] === b) && (mask.shape[1] === 1 || mask.shape[1] === this.nHeads)) return mask.unsqueeze(2);
    throw new Error(`MultiHeadLatentAttention: mask must be [Tq, Tk] or [B|1, H|1, Tq, Tk], got ${formatShape(mask.shape)}`);
  }

  override extraRepr(): string {
    const d = this.dims;
    return `dModel=${this.dModel}, nHeads=${this.nHeads}, kvLoraRank=${d.kvLoraRank}, qLoraRank=${d.qLoraRank}, qkNopeHeadDim=${d.qkNopeHeadDim}, qkRopeHeadDim=${d.qkRopeHeadDim}, vHeadDim=${d.vHeadDim}, causal=${this.causal}`;
  }
}
