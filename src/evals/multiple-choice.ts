/**
 * Multiple-choice scoring by log-likelihood, as lm-eval-harness does it: each choice is a
 * continuation of the example's context; the model's pick is the choice with the highest
 * log-likelihood, summed over its tokens (`acc`) or divided by the choice's length in UTF-8 bytes
 * (`acc_norm`: lm-eval's length normalisation, which takes characters; bytes are the same for
 * ASCII and do not depend on the tokenizer). The sum favours short choices, the normalised
 * figure does not; reporting both shows when that matters. Ties go to the first choice (argmax).
 */
import { wilsonInterval, Z_95 } from '../chat/tasks.js';
import type { ContinuationRequest } from './likelihood.js';

/** One example: the context, its choices (continuations of it), and the index of the right one. */
export interface MultipleChoiceExample {
  /** An optional name, kept from a JSONL file for the user's reference. */
  id?: string;
  context: string;
  choices: string[];
  answer: number;
}

/** Anything that gives the log-likelihood of each continuation of a batch of requests, in order. */
export type LikelihoodScorer = (requests: readonly ContinuationRequest[]) => number[];

/** Correct picks and their accuracy with a Wilson interval. */
export interface AccuracyFigures {
  correct: number;
  accuracy: number;
  low: number;
  high: number;
}

/** What one task gives: the figures that `<run>/eval-tasks.json` stores per task. */
export interface TaskResult extends AccuracyFigures {
  name: string;
  kind: 'multiple-choice' | 'generative';
  examples: number;
  /** Expected accuracy of a uniform guess (mean of 1/#choices); null for generative tasks. */
  chance: number | null;
  /** Length-normalised accuracy (acc_norm); null for generative tasks. */
  norm: AccuracyFigures | null;
}

/** The per-example details of a multiple-choice evaluation. */
export interface MultipleChoiceDetails {
  /** Log-likelihood of each choice of each example. */
  logLikelihoods: number[][];
  /** The choice picked by the summed and by the per-byte log-likelihood. */
  picks: number[];
  normPicks: number[];
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string: acc_norm's length. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Accuracy figures for `correct` of `total` with the 95% Wilson interval (chat/tasks.ts). */
export function accuracyFigures(correct: number, total: number, z = Z_95): AccuracyFigures {
  return { correct, accuracy: correct / total, ...wilsonInterval(correct, total, z) };
}

/** Expected accuracy of picking uniformly among each example's choices. */
export function chanceAccuracy(examples: readonly MultipleChoiceExample[]): number {
  return examples.reduce((s, e) => s + 1 / e.choices.length, 0) / examples.length;
}

/**
 * Scores multiple-choice examples with `scorer` (one call with every choice of every example, in
 * example order): acc, acc_norm, each with its 95% Wilson interval, and chance.
 */
export function scoreMultipleChoice(name: string, examples: readonly MultipleChoiceExample[], scorer: LikelihoodScorer): TaskResult & { details: MultipleChoiceDetails } {
  if (examples.length === 0) throw new Error(`scoreMultipleChoice: task '${name}' has no examples`);
  const requests: ContinuationRequest[] = [];
  examples.forEach((e, i) => {
    if (e.choices.length < 2) throw new Error(`scoreMultipleChoice: task '${name}' example ${i + 1} has ${e.choices.length} choice(s); at least 2 are needed`);
    if (!Number.isInteger(e.answer) || e.answer < 0 || e.answer >= e.choices.length) throw new Error(`scoreMultipleChoice: task '${name}' example ${i + 1}: answer ${e.answer} is not an index of its ${e.choices.length} choices`);
    for (const choice of e.choices) requests.push({ context: e.context, continuation: choice });
  });
  const flat = scorer(requests);
  if (flat.length !== requests.length) throw new Error(`scoreMultipleChoice: the scorer returned ${flat.length} log-likelihoods for ${requests.length} requests`);
  const logLikelihoods: number[][] = [];
  const picks: number[] = [];
  const normPicks: number[] = [];
  let offset = 0;
  let correct = 0;
  let normCorrect = 0;
  for (const e of examples) {
    const lls = flat.slice(offset, offset + e.choices.length);
    offset += e.choices.length;
    const pick = argmax(lls);
    const normPick = argmax(lls.map((ll, k) => ll / Math.max(1, utf8Length(e.choices[k]))));
    logLikelihoods.push(lls);
    picks.push(pick);
    normPicks.push(normPick);
    if (pick === e.answer) correct++;
    if (normPick === e.answer) normCorrect++;
  }
  const total = examples.length;
  return {
    name,
    kind: 'multiple-choice',
    examples: total,
    ...accuracyFigures(correct, total),
    chance: chanceAccuracy(examples),
    norm: accuracyFigures(normCorrect, total),
    details: { logLikelihoods, picks, normPicks },
  };
}
