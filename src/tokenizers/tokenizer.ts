/** What every tokenizer offers, so datasets, the CLI and models can take either kind. */
import { readTextFile } from '../data/files.js';
import { describeValue, escapeControls, parseJsonText } from '../io/json.js';

/**
 * The largest vocabulary a tokenizer file may describe: ids are below this, and a BPE file with
 * more vocabulary entries or merges than this is refused before any table is built.
 */
export const MAX_VOCAB_SIZE = 1 << 20;
/** At most this many special tokens, each at most MAX_SPECIAL_TOKEN_LENGTH characters (every encode runs their matcher). */
export const MAX_SPECIAL_TOKENS = 1024;
export const MAX_SPECIAL_TOKEN_LENGTH = 256;

/**
 * The text every tokenizer loaded from a file must give back exactly from its own ids (special
 * tokens off): ASCII, contractions, digits, accents (precomposed and combining), CJK, Hangul,
 * emoji (astral, with a skin-tone modifier and a ZWJ sequence), tabs, CRLF and LF newlines.
 */
export const ROUND_TRIP_PROBE =
  "Hello, World! It's 2024: 3.14 naïve café Ünïcödé e\u0301 — 日本語のテキスト、中文，한국어 \u{1F600} \u{1F44D}\u{1F3FD} \u{1F468}\u200D\u{1F469}\u200D\u{1F467}\n\tTabs\tand  spaces\r\nend.\n\n";

/**
 * `JSON.stringify(s)` cut to about `max` characters, for error messages that must stay short;
 * control characters (and U+FFFD) are escaped, and a value that is not a string or a number is
 * described (`an object`, `an array of 3 items`) rather than printed.
 */
