/**
 * Bits per byte: the loss summed in nats over every predicted token of a text, divided by
 * ln 2 × the UTF-8 bytes of the text those tokens spell. Per-token loss depends on how much text a
 * token holds; per byte it does not, so a char model and a BPE model of the same text compare.
 *
 * Which bytes: evaluateStream predicts every token of the stream that has a predecessor, that is
 * stream[1..]; the bytes are those of decode(stream[1..]) in UTF-8 (the first token is context
 * only, so its bytes are not counted). For a char tokenizer of ASCII text that is one byte per
 * predicted token, and bits per byte = bits per char. A byte-level BPE stream whose first kept
 * token begins inside a multi-byte character would decode that fragment as U+FFFD (3 bytes), an
 * error of at most a few bytes in a whole validation split.
 */
import type { TokenSequence } from '../data/dataset.js';
import type { LanguageModel } from '../models/language-model.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { evaluateStream, type EvalFigures } from '../train/evaluate.js';

export interface BitsPerByte {
  bitsPerByte: number;
  /** Total loss in nats over the predicted tokens (mean loss × tokens). */
  nats: number;
  /** Predicted tokens: stream.length − 1. */
  tokens: number;
  /** UTF-8 bytes of decode(stream[1..]). */
  bytes: number;
  /** evaluateStream's figures (mean loss per token, perplexity, bits per token). */
  figures: EvalFigures;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of the text that the predicted tokens of `stream` (stream[1..]) decode to. */
export function predictedBytes(tokenizer: Pick<Tokenizer, 'decode'>, stream: TokenSequence): number {
  if (stream.length < 2) throw new Error(`predictedBytes: the stream has ${stream.length} token(s); at least 2 are needed (the first is context only)`);
  return encoder.encode(tokenizer.decode(stream.subarray(1))).length;
}

/** Bits per byte from evaluateStream's figures over `stream` (see predictedBytes for which bytes). */
export function bitsPerByteFromFigures(figures: EvalFigures, tokenizer: Pick<Tokenizer, 'decode'>, stream: TokenSequence): BitsPerByte {
  const bytes = predictedBytes(tokenizer, stream);
  if (figures.tokens !== stream.length - 1) throw new Error(`bitsPerByteFromFigures: the figures cover ${figures.tokens} tokens, the stream predicts ${stream.length - 1}`);
  if (bytes === 0) throw new Error('bitsPerByteFromFigures: the predicted tokens decode to no bytes');
  const nats = figures.loss * figures.tokens;
  return { bitsPerByte: nats / (Math.LN2 * bytes), nats, tokens: figures.tokens, bytes, figures };
}

/**
 * Bits per byte of `model` on `stream`, through evaluateStream's windowing (consecutive windows
 * of `blockSize`, each token predicted once).
 */
export function bitsPerByte(model: LanguageModel, tokenizer: Pick<Tokenizer, 'decode'>, stream: TokenSequence, blockSize: number, batchSize = 16): BitsPerByte {
  return bitsPerByteFromFigures(evaluateStream(model, stream, blockSize, batchSize), tokenizer, stream);
}
