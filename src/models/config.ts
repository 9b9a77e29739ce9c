/**
 * TransformerConfig: a plain typed object describing a decoder-only language model, with defaults
 * and a validator. The field names are shared with tools/bench/torch_bench.py (the PyTorch mirror).
 */
import type { RopePairing } from '../ops/extra.js';
import type { MlpKind, NormKind, NormPlacement } from '../nn/transformer.js';

export type { MlpKind, NormKind, NormPlacement } from '../nn/transformer.js';
export type PosKind = 'learned' | 'sinusoidal' | 'rope';

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
}

/** What a caller must give; everything else has a default. */
export type TransformerConfigInput = Pick<TransformerConfig, 'vocabSize' | 'dModel' | 'nLayers' | 'nHeads' | 'maxSeqLen'> & Partial<TransformerConfig>;

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
 * (layer) / 1e-6 (rms), normPlacement 'pre', initStd 0.02.
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
  };
  const positiveInts: (keyof TransformerConfig)[] = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'dFF', 'maxSeqLen'];
  for (const key of positiveInts) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${String(v)}`);
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
    if (!allowed.includes(c[key] as string)) problems.push(`${key} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got '${String(c[key])}'`);
  };
  oneOf('norm', ['layer', 'rms']);
  oneOf('mlp', ['gelu', 'swiglu']);
  oneOf('pos', ['learned', 'sinusoidal', 'rope']);
  oneOf('ropePairing', ['half', 'interleaved']);
  oneOf('normPlacement', ['pre', 'post']);
  for (const key of ['tieWeights', 'bias'] as const) if (typeof c[key] !== 'boolean') problems.push(`${key} must be true or false, got ${String(c[key])}`);
  if (!(typeof c.dropout === 'number' && c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${String(c.dropout)}`);
  if (!(typeof c.ropeTheta === 'number' && c.ropeTheta > 0)) problems.push(`ropeTheta must be positive, got ${String(c.ropeTheta)}`);
  if (!(typeof c.normEps === 'number' && c.normEps >= 0)) problems.push(`normEps must be non-negative, got ${String(c.normEps)}`);
  if (!(typeof c.initStd === 'number' && c.initStd >= 0)) problems.push(`initStd must be non-negative, got ${String(c.initStd)}`);
  if (problems.length > 0) throw new Error(`TransformerConfig: ${problems.join('; ')}`);
  return c;
}

/** Dimension per attention head. */
export function headDim(c: TransformerConfig): number {
  return c.dModel / c.nHeads;
}
