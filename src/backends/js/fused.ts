/** Reference fused kernels: softmax and the optimizer updates, one pass each. */
import type {
  AdamStepArgs,
  CrossEntropyArgs,
  CrossEntropyBackwardArgs,
  LayerNormArgs,
  LayerNormBackwardArgs,
  RmsNormArgs,
  RmsNormBackwardArgs,
  ScaledSoftmaxArgs,
  SgdStepArgs,
  SoftmaxArgs,
  SoftmaxBackwardArgs,
} from '../kernels.js';

export function softmax({ x, xOffset, rows, cols, out, log }: SoftmaxArgs): void {
  for (let r = 0; r < rows; r++) {
    const xi = xOffset + r * cols;
    const oi = r * cols;
    let max = -Infinity;
    for (let j = 0; j < cols; j++) if (x[xi + j] > max) max = x[xi + j];
    // A row of all -inf would give NaN (0/0); PyTorch returns NaN too, but we avoid -inf - -inf.
    if (max === -Infinity) max = 0;
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(x[xi + j] - max);
    if (log) {
      const lse = max + Math.log(sum);
      for (let j = 0; j < cols; j++) out[oi + j] = x[xi + j] - lse;
    } else {
      const inv = 1 / sum;
      for (let j = 0; j < cols; j++) out[oi + j] = Math.exp(x[xi + j] - max) * inv;
    }
  }
}

export function softmaxBackward({ y, g, rows, cols, out, log }: SoftmaxBackwardArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    if (log) {
      for (let j = 0; j < cols; j++) dot += g[o + j];
      for (let j = 0; j < cols; j++) out[o + j] = g[o + j] - Math.exp(y[o + j]) * dot;
    } else {
      for (let j = 0; j < cols; j++) dot += g[o + j] * y[o + j];
      for (let j = 0; j < cols; j++) out[o + j] = y[o + j] * (g[o + j] - dot);
    }
  }
}

export function sgdStep(s: SgdStepArgs): void {
  const { param, grad, momentumBuffer: buf, lr, momentum, dampening, nesterov, weightDecay } = s;
  for (let i = 0; i < param.length; i++) {
    let d = grad[i];
    if (weightDecay !== 0) d += weightDecay * param[i];
    if (buf) {
      buf[i] = s.firstStep ? d : momentum * buf[i] + (1 - dampening) * d;
      d = nesterov ? d + momentum * buf[i] : buf[i];
    }
    param[i] -= lr * d;
  }
}

/**
 * One Adam(W) step's float64 scalars, as the reference computes them: the WASM and native kernels
 * take them from here, so their results stay bit-identical to the reference's.
 */
export function adamScalars(s: AdamStepArgs): { stepSize: number; bc2Sqrt: number; decay: number } {
  const biasCorrection1 = 1 - Math.pow(s.beta1, s.step);
  return { stepSize: s.lr / biasCorrection1, bc2Sqrt: Math.sqrt(1 - Math.pow(s.beta2, s.step)), decay: 1 - s.lr * s.decoupledWeightDecay };
}

export function adamStep(s: AdamStepArgs): void {
  const { param, grad, expAvg, expAvgSq, maxExpAvgSq, beta1, beta2, eps, weightDecay, decoupledWeightDecay } = s;
  const { stepSize, bc2Sqrt: biasCorrection2Sqrt, decay } = adamScalars(s);
  for (let i = 0; i < param.length; i++) {
    let g = grad[i];
    if (decoupledWeightDecay !== 0) param[i] *= decay;
    if (weightDecay !== 0) g += weightDecay * param[i];
    expAvg[i] += (g - expAvg[i]) * (1 - beta1);
    expAvgSq[i] = beta2 * expAvgSq[i] + (1 - beta2) * g * g;
    let v = expAvgSq[i];
    if (maxExpAvgSq) {
      if (v > maxExpAvgSq[i]) maxExpAvgSq[i] = v;
      v = maxExpAvgSq[i];
    }
    const denom = Math.sqrt(v) / biasCorrection2Sqrt + eps;
    param[i] -= (stepSize * expAvg[i]) / denom;
  }
}

export function layerNorm({ x, rows, cols, weight, bias, eps, out, mean, rstd }: LayerNormArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += x[o + j];
    const mu = sum / cols;
    // Two-pass variance: exact enough in a double without cancellation.
    let sq = 0;
    for (let j = 0; j < cols; j++) {
      const d = x[o + j] - mu;
      sq += d * d;
    }
    const rs = 1 / Math.sqrt(sq / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) {
      let v = (x[o + j] - mu) * rs;
      if (weight) v *= weight[j];
      if (bias) v += bias[j];
      out[o + j] = v;
    }
  }
}

