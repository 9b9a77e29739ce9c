/** Embedding: a learnable lookup table, like `torch.nn.Embedding`. */
import { noGrad } from '../autograd/grad-mode.js';
import { embedding } from '../ops/embedding.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { normal_ } from './init.js';
import { Module, parameter } from './module.js';

export interface EmbeddingOptions {
  /**
   * A row that stands for padding: initialised to zeros and never updated by gradients
   * (its gradient is always zero). Negative values count from the end, as in PyTorch.
   */
  paddingIdx?: number | null;
  generator?: Generator;
}

/**
 * weight [numEmbeddings, embeddingDim], initialised N(0, 1) like PyTorch (TransformerLM re-initialises
 * it with N(0, 0.02)). forward(ids) takes int32 ids of any shape and returns [...ids.shape, embeddingDim].
 */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;
  weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    for (const [what, v] of [['numEmbeddings', numEmbeddings], ['embeddingDim', embeddingDim]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`Embedding: ${what} must be a non-negative integer, got ${v}`);
    }
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    let pad = options.paddingIdx ?? null;
    if (pad !== null) {
      if (!Number.isInteger(pad) || pad < -numEmbeddings || pad >= numEmbeddings) {
        throw new RangeError(`Embedding: paddingIdx must be within numEmbeddings (${numEmbeddings}), got ${pad}`);
      }
      if (pad < 0) pad += numEmbeddings;
    }
    this.paddingIdx = pad;
    this.weight = parameter(zeros([numEmbeddings, embeddingDim]));
    normal_(this.weight, 0, 1, options.generator);
    this.zeroPaddingRow();
  }

  /** Sets the padding row to zeros (after a custom initialisation, for instance). */
  zeroPaddingRow(): void {
    if (this.paddingIdx !== null) noGrad(() => this.weight.select(0, this.paddingIdx as number).zero_());
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids, this.paddingIdx);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}${this.paddingIdx !== null ? `, paddingIdx=${this.paddingIdx}` : ''}`;
  }
}
