/**
 * RecurrentLM: a char-rnn-style language model (Karpathy's char-rnn, the data set TensorLM trains
 * on comes from it) built from one RecurrentLMConfig. Read top to bottom:
 *
 *   ids [B, T] ─ tokEmb ─ dropout ─ rnn (LSTM / GRU / RNN, nLayers, dropout between layers) ─ dropout ─ head ─ logits [B, T, V]
 *
 * It offers what the training core, evaluation and generation use of a TransformerLM — forward
 * with targets (mean cross-entropy), generateStream / generate, safetensors — so `tensorlm train
 * --preset char-lstm` runs through the same loop. Its "cache" is the recurrent state (h, and c
 * for LSTM): constant size, however long the context; generation feeds the prompt once and then
 * one token at a time, carrying the state, with no context limit.
 *
 * State-dict names: tokEmb.weight, rnn.weightIhL0, rnn.weightHhL0, rnn.biasIhL0, rnn.biasHhL0, …
 * (torch's names in camelCase, see nn/recurrent.ts), head.weight, head.bias (untied only).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { Embedding } from '../nn/embedding.js';
import * as F from '../nn/functional.js';
import { Dropout, Linear } from '../nn/layers.js';
import { GRU, LSTM, RNN } from '../nn/recurrent.js';
import { crossEntropy } from '../ops/fused.js';
import { tensor, zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { CausalLM } from './causal-lm.js';
import { resolveRecurrentConfig, type RecurrentLMConfig, type RecurrentLMConfigInput } from './config.js';
import { checkSamplingOptions, sampleNext } from './sampling.js';
import type { GenerateOptions, LMForwardOptions, LMOutput } from './transformer.js';

/**
 * The carried state of B sequences: h [nLayers, B, H] (and c for LSTM), replaced after every
 * forward that is given it. `length` counts the tokens it has consumed.
 */
export class RecurrentState {
  h: Tensor;
  c: Tensor | null;
  length = 0;

  constructor(
    readonly batch: number,
    h: Tensor,
    c: Tensor | null,
  ) {
    this.h = h;
    this.c = c;
  }

  /** Back to the zero state (a new conversation or document). */
  reset(): void {
    this.h = zeros(this.h.shape);
    this.c = this.c ? zeros(this.c.shape) : null;
    this.length = 0;
  }
}

export interface RecurrentForwardOptions extends LMForwardOptions {
  /**
   * Start from this state instead of zeros, and leave the final state in it (detached from the
   * graph: truncated backpropagation through time across calls).
   */
  state?: RecurrentState | null;
}

export interface RecurrentGenerateOptions extends GenerateOptions {
  /** Continue from this state (the tokens so far); it holds the state after the last fed token. */
  state?: RecurrentState;
}

export interface RecurrentLMOptions {
  /** Draws the initial weights (the default generator otherwise). */
  generator?: Generator;
  /** Draws the dropout masks (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

export class RecurrentLM extends CausalLM<[Tensor, (Tensor | null)?, RecurrentForwardOptions?], LMOutput, RecurrentGenerateOptions> {
  readonly config: RecurrentLMConfig;
  tokEmb: Embedding;
  drop: Dropout;
  rnn: LSTM | GRU | RNN;
  head: Linear | null;

  constructor(config: RecurrentLMConfigInput, options: RecurrentLMOptions = {}) {
    super();
    const c = resolveRecurrentConfig(config);
    this.config = c;
    const gen = options.generator;
    // torch's initialisations: embedding N(0, 1), the recurrence U(±1/√H), the head Kaiming-uniform.
    this.tokEmb = new Embedding(c.vocabSize, c.embedDim, { generator: gen });
    this.drop = new Dropout(c.dropout, { generator: options.dropoutGenerator });
    const layerOptions = { numLayers: c.nLayers, dropout: c.dropout, batchFirst: true, generator: gen, dropoutGenerator: options.dropoutGenerator };
    this.rnn =
      c.arch === 'lstm'
        ? new LSTM(c.embedDim, c.hiddenSize, layerOptions)
        : c.arch === 'gru'
          ? new GRU(c.embedDim, c.hiddenSize, layerOptions)
          : new RNN(c.embedDim, c.hiddenSize, { ...layerOptions, nonlinearity: c.nonlinearity });
    this.head = c.tieWeights ? null : new Linear(c.hiddenSize, c.vocabSize, { generator: gen });
  }

  /** The readout matrix [V, H]: the head's, or the token embedding when tied. */
  get headWeight(): Tensor {
    return this.head ? this.head.weight : this.tokEmb.weight;
  }

