/**
 * Exact parameter counts and training-memory estimates of a TransformerLM, from its config alone
 * (no weights are allocated, so a 1.1B model costs nothing to inspect). The formulas are in
 * docs/models.md; tests check the counts against allocated models of every config combination.
 */
import { RECURRENT_GATES } from '../ops/recurrent.js';
import {
  isRecurrentConfig,
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
}

function normParams(c: TransformerConfig): number {
  return c.norm === 'layer' && c.bias ? 2 * c.dModel : c.dModel;
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
  const d = c.dModel;
  const kv = c.nKvHeads * (d / c.nHeads);
  const b = c.bias ? 1 : 0;
  // wq [d, d], wk/wv [kv, d], wo [d, d], biases d, kv, kv, d.
  const attention = 2 * d * d + 2 * d * kv + b * (2 * d + 2 * kv);
  const ffn = c.mlp === 'swiglu' ? 3 * d * c.dFF + b * (2 * c.dFF + d) : 2 * d * c.dFF + b * (c.dFF + d);
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
  };
  out.total = out.embedding + out.attention + out.ffn + out.norms + out.head;
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
  const d = c.dModel;
  const f = c.dFF;
  const kv = c.nKvHeads * (d / c.nHeads);
  const drop = c.dropout > 0 ? 1 : 0;
  const rope = c.pos === 'rope' ? 1 : 0;
  // Projections run their bias inside the GEMM (ops/linear.ts): one output each, bias or not.
  const attention =
    2 * d + // norm input (the residual stream) and norm output
    (d + 2 * kv) + // q, k, v projections
    rope * (d + kv) + // rotated (and, for q, scaled) q and k
    (1 - rope) * d + // q scaled by 1/√D (regrouped for GQA in the same copy)
    2 * d + // attention output and its head-merged copy
    d + // wo
    drop * 2 * d; // residual dropout mask and output
  const ffnInner = c.mlp === 'swiglu' ? 4 * f : 2 * f; // SwiGLU: w1, w3, silu, product; GELU: w1, gelu
  const ffn = 2 * d + ffnInner + d + drop * 2 * d;
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
  /** Positions each layer stores per sequence: min(seq, slidingWindow) — a ring once it is full. */
  positions: number;
  /** Bytes one more cached token adds to a sequence (k and v of every layer), until the window is full. */
  bytesPerToken: number;
  /**
   * Linear attention's state per sequence (S [Hkv, D, D] and z [Hkv, D] per layer), the same for
   * every length; 0 for softmax attention (whose positions and bytesPerToken are then 0).
   */
  stateBytes: number;
  /** Bytes per sequence: positions × bytesPerToken + stateBytes. */
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
  const D = c.dModel / c.nHeads;
  if (c.attention === 'linear') {
    const stateBytes = c.nLayers * c.nKvHeads * (D * D + D) * 4;
    return { positions: 0, bytesPerToken: 0, stateBytes, bytesPerSequence: stateBytes };
  }
  const positions = c.slidingWindow === null ? t : Math.min(t, c.slidingWindow);
  const bytesPerToken = 2 * c.nLayers * c.nKvHeads * D * 4;
  return { positions, bytesPerToken, stateBytes: 0, bytesPerSequence: positions * bytesPerToken };
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
    `  (vocab ${c.vocabSize}, dModel ${c.dModel}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} kv heads, dFF ${c.dFF}, seq ${c.maxSeqLen}, ${c.norm === 'rms' ? 'RMSNorm' : 'LayerNorm'}, ${c.mlp === 'swiglu' ? 'SwiGLU' : 'GELU MLP'}, ${c.pos} positions, ${c.tieWeights ? 'tied' : 'untied'} head${c.bias ? ', biases' : ''}${c.slidingWindow === null ? '' : `, sliding window ${c.slidingWindow}`}${c.attention === 'linear' ? ', linear attention' : ''})`,
    row('embedding', p.embedding, p.positionEmbedding > 0 ? `(tokens ${formatCount(p.tokenEmbedding)}, positions ${formatCount(p.positionEmbedding)})` : ''),
    row('attention', p.attention, `(${c.nLayers} × ${formatCount(p.perLayer.attention)})`),
    row('feed-forward', p.ffn, `(${c.nLayers} × ${formatCount(p.perLayer.ffn)})`),
    row('norms', p.norms),
    row('output head', p.head, c.tieWeights ? '(tied to the token embedding)' : ''),
    `  ${'total'.padEnd(14)}${formatCount(p.total).padStart(16)}`,
  ];
  const kv = kvCacheBytes(c);
  const window = c.slidingWindow === null ? '' : `, sliding window ${c.slidingWindow}: a ring of the last ${kv.positions} positions`;
  if (c.attention === 'linear') {
    lines.push(`Linear-attention state per sequence: ${formatBytes(kv.stateBytes)} (${c.nLayers} layers × ${c.nKvHeads} kv heads × (${c.dModel / c.nHeads}² + ${c.dModel / c.nHeads}) floats, fp32, any length)`);
  } else {
    lines.push(`KV cache per sequence: ${formatBytes(kv.bytesPerSequence)} (${formatBytes(kv.bytesPerToken)} per token × ${kv.positions} positions, fp32${window})`);
  }
  return lines;
}
