/** Language models: TransformerLM, its config, presets, parameter/memory accounting, sampling. */
export {
  TransformerLM,
  KVCache,
  KVCacheLayer,
  type LMOutput,
  type LMForwardOptions,
  type TransformerLMOptions,
  type GenerateOptions,
} from './transformer.js';
export { resolveConfig, headDim, type TransformerConfig, type TransformerConfigInput, type NormKind, type MlpKind, type PosKind, type NormPlacement } from './config.js';
export { getPreset, presetConfig, presetNames, listPresets, type Preset } from './presets.js';
export {
  countParameters,
  estimateMemory,
  activationElements,
  describeModel,
  formatCount,
  formatBytes,
  type ParameterBreakdown,
  type MemoryEstimate,
  type MemoryOptions,
  type TrainingDType,
} from './params.js';
export { sampleNext, sampleToken, argmax, checkSamplingOptions, type SamplingOptions } from './sampling.js';
