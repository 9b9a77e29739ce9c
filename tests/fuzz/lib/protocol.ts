/** Messages between the fuzz runner and its worker processes, and the outcome classes. */
import type { Corpus } from './corpus.js';
import type { Format } from './mutators.js';

/**
 * - error-clear: an Error with a one-line message (≤ 300 chars) that names the file and is not a
 *   raw engine message;
 * - load-equivalent: loaded, and equal to the seed's load (every tensor byte, meta, config,
 *   tokenizer vocabulary/merges/pattern and probe ids, CSV runs);
 * - load-as-written (CSV only): loaded differently from the seed, but exactly as the edited text
 *   states it (an independent reading agrees) — CSV has no checksum, so this is correct;
 * - error-unclear, load-changed (a silent change), hang (time limit), crash (the worker died:
 *   heap/RSS limit, fatal error): defects;
 * - harness-error: the fuzzer itself failed (not the loader).
 */
export const OUTCOMES = ['error-clear', 'load-equivalent', 'load-as-written', 'error-unclear', 'load-changed', 'hang', 'crash', 'harness-error'] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const CLEAN_OUTCOMES: readonly Outcome[] = ['error-clear', 'load-equivalent', 'load-as-written'];

export interface CaseRequest {
  type: 'case';
  format: Format;
  seed: number;
  index: number;
  corpus: Corpus;
  /** The worker's scratch directory. */
  work: string;
}

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'started'; index: number; kind: string; desc: string; size: number }
  | { type: 'result'; index: number; ms: number; outcome: Outcome; message?: string; note?: string }
  | { type: 'fatal'; message: string };

export interface CaseResult {
  format: Format;
  index: number;
  outcome: Outcome;
  kind: string;
  desc: string;
  /** The error message (errors), or the crash/hang detail. */
  message?: string;
  /** Why unclear / what changed. */
  note?: string;
  ms: number;
}
