/** TensorLM: tensors, autograd, nn and optimizers. */
import { installNodeBackends } from './backends/node.js';
import { setBackendInstaller } from './backends/registry.js';

// Only names Node's backends (wasm + blas); they are registered, and the default chosen, on the
// first kernel call, so importing TensorLM loads no native code and prints nothing.
setBackendInstaller(installNodeBackends);

export { setNumThreads, getNumThreads } from './backends/node.js';
export { Tensor, type TensorLike, type NestedArray, type MaxResult } from './tensor/tensor.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export type { Shape } from './tensor/shape.js';
export * from './tensor/creation.js';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './tensor/random.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from './autograd/grad-mode.js';
export { type GradFn, type BackwardOptions } from './autograd/engine.js';
export { cat, stack, gather, indexSelect, indexAdd, maskedFill, tril, triu } from './ops/indexing.js';
export { where, add, sub, mul, div, pow, maximum, minimum, neg, exp, log, sqrt, abs, tanh, sigmoid, relu, clamp } from './ops/elementwise.js';
export { matmul } from './ops/matmul.js';
export { softmax, logSoftmax } from './ops/softmax.js';
export { setBackend, getBackend, listBackends, registerBackend, fastestBackend, referenceKernels, setBackendInstaller, type BackendInstaller } from './backends/registry.js';
export type { Kernels } from './backends/kernels.js';
export * as nn from './nn/index.js';
export * as F from './nn/functional.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as chat from './chat/index.js';
export * as io from './io/index.js';
export { TransformerLM } from './models/transformer.js';
export { quantizeModel, type QuantizeStats, type QuantizedLayerStats } from './models/quantize.js';
export { QuantizedLinear, type QuantFormat } from './nn/quantized.js';
export { embedding } from './ops/embedding.js';
export { rotaryEmbedding, rotaryTables } from './ops/rotary.js';
export { scaledDotProductAttention } from './ops/attention.js';
export { selectiveScan, causalConv1d, softplus, type SelectiveScanOptions, type SelectiveScanResult, type CausalConv1dOptions } from './ops/selective-scan.js';
export { flashAttention, setAttentionImplementation, getAttentionImplementation, FLASH_ATTENTION_MIN_SEQ_LEN, type AttentionImplementation, type FlashAttentionOptions } from './ops/flash-attention.js';
export * from './tokenizers/index.js'; export * from './data/index.js';
export {
  TrainingCore,
  LrSchedule,
  estimateLoss,
  accumulateGradients,
  languageModelLoss,
  NonFiniteLossError,
  type LossFunction,
  type LrScheduleKind,
  type LrScheduleOptions,
  type StepResult,
  type TrainingCoreOptions,
} from './train/loop.js';
export { streamText, generateText, streamTexts, generateTexts, type TextGenerationOptions, type BatchTextGenerationOptions, type TextChunk, type BatchTextChunk, type GeneratedText } from './models/generate.js';
