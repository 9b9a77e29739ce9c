/** Layers: Linear, containers (Sequential, ModuleList), activations, Dropout, Identity and MLP. */
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import * as F from './functional.js';
import { kaimingUniform_, uniform_ } from './init.js';
import { Module, parameter, type AnyModule } from './module.js';

/** A module mapping one tensor to one tensor: what Sequential can chain. */
export type TensorModule = Module<[Tensor], Tensor>;

function checkFeatures(value: number, what: string, layer: string): void {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${layer}: ${what} must be a non-negative integer, got ${value}`);
}

// ---- Linear ------------------------------------------------------------------------------------

export interface LinearOptions {
  bias?: boolean;
  /** Draws the initial weights from this generator (the default generator otherwise). */
  generator?: Generator;
}

/**
 * y = x·Wᵀ + b with W [outFeatures, inFeatures]. Initialised as PyTorch does: W by Kaiming
 * uniform with a = √5, i.e. U(−1/√in, 1/√in), and b from the same range.
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkFeatures(inFeatures, 'inFeatures', 'Linear');
    checkFeatures(outFeatures, 'outFeatures', 'Linear');
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = parameter(zeros([outFeatures, inFeatures]));
    kaimingUniform_(this.weight, Math.sqrt(5), options.generator);
    if (options.bias ?? true) {
      const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
      this.bias = parameter(zeros([outFeatures]));
      uniform_(this.bias, -bound, bound, options.generator);
    } else {
      this.bias = null;
    }
  }

  forward(x: Tensor): Tensor {
    const last = x.ndim === 0 ? undefined : x.shape[x.ndim - 1];
    if (last !== this.inFeatures) {
      const got = last === undefined ? `missing (0-d input of shape ${formatShape(x.shape)})` : String(last);
      throw new Error(`Linear(${this.inFeatures}, ${this.outFeatures}): input last dim is ${got}, expected ${this.inFeatures}`);
    }
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

// ---- containers --------------------------------------------------------------------------------

/**
 * Holds modules in order under the names '0', '1', … so their parameters are registered
 * (use it instead of a plain array). It has no forward of its own.
 */
export class ModuleList<M extends AnyModule = AnyModule> extends Module<never, never> {
  // A private list (not a field Module enumerates) keeps repeats and order for iteration.
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }

  get length(): number {
    return this.#items.length;
  }

  /** The module at `index`; negative indices count from the end. */
  at(index: number): M {
    const n = this.#items.length;
    if (!Number.isInteger(index) || index < -n || index >= n) throw new RangeError(`${this.constructor.name}: index ${index} is out of range for ${n} modules`);
    return this.#items[index < 0 ? index + n : index];
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  forward(): never {
    throw new Error('ModuleList has no forward(); iterate over it and call each module');
  }
}

/** Chains modules: forward(x) feeds x through each in turn. Children are named '0', '1', …. */
export class Sequential extends Module {
  readonly #items: TensorModule[] = [];

  constructor(...modules: TensorModule[]) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: TensorModule): this {
    this.registerModule(String(this.#items.length), m as unknown as AnyModule);
    this.#items.push(m);
    return this;
  }

  get length(): number {
    return this.#items.length;
  }

  at(index: number): TensorModule {
    const n = this.#items.length;
    if (!Number.isInteger(index) || index < -n || index >= n) throw new RangeError(`${this.constructor.name}: index ${index} is out of range for ${n} modules`);
    return this.#items[index < 0 ? index + n : index];
  }

  [Symbol.iterator](): Iterator<TensorModule> {
    return this.#items[Symbol.iterator]();
  }

  forward(x: Tensor): Tensor {
    for (const m of this.#items) x = m.forward(x);
    return x;
  }
}

// ---- activations and friends -------------------------------------------------------------------

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class GELU extends Module {
  readonly approximate: F.GeluApproximate;

  constructor(options: { approximate?: F.GeluApproximate } = {}) {
    super();
    this.approximate = options.approximate ?? 'none';
    if (this.approximate !== 'none' && this.approximate !== 'tanh') {
      throw new Error(`GELU: approximate must be 'none' or 'tanh', got '${String(this.approximate)}'`);
    }
  }

  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }

  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}

/** Swish is another name for SiLU. */
export const Swish = SiLU;

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}

export class Softmax extends Module {
  constructor(readonly dim: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.softmax(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

export class LogSoftmax extends Module {
  constructor(readonly dim: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.logSoftmax(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

/** Inverted dropout, active only in training mode (see F.dropout); identity after eval(). */
export class Dropout extends Module {
  readonly p: number;
  readonly generator: Generator | undefined;

  constructor(p = 0.5, options: { generator?: Generator } = {}) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`Dropout: probability has to be between 0 and 1, but got ${p}`);
    this.p = p;
    this.generator = options.generator;
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this.generator);
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

// ---- MLP ---------------------------------------------------------------------------------------

export type ActivationName = 'relu' | 'gelu' | 'tanh' | 'silu' | 'sigmoid';

function activationModule(name: ActivationName): TensorModule {
  switch (name) {
    case 'relu':
      return new ReLU();
    case 'gelu':
      return new GELU();
    case 'tanh':
      return new Tanh();
    case 'silu':
      return new SiLU();
    case 'sigmoid':
      return new Sigmoid();
    default:
      throw new Error(`MLP: unknown activation '${String(name)}' (expected relu, gelu, tanh, silu or sigmoid)`);
  }
}

export interface MLPOptions {
  activation?: ActivationName;
  bias?: boolean;
  /** Dropout probability after each hidden activation; 0 (the default) adds no Dropout layers. */
  dropout?: number;
  generator?: Generator;
}

/**
 * A multilayer perceptron: sizes [in, h1, …, out] give Linear(in, h1), activation, [Dropout], …,
 * Linear(hk, out), with no activation after the last Linear. A Sequential, so children are '0', '1', ….
 */
export class MLP extends Sequential {
  readonly sizes: readonly number[];

  constructor(sizes: readonly number[], options: MLPOptions = {}) {
    super();
    if (sizes.length < 2) throw new Error(`MLP: sizes needs at least [in, out], got ${formatShape(sizes)}`);
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`MLP: dropout has to be between 0 and 1, but got ${p}`);
    this.sizes = Object.freeze(sizes.slice());
    for (let i = 0; i + 1 < sizes.length; i++) {
      this.append(new Linear(sizes[i], sizes[i + 1], { bias: options.bias, generator: options.generator }));
      if (i + 2 < sizes.length) {
        this.append(activationModule(options.activation ?? 'relu'));
        if (p > 0) this.append(new Dropout(p, { generator: options.generator }));
      }
    }
  }
}

// ---- loss modules ------------------------------------------------------------------------------

/** A loss as a module: forward(input, target). */
export type LossModule = Module<[Tensor, Tensor], Tensor>;

export class MSELoss extends Module<[Tensor, Tensor], Tensor> {
  constructor(readonly options: F.ReductionOptions = {}) {
    super();
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return F.mseLoss(input, target, this.options);
  }
}

export class CrossEntropyLoss extends Module<[Tensor, Tensor], Tensor> {
  constructor(readonly options: F.CrossEntropyOptions = {}) {
    super();
  }

  forward(logits: Tensor, target: Tensor): Tensor {
    return F.crossEntropy(logits, target, this.options);
  }
}

export class NLLLoss extends Module<[Tensor, Tensor], Tensor> {
  constructor(readonly options: F.NllLossOptions = {}) {
    super();
  }

  forward(logProbs: Tensor, target: Tensor): Tensor {
    return F.nllLoss(logProbs, target, this.options);
  }
}

export class BCELoss extends Module<[Tensor, Tensor], Tensor> {
  constructor(readonly options: F.BinaryCrossEntropyOptions = {}) {
    super();
  }

  forward(probs: Tensor, target: Tensor): Tensor {
    return F.binaryCrossEntropy(probs, target, this.options);
  }
}

export class BCEWithLogitsLoss extends Module<[Tensor, Tensor], Tensor> {
  constructor(readonly options: F.BinaryCrossEntropyWithLogitsOptions = {}) {
    super();
  }

  forward(logits: Tensor, target: Tensor): Tensor {
    return F.binaryCrossEntropyWithLogits(logits, target, this.options);
  }
}
