/**
 * Recurrent layers with PyTorch's semantics: the cells RNNCell, LSTMCell, GRUCell and the layers
 * RNN, LSTM, GRU (multi-layer, bidirectional, batchFirst, dropout between layers, an initial state
 * in and the final state out). Parameter names are torch's in camelCase — `weightIhL0`,
 * `weightHhL0`, `biasIhL0`, `biasHhL0`, `…L0Reverse` for the backward direction; `weightIh` … for
 * the cells — so a PyTorch state_dict loads by name once its keys are camel-cased
 * (weight_ih_l0_reverse → weightIhL0Reverse). Gates are stacked in torch's order:
 *
 *   RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)                       act = tanh or relu
 *   LSTM  i, f, g, o = σ, σ, tanh, σ of the four row blocks of W_ih x + b_ih + W_hh h + b_hh
 *         c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')
 *   GRU   r, z = σ of the first two row blocks of W_ih x + b_ih + W_hh h + b_hh
 *         n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h
 *
 * Every weight and bias starts U(−1/√H, 1/√H), as in torch. The layers compute the input
 * projection of a whole sequence as one matrix product per layer and direction
 * (x[T·B, I] · W_ihᵀ + b_ih), then run the recurrence as one fused op (ops/recurrent.ts: a GEMM
 * and a gate kernel per step, backward through time without a graph node per step).
 */
import { dropout as dropoutOp } from '../ops/dropout.js';
import { cat, stack } from '../ops/indexing.js';
import { linear } from '../ops/linear.js';
import { RECURRENT_GATES, recurrence, type RecurrentCellMode } from '../ops/recurrent.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { uniform_ } from './init.js';
import { Module, parameter } from './module.js';

/** Which recurrence: torch's mode names. */
export type RecurrentMode = 'RNN_TANH' | 'RNN_RELU' | 'LSTM' | 'GRU';
export type RNNNonlinearity = 'tanh' | 'relu';

function checkSize(value: unknown, what: string, owner: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new RangeError(`${owner}: ${what} must be a positive integer, got ${String(value)}`);
  return value;
}

function checkNonlinearity(value: unknown, owner: string): RNNNonlinearity {
  if (value !== 'tanh' && value !== 'relu') throw new Error(`${owner}: nonlinearity must be 'tanh' or 'relu', got '${String(value)}'`);
  return value;
}

// ---- the recurrence, shared by cells and layers -------------------------------------------------

const CELL_MODE: Record<RecurrentMode, RecurrentCellMode> = { RNN_TANH: 'rnnTanh', RNN_RELU: 'rnnRelu', LSTM: 'lstm', GRU: 'gru' };

/**
 * Runs gi [T, B, G] (the input projection of every step) through the recurrence from h (and c
 * for LSTM): the fused op of ops/recurrent.ts. Returns the outputs [T, B, H] and the final h and c.
 */
function runRecurrence(mode: RecurrentMode, gi: Tensor, h: Tensor, c: Tensor | null, wHh: Tensor, bHh: Tensor | null, reverse: boolean): [Tensor, Tensor, Tensor | null] {
  const states = recurrence(CELL_MODE[mode], gi, h, wHh, { c0: c, biasHh: bHh, reverse });
  const last = reverse ? 0 : gi.shape[0] - 1;
  const out = states.select(0, 0);
  return [out, out.select(0, last), mode === 'LSTM' ? states.select(0, 1).select(0, last) : null];
}

// ---- cells ---------------------------------------------------------------------------------------

export interface RNNCellBaseOptions {
  /** Whether the cell has the biases biasIh and biasHh (default true). */
  bias?: boolean;
  /** Draws the initial weights (the default generator otherwise). */
  generator?: Generator;
}

export interface RNNCellOptions extends RNNCellBaseOptions {
  /** 'tanh' (the default) or 'relu'. */
  nonlinearity?: RNNNonlinearity;
}

