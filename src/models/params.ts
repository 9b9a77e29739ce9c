/**
 * Exact parameter counts and training-memory estimates of a TransformerLM, from its config alone
 * (no weights are allocated, so a 1.1B model costs nothing to inspect). The formulas are in
 * docs/models.md; tests check the counts against allocated models of every config combination.
 */
import { RECURRENT_GATES } from '../ops/recurrent.js';
import {
  isRecurrentConfig,
  layerKinds,
  layerWindows,
  resolveConfig,
  resolveRecurrentConfig,
  type ModelConfigInput,
  type RecurrentLMConfig,
  type RecurrentLMConfigInput,
  type TransformerConfig,
  type TransformerConfigInput,
} from './config.js';

export interface ParameterBreakdown {
  /** Token embedding + learned position table. */
  embedding: number;
  tokenEmbedding: number;
  positionEmbedding: number;
  /** wq, wk, wv, wo (+ biases) of all layers. */
  attention: number;
  /** Feed-forward weights (+ biases) of all layers. */
  ffn: number;
  /** Every LayerNorm/RMSNorm, the final one included. */
  norms: number;
  /** The untied output head (0 when tied to the token embedding). */
  head: number;
  /** Per layer: attention, ffn and norms of one block. */
  perLayer: { attention: number; ffn: number; norms: number; total: number };
  total: number;
  /** Parameters each token is computed with: the total less the routed experts it is not sent to (= total without MoE). */
  active: number;
  /** The Mamba mixers of all 'mamba' layers (their norms are in `norms`); 0 without them. `attention`, `ffn` and `perLayer` cover the attention layers only. */
  mamba: number;
}

/** How many layers of each kind (layerKinds: config.layerTypes or its default). */
function layerCounts(c: TransformerConfig): { attention: number; mamba: number } {
  const mamba = layerKinds(c).filter((k) => k === 'mamba').length;
  return { attention: c.nLayers - mamba, mamba };
}

/**
 * One Mamba mixer's parameters (nn/mamba.ts), Din = expand·dModel: inProj [2·Din, d], conv weight
 * [Din, dConv] and bias [Din], xProj [dtRank + 2N, Din], dtProj [Din, dtRank] and bias [Din],
 * aLog [Din, N], dSkip [Din], outProj [d, Din]; inProj and outProj add 2·Din and d with bias.
 */
export function mambaMixerParameters(c: TransformerConfig): number {
  const m = c.mamba;
  if (!m) return 0;
  const d = c.dModel;
  const din = m.expand * d;
  const b = c.bias ? 1 : 0;
  return 2 * din * d + b * 2 * din + din * m.dConv + din + din * (m.dtRank + 2 * m.dState) + m.dtRank * din + din + din * m.dState + din + din * d + b * d;
}

/** Bytes of the Mamba layers' recurrent state per sequence (fp32): conv [Din, dConv − 1] and SSM [Din, N] per layer, whatever the length. */
export function mambaStateBytes(c: TransformerConfig): number {
  const m = c.mamba;
  if (!m) return 0;
  return layerCounts(c).mamba * m.expand * c.dModel * (m.dConv - 1 + m.dState) * 4;
}

/**
 * The breakdown of a model with 'mamba' layers: the attention layers' figures from the same config
 * with one attention layer (scaled by their number), plus the Mamba mixers and their norms.
 */
function countWithMamba(c: TransformerConfig): ParameterBreakdown {
  const n = layerCounts(c);
  const one = countParameters({ ...c, nLayers: 1, layerTypes: null, mamba: null });
  const finalNorm = one.norms - one.perLayer.norms;
  const out = {
    embedding: one.embedding,
    tokenEmbedding: one.tokenEmbedding,
    positionEmbedding: one.positionEmbedding,
    attention: n.attention * one.perLayer.attention,
    ffn: n.attention * one.perLayer.ffn,
    norms: n.attention * one.perLayer.norms + n.mamba * normParams(c) + finalNorm,
    head: one.head,
    perLayer: one.perLayer,
    total: 0,
    active: 0,
    mamba: n.mamba * mambaMixerParameters(c),
  };
  out.total = out.embedding + out.attention + out.ffn + out.norms + out.head + out.mamba;
  out.active = out.total - n.attention * (one.total - one.active);
  return out;
}

