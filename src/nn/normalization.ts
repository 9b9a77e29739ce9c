/**
 * Normalisation layers: LayerNorm and RMSNorm (through the fused one-pass ops) and BatchNorm1d
 * (with running statistics, like `torch.nn.BatchNorm1d`).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { layerNorm, rmsNorm } from '../ops/fused.js';
import { ones, zeros } from '../tensor/creation.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, parameter } from './module.js';

function normalizedShapeOf(shape: number | readonly number[], layer: string): number[] {
  const s = typeof shape === 'number' ? [shape] : shape.slice();
  if (s.length === 0 || s.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new RangeError(`${layer}: normalizedShape must be positive integers, got ${formatShape(s)}`);
  }
  return s;
}

function checkEps(eps: number, layer: string): void {
  if (!(eps >= 0)) throw new RangeError(`${layer}: eps must be non-negative, got ${eps}`);
}

export interface LayerNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Learnable weight (and bias) — default true. */
  elementwiseAffine?: boolean;
  /** Learnable bias when elementwiseAffine — default true (false gives the bias-free LayerNorm of e.g. GPT-NeoX-style configs with bias = false). */
  bias?: boolean;
}

/** (x − mean)/√(var + eps)·weight + bias over the trailing `normalizedShape` dims. */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = normalizedShapeOf(normalizedShape, 'LayerNorm');
    this.eps = options.eps ?? 1e-5;
    checkEps(this.eps, 'LayerNorm');
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? parameter(ones(this.normalizedShape)) : null;
    this.bias = affine && (options.bias ?? true) ? parameter(zeros(this.normalizedShape)) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `${formatShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}, bias=${this.bias !== null}`;
  }
}

export interface RMSNormOptions {
  /** Default 1e-6. */
  eps?: number;
  /** Learnable gain — default true. */
  elementwiseAffine?: boolean;
}

/** x/√(mean(x²) + eps)·weight over the trailing dims (Llama's RMSNorm; no mean subtraction, no bias). */
export class RMSNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Tensor | null;

  constructor(normalizedShape: number | readonly number[], options: RMSNormOptions = {}) {
    super();
    this.normalizedShape = normalizedShapeOf(normalizedShape, 'RMSNorm');
    this.eps = options.eps ?? 1e-6;
    checkEps(this.eps, 'RMSNorm');
    this.weight = options.elementwiseAffine ?? true ? parameter(ones(this.normalizedShape)) : null;
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }

  override extraRepr(): string {
    return `${formatShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}

export interface BatchNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /**
   * Weight of the new batch in the running averages: running = (1 − momentum)·running + momentum·batch.
   * Default 0.1; null gives the cumulative average over all batches seen (PyTorch's momentum=None).
   */
  momentum?: number | null;
  /** Learnable weight and bias — default true. */
  affine?: boolean;
  /** Keep runningMean/runningVar and use them in eval mode — default true. */
  trackRunningStats?: boolean;
}

/**
 * Batch normalisation over [N, C] or [N, C, L] inputs: statistics per channel C over N (and L).
 * Training mode normalises with the batch's mean and biased variance and updates the running mean
 * and the running *unbiased* variance; eval mode normalises with the running statistics.
 * Buffers (in stateDict): runningMean, runningVar, numBatchesTracked.
 */
export class BatchNorm1d extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  weight: Tensor | null;
  bias: Tensor | null;
  declare runningMean: Tensor | null;
  declare runningVar: Tensor | null;
  declare numBatchesTracked: Tensor | null;

  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures <= 0) throw new RangeError(`BatchNorm1d: numFeatures must be a positive integer, got ${numFeatures}`);
    this.numFeatures = numFeatures;
    this.eps = options.eps ?? 1e-5;
    checkEps(this.eps, 'BatchNorm1d');
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (this.momentum !== null && !(this.momentum >= 0 && this.momentum <= 1)) {
      throw new RangeError(`BatchNorm1d: momentum must be in [0, 1] or null, got ${this.momentum}`);
    }
    const affine = options.affine ?? true;
    this.weight = affine ? parameter(ones([numFeatures])) : null;
    this.bias = affine ? parameter(zeros([numFeatures])) : null;
    const track = options.trackRunningStats ?? true;
    this.registerBuffer('runningMean', track ? zeros([numFeatures]) : null);
    this.registerBuffer('runningVar', track ? ones([numFeatures]) : null);
    this.registerBuffer('numBatchesTracked', track ? zeros([], { dtype: 'int32' }) : null);
  }

  /** Resets the running statistics to mean 0, variance 1 and the batch count to 0. */
  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 2 && x.ndim !== 3) throw new Error(`BatchNorm1d: expected a 2-D [N, C] or 3-D [N, C, L] input, got shape ${formatShape(x.shape)}`);
    const c = x.shape[1];
    if (c !== this.numFeatures) throw new Error(`BatchNorm1d(${this.numFeatures}): input has ${c} channels (dim 1), expected ${this.numFeatures}`);
    const dims = x.ndim === 2 ? [0] : [0, 2];
    const channelShape = x.ndim === 2 ? [1, c] : [1, c, 1];
    const useBatchStats = this.training || this.runningMean === null;
    let mean: Tensor;
    let variance: Tensor;
    if (useBatchStats) {
      const n = x.size / c;
      if (this.training && n <= 1) throw new Error(`BatchNorm1d: expected more than 1 value per channel when training, got input shape ${formatShape(x.shape)}`);
      mean = x.mean(dims, true);
      variance = x.var(dims, { correction: 0, keepdim: true });
      if (this.training && this.runningMean && this.runningVar && this.numBatchesTracked) this.#updateRunningStats(mean, variance, n);
    } else {
      mean = (this.runningMean as Tensor).reshape(channelShape);
      variance = (this.runningVar as Tensor).reshape(channelShape);
    }
    let y = x.sub(mean).mul(variance.add(this.eps).rsqrt());
    if (this.weight) y = y.mul(this.weight.reshape(channelShape));
    if (this.bias) y = y.add(this.bias.reshape(channelShape));
    return y;
  }

  #updateRunningStats(mean: Tensor, variance: Tensor, n: number): void {
    noGrad(() => {
      const count = this.numBatchesTracked as Tensor;
      count.copy_(count.add(1));
      const m = this.momentum ?? 1 / count.item();
      const unbiased = variance.detach().reshape([this.numFeatures]).mul(n / (n - 1));
      const rm = this.runningMean as Tensor;
      const rv = this.runningVar as Tensor;
      rm.copy_(rm.mul(1 - m).add(mean.detach().reshape([this.numFeatures]).mul(m)));
      rv.copy_(rv.mul(1 - m).add(unbiased.mul(m)));
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.weight !== null}, trackRunningStats=${this.runningMean !== null}`;
  }
}
