/**
 * Text generation: the one path from a prompt to streamed text that every caller uses — the
 * trainer's samples, `tensorlm sample`, the dashboard's streamed generation and the playground.
 *
 *   for (const chunk of streamText(model, tokenizer, 'ROMEO:', { maxNewTokens: 200, temperature: 0.8, topK: 40, seed: 1 }))
 *     process.stdout.write(chunk.text);
 *   const { text, stopReason } = generateText(model, tokenizer, 'Q: 2+2?\nA:', { maxNewTokens: 20, stop: ['\n'] });
 *   const samples = generateTexts(model, tokenizer, 'ROMEO:', { maxNewTokens: 200, numSamples: 4, seed: 1 }); // one batched run
 *
 * Tokens come from the model's generateStream (a transformer's KV cache or a recurrent model's
 * carried state; sampling.ts's temperature → top-k → top-p). Text is decoded incrementally and is UTF-8 safe: a byte-level BPE token may end inside
 * a multi-byte character, so decoded text ending in U+FFFD is held back until the next token
 * completes it (IncrementalDecoder). Stop strings end generation as soon as the text contains one;
 * like llama.cpp's and OpenAI's `stop`, the stop string itself is not part of the returned text,
 * and text that could still turn into a stop string is held back until it cannot.
 */
import { Generator as RandomGenerator } from '../tensor/random.js';
import { tensor } from '../tensor/creation.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { SamplingOptions } from './sampling.js';
import type { LanguageModel } from './language-model.js';
import type { DecodeEngine } from './decode.js';
import type { KVCache } from './transformer.js';

/** A byte-level token may end inside a UTF-8 character: at most this many tokens are held back for it. */
const MAX_PENDING_TOKENS = 8;
const REPLACEMENT = '\uFFFD';

/**
 * Token ids in, text out, one token at a time. Decoding each token on its own would split
 * multi-byte characters of byte-level tokens into U+FFFD; decoding everything each time would be
 * quadratic. The decoder keeps the tokens since the last complete character and emits their text
 * once it no longer ends in U+FFFD (or after MAX_PENDING_TOKENS, when the bytes are truly invalid).
 */
export class IncrementalDecoder {
  readonly #pending: number[] = [];

  constructor(readonly tokenizer: Tokenizer) {}

