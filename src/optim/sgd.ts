/** Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD. */
import { kernels } from '../backends/registry.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectBuffer, Optimizer, type ParamGroup, type ParamsArg, type StateValue } from './optimizer.js';
import { checkFinite, checkNonNegative, withoutUndefined } from './validate.js';

export interface SGDHyperparams {
  lr: number;
  momentum: number;
  dampening: number;
  /** L2 penalty: `weightDecay·param` is added to the gradient. */
  weightDecay: number;
  nesterov: boolean;
}

export type SGDOptions = Pick<SGDHyperparams, 'lr'> & Partial<SGDHyperparams>;

export type SGDState = {
  /** null until the first step with momentum, and always without momentum (torch keeps None too). */
  momentumBuffer: Float32Array | null;
};

export class SGD extends Optimizer<SGDHyperparams, SGDState> {
  constructor(params: ParamsArg<SGDHyperparams>, options: SGDOptions) {
    super('SGD', params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...withoutUndefined(options) });
  }

  protected override validateHyperparams(h: Readonly<SGDHyperparams>): void {
    checkNonNegative(this.name, 'learning rate', h.lr);
    checkNonNegative(this.name, 'momentum value', h.momentum);
    checkFinite(this.name, 'dampening value', h.dampening);
    checkNonNegative(this.name, 'weightDecay value', h.weightDecay);
    if (typeof h.nesterov !== 'boolean') throw new TypeError(`${this.name}: nesterov must be a boolean, got ${String(h.nesterov)}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new Error(`${this.name}: nesterov momentum requires a momentum > 0 and zero dampening (got momentum ${h.momentum}, dampening ${h.dampening})`);
    }
  }

  protected override updateParam(param: Tensor, data: Float32Array, grad: Float32Array, group: ParamGroup<SGDHyperparams>): void {
    let state = this.state.get(param);
    if (state === undefined) {
      state = { momentumBuffer: null };
      this.state.set(param, state);
    }
    // The buffer is born on the first step that uses momentum; the kernel then copies the gradient in.
    const firstStep = group.momentum !== 0 && state.momentumBuffer === null;
    if (firstStep) state.momentumBuffer = new Float32Array(data.length);
    kernels.sgdStep({
      param: data,
      grad,
      momentumBuffer: group.momentum !== 0 ? state.momentumBuffer : null,
      firstStep,
      lr: group.lr,
      momentum: group.momentum,
      dampening: group.dampening,
      nesterov: group.nesterov,
      weightDecay: group.weightDecay,
    });
  }

  protected override restoreState(saved: Readonly<Record<string, StateValue>>, param: Tensor, index: number): SGDState {
    return { momentumBuffer: expectBuffer(this.name, saved, 'momentumBuffer', param.size, index, true) };
  }
}
