/**
 * Multi-head self-attention with grouped key/value heads (MHA, GQA, MQA), optional RoPE, and a
 * KV cache for incremental decoding.
 *
 * Shapes (B batch, T new tokens, H query heads, Hkv key/value heads, G = H/Hkv, D head dim):
 *   q = wq(x) [B, T, H·D]   → view [B, T, Hkv, G, D] → permute [B, Hkv, G, T, D]
 *   k = wk(x) [B, T, Hkv·D] → view [B, T, Hkv, D]    → permute [B, Hkv, T, D]   (v likewise)
 * Query head h = kv·G + g uses key/value head kv = ⌊h/G⌋ (PyTorch's repeat_interleave order).
 * Heads are split by views, never copied; k and v are never repeated per query head either:
 * the G query heads of a group are stacked as one [G·T, D] matrix against their shared [T, D]
 * key matrix, so scores are one batched product per (batch, kv head). The 1/√D scale (or the
 * `scale` option, e.g. μP's) goes into q (into the RoPE rotation when there is one), so the causal
 * mask and the softmax are one fused pass over the scores viewed as [B, Hkv, G, T, Tk], and so is
 * their backward.
 */
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { scaledDotProductAttention, scaledSoftmax } from '../ops/attention.js';
import { causalLinearAttention, eluFeatureMap, LINEAR_ATTENTION_EPS } from '../ops/linear-attention.js';
import { dropout } from '../ops/dropout.js';
import { flashAttention, prefersFlashAttention } from '../ops/flash-attention.js';
import { where } from '../ops/elementwise.js';
import { matmul, matmulInLayout } from '../ops/matmul.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { project } from './feedforward.js';
import { Dropout, Linear } from './layers.js';
import { Module } from './module.js';
import type { RotaryEmbedding } from './positional.js';

// ---- KV cache ----------------------------------------------------------------------------------

/**
 * Keys and values of the tokens seen so far by one attention layer, preallocated as
 * [batch, nKvHeads, slots, headDim]; `length` tokens have been appended (the absolute position of
 * the next one). Keys are stored after RoPE.
 *
 * Without a window, slots = maxLen and position p lives in slot p. With a sliding window W the
 * cache is a ring of slots = min(W, maxLen): position p lives in slot p mod slots, so a new token
 * overwrites the oldest one and the ring always holds exactly the last min(length, W) positions —
 * the keys a window-W query can see. `maxLen` still bounds the positions (RoPE / position tables).
 *
 * For causal linear attention (`attention` 'linear') it keeps no keys or values (slots = 0) but
 * the recurrent state of ops/linear-attention.ts, constant in size: S [batch, nKvHeads, headDim,
 * headDim] = Σ φ(k_j) v_jᵀ and z [batch, nKvHeads, headDim] = Σ φ(k_j) over the `length` tokens
 * seen (see `absorb`). `maxLen` still bounds the positions (learned position tables).
 */
export class KVCacheLayer {
  readonly k: Tensor;
  readonly v: Tensor;
  /** Stored positions: min(window, maxLen) for a rolling cache, 0 for a linear-attention state, maxLen otherwise. */
  readonly slots: number;
  /** Linear attention's running sums S = Σ φ(k)vᵀ and z = Σ φ(k); null for softmax attention. */
  readonly state: { s: Tensor; z: Tensor } | null;
  length = 0;

  constructor(
    readonly batch: number,
    readonly nKvHeads: number,
    readonly maxLen: number,
    readonly headDim: number,
    readonly window: number | null = null,
    readonly attention: 'softmax' | 'linear' = 'softmax',
    /** Width of a stored value, default headDim (MLA's latent cache keeps k^R of another width in `v`; nn/mla.ts). */
    readonly valueDim: number = headDim,
  ) {
    for (const [what, n] of [['batch', batch], ['nKvHeads', nKvHeads], ['maxLen', maxLen], ['headDim', headDim], ['valueDim', valueDim]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`KVCacheLayer: ${what} must be a positive integer, got ${n}`);
    }
    if (window !== null && !(Number.isSafeInteger(window) && window > 0)) throw new RangeError(`KVCacheLayer: window must be a positive integer or null, got ${String(window)}`);
    if (attention !== 'softmax' && attention !== 'linear') throw new RangeError(`KVCacheLayer: attention must be 'softmax' or 'linear', got ${String(attention)}`);
    if (attention === 'linear' && window !== null) throw new Error('KVCacheLayer: a linear-attention state has no window');
    this.slots = attention === 'linear' ? 0 : window === null ? maxLen : Math.min(window, maxLen);
    this.state = attention === 'linear' ? { s: zeros([batch, nKvHeads, headDim, headDim]), z: zeros([batch, nKvHeads, headDim]) } : null;
    this.k = zeros([batch, nKvHeads, this.slots, headDim]);
    this.v = zeros([batch, nKvHeads, this.slots, valueDim]);
  }

