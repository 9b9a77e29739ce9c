/**
 * Stateless neural-network functions, like `torch.nn.functional`: activations, dropout, linear
 * and the losses. Every function here is composed of differentiable tensor ops, so autograd
 * needs nothing extra; a fused loss kernel can replace a composition later without changing the API.
 */
import { crossEntropy as fusedCrossEntropy } from '../ops/fused.js';
import { linear as fusedLinear } from '../ops/extra.js';
import * as ew from '../ops/elementwise.js';
import { where } from '../ops/elementwise.js';
import * as sm from '../ops/softmax.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

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

// ---- dropout -----------------------------------------------------------------------------------

function checkProbability(p: number, op: string): void {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new RangeError(`${op}: probability has to be between 0 and 1, but got ${p}`);
  }
}

/**
 * Inverted dropout: zeroes each element with probability p and scales the survivors by 1/(1-p),
 * so evaluation (training = false) needs no rescaling. Draws from `generator` (the default
 * generator otherwise) so a seeded run drops the same elements every time.
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator): Tensor {
  checkProbability(p, 'dropout');
  if (!training || p === 0) return x;
  // p = 1 keeps nothing; scaling by 1/(1-p) would be 0·inf = NaN.
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const gen = generator ?? defaultGenerator;
  const mask = Tensor.empty(x.shape, 'float32');
  const m = mask.storage;
  for (let i = 0; i < m.length; i++) m[i] = gen.random() >= p ? scale : 0;
  return ew.mul(x, mask);
}

// ---- linear ------------------------------------------------------------------------------------

/** y = x @ weightᵀ + bias, with weight [out, in] and x [..., in] (torch.nn.functional.linear). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D [outFeatures, inFeatures], got shape ${formatShape(weight.shape)}`);
  const [outFeatures, inFeatures] = weight.shape;
  const last = x.ndim === 0 ? undefined : x.shape[x.ndim - 1];
  if (last !== inFeatures) {
    throw new Error(`linear: input last dim is ${last ?? 'missing (0-d input)'}, expected ${inFeatures} (weight shape ${formatShape(weight.shape)})`);
  }
  if (bias && !(bias.ndim === 1 && bias.shape[0] === outFeatures)) {
    throw new Error(`linear: bias must have shape [${outFeatures}] to match weight shape ${formatShape(weight.shape)}, got ${formatShape(bias.shape)}`);
  }
  // One GEMM over all leading dims, with the bias folded in as the GEMM's initial output.
  if (x.ndim === 2) return fusedLinear(x, weight, bias ?? null);
  const y = fusedLinear(x.reshape(-1, inFeatures), weight, bias ?? null);
  return y.reshape([...x.shape.slice(0, -1), outFeatures]);
}

// ---- losses ------------------------------------------------------------------------------------

export type Reduction = 'mean' | 'sum' | 'none';

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

export interface CrossEntropyOptions extends NllLossOptions {
  /** ε in [0, 1]: the target distribution is (1 − ε)·onehot + ε/C. Default 0. */
  labelSmoothing?: number;
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
 * Cross-entropy of logits [N, C] or [B, T, C] (any [..., C]: classes LAST, unlike PyTorch's
 * [N, C, d…]) against int32 targets [N] / [B, T]. Stable for huge logits: it goes through the
 * fused logSoftmax, which subtracts the row maximum. With label smoothing ε, per target
 * loss = (1 − ε)·nll + ε·mean_c(−log p_c), PyTorch's definition.
 */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'crossEntropy');
  const ignoreIndex = options.ignoreIndex ?? -100;
  const eps = options.labelSmoothing ?? 0;
  if (typeof eps !== 'number' || !(eps >= 0 && eps <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  classTargets(logits, target, ignoreIndex, 'crossEntropy', 'logits');
  // One fused pass (log-sum-exp, target logit, smoothing term); backward is softmax − onehot.
  return fusedCrossEntropy(logits, target, { reduction, ignoreIndex, labelSmoothing: eps });
}

/** The composite definition of crossEntropy, kept as the oracle for the fused op in tests. */
export function crossEntropyComposite(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const reduction = checkReduction(options.reduction ?? 'mean', 'crossEntropy');
  const ignoreIndex = options.ignoreIndex ?? -100;
  const eps = options.labelSmoothing ?? 0;
  const { valid, safeTarget } = classTargets(logits, target, ignoreIndex, 'crossEntropy', 'logits');
  const logp = sm.logSoftmax(logits, -1);
  let loss = pickNegative(logp, safeTarget);
  if (eps > 0) loss = loss.mul(1 - eps).add(logp.mean(-1).neg().mul(eps));
  return reduceOverTargets(loss, valid, reduction);
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