export function layerNormBackward({ x, g, rows, cols, weight, mean, rstd, dx, dWeight, dBias }: LayerNormBackwardArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mu = mean[r];
    const rs = rstd[r];
    // dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = g·weight
    let sumDxhat = 0;
    let sumDxhatXhat = 0;
    for (let j = 0; j < cols; j++) {
      const xhat = (x[o + j] - mu) * rs;
      const dxhat = weight ? g[o + j] * weight[j] : g[o + j];
      sumDxhat += dxhat;
      sumDxhatXhat += dxhat * xhat;
      if (dWeight) dWeight[j] += g[o + j] * xhat;
      if (dBias) dBias[j] += g[o + j];
    }
    const m1 = sumDxhat / cols;
    const m2 = sumDxhatXhat / cols;
    for (let j = 0; j < cols; j++) {
      const xhat = (x[o + j] - mu) * rs;
      const dxhat = weight ? g[o + j] * weight[j] : g[o + j];
      dx[o + j] = rs * (dxhat - m1 - xhat * m2);
    }
  }
}

export function rmsNorm({ x, rows, cols, weight, eps, out, rstd }: RmsNormArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let sq = 0;
    for (let j = 0; j < cols; j++) sq += x[o + j] * x[o + j];
    const rs = 1 / Math.sqrt(sq / cols + eps);
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) out[o + j] = weight ? x[o + j] * rs * weight[j] : x[o + j] * rs;
  }
}

export function rmsNormBackward({ x, g, rows, cols, weight, rstd, dx, dWeight }: RmsNormBackwardArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rs = rstd[r];
    let sumDxhatXhat = 0;
    for (let j = 0; j < cols; j++) {
      const xhat = x[o + j] * rs;
      const dxhat = weight ? g[o + j] * weight[j] : g[o + j];
      sumDxhatXhat += dxhat * xhat;
      if (dWeight) dWeight[j] += g[o + j] * xhat;
    }
    const m2 = sumDxhatXhat / cols;
    for (let j = 0; j < cols; j++) {
      const xhat = x[o + j] * rs;
      const dxhat = weight ? g[o + j] * weight[j] : g[o + j];
      dx[o + j] = rs * (dxhat - xhat * m2);
    }
  }
}

export function crossEntropy({ logits, targets, rows, classes, ignoreIndex, labelSmoothing, losses, rowMax, rowLogSum }: CrossEntropyArgs): void {
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let j = 0; j < classes; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    let total = 0;
    for (let j = 0; j < classes; j++) {
      sum += Math.exp(logits[o + j] - max);
      total += logits[o + j];
    }
    const logSum = Math.log(sum);
    rowMax[r] = max;
    rowLogSum[r] = logSum;
    const l = max + logSum;
    const t = targets[r];
    if (t === ignoreIndex) {
      losses[r] = 0;
      continue;
    }
    const nll = l - logits[o + t];
    losses[r] = labelSmoothing === 0 ? nll : (1 - labelSmoothing) * nll + labelSmoothing * (l - total / classes);
  }
}

export function crossEntropyBackward({ logits, targets, rowMax, rowLogSum, rowScale, rows, classes, ignoreIndex, labelSmoothing, dlogits }: CrossEntropyBackwardArgs): void {
  const smooth = labelSmoothing / classes;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    const t = targets[r];
    if (t === ignoreIndex) {
      dlogits.fill(0, o, o + classes);
      continue;
    }
    const s = rowScale[r];
    const m = rowMax[r];
    const ls = rowLogSum[r];
    for (let j = 0; j < classes; j++) dlogits[o + j] = s * (Math.exp(logits[o + j] - m - ls) - smooth);
    dlogits[o + t] -= s * (1 - labelSmoothing);
  }
}

export function scaledSoftmax({ x, xOffset, rows, cols, tq, scale, causal, causalOffset, out }: ScaledSoftmaxArgs): void {
  for (let r = 0; r < rows; r++) {
    const xi = xOffset + r * cols;
    const oi = r * cols;
    // Columns past the causal limit are skipped entirely, not filled with -inf and exponentiated.
    const limit = causal ? Math.min(cols, Math.max(0, (r % tq) + causalOffset + 1)) : cols;
    let max = -Infinity;
    for (let j = 0; j < limit; j++) if (x[xi + j] > max) max = x[xi + j];
    let sum = 0;
    for (let j = 0; j < limit; j++) {
      const e = Math.exp((x[xi + j] - max) * scale);
      out[oi + j] = e;
      sum += e;
    }
    const inv = limit > 0 ? 1 / sum : 0;
    for (let j = 0; j < limit; j++) out[oi + j] *= inv;
    for (let j = limit; j < cols; j++) out[oi + j] = 0;
  }
}
