/**
 * TransformerConfig: a plain typed object describing a decoder-only language model, with defaults
 * and a validator. The field names are shared with tools/bench/torch_bench.py (the PyTorch mirror).
 */
import type { RopePairing } from '../ops/rotary.js';
import type { MlpKind, NormKind, NormPlacement } from '../nn/transformer.js';
import { escapeControls } from '../io/json.js';
import { resolveMla, type MlaConfig, type MlaConfigInput } from '../nn/mla.js';

/** A value for a config error message: short (a string cut to 40 characters), one line, never "[object Object]". */
function shown(value: unknown): string {
  if (typeof value === 'string') {
    const text = escapeControls(value);
    return text.length > 40 ? `${text.slice(0, 40)}…` : text;
  }
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (value !== null && typeof value === 'object') return 'an object';
  return String(value);
}

export type { MlpKind, NormKind, NormPlacement } from '../nn/transformer.js';
export type { MlaConfig, MlaConfigInput } from '../nn/mla.js';
export type PosKind = 'learned' | 'sinusoidal' | 'rope';
/** Softmax attention, or causal linear attention (elu + 1 feature map; ops/linear-attention.ts). */
export type AttentionKind = 'softmax' | 'linear';

/**
 * A mixture-of-experts feed-forward layer in every block (nn/moe.ts): `nExperts` experts of
 * width `dExpert`, each token routed to its `topK`, plus `nSharedExperts` always-on experts.
 */
export interface MoeConfig {
  nExperts: number;
  topK: number;
  /** Hidden width of each expert (SwiGLU or GELU, as `mlp`); default the config's dFF / topK, so the active FFN width per token is dFF. */
  dExpert: number;
  /** Always-on experts of width dExpert (DeepSeekMoE); default 0. */
  nSharedExperts: number;
  /** 'softmax' (Switch, Mixtral; default) or 'sigmoid' (DeepSeek-V3) router scores. */
  router: 'softmax' | 'sigmoid';
  /** Renormalise each token's top-k weights to sum 1; default topK > 1 (Mixtral), top-1 keeps the probability (Switch). */
  normalizeTopK: boolean;
  /** Weight of the load-balancing loss in the training objective (Switch's α = 0.01, the default). */
  auxLossWeight: number;
  /** Weight of the router z-loss (ST-MoE's 1e-3, the default). */
  zLossWeight: number;
}

export type MoeConfigInput = Pick<MoeConfig, 'nExperts' | 'topK'> & Partial<MoeConfig>;

const MOE_KEYS: readonly (keyof MoeConfig)[] = ['nExperts', 'topK', 'dExpert', 'nSharedExperts', 'router', 'normalizeTopK', 'auxLossWeight', 'zLossWeight'];

/**
 * How μP treats weight decay of the hidden matrices, whose Adam LR is divided by m:
 * - 'with-lr': the decay is multiplied by m, so lr·weightDecay — the fraction AdamW removes per
 *   step — stays what it is at the base width (microsoft/mup's MuAdam/MuAdamW default,
 *   `decoupled_wd=False`): the decay's time scale 1/(lr·wd) transfers across widths.
 * - 'independent': the decay is left as given (EleutherAI nanoGPT-mup), so a hidden matrix's
 *   per-step shrink lr·wd/m gets weaker as the model widens.
 */
export type MupWeightDecay = 'with-lr' | 'independent';

/**
 * μP (maximal update parametrization, Yang et al. 2022, "Tensor Programs V", Table 3 / Table 8)
 * relative to a base model: m = dModel / baseWidth, and at m = 1 the model is exactly the standard
 * one. The rules themselves are implemented (and documented rule by rule) in models/mup.ts,
 * TransformerLM (init, multipliers) and nn/attention.ts (logit scale).
 */
