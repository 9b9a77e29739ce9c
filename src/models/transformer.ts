/**
 * TransformerLM: a decoder-only language model (GPT-2 / Llama family) built from one
 * TransformerConfig. Read top to bottom like nanoGPT's model.py:
 *
 *   ids [B, T] ─ tokEmb ─(+ posEmb)─ dropout ─ layers[0..nLayers−1] ─ norm ─ head ─ logits [B, T, V]
 *
 * each layer being a TransformerBlock (attention + feed-forward with residuals, src/nn/transformer.ts).
 * With RoPE there is no additive position table; the rotation happens inside attention.
 * With tieWeights the head is the token embedding matrix itself (no `head` module).
 * With `config.mup` the model is in μP relative to a base width (models/mup.ts, docs/mup.md):
 * scaled init of the hidden matrices, α_in on the embeddings, α_out/m before the head, and
 * attention logits ∝ 1/headDim; at the base width it is exactly the standard model.
 * Activations are observed with forward hooks on the submodules (Module.registerForwardHook; the
 * μP coordinate check in src/mup does so).
 *
 * State-dict names (what safetensors files use):
 *   tokEmb.weight, posEmb.weight (learned positions only),
 *   layers.{i}.attnNorm.{weight,bias}, layers.{i}.attn.{wq,wk,wv,wo}.{weight,bias},
 *   layers.{i}.ffnNorm.{weight,bias}, layers.{i}.ffn.{w1,w2}[,w3].{weight,bias} (with moe:
 *   layers.{i}.ffn.router.weight, layers.{i}.ffn.experts.{e}.{w1,w2[,w3]}, layers.{i}.ffn.shared.…),
 *   a 'mamba' layer (config.mamba, layerTypes; nn/mamba.ts) instead: layers.{i}.norm.{weight,bias},
 *   layers.{i}.mixer.{inProj,conv,xProj,dtProj,outProj}.…, layers.{i}.mixer.{aLog,dSkip},
 *   norm.{weight,bias} (pre-norm only), head.weight (untied only).
 * With mla (multi-head latent attention, nn/mla.ts) each layer's attention is instead
 *   layers.{i}.attn.{wq | wDq, qNorm, wUq}, .wQr, .wDkv, .kvNorm, .wKr, .wUk, .wUv, .wo
 * (the norms are RMSNorms, weight only), and RoPE rotates qkRopeHeadDim features.
 * Biases exist only with bias: true; RMSNorm has weight only.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { KVCache } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import * as F from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Dropout, Linear, ModuleList } from '../nn/layers.js';
import { LayerNorm, RMSNorm } from '../nn/normalization.js';
import { LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding } from '../nn/positional.js';
import { makeNorm, TransformerBlock } from '../nn/transformer.js';
import { MambaBlock, MambaCache } from '../nn/mamba.js';
import { MixtureOfExperts } from '../nn/moe.js';
import { crossEntropy } from '../ops/fused.js';
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { CausalLM } from './causal-lm.js';
import { DecodeEngine, decodeEngineUnsupported } from './decode.js';
import { layerKinds, layerWindows, resolveConfig, type MambaConfig, type TransformerConfig, type TransformerConfigInput } from './config.js';
import { attentionScale, hiddenFanInMultiplier, inputMultiplier, readoutMultiplier } from './mup.js';
import { checkSamplingOptions, sampleRows, type SamplingOptions } from './sampling.js';

export { KVCache, KVCacheLayer } from '../nn/attention.js';

export interface LMOutput {
  /** [B, T, vocabSize] */
  logits: Tensor;
  /** Mean cross-entropy over the targets (−100 is ignored), or null without targets. */
  loss: Tensor | null;
}

/**
 * Several documents packed in one row (SFT packing): each token's own position and document, so
 * that the row computes exactly what its documents would compute one by one.
 */