abstract class RNNCellBase<In extends unknown[], Out> extends Module<In, Out> {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly mode: RecurrentMode;
  weightIh: Tensor;
  weightHh: Tensor;
  biasIh: Tensor | null;
  biasHh: Tensor | null;

  constructor(name: string, mode: RecurrentMode, inputSize: number, hiddenSize: number, options: RNNCellBaseOptions) {
    super();
    this.inputSize = checkSize(inputSize, 'inputSize', name);
    this.hiddenSize = checkSize(hiddenSize, 'hiddenSize', name);
    this.mode = mode;
    const G = RECURRENT_GATES[CELL_MODE[mode]] * hiddenSize;
    const bound = 1 / Math.sqrt(hiddenSize);
    const make = (shape: number[]): Tensor => parameter(uniform_(zeros(shape), -bound, bound, options.generator));
    this.weightIh = make([G, inputSize]);
    this.weightHh = make([G, hiddenSize]);
    const bias = options.bias ?? true;
    this.biasIh = bias ? make([G]) : null;
    this.biasHh = bias ? make([G]) : null;
  }

  protected label(): string {
    return `${this.constructor.name}(${this.inputSize}, ${this.hiddenSize})`;
  }

  /** Checks x ([B, inputSize] or unbatched [inputSize]) and returns it batched plus whether it was. */
  protected batched(x: Tensor): [Tensor, boolean] {
    if (x.ndim !== 1 && x.ndim !== 2) throw new Error(`${this.label()}: input must be 1-D [inputSize] or 2-D [batch, inputSize], got shape ${formatShape(x.shape)}`);
    const last = x.shape[x.ndim - 1];
    if (last !== this.inputSize) throw new Error(`${this.label()}: input last dim is ${last}, expected inputSize ${this.inputSize} (input shape ${formatShape(x.shape)})`);
    return x.ndim === 1 ? [x.unsqueeze(0), false] : [x, true];
  }

  /** The state argument `what` batched like x, or zeros when absent. */
  protected state(s: Tensor | undefined | null, what: string, x: Tensor, wasBatched: boolean): Tensor {
    const B = x.shape[0];
    if (s === undefined || s === null) return zeros([B, this.hiddenSize]);
    const expected = wasBatched ? [B, this.hiddenSize] : [this.hiddenSize];
    if (!shapesEqual(s.shape, expected)) throw new Error(`${this.label()}: ${what} has shape ${formatShape(s.shape)}, expected ${formatShape(expected)}`);
    return wasBatched ? s : s.unsqueeze(0);
  }

  protected run(x: Tensor, h: Tensor, c: Tensor | null): [Tensor, Tensor | null] {
    const gi = linear(x, this.weightIh, this.biasIh).unsqueeze(0);
    const [, hNext, cNext] = runRecurrence(this.mode, gi, h, c, this.weightHh, this.biasHh, false);
    return [hNext, cNext];
  }

  override extraRepr(): string {
    return `${this.inputSize}, ${this.hiddenSize}${this.biasIh === null ? ', bias=false' : ''}`;
  }
}

/** h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu); torch.nn.RNNCell. forward(x, h?) → h'. */
export class RNNCell extends RNNCellBase<[Tensor, (Tensor | null)?], Tensor> {
  readonly nonlinearity: RNNNonlinearity;

  constructor(inputSize: number, hiddenSize: number, options: RNNCellOptions = {}) {
    const nonlinearity = checkNonlinearity(options.nonlinearity ?? 'tanh', 'RNNCell');
    super('RNNCell', nonlinearity === 'tanh' ? 'RNN_TANH' : 'RNN_RELU', inputSize, hiddenSize, options);
    this.nonlinearity = nonlinearity;
  }

  forward(x: Tensor, h?: Tensor | null): Tensor {
    const [xb, wasBatched] = this.batched(x);
    const [hNext] = this.run(xb, this.state(h, 'h', xb, wasBatched), null);
    return wasBatched ? hNext : hNext.squeeze(0);
  }

  override extraRepr(): string {
    return `${super.extraRepr()}${this.nonlinearity === 'relu' ? ", nonlinearity='relu'" : ''}`;
  }
}

