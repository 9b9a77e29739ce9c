/** TensorLM: tensors, autograd, nn and optimizers. */
import './backends/index.js';
export { Tensor, type TensorLike, type NestedArray, type MaxResult } from './tensor/tensor.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export type { Shape } from './tensor/shape.js';
export * from './tensor/creation.js';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './tensor/random.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from './autograd/grad-mode.js';
export { type GradFn } from './autograd/engine.js';
export { cat, stack, gather, indexSelect, maskedFill, tril, triu } from './ops/indexing.js';
export { where, add, sub, mul, div, pow, maximum, minimum, neg, exp, log, sqrt, abs, tanh, sigmoid, relu, clamp } from './ops/elementwise.js';
export { matmul } from './ops/matmul.js';
export { softmax, logSoftmax } from './ops/softmax.js';
export { setBackend, getBackend, listBackends, registerBackend, fastestBackend, referenceKernels } from './backends/registry.js';
export type { Kernels } from './backends/kernels.js';
export * as nn from './nn/index.js';
export * as F from './nn/functional.js';
export * as optim from './optim/index.js';
