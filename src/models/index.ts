/** Language models: TransformerLM, its config, presets, parameter/memory accounting, sampling. */
export {
  TransformerLM,
  KVCache,
  KVCacheLayer,
  packedAttentionMask,
  type LMOutput,
  type LMForwardOptions,
  type LMSequenceOptions,
  type TransformerLMOptions,
  type GenerateOptions,
} from './transformer.js';
export {
  resolveConfig,
  headDim,
  type TransformerConfig,
  type TransformerConfigInput,
  type TransformerConfigOverrides,
  type MupConfig,
  type MupConfigInput,
  type MupWeightDecay,
  type NormKind,
  type MlpKind,
  type PosKind,
  type AttentionKind,
  type NormPlacement,
} from './config.js';
export { layerKinds, type LayerType, type MambaConfig } from './config.js';
export {
  widthMultiplier,
  ffnWidthMultiplier,
  hiddenFanInMultiplier,
  attentionScale,
  readoutMultiplier,
  inputMultiplier,
  mupParamInfo,
  muParamGroups,
  type MupRole,
  type MupParamInfo,
  type MuParamGroup,
} from './mup.js';
export { getPreset, presetConfig, presetNames, listPresets, buildModelConfig, type Preset, type ModelSpec } from './presets.js';
export {
  countParameters,
  estimateMemory,
  activationElements,
  kvCacheBytes,
  mambaMixerParameters,
  mambaStateBytes,
  type KVCacheEstimate,
  describeModel,
  formatCount,
  formatBytes,
  type ParameterBreakdown,
  type MemoryEstimate,
  type MemoryOptions,
  type TrainingDType,
} from './params.js';
export { sampleNext, sampleToken, argmax, checkSamplingOptions, type SamplingOptions } from './sampling.js';
export { attentionMaps, type AttentionMaps } from './inspect.js';
export { streamText, generateText, streamTexts, generateTexts, promptIds, IncrementalDecoder, type TextGenerationOptions, type BatchTextGenerationOptions, type TextChunk, type BatchTextChunk, type GeneratedText, type StopReason } from './generate.js';
export { ChatSession, type ChatSessionOptions, type ChatReplyOptions } from './chat.js';
export { quantizeModel, describeQuantization, type QuantizeStats, type QuantizedLayerStats } from './quantize.js';
