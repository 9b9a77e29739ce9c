/**
 * The optimizer base class, torch.optim.Optimizer's contract in camelCase: parameters in groups
 * that each carry their own hyperparameters, per-parameter state, `zeroGrad()`, `step()`, and a
 * state dict of plain values plus Float32Arrays that restores training exactly.
 *
 * Subclasses supply the defaults, their validation and the update of one parameter; the update
 * itself runs in a fused kernel (`kernels.sgdStep`, `kernels.adamStep`) over the parameter's
 * storage, so a faster backend replaces it without the optimizer knowing.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** A value in a param group besides `params`: numbers, flags, or tuples such as Adam's betas. */
export type HyperparamValue = number | boolean | string | null | readonly number[];

/** What every optimizer's hyperparameters have: the learning rate schedules rewrite. */
export interface OptimizerHyperparams {
  lr: number;
}

/**
 * One group of parameters with its hyperparameters. `initialLr` is set by the first LR scheduler
 * attached to the optimizer (torch's `initial_lr`), and is what schedules start from.
 *
 * `lrScale` is this group's learning rate relative to the run's: a training loop that computes
 * one schedule value per step sets `group.lr = schedule(step) · lrScale` (src/train/trainer.ts),
 * so groups with different rates — μP's hidden matrices train at lr/m — keep their ratio through
 * warmup and decay. Absent means 1. The optimizer itself only stores it (and saves it in state
 * dicts); its update uses `lr`.
 */
export type ParamGroup<H extends OptimizerHyperparams = OptimizerHyperparams> = H & {
  params: Tensor[];
  initialLr?: number;
  lrScale?: number;
};

/** A param group as given to the constructor: the parameters plus any hyperparameters to override. */
export type ParamGroupSpec<H extends OptimizerHyperparams = OptimizerHyperparams> = Partial<H> & {
  params: Iterable<Tensor>;
  initialLr?: number;
  lrScale?: number;
};

/** Parameters (one group with the defaults), or groups with per-group overrides, like torch. */
export type ParamsArg<H extends OptimizerHyperparams = OptimizerHyperparams> = Iterable<Tensor> | Iterable<ParamGroupSpec<H>>;

/** A value of per-parameter state: buffers shaped like the parameter, step counts, or absent buffers. */
export type StateValue = number | boolean | null | Float32Array;
export type ParamState = Record<string, StateValue>;

/** A serialisable param group: hyperparameters, with params replaced by their indices (torch's layout). */
export type ParamGroupStateDict = { params: number[] } & Record<string, HyperparamValue | number[] | undefined>;

/**
 * Everything needed to resume: `state` keyed by the parameter's index in the order of
 * `paramGroups` (only parameters that have state appear), and the groups' hyperparameters.
 * Apart from the Float32Array buffers every value is plain JSON.
 */
export interface OptimizerStateDict {
  state: Record<number, Record<string, StateValue>>;
  paramGroups: ParamGroupStateDict[];
}

export abstract class Optimizer<H extends OptimizerHyperparams = OptimizerHyperparams, S extends ParamState = ParamState> {
  /** The optimizer's name, used in every error message ("SGD: …"). */
  readonly name: string;
  /** The hyperparameters a group gets for anything it does not override. */
  readonly defaults: Readonly<H>;
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state (momentum buffers, moments, step counts), created on a parameter's first step. */
  readonly state = new Map<Tensor, S>();

  protected constructor(name: string, params: ParamsArg<H>, defaults: H) {
    this.name = name;
    this.validateHyperparams(defaults);
    this.defaults = Object.freeze(copyHyperparams(defaults));
    if (params instanceof Tensor) {
      throw new TypeError(`${name}: params must be an iterable of tensors or param groups, not a single tensor; wrap it in an array`);
    }
    const items = [...(params as Iterable<Tensor | ParamGroupSpec<H>>)];
    if (items.length === 0) throw new Error(`${name}: optimizer got an empty parameter list`);
    if (items.every((item) => item instanceof Tensor)) {
      this.addGroup(items as Tensor[], {});
    } else {
      items.forEach((item, i) => {
        if (item instanceof Tensor) {
          throw new TypeError(`${name}: parameters must be all tensors or all param groups ({ params, ... }), item ${i} is a tensor among groups`);
        }
        this.addParamGroup(item);
      });
    }
  }

  /** Throws `${name}: invalid …` for a hyperparameter out of range. Called for defaults and each group. */
  protected abstract validateHyperparams(h: Readonly<H>): void;