/** torch.nn.LSTMCell, gates i, f, g, o. forward(x, [h, c]?) → [h', c']. */
export class LSTMCell extends RNNCellBase<[Tensor, ([Tensor, Tensor] | null)?], [Tensor, Tensor]> {
  constructor(inputSize: number, hiddenSize: number, options: RNNCellBaseOptions = {}) {
    super('LSTMCell', 'LSTM', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, state?: [Tensor, Tensor] | null): [Tensor, Tensor] {
    const [xb, wasBatched] = this.batched(x);
    const h = this.state(state?.[0], 'h', xb, wasBatched);
    const c = this.state(state?.[1], 'c', xb, wasBatched);
    const [hNext, cNext] = this.run(xb, h, c);
    return wasBatched ? [hNext, cNext as Tensor] : [hNext.squeeze(0), (cNext as Tensor).squeeze(0)];
  }
}

/** torch.nn.GRUCell, gates r, z, n. forward(x, h?) → h'. */
export class GRUCell extends RNNCellBase<[Tensor, (Tensor | null)?], Tensor> {
  constructor(inputSize: number, hiddenSize: number, options: RNNCellBaseOptions = {}) {
    super('GRUCell', 'GRU', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, h?: Tensor | null): Tensor {
    const [xb, wasBatched] = this.batched(x);
    const [hNext] = this.run(xb, this.state(h, 'h', xb, wasBatched), null);
    return wasBatched ? hNext : hNext.squeeze(0);
  }
}

// ---- layers --------------------------------------------------------------------------------------

export interface RNNBaseOptions {
  /** Stacked layers (default 1); layer l > 0 reads layer l − 1's output. */
  numLayers?: number;
  /** Whether every layer has the biases biasIhL… and biasHhL… (default true). */
  bias?: boolean;
  /** Input and output are [B, T, …] instead of [T, B, …] (the states stay [L·D, B, H]). */
  batchFirst?: boolean;
  /** Dropout probability on each layer's output except the last's, in training mode only (default 0). */
  dropout?: number;
  /** Runs a second recurrence backwards in time; outputs are [forward, backward] concatenated. */
  bidirectional?: boolean;
  /** Draws the initial weights (the default generator otherwise). */
  generator?: Generator;
  /** Draws the dropout masks between layers (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

export interface RNNOptions extends RNNBaseOptions {
  /** 'tanh' (the default) or 'relu'. */
  nonlinearity?: RNNNonlinearity;
}

interface Weights {
  wIh: Tensor;
  wHh: Tensor;
  bIh: Tensor | null;
  bHh: Tensor | null;
}

abstract class RNNBase<In extends unknown[], Out> extends Module<In, Out> {
  readonly mode: RecurrentMode;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  readonly dropoutGenerator: Generator | undefined;

  constructor(name: string, mode: RecurrentMode, inputSize: number, hiddenSize: number, options: RNNBaseOptions) {
    super();
    this.mode = mode;
    this.inputSize = checkSize(inputSize, 'inputSize', name);
    this.hiddenSize = checkSize(hiddenSize, 'hiddenSize', name);
    this.numLayers = checkSize(options.numLayers ?? 1, 'numLayers', name);
    this.bias = options.bias ?? true;
    this.batchFirst = options.batchFirst ?? false;
    this.bidirectional = options.bidirectional ?? false;
    const p = options.dropout ?? 0;
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`${name}: dropout must be a probability in [0, 1], got ${String(p)}`);
    this.dropout = p;
    this.dropoutGenerator = options.dropoutGenerator;
    const G = RECURRENT_GATES[CELL_MODE[mode]] * hiddenSize;
    const D = this.bidirectional ? 2 : 1;
    const bound = 1 / Math.sqrt(hiddenSize);
    // torch's order: per layer, per direction, weight_ih, weight_hh, bias_ih, bias_hh.
    for (let l = 0; l < this.numLayers; l++) {
      const layerInput = l === 0 ? inputSize : D * hiddenSize;
      for (let d = 0; d < D; d++) {
        const sfx = `L${l}${d === 1 ? 'Reverse' : ''}`;
        const shapes: [string, number[]][] = [
          [`weightIh${sfx}`, [G, layerInput]],
          [`weightHh${sfx}`, [G, hiddenSize]],
        ];
        if (this.bias) shapes.push([`biasIh${sfx}`, [G]], [`biasHh${sfx}`, [G]]);
        for (const [n, shape] of shapes) this.registerParameter(n, parameter(uniform_(zeros(shape), -bound, bound, options.generator)));
      }
    }
  }