export interface LMSequenceOptions {
  /**
   * Explicit per-token positions, int32 [B, T], each in [0, maxSeqLen) (packed documents restart
   * at 0): rows of the learned/sinusoidal table, or the RoPE angles, at these positions. Default
   * 0..T−1 in every row.
   */
  positions?: Tensor | null;
  /**
   * Which document each token belongs to, int32 [B, T]: attention becomes block-diagonal and causal
   * (token i sees token j iff j ≤ i and documentIds[i] = documentIds[j]). Default: one document per row.
   */
  documentIds?: Tensor | null;
}

export interface LMForwardOptions extends LMSequenceOptions {
  /**
   * Incremental decoding: the tokens continue the cached sequence (positions cache.length..),
   * and their keys/values are appended. Runs without recording gradients. Not with positions or documentIds.
   */
  cache?: KVCache | null;
}

/**
 * The attention mask of packed rows: documentIds int32 [B, T] → bool [B, 1, T, T], true where
 * query i may see key j (j ≤ i and the same document; with a sliding window W also j > i − W).
 * Every token sees at least itself, so no softmax row is empty.
 */
export function packedAttentionMask(documentIds: Tensor, window: number | null = null): Tensor {
  if (documentIds.dtype !== 'int32' || documentIds.ndim !== 2) throw new Error(`packedAttentionMask: documentIds must be an int32 tensor [B, T], got ${documentIds.dtype} ${formatShape(documentIds.shape)}`);
  const [b, t] = documentIds.shape;
  const doc = documentIds.contiguous().toTypedArray() as Int32Array;
  const mask = new Uint8Array(b * t * t);
  for (let r = 0; r < b; r++) {
    for (let i = 0; i < t; i++) {
      const d = doc[r * t + i];
      const row = (r * t + i) * t;
      for (let j = window === null ? 0 : Math.max(0, i - window + 1); j <= i; j++) if (doc[r * t + j] === d) mask[row + j] = 1;
    }
  }
  return tensor(mask, { shape: [b, 1, t, t] });
}

export interface TransformerLMOptions {
  /** Draws the initial weights (the default generator otherwise). */
  generator?: Generator;
  /** Draws the dropout masks (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

export interface GenerateOptions extends SamplingOptions {
  /** Number of tokens to generate. */
  maxNewTokens: number;
  /**
   * When the context reaches maxSeqLen, the cache is rebuilt from the last `keepOnOverflow` tokens
   * (one forward pass) and decoding continues. Default ⌊maxSeqLen/2⌋: cheap amortised, each token
   * then sees between maxSeqLen/2 and maxSeqLen earlier tokens. maxSeqLen − 1 reproduces a sliding
   * window exactly (nanoGPT's generate) at the cost of a full forward pass per token once full.
   */
  keepOnOverflow?: number;
  /** Called with each new token per batch row, before it is fed back. */
  onToken?: (tokens: Int32Array, step: number) => void;
  /**
   * Continue a sequence already in this cache (a multi-turn chat): `ids` are appended to it and
   * the generated tokens too, except the last one yielded, which the caller feeds with its next
   * ids. It must have room for the ids; when it fills up while generating, it is rebuilt from the
   * last keepOnOverflow tokens of this call (earlier ones are forgotten). A DecodeEngine is the
   * fast cache (ChatSession's); a KVCache (createCache) runs the graph path, the engine's
   * reference. Default: a fresh engine.
   */
  cache?: KVCache | DecodeEngine;
}

export class TransformerLM extends CausalLM<[Tensor, (Tensor | null)?, LMForwardOptions?], LMOutput, GenerateOptions> {
  readonly config: TransformerConfig;
  tokEmb: Embedding;
  posEmb: LearnedPositionalEmbedding | SinusoidalPositionalEncoding | null;
  rope: RotaryEmbedding | null;
  drop: Dropout;
  /**
   * The layers in order. With config.mamba, the 'mamba' entries of layerKinds(config) are
   * MambaBlocks (nn/mamba.ts), the others TransformerBlocks; `block(i)` gives an attention
   * block or a one-line error.
   */
  layers: ModuleList<TransformerBlock | MambaBlock>;
  norm: LayerNorm | RMSNorm | null;
  head: Linear | null;
  /** μP's α_in and α_out/m (both exactly 1 without μP, and then never applied). */
  readonly #inputMultiplier: number;
  readonly #readoutMultiplier: number;