  /**
   * Applies one update to `param` (its elements are `data`, written in place) from `grad` (a
   * contiguous view of the gradient, read only), creating its state on the first call.
   */
  protected abstract updateParam(param: Tensor, data: Float32Array, grad: Float32Array, group: ParamGroup<H>): void;

  /** Rebuilds a parameter's state from a state dict entry, checking its keys and buffer sizes. */
  protected abstract restoreState(saved: Readonly<Record<string, StateValue>>, param: Tensor, index: number): S;

  /** Adds a group (torch's `add_param_group`), e.g. to unfreeze layers mid-training. */
  addParamGroup(spec: ParamGroupSpec<H>): void {
    const { params, ...overrides } = spec;
    this.addGroup(params, overrides as Partial<H>);
  }

  private addGroup(params: Iterable<Tensor>, overrides: Partial<H> & { initialLr?: number; lrScale?: number }): void {
    if (params instanceof Tensor) {
      throw new TypeError(`${this.name}: params must be an iterable of tensors, not a single tensor; wrap it in an array`);
    }
    if (params === null || typeof params !== 'object' || !(Symbol.iterator in params)) {
      throw new TypeError(`${this.name}: param group ${this.paramGroups.length} needs params, an iterable of tensors`);
    }
    const list = [...params];
    const seen = new Set<Tensor>(this.paramGroups.flatMap((g) => g.params));
    const groupIndex = this.paramGroups.length;
    list.forEach((p, i) => {
      const label = groupIndex === 0 ? `parameter ${i}` : `parameter ${i} of group ${groupIndex}`;
      checkParameter(`${this.name}: ${label}`, p);
      if (seen.has(p)) throw new Error(`${this.name}: ${label} appears more than once among the optimizer's parameters`);
      seen.add(p);
    });
    const group = { ...copyHyperparams(this.defaults as H), ...copyHyperparams(overrides), params: list } as ParamGroup<H>;
    this.validateHyperparams(group);
    this.checkLrScale(group, groupIndex);
    this.paramGroups.push(group);
  }

  /** Forgets all gradients (set to null, torch's default `set_to_none=True`), or zeroes them in place. */
  zeroGrad(setToNone = true): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (p.grad === null) continue;
          if (setToNone) p.grad = null;
          else p.grad.zero_();
        }
      }
    });
  }

  /** One update of every parameter that has a gradient; parameters whose grad is null are skipped. */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (p.grad === null) continue;
          this.updateParam(p, paramData(p), this.gradData(p), group);
        }
      }
    });
  }

  /** Copies of the state and hyperparameters; later steps do not change a dict already taken. */
  stateDict(): OptimizerStateDict {
    const state: Record<number, Record<string, StateValue>> = {};
    const paramGroups: ParamGroupStateDict[] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const indices: number[] = [];
      for (const p of group.params) {
        const s = this.state.get(p);
        if (s !== undefined) state[index] = copyState(s);
        indices.push(index++);
      }
      const { params: _params, ...hyper } = group;
      paramGroups.push({ ...copyHyperparams(hyper as Record<string, HyperparamValue | undefined>), params: indices });
    }
    return { state, paramGroups };
  }

  /**
   * Restores a dict from `stateDict()` onto this optimizer's parameters, matched by position (the
   * groups and their sizes must agree, as in torch). Buffers are copied, so the dict stays usable.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const saved = dict.paramGroups;
    if (!Array.isArray(saved) || saved.length !== this.paramGroups.length) {
      throw new Error(`${this.name}: loaded state dict has ${Array.isArray(saved) ? saved.length : 'no'} parameter groups, the optimizer has ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    saved.forEach((g, gi) => {
      const params = this.paramGroups[gi].params;
      if (!Array.isArray(g.params) || g.params.length !== params.length) {
        throw new Error(
          `${this.name}: loaded state dict's group ${gi} has ${Array.isArray(g.params) ? g.params.length : 'no'} parameters, the optimizer's group ${gi} has ${params.length}`,
        );
      }
      g.params.forEach((index, k) => byIndex.set(index, params[k]));
    });
    // Validate everything before changing anything, so a bad dict leaves the optimizer as it was.
    const newGroups = saved.map((g, gi) => {
      const { params: _indices, ...hyper } = g;
      // Saved values win; a key the dict lacks (e.g. initialLr of a scheduler made since) is kept.
      const { params, ...current } = this.paramGroups[gi];
      const group = { ...copyHyperparams(current), ...copyHyperparams(hyper as Record<string, HyperparamValue | undefined>), params } as ParamGroup<H>;
      this.validateHyperparams(group);
      this.checkLrScale(group, gi);
      return group;
    });
    const newState = new Map<Tensor, S>();
    for (const [key, entry] of Object.entries(dict.state ?? {})) {
      const index = Number(key);
      const param = byIndex.get(index);
      if (param === undefined) throw new Error(`${this.name}: loaded state dict has state for parameter ${key}, which no group lists`);
      newState.set(param, this.restoreState(copyState(entry), param, index));
    }
    newGroups.forEach((g, gi) => (this.paramGroups[gi] = g));
    this.state.clear();
    for (const [p, s] of newState) this.state.set(p, s);
  }

  private checkLrScale(group: ParamGroup<H>, index: number): void {
    const s = group.lrScale;
    if (s !== undefined && !(typeof s === 'number' && Number.isFinite(s) && s > 0)) {
      throw new Error(`${this.name}: param group ${index} has an invalid lrScale ${String(s)} (expected a positive number)`);
    }
  }

  /** The gradient of `p` as a contiguous Float32Array of p's size (a copy only when not contiguous). */
  private gradData(p: Tensor): Float32Array {
    const grad = p.grad as Tensor;
    if (grad.dtype !== 'float32') throw new TypeError(`${this.name}: gradient has dtype ${grad.dtype}, expected float32`);
    if (!shapesEqual(grad.shape, p.shape)) {
      throw new Error(`${this.name}: gradient of shape ${formatShape(grad.shape)} does not match its parameter's shape ${formatShape(p.shape)}`);
    }
    const g = grad.contiguous();
    return (g.storage as Float32Array).subarray(g.offset, g.offset + g.size);
  }
}

