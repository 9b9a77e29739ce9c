/**
 * Streaming encoding: text that arrives in chunks (a file read piece by piece, a network
 * stream) encodes to exactly the ids of the whole text encoded at once, in blocks, without
 * holding the whole text.
 *
 * A chunk boundary can fall anywhere: inside a word, a whitespace run whose pre-token extent
 * depends on what follows (`"  "` + `"x"` is `" "`, `" x"`), a contraction (`"'"` + `"s"`),
 * `"\r\n"`, a special token, or a surrogate pair. So the encoder keeps a pending tail and
 * encodes only the settled prefix before it. The tail is whatever more text could still change:
 * - the last pre-token pieces of the text (for BPE): a built-in pattern (GPT-2's, cl100k's)
 *   reads at most two characters past a match ("'" before a possible "ll"), so pieces ending
 *   closer than that to the end are not final; a user pattern (RE2) reads at most
 *   2 · MAX_PATTERN_WINDOW code units from a piece's start. The pieces before the cut are then
 *   split again with the text ending at the cut (the end is context too), and the cut moves back
 *   until they agree;
 * - any suffix that could be the start of a special token (or, after a complete special token,
 *   the start of a longer one), since the longest special token wins;
 * - a trailing high surrogate (its low half may come in the next chunk).
 *
 * Memory: the pending tail is one pre-token piece (plus at most one special token's length),
 * and text is encoded in blocks of `blockSize` code units. A piece has no length limit, though:
 * a 10 MB run of spaces (or of letters) is one piece, and it is held whole until it ends, as
 * encoding the text at once would hold it. To keep time linear even then, the held tail is only
 * re-examined once at least as much new text has arrived as it holds (so a long tail is scanned
 * O(log n) times, not once per chunk).
 */
import { BPETokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import { compileSpecialMatcher, MAX_PATTERN_WINDOW, resolvePretokenizer, type Pretokenizer } from './pretokenize.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

export interface StreamEncodeOptions extends EncodeOptions {
  /**
   * Encode once at least this many new UTF-16 code units have arrived (default 65,536); each
   * yielded block then holds the ids of about that much text. 1 encodes after every chunk.
   */
  blockSize?: number;
}

const DEFAULT_BLOCK = 1 << 16;

/**
 * The stateful core of `encodeChunks`: `push` text, get the ids that are settled (possibly
 * none), and `end` to get the rest. Works for BPE (any pre-tokenizer) and char tokenizers.
 */
export class StreamEncoder {
  private readonly allowSpecial: boolean;
  private readonly blockSize: number;
  /** The BPE tokenizer's pre-tokenizer (an instance of our own: it is stateful), or null for char tokenizers. */
  private readonly pre: Pretokenizer | null;
  private readonly specialMatcher: RegExp | null;
  /** Every proper prefix of a special token (text that more text could turn into one). */
  private readonly specialPrefixes: ReadonlySet<string>;
  private readonly maxSpecial: number;
  /** Text received and not yet encoded: the pending tail, then the text since the last encode. */
  private buffer = '';
  /** Length of the pending tail left by the last encode (re-examined only after as much new text). */
  private held = 0;
  private ended = false;

  constructor(
    readonly tokenizer: Tokenizer,
    options: StreamEncodeOptions = {},
  ) {
    if (!(tokenizer instanceof BPETokenizer) && !(tokenizer instanceof CharTokenizer)) {
      throw new Error('StreamEncoder: "tokenizer" must be a BPETokenizer or a CharTokenizer');
    }
    const blockSize = options.blockSize ?? DEFAULT_BLOCK;
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`StreamEncoder: "blockSize" must be a positive integer, got ${String(blockSize)}`);
    this.blockSize = blockSize;
    this.allowSpecial = options.allowSpecial !== false;
    this.pre = tokenizer instanceof BPETokenizer ? resolvePretokenizer(tokenizer.pretokenizer !== null ? { pretokenizer: tokenizer.pretokenizer } : { pattern: tokenizer.pattern }) : null;
    const specials = this.allowSpecial ? Object.keys(tokenizer.specialTokens) : [];
    this.specialMatcher = compileSpecialMatcher(specials);
    const prefixes = new Set<string>();
    let maxSpecial = 0;
    for (const s of specials) {
      maxSpecial = Math.max(maxSpecial, s.length);
      for (let n = 1; n < s.length; n++) prefixes.add(s.slice(0, n));
    }
    this.specialPrefixes = prefixes;
    this.maxSpecial = maxSpecial;
  }

  /** Adds text; returns the ids that no later text can change (often an empty array). */
  push(chunk: string): Int32Array {
    if (this.ended) throw new Error('StreamEncoder.push: the stream has ended');
    if (typeof chunk !== 'string') throw new Error(`StreamEncoder.push: "chunk" must be a string, got ${typeof chunk}`);
    this.buffer += chunk;
    if (this.buffer.length - this.held < Math.max(this.blockSize, this.held)) return EMPTY;
    const text = this.buffer;
    const cut = this.settledLength(text);
    this.buffer = text.slice(cut);
    this.held = this.buffer.length;
    return cut === 0 ? EMPTY : this.tokenizer.encodeToInt32Array(text.slice(0, cut), { allowSpecial: this.allowSpecial });
  }

  /** Ends the stream: the ids of the pending tail. */
  end(): Int32Array {
    if (this.ended) return EMPTY;
    this.ended = true;
    const text = this.buffer;
    this.buffer = '';
    this.held = 0;
    return text.length === 0 ? EMPTY : this.tokenizer.encodeToInt32Array(text, { allowSpecial: this.allowSpecial });
  }

  /** How many code units at the start of `text` are settled: no text after them can change their ids. */
  private settledLength(text: string): number {
    const n = text.length;
    // Positions from which the rest of the text could still become a special token.
    const prefixStarts: number[] = [];
    if (this.maxSpecial > 1) {
      for (let i = Math.max(0, n - this.maxSpecial + 1); i < n; i++) if (this.specialPrefixes.has(text.slice(i))) prefixStarts.push(i);
    }
    const holdFrom = (from: number): number => {
      for (const i of prefixStarts) if (i >= from) return i;
      return n;
    };
    // Special-token matches are settled while they start before the first place a special token
    // could still begin (an earlier start, or a longer token at the same start, would win).
    let segmentStart = 0;
    let segmentEnd = holdFrom(0);
    const matcher = this.specialMatcher;
    if (matcher !== null) {
      matcher.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = matcher.exec(text)) !== null && m.index < segmentEnd) {
        segmentStart = m.index + m[0].length;
        segmentEnd = holdFrom(segmentStart);
      }
    }
    // The ordinary text after the last settled special token: its end is not final.
    let cut = segmentEnd;
    if (this.pre !== null && segmentEnd > segmentStart) cut = segmentStart + this.unsettledPieceStart(text.slice(segmentStart, segmentEnd));
    // Never between the halves of a surrogate pair (the low half may be in the next chunk).
    if (cut > 0 && cut === n) {
      const c = text.charCodeAt(cut - 1);
      if (c >= 0xd800 && c <= 0xdbff) cut--;
    }
    return cut;
  }

  /**
   * Where to cut `segment` (a piece start): before every piece whose extent may still change
   * with more text, and such that the text before the cut, encoded on its own, gives the same
   * pieces. The second condition matters because the end of the text is itself context: GPT-2's
   * `\s+(?!\S)` makes `"?\n\nAl"` the pieces `"\n"`, `"\n"`, `"Al"`, but `"?\n\n"` alone ends
   * in the one piece `"\n\n"`. So the last pieces before a candidate cut are split again with
   * the text ending there, and the cut moves back a piece until they agree.
   */
  private unsettledPieceStart(segment: string): number {
    const pre = this.pre as Pretokenizer;
    // How far past a piece the pattern may have read, so that more text could change it: a
    // user pattern (RE2) reads up to two windows past the piece's start (the gap limit, then the
    // search window); a built-in reads at most two characters past the end of its match (a
    // contraction failing on "'l" before "'" matches alone; cl100k's `\s*[\r\n]+` failing on a
    // whitespace run before `\s+(?!\S)` matches one character less).
    const bounded = pre.name === null;
    const reach = 2 * MAX_PATTERN_WINDOW + 1;
    const n = segment.length;
    const starts: number[] = [];
    pre.start(segment);
    let at = 0;
    let piece: string | null;
    while ((piece = pre.next()) !== null) {
      if (bounded ? at + reach > n : at + piece.length + 3 > n) break;
      starts.push(at);
      at += piece.length;
    }
    // The first candidate: the first piece whose extent is not yet certain.
    let k = starts.length;
    for (; k > 0; k--) {
      const cut = k < starts.length ? starts[k] : at;
      let from = k - 3;
      if (bounded) while (from > 0 && starts[from] + reach > cut) from--;
      from = Math.max(0, from);
      if (this.splitsAlike(segment, starts, from, k, cut)) return cut;
    }
    return 0;
  }

  /** Whether `segment.slice(starts[from], cut)` splits into exactly the pieces starts[from..k-1]. */
  private splitsAlike(segment: string, starts: readonly number[], from: number, k: number, cut: number): boolean {
    const pre = this.pre as Pretokenizer;
    pre.start(segment.slice(starts[from], cut));
    let at = starts[from];
    let piece: string | null;
    for (let j = from; j < k; j++) {
      piece = pre.next();
      if (piece === null || at !== starts[j]) return false;
      at += piece.length;
    }
    return at === cut && pre.next() === null;
  }
}

const EMPTY = new Int32Array(0);

/**
 * Encodes text that arrives in chunks, yielding blocks of ids (never empty ones) whose
 * concatenation is exactly `tokenizer.encodeToInt32Array(chunks.join(''), options)`. Memory is
 * bounded by `blockSize` plus the longest pre-token piece (see the module comment).
 */
export function* encodeChunks(tokenizer: Tokenizer, chunks: Iterable<string>, options: StreamEncodeOptions = {}): Generator<Int32Array, void, undefined> {
  const encoder = new StreamEncoder(tokenizer, options);
  for (const chunk of chunks) {
    const ids = encoder.push(chunk);
    if (ids.length > 0) yield ids;
  }
  const rest = encoder.end();
  if (rest.length > 0) yield rest;
}

/** `encodeChunks` for an async source (a Node Readable with setEncoding('utf8'), a web stream's text). */
export async function* encodeChunksAsync(
  tokenizer: Tokenizer,
  chunks: AsyncIterable<string> | Iterable<string>,
  options: StreamEncodeOptions = {},
): AsyncGenerator<Int32Array, void, undefined> {
  const encoder = new StreamEncoder(tokenizer, options);
  for await (const chunk of chunks) {
    const ids = encoder.push(chunk);
    if (ids.length > 0) yield ids;
  }
  const rest = encoder.end();
  if (rest.length > 0) yield rest;
}