export function quoteShort(value: unknown, max = 60): string {
  if (value !== null && typeof value === 'object') return describeValue(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  text = escapeControls(text);
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/**
 * `existing` special tokens with `tokens` added at ids vocabSize, vocabSize + 1, … (tokens already
 * there keep their ids), as `withSpecialTokens` of every tokenizer gives them; null when none is
 * new. `owner` names the caller in the error for a token that is not a non-empty string.
 */
export function addSpecialTokens(owner: string, existing: ReadonlyMap<string, number>, vocabSize: number, tokens: readonly string[]): Record<string, number> | null {
  const specials = new Map(existing);
  let next = vocabSize;
  tokens.forEach((text, i) => {
    if (typeof text !== 'string' || text.length === 0) throw new Error(`${owner}.withSpecialTokens: token ${i} must be a non-empty string, got ${JSON.stringify(text)}`);
    if (!specials.has(text)) specials.set(text, next++);
  });
  return specials.size === existing.size ? null : Object.fromEntries(specials);
}

/**
 * Why `text` cannot be a special token, or null when it can. A special token is matched whole
 * wherever it appears in text, so it must be a marker, not ordinary text: at least two
 * characters, at least one of them neither a letter, a digit nor whitespace ("<|eot|>", "[PAD]",
 * "<s>"; not "a", "the" or "12"), and no NUL or lone surrogate (text read from a UTF-8 file never
 * holds one).
 */
export function specialTokenProblem(text: string): string | null {
  if (text.length === 0) return 'a special token cannot be the empty string';
  if (text.length > MAX_SPECIAL_TOKEN_LENGTH) return `special token ${quoteShort(text)} has ${text.length} characters, expected at most ${MAX_SPECIAL_TOKEN_LENGTH}`;
  if (/\u0000/.test(text) || hasLoneSurrogate(text)) return `special token ${quoteShort(text)} holds a NUL character or a lone surrogate`;
  if ([...text].length < 2 || !/[^\p{L}\p{N}\s]/u.test(text)) {
    return `special token ${quoteShort(text)} is ordinary text (a special token needs two or more characters, one of them not a letter, digit or space, like "<|eot|>")`;
  }
  return null;
}

/** Whether `text` holds a UTF-16 surrogate that is not half of a pair. */
export function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** Throws (one line) unless `decode(encode(probe, { allowSpecial: false }))` gives `probe` back. */
export function checkRoundTrip(tokenizer: Pick<Tokenizer, 'encode' | 'decode'>, probe: string = ROUND_TRIP_PROBE): void {
  let back: string;
  try {
    back = tokenizer.decode(tokenizer.encode(probe, { allowSpecial: false }));
  } catch (error) {
    throw new Error(`the tokenizer fails on its round-trip probe text: ${quoteShort(error instanceof Error ? error.message : String(error), 160)}`);
  }
  if (back === probe) return;
  let at = 0;
  while (at < probe.length && probe[at] === back[at]) at++;
  throw new Error(
    `the tokenizer does not round-trip its probe text: decode(encode(text)) differs from the text at character ${at} ` +
      `(expected ${quoteShort(probe.slice(at, at + 12), 40)}, got ${quoteShort(back.slice(at, at + 12), 40)}), so it would lose or change text`,
  );
}

/** Makes an error message one line of at most `max` characters. */
export function oneLine(message: string, max = 300): string {
  const flat = escapeControls(message.replace(/\s*[\r\n]+\s*/g, ' '));
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/**
 * Reads and parses a tokenizer file. A UTF-8 BOM at the start is skipped (editors on Windows
 * write one); errors are one line and name the file.
 */
export function readTokenizerJson(path: string): unknown {
  // io's parser: the nesting depth is bounded (a 100,000-deep array would overflow the stack of
  // any walk over it) and a key named twice in one object is refused (JSON.parse keeps the last).
  return parseJsonText(readTextFile(path, 'tokenizer file'), `cannot read tokenizer file ${path}`);
}

/** Runs `build` on the parsed file, prefixing any error with the file's path (one line). */
export function withTokenizerFile<T>(path: string, build: (json: unknown) => T): T {
  const json = readTokenizerJson(path);
  try {
    return build(json);
  } catch (error) {
    throw new Error(`tokenizer file ${path}: ${oneLine(error instanceof Error ? error.message : String(error), 260)}`);
  }
}

export interface EncodeOptions {
  /** Recognise registered special tokens in the text (default true); false encodes them as plain text. */
  allowSpecial?: boolean;
}

export interface Tokenizer {
  readonly type: 'char' | 'bpe';
  /** Largest id + 1: the size of an embedding table for this tokenizer. */
  readonly vocabSize: number;
  /** Special token text → id: tokens such as "<|endoftext|>" that are matched whole, never split or merged. */
  readonly specialTokens: Readonly<Record<string, number>>;
  encode(text: string, options?: EncodeOptions): number[];
  /** The same ids as `encode`, as a typed array: faster and smaller for large texts. */
  encodeToInt32Array(text: string, options?: EncodeOptions): Int32Array;
  decode(ids: ArrayLike<number>): string;
  /**
   * A new tokenizer with these special tokens added at ids vocabSize, vocabSize + 1, … (ones it
   * already has keep their ids). Every existing id is unchanged, so a model trained with this
   * tokenizer only needs its embedding table grown to the new vocabSize.
   */
  withSpecialTokens(tokens: readonly string[]): Tokenizer;
  /** A plain JSON object from which `tokenizerFromJSON` rebuilds an equal tokenizer. */
  toJSON(): object;
  save(path: string): void;
}

/**
 * JSON text with one top-level field per line and each value compact: small files stay
 * readable, and a 50,000-token vocabulary does not become 100,000 lines.
 */
export function formatJsonFile(json: object, preformatted: Readonly<Record<string, string>> = {}): string {
  const lines = Object.entries(json).map(([key, value]) => `  ${JSON.stringify(key)}: ${preformatted[key] ?? JSON.stringify(value)}`);
  return `{\n${lines.join(',\n')}\n}\n`;
}

/**
 * A token → id object as JSON text in the given (id) order. JSON.stringify would list
 * integer-like keys such as "0" first, whatever order the entries were added in.
 */
export function stringifyVocab(entries: readonly (readonly [string, number])[]): string {
  return `{${entries.map(([token, id]) => `${JSON.stringify(token)}:${id}`).join(',')}}`;
}

/**
 * A growable Int32Array of token ids. Encoding writes here rather than pushing onto a JS array:
 * pushing hundreds of thousands of numbers reallocates the array's backing store over and
 * over, which measured several times slower than the encoding itself.
 */
export class IdBuffer {
  data: Int32Array;
  length = 0;

  constructor(capacity: number) {
    this.data = new Int32Array(Math.max(16, Math.ceil(capacity)));
  }

  push(id: number): void {
    if (this.length === this.data.length) this.grow(1);
    this.data[this.length++] = id;
  }

  pushAll(ids: readonly number[]): void {
    if (this.length + ids.length > this.data.length) this.grow(ids.length);
    const data = this.data;
    let n = this.length;
    for (let i = 0; i < ids.length; i++) data[n++] = ids[i];
    this.length = n;
  }

  private grow(extra: number): void {
    const next = new Int32Array(Math.max(this.data.length * 2, this.length + extra));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }

  toArray(): number[] {
    // One allocation of the final size, then plain stores.
    const out = new Array<number>(this.length);
    const data = this.data;
    for (let i = 0; i < out.length; i++) out[i] = data[i];
    return out;
  }

  toInt32Array(): Int32Array {
    return this.data.length === this.length ? this.data : this.data.slice(0, this.length);
  }
}