export interface MupConfig {
  /** dModel of the base model the hyperparameters were tuned at (m = dModel / baseWidth). */
  baseWidth: number;
  /**
   * dFF of the base model. Default dFF·baseWidth/dModel: the FFN widens with the model (dFF/dModel
   * fixed), so the FFN's fan-in ratio (w2's) is m too. Give it to widen the FFN by its own ratio.
   */
  baseFFWidth: number;
  /**
   * Head dim of the base model; attention logits are scaled by √baseHeadDim / headDim (1/d_head,
   * normalised so the base reproduces 1/√d_head). Default baseWidth / nHeads: the head count stays
   * fixed as the width grows and each head widens (TP5's setting, where 1/d_head matters). To
   * widen by adding heads of a fixed size instead, set it to that head size (the scale is then
   * 1/√d_head at every width).
   */
  baseHeadDim: number;
  /** α_in: the input embeddings (token + position) are multiplied by it. */
  inputMultiplier: number;
  /** α_out: the final hidden state is multiplied by α_out/m before the readout (tied or not). */
  outputMultiplier: number;
  /** Start the query projection at zero (TP5 §D.2 recommends it: attention is uniform at init). */
  zeroInitQuery: boolean;
  /** Start the (untied) readout at zero; a tied readout is the embedding, which cannot be zero. */
  zeroInitReadout: boolean;
  /** Weight decay of the hidden matrices; see MupWeightDecay. */
  weightDecay: MupWeightDecay;
}

/** What a caller gives for `mup`: the base width, the rest defaults. */
export type MupConfigInput = Pick<MupConfig, 'baseWidth'> & Partial<MupConfig>;

const MUP_KEYS: readonly (keyof MupConfig)[] = ['baseWidth', 'baseFFWidth', 'baseHeadDim', 'inputMultiplier', 'outputMultiplier', 'zeroInitQuery', 'zeroInitReadout', 'weightDecay'];

export interface TransformerConfig {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads: nHeads is MHA, 1 is MQA, a divisor in between is GQA. */
  nKvHeads: number;
  /** Hidden width of the feed-forward layer. */
  dFF: number;
  /** Longest sequence (size of the position tables and the default KV cache). */
  maxSeqLen: number;
  norm: NormKind;
  mlp: MlpKind;
  pos: PosKind;
  /** RoPE frequency base θ. */
  ropeTheta: number;
  /** RoPE feature pairing; 'half' reads Hugging Face Llama checkpoints as they are. */
  ropePairing: RopePairing;
  /** The output head reuses the token embedding matrix. */
  tieWeights: boolean;
  /** Biases in every Linear and LayerNorm (RMSNorm never has one). */
  bias: boolean;
  /** Dropout on embeddings, attention probabilities and residual branches (training only). */
  dropout: number;
  /** Normalisation eps; default 1e-5 for LayerNorm, 1e-6 for RMSNorm. */
  normEps: number;
  /** Pre-norm (GPT-2, Llama) or post-norm (the original Transformer; no final norm). */
  normPlacement: NormPlacement;
  /** Std of the normal initialisation of linears and embeddings (residual projections get initStd/√(2·nLayers)). */
  initStd: number;
  /** μP relative to a base width, or null for the standard parametrization (the default). */
  mup: MupConfig | null;
  /**
   * Sliding-window (local causal) attention: key j is visible from query i iff i − W < j ≤ i (the
   * token itself and the W − 1 before it; Hugging Face Mistral's `sliding_window`). A number is
   * the window of every layer; an array gives each layer its own (null: full attention there —
   * Gemma 2's alternating local and global layers, or Mistral's every layer). Null (the default)
   * is full causal attention; W ≥ maxSeqLen behaves like it. The KV cache of a windowed layer
   * keeps min(W, maxSeqLen) positions (a ring). layerWindows(config) gives the per-layer list.
   */
  slidingWindow: number | null | (number | null)[];
  /**
   * 'softmax' (the default) or 'linear': causal linear attention (Katharopoulos et al. 2020,
   * φ(x) = elu(x) + 1, no 1/√D scale, normaliser eps 1e-6), whose cache is a constant-size state
   * (S [B, Hkv, D, D], z [B, Hkv, D]) per layer instead of growing keys and values. Not with pos
   * 'rope' (RoPE before φ is not implemented) or a slidingWindow.
   */
  attention: AttentionKind;
  /**
   * The selective state-space (Mamba, Gu & Dao 2023) mixer's sizes for 'mamba' layers
   * (nn/mamba.ts), or null (the default: no Mamba layers). See MambaConfig.
   */
  mamba: MambaConfig | null;
  /**
   * Each layer's kind, nLayers entries: 'attention' (a TransformerBlock) or 'mamba' (a MambaBlock:
   * x + mixer(norm(x)), no feed-forward sublayer); a mixed list is a hybrid. Null (the default):
   * every layer 'mamba' when `mamba` is set, else every layer 'attention' (layerKinds resolves it).
   */
  layerTypes: LayerType[] | null;
  /**
   * A mixture of experts instead of the dense feed-forward layer (MoeConfig), or null (the
   * default). Training adds auxLossWeight·(load-balancing loss) + zLossWeight·(z-loss), each
   * averaged over the layers, to the cross-entropy (TransformerLM.forward in training mode).
   */
  moe: MoeConfig | null;
  /**
   * Multi-head latent attention (DeepSeek-V2, nn/mla.ts) in every layer, or null (the default).
   * Its KV cache keeps per token and layer only the latent c_KV and the shared rotary key k^R:
   * kvLoraRank + qkRopeHeadDim floats. Given as any subset of MlaConfig ({} for DeepSeek-V2's
   * proportions to the head dim, see mlaDefaults); needs pos 'rope', softmax attention, no
   * slidingWindow, nKvHeads = nHeads and no mup.
   */
  mla: MlaConfig | null;
}