function normParams(c: TransformerConfig): number {
  return c.norm === 'layer' && c.bias ? 2 * c.dModel : c.dModel;
}

/**
 * One MLA layer's parameters (nn/mla.ts; the latent RMSNorms counted with attention): queries
 * wq [H·nope, d] or wDq [qr, d] + qNorm [qr] + wUq [H·nope, qr]; wQr [H·rope, d or qr];
 * wDkv [r, d], kvNorm [r], wKr [rope, d], wUk [H·nope, r], wUv [H·dv, r], wo [d, H·dv];
 * with bias every Linear adds its output width.
 */
function mlaAttentionParameters(c: TransformerConfig): number {
  const m = c.mla;
  if (!m) return 0;
  const { dModel: d, nHeads: h } = c;
  const b = c.bias ? 1 : 0;
  const lin = (inF: number, outF: number) => inF * outF + b * outF;
  const qIn = m.qLoraRank ?? d;
  const queries = (m.qLoraRank === null ? lin(d, h * m.qkNopeHeadDim) : lin(d, m.qLoraRank) + m.qLoraRank + lin(m.qLoraRank, h * m.qkNopeHeadDim)) + lin(qIn, h * m.qkRopeHeadDim);
  const keysValues = lin(d, m.kvLoraRank) + m.kvLoraRank + lin(d, m.qkRopeHeadDim) + lin(m.kvLoraRank, h * m.qkNopeHeadDim) + lin(m.kvLoraRank, h * m.vHeadDim);
  return queries + keysValues + lin(h * m.vHeadDim, d);
}

/**
 * Activation elements per token of one MLA layer's attention, following nn/mla.ts's forward:
 * norm input and output; the query path (wDq and qNorm outputs with a low-rank q; q^C, q^R and
 * rotated q^R); c_KV before and after kvNorm, k^R before and after RoPE; k^C and v; the
 * concatenated q and k and the scaled q; the attention output and its merged copy; wo; dropout.
 */
function mlaAttentionActivations(c: TransformerConfig): number {
  const m = c.mla;
  if (!m) return 0;
  const { dModel: d, nHeads: h } = c;
  const drop = c.dropout > 0 ? 1 : 0;
  const qk = h * (m.qkNopeHeadDim + m.qkRopeHeadDim);
  return 2 * d + (m.qLoraRank === null ? 0 : 2 * m.qLoraRank) + h * m.qkNopeHeadDim + 2 * h * m.qkRopeHeadDim + 2 * m.kvLoraRank + 2 * m.qkRopeHeadDim + h * (m.qkNopeHeadDim + m.vHeadDim) + 3 * qk + 2 * h * m.vHeadDim + d + drop * 2 * d;
}

/** The parameters of a RecurrentLM, by component. */
export interface RecurrentParameterBreakdown {
  tokenEmbedding: number;
  /** W_ih, W_hh, b_ih, b_hh of every layer (layer 0 reads embedDim, the others hiddenSize). */
  recurrent: number;
  perLayer: number[];
  /** The untied head, weight and bias (0 when tied). */
  head: number;
  total: number;
}

/** Gate blocks of each arch (the RNN's tanh/relu both have one). */
const gateBlocks = (arch: RecurrentLMConfig['arch']): number => RECURRENT_GATES[arch === 'rnn' ? 'rnnTanh' : arch];

