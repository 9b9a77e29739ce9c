/**
 * Choosing the next token from logits: greedy (temperature 0), or sampling with temperature,
 * top-k and top-p (nucleus) filtering, applied in that order as Hugging Face does.
 */
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export interface SamplingOptions {
  /** Logits are divided by it; 0 picks the most likely token (greedy). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th are kept). */
  topK?: number | null;
  /** Keep the smallest set of most likely tokens whose probabilities sum to at least p, in (0, 1]. */
  topP?: number | null;
  /** The sampling stream; the default generator otherwise. */
  generator?: Generator;
}

export function checkSamplingOptions(options: SamplingOptions): void {
  const { temperature = 1, topK = null, topP = null } = options;
  if (!(typeof temperature === 'number' && temperature >= 0 && Number.isFinite(temperature))) throw new RangeError(`temperature must be a finite number ≥ 0, got ${temperature}`);
  if (topK !== null && !(Number.isInteger(topK) && topK >= 1)) throw new RangeError(`topK must be a positive integer, got ${topK}`);
  if (topP !== null && !(typeof topP === 'number' && topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
}

/** Index of the largest value (the first one on ties). */
export function argmax(values: ArrayLike<number>, start = 0, length = values.length - start): number {
  let best = 0;
  let bestValue = values[start];
  for (let i = 1; i < length; i++) {
    const v = values[start + i];
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}

/** `row r` when the row starts at a multiple of its length (sampleNext's rows), else its offset. */
function describeRow(start: number, length: number): string {
  return length > 0 && start % length === 0 ? `row ${start / length}` : `row at offset ${start}`;
}

/**
 * Throws a RangeError naming the row unless a token can be chosen from it: no NaN or +Infinity
 * (a diverged model; PyTorch's multinomial refuses them too), and not every value −Infinity
 * (every token masked out). Without it, such a row silently gave the last (or first) id.
 */
export function checkLogitsRow(values: ArrayLike<number>, start = 0, length = values.length - start): void {
  let allMasked = true;
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (v !== v || v === Infinity) throw new RangeError(`sampling: ${describeRow(start, length)} of the logits holds ${v} at index ${i} (of ${length}); the model's output is not finite`);
    if (v !== -Infinity) allMasked = false;
  }
  if (allMasked) throw new RangeError(`sampling: ${describeRow(start, length)} of the logits ${length === 0 ? 'is empty' : 'is all -Infinity (every token is masked out)'}; no token can be chosen`);
}

/**
 * Samples one token id from a row of logits values[start .. start+length−1]. A row with NaN or
 * +Infinity, or only −Infinity, is an error (see checkLogitsRow), for greedy decoding too.
 */
export function sampleToken(values: ArrayLike<number>, options: SamplingOptions = {}, start = 0, length = values.length - start): number {
  const { temperature = 1, topK = null, topP = null } = options;
  checkLogitsRow(values, start, length);
  if (temperature === 0) return argmax(values, start, length);
  const gen = options.generator ?? defaultGenerator;
  const logits = new Float64Array(length);
  for (let i = 0; i < length; i++) logits[i] = values[start + i] / temperature;
  if (topK !== null && topK < length) {
    const threshold = Float64Array.from(logits).sort()[length - topK];
    for (let i = 0; i < length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  }
  let max = -Infinity;
  for (let i = 0; i < length; i++) if (logits[i] > max) max = logits[i];
  // A temperature so small that logits / temperature overflows: its limit, greedy.
  if (!Number.isFinite(max)) return argmax(values, start, length);
  const probs = new Float64Array(length);
  let total = 0;
  for (let i = 0; i < length; i++) {
    const p = logits[i] === -Infinity ? 0 : Math.exp(logits[i] - max);
    probs[i] = p;
    total += p;
  }
  if (topP !== null && topP < 1) {
    const order = Array.from({ length }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
    let cumulative = 0;
    let kept = 0;
    for (const i of order) {
      if (cumulative >= topP * total && kept > 0) probs[i] = 0;
      else {
        cumulative += probs[i];
        kept++;
      }
    }
    total = cumulative;
  }
  let u = gen.random() * total;
  let last = 0;
  for (let i = 0; i < length; i++) {
    if (probs[i] === 0) continue;
    last = i;
    u -= probs[i];
    if (u < 0) return i;
  }
  return last;
}

/** One token per row of logits [B, V] (or [V]). */
export function sampleNext(logits: Tensor, options: SamplingOptions = {}): Int32Array {
  if (logits.ndim !== 1 && logits.ndim !== 2) throw new Error(`sampleNext: logits must be [V] or [B, V], got ${formatShape(logits.shape)}`);
  checkSamplingOptions(options);
  const v = logits.shape[logits.ndim - 1];
  const rows = logits.ndim === 1 ? 1 : logits.shape[0];
  return sampleRows(logits.toTypedArray() as Float32Array, rows, v, options);
}

/**
 * One token per row of flat logits [rows, v]: sampleNext on a plain array, for the decode loop,
 * which reads the engine's logits buffer in place (no tensor, no copy per token). The options are
 * the caller's to check (checkSamplingOptions) once.
 */
export function sampleRows(logits: ArrayLike<number>, rows: number, v: number, options: SamplingOptions = {}): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = sampleToken(logits, options, r * v, v);
  return out;
}