  /**
   * The text that `id` completes ('' while a character is still incomplete). `final`: no token
   * follows, so an incomplete character is decoded as it is.
   */
  push(id: number, final = false): string {
    this.#pending.push(id);
    const text = this.tokenizer.decode(this.#pending);
    if (!final && text.endsWith(REPLACEMENT) && this.#pending.length < MAX_PENDING_TOKENS) return '';
    this.#pending.length = 0;
    return text;
  }

  /** Whatever is still held back, decoded as it is (at the end of generation). */
  flush(): string {
    if (this.#pending.length === 0) return '';
    const text = this.tokenizer.decode(this.#pending);
    this.#pending.length = 0;
    return text;
  }
}

export interface TextGenerationOptions extends SamplingOptions {
  /** Most tokens to generate. */
  maxNewTokens: number;
  /** Generation ends when the text contains one of these; it is not included in the text. */
  stop?: readonly string[];
  /** Generation ends at any of these token ids (e.g. an end-of-turn token); it is not decoded into the text. */
  stopTokens?: readonly number[];
  /** Seeds a sampling generator of its own when `generator` is not given (default: the default generator). */
  seed?: number;
  /** Passed to TransformerLM.generateStream (how the context is rebuilt when it is full). */
  keepOnOverflow?: number;
  /** Continue the sequence in this KV cache (see GenerateOptions.cache): a chat keeps it between turns. */
  cache?: KVCache | DecodeEngine;
}

export interface TextChunk {
  /** New text (may be '' while a character or a possible stop string is held back). */
  text: string;
  /** The token that was generated. */
  token: number;
  /** Its index among the generated tokens (0-based). */
  index: number;
}

export type StopReason = 'length' | 'stop';

export interface GeneratedText {
  /** The continuation only (without the prompt, without a matched stop string). */
  text: string;
  /** The generated token ids (including those of a matched stop string). */
  tokens: number[];
  stopReason: StopReason;
  /** The stop string that ended generation, or null. */
  stop: string | null;
  /** The stop token that ended generation (see stopTokens), if one did. */
  stopToken?: number;
}

/**
 * The ids a prompt is continued from: the prompt's tokens; for an empty prompt a newline (a
 * natural start for text), or token 0 when the vocabulary cannot encode one.
 */
export function promptIds(tokenizer: Tokenizer, prompt: string): number[] {
  if (prompt !== '') {
    const ids = tokenizer.encode(prompt);
    if (ids.length > 0) return ids;
  }
  try {
    const newline = tokenizer.encode('\n');
    if (newline.length > 0) return newline;
  } catch {
    // a vocabulary without '\n'
  }
  return [0];
}

function checkStops(stop: readonly string[] | undefined): readonly string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new TypeError(`generate: stop must be an array of non-empty strings, got ${JSON.stringify(stop)}`);
  }
  return stop;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function partialStopLength(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(s.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

export interface BatchTextGenerationOptions extends TextGenerationOptions {
  /**
   * Continuations of the prompt drawn at once, as the rows of one batched generateStream (nanoGPT's
   * `num_samples`, Hugging Face's `num_return_sequences`). Default 1. With `cache`, it must hold
   * this many sequences.
   */
  numSamples?: number;
}

/** A chunk of one row of a batched generation. */
export interface BatchTextChunk extends TextChunk {
  /** Which sample (0-based) the text belongs to. */
  row: number;
}

/**
 * One row's text: its tokens, UTF-8-safe decoder and stop scanner, and its result once it has
 * stopped (a stop string or stop token; the rows of a batch stop independently).
 */
class RowText {
  readonly tokens: number[] = [];
  readonly #decoder: IncrementalDecoder;
  readonly #text: StopScanner;
  result: GeneratedText | null = null;

  constructor(
    tokenizer: Tokenizer,
    stops: readonly string[],
    readonly stopTokens: ReadonlySet<number>,
  ) {
    this.#decoder = new IncrementalDecoder(tokenizer);
    this.#text = new StopScanner(stops);
  }

  /** Takes the row's next token; returns the chunk to show, or null when there is none. */
  push(token: number, final: boolean): TextChunk | null {
    const index = this.tokens.length;
    this.tokens.push(token);
    if (this.stopTokens.has(token)) {
      const out = this.#text.add(this.#decoder.flush(), true);
      this.result = { text: this.#text.emitted, tokens: this.tokens, stopReason: 'stop', stop: null, stopToken: token };
      return out.text ? { text: out.text, token, index } : null;
    }
    const out = this.#text.add(this.#decoder.push(token, final), final);
    if (out.stop !== null) this.result = { text: this.#text.emitted, tokens: this.tokens, stopReason: 'stop', stop: out.stop };
    // One chunk per token (its text may be '' while held back), so callers can count and pace.
    return out.text || out.stop === null ? { text: out.text, token, index } : null;
  }

  /** The token stream ended: whatever is held back is shown; returns its chunk, if any. */
  finish(): TextChunk | null {
    const out = this.#text.add(this.#decoder.flush(), true);
    this.result = { text: this.#text.emitted, tokens: this.tokens, stopReason: out.stop !== null ? 'stop' : 'length', stop: out.stop };
    const last = this.tokens.length - 1;
    return out.text && last >= 0 ? { text: out.text, token: this.tokens[last], index: last } : null;
  }
}

/**
 * Streams `numSamples` continuations of `prompt` (a string, or token ids) at once: ONE
 * generateStream whose rows all start from the prompt, so N samples cost one prefill of N rows and
 * then one batched step per token. Each row is decoded and stopped on its own (stop strings, stop
 * tokens, UTF-8-safe chunks, as streamText); a row that has stopped yields nothing more, though
 * the engine still computes it (it has no way to drop a row), and the run ends when every row has
 * stopped or maxNewTokens is reached. Chunks of a step come in row order. The generator's return
 * value is one result per row.
 *
 * Reproducibility: the rows draw from one sampling stream (the seed's), row 0 then row 1 … at
 * every step, so a run is reproducible for (prompt, seed, numSamples, options), and numSamples 1
 * is exactly streamText. Row r of a sampled batch is not a batch-1 run with some derived seed (as
 * with Hugging Face's num_return_sequences); greedy rows all equal the batch-1 greedy continuation.
 *
 * One prompt for every row: rows of different prompts would need left padding, which the decode
 * engine cannot mask.
 */
export function* streamTexts(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[], options: BatchTextGenerationOptions): Generator<BatchTextChunk, GeneratedText[], undefined> {
  const stops = checkStops(options.stop);
  const stopTokens = new Set(options.stopTokens ?? []);
  const n = options.numSamples ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`generate: numSamples must be a positive integer, got ${n}`);
  const context = typeof prompt === 'string' ? promptIds(tokenizer, prompt) : Array.from(prompt);
  if (context.length === 0) throw new RangeError('generate: the prompt has no tokens');
  if (options.seed !== undefined && !Number.isFinite(options.seed)) throw new RangeError(`generate: seed must be a finite number, got ${options.seed}`);
  const generator = options.generator ?? (options.seed !== undefined ? new RandomGenerator(options.seed) : undefined);
  const batch = new Int32Array(n * context.length);
  for (let r = 0; r < n; r++) batch.set(context, r * context.length);
  const ids = tensor(batch, { shape: [n, context.length] });
  const rows = Array.from({ length: n }, () => new RowText(tokenizer, stops, stopTokens));
  const stream = model.generateStream(ids, {
    maxNewTokens: options.maxNewTokens,
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    keepOnOverflow: options.keepOnOverflow,
    cache: options.cache,
    generator,
  });
  const results = (): GeneratedText[] => rows.map((row) => row.result as GeneratedText);
  try {
    let step = 0;
    for (const next of stream) {
      const final = step === options.maxNewTokens - 1;
      step++;
      let running = 0;
      for (let r = 0; r < n; r++) {
        const row = rows[r];
        if (row.result !== null) continue;
        const chunk = row.push(next[r], final);
        if (chunk) yield { ...chunk, row: r };
        if (row.result === null) running++;
      }
      // Every row has stopped: the token stream is ended (below) without another step.
      if (running === 0) return results();
    }
  } finally {
    // Stops the token stream (restoring the model's train/eval modes), also when the caller breaks early.
    stream.return?.(undefined);
  }
  for (let r = 0; r < n; r++) {
    if (rows[r].result !== null) continue;
    const chunk = rows[r].finish();
    if (chunk) yield { ...chunk, row: r };
  }
  return results();
}

/**
 * Streams the continuation of `prompt` (a string, or token ids) chunk by chunk; the generator's
 * return value is the whole result. Runs the model in eval mode without gradients (its modes are
 * restored afterwards, also when the caller stops iterating early). The one-row case of streamTexts.
 */
export function* streamText(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[], options: TextGenerationOptions): Generator<TextChunk, GeneratedText, undefined> {
  const [result] = yield* streamTexts(model, tokenizer, prompt, { ...options, numSamples: 1 });
  return result;
}

/**
 * Decoded text in, text safe to show out: finds the first stop string and holds back a tail
 * that could still become one.
 */
class StopScanner {
  /** Text handed out so far. */
  emitted = '';
  /** Decoded text not handed out yet (a possible start of a stop string). */
  #held = '';
  constructor(readonly stops: readonly string[]) {}

  /** Adds decoded text; returns what may be shown now and the stop string found, if any. */
  add(decoded: string, final: boolean): { text: string; stop: string | null } {
    this.#held += decoded;
    if (this.stops.length === 0) return this.#release(this.#held.length, null);
    // A match cannot start in emitted text: any tail that could begin a stop string is held.
    const all = this.emitted + this.#held;
    const from = this.emitted.length;
    let at = -1;
    let stop: string | null = null;
    for (const s of this.stops) {
      const i = all.indexOf(s, from);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        stop = s;
      }
    }
    if (stop !== null) return this.#release(at - this.emitted.length, stop);
    return this.#release(final ? this.#held.length : this.#held.length - partialStopLength(this.#held, this.stops), null);
  }

  #release(n: number, stop: string | null): { text: string; stop: string | null } {
    const text = this.#held.slice(0, n);
    this.#held = stop !== null ? '' : this.#held.slice(n);
    this.emitted += text;
    return { text, stop };
  }
}

/** The whole continuation at once (streamText run to the end). */
export function generateText(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[], options: TextGenerationOptions): GeneratedText {
  return generateTexts(model, tokenizer, prompt, { ...options, numSamples: 1 })[0];
}

/** `numSamples` whole continuations from one batched run (streamTexts run to the end). */
export function generateTexts(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[], options: BatchTextGenerationOptions): GeneratedText[] {
  const it = streamTexts(model, tokenizer, prompt, options);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}