/** Fields of a config to override, with `mup` as its input form (base width, the rest defaulted). */
export type TransformerConfigOverrides = Omit<Partial<TransformerConfig>, 'mup' | 'moe' | 'mla' | 'mamba'> & { mup?: MupConfigInput | null; moe?: MoeConfigInput | null; mla?: MlaConfigInput | null; mamba?: Partial<MambaConfig> | null };

/** What a caller must give; everything else has a default. */
export type TransformerConfigInput = Pick<TransformerConfig, 'vocabSize' | 'dModel' | 'nLayers' | 'nHeads' | 'maxSeqLen'> & TransformerConfigOverrides;

/** A layer of TransformerLM: attention + feed-forward, or a Mamba (selective SSM) block. */
export type LayerType = 'attention' | 'mamba';

/** Sizes of a Mamba mixer (Gu & Dao 2023 §3.4, the reference implementation's names in camelCase). */
export interface MambaConfig {
  /** N: the SSM state size per channel (default 16). */
  dState: number;
  /** Kernel width of the causal depthwise convolution (default 4). */
  dConv: number;
  /** Din = expand·dModel, the inner width (default 2). */
  expand: number;
  /** Rank of Δ's low-rank projection (default ⌈dModel/16⌉). */
  dtRank: number;
}

const MAMBA_KEYS: readonly (keyof MambaConfig)[] = ['dState', 'dConv', 'expand', 'dtRank'];

/** Every layer's kind: config.layerTypes, or its default (all 'mamba' with config.mamba, else all 'attention'). */
export function layerKinds(c: TransformerConfig): LayerType[] {
  return c.layerTypes ? c.layerTypes.slice() : Array.from({ length: c.nLayers }, () => (c.mamba ? 'mamba' : 'attention'));
}

const KEYS: readonly (keyof TransformerConfig)[] = [
  'vocabSize',
  'dModel',
  'nLayers',
  'nHeads',
  'nKvHeads',
  'dFF',
  'maxSeqLen',
  'norm',
  'mlp',
  'pos',
  'ropeTheta',
  'ropePairing',
  'tieWeights',
  'bias',
  'dropout',
  'normEps',
  'normPlacement',
  'initStd',
  'mup',
  'slidingWindow',
  'attention',
  'mamba',
  'layerTypes',
  'moe',
  'mla',
];

function closestKey(key: string): string | null {
  const lower = key.toLowerCase();
  for (const k of KEYS) if (k.toLowerCase() === lower || k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase())) return k;
  return null;
}