function countRecurrentParameters(config: RecurrentLMConfigInput): RecurrentParameterBreakdown {
  const c = resolveRecurrentConfig(config);
  const G = gateBlocks(c.arch) * c.hiddenSize;
  const perLayer = Array.from({ length: c.nLayers }, (_, l) => G * ((l === 0 ? c.embedDim : c.hiddenSize) + c.hiddenSize) + 2 * G);
  const tokenEmbedding = c.vocabSize * c.embedDim;
  const recurrent = perLayer.reduce((a, b) => a + b, 0);
  const head = c.tieWeights ? 0 : c.vocabSize * c.hiddenSize + c.vocabSize;
  return { tokenEmbedding, recurrent, perLayer, head, total: tokenEmbedding + recurrent + head };
}

/** Bytes of a recurrent model's carried state per sequence (h, and c for LSTM, of every layer): the counterpart of a KV cache, constant in the context length. */
export function recurrentStateBytes(config: RecurrentLMConfigInput): number {
  const c = resolveRecurrentConfig(config);
  return 4 * c.nLayers * c.hiddenSize * (c.arch === 'lstm' ? 2 : 1);
}

/** Exact parameter count of the model a config describes, by component. */
export function countParameters(config: RecurrentLMConfigInput): RecurrentParameterBreakdown;
export function countParameters(config: TransformerConfigInput): ParameterBreakdown;
export function countParameters(config: ModelConfigInput): ParameterBreakdown | RecurrentParameterBreakdown;
export function countParameters(config: ModelConfigInput): ParameterBreakdown | RecurrentParameterBreakdown {
  if (isRecurrentConfig(config)) return countRecurrentParameters(config);
  const c = resolveConfig(config);
  if (layerCounts(c).mamba > 0) return countWithMamba(c);
  const d = c.dModel;
  const kv = c.nKvHeads * (d / c.nHeads);
  const b = c.bias ? 1 : 0;
  // wq [d, d], wk/wv [kv, d], wo [d, d], biases d, kv, kv, d (MLA: mlaAttentionParameters).
  const attention = c.mla ? mlaAttentionParameters(c) : 2 * d * d + 2 * d * kv + b * (2 * d + 2 * kv);
  // One feed-forward of hidden width w: SwiGLU w1, w3 [w, d], w2 [d, w]; GELU w1, w2; biases w (, w), d.
  const mlp = (w: number) => (c.mlp === 'swiglu' ? 3 * d * w + b * (2 * w + d) : 2 * d * w + b * (w + d));
  const moe = c.moe;
  // MoE: the router [E, d], E experts of width dExpert and the shared experts as one FFN of width nShared·dExpert.
  const ffn = moe ? d * moe.nExperts + moe.nExperts * mlp(moe.dExpert) + (moe.nSharedExperts > 0 ? mlp(moe.nSharedExperts * moe.dExpert) : 0) : mlp(c.dFF);
  // Each token runs topK of the E routed experts: the others' weights are not active for it.
  const inactivePerLayer = moe ? (moe.nExperts - moe.topK) * mlp(moe.dExpert) : 0;
  const layerNorms = 2 * normParams(c);
  const perLayer = { attention, ffn, norms: layerNorms, total: attention + ffn + layerNorms };
  const tokenEmbedding = c.vocabSize * d;
  const positionEmbedding = c.pos === 'learned' ? c.maxSeqLen * d : 0;
  const finalNorm = c.normPlacement === 'pre' ? normParams(c) : 0;
  const head = c.tieWeights ? 0 : c.vocabSize * d;
  const out = {
    embedding: tokenEmbedding + positionEmbedding,
    tokenEmbedding,
    positionEmbedding,
    attention: c.nLayers * attention,
    ffn: c.nLayers * ffn,
    norms: c.nLayers * layerNorms + finalNorm,
    head,
    perLayer,
    total: 0,
    active: 0,
    mamba: 0,
  };
  out.total = out.embedding + out.attention + out.ffn + out.norms + out.head;
  out.active = out.total - c.nLayers * inactivePerLayer;
  return out;
}

export type TrainingDType = 'fp32' | 'bf16';

