/** Evaluation figures: loss over a whole token stream, perplexity, bits, and simple baselines. */
import { noGrad } from '../autograd/grad-mode.js';
import type { TokenSequence } from '../data/dataset.js';
import type { LanguageModel } from '../models/language-model.js';
import { crossEntropy } from '../ops/fused.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';

export interface EvalFigures {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  perplexity: number;
  /** loss / ln 2: bits per character for a char tokenizer, per token otherwise. */
  bitsPerToken: number;
  tokens: number;
}

function figures(loss: number, tokens: number): EvalFigures {
  return { loss, perplexity: Math.exp(loss), bitsPerToken: loss / Math.LN2, tokens };
}

/**
 * Mean loss over every token of `stream` that has a predecessor, in consecutive windows of
 * `blockSize` (each token predicted once, with up to blockSize − 1 tokens of context): a
 * deterministic figure, unlike the random-batch estimate used during training.
 */
export function evaluateStream(model: LanguageModel, stream: TokenSequence, blockSize: number, batchSize = 16): EvalFigures {
  const predicted = stream.length - 1;
  const fullWindows = Math.floor(predicted / blockSize);
  const batches: { starts: number[]; len: number }[] = [];
  for (let w = 0; w < fullWindows; w += batchSize) {
    batches.push({ starts: Array.from({ length: Math.min(batchSize, fullWindows - w) }, (_, k) => (w + k) * blockSize), len: blockSize });
  }
  // The remainder is one shorter window: every token is predicted exactly once.
  if (predicted % blockSize > 0) batches.push({ starts: [fullWindows * blockSize], len: predicted % blockSize });
  let total = 0;
  let count = 0;
  const wasTraining = model.training;
  model.eval();
  noGrad(() => {
    for (const { starts, len } of batches) {
      const x = new Int32Array(starts.length * len);
      const y = new Int32Array(starts.length * len);
      starts.forEach((start, b) => {
        x.set(stream.subarray(start, start + len), b * len);
        y.set(stream.subarray(start + 1, start + 1 + len), b * len);
      });
      const loss = model.forward(tensor(x, { shape: [starts.length, len] }), tensor(y, { shape: [starts.length, len] })).loss as Tensor;
      total += loss.item() * starts.length * len;
      count += starts.length * len;
    }
  });
  model.train(wasTraining);
  return figures(total / count, count);
}

/**
 * The mean loss at each position 0..blockSize − 1 of consecutive windows of `stream` (up to
 * `maxWindows` of them, spread evenly over the stream): position p is predicted from p tokens of
 * context before it plus itself, so the curve shows how much a model gains from far context.
 */
export function lossByPosition(model: LanguageModel, stream: TokenSequence, blockSize: number, options: { batchSize?: number; maxWindows?: number } = {}): Float64Array {
  const batchSize = options.batchSize ?? 16;
  const available = Math.floor((stream.length - 1) / blockSize);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`lossByPosition: blockSize must be a positive integer, got ${blockSize}`);
  if (available < 1) throw new RangeError(`lossByPosition: the stream of ${stream.length} tokens is shorter than one window of ${blockSize} + 1`);
  const windows = Math.min(available, options.maxWindows ?? available);
  const stride = Math.floor(available / windows) * blockSize;
  const sums = new Float64Array(blockSize);
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let w = 0; w < windows; w += batchSize) {
        const n = Math.min(batchSize, windows - w);
        const x = new Int32Array(n * blockSize);
        const y = new Int32Array(n * blockSize);
        for (let b = 0; b < n; b++) {
          const start = (w + b) * stride;
          x.set(stream.subarray(start, start + blockSize), b * blockSize);
          y.set(stream.subarray(start + 1, start + 1 + blockSize), b * blockSize);
        }
        const { logits } = model.forward(tensor(x, { shape: [n, blockSize] }));
        const losses = crossEntropy(logits, tensor(y, { shape: [n, blockSize] }), { reduction: 'none' }).toTypedArray();
        for (let i = 0; i < losses.length; i++) sums[i % blockSize] += losses[i];
      }
    });
  } finally {
    model.train(wasTraining);
  }
  for (let p = 0; p < blockSize; p++) sums[p] /= windows;
  return sums;
}

/** A model that knows nothing: every token equally likely, loss ln V. */
export function uniformBaseline(vocabSize: number): number {
  return Math.log(vocabSize);
}

/** Cross-entropy of `evalTokens` under the unigram frequencies of `trainTokens` (add-one smoothing). */
export function unigramBaseline(trainTokens: TokenSequence, evalTokens: TokenSequence, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (let i = 0; i < trainTokens.length; i++) counts[trainTokens[i]]++;
  const total = trainTokens.length + vocabSize;
  let loss = 0;
  for (let i = 1; i < evalTokens.length; i++) loss -= Math.log(counts[evalTokens[i]] / total);
  return loss / Math.max(1, evalTokens.length - 1);
}