  constructor(config: TransformerConfigInput, options: TransformerLMOptions = {}) {
    super();
    const c = resolveConfig(config);
    this.config = Object.freeze(c);
    const gen = options.generator;
    this.tokEmb = new Embedding(c.vocabSize, c.dModel, { generator: gen });
    this.posEmb =
      c.pos === 'learned' ? new LearnedPositionalEmbedding(c.maxSeqLen, c.dModel, { generator: gen }) : c.pos === 'sinusoidal' ? new SinusoidalPositionalEncoding(c.maxSeqLen, c.dModel) : null;
    // MLA rotates only its decoupled qkRopeHeadDim features; other attention a whole head.
    const ropeDim = c.mla ? c.mla.qkRopeHeadDim : c.dModel / c.nHeads;
    this.rope = c.pos === 'rope' ? new RotaryEmbedding(ropeDim, c.maxSeqLen, { theta: c.ropeTheta, pairing: c.ropePairing }) : null;
    this.drop = new Dropout(c.dropout, { generator: options.dropoutGenerator });
    this.#inputMultiplier = inputMultiplier(c);
    this.#readoutMultiplier = readoutMultiplier(c);
    // μP: logits × √D_base/D instead of 1/√D (models/mup.ts); SP's 1/√D otherwise.
    const attnScale = attentionScale(c);
    this.layers = new ModuleList<TransformerBlock | MambaBlock>();
    const kinds = layerKinds(c);
    const windows = layerWindows(c);
    for (let i = 0; i < c.nLayers; i++) {
      if (kinds[i] === 'mamba') {
        // A Mamba layer is a MambaBlock in the same list (state-dict names layers.{i}.norm, layers.{i}.mixer.…; see `layers`).
        const mamba = c.mamba as MambaConfig;
        const block = new MambaBlock(c.dModel, { ...mamba, norm: c.norm, normEps: c.normEps, bias: c.bias, dropout: c.dropout, generator: gen, dropoutGenerator: options.dropoutGenerator });
        this.layers.append(block);
        continue;
      }
      this.layers.append(
        new TransformerBlock({
          dModel: c.dModel,
          nHeads: c.nHeads,
          nKvHeads: c.nKvHeads,
          dFF: c.dFF,
          norm: c.norm,
          mlp: c.mlp,
          bias: c.bias,
          dropout: c.dropout,
          normEps: c.normEps,
          normPlacement: c.normPlacement,
          rope: this.rope,
          // MLA: 1/√(qkNopeHeadDim + qkRopeHeadDim), its module's default (config refuses mup with mla).
          attnScale: c.mla ? undefined : attnScale,
          mla: c.mla,
          moe: c.moe ? { nExperts: c.moe.nExperts, topK: c.moe.topK, dExpert: c.moe.dExpert, nSharedExperts: c.moe.nSharedExperts, router: c.moe.router, normalizeTopK: c.moe.normalizeTopK } : null,
          generator: gen,
          dropoutGenerator: options.dropoutGenerator,
        }),
      );
      // Set after construction so that the block (and its random draws) is the same with or without a window.
      this.block(i).attn.slidingWindow = windows[i];
      this.block(i).attn.attention = c.attention;
    }
    // Post-norm blocks already end with a norm; pre-norm needs one before the head.
    this.norm = c.normPlacement === 'pre' ? makeNorm(c.norm, c.dModel, { bias: c.bias, eps: c.normEps }) : null;
    this.head = c.tieWeights ? null : new Linear(c.dModel, c.vocabSize, { bias: false, generator: gen });
    this.#initWeights(gen);
    // The SSM parameters keep the paper's initialisation (Δ's range, S4D-real A, D = 1), not GPT-2's normal draw.
    for (const layer of this.layers) if (layer instanceof MambaBlock) layer.mixer.resetSsmParameters(gen);
  }