/**
 * Fills in defaults and validates; throws one Error listing every problem, e.g.
 * "dModel 250 is not divisible by nHeads 8" or "nHeads 8 not divisible by nKvHeads 3".
 * Defaults: nKvHeads = nHeads, dFF = 4·dModel, norm 'layer', mlp 'gelu', pos 'learned',
 * ropeTheta 10000, ropePairing 'half', tieWeights true, bias true, dropout 0, normEps 1e-5
 * (layer) / 1e-6 (rms), normPlacement 'pre', initStd 0.02, mup null (see resolveMup for its defaults),
 * slidingWindow null, attention 'softmax', moe null (see resolveMoe), mla null (see resolveMla in nn/mla.ts). A missing key takes its default, so configs saved before a key existed
 * (checkpoints' config.json) still resolve.
 */
export function resolveConfig(input: TransformerConfigInput): TransformerConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError('TransformerConfig: expected an object');
  const problems: string[] = [];
  for (const key of Object.keys(input)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      const near = closestKey(key);
      problems.push(`unknown config key '${key}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
  }
  const norm = input.norm ?? 'layer';
  const c: TransformerConfig = {
    vocabSize: input.vocabSize,
    dModel: input.dModel,
    nLayers: input.nLayers,
    nHeads: input.nHeads,
    nKvHeads: input.nKvHeads ?? input.nHeads,
    dFF: input.dFF ?? 4 * input.dModel,
    maxSeqLen: input.maxSeqLen,
    norm,
    mlp: input.mlp ?? 'gelu',
    pos: input.pos ?? 'learned',
    ropeTheta: input.ropeTheta ?? 10000,
    ropePairing: input.ropePairing ?? 'half',
    tieWeights: input.tieWeights ?? true,
    bias: input.bias ?? true,
    dropout: input.dropout ?? 0,
    normEps: input.normEps ?? (norm === 'rms' ? 1e-6 : 1e-5),
    normPlacement: input.normPlacement ?? 'pre',
    initStd: input.initStd ?? 0.02,
    mup: null,
    slidingWindow: input.slidingWindow ?? null,
    attention: input.attention ?? 'softmax',
    mamba: null,
    layerTypes: input.layerTypes ?? null,
    moe: null,
    mla: null,
  };
  const positiveInts: (keyof TransformerConfig)[] = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'dFF', 'maxSeqLen'];
  for (const key of positiveInts) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${shown(v)}`);
  }
  const ints = positiveInts.every((k) => Number.isInteger(c[k]) && (c[k] as number) > 0);
  if (ints) {
    if (c.dModel % c.nHeads !== 0) problems.push(`dModel ${c.dModel} is not divisible by nHeads ${c.nHeads}`);
    if (c.nHeads % c.nKvHeads !== 0) problems.push(`nHeads ${c.nHeads} not divisible by nKvHeads ${c.nKvHeads}`);
    if (c.pos === 'rope' && c.dModel % c.nHeads === 0 && (c.dModel / c.nHeads) % 2 !== 0) {
      problems.push(`pos 'rope' needs an even head dim, got dModel ${c.dModel} / nHeads ${c.nHeads} = ${c.dModel / c.nHeads}`);
    }
    if (c.pos === 'sinusoidal' && c.dModel % 2 !== 0) problems.push(`pos 'sinusoidal' needs an even dModel, got ${c.dModel}`);
  }
  const oneOf = (key: keyof TransformerConfig, allowed: readonly string[]) => {
    if (!allowed.includes(c[key] as string)) problems.push(`${key} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got '${shown(c[key])}'`);
  };
  oneOf('norm', ['layer', 'rms']);
  oneOf('mlp', ['gelu', 'swiglu']);
  oneOf('pos', ['learned', 'sinusoidal', 'rope']);
  oneOf('ropePairing', ['half', 'interleaved']);
  oneOf('normPlacement', ['pre', 'post']);
  oneOf('attention', ['softmax', 'linear']);
  if (c.attention === 'linear') {
    // RoPE would have to rotate q and k before φ, which no reference checks yet; positions go in the embeddings instead.
    if (c.pos === 'rope') problems.push(`attention 'linear' does not take pos 'rope' (use 'learned' or 'sinusoidal')`);
    if (hasWindow(c)) problems.push(`attention 'linear' cannot be combined with slidingWindow ${shown(c.slidingWindow)} (its state sums over every earlier token)`);
  }
  for (const key of ['tieWeights', 'bias'] as const) if (typeof c[key] !== 'boolean') problems.push(`${key} must be true or false, got ${shown(c[key])}`);
  if (!(typeof c.dropout === 'number' && c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${shown(c.dropout)}`);
  if (!(typeof c.ropeTheta === 'number' && c.ropeTheta > 0)) problems.push(`ropeTheta must be positive, got ${shown(c.ropeTheta)}`);
  if (!(typeof c.normEps === 'number' && c.normEps >= 0)) problems.push(`normEps must be non-negative, got ${shown(c.normEps)}`);
  if (!(typeof c.initStd === 'number' && c.initStd >= 0)) problems.push(`initStd must be non-negative, got ${shown(c.initStd)}`);
  const w = c.slidingWindow;
  const isWindow = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  if (Array.isArray(w)) {
    if (w.length !== c.nLayers) problems.push(`slidingWindow as a list needs one entry per layer (nLayers ${shown(c.nLayers)}), got ${w.length}`);
    else if (!w.every((v) => v === null || isWindow(v))) problems.push(`slidingWindow's entries must be positive integers or null (full attention in that layer), got [${w.map((v) => shown(v)).join(', ')}]`);
    else c.slidingWindow = Object.freeze(w.slice()) as (number | null)[];
  } else if (w !== null && !isWindow(w)) {
    problems.push(`slidingWindow must be a positive integer (the number of tokens each query sees, itself included), a list of one per layer, or null, got ${shown(w)}`);
  }
  if (input.mup !== undefined && input.mup !== null) c.mup = resolveMup(input.mup, c, problems);
  if (input.moe !== undefined && input.moe !== null) c.moe = resolveMoe(input.moe, c, problems);
  // μP's per-matrix fan-in rules (models/mup.ts) know the dense FFN's width only.
  if (c.moe !== null && c.mup !== null) problems.push('moe cannot be combined with mup yet (the experts\' μP fan-in multipliers are not defined)');
  if (input.mla !== undefined && input.mla !== null) {
    c.mla = resolveMla(input.mla, c.dModel, c.nHeads, problems);
    // The combinations MLA does not implement, one line each.
    if (c.pos !== 'rope') problems.push(`mla needs pos 'rope' (its decoupled key k^R is rotary), got pos '${shown(c.pos)}'`);
    if (c.attention !== 'softmax') problems.push(`mla cannot be combined with attention '${shown(c.attention)}' (MLA is softmax attention)`);
    if (hasWindow(c)) problems.push(`mla cannot be combined with slidingWindow ${shown(c.slidingWindow)} (not implemented)`);
    if (c.nKvHeads !== c.nHeads) problems.push(`mla needs nKvHeads = nHeads (every head decompresses its own keys and values from the shared latent), got nKvHeads ${shown(c.nKvHeads)} and nHeads ${shown(c.nHeads)}`);
    if (c.mup !== null) problems.push('mla cannot be combined with mup (no μP rules for the latent projections yet)');
  }
  if (input.mamba !== undefined && input.mamba !== null) c.mamba = resolveMamba(input.mamba, c.dModel, problems);
  checkLayerTypes(c, problems);
  if (problems.length > 0) throw new Error(`TransformerConfig: ${problems.join('; ')}`);
  return c;
}

