/** Optimizers, gradient clipping and learning-rate schedules (torch.optim, camelCase). */
export {
  Optimizer,
  type OptimizerHyperparams,
  type OptimizerStateDict,
  type ParamGroup,
  type ParamGroupSpec,
  type ParamGroupStateDict,
  type ParamsArg,
  type ParamState,
  type StateValue,
  type HyperparamValue,
} from './optimizer.js';
export { SGD, type SGDHyperparams, type SGDOptions, type SGDState } from './sgd.js';
export { Adam, AdamW, AdamBase, type AdamHyperparams, type AdamOptions, type AdamState } from './adam.js';
export { clipGradNorm, clipGradValue, type ClipGradNormOptions, type NormType } from './clip-grad.js';
export {
  LRScheduler,
  LambdaLR,
  StepLR,
  CosineAnnealingLR,
  LinearLR,
  WarmupCosineLR,
  warmupCosineLr,
  warmupConstantLr,
  type AnyOptimizer,
  type LrFunction,
  type LRSchedulerOptions,
  type LRSchedulerStateDict,
  type StepLROptions,
  type CosineAnnealingLROptions,
  type LinearLROptions,
  type WarmupCosineOptions,
  type WarmupCosineLROptions,
} from './lr-scheduler.js';
