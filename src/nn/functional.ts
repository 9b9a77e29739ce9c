/**
 * Stateless neural-network functions, like `torch.nn.functional`: activations, dropout, linear
 * and the losses. dropout, linear and crossEntropy are the ops themselves (src/ops), re-exported;
 * the other losses are composed of differentiable tensor ops, so autograd needs nothing extra.
 */
import * as ew from '../ops/elementwise.js';
import { where } from '../ops/elementwise.js';
import type { Reduction } from '../ops/fused.js';
import * as sm from '../ops/softmax.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

// One implementation each, in src/ops: these names are re-exported, not wrapped.
export { dropout } from '../ops/dropout.js';
export { linear } from '../ops/linear.js';
export { crossEntropy, type CrossEntropyOptions, type Reduction } from '../ops/fused.js';

// ---- activations -------------------------------------------------------------------------------

export function relu(x: Tensor): Tensor {
  return ew.relu(x);
}

export type GeluApproximate = 'none' | 'tanh';

/** GELU; `approximate: 'tanh'` is the GPT-2 approximation. */
export function gelu(x: Tensor, options: { approximate?: GeluApproximate } = {}): Tensor {
  const approximate = options.approximate ?? 'none';
  if (approximate === 'none') return ew.gelu(x);
  if (approximate === 'tanh') return ew.geluTanh(x);
  throw new Error(`gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
}

/** x·sigmoid(x), also known as swish. */
export function silu(x: Tensor): Tensor {
  return ew.silu(x);
}

export function sigmoid(x: Tensor): Tensor {
  return ew.sigmoid(x);
}

export function tanh(x: Tensor): Tensor {
  return ew.tanh(x);
}

export function softmax(x: Tensor, dim: number): Tensor {
  return sm.softmax(x, dim);
}

export function logSoftmax(x: Tensor, dim: number): Tensor {
  return sm.logSoftmax(x, dim);
}

// ---- losses ------------------------------------------------------------------------------------

export interface ReductionOptions {
  reduction?: Reduction;
}

function checkReduction(reduction: unknown, op: string): Reduction {
  if (reduction === 'mean' || reduction === 'sum' || reduction === 'none') return reduction;
  throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
}

function reduce(loss: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'none') return loss;
  return reduction === 'sum' ? loss.sum() : loss.mean();
}

function checkSameShape(input: Tensor, target: Tensor, op: string, names: [string, string] = ['input', 'target']): void {
  if (!shapesEqual(input.shape, target.shape)) {
    throw new Error(`${op}: ${names[0]} shape ${formatShape(input.shape)} and ${names[1]} shape ${formatShape(target.shape)} must be equal`);
  }
}

function checkFloat(t: Tensor, op: string, what: string): void {
  if (t.dtype !== 'float32') throw new TypeError(`${op}: ${what} must be float32, got ${t.dtype}`);
}

/** Mean squared error: (input − target)². */
export function mseLoss(input: Tensor, target: Tensor, options: ReductionOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'mseLoss');
  checkSameShape(input, target, 'mseLoss');
  return reduce(input.sub(target).square(), reduction);
}

export interface NllLossOptions extends ReductionOptions {
  /** Targets equal to this value contribute nothing, and are not counted by 'mean'. Default -100. */
  ignoreIndex?: number;
}

/**
 * Shared checks for class-last losses: scores [..., C] with an int32 target [...] whose values are
 * class indices or the ignore index. Returns the mask of counted (non-ignored) positions and the
 * target with ignored positions replaced by class 0, which is safe to gather with.
 */
function classTargets(scores: Tensor, target: Tensor, ignoreIndex: number, op: string, scoresName: string): { valid: Tensor; safeTarget: Tensor } {
  checkFloat(scores, op, scoresName);
  if (target.dtype !== 'int32') throw new TypeError(`${op}: target must be an int32 tensor of class indices, got ${target.dtype}`);
  if (scores.ndim === 0) throw new Error(`${op}: ${scoresName} must have a class dimension (last), got a 0-d tensor`);
  const classes = scores.shape[scores.ndim - 1];
  const expected = scores.shape.slice(0, -1);
  if (!shapesEqual(target.shape, expected)) {
    throw new Error(
      `${op}: ${scoresName} shape ${formatShape(scores.shape)} (classes last) expects target shape ${formatShape(expected)}, got target shape ${formatShape(target.shape)}`,
    );
  }
  for (const t of target.toTypedArray()) {
    if (t !== ignoreIndex && (t < 0 || t >= classes)) throw new RangeError(`${op}: target ${t} is out of bounds for ${classes} classes`);
  }
  const valid = target.ne(ignoreIndex);
  return { valid, safeTarget: where(valid, target, 0) };
}

/**
 * Applies the ignore mask and the reduction. 'mean' divides by the number of counted targets,
 * as PyTorch does (all ignored gives 0/0 = NaN there too).
 */
function reduceOverTargets(loss: Tensor, valid: Tensor, reduction: Reduction): Tensor {
  const masked = where(valid, loss, 0);
  if (reduction === 'none') return masked;
  const total = masked.sum();
  if (reduction === 'sum') return total;
  return total.div(valid.sum().float());
}

/** −logProbs[target] per position, classes in the last dim of `logProbs`. */
function pickNegative(logProbs: Tensor, safeTarget: Tensor): Tensor {
  return logProbs.gather(-1, safeTarget.unsqueeze(-1)).squeeze(-1).neg();
}

/**
 * Negative log-likelihood of log-probabilities [..., C] (classes last; for [N, C] this is
 * PyTorch's layout) at int32 targets [...].
 */
export function nllLoss(logProbs: Tensor, target: Tensor, options: NllLossOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'nllLoss');
  const ignoreIndex = options.ignoreIndex ?? -100;
  const { valid, safeTarget } = classTargets(logProbs, target, ignoreIndex, 'nllLoss', 'input');
  return reduceOverTargets(pickNegative(logProbs, safeTarget), valid, reduction);
}

/**
 * log(x) clamped below at −100 as PyTorch's binary_cross_entropy does, so p = 0 or 1 gives a
 * finite loss. The inner `where` keeps log's backward away from 0 (whose 0/0 would be NaN even
 * though the clamp already zeroed the gradient).
 */
function clampedLog(x: Tensor): Tensor {
  const positive = x.gt(0);
  return where(positive, where(positive, x, 1).log().clamp(-100), -100);
}

export interface BinaryCrossEntropyOptions extends ReductionOptions {
  /** Rescales each element's loss; broadcast to the input's shape. */
  weight?: Tensor;
}

/** −[y·log p + (1 − y)·log(1 − p)] of probabilities p ∈ [0, 1]; each log is clamped to ≥ −100. */
export function binaryCrossEntropy(probs: Tensor, target: Tensor, options: BinaryCrossEntropyOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'binaryCrossEntropy');
  checkFloat(probs, 'binaryCrossEntropy', 'input');
  checkSameShape(probs, target, 'binaryCrossEntropy');
  for (const p of probs.toTypedArray()) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`binaryCrossEntropy: all elements of input should be between 0 and 1, got ${p}`);
  }
  const y = target.float();
  let loss = y.mul(clampedLog(probs)).add(ew.sub(1, y).mul(clampedLog(ew.sub(1, probs)))).neg();
  if (options.weight) loss = loss.mul(options.weight);
  return reduce(loss, reduction);
}

export interface BinaryCrossEntropyWithLogitsOptions extends BinaryCrossEntropyOptions {
  /** Weight of positive examples, one per class (broadcast over the last dim), like PyTorch's pos_weight. */
  posWeight?: Tensor;
}

/**
 * log(1 + exp(−x)) without overflow: max(−x, 0) + log(1 + exp(−|x|)). Both kinks sit at x = 0;
 * taking both one-sided derivatives from the same side (x ≥ 0) makes their sum the true derivative
 * −sigmoid(−x) there, where relu'(0) = 0 with sign(0) = 0 would give 0 instead of −1/2.
 */
function softplusOfNegative(x: Tensor): Tensor {
  const nonNegative = x.ge(0);
  const absX = where(nonNegative, x, x.neg());
  const negPart = where(nonNegative, 0, x.neg());
  return negPart.add(absX.neg().exp().add(1).log());
}

/**
 * Binary cross-entropy on logits, stable for any magnitude:
 * (1 − y)·x + (1 + (pw − 1)·y)·log(1 + exp(−x)), which without posWeight is
 * max(x, 0) − x·y + log(1 + exp(−|x|)).
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, options: BinaryCrossEntropyWithLogitsOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'binaryCrossEntropyWithLogits');
  checkFloat(logits, 'binaryCrossEntropyWithLogits', 'logits');
  checkSameShape(logits, target, 'binaryCrossEntropyWithLogits', ['logits', 'target']);
  const y = target.float();
  const sp = softplusOfNegative(logits);
  const oneMinusY = ew.sub(1, y);
  const { posWeight } = options;
  let loss = posWeight ? oneMinusY.mul(logits).add(posWeight.sub(1).mul(y).add(1).mul(sp)) : oneMinusY.mul(logits).add(sp);
  if (options.weight) loss = loss.mul(options.weight);
  return reduce(loss, reduction);
}
