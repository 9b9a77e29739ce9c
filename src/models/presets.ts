/**
 * Named model configurations (plain data). Parameter counts are exact (see params.ts and
 * docs/models.md): tiny 818,048; nano-trickster and nano-swa 5,180,672; nano-linear 5,311,744
 * (learned positions); nano-mla 5,206,016; nano-mamba 5,321,984; tinyllama-1.1b 1,100,048,384; and the
 * recurrent models sized to tiny's budget (docs/recurrent.md): char-lstm 821,021, char-gru
 * 822,849, char-rnn 818,873.
 */
import {
  isRecurrentConfig,
  resolveConfig,
  resolveModelConfig,
  type ModelConfig,
  type ModelConfigInput,
  type ModelConfigOverrides,
  type TransformerConfig,
  type TransformerConfigInput,
  type TransformerConfigOverrides,
} from './config.js';

export interface Preset {
  name: string;
  description: string;
  config: ModelConfigInput;
}

/** nano-trickster's config, which nano-swa and nano-linear extend. */
const NANO_TRICKSTER: TransformerConfigInput = {
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
};

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
    config: NANO_TRICKSTER,
  },
  {
    name: 'nano-swa',
    description: 'nano-trickster with sliding-window attention (each token sees the last 128 of its 512-token context; the KV cache keeps 128 positions)',
    config: { ...NANO_TRICKSTER, slidingWindow: 128 },
  },
  {
    name: 'nano-moe',
    description: 'nano-trickster with a mixture of experts in every block: 8 SwiGLU experts of width 384, top-2 softmax router (the active feed-forward width per token is 768, as in the dense model)',
    config: { ...NANO_TRICKSTER, moe: { nExperts: 8, topK: 2 } },
  },
  {
    name: 'nano-linear',
    description: 'nano-trickster with causal linear attention (elu + 1 feature map) and learned positions (linear attention takes no RoPE); its cache is a 198 KiB state of any length',
    config: { ...NANO_TRICKSTER, attention: 'linear', pos: 'learned' },
  },
  {
    name: 'nano-mla',
    description:
      'nano-trickster with multi-head latent attention (DeepSeek-V2 proportions: kvLoraRank 4·32, rotary key 16, plain queries): 5,206,016 parameters, and the KV cache keeps 144 floats per token and layer instead of 512 (1.69 MiB per 512-token sequence instead of 6 MiB)',
    config: { ...NANO_TRICKSTER, mla: { kvLoraRank: 128, qLoraRank: null, qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 } },
  },
  {
    name: 'nano-mamba',
    description:
      'nano-trickster-sized pure Mamba (selective state space, Gu & Dao 2023): 12 Mamba blocks (twice the layers, as the paper pairs a Mamba block with half a Transformer block), dState 16, dConv 4, expand 2; no position parameters (the convolution and the recurrence carry the order; pos rope only rotates attention layers, and there are none); 5,321,984 parameters and a 456 KiB state per sequence of any length',
    config: { ...NANO_TRICKSTER, nLayers: 12, mamba: { dState: 16, dConv: 4, expand: 2, dtRank: 16 } },
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
  // char-rnn's models (Karpathy 2015) at the tiny transformer's parameter budget, for the
  // comparison in docs/recurrent.md: 2 layers, embedding as wide as the hidden state, untied head.
  {
    name: 'char-lstm',
    description: 'character-level 2-layer LSTM (char-rnn) with about the parameters of tiny',
    config: { arch: 'lstm', vocabSize: 65, embedDim: 222, hiddenSize: 222, nLayers: 2, dropout: 0, tieWeights: false },
  },
  {
    name: 'char-gru',
    description: 'character-level 2-layer GRU with about the parameters of tiny',
    config: { arch: 'gru', vocabSize: 65, embedDim: 256, hiddenSize: 256, nLayers: 2, dropout: 0, tieWeights: false },
  },
  {
    name: 'char-rnn',
    description: 'character-level 2-layer Elman RNN (tanh) with about the parameters of tiny',
    config: { arch: 'rnn', vocabSize: 65, embedDim: 436, hiddenSize: 436, nLayers: 2, nonlinearity: 'tanh', dropout: 0, tieWeights: false },
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

/** The fully resolved config of any preset, transformer or recurrent, with optional overrides. */
export function presetModelConfig(name: string, overrides: ModelConfigOverrides = {}): ModelConfig {
  return resolveModelConfig({ ...getPreset(name).config, ...overrides } as ModelConfigInput);
}

/** The fully resolved config of a transformer preset, with optional overrides (e.g. { dropout: 0.2 }). */
export function presetConfig(name: string, overrides: TransformerConfigOverrides = {}): TransformerConfig {
  const config = presetModelConfig(name, overrides);
  if (isRecurrentConfig(config)) throw new Error(`preset '${name}' is a recurrent model (arch '${config.arch}'), not a transformer`);
  return config;
}

export function listPresets(): Preset[] {
  return presetNames.map(getPreset);
}

export interface ModelSpec {
  /** A preset name. */
  preset: string;
  /** Fields of the preset to override (vocabSize always comes from the tokenizer). */
  model: ModelConfigOverrides;
  /** Context length of training windows: at most a transformer's maxSeqLen (a recurrent model has no limit). */
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
function isJsonKey(value: object, key: string): value is Record<string, unknown> {
  return Object.hasOwn(value, key);
}

export function buildModelConfig(spec: ModelSpec, vocabSize: number): ModelConfig {
  const preset = getPreset(spec.preset).config;
  if (isRecurrentConfig(preset)) {
    if (isJsonKey(spec.model, 'arch') && (spec.model as Record<string, unknown>).arch !== preset.arch) throw new Error(`model.arch cannot change preset '${spec.preset}''s '${preset.arch}' (choose the preset of the other kind)`);
    const dropout = spec.dropout !== undefined && spec.dropout !== null ? { dropout: spec.dropout } : {};
    return presetModelConfig(spec.preset, { ...spec.model, vocabSize, ...dropout } as ModelConfigOverrides);
  }
  if (isJsonKey(spec.model, 'arch')) throw new Error(`model.arch is for recurrent presets (char-lstm, char-gru, char-rnn); preset '${spec.preset}' is a transformer`);
  const overrides: TransformerConfigOverrides = { ...(spec.model as TransformerConfigOverrides), vocabSize };
  if (spec.dropout !== undefined && spec.dropout !== null) overrides.dropout = spec.dropout;
  const base = resolveConfig(preset as TransformerConfigInput);
  if (overrides.nHeads !== undefined && overrides.nKvHeads === undefined && base.nKvHeads === base.nHeads) overrides.nKvHeads = overrides.nHeads;
  if (overrides.dModel !== undefined && overrides.dFF === undefined && overrides.dModel !== base.dModel) overrides.dFF = Math.max(1, Math.round((base.dFF * overrides.dModel) / base.dModel));
  const model = resolveConfig({ ...preset, ...overrides } as TransformerConfigInput);
  if (spec.blockSize > model.maxSeqLen) {
    throw new Error(`blockSize ${spec.blockSize} is larger than the model's maxSeqLen ${model.maxSeqLen} (preset '${spec.preset}')`);
  }
  return model;
}