/**
 * Fills μP defaults (baseFFWidth = dFF·baseWidth/dModel, baseHeadDim = baseWidth/nHeads,
 * multipliers 1, no zero init, weightDecay 'with-lr') and pushes every problem onto `problems`.
 * The result is frozen: a model's config never changes under it.
 */
function resolveMup(input: MupConfigInput, c: TransformerConfig, problems: string[]): MupConfig {
  if (typeof input !== 'object' || Array.isArray(input)) {
    problems.push(`mup must be an object like { baseWidth: 128 } or null, got ${shown(input)}`);
    return input as MupConfig;
  }
  for (const key of Object.keys(input)) {
    if (!(MUP_KEYS as readonly string[]).includes(key)) problems.push(`unknown mup key '${key}' (known: ${MUP_KEYS.join(', ')})`);
  }
  const baseWidth = input.baseWidth;
  const m: MupConfig = {
    baseWidth,
    baseFFWidth: input.baseFFWidth ?? (c.dFF * baseWidth) / c.dModel,
    baseHeadDim: input.baseHeadDim ?? baseWidth / c.nHeads,
    inputMultiplier: input.inputMultiplier ?? 1,
    outputMultiplier: input.outputMultiplier ?? 1,
    zeroInitQuery: input.zeroInitQuery ?? false,
    zeroInitReadout: input.zeroInitReadout ?? false,
    weightDecay: input.weightDecay ?? 'with-lr',
  };
  if (typeof baseWidth !== 'number' || !Number.isInteger(baseWidth) || baseWidth <= 0) problems.push(`mup.baseWidth must be a positive integer (the base model's dModel), got ${shown(baseWidth)}`);
  for (const key of ['baseFFWidth', 'baseHeadDim'] as const) {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) problems.push(`mup.${key} must be a positive number, got ${shown(v)}`);
  }
  for (const key of ['inputMultiplier', 'outputMultiplier'] as const) {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) problems.push(`mup.${key} must be a positive number, got ${shown(v)}`);
  }
  for (const key of ['zeroInitQuery', 'zeroInitReadout'] as const) if (typeof m[key] !== 'boolean') problems.push(`mup.${key} must be true or false, got ${shown(m[key])}`);
  if (m.weightDecay !== 'with-lr' && m.weightDecay !== 'independent') problems.push(`mup.weightDecay must be 'with-lr' or 'independent', got '${shown(m.weightDecay)}'`);
  if (m.zeroInitReadout === true && c.tieWeights) problems.push('mup.zeroInitReadout needs an untied readout (tieWeights: false): the tied readout is the token embedding, which would zero the input too');
  return Object.freeze(m);
}