  /** Forgets every cached token (the memory is kept and overwritten; a linear state is zeroed). */
  reset(): void {
    this.length = 0;
    if (this.state) {
      this.state.s.storage.fill(0);
      this.state.z.storage.fill(0);
    }
  }

  /**
   * Linear attention: adds t new tokens' φ(k) [batch, nKvHeads, t, headDim] and v (same shape) to
   * the state — S += φ(K)ᵀV, z += Σ_t φ(K) — in place, and advances `length`.
   */
  absorb(fk: Tensor, v: Tensor): void {
    const state = this.state;
    if (!state) throw new Error('KVCacheLayer: absorb is for a linear-attention state; softmax attention appends keys and values');
    this.#checkNew(fk, v);
    noGrad(() => {
      state.s.copy_(state.s.add(matmul(fk.transpose(-2, -1), v)));
      state.z.copy_(state.z.add(fk.sum(2)));
    });
    this.length += fk.shape[2];
  }

  #checkNew(k: Tensor, v: Tensor): void {
    const t = k.shape[2];
    if (this.length + t > this.maxLen) {
      throw new RangeError(`KVCacheLayer: ${t} new tokens after ${this.length} cached ones exceed the cache length ${this.maxLen}`);
    }
    for (const [name, x] of [['k', k], ['v', v]] as const) {
      const expect = [this.batch, this.nKvHeads, t, name === 'k' ? this.headDim : this.valueDim];
      if (x.ndim !== 4 || x.shape.some((d, i) => d !== expect[i])) {
        throw new Error(`KVCacheLayer: ${name} has shape ${formatShape(x.shape)}, expected ${formatShape(expect)}`);
      }
    }
  }

  /**
   * Stores k, v [batch, nKvHeads, t, headDim] at positions length .. length+t−1 and returns the
   * keys and values the new tokens attend over, [batch, nKvHeads, n, headDim], with `offset`: the
   * number of them before the new tokens (the causal offset of the first new query).
   * Without a window (or before a rolling cache wraps) these are views of positions
   * 0 .. length+t−1, offset = length (no copies). Once a ring has wrapped, one new token gets the
   * whole ring (every slot is within its window; softmax over a set ignores the slots' order),
   * and t > 1 tokens get a chronological copy of the cached ones followed by the new ones, to be
   * masked with the window.
   */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor; offset: number } {
    if (this.state) throw new Error('KVCacheLayer: a linear-attention state keeps no keys and values (use absorb)');
    const t = k.shape[2];
    this.#checkNew(k, v);
    const past = this.length;
    const S = this.slots;
    if (past + t <= S) {
      // Nothing is overwritten yet: slot = position, as in a plain cache.
      noGrad(() => {
        this.k.narrow(2, past, t).copy_(k);
        this.v.narrow(2, past, t).copy_(v);
      });
      this.length += t;
      return { k: this.k.narrow(2, 0, this.length), v: this.v.narrow(2, 0, this.length), offset: past };
    }
    return noGrad(() => {
      // The cached positions the new queries may still see, oldest first, before the ring is overwritten.
      const keep = Math.min(past, S);
      const seq = (ring: Tensor, fresh: Tensor): Tensor => {
        const out = zeros([this.batch, this.nKvHeads, keep + t, ring.shape[3]]);
        let at = 0;
        for (const [start, n] of this.#ranges(past - keep, keep)) {
          out.narrow(2, at, n).copy_(ring.narrow(2, start, n));
          at += n;
        }
        out.narrow(2, keep, t).copy_(fresh);
        return out;
      };
      const single = t === 1;
      const kk = single ? null : seq(this.k, k);
      const vv = single ? null : seq(this.v, v);
      // Only the last S new tokens survive in the ring.
      const skip = Math.max(0, t - S);
      let from = skip;
      for (const [start, n] of this.#ranges(past + skip, t - skip)) {
        this.k.narrow(2, start, n).copy_(k.narrow(2, from, n));
        this.v.narrow(2, start, n).copy_(v.narrow(2, from, n));
        from += n;
      }
      this.length += t;
      // One token: the ring holds exactly its window (S ≤ W positions, itself included).
      if (single) return { k: this.k, v: this.v, offset: S - 1 };
      return { k: kk as Tensor, v: vv as Tensor, offset: keep };
    });
  }

  /** The ring's slot ranges [start, n] of positions first .. first+count−1 (count ≤ slots), in order. */
  #ranges(first: number, count: number): [number, number][] {
    if (count === 0) return [];
    const start = first % this.slots;
    const n = Math.min(count, this.slots - start);
    return n === count ? [[start, n]] : [[start, n], [0, count - n]];
  }
}

