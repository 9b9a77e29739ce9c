/**
 * Token datasets for language-model training, nanoGPT style: one long token stream, split by
 * position into train (first 90% by default) and validation (the rest), from which `getBatch`
 * draws random contiguous windows.
 */
import { randomWindows } from './windows.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { encodeCorpus, type EncodeCorpusOptions, type TextEncoderLike } from './cache.js';
import { readDatasetText, resolveDataset, type ResolveOptions } from './resolve.js';

export type Split = 'train' | 'val';

/** Token ids in any integer typed array (Uint16/Uint32 from the cache, Int32 from elsewhere). */
export type TokenSequence = Uint16Array | Uint32Array | Int32Array;

export interface SplitOptions {
  /** Fraction of the tokens, from the start, used for training; default 0.9. */
  trainFraction?: number;
}

export interface Batch {
  /** Inputs, int32 [batchSize, blockSize]. */
  x: Tensor;
  /** Targets, int32 [batchSize, blockSize]: y[b, t] = x[b, t + 1], the next token. */
  y: Tensor;
  /** Packed rows only (SFT's packedBatch): per-token positions, int32 [batchSize, blockSize]. */
  positions?: Tensor;
  /** Packed rows only: per-token document ids, int32 [batchSize, blockSize] (attention stays within a document). */
  documentIds?: Tensor;
}

function checkPositiveInt(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`getBatch: ${name} must be a positive integer, got ${value}`);
}

export class TokenDataset {
  readonly tokens: TokenSequence;
  readonly train: TokenSequence;
  readonly val: TokenSequence;
  readonly trainFraction: number;

  constructor(tokens: TokenSequence | readonly number[], options: SplitOptions = {}) {
    const trainFraction = options.trainFraction ?? 0.9;
    if (!(trainFraction > 0 && trainFraction <= 1)) throw new RangeError(`TokenDataset: trainFraction must be in (0, 1], got ${trainFraction}`);
    this.tokens = ArrayBuffer.isView(tokens) ? tokens : Int32Array.from(tokens);
    this.trainFraction = trainFraction;
    // Math.floor, like nanoGPT's int(0.9 * n).
    const nTrain = Math.floor(trainFraction * this.tokens.length);
    this.train = this.tokens.subarray(0, nTrain);
    this.val = this.tokens.subarray(nTrain);
  }

  get length(): number {
    return this.tokens.length;
  }

  /** Tokens in the train split (ShardDataset has the same two figures). */
  get trainTokens(): number {
    return this.train.length;
  }

  get valTokens(): number {
    return this.val.length;
  }

  /** A split's first `maxTokens` tokens (all by default), as ShardDataset.readSplit gives them. */
  readSplit(split: Split, maxTokens = Infinity): TokenSequence {
    const data = this.split(split);
    return maxTokens >= data.length ? data : data.subarray(0, maxTokens);
  }

  split(split: Split): TokenSequence {
    if (split === 'train') return this.train;
    if (split === 'val') return this.val;
    throw new Error(`unknown split ${JSON.stringify(split)}; expected "train" or "val"`);
  }

  /**
   * `batchSize` windows of `blockSize + 1` consecutive tokens, at uniformly random starts that
   * keep the whole window inside the split; x is each window without its last token and y
   * without its first. The same generator state gives the same batch.
   */
  getBatch(split: Split, batchSize: number, blockSize: number, rng: Generator): Batch {
    checkPositiveInt(batchSize, 'batchSize');
    checkPositiveInt(blockSize, 'blockSize');
    const data = this.split(split);
    if (blockSize >= data.length) {
      throw new RangeError(
        `getBatch: blockSize ${blockSize} needs at least ${blockSize + 1} tokens, but the ${split} split has ${data.length}` +
          ` (${this.length} tokens in all, trainFraction ${this.trainFraction}); use a smaller blockSize or more text`,
      );
    }
    return randomWindows(data, batchSize, blockSize, rng);
  }
}

export interface TextDatasetLoadOptions extends SplitOptions, ResolveOptions, EncodeCorpusOptions {}

/** A token dataset that remembers the tokenizer (and text) it came from. */
export class TextDataset<T extends TextEncoderLike = TextEncoderLike> extends TokenDataset {
  readonly tokenizer: T;

  constructor(tokens: TokenSequence | readonly number[], tokenizer: T, options: SplitOptions = {}) {
    super(tokens, options);
    this.tokenizer = tokenizer;
  }

  /** Encodes `text` (no cache). */
  static fromText<T extends TextEncoderLike>(text: string, tokenizer: T, options: SplitOptions = {}): TextDataset<T> {
    const { tokens } = encodeCorpus(tokenizer, text, { cache: false });
    return new TextDataset(tokens, tokenizer, options);
  }

  /**
   * Resolves a dataset name or path (see `resolveDataset`), reads its text and encodes it through
   * the token cache (see `encodeCorpus`; pass `tokenizerPath` to keep the cache next to it).
   */
  static async load<T extends TextEncoderLike>(nameOrPath: string, tokenizer: T, options: TextDatasetLoadOptions = {}): Promise<TextDataset<T>> {
    const text = readDatasetText(await resolveDataset(nameOrPath, options));
    const { tokens } = encodeCorpus(tokenizer, text, options);
    return new TextDataset(tokens, tokenizer, options);
  }
}