/** Fills MoE defaults (see MoeConfig) and pushes every problem onto `problems`; the result is frozen. */
function resolveMoe(input: MoeConfigInput, c: TransformerConfig, problems: string[]): MoeConfig {
  if (typeof input !== 'object' || Array.isArray(input)) {
    problems.push(`moe must be an object like { nExperts: 8, topK: 2 } or null, got ${shown(input)}`);
    return input as MoeConfig;
  }
  for (const key of Object.keys(input)) if (!(MOE_KEYS as readonly string[]).includes(key)) problems.push(`unknown moe key '${key}' (known: ${MOE_KEYS.join(', ')})`);
  const { nExperts, topK } = input;
  const m: MoeConfig = {
    nExperts,
    topK,
    dExpert: input.dExpert ?? (Number.isInteger(topK) && topK > 0 ? Math.max(1, Math.round(c.dFF / topK)) : c.dFF),
    nSharedExperts: input.nSharedExperts ?? 0,
    router: input.router ?? 'softmax',
    normalizeTopK: input.normalizeTopK ?? topK > 1,
    auxLossWeight: input.auxLossWeight ?? 0.01,
    zLossWeight: input.zLossWeight ?? 1e-3,
  };
  for (const [key, min] of [['nExperts', 1], ['topK', 1], ['dExpert', 1], ['nSharedExperts', 0]] as const) {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) problems.push(`moe.${key} must be an integer ≥ ${min}, got ${shown(v)}`);
  }
  if (Number.isInteger(m.topK) && Number.isInteger(m.nExperts) && m.topK > m.nExperts) problems.push(`moe.topK ${m.topK} exceeds moe.nExperts ${m.nExperts}`);
  if (m.router !== 'softmax' && m.router !== 'sigmoid') problems.push(`moe.router must be 'softmax' or 'sigmoid', got '${shown(m.router)}'`);
  if (typeof m.normalizeTopK !== 'boolean') problems.push(`moe.normalizeTopK must be true or false, got ${shown(m.normalizeTopK)}`);
  for (const key of ['auxLossWeight', 'zLossWeight'] as const) {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) problems.push(`moe.${key} must be a non-negative number, got ${shown(v)}`);
  }
  return Object.freeze(m);
}

