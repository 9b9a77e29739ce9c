/**
 * Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay: the parameter shrinks
 * by lr·weightDecay before the update), with optional AMSGrad: torch.optim.Adam / AdamW.
 */
import { kernels } from '../backends/registry.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectBuffer, Optimizer, type ParamGroup, type ParamsArg, type StateValue } from './optimizer.js';
import { checkNonNegative, withoutUndefined } from './validate.js';

export interface AdamHyperparams {
  lr: number;
  /** Decay rates of the running mean of the gradient and of its square. */
  betas: readonly [number, number];
  /** Added to the denominator for numerical stability. */
  eps: number;
  weightDecay: number;
  /** Divide by the running maximum of the second moment (AMSGrad) instead of the moment itself. */
  amsgrad: boolean;
}

export type AdamOptions = Partial<AdamHyperparams>;

export type AdamState = {
  /** Steps taken by this parameter (1-based after the first), for bias correction. */
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Present only with AMSGrad. */
  maxExpAvgSq: Float32Array | null;
};

/** What Adam and AdamW share; they differ only in name, default decay and where the decay goes. */
export abstract class AdamBase extends Optimizer<AdamHyperparams, AdamState> {
  /** True for AdamW: decay shrinks the parameter instead of being added to the gradient. */
  readonly decoupledWeightDecay: boolean;

  protected constructor(name: string, params: ParamsArg<AdamHyperparams>, defaults: AdamHyperparams, decoupledWeightDecay: boolean) {
    super(name, params, defaults);
    this.decoupledWeightDecay = decoupledWeightDecay;
  }

  protected override validateHyperparams(h: Readonly<AdamHyperparams>): void {
    checkNonNegative(this.name, 'learning rate', h.lr);
    checkNonNegative(this.name, 'epsilon value', h.eps);
    if (!Array.isArray(h.betas) || h.betas.length !== 2) throw new Error(`${this.name}: betas must be a pair [beta1, beta2], got ${String(h.betas)}`);
    h.betas.forEach((b, i) => {
      if (typeof b !== 'number' || !(b >= 0 && b < 1)) throw new Error(`${this.name}: invalid beta parameter at index ${i}: ${b}`);
    });
    checkNonNegative(this.name, 'weightDecay value', h.weightDecay);
    if (typeof h.amsgrad !== 'boolean') throw new TypeError(`${this.name}: amsgrad must be a boolean, got ${String(h.amsgrad)}`);
  }

  protected override updateParam(param: Tensor, data: Float32Array, grad: Float32Array, group: ParamGroup<AdamHyperparams>): void {
    let state = this.state.get(param);
    if (state === undefined) {
      state = { step: 0, expAvg: new Float32Array(data.length), expAvgSq: new Float32Array(data.length), maxExpAvgSq: null };
      this.state.set(param, state);
    }
    // Also covers amsgrad switched on for a group mid-training: the running max starts at zero.
    if (group.amsgrad && state.maxExpAvgSq === null) state.maxExpAvgSq = new Float32Array(data.length);
    state.step += 1;
    kernels.adamStep({
      param: data,
      grad,
      expAvg: state.expAvg,
      expAvgSq: state.expAvgSq,
      maxExpAvgSq: group.amsgrad ? state.maxExpAvgSq : null,
      lr: group.lr,
      beta1: group.betas[0],
      beta2: group.betas[1],
      eps: group.eps,
      weightDecay: this.decoupledWeightDecay ? 0 : group.weightDecay,
      decoupledWeightDecay: this.decoupledWeightDecay ? group.weightDecay : 0,
      step: state.step,
    });
  }

  protected override restoreState(saved: Readonly<Record<string, StateValue>>, param: Tensor, index: number): AdamState {
    const step = saved.step;
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
      throw new Error(`${this.name}: loaded state of parameter ${index} has an invalid step ${String(step)}`);
    }
    return {
      step,
      expAvg: expectBuffer(this.name, saved, 'expAvg', param.size, index),
      expAvgSq: expectBuffer(this.name, saved, 'expAvgSq', param.size, index),
      maxExpAvgSq: expectBuffer(this.name, saved, 'maxExpAvgSq', param.size, index, true),
    };
  }
}

export class Adam extends AdamBase {
  constructor(params: ParamsArg<AdamHyperparams>, options: AdamOptions = {}) {
    super('Adam', params, adamDefaults(0, options), false);
  }
}

/** Adam with decoupled weight decay (Loshchilov & Hutter); the decay defaults to 1e-2 as in torch. */
export class AdamW extends AdamBase {
  constructor(params: ParamsArg<AdamHyperparams>, options: AdamOptions = {}) {
    super('AdamW', params, adamDefaults(1e-2, options), true);
  }
}

function adamDefaults(weightDecay: number, options: AdamOptions): AdamHyperparams {
  const o = withoutUndefined(options);
  return { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay, amsgrad: false, ...o };
}
