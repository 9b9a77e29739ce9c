/** Neural-network building blocks, like `torch.nn`: Module, layers, losses, init and functional forms. */
export { Module, parameter, isParameter, type AnyModule, type LoadStateDictResult } from './module.js';
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