/** One KVCacheLayer per transformer layer, advancing together. */
export class KVCache {
  readonly layers: readonly KVCacheLayer[];

  constructor(layers: KVCacheLayer[]) {
    if (layers.length === 0) throw new Error('KVCache: needs at least one layer');
    this.layers = Object.freeze(layers.slice());
  }

  /** Tokens cached so far (the position of the next token). */
  get length(): number {
    return this.layers[0].length;
  }

  get maxLen(): number {
    return this.layers[0].maxLen;
  }

  get batch(): number {
    return this.layers[0].batch;
  }

  reset(): void {
    for (const l of this.layers) l.reset();
  }
}

// ---- attention kernel composition ---------------------------------------------------------------

export interface GroupedAttentionOptions {
  causal?: boolean;
  /** Query i (of the new tokens) sees keys j ≤ i + causalOffset; a cache of n tokens uses n. */
  causalOffset?: number;
  /** Sliding window W (with causal): query i also sees only keys j > i + causalOffset − W. */
  window?: number | null;
  /** Bool (true = attend) or additive mask broadcasting against the scores [B, Hkv, G, Tq, Tk]; replaces `causal`. */
  mask?: Tensor | null;
  /** Default 1/√D. */
  scale?: number;
  /** q is already multiplied by the scale (RotaryEmbedding folds it in for free). */
  qIsScaled?: boolean;
  dropoutP?: number;
  generator?: Generator;
  /**
   * Applied to the probabilities [B, Hkv, G, Tq, Tk] in place of the dropout above, returning the
   * same shape: MultiHeadAttention routes them through its hooked attnDropout module this way.
   */
  applyToProbs?: (probs: Tensor) => Tensor;
}

/**
 * softmax(q·kᵀ·scale [+ causal mask])·v for grouped heads: q [B, Hkv, G, Tq, D], k and v
 * [B, Hkv, Tk, D]; returns [B, Hkv, G, Tq, D]. The G query heads sharing a key/value head are
 * one [G·Tq, D] operand (a view when q is laid out that way, one copy otherwise), so each
 * (batch, kv head) is a single product of scores and a single product with v. Without a mask,
 * dropout or applyToProbs, long sequences take flash attention instead (ops/flash-attention.ts:
 * O(T·D) memory; from FLASH_ATTENTION_MIN_SEQ_LEN or the backend's own threshold, setAttentionImplementation).
 */