  /** A zero state for `batch` sequences (the recurrent counterpart of TransformerLM.createCache). */
  createCache(batch = 1): RecurrentState {
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`RecurrentLM: batch must be a positive integer, got ${batch}`);
    const shape = [this.config.nLayers, batch, this.config.hiddenSize];
    return new RecurrentState(batch, zeros(shape), this.config.arch === 'lstm' ? zeros(shape) : null);
  }

  /**
   * ids [B, T] int32 → logits [B, T, V]; with targets [B, T] also the mean cross-entropy (targets
   * of −100 are ignored). With `state`, starts from it and stores the final state in it.
   */
  forward(ids: Tensor, targets: Tensor | null = null, options: RecurrentForwardOptions = {}): LMOutput {
    if (options.cache) throw new Error('RecurrentLM: a recurrent model has no KV cache; pass its state (createCache) as `state`');
    if (options.positions || options.documentIds) throw new Error('RecurrentLM: packed rows (positions/documentIds) are not supported by a recurrent model; give one document per row');
    const x = this.hidden(ids, options.state ?? null);
    const [b, t, h] = x.shape;
    const logits = this.#readout(x.reshape([b * t, h])).view([b, t, this.config.vocabSize]);
    return { logits, loss: targets ? crossEntropy(logits, targets) : null };
  }

  /** The top layer's outputs [B, T, hiddenSize] after dropout: everything but the head. */
  hidden(ids: Tensor, state: RecurrentState | null = null): Tensor {
    if (ids.dtype !== 'int32' || ids.ndim !== 2 || ids.shape[1] === 0) throw new Error(`RecurrentLM: ids must be a non-empty int32 tensor [B, T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    const b = ids.shape[0];
    if (state && state.batch !== b) throw new Error(`RecurrentLM: the state holds ${state.batch} sequences, ids ${b}`);
    const x = this.drop.forward(this.tokEmb.forward(ids));
    let out: Tensor;
    if (this.rnn instanceof LSTM) {
      const [y, [h, c]] = this.rnn.forward(x, state ? [state.h, state.c as Tensor] : null);
      out = y;
      if (state) [state.h, state.c] = [h.detach(), c.detach()];
    } else {
      const [y, h] = this.rnn.forward(x, state ? state.h : null);
      out = y;
      if (state) state.h = h.detach();
    }
    if (state) state.length += ids.shape[1];
    return this.drop.forward(out);
  }

  #readout(x: Tensor): Tensor {
    return this.head ? this.head.forward(x) : F.linear(x, this.tokEmb.weight);
  }

  /** Feeds ids [B, t] through the state (updating it) and returns the next-token logits [B, V]. No grad. */
  step(ids: Tensor, state: RecurrentState): Tensor {
    return noGrad(() => {
      const x = this.hidden(ids, state);
      return this.#readout(x.select(1, x.shape[1] - 1));
    });
  }

  /**
   * Generates tokens after ids [B, T] (or [T]), yielding the new token of every row at each step:
   * the prompt goes through the recurrence once, then each token is fed with the carried state.
   * Runs in eval mode without gradients; modes are restored afterwards. Temperature 0 is greedy.
   * (keepOnOverflow has nothing to do here: the state has no length limit.)
   */
  *generateStream(ids: Tensor, options: RecurrentGenerateOptions): IterableIterator<Int32Array> {
    const { maxNewTokens } = options;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    checkSamplingOptions(options);
    if (options.cache) throw new Error('generate: a recurrent model has no KV cache; continue a sequence with `state`');
    const context = ids.ndim === 1 ? ids.unsqueeze(0) : ids;
    if (context.dtype !== 'int32' || context.ndim !== 2 || context.shape[1] === 0) throw new Error(`generate: ids must be a non-empty int32 tensor [B, T] or [T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    if (maxNewTokens === 0) return;
    const b = context.shape[0];
    const modes = this.modules().map((m) => [m, m.training] as const);
    this.eval();
    try {
      const state = options.state ?? this.createCache(b);
      if (state.batch !== b) throw new Error(`generate: the state holds ${state.batch} sequences, ids ${b}`);
      let logits = this.step(context, state);
      for (let i = 0; i < maxNewTokens; i++) {
        const next = sampleNext(logits, options);
        options.onToken?.(next, i);
        yield next;
        if (i === maxNewTokens - 1) break;
        logits = this.step(tensor(Int32Array.from(next), { shape: [b, 1] }), state);
      }
    } finally {
      for (const [m, training] of modes) m.training = training;
    }
  }

  override extraRepr(): string {
    const c = this.config;
    return `arch='${c.arch}', vocabSize=${c.vocabSize}, embedDim=${c.embedDim}, hiddenSize=${c.hiddenSize}, nLayers=${c.nLayers}${c.tieWeights ? ', tieWeights=true' : ''}`;
  }
}
