/**
 * Fused ops: one kernel pass forward and one backward where composing smaller ops would
 * stream the same memory several times. Their composite definitions stay in the tests as oracles.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData, intData } from './elementwise.js';

function checkNormalized(op: string, x: Tensor, normalizedShape: readonly number[], params: (Tensor | null | undefined)[]): number {
  const k = normalizedShape.length;
  const tail = x.shape.slice(x.ndim - k);
  if (k === 0 || x.ndim < k || tail.some((d, i) => d !== normalizedShape[i])) {
    throw new Error(`${op}: input shape ${formatShape(x.shape)} does not end with normalizedShape ${formatShape(normalizedShape)}`);
  }
  for (const p of params) {
    if (p && (p.ndim !== k || p.shape.some((d, i) => d !== normalizedShape[i]))) {
      throw new Error(`${op}: parameter shape ${formatShape(p.shape)} does not match normalizedShape ${formatShape(normalizedShape)}`);
    }
  }
  if (x.dtype !== 'float32') throw new TypeError(`${op}: input must be float32, got ${x.dtype}`);
  return shapeSize(normalizedShape);
}

/** Layer normalisation over the trailing `normalizedShape` dims (torch.nn.functional.layer_norm). */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const cols = checkNormalized('layerNorm', x, normalizedShape, [weight, bias]);
  const rows = cols === 0 ? 0 : x.size / cols;
  const xd = floatData(x);
  const w = weight ? floatData(weight) : null;
  const b = bias ? floatData(bias) : null;
  const out = Tensor.uninitialized(x.shape);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  kernels.layerNorm({ x: xd, rows, cols, weight: w, bias: b, eps, out: out.storage as Float32Array, mean, rstd });
  const inputs = [x, weight, bias].filter((t): t is Tensor => t !== null && t !== undefined);
  return record(out, 'layerNorm', inputs, (g) => {
    const dx = Tensor.uninitialized(x.shape);
    const dw = weight?.requiresGrad ? Tensor.empty(weight.shape) : null;
    const db = bias?.requiresGrad ? Tensor.empty(bias.shape) : null;
    kernels.layerNormBackward({ x: xd, g: floatData(g), rows, cols, weight: w, mean, rstd, dx: dx.storage as Float32Array, dWeight: (dw?.storage as Float32Array) ?? null, dBias: (db?.storage as Float32Array) ?? null });
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(dw);
    if (bias) grads.push(db);
    return grads;
  });
}

/** Root-mean-square normalisation over the trailing dims: x / √(mean(x²) + eps) · weight. */
export function rmsNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps = 1e-6): Tensor {
  const cols = checkNormalized('rmsNorm', x, normalizedShape, [weight]);
  const rows = cols === 0 ? 0 : x.size / cols;
  const xd = floatData(x);
  const w = weight ? floatData(weight) : null;
  const out = Tensor.uninitialized(x.shape);
  const rstd = new Float32Array(rows);
  kernels.rmsNorm({ x: xd, rows, cols, weight: w, eps, out: out.storage as Float32Array, rstd });
  const inputs = weight ? [x, weight] : [x];
  return record(out, 'rmsNorm', inputs, (g) => {
    const dx = Tensor.uninitialized(x.shape);
    const dw = weight?.requiresGrad ? Tensor.empty(weight.shape) : null;
    kernels.rmsNormBackward({ x: xd, g: floatData(g), rows, cols, weight: w, rstd, dx: dx.storage as Float32Array, dWeight: (dw?.storage as Float32Array) ?? null });
    return weight ? [dx, dw] : [dx];
  });
}

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  reduction?: Reduction;
  /** Targets equal to this value contribute nothing, and are not counted by 'mean'. Default -100. */
  ignoreIndex?: number;
  /** ε in [0, 1]: the target distribution is (1 − ε)·onehot + ε/C. Default 0. */
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [N, C] or [B, T, C] (any [..., C]: classes LAST, unlike PyTorch's
 * [N, C, d…]) against int32 targets [N] / [B, T], in one pass: log-sum-exp (after subtracting the
 * row max, so huge logits are fine), the target's logit and the smoothing term per row; backward
 * is softmax − onehot. With label smoothing ε, per target loss = (1 − ε)·nll + ε·mean_c(−log p_c),
 * PyTorch's definition. Mean reduction averages over non-ignored targets, as PyTorch does.
 * This is the one cross-entropy: F.crossEntropy re-exports it and nn.CrossEntropyLoss calls it.
 */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  // `??`, not destructuring defaults: plain-JS callers passing null get the defaults too.
  const reduction = options.reduction ?? 'mean';
  const ignoreIndex = options.ignoreIndex ?? -100;
  const labelSmoothing = options.labelSmoothing ?? 0;
  if (!['mean', 'sum', 'none'].includes(reduction)) throw new Error(`crossEntropy: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  if (typeof labelSmoothing !== 'number' || !(labelSmoothing >= 0 && labelSmoothing <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  if (logits.dtype !== 'float32') throw new TypeError(`crossEntropy: logits must be float32, got ${logits.dtype}`);
  if (target.dtype !== 'int32') throw new TypeError(`crossEntropy: target must be an int32 tensor of class indices, got ${target.dtype}`);
  if (logits.ndim === 0) throw new Error('crossEntropy: logits must have a class dimension (last), got a 0-d tensor');
  if (logits.ndim !== target.ndim + 1 || target.shape.some((d, i) => d !== logits.shape[i])) {
    throw new Error(
      `crossEntropy: logits shape ${formatShape(logits.shape)} (classes last) expects target shape ${formatShape(logits.shape.slice(0, -1))}, got target shape ${formatShape(target.shape)}`,
    );
  }
  const classes = logits.shape[logits.ndim - 1];
  const rows = target.size;
  const targets = intData(target);
  let count = 0;
  for (let i = 0; i < rows; i++) {
    const v = targets[i];
    if (v === ignoreIndex) continue;
    if (v < 0 || v >= classes) throw new RangeError(`crossEntropy: target ${v} is out of bounds for ${classes} classes`);
    count++;
  }
  const x = floatData(logits);
  const losses = new Float32Array(rows);
  const rowMax = new Float32Array(rows);
  const rowLogSum = new Float32Array(rows);
  kernels.crossEntropy({ logits: x, targets, rows, classes, ignoreIndex, labelSmoothing, losses, rowMax, rowLogSum });
  let out: Tensor;
  if (reduction === 'none') out = new Tensor(losses, target.shape);
  else {
    let total = 0;
    for (let i = 0; i < rows; i++) total += losses[i];
    out = Tensor.empty([]);
    out.storage[0] = reduction === 'mean' ? total / count : total;
  }
  return record(out, 'crossEntropy', [logits], (g) => {
    const rowScale = new Float32Array(rows);
    if (reduction === 'none') rowScale.set(floatData(g));
    else rowScale.fill(reduction === 'mean' ? g.item() / count : g.item());
    const dlogits = Tensor.uninitialized(logits.shape);
    kernels.crossEntropyBackward({ logits: x, targets, rowMax, rowLogSum, rowScale, rows, classes, ignoreIndex, labelSmoothing, dlogits: dlogits.storage as Float32Array });
    return [dlogits];
  });
}