  /** The parameters of layer l, direction d, read by name (so reassigning a field is honoured). */
  #weights(l: number, d: number): Weights {
    const fields = this as unknown as Record<string, Tensor | null | undefined>;
    const sfx = `L${l}${d === 1 ? 'Reverse' : ''}`;
    return { wIh: fields[`weightIh${sfx}`] as Tensor, wHh: fields[`weightHh${sfx}`] as Tensor, bIh: fields[`biasIh${sfx}`] ?? null, bHh: fields[`biasHh${sfx}`] ?? null };
  }

  protected label(): string {
    return `${this.constructor.name}(${this.inputSize}, ${this.hiddenSize})`;
  }

  /**
   * The whole computation. x: [T, B, I] ([B, T, I] with batchFirst) or unbatched [T, I]; h0 (and
   * c0) [L·D, B, H] or unbatched [L·D, H]. Returns the output and the final h (and c), in the
   * input's layout.
   */
  protected run(x: Tensor, h0: Tensor | null | undefined, c0: Tensor | null | undefined): [Tensor, Tensor, Tensor | null] {
    const name = this.label();
    if (x.ndim !== 2 && x.ndim !== 3) {
      throw new Error(`${name}: input must be 2-D (unbatched [T, inputSize]) or 3-D (${this.batchFirst ? '[B, T, inputSize] with batchFirst' : '[T, B, inputSize]'}), got shape ${formatShape(x.shape)}`);
    }
    const last = x.shape[x.ndim - 1];
    if (last !== this.inputSize) throw new Error(`${name}: input last dim is ${last}, expected inputSize ${this.inputSize} (input shape ${formatShape(x.shape)})`);
    const batched = x.ndim === 3;
    // Internally time-major [T, B, I].
    const xs = !batched ? x.unsqueeze(1) : this.batchFirst ? x.transpose(0, 1) : x;
    const [T, B] = xs.shape;
    if (T < 1 || B < 1) throw new Error(`${name}: input must have at least one time step and one batch element, got shape ${formatShape(x.shape)}`);
    const H = this.hiddenSize;
    const D = this.bidirectional ? 2 : 1;
    const L = this.numLayers;
    const expected = batched ? [L * D, B, H] : [L * D, H];
    const initial = (s: Tensor | null | undefined, what: string): Tensor | null => {
      if (s === undefined || s === null) return null;
      if (!shapesEqual(s.shape, expected)) throw new Error(`${name}: ${what} has shape ${formatShape(s.shape)}, expected ${formatShape(expected)} ([numLayers·numDirections, ${batched ? 'batch, ' : ''}hiddenSize])`);
      return batched ? s : s.unsqueeze(1);
    };
    const h0b = initial(h0, 'h0');
    const isLSTM = this.mode === 'LSTM';
    const c0b = isLSTM ? initial(c0, 'c0') : null;

    const hN: Tensor[] = [];
    const cN: Tensor[] = [];
    let input = xs;
    for (let l = 0; l < L; l++) {
      const I = input.shape[2];
      const flat = input.reshape([T * B, I]);
      const outs: Tensor[] = [];
      for (let d = 0; d < D; d++) {
        const { wIh, wHh, bIh, bHh } = this.#weights(l, d);
        // One matrix product for the whole sequence: [T·B, I] · W_ihᵀ + b_ih → [T, B, G].
        const gi = linear(flat, wIh, bIh).reshape([T, B, wIh.shape[0]]);
        const k = l * D + d;
        const h = h0b ? h0b.select(0, k) : zeros([B, H]);
        const c: Tensor | null = isLSTM ? (c0b ? c0b.select(0, k) : zeros([B, H])) : null;
        const [out, hLast, cLast] = runRecurrence(this.mode, gi, h, c, wHh, bHh, d === 1);
        outs.push(out);
        hN.push(hLast);
        if (cLast) cN.push(cLast);
      }
      input = D === 1 ? outs[0] : cat(outs, 2);
      if (l < L - 1 && this.dropout > 0 && this.training) input = dropoutOp(input, this.dropout, true, this.dropoutGenerator);
    }
    let out = input;
    let hOut = stack(hN, 0);
    let cOut = isLSTM ? stack(cN, 0) : null;
    if (!batched) {
      out = out.squeeze(1);
      hOut = hOut.squeeze(1);
      cOut = cOut ? cOut.squeeze(1) : null;
    } else if (this.batchFirst) {
      out = out.transpose(0, 1);
    }
    return [out, hOut, cOut];
  }