/** Fills Mamba defaults (dState 16, dConv 4, expand 2, dtRank ⌈dModel/16⌉) and pushes every problem onto `problems`; the result is frozen. */
function resolveMamba(input: Partial<MambaConfig>, dModel: number, problems: string[]): MambaConfig {
  if (typeof input !== 'object' || Array.isArray(input)) {
    problems.push(`mamba must be an object like { dState: 16 } (or {} for the defaults) or null, got ${shown(input)}`);
    return input as MambaConfig;
  }
  for (const key of Object.keys(input)) if (!(MAMBA_KEYS as readonly string[]).includes(key)) problems.push(`unknown mamba key '${key}' (known: ${MAMBA_KEYS.join(', ')})`);
  const m: MambaConfig = {
    dState: input.dState ?? 16,
    dConv: input.dConv ?? 4,
    expand: input.expand ?? 2,
    dtRank: input.dtRank ?? Math.ceil(dModel / 16),
  };
  for (const key of MAMBA_KEYS) {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`mamba.${key} must be a positive integer, got ${shown(v)}`);
  }
  return Object.freeze(m);
}

/** layerTypes: nLayers entries of 'attention' or 'mamba'; 'mamba' layers need `mamba` and pre-norm. */
function checkLayerTypes(c: TransformerConfig, problems: string[]): void {
  const types = c.layerTypes;
  if (types !== null) {
    if (!Array.isArray(types)) {
      problems.push(`layerTypes must be an array of 'attention' | 'mamba' (one per layer) or null, got ${shown(types)}`);
      return;
    }
    if (types.length !== c.nLayers) problems.push(`layerTypes has ${types.length} entries, expected nLayers = ${shown(c.nLayers)}`);
    const bad = types.findIndex((t) => t !== 'attention' && t !== 'mamba');
    if (bad >= 0) problems.push(`layerTypes[${bad}] must be 'attention' or 'mamba', got '${shown(types[bad])}'`);
    if (types.includes('mamba') && c.mamba === null) problems.push(`layerTypes has 'mamba' layers but mamba is null (give mamba: {} for the default sizes)`);
  }
  if (c.mamba !== null && (types === null || types.includes('mamba'))) {
    if (c.normPlacement === 'post') problems.push("'mamba' layers are pre-norm only (x + mixer(norm(x))), got normPlacement 'post'");
    if (c.mup !== null) problems.push('mamba layers cannot be combined with mup (no μP rules for the SSM parameters yet)');
    // A window list names the attention layers' windows; a Mamba layer has none to give.
    const w = c.slidingWindow;
    if (Array.isArray(w) && w.length === c.nLayers && Array.isArray(types) && types.length === c.nLayers) {
      const bad = types.findIndex((t, i) => t === 'mamba' && w[i] !== null);
      if (bad >= 0) problems.push(`slidingWindow[${bad}] must be null: layer ${bad} is a 'mamba' layer, got ${shown(w[bad])}`);
    }
  }
}

/** Each layer's sliding window (null: full causal attention), from config.slidingWindow. */
export function layerWindows(c: Pick<TransformerConfig, 'slidingWindow' | 'nLayers'>): (number | null)[] {
  const w = c.slidingWindow;
  return Array.isArray(w) ? w.slice() : Array.from({ length: c.nLayers }, () => w);
}

/** Whether any layer has a sliding window. */
export function hasWindow(c: Pick<TransformerConfig, 'slidingWindow' | 'nLayers'>): boolean {
  return layerWindows(c).some((w) => w !== null);
}

/** Dimension per attention head. */
export function headDim(c: TransformerConfig): number {
  return c.dModel / c.nHeads;
}

// ---- recurrent language models ------------------------------------------------------------------

/** The recurrence of a RecurrentLM: torch.nn.LSTM, nn.GRU or nn.RNN (Elman). */
export type RecurrentArch = 'lstm' | 'gru' | 'rnn';

/**
 * RecurrentLMConfig: a char-rnn-style language model (models/recurrent.ts) —
 * token embedding → stacked LSTM/GRU/RNN → dropout → linear head. `arch` tells it apart from a
 * TransformerConfig wherever a run's model config is read.
 */
export interface RecurrentLMConfig {
  arch: RecurrentArch;
  vocabSize: number;
  /** Width of the token embedding (the first layer's input). */
  embedDim: number;
  hiddenSize: number;
  nLayers: number;
  /** The Elman RNN's activation (arch 'rnn' only). */
  nonlinearity: 'tanh' | 'relu';
  /** Dropout on the embeddings, between layers and before the head (training only). */
  dropout: number;
  /** The head is the embedding matrix (needs embedDim = hiddenSize; no head module, no head bias). */
  tieWeights: boolean;
}

