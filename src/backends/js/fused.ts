/** Reference fused kernels: softmax and the optimizer updates, one pass each. */
import type { AdamStepArgs, SgdStepArgs } from '../kernels.js';

export function softmax(x: Float32Array, xOffset: number, rows: number, cols: number, out: Float32Array, log: boolean): void {
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

export function softmaxBackward(y: Float32Array, g: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void {
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

export function adamStep(s: AdamStepArgs): void {
  const { param, grad, expAvg, expAvgSq, maxExpAvgSq, lr, beta1, beta2, eps, weightDecay, decoupledWeightDecay, step } = s;
  const biasCorrection1 = 1 - Math.pow(beta1, step);
  const biasCorrection2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const stepSize = lr / biasCorrection1;
  const decay = 1 - lr * decoupledWeightDecay;
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