  /**
   * GPT-2 initialisation: every Linear and embedding weight ~ N(0, initStd²), biases 0, norms 1/0,
   * and the residual projections (attn.wo, ffn.w2) ~ N(0, (initStd/√(2·nLayers))²) so the residual
   * stream's variance does not grow with depth.
   *
   * μP (TP5 Table 3, "hidden weights: init var ∝ 1/fan_in"): each hidden matrix's std is divided by
   * √m_fanIn (its fan-in ratio to the base), so the base width keeps GPT-2's values and wider
   * models keep each hidden pre-activation Θ(1); the residual projections keep their extra
   * 1/√(2·nLayers). Embeddings (input weights) and an untied readout keep a constant std: the
   * readout's width dependence is the forward multiplier α_out/m instead (microsoft/mup's
   * MuReadout). Zero init (query, readout) happens after the draw, so every other weight gets
   * the same values as without it.
   */
  #initWeights(gen: Generator | undefined): void {
    const c = this.config;
    const std = c.initStd;
    const residualStd = std / Math.sqrt(2 * c.nLayers);
    for (const [name, m] of this.namedModules()) {
      if (m instanceof Linear) {
        const residual = name.endsWith('.wo') || name.endsWith('.w2') || name.endsWith('.mixer.outProj');
        const base = residual ? residualStd : std;
        const hidden = name !== 'head';
        normal_(m.weight, 0, c.mup && hidden ? base / Math.sqrt(hiddenFanInMultiplier(c, name)) : base, gen);
        if (m.bias) zeros_(m.bias);
        // TP5 §D.2: a zero query makes attention uniform at init, removing the init-time logit
        // term that μP cannot keep Θ(1); an untied zero readout likewise starts the logits at 0.
        if (c.mup?.zeroInitQuery && name.endsWith('.attn.wq')) zeros_(m.weight);
        if (c.mup?.zeroInitReadout && name === 'head') zeros_(m.weight);
      } else if (m instanceof Embedding) {
        normal_(m.weight, 0, std, gen);
        m.zeroPaddingRow();
      } else if (m instanceof LearnedPositionalEmbedding) {
        normal_(m.weight, 0, std, gen);
      }
    }
  }

  /**
   * Layer i as an attention block (attention + feed-forward); a one-line error when it is a Mamba
   * block (config.layerTypes). What the attention-only tools (decode engine, attention maps, μP
   * coordinate checks, LoRA on attention) reach the layers through.
   */
  block(i: number): TransformerBlock {
    const layer = this.layers.at(i);
    if (!(layer instanceof TransformerBlock)) throw new Error(`TransformerLM: layer ${i} is a Mamba block, not an attention block`);
    return layer;
  }

  /** The output projection's weight [vocabSize, dModel] (the token embedding when tied). */
  get headWeight(): Tensor {
    return this.head ? this.head.weight : this.tokEmb.weight;
  }

  /**
   * ids [B, T] int32 → logits [B, T, V]; with targets [B, T] also the mean cross-entropy (fused
   * log-softmax + NLL; targets of −100 are ignored). With `cache`, decodes incrementally (no grad);
   * with `positions` / `documentIds`, runs packed rows (LMSequenceOptions).
   */
  forward(ids: Tensor, targets: Tensor | null = null, options: LMForwardOptions = {}): LMOutput {
    const cache = options.cache ?? null;
    const run = (): LMOutput => {
      const x = this.hidden(ids, options);
      const [b, t, d] = x.shape;
      const logits = this.#readout(x.reshape([b * t, d])).view([b, t, this.config.vocabSize]);
      return { logits, loss: targets ? this.#withRouterLosses(crossEntropy(logits, targets)) : null };
    };
    return cache ? noGrad(run) : run();
  }

  /** The mixture-of-experts layers (empty without config.moe), in layer order. */
  moeLayers(): MixtureOfExperts[] {
    const out: MixtureOfExperts[] = [];
    for (const m of this.modules()) if (m instanceof MixtureOfExperts) out.push(m);
    return out;
  }

  /**
   * The training objective of an MoE model: the cross-entropy plus the configured weights times
   * the load-balancing and z losses of the forward just run, each averaged over the layers. Only
   * in training mode: an evaluation (eval mode) reports the cross-entropy alone.
   */
  #withRouterLosses(ce: Tensor): Tensor {
    const moe = this.config.moe;
    if (!moe || !this.training || (moe.auxLossWeight === 0 && moe.zLossWeight === 0)) return ce;
    const layers = this.moeLayers();
    let loss = ce;
    for (const layer of layers) {
      if (moe.auxLossWeight !== 0 && layer.auxLoss) loss = loss.add(layer.auxLoss.mul(moe.auxLossWeight / layers.length));
      if (moe.zLossWeight !== 0 && layer.zLoss) loss = loss.add(layer.zLoss.mul(moe.zLossWeight / layers.length));
    }
    return loss;
  }

  /**
   * The final hidden states [B, T, dModel] (after the final norm): everything but the head.
   * With a cache the tokens continue the cached sequence; with positions / documentIds the rows
   * are packed (LMSequenceOptions).
   */
  hidden(ids: Tensor, options: KVCache | LMForwardOptions | null = null): Tensor {
    const c = this.config;
    const opts: LMForwardOptions = options instanceof KVCache ? { cache: options } : (options ?? {});
    const cache = opts.cache ?? null;
    const positions = opts.positions ?? null;
    const documentIds = opts.documentIds ?? null;
    if (ids.dtype !== 'int32' || ids.ndim !== 2) throw new Error(`TransformerLM: ids must be an int32 tensor [B, T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    const [b, t] = ids.shape;
    const offset = cache ? cache.length : 0;
    if (cache) {
      if (positions || documentIds) throw new Error('TransformerLM: positions/documentIds (packed rows) cannot be combined with a KV cache');
      if (cache.layers.length !== c.nLayers) throw new Error(`TransformerLM: cache has ${cache.layers.length} layers, the model ${c.nLayers}`);
      if (cache.batch !== b) throw new Error(`TransformerLM: cache batch ${cache.batch} differs from the input batch ${b}`);
    }
    for (const [name, p] of [['positions', positions], ['documentIds', documentIds]] as const) {
      if (p && (p.dtype !== 'int32' || p.ndim !== 2 || p.shape[0] !== b || p.shape[1] !== t)) {
        throw new Error(`TransformerLM: ${name} must be an int32 tensor [B, T] = ${formatShape([b, t])} like ids, got ${p.dtype} ${formatShape(p.shape)}`);
      }
    }
    if (positions) {
      // Explicit positions bound the table rows, not the row length (a packed row may be longer than one document).
      const pos = positions.contiguous().toTypedArray() as Int32Array;
      for (let i = 0; i < pos.length; i++) {
        if (pos[i] < 0 || pos[i] >= c.maxSeqLen) throw new RangeError(`TransformerLM: position ${pos[i]} is outside [0, maxSeqLen ${c.maxSeqLen})`);
      }
    } else if (offset + t > c.maxSeqLen) {
      throw new RangeError(`TransformerLM: ${t} tokens at position ${offset} exceed maxSeqLen ${c.maxSeqLen}`);
    }
    // A Mamba layer's scan runs over the whole row, so packed documents would leak state into each other.
    if (documentIds && layerKinds(c).includes('mamba')) throw new Error("TransformerLM: packed rows (documentIds) are not supported with 'mamba' layers (their state does not reset at document starts)");
    // Built once per distinct window (once for all layers without per-layer windows); with it
    // attention takes the explicit-mask path, causal included.
    const windows = layerWindows(c);
    const masks = new Map<number | null, Tensor>();
    if (documentIds) for (const w of windows) if (!masks.has(w)) masks.set(w, packedAttentionMask(documentIds, w));
    let x = this.tokEmb.forward(ids);
    if (this.posEmb) x = this.posEmb.forward(x, positions ?? offset);
    // μP's input multiplier α_in on the embeddings (TP5 Table 3's tunable "input weights multiplier").
    if (this.#inputMultiplier !== 1) x = x.mul(this.#inputMultiplier);
    // Always through `drop`, even at p = 0: its input is where hooks observe the embeddings.
    x = this.drop.forward(x);
    let i = 0;
    if (positions || documentIds) {
      // Packed rows: RoPE reads the positions in attention (the additive tables took them above).
      for (const layer of this.layers) {
        const mask = masks.get(windows[i++]) ?? null;
        x = layer instanceof MambaBlock ? layer.forward(x) : layer.forward(x, { mask, positions: this.rope ? positions : null });
      }
    } else {
      for (const layer of this.layers) {
        const layerCache = cache ? cache.layers[i++] : null;
        if (layer instanceof MambaBlock) {
          if (layerCache && !(layerCache instanceof MambaCache)) throw new Error(`TransformerLM: layer ${i - 1} is a Mamba layer but its cache is an attention cache`);
          x = layer.forward(x, layerCache ?? undefined);
        } else {
          if (layerCache instanceof MambaCache) throw new Error(`TransformerLM: layer ${i - 1} is an attention layer but its cache is a Mamba state`);
          x = layer.forward(x, { cache: layerCache });
        }
      }
    }
    return this.norm ? this.norm.forward(x) : x;
  }

  /**
   * The readout: hidden [N, dModel] → logits [N, V]. Under μP the hidden state is first multiplied
   * by α_out/m (readoutMultiplier in models/mup.ts), for a tied and an untied head alike.
   */
  #readout(x: Tensor): Tensor {
    const h = this.#readoutMultiplier === 1 ? x : x.mul(this.#readoutMultiplier);
    // Through the head module when there is one, so that hooks on it fire; tied, it is the embedding matrix.
    return this.head ? this.head.forward(h) : F.linear(h, this.tokEmb.weight);
  }

  /** An empty KV cache for `batch` sequences of up to `maxLen` (default maxSeqLen) tokens. */
  createCache(batch = 1, maxLen = this.config.maxSeqLen): KVCache {
    if (maxLen > this.config.maxSeqLen) throw new RangeError(`TransformerLM: cache length ${maxLen} exceeds maxSeqLen ${this.config.maxSeqLen}`);
    return new KVCache(Array.from(this.layers, (layer) => (layer instanceof MambaBlock ? layer.mixer.createCache(batch, maxLen) : layer.attn.createCache(batch, maxLen))));
  }

  /**
   * A cache to decode `batch` sequences with: the decode engine, or the graph KV-cache path for an
   * architecture option the engine does not implement (decodeEngineUnsupported). Both append ids
   * and hold up to `maxLen` tokens per row; generateStream and ChatSession take either.
   */
  createDecoder(batch = 1, maxLen = this.config.maxSeqLen): DecodeEngine | KVCache {
    return decodeEngineUnsupported(this.config) === null ? new DecodeEngine(this, batch, maxLen) : this.createCache(batch, maxLen);
  }

  /**
   * Feeds ids [B, t] through the cache (appending them) and returns the logits [B, V] of the last
   * one — the next-token distribution. Only that position goes through the head. No grad.
   */
  step(ids: Tensor, cache: KVCache): Tensor {
    return noGrad(() => {
      const x = this.hidden(ids, cache);
      return this.#readout(x.select(1, x.shape[1] - 1));
    });
  }

  /**
   * Generates tokens after ids [B, T] (or [T]), yielding the new token of every row at each step.
   * Runs on the decode engine (models/decode.ts: no graph, buffers allocated once, the prompt in
   * one pass, then one token per step), or, to continue a chat's `cache`, on the KV-cache path.
   * Runs in eval mode (dropout off) without gradients; the modules' modes are restored afterwards.
   * Temperature 0 is greedy.
   */
  *generateStream(ids: Tensor, options: GenerateOptions): IterableIterator<Int32Array> {
    const { maxNewTokens } = options;
    const c = this.config;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    checkSamplingOptions(options);
    const keep = options.keepOnOverflow ?? Math.max(1, Math.floor(c.maxSeqLen / 2));
    if (!Number.isInteger(keep) || keep < 1 || keep >= c.maxSeqLen) throw new RangeError(`generate: keepOnOverflow must be an integer in [1, ${c.maxSeqLen - 1}], got ${keep}`);
    const context = ids.ndim === 1 ? ids.unsqueeze(0) : ids;
    if (context.dtype !== 'int32' || context.ndim !== 2 || context.shape[1] === 0) throw new Error(`generate: ids must be a non-empty int32 tensor [B, T] or [T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    if (maxNewTokens === 0) return;
    const [b, t] = context.shape;
    const modes = this.modules().map((m) => [m, m.training] as const);
    this.eval();
    try {
      if (options.cache) {
        const { batch, length, maxLen } = options.cache;
        if (batch !== b) throw new Error(`generate: the cache holds ${batch} sequences, ids ${b}`);
        if (length + t > maxLen) throw new RangeError(`generate: ${t} tokens after the ${length} in the cache exceed its length ${maxLen}; reset it or start from a shorter context`);
      }
      // The decode engine (a fresh one, or the caller's), or the graph path on a KVCache: both
      // append b rows of n ids and give the next-token logits [b, V].
      // A fresh cache takes the last maxSeqLen tokens of a longer prompt; a continued one was checked to have room.
      const start = options.cache ? 0 : Math.max(0, t - c.maxSeqLen);
      // A fresh one holds what this call can reach — the (clipped) prompt plus the new tokens — not
      // the whole context: a 2,048-token TinyLlama cache is 92 MiB, 8.6 MiB for 128 + 64 tokens.
      // Past maxSeqLen it is the whole context and refills as before.
      const cache = options.cache ?? this.createDecoder(b, Math.min(c.maxSeqLen, t - start + maxNewTokens));
      // The engine's logits are its own buffer, read by the sampler before the next feed: no copy.
      const feed = (rowIds: Int32Array, n: number): Float32Array =>
        cache instanceof KVCache ? (this.step(tensor(rowIds, { shape: [b, n] }), cache).toTypedArray() as Float32Array) : cache.forward(rowIds, n);
      // Rows of the full sequence so far, for rebuilding the cache when the context is full.
      const rows: number[][] = Array.from({ length: b }, (_, r) => Array.from(context.select(0, r).toTypedArray()));
      let logits = feed(noGrad(() => context.narrow(1, start, t - start).contiguous()).toTypedArray() as Int32Array, t - start);
      for (let i = 0; i < maxNewTokens; i++) {
        const next = sampleRows(logits, b, c.vocabSize, options);
        for (let r = 0; r < b; r++) rows[r].push(next[r]);
        options.onToken?.(next, i);
        yield next;
        if (i === maxNewTokens - 1) break;
        if (cache.length >= cache.maxLen) {
          cache.reset();
          const tail = new Int32Array(b * keep);
          for (let r = 0; r < b; r++) tail.set(rows[r].slice(rows[r].length - keep), r * keep);
          logits = feed(tail, keep);
        } else {
          logits = feed(Int32Array.from(next), 1);
        }
      }
    } finally {
      for (const [m, training] of modes) m.training = training;
    }
  }

  override extraRepr(): string {
    const c = this.config;
    return `vocabSize=${c.vocabSize}, dModel=${c.dModel}, nLayers=${c.nLayers}, nHeads=${c.nHeads}, nKvHeads=${c.nKvHeads}, norm='${c.norm}', mlp='${c.mlp}', pos='${c.pos}'${c.slidingWindow === null ? '' : `, slidingWindow=${JSON.stringify(c.slidingWindow)}`}${c.attention === 'linear' ? ", attention='linear'" : ''}${c.moe ? `, moe(nExperts=${c.moe.nExperts}, topK=${c.moe.topK})` : ''}${c.mup ? `, mup(baseWidth=${c.mup.baseWidth})` : ''}`;
  }
}