export interface MemoryOptions {
  /** Sequences per batch; default 1. */
  batch?: number;
  /** Tokens per sequence; default maxSeqLen. */
  seq?: number;
  /** fp32 everywhere, or bf16 mixed precision with fp32 master weights and AdamW states. Default fp32. */
  dtype?: TrainingDType;
}

export interface MemoryEstimate {
  batch: number;
  seq: number;
  dtype: TrainingDType;
  parameters: number;
  /** Bytes: the model weights (bf16: the bf16 working copy plus the fp32 master copy). */
  weights: number;
  /** Bytes: one gradient per parameter (fp32, or bf16). */
  gradients: number;
  /** Bytes: AdamW's two fp32 moments per parameter. */
  optimizer: number;
  /** Bytes: activations the autograd graph keeps for backward after one forward pass. */
  activations: number;
  /** Activation elements, split as per-token terms and the attention-score (T²) terms. */
  activationElements: { perLayerPerToken: number; scoresPerLayerPerSequence: number; modelPerToken: number; total: number };
  total: number;
}

/**
 * Activation elements kept by the autograd graph, following what TransformerLM allocates in forward
 * (every op output that is not a view stays alive until backward). See docs/models.md.
 */
export function activationElements(config: TransformerConfigInput, batch: number, seq: number): MemoryEstimate['activationElements'] {
  const c = resolveConfig(config);
  const counts = layerCounts(c);
  if (counts.mamba > 0 && c.mamba) {
    // Attention layers as in a one-layer model; a Mamba layer per token (nn/mamba.ts): norm input
    // and output, inProj (2·Din), conv and SiLU outputs, xProj (dtRank + 2N), dtProj and softplus
    // (Din each), B and C copies (2N), the scan output, SiLU(z) and the product (Din each), outProj;
    // dropout adds a mask and an output. The scan recomputes its states in backward, so none are kept.
    const one = activationElements({ ...c, nLayers: 1, layerTypes: null, mamba: null }, batch, seq);
    const d = c.dModel;
    const din = c.mamba.expand * d;
    const mambaPerToken = 2 * d + 2 * din + 2 * din + (c.mamba.dtRank + 2 * c.mamba.dState) + 2 * din + 2 * c.mamba.dState + 3 * din + d + (c.dropout > 0 ? 2 * d : 0);
    const total = batch * seq * (counts.attention * one.perLayerPerToken + counts.mamba * mambaPerToken + one.modelPerToken) + batch * counts.attention * one.scoresPerLayerPerSequence;
    return { perLayerPerToken: one.perLayerPerToken, scoresPerLayerPerSequence: one.scoresPerLayerPerSequence, modelPerToken: one.modelPerToken, total };
  }
  const d = c.dModel;
  const f = c.dFF;
  const kv = c.nKvHeads * (d / c.nHeads);
  const drop = c.dropout > 0 ? 1 : 0;
  const rope = c.pos === 'rope' ? 1 : 0;
  // Projections run their bias inside the GEMM (ops/linear.ts): one output each, bias or not.
  const attention = c.mla
    ? mlaAttentionActivations(c)
    : 2 * d + // norm input (the residual stream) and norm output
    (d + 2 * kv) + // q, k, v projections
    rope * (d + kv) + // rotated (and, for q, scaled) q and k
    (1 - rope) * d + // q scaled by 1/√D (regrouped for GQA in the same copy)
    2 * d + // attention output and its head-merged copy
    d + // wo
    drop * 2 * d; // residual dropout mask and output
  const inner = (w: number) => (c.mlp === 'swiglu' ? 4 * w : 2 * w); // SwiGLU: w1, w3, silu, product; GELU: w1, gelu
  const moe = c.moe;
  // MoE (nn/moe.ts) per token: router logits and scores (E each); for each of its k experts the
  // gathered input row, the expert's inner activations and output, the concatenation of the
  // experts' outputs and the weighted rows; the combined row; the shared experts' and their sum.
  const ffnBody = moe
    ? 2 * moe.nExperts + moe.topK * (4 * d + inner(moe.dExpert)) + d + (moe.nSharedExperts > 0 ? inner(moe.nSharedExperts * moe.dExpert) + 2 * d : 0)
    : inner(f) + d;
  const ffn = 2 * d + ffnBody + drop * 2 * d;
  const perLayerPerToken = attention + ffn;
  // Scores and probabilities [H, T, T] per sequence (plus the dropout mask and output).
  const scoresPerLayerPerSequence = (2 + 2 * drop) * c.nHeads * seq * seq;
  const modelPerToken =
    d + // token embeddings
    (c.pos === 'learned' || c.pos === 'sinusoidal' ? d : 0) + // plus positions
    drop * 2 * d + // embedding dropout
    d + // the last block's output (input of the final norm)
    (c.normPlacement === 'pre' ? d : 0) + // final norm output
    c.vocabSize; // logits (kept by the cross-entropy)
  const total = batch * seq * (c.nLayers * perLayerPerToken + modelPerToken) + batch * c.nLayers * scoresPerLayerPerSequence;
  return { perLayerPerToken, scoresPerLayerPerSequence, modelPerToken, total };
}