/** The parameter's elements, in place: a view of its storage, which every view of it shares. */
function paramData(p: Tensor): Float32Array {
  return (p.storage as Float32Array).subarray(p.offset, p.offset + p.size);
}

/**
 * Optimizers write the storage of a parameter directly, which is right only for a dense float32
 * leaf: a non-leaf would be recomputed, and a strided view's elements are not one contiguous run.
 */
function checkParameter(label: string, p: unknown): asserts p is Tensor {
  if (!(p instanceof Tensor)) throw new TypeError(`${label} is not a Tensor`);
  if (p.dtype !== 'float32') throw new TypeError(`${label} has dtype ${p.dtype}; only float32 tensors can be optimized`);
  if (!p.isLeaf) throw new Error(`${label} is not a leaf tensor (it was computed by ${p.gradFn?.name ?? 'an op'}); optimize the leaf, or detach() it first`);
  if (!p.requiresGrad) throw new Error(`${label} does not require grad; set requiresGrad = true`);
  if (!p.isContiguous) throw new Error(`${label} (shape ${formatShape(p.shape)}) is not contiguous; optimize a contiguous tensor (e.g. p.contiguous().detach().requiresGrad_())`);
}

/** Copies arrays so that groups, defaults and state dicts never share a mutable tuple. */
function copyHyperparams<T extends object>(h: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.slice() : v;
  }
  return out as T;
}

function copyState(s: Readonly<Record<string, StateValue>>): Record<string, StateValue> {
  const out: Record<string, StateValue> = {};
  for (const [k, v] of Object.entries(s)) out[k] = v instanceof Float32Array ? v.slice() : v;
  return out;
}

/** A Float32Array of `size` elements from a state dict entry, or a clear error; null when allowed and absent. */
export function expectBuffer(name: string, saved: Readonly<Record<string, StateValue>>, key: string, size: number, index: number, nullable: true): Float32Array | null;
export function expectBuffer(name: string, saved: Readonly<Record<string, StateValue>>, key: string, size: number, index: number, nullable?: false): Float32Array;
export function expectBuffer(
  name: string,
  saved: Readonly<Record<string, StateValue>>,
  key: string,
  size: number,
  index: number,
  nullable = false,
): Float32Array | null {
  const v = saved[key];
  if ((v === null || v === undefined) && nullable) return null;
  if (!(v instanceof Float32Array)) throw new TypeError(`${name}: loaded state of parameter ${index} has no Float32Array '${key}'`);
  if (v.length !== size) throw new Error(`${name}: loaded state of parameter ${index}: '${key}' has ${v.length} elements, the parameter has ${size}`);
  return v;
}