  override extraRepr(): string {
    const parts = [`${this.inputSize}, ${this.hiddenSize}`];
    if (this.numLayers !== 1) parts.push(`numLayers=${this.numLayers}`);
    if (!this.bias) parts.push('bias=false');
    if (this.batchFirst) parts.push('batchFirst=true');
    if (this.dropout !== 0) parts.push(`dropout=${this.dropout}`);
    if (this.bidirectional) parts.push('bidirectional=true');
    return parts.join(', ');
  }
}

/**
 * torch.nn.RNN: an Elman RNN with tanh or relu. forward(x, h0?) → [output, hN]; output is
 * [T, B, D·H] ([B, T, D·H] with batchFirst), hN [numLayers·D, B, H] (D = 2 when bidirectional).
 */
export class RNN extends RNNBase<[Tensor, (Tensor | null)?], [Tensor, Tensor]> {
  readonly nonlinearity: RNNNonlinearity;

  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    const nonlinearity = checkNonlinearity(options.nonlinearity ?? 'tanh', 'RNN');
    super('RNN', nonlinearity === 'tanh' ? 'RNN_TANH' : 'RNN_RELU', inputSize, hiddenSize, options);
    this.nonlinearity = nonlinearity;
  }

  forward(x: Tensor, h0?: Tensor | null): [Tensor, Tensor] {
    const [out, hN] = this.run(x, h0, null);
    return [out, hN];
  }

  override extraRepr(): string {
    return `${super.extraRepr()}${this.nonlinearity === 'relu' ? ", nonlinearity='relu'" : ''}`;
  }
}

/** torch.nn.LSTM. forward(x, [h0, c0]?) → [output, [hN, cN]]. */
export class LSTM extends RNNBase<[Tensor, ([Tensor, Tensor] | null)?], [Tensor, [Tensor, Tensor]]> {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super('LSTM', 'LSTM', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, state?: [Tensor, Tensor] | null): [Tensor, [Tensor, Tensor]] {
    if (state !== undefined && state !== null && !(Array.isArray(state) && state.length === 2)) {
      throw new Error(`${this.label()}: the initial state must be a pair [h0, c0]`);
    }
    if (state && (state[0] === null || state[0] === undefined || state[1] === null || state[1] === undefined)) {
      throw new Error(`${this.label()}: the initial state needs both h0 and c0`);
    }
    const [out, hN, cN] = this.run(x, state?.[0], state?.[1]);
    return [out, [hN, cN as Tensor]];
  }
}

/** torch.nn.GRU, gates r, z, n. forward(x, h0?) → [output, hN]. */
export class GRU extends RNNBase<[Tensor, (Tensor | null)?], [Tensor, Tensor]> {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super('GRU', 'GRU', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, h0?: Tensor | null): [Tensor, Tensor] {
    const [out, hN] = this.run(x, h0, null);
    return [out, hN];
  }
}
