/** Neural-network building blocks, like `torch.nn`: Module, layers, losses, init and functional forms. */
export {
  Module,
  parameter,
  isParameter,
  type AnyModule,
  type LoadStateDictResult,
  type ForwardHook,
  type ForwardPreHook,
  type HookInputs,
  type HookResult,
  type RemovableHandle,
} from './module.js';
export {
  Linear,
  ModuleList,
  Sequential,
  Identity,
  ReLU,
  GELU,
  SiLU,
  Swish,
  Sigmoid,
  Tanh,
  Softmax,
  LogSoftmax,
  Dropout,
  MLP,
  MSELoss,
  CrossEntropyLoss,
  NLLLoss,
  BCELoss,
  BCEWithLogitsLoss,
  type TensorModule,
  type LossModule,
  type LinearOptions,
  type MLPOptions,
  type ActivationName,
} from './layers.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { LayerNorm, RMSNorm, BatchNorm1d, type LayerNormOptions, type RMSNormOptions, type BatchNormOptions } from './normalization.js';
export { FeedForward, SwiGLU, GLU, glu, project, type FeedForwardActivation, type FeedForwardOptions, type SwiGLUOptions } from './feedforward.js';
export {
  LearnedPositionalEmbedding,
  SinusoidalPositionalEncoding,
  RotaryEmbedding,
  sinusoidalTable,
  type RotaryEmbeddingOptions,
  type RopePairing,
} from './positional.js';
export {
  MultiHeadAttention,
  KVCache,
  KVCacheLayer,
  groupedAttention,
  type MultiHeadAttentionOptions,
  type AttentionForwardOptions,
  type GroupedAttentionOptions,
} from './attention.js';
export { TransformerBlock, makeNorm, type TransformerBlockOptions, type NormKind, type MlpKind, type NormPlacement } from './transformer.js';
export { MultiHeadLatentAttention, LatentKVCacheLayer, mlaDefaults, type MlaConfig, type MlaConfigInput, type MultiHeadLatentAttentionOptions } from './mla.js';
export { MambaBlock, MambaMixer, MambaCache, CausalConv1d, type MambaBlockOptions, type MambaMixerOptions } from './mamba.js';
export {
  LoRALinear,
  applyLoRA,
  mergeLoRA,
  loraStateDict,
  loadLoRAStateDict,
  loraParameters,
  loraConfig,
  type LoRAOptions,
  type LoRALinearOptions,
  type LoRAConfig,
  type ApplyLoRAOptions,
} from './lora.js';
export { QuantizedLinear, quantizeBlocks, dequantizeBlocks, quantBlock, QUANT_FORMATS, Q8_0_BLOCK, type QuantFormat, type QuantizedBlocks } from './quantized.js';
export {
  RNNCell,
  LSTMCell,
  GRUCell,
  RNN,
  LSTM,
  GRU,
  type RecurrentMode,
  type RNNNonlinearity,
  type RNNCellBaseOptions,
  type RNNCellOptions,
  type RNNBaseOptions,
  type RNNOptions,
} from './recurrent.js';
export * as init from './init.js';
export * as functional from './functional.js';
export type {
  Reduction,
  ReductionOptions,
  NllLossOptions,
  CrossEntropyOptions,
  BinaryCrossEntropyOptions,
  BinaryCrossEntropyWithLogitsOptions,
  GeluApproximate,
} from './functional.js';