export type RecurrentLMConfigInput = Pick<RecurrentLMConfig, 'arch' | 'vocabSize' | 'hiddenSize'> & Partial<RecurrentLMConfig>;

/** Any model config a run can hold. */
export type ModelConfig = TransformerConfig | RecurrentLMConfig;
export type ModelConfigInput = TransformerConfigInput | RecurrentLMConfigInput;
/** Fields of a preset's config to override in a run (`model` in a training config). */
export type ModelConfigOverrides = TransformerConfigOverrides | Partial<RecurrentLMConfig>;

const RECURRENT_KEYS: readonly (keyof RecurrentLMConfig)[] = ['arch', 'vocabSize', 'embedDim', 'hiddenSize', 'nLayers', 'nonlinearity', 'dropout', 'tieWeights'];

/** Whether a config (resolved or input) describes a recurrent model: it names an `arch`. */
export function isRecurrentConfig<C extends ModelConfigInput | ModelConfig>(config: C): config is Extract<C, RecurrentLMConfig | RecurrentLMConfigInput> {
  return typeof config === 'object' && config !== null && (config as { arch?: unknown }).arch !== undefined;
}

/**
 * Fills in defaults (embedDim = hiddenSize, nLayers 1, nonlinearity 'tanh', dropout 0,
 * tieWeights false) and validates; throws one Error listing every problem.
 */
export function resolveRecurrentConfig(input: RecurrentLMConfigInput): RecurrentLMConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError('RecurrentLMConfig: expected an object');
  const problems: string[] = [];
  for (const key of Object.keys(input)) {
    if (!(RECURRENT_KEYS as readonly string[]).includes(key)) problems.push(`unknown config key '${key}' for a recurrent model (known: ${RECURRENT_KEYS.join(', ')})`);
  }
  const c: RecurrentLMConfig = {
    arch: input.arch,
    vocabSize: input.vocabSize,
    embedDim: input.embedDim ?? input.hiddenSize,
    hiddenSize: input.hiddenSize,
    nLayers: input.nLayers ?? 1,
    nonlinearity: input.nonlinearity ?? 'tanh',
    dropout: input.dropout ?? 0,
    tieWeights: input.tieWeights ?? false,
  };
  if (!['lstm', 'gru', 'rnn'].includes(c.arch)) problems.push(`arch must be 'lstm', 'gru' or 'rnn', got '${shown(c.arch)}'`);
  for (const key of ['vocabSize', 'embedDim', 'hiddenSize', 'nLayers'] as const) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${shown(v)}`);
  }
  if (c.nonlinearity !== 'tanh' && c.nonlinearity !== 'relu') problems.push(`nonlinearity must be 'tanh' or 'relu', got '${shown(c.nonlinearity)}'`);
  // A resolved config carries the default 'tanh' whatever the arch; only asking for relu elsewhere is a mistake.
  if (c.arch !== 'rnn' && c.nonlinearity === 'relu') problems.push(`nonlinearity 'relu' is for arch 'rnn' only, got arch '${shown(c.arch)}'`);
  if (!(typeof c.dropout === 'number' && c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${shown(c.dropout)}`);
  if (typeof c.tieWeights !== 'boolean') problems.push(`tieWeights must be true or false, got ${shown(c.tieWeights)}`);
  else if (c.tieWeights && c.embedDim !== c.hiddenSize) problems.push(`tieWeights needs embedDim = hiddenSize, got embedDim ${shown(c.embedDim)} and hiddenSize ${shown(c.hiddenSize)}`);
  if (problems.length > 0) throw new Error(`RecurrentLMConfig: ${problems.join('; ')}`);
  return c;
}

/** Either kind of config, resolved: a recurrent one when it names an `arch`, else a transformer. */
export function resolveModelConfig(input: ModelConfigInput): ModelConfig {
  return isRecurrentConfig(input) ? resolveRecurrentConfig(input) : resolveConfig(input as TransformerConfigInput);
}