/**
 * Activation elements a RecurrentLM keeps for backward, following what it allocates: per layer and
 * token the layer input's time-major copy, the gate projections (G), the packed states (h, and c
 * for LSTM) and the saved gate activations (4H, LSTM and GRU); per token the embedding, the
 * output's copy for the head and the logits (dropout adds a mask and an output where it applies).
 */
function recurrentActivationElements(c: RecurrentLMConfig, batch: number, seq: number): MemoryEstimate['activationElements'] {
  const H = c.hiddenSize;
  const G = gateBlocks(c.arch) * H;
  const drop = c.dropout > 0 ? 1 : 0;
  const perLayer = (input: number) => input + G + (c.arch === 'lstm' ? 2 : 1) * H + (c.arch === 'rnn' ? 0 : 4 * H);
  const layers = Array.from({ length: c.nLayers }, (_, l) => perLayer(l === 0 ? c.embedDim : H) + (l < c.nLayers - 1 ? drop * 2 * H : 0));
  const perLayerPerToken = layers.reduce((a, b) => a + b, 0) / c.nLayers;
  const modelPerToken = c.embedDim + drop * 2 * (c.embedDim + H) + H + c.vocabSize;
  const total = batch * seq * (layers.reduce((a, b) => a + b, 0) + modelPerToken);
  return { perLayerPerToken, scoresPerLayerPerSequence: 0, modelPerToken, total };
}

/** What a KV cache (TransformerLM.createCache, DecodeEngine) holds for inference, fp32. */
export interface KVCacheEstimate {
  /** Positions a layer stores per sequence: min(seq, slidingWindow) — a ring once it is full (per-layer windows: the most of any layer). */
  positions: number;
  /** Bytes one more cached token adds to a sequence (k and v of every layer), until the window is full. */
  bytesPerToken: number;
  /**
   * Linear attention's state per sequence (S [Hkv, D, D] and z [Hkv, D] per layer), the same for
   * every length; 0 for softmax attention (whose positions and bytesPerToken are then 0).
   */
  stateBytes: number;
  /** Bytes per sequence: positions × bytesPerToken + stateBytes (per-layer windows: each layer's positions × its share). */
  bytesPerSequence: number;
}

/**
 * The KV cache of one sequence of `seq` tokens (default maxSeqLen): keys and values of nKvHeads ×
 * headDim floats per layer and position, at most slidingWindow positions per layer (the rolling
 * cache). With linear attention no keys or values are kept, only the state, nLayers · nKvHeads ·
 * (headDim² + headDim) floats, independent of `seq`. This is what TransformerLM.createCache(1) and
 * new DecodeEngine(model, 1) allocate.
 */
