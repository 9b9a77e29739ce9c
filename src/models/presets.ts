/**
 * Named model configurations (plain data). Parameter counts are exact (see params.ts and
 * docs/models.md): tiny 818,048; nano-trickster 5,180,672; tinyllama-1.1b 1,100,048,384.
 */
import { resolveConfig, type TransformerConfig, type TransformerConfigInput, type TransformerConfigOverrides } from './config.js';

export interface Preset {
  name: string;
  description: string;
  config: TransformerConfigInput;
}

const PRESETS: readonly Preset[] = [
  {
    name: 'tiny',
    description: 'character-level GPT (nanoGPT shakespeare_char scale): trains on 2 CPU cores in minutes',
    config: {
      vocabSize: 65,
      dModel: 128,
      nLayers: 4,
      nHeads: 4,
      nKvHeads: 4,
      dFF: 512,
      maxSeqLen: 128,
      norm: 'layer',
      mlp: 'gelu',
      pos: 'learned',
      tieWeights: true,
      bias: true,
      dropout: 0,
    },
  },
  {
    name: 'nano-trickster',
    description: 'byte-level Llama-style model: RMSNorm, SwiGLU, RoPE, tied embeddings',
    config: {
      vocabSize: 256,
      dModel: 256,
      nLayers: 6,
      nHeads: 8,
      nKvHeads: 8,
      dFF: 768,
      maxSeqLen: 512,
      norm: 'rms',
      mlp: 'swiglu',
      pos: 'rope',
      ropeTheta: 10000,
      tieWeights: true,
      bias: false,
      dropout: 0,
    },
  },
  {
    name: 'tinyllama-1.1b',
    description: 'TinyLlama-1.1B (Llama 2 architecture, GQA 32/4 heads): the real model has 1,100,048,384 parameters',
    config: {
      vocabSize: 32000,
      dModel: 2048,
      nLayers: 22,
      nHeads: 32,
      nKvHeads: 4,
      dFF: 5632,
      maxSeqLen: 2048,
      norm: 'rms',
      normEps: 1e-5,
      mlp: 'swiglu',
      pos: 'rope',
      ropeTheta: 10000,
      ropePairing: 'half',
      tieWeights: false,
      bias: false,
      dropout: 0,
    },
  },
];

/** The names of all presets, in a stable order. */
export const presetNames: readonly string[] = PRESETS.map((p) => p.name);

/** A preset by name (a fresh copy), or an error listing the known names. */
export function getPreset(name: string): Preset {
  const p = PRESETS.find((q) => q.name === name);
  if (!p) throw new Error(`unknown preset '${name}' (known presets: ${presetNames.join(', ')})`);
  return { ...p, config: { ...p.config } };
}

/** The fully resolved config of a preset, with optional overrides (e.g. { dropout: 0.2 }). */
export function presetConfig(name: string, overrides: TransformerConfigOverrides = {}): TransformerConfig {
  return resolveConfig({ ...getPreset(name).config, ...overrides });
}

export function listPresets(): Preset[] {
  return presetNames.map(getPreset);
}

export interface ModelSpec {
  /** A preset name. */
  preset: string;
  /** Fields of the preset to override (vocabSize always comes from the tokenizer). */
  model: TransformerConfigOverrides;
  /** Context length of training windows: at most the model's maxSeqLen. */
  blockSize: number;
  /** Overrides the preset's dropout when given (not null). */
  dropout?: number | null;
}

/**
 * The model config of a training run: a preset, the run's overrides and the tokenizer's
 * vocabulary. Changing only the width keeps the preset's shape: a preset with full multi-head
 * attention stays MHA when only nHeads is given, and a narrower or wider model keeps the preset's
 * FFN ratio (tiny: dFF = 4·dModel) unless dFF is given.
 */
export function buildModelConfig(spec: ModelSpec, vocabSize: number): TransformerConfig {
  const overrides: TransformerConfigOverrides = { ...spec.model, vocabSize };
  if (spec.dropout !== undefined && spec.dropout !== null) overrides.dropout = spec.dropout;
  const base = presetConfig(spec.preset);
  if (overrides.nHeads !== undefined && overrides.nKvHeads === undefined && base.nKvHeads === base.nHeads) overrides.nKvHeads = overrides.nHeads;
  if (overrides.dModel !== undefined && overrides.dFF === undefined && overrides.dModel !== base.dModel) overrides.dFF = Math.max(1, Math.round((base.dFF * overrides.dModel) / base.dModel));
  const model = presetConfig(spec.preset, overrides);
  if (spec.blockSize > model.maxSeqLen) {
    throw new Error(`blockSize ${spec.blockSize} is larger than the model's maxSeqLen ${model.maxSeqLen} (preset '${spec.preset}')`);
  }
  return model;
}