export function groupedAttention(q: Tensor, k: Tensor, v: Tensor, options: GroupedAttentionOptions = {}): Tensor {
  if (q.ndim !== 5 || k.ndim !== 4 || v.ndim !== 4) {
    throw new Error(`groupedAttention: expected q [B, Hkv, G, Tq, D] and k, v [B, Hkv, Tk, D], got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  }
  const [b, hkv, g, tq, d] = q.shape;
  const tk = k.shape[2];
  const { causal = false, causalOffset = 0, dropoutP = 0, mask = null, window = null } = options;
  if (mask && causal) throw new Error('groupedAttention: pass either mask or causal, not both');
  const scale = options.scale ?? 1 / Math.sqrt(d);
  // Flash attention (ops/flash-attention.ts) when nothing needs the probabilities themselves; q's
  // [B, Hkv, G] heads are its [B, Hkv·G] query heads reading kv head ⌊h/G⌋.
  if (!mask && !options.applyToProbs && !(dropoutP > 0) && prefersFlashAttention(tq)) {
    const y = flashAttention(q.reshape([b, hkv * g, tq, d]), k, v, { scale: options.qIsScaled ? 1 : scale, causal, causalOffset: causal ? causalOffset : 0, window: causal ? window : null });
    return y.view([b, hkv, g, tq, v.shape[3]]);
  }
  // Scaling q (B·T·D elements) instead of the scores (B·H·T·Tk) keeps the softmax backward one pass.
  const qs = options.qIsScaled || scale === 1 ? q : q.mul(scale);
  const qm = qs.reshape([b, hkv, g * tq, d]);
  const scores = matmul(qm, k.transpose(-2, -1)).view([b, hkv, g, tq, tk]);
  // A mask applies to the scaled scores, as in scaledDotProductAttention (here q carries the scale).
  const masked = !mask ? scores : mask.dtype === 'bool' ? where(mask, scores, -Infinity) : scores.add(mask);
  let probs = scaledSoftmax(masked, 1, causal, causalOffset, window);
  if (options.applyToProbs) probs = options.applyToProbs(probs);
  else if (dropoutP > 0) probs = dropout(probs, dropoutP, true, options.generator);
  // One query head per group (MHA): the output goes straight into [B, Tq, H, D] order (see forward).
  if (g === 1) return matmulInLayout(probs.view([b, hkv, tq, tk]), v, [0, 2, 1, 3]).unsqueeze(2);
  return matmul(probs.view([b, hkv, g * tq, tk]), v).view([b, hkv, g, tq, d]);
}

// ---- the module --------------------------------------------------------------------------------

export interface MultiHeadAttentionOptions {
  /** Key/value heads: nHeads (default) is MHA, 1 is MQA, anything between that divides nHeads is GQA. */
  nKvHeads?: number;
  /** Biases on wq, wk, wv, wo — default true. */
  bias?: boolean;
  /** Dropout on the attention probabilities (training mode only). */
  dropout?: number;
  /** Causal self-attention (each token sees itself and earlier tokens) — default true. */
  causal?: boolean;
  /**
   * Sliding-window (local causal) attention: each token sees itself and the W − 1 tokens before
   * it (key j visible from query i iff i − W < j ≤ i, Hugging Face Mistral's `sliding_window`).
   * Null (default) is full causal attention. An explicit `mask` in forward replaces it, like causal.
   */
  slidingWindow?: number | null;
  /**
   * 'softmax' (default) or 'linear': causal linear attention, φ(x) = elu(x) + 1, no scale
   * (ops/linear-attention.ts). Not with RoPE or a sliding window; no attention dropout (there
   * are no probabilities to drop).
   */
  attention?: 'softmax' | 'linear';
  /** Rotary embedding applied to q and k (shared by the layers of a model; not a child module). */
  rope?: RotaryEmbedding | null;
  /**
   * Multiplier of the attention logits q·k. Default 1/√headDim; μP uses 1/headDim normalised to its
   * base width (models/mup.ts, `attentionScale`).
   */
  scale?: number;
  /** Draws the initial weights. */
  generator?: Generator;
  /** Draws the dropout masks. */
  dropoutGenerator?: Generator;
}

export interface AttentionForwardOptions {
  /**
   * Bool (true = attend) or additive float mask of shape [Tq, Tk] or [B|1, H|1, Tq, Tk]; replaces
   * the causal mask when given.
   */
  mask?: Tensor | null;
  /** Decode incrementally: the new tokens' keys/values are appended, attention covers all cached ones. */
  cache?: KVCacheLayer | null;
  /**
   * Explicit per-token positions int32 [B, T] for the RoPE rotation (packed sequences restart at 0
   * per document); without RoPE positions live in the embeddings and this is ignored. Not with `cache`.
   */
  positions?: Tensor | null;
}

/**
 * Self-attention: y = wo(attention(wq x, wk x, wv x)) with Llama-style projection names
 * wq [H·D, d], wk, wv [Hkv·D, d], wo [d, H·D]. forward(x [B, T, d]) → [B, T, d].
 */
export class MultiHeadAttention extends Module<[Tensor, AttentionForwardOptions?], Tensor> {
  readonly dModel: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly dropoutP: number;
  readonly causal: boolean;
  #slidingWindow: number | null = null;
  #attention: 'softmax' | 'linear' = 'softmax';
  /** Multiplier of the attention logits (1/√headDim unless given). */
  readonly scale: number;
  wq: Linear;
  wk: Linear;
  wv: Linear;
  wo: Linear;
  /**
   * Dropout on the attention probabilities, a module of its own so that forward hooks can observe
   * (or replace) them: its input is [B, nHeads, Tq, Tk] (query head h at index h; each row sums to
   * 1 over the keys it may see), its output the same after dropout. It runs only while hooked: the
   * unobserved path applies the same dropout inside the attention computation (and, with a mask,
   * never materialises the probabilities outside the fused op). See models/inspect.ts.
   */
  attnDropout: Dropout;
  readonly #rope: RotaryEmbedding | null;
  readonly #dropoutGenerator: Generator | undefined;

  constructor(dModel: number, nHeads: number, options: MultiHeadAttentionOptions = {}) {
    super();
    const nKvHeads = options.nKvHeads ?? nHeads;
    for (const [what, n] of [['dModel', dModel], ['nHeads', nHeads], ['nKvHeads', nKvHeads]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`MultiHeadAttention: ${what} must be a positive integer, got ${n}`);
    }
    if (dModel % nHeads !== 0) throw new Error(`MultiHeadAttention: dModel ${dModel} is not divisible by nHeads ${nHeads}`);
    if (nHeads % nKvHeads !== 0) throw new Error(`MultiHeadAttention: nHeads ${nHeads} not divisible by nKvHeads ${nKvHeads}`);
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new RangeError(`MultiHeadAttention: dropout must be in [0, 1), got ${p}`);
    this.dModel = dModel;
    this.nHeads = nHeads;
    this.nKvHeads = nKvHeads;
    this.headDim = dModel / nHeads;
    this.dropoutP = p;
    this.causal = options.causal ?? true;
    this.slidingWindow = options.slidingWindow ?? null;
    const scale = options.scale ?? 1 / Math.sqrt(this.headDim);
    if (!(typeof scale === 'number' && Number.isFinite(scale) && scale > 0)) throw new RangeError(`MultiHeadAttention: scale must be a positive number, got ${String(scale)}`);
    this.scale = scale;
    const rope = options.rope ?? null;
    if (rope && rope.headDim !== this.headDim) throw new Error(`MultiHeadAttention: rope headDim ${rope.headDim} differs from the head dim ${this.headDim}`);
    this.#rope = rope;
    this.#dropoutGenerator = options.dropoutGenerator;
    const lin = { bias: options.bias ?? true, generator: options.generator };
    this.wq = new Linear(dModel, nHeads * this.headDim, lin);
    this.wk = new Linear(dModel, nKvHeads * this.headDim, lin);
    this.wv = new Linear(dModel, nKvHeads * this.headDim, lin);
    this.wo = new Linear(nHeads * this.headDim, dModel, lin);
    this.attnDropout = new Dropout(p, { generator: options.dropoutGenerator });
    this.attention = options.attention ?? 'softmax';
  }

  /**
   * 'softmax' or 'linear' attention; settable like slidingWindow (TransformerLM sets it from
   * config.attention after building the block, so the weights drawn do not depend on it).
   */
  get attention(): 'softmax' | 'linear' {
    return this.#attention;
  }

  set attention(kind: 'softmax' | 'linear') {
    if (kind !== 'softmax' && kind !== 'linear') throw new RangeError(`MultiHeadAttention: attention must be 'softmax' or 'linear', got ${String(kind)}`);
    if (kind === 'linear' && (this.#rope || this.#slidingWindow !== null)) throw new Error('MultiHeadAttention: linear attention takes neither RoPE nor a sliding window');
    this.#attention = kind;
  }

  /**
   * Sliding window W, or null for full (causal) attention. Settable so that a model can switch its
   * blocks' attention to local without the block constructors knowing about it (TransformerLM
   * sets it from config.slidingWindow); caches created before a change keep their old size.
   */
  get slidingWindow(): number | null {
    return this.#slidingWindow;
  }

  set slidingWindow(w: number | null) {
    if (w !== null && !(Number.isSafeInteger(w) && w > 0)) throw new RangeError(`MultiHeadAttention: slidingWindow must be a positive integer or null, got ${String(w)}`);
    if (w !== null && this.#attention === 'linear') throw new Error('MultiHeadAttention: linear attention takes no sliding window');
    this.#slidingWindow = w;
  }

  get rope(): RotaryEmbedding | null {
    return this.#rope;
  }

  /** An empty KV cache for this layer: a ring of min(W, maxLen) slots with a sliding window W, a constant-size state for linear attention. */
  createCache(batch: number, maxLen: number): KVCacheLayer {
    if (this.#attention === 'linear') return new KVCacheLayer(batch, this.nKvHeads, maxLen, this.headDim, null, 'linear');
    return new KVCacheLayer(batch, this.nKvHeads, maxLen, this.headDim, this.causal ? this.slidingWindow : null);
  }

  forward(x: Tensor, options: AttentionForwardOptions = {}): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dModel) {
      throw new Error(`MultiHeadAttention: input must be [B, T, ${this.dModel}], got ${formatShape(x.shape)}`);
    }
    const [b, t] = x.shape;
    const { nHeads: h, nKvHeads: hkv, headDim: d } = this;
    const g = h / hkv;
    const cache = options.cache ?? null;
    const mask = options.mask ?? null;
    const positions = options.positions ?? null;
    if (positions && cache) throw new Error('MultiHeadAttention: explicit positions cannot be combined with a KV cache (the cache numbers its tokens itself)');
    if (cache) {
      if (isGradEnabled() && (x.requiresGrad || this.wq.weight.requiresGrad)) {
        throw new Error('MultiHeadAttention: decoding with a KV cache is inference only; run it inside noGrad()');
      }
      if (cache.batch !== b || cache.nKvHeads !== hkv || cache.headDim !== d || cache.valueDim !== d) {
        throw new Error(`MultiHeadAttention: cache [${cache.batch}, ${cache.nKvHeads}, ·, ${cache.headDim}] does not fit input batch ${b} with ${hkv} kv heads of dim ${d}`);
      }
      if ((cache.attention === 'linear') !== (this.#attention === 'linear')) {
        throw new Error(`MultiHeadAttention: a ${cache.attention} cache does not fit ${this.#attention} attention`);
      }
    }
    if (this.#attention === 'linear') return this.#linearForward(x, mask, cache);
    const offset = cache ? cache.length : 0;
    const x2 = x.reshape([b * t, this.dModel]);
    let q = project(this.wq, x2).view([b, t, hkv, g, d]).permute(0, 2, 3, 1, 4);
    let k = project(this.wk, x2).view([b, t, hkv, d]).permute(0, 2, 1, 3);
    let v = project(this.wv, x2).view([b, t, hkv, d]).permute(0, 2, 1, 3);
    // Without a general mask, the scale of the scores (1/√D by default) is folded into the rotation of q.
    const qIsScaled = this.#rope !== null && !mask;
    if (this.#rope) {
      q = this.#rope.forward(q, positions ?? offset, qIsScaled ? this.scale : 1);
      k = this.#rope.forward(k, positions ?? offset);
    }
    // RoPE took the absolute positions above; attention's causal offset is where the new tokens
    // sit in what the cache returns (fewer than `offset` once a rolling cache has wrapped).
    let causalOffset = offset;
    if (cache) ({ k, v, offset: causalOffset } = cache.append(k, v));
    const p = this.training ? this.dropoutP : 0;
    let y: Tensor;
    // Hooks on attnDropout must see the probabilities, so a hooked layer takes the grouped path,
    // which materialises them, even with a mask; the unhooked one never calls the module.
    const observed = this.attnDropout.hasForwardHooks();
    if (mask && !observed) {
      // General masks go through the broadcasting attention op: k, v get a size-1 group dim.
      y = scaledDotProductAttention(q, k.unsqueeze(2), v.unsqueeze(2), { mask: this.#groupedMask(mask, b), scale: this.scale, dropoutP: p, generator: this.#dropoutGenerator });
    } else {
      y = groupedAttention(q, k, v, {
        causal: this.causal && !mask,
        causalOffset,
        window: mask ? null : this.slidingWindow,
        mask: mask ? this.#groupedMask(mask, b) : null,
        scale: this.scale,
        qIsScaled,
        dropoutP: p,
        generator: this.#dropoutGenerator,
        applyToProbs: observed ? (probs) => this.#hookedProbs(probs) : undefined,
      });
    }
    // [B, Hkv, G, T, D] → [B, T, Hkv, G, D] → [B·T, H·D]: the one copy of the layer.
    const merged = y.permute(0, 3, 1, 2, 4).reshape([b * t, h * d]);
    return project(this.wo, merged).view([b, t, this.dModel]);
  }

  /**
   * Causal linear attention: φ(q), φ(k) per head, then the parallel form over the new tokens plus
   * the cached state's share; the state then absorbs the new keys and values. No causal flag:
   * a non-causal layer is refused, as the recurrence is causal by construction.
   */
  #linearForward(x: Tensor, mask: Tensor | null, cache: KVCacheLayer | null): Tensor {
    if (!this.causal) throw new Error('MultiHeadAttention: linear attention is causal only');
    const [b, t] = x.shape;
    const { nHeads: h, nKvHeads: hkv, headDim: d } = this;
    const g = h / hkv;
    if (mask && mask.dtype !== 'bool') throw new Error('MultiHeadAttention: linear attention takes a bool mask only');
    const x2 = x.reshape([b * t, this.dModel]);
    const fq = eluFeatureMap(project(this.wq, x2).view([b, t, hkv, g, d]).permute(0, 2, 3, 1, 4));
    const fk = eluFeatureMap(project(this.wk, x2).view([b, t, hkv, d]).permute(0, 2, 1, 3));
    const v = project(this.wv, x2).view([b, t, hkv, d]).permute(0, 2, 1, 3);
    const y = causalLinearAttention(fq, fk, v, { eps: LINEAR_ATTENTION_EPS, state: cache?.state ?? null, mask: mask ? this.#groupedMask(mask, b) : null });
    if (cache) cache.absorb(fk, v);
    const merged = y.permute(0, 3, 1, 2, 4).reshape([b * t, h * d]);
    return project(this.wo, merged).view([b, t, this.dModel]);
  }

  /** Runs probs [B, Hkv, G, Tq, Tk] through attnDropout (and so its hooks) as [B, H, Tq, Tk]. */
  #hookedProbs(probs: Tensor): Tensor {
    const [b, hkv, g, tq, tk] = probs.shape;
    // Query head h = kv·G + g (the layout above), so the view [B, H, Tq, Tk] is free.
    const out = this.attnDropout.forward(probs.reshape([b, hkv * g, tq, tk]));
    if (out.ndim !== 4 || out.shape[0] !== b || out.shape[1] !== hkv * g || out.shape[2] !== tq || out.shape[3] !== tk) {
      throw new Error(`MultiHeadAttention: attnDropout returned ${formatShape(out.shape)}, expected the probabilities' shape ${formatShape([b, hkv * g, tq, tk])}`);
    }
    return out.reshape([b, hkv, g, tq, tk]);
  }

  /** A mask [Tq, Tk] or [B|1, H|1, Tq, Tk] laid out for the grouped [B, Hkv, G, Tq, Tk] scores. */
  #groupedMask(mask: Tensor, b: number): Tensor {
    if (mask.ndim === 2) return mask;
    if (mask.ndim === 4) {
      const [mb, mh, tq, tk] = mask.shape;
      if ((mb === 1 || mb === b) && mh === 1) return mask.unsqueeze(2);
      if ((mb === 1 || mb === b) && mh === this.nHeads) return mask.reshape([mb, this.nKvHeads, this.nHeads / this.nKvHeads, tq, tk]);
    }
    throw new Error(`MultiHeadAttention: mask must be [Tq, Tk] or [B|1, H|1, Tq, Tk], got ${formatShape(mask.shape)}`);
  }

  override extraRepr(): string {
    const scale = this.scale === 1 / Math.sqrt(this.headDim) ? '' : `, scale=${this.scale}`;
    const window = (this.slidingWindow === null ? '' : `, slidingWindow=${this.slidingWindow}`) + (this.#attention === 'linear' ? ', attention=linear' : '');
    return `dModel=${this.dModel}, nHeads=${this.nHeads}, nKvHeads=${this.nKvHeads}, causal=${this.causal}${window}${this.#rope ? ', rope' : ''}${scale}`;
  }
}