export function kvCacheBytes(config: TransformerConfigInput, seq?: number): KVCacheEstimate {
  const c = resolveConfig(config);
  const t = seq ?? c.maxSeqLen;
  if (!Number.isInteger(t) || t <= 0) throw new RangeError(`kvCacheBytes: seq must be a positive integer, got ${t}`);
  // Mamba layers keep a constant-size state (stateBytes) instead of keys and values; the attention layers cache as usual.
  const counts = layerCounts(c);
  if (counts.mamba > 0) {
    const stateBytes = mambaStateBytes(c);
    if (counts.attention === 0) return { positions: 0, bytesPerToken: 0, stateBytes, bytesPerSequence: stateBytes };
    const kinds = layerKinds(c);
    const windows = Array.isArray(c.slidingWindow) ? c.slidingWindow.filter((_, l) => kinds[l] === 'attention') : c.slidingWindow;
    const attention = kvCacheBytes({ ...c, nLayers: counts.attention, layerTypes: null, mamba: null, slidingWindow: windows }, t);
    return { ...attention, stateBytes: attention.stateBytes + stateBytes, bytesPerSequence: attention.bytesPerSequence + stateBytes };
  }
  const D = c.dModel / c.nHeads;
  if (c.attention === 'linear') {
    const stateBytes = c.nLayers * c.nKvHeads * (D * D + D) * 4;
    return { positions: 0, bytesPerToken: 0, stateBytes, bytesPerSequence: stateBytes };
  }
  // MLA caches per layer and token only c_KV and the shared rotary key k^R.
  if (c.mla) return { positions: t, bytesPerToken: c.nLayers * (c.mla.kvLoraRank + c.mla.qkRopeHeadDim) * 4, stateBytes: 0, bytesPerSequence: t * c.nLayers * (c.mla.kvLoraRank + c.mla.qkRopeHeadDim) * 4 };
  // Each layer keeps min(t, its window) positions of k and v.
  const layerPositions = layerWindows(c).map((w) => (w === null ? t : Math.min(t, w)));
  const perLayerToken = 2 * c.nKvHeads * D * 4;
  const bytesPerSequence = layerPositions.reduce((sum, n) => sum + n * perLayerToken, 0);
  return { positions: Math.max(...layerPositions), bytesPerToken: c.nLayers * perLayerToken, stateBytes: 0, bytesPerSequence };
}

