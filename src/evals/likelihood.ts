/**
 * Log-likelihood of continuations: for (context, continuation) pairs, the sum of the
 * log-probabilities the model gives the continuation's tokens, each given everything before it —
 * lm-eval-harness's `loglikelihood` request, the primitive of multiple-choice scoring.
 *
 * Token boundary: the context and the continuation are encoded separately and concatenated,
 * ids(context) ++ ids(continuation). For a char tokenizer that is exactly ids(context +
 * continuation); for BPE it can differ from encoding the joined text where a merge would cross
 * the boundary, but it makes the scored tokens exactly the continuation's, which is what a
 * comparison between choices needs (lm-eval splits the joined encoding at the context's length
 * for the same reason; separate encoding is the simplest exact form of it).
 *
 * The sequence a model reads is ids(context) ++ ids(continuation) without its last token; a
 * transformer reads at most maxSeqLen tokens, so the context is cut from the left (the
 * continuation is always scored whole, and must fit with at least one token of context). A
 * recurrent model has no limit.
 */
import { noGrad } from '../autograd/grad-mode.js';
import type { LanguageModel } from '../models/language-model.js';
import { TransformerLM } from '../models/transformer.js';
import { crossEntropy } from '../ops/fused.js';
import { tensor } from '../tensor/creation.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** One request in text: the continuation is scored given the context. */
export interface ContinuationRequest {
  context: string;
  continuation: string;
}

/** One request in ids. */
export interface TokenContinuation {
  context: readonly number[];
  continuation: readonly number[];
}

/** The log-likelihood of a continuation (nats, ≤ 0) and what it was measured over. */
export interface ContinuationScore {
  logLikelihood: number;
  /** Continuation tokens scored. */
  tokens: number;
  /** Context tokens the model actually saw (after any cut from the left). */
  contextTokens: number;
}

export interface LikelihoodOptions {
  /** Sequences per forward pass (default 16); shorter ones are padded to the batch's longest. */
  batchSize?: number;
}

/** Tokens a model can read at once: a transformer's maxSeqLen, unbounded for a recurrent model. */
export function modelContext(model: LanguageModel): number {
  return model instanceof TransformerLM ? model.config.maxSeqLen : Number.POSITIVE_INFINITY;
}

/**
 * The summed log-probabilities of each continuation given its context (see the file comment for
 * the token boundary and the cut from the left), in the order given. The model runs in eval mode
 * under noGrad and gets its training flag back afterwards. Pairs are batched in order of length
 * (longest first, so padding stays small) and padded on the right, which a causal model never
 * reads from an earlier position; padded positions are not scored.
 */
export function scoreTokenContinuations(model: LanguageModel, requests: readonly TokenContinuation[], options: LikelihoodOptions = {}): ContinuationScore[] {
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`scoreTokenContinuations: batchSize must be a positive integer, got ${batchSize}`);
  const limit = modelContext(model);
  const vocab = model.config.vocabSize;
  // Each request as the ids the model reads (input) and how many of its last positions are scored.
  const rows = requests.map((r, i) => {
    if (r.context.length < 1) throw new Error(`scoreTokenContinuations: request ${i}: the context encodes to no tokens; at least one is needed to predict the continuation's first token`);
    if (r.continuation.length < 1) throw new Error(`scoreTokenContinuations: request ${i}: the continuation encodes to no tokens`);
    if (r.continuation.length > limit) throw new Error(`scoreTokenContinuations: request ${i}: the continuation has ${r.continuation.length} tokens, more than the model's context of ${limit}`);
    for (const id of [...r.context, ...r.continuation]) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new RangeError(`scoreTokenContinuations: request ${i}: token id ${id} is outside the model's vocabulary [0, ${vocab})`);
    }
    const full = [...r.context, ...r.continuation];
    // Inputs are full[0..n−2] predicting full[1..n−1]; keep the last `limit` of them.
    const cut = Math.max(0, full.length - 1 - limit);
    return { ids: full.slice(cut), scored: r.continuation.length, contextTokens: r.context.length - cut };
  });
  const order = rows.map((_, i) => i).sort((a, b) => rows[b].ids.length - rows[a].ids.length || a - b);
  const out: ContinuationScore[] = new Array(rows.length);
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let start = 0; start < order.length; start += batchSize) {
        const batch = order.slice(start, start + batchSize);
        const len = Math.max(...batch.map((i) => rows[i].ids.length)) - 1;
        const x = new Int32Array(batch.length * len);
        // −100 everywhere but the continuation's positions: crossEntropy gives those 0.
        const y = new Int32Array(batch.length * len).fill(-100);
        batch.forEach((i, b) => {
          const { ids, scored } = rows[i];
          const n = ids.length - 1;
          for (let t = 0; t < n; t++) x[b * len + t] = ids[t];
          for (let t = n - scored; t < n; t++) y[b * len + t] = ids[t + 1];
        });
        const { logits } = model.forward(tensor(x, { shape: [batch.length, len] }));
        const losses = crossEntropy(logits, tensor(y, { shape: [batch.length, len] }), { reduction: 'none' }).toTypedArray() as Float32Array;
        batch.forEach((i, b) => {
          const { ids, scored, contextTokens } = rows[i];
          const n = ids.length - 1;
          let sum = 0;
          for (let t = n - scored; t < n; t++) sum -= losses[b * len + t];
          out[i] = { logLikelihood: sum, tokens: scored, contextTokens };
        });
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/**
 * scoreTokenContinuations on text: each context and continuation encoded separately
 * (`allowSpecial: false`, so text that looks like a special token stays text).
 */
export function scoreContinuations(model: LanguageModel, tokenizer: Tokenizer, requests: readonly ContinuationRequest[], options: LikelihoodOptions = {}): ContinuationScore[] {
  const encoded = requests.map((r) => ({ context: tokenizer.encode(r.context, { allowSpecial: false }), continuation: tokenizer.encode(r.continuation, { allowSpecial: false }) }));
  return scoreTokenContinuations(model, encoded, options);
}