/** Training memory for AdamW at a batch size, sequence length (default: a transformer's maxSeqLen, 128 for a recurrent model) and precision. */
export function estimateMemory(config: ModelConfigInput, options: MemoryOptions = {}): MemoryEstimate {
  const recurrent = isRecurrentConfig(config) ? resolveRecurrentConfig(config) : null;
  const c = recurrent ?? resolveConfig(config as TransformerConfigInput);
  const batch = options.batch ?? 1;
  const seq = options.seq ?? (recurrent ? 128 : (c as TransformerConfig).maxSeqLen);
  const dtype = options.dtype ?? 'fp32';
  if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`estimateMemory: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(seq) || seq <= 0) throw new RangeError(`estimateMemory: seq must be a positive integer, got ${seq}`);
  if (!recurrent && seq > (c as TransformerConfig).maxSeqLen) throw new RangeError(`estimateMemory: seq ${seq} exceeds maxSeqLen ${(c as TransformerConfig).maxSeqLen}`);
  if (dtype !== 'fp32' && dtype !== 'bf16') throw new Error(`estimateMemory: dtype must be 'fp32' or 'bf16', got '${String(dtype)}'`);
  const p = countParameters(c).total;
  const act = recurrent ? recurrentActivationElements(recurrent, batch, seq) : activationElements(c as TransformerConfig, batch, seq);
  const mixed = dtype === 'bf16';
  const weights = mixed ? (2 + 4) * p : 4 * p;
  const gradients = (mixed ? 2 : 4) * p;
  const optimizer = 8 * p;
  const activations = (mixed ? 2 : 4) * act.total;
  return { batch, seq, dtype, parameters: p, weights, gradients, optimizer, activations, activationElements: act, total: weights + gradients + optimizer + activations };
}

/** 1100048384 → "1,100,048,384". */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Bytes in binary units: "4.10 GiB", "812.0 KiB", "96 B". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** A human-readable report: the count, the breakdown and (optionally) the memory estimate. */
export function describeModel(name: string, config: ModelConfigInput, memory?: MemoryOptions): string {
  const lines = isRecurrentConfig(config) ? describeRecurrent(name, resolveRecurrentConfig(config)) : describeTransformer(name, resolveConfig(config as TransformerConfigInput));
  if (memory) {
    const m = estimateMemory(config, memory);
    const mem = (label: string, bytes: number, note = '') => `  ${label.padEnd(14)}${formatBytes(bytes).padStart(12)}${note ? `  ${note}` : ''}`;
    lines.push(
      `training memory, AdamW, batch ${m.batch} × seq ${m.seq}, ${m.dtype === 'bf16' ? 'bf16 mixed precision (fp32 master weights)' : 'fp32'}:`,
      mem('weights', m.weights, m.dtype === 'bf16' ? '(bf16 copy 2 B + fp32 master 4 B per parameter)' : '(4 B per parameter)'),
      mem('gradients', m.gradients, `(${m.dtype === 'bf16' ? 2 : 4} B per parameter)`),
      mem('AdamW states', m.optimizer, '(fp32 m and v: 8 B per parameter)'),
      mem('activations', m.activations, `(${formatCount(m.activationElements.total)} elements)`),
      mem('total', m.total),
    );
  }
  return lines.join('\n');
}

function breakdownRows(total: number): (label: string, n: number, note?: string) => string {
  const pct = (n: number) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  return (label, n, note = '') => `  ${label.padEnd(14)}${formatCount(n).padStart(16)}  ${pct(n)}${note ? `  ${note}` : ''}`;
}

function describeRecurrent(name: string, c: RecurrentLMConfig): string[] {
  const p = countRecurrentParameters(c);
  const row = breakdownRows(p.total);
  const kind = c.arch === 'lstm' ? 'LSTM' : c.arch === 'gru' ? 'GRU' : `Elman RNN (${c.nonlinearity})`;
  return [
    `${name}: ${formatCount(p.total)} parameters`,
    `  (vocab ${c.vocabSize}, ${kind}, ${c.nLayers} layer${c.nLayers === 1 ? '' : 's'}, embedDim ${c.embedDim}, hiddenSize ${c.hiddenSize}, ${c.tieWeights ? 'tied' : 'untied'} head, no context limit)`,
    row('embedding', p.tokenEmbedding),
    row('recurrence', p.recurrent, `(${p.perLayer.map(formatCount).join(' + ')})`),
    row('output head', p.head, c.tieWeights ? '(tied to the token embedding)' : '(weight and bias)'),
    `  ${'total'.padEnd(14)}${formatCount(p.total).padStart(16)}`,
    `state per sequence: ${formatBytes(recurrentStateBytes(c))} (h${c.arch === 'lstm' ? ' and c' : ''} of ${c.nLayers} layer${c.nLayers === 1 ? '' : 's'}, fp32), whatever the context length`,
  ];
}

function describeTransformer(name: string, c: TransformerConfig): string[] {
  const p = countParameters(c);
  const row = breakdownRows(p.total);
  const lines = [
    `${name}: ${formatCount(p.total)} parameters`,
    `  (vocab ${c.vocabSize}, dModel ${c.dModel}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} kv heads, dFF ${c.dFF}, seq ${c.maxSeqLen}, ${c.norm === 'rms' ? 'RMSNorm' : 'LayerNorm'}, ${c.mlp === 'swiglu' ? 'SwiGLU' : 'GELU MLP'}, ${c.pos} positions, ${c.tieWeights ? 'tied' : 'untied'} head${c.bias ? ', biases' : ''}${c.slidingWindow === null ? '' : `, sliding window ${JSON.stringify(c.slidingWindow)}`}${c.attention === 'linear' ? ', linear attention' : ''})`,
    row('embedding', p.embedding, p.positionEmbedding > 0 ? `(tokens ${formatCount(p.tokenEmbedding)}, positions ${formatCount(p.positionEmbedding)})` : ''),
    row('attention', p.attention, `(${layerCounts(c).attention} × ${formatCount(p.perLayer.attention)})`),
    row('feed-forward', p.ffn, `(${layerCounts(c).attention} × ${formatCount(p.perLayer.ffn)})${c.moe ? `: router + ${c.moe.nExperts} experts of width ${c.moe.dExpert}${c.moe.nSharedExperts > 0 ? ` + ${c.moe.nSharedExperts} shared` : ''}, top-${c.moe.topK} ${c.moe.router}` : ''}`),
    row('norms', p.norms),
    ...(p.mamba > 0 && c.mamba ? [row('mamba mixers', p.mamba, `(${layerCounts(c).mamba} × ${formatCount(mambaMixerParameters(c))}: dState ${c.mamba.dState}, dConv ${c.mamba.dConv}, expand ${c.mamba.expand}, dtRank ${c.mamba.dtRank})`)] : []),
    row('output head', p.head, c.tieWeights ? '(tied to the token embedding)' : ''),
    `  ${'total'.padEnd(14)}${formatCount(p.total).padStart(16)}`,
  ];
  if (c.moe) lines.push(`  ${'active/token'.padEnd(14)}${formatCount(p.active).padStart(16)}  ${((100 * p.active) / p.total).toFixed(1).padStart(5)}%  (each token runs ${c.moe.topK} of ${c.moe.nExperts} experts${c.moe.nSharedExperts > 0 ? ' and the shared ones' : ''})`);
  const kv = kvCacheBytes(c);
  const window = c.slidingWindow === null ? '' : Array.isArray(c.slidingWindow) ? `, per-layer windows ${JSON.stringify(c.slidingWindow)}: a windowed layer keeps a ring of its last W positions` : `, sliding window ${c.slidingWindow}: a ring of the last ${kv.positions} positions`;
  const mambaLayers = layerCounts(c).mamba;
  if (mambaLayers > 0 && c.mamba) {
    const m = c.mamba;
    lines.push(`Mamba state per sequence: ${formatBytes(mambaStateBytes(c))} (${mambaLayers} layers × ${m.expand * c.dModel} channels × (${m.dConv - 1} conv + ${m.dState} SSM) floats, fp32, any length)`);
  }
  if (mambaLayers === c.nLayers) {
    // Pure Mamba: no attention layer, no KV cache.
  } else if (c.mla) {
    const m = c.mla;
    lines.push(`KV cache per sequence: ${formatBytes(kv.bytesPerSequence)} (${formatBytes(kv.bytesPerToken)} per token × ${kv.positions} positions, fp32; multi-head latent attention caches ${c.nLayers} layers × (${m.kvLoraRank} c_KV + ${m.qkRopeHeadDim} k^R) floats per token)`);
  } else if (c.attention === 'linear') {
    lines.push(`Linear-attention state per sequence: ${formatBytes(kv.stateBytes)} (${c.nLayers} layers × ${c.nKvHeads} kv heads × (${c.dModel / c.nHeads}² + ${c.dModel / c.nHeads}) floats, fp32, any length)`);
  } else {
    const shape = Array.isArray(c.slidingWindow) ? `up to ${formatBytes(kv.bytesPerToken)} per token` : `${formatBytes(kv.bytesPerToken)} per token × ${kv.positions} positions`;
    lines.push(`KV cache per sequence: ${formatBytes(kv.bytesPerSequence)} (${shape}, fp32${window})`);
  }
  return lines;
}
