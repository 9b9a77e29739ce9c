/**
 * Byte-level BPE (GPT-2 style): text → UTF-8 bytes → merges learned by `train`. Every string
 * round-trips exactly, because the 256 single bytes are always in the vocabulary.
 *
 * Files: `save`/`load` use TensorLM's JSON format (docs/tokenizers.md); `fromGPT2`/`toGPT2`
 * read and write GPT-2's vocab.json + merges.txt, whose token spelling (bytes mapped to
 * printable characters, 'Ġ' for space) the JSON format reuses.
 */
import { readTextFile, writeFileAtomic } from '../data/files.js';
import { applyMerges, pairKey, type MergeTable } from './bpe-merge.js';
import { countPretokens, trainBPEFromCounts } from './bpe-train.js';
import { bytesKey, bytesToGPT2String, concatBytes, gpt2StringToBytes, utf8Decode, utf8Encode } from './bytes.js';
import { compileSpecialMatcher, resolvePretokenizer, splitOnSpecial, type Pretokenizer, type PretokenizerName } from './pretokenize.js';
import {
  addSpecialTokens,
  checkRoundTrip,
  formatJsonFile,
  IdBuffer,
  MAX_SPECIAL_TOKENS,
  MAX_VOCAB_SIZE,
  quoteShort,
  specialTokenProblem,
  stringifyVocab,
  withTokenizerFile,
  type EncodeOptions,
  type Tokenizer,
} from './tokenizer.js';

/** The in-memory description of a BPE vocabulary, from which a tokenizer is built. */
export interface BPEModel {
  /** Bytes of each ordinary token, indexed by id; `undefined` for ids that are special or unused. */
  tokens: readonly (Uint8Array | undefined)[];
  /** Merges in rank order as (left id, right id); the result is the token whose bytes are left + right. */
  merges: readonly (readonly [number, number])[];
  /** Special token text → id (ids not used by ordinary tokens). */
  specialTokens?: Readonly<Record<string, number>>;
  /** A built-in pre-tokenizer by name; GPT-2's by default. */
  pretokenizer?: PretokenizerName;
  /**
   * A pre-tokenisation pattern instead: a built-in's exact pattern string selects that built-in
   * (GPT2_PATTERN is `pretokenizer: 'gpt2'`); any other pattern is RE2 syntax and runs on RE2.
   */
  pattern?: string;
}

/** TensorLM's BPE file format (version 1), documented in docs/tokenizers.md. */
export interface BPETokenizerJSON {
  type: 'bpe';
  version: 1;
  /** The built-in pre-tokenizer; absent when `pattern` is a user pattern. */
  pretokenizer?: PretokenizerName;
  /** The built-in's pattern (kept so that older readers load the file), or the user pattern (RE2 syntax). */
  pattern: string;
  /** Ordinary tokens in GPT-2's vocab.json spelling → id. */
  vocab: Record<string, number>;
  /** Merges in rank order, each "left right" in the same spelling (like merges.txt lines). */
  merges: string[];
  /** Special token text → id. */
  specialTokens: Record<string, number>;
}

export interface BPETrainOptions {
  /** Final vocabulary size: 256 byte tokens + learned merges + special tokens. */
  vocabSize: number;
  /** Tokens such as "<|endoftext|>": never split, never merged across, given the last ids. */
  specialTokens?: readonly string[];
  /** A built-in pre-tokenizer by name; GPT-2's by default. */
  pretokenizer?: PretokenizerName;
  /** A pre-tokenisation pattern instead (RE2 syntax, unless it is a built-in's exact pattern). */
  pattern?: string;
}

/** Text to train on: one text, several texts (documents), or files read as UTF-8. */
export type BPETrainInput = string | readonly string[] | { files: readonly string[] };

export interface GPT2LoadOptions {
  /**
   * Special tokens; by default "<|endoftext|>" when vocab.json has it. Those in vocab.json keep
   * its ids; the others get new ids after its largest one, in the order listed.
   */
  specialTokens?: readonly string[];
  pretokenizer?: PretokenizerName;
  pattern?: string;
}

/** Pieces longer than this are not cached, so one huge input cannot fill the cache. */
const CACHE_MAX_PIECE = 64;
const CACHE_MAX_ENTRIES = 200_000;

export class BPETokenizer implements Tokenizer {
  readonly type = 'bpe';
  /** The pattern the pre-tokenizer runs (a built-in's pattern, or the user pattern). */
  readonly pattern: string;
  /** The built-in pre-tokenizer's name, or null for a user pattern (which runs on RE2). */
  readonly pretokenizer: PretokenizerName | null;
  /** Largest id + 1. */
  readonly vocabSize: number;
  private readonly tokens: (Uint8Array | undefined)[];
  /** Bytes of every id, special tokens included (their UTF-8 text), for decoding. */
  private readonly idBytes: (Uint8Array | undefined)[];
  private readonly byteIds = new Int32Array(256);
  private readonly mergePairs: (readonly [number, number])[];
  private readonly table: MergeTable;
  private readonly specials: ReadonlyMap<string, number>;
  private readonly specialIds: ReadonlyMap<number, string>;
  private readonly pre: Pretokenizer;
  private readonly specialMatcher: RegExp | null;
  private readonly cache = new Map<string, readonly number[]>();
  /** Token bytes (as a `bytesKey` string) → id. */
  private readonly idOfBytes = new Map<string, number>();

  constructor(model: BPEModel) {
    try {
      this.pre = resolvePretokenizer({ pretokenizer: model.pretokenizer, pattern: model.pattern });
    } catch (error) {
      throw new Error(`BPETokenizer: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.pattern = this.pre.pattern;
    this.pretokenizer = this.pre.name;
    if (model.tokens.length > MAX_VOCAB_SIZE) throw new Error(`BPETokenizer: the vocabulary has ${model.tokens.length} ids, expected at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE)`);
    if (model.merges.length > MAX_VOCAB_SIZE) throw new Error(`BPETokenizer: ${model.merges.length} merges, expected at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE)`);
    this.tokens = model.tokens.slice();

    const idOfBytes = this.idOfBytes;
    this.tokens.forEach((bytes, id) => {
      if (bytes === undefined) return;
      const key = bytesKey(bytes);
      const other = idOfBytes.get(key);
      if (other !== undefined) throw new Error(`BPETokenizer: ids ${other} and ${id} have the same bytes ${quoteShort(bytesToGPT2String(bytes))}`);
      if (bytes.length === 0) throw new Error(`BPETokenizer: token ${id} is empty`);
      idOfBytes.set(key, id);
    });
    for (let b = 0; b < 256; b++) {
      const id = idOfBytes.get(String.fromCharCode(b));
      if (id === undefined) throw new Error(`BPETokenizer: the vocabulary lacks the single-byte token for byte 0x${b.toString(16).padStart(2, '0')}, so some text could not be encoded`);
      this.byteIds[b] = id;
    }

    const specials = new Map<string, number>();
    const specialIds = new Map<number, string>();
    const specialEntries = Object.entries(model.specialTokens ?? {});
    if (specialEntries.length > MAX_SPECIAL_TOKENS) throw new Error(`BPETokenizer: ${specialEntries.length} special tokens, expected at most ${MAX_SPECIAL_TOKENS}`);
    for (const [text, id] of specialEntries) {
      const problem = specialTokenProblem(text);
      if (problem !== null) throw new Error(`BPETokenizer: ${problem}`);
      checkId(id, `special token ${quoteShort(text)}`);
      if (this.tokens[id] !== undefined || specialIds.has(id)) throw new Error(`BPETokenizer: special token ${quoteShort(text)} reuses id ${id}`);
      specials.set(text, id);
      specialIds.set(id, text);
    }
    this.specials = specials;
    this.specialIds = specialIds;
    this.idBytes = this.tokens.slice();
    for (const [id, text] of specialIds) this.idBytes[id] = utf8Encode(text);
    this.specialMatcher = compileSpecialMatcher([...specials.keys()]);

    const ranks = new Map<number, number>();
    const results: number[] = [];
    this.mergePairs = [];
    model.merges.forEach(([a, b], rank) => {
      const left = this.tokens[a];
      const right = this.tokens[b];
      if (left === undefined || right === undefined) throw new Error(`BPETokenizer: merge ${rank} (${a}, ${b}) uses an id that is not an ordinary token`);
      const result = idOfBytes.get(bytesKey(concatBytes(left, right)));
      if (result === undefined) {
        throw new Error(`BPETokenizer: merge ${rank} ${quoteShort(`${bytesToGPT2String(left)} ${bytesToGPT2String(right)}`)} produces a token missing from the vocabulary`);
      }
      const key = pairKey(a, b);
      if (ranks.has(key)) return; // a repeated merge line never applies; the first rank wins
      ranks.set(key, results.length);
      results.push(result);
      this.mergePairs.push([a, b]);
    });
    this.table = { ranks, results: Int32Array.from(results) };

    let maxId = this.tokens.length - 1;
    for (const id of specialIds.keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    // Every tokenizer proves it gives back what it is given, whatever built it (a file, GPT-2's
    // files, training, new special tokens): a broken one is refused here, not found later as
    // silently lost text.
    try {
      checkRoundTrip(this);
    } catch (error) {
      throw new Error(`BPETokenizer: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  // ---- training and loading ------------------------------------------------------------------

  /**
   * Learns a vocabulary from text. See `trainBPEFromCounts` for the algorithm and docs/tokenizers.md
   * for the tie-breaking rule. Special tokens get the last ids, after the merges.
   */
  static train(input: BPETrainInput, options: BPETrainOptions): BPETokenizer {
    const specialTokens = [...new Set(options.specialTokens ?? [])];
    if (specialTokens.some((s) => s.length === 0)) throw new Error('BPETokenizer.train: a special token cannot be the empty string');
    const { vocabSize } = options;
    const minimum = 256 + specialTokens.length;
    if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
      throw new RangeError(`BPETokenizer.train: vocabSize must be an integer ≥ ${minimum} (256 bytes + ${specialTokens.length} special tokens), got ${vocabSize}`);
    }
    if (vocabSize > MAX_VOCAB_SIZE) throw new RangeError(`BPETokenizer.train: vocabSize must be at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE), got ${vocabSize}`);
    // The same pre-tokenizer that encoding uses, resolved once (an unknown name or a bad pattern
    // fails before any text is read).
    const pre = resolvePretokenizer({ pretokenizer: options.pretokenizer, pattern: options.pattern });
    const texts = typeof input === 'string' ? [input] : 'files' in input ? readFiles(input.files) : input;
    const counts = countPretokens(texts, pre, specialTokens);
    const { tokens, merges } = trainBPEFromCounts(counts, vocabSize - specialTokens.length);
    const special = Object.fromEntries(specialTokens.map((s, i) => [s, tokens.length + i]));
    return new BPETokenizer({ tokens, merges: merges.map(([a, b]) => [a, b] as const), specialTokens: special, ...pretokenizerOf(pre) });
  }

  /**
   * Builds a tokenizer from TensorLM's JSON format (as produced by `toJSON`). Every field is
   * checked before any table is built; errors are one line naming the field and what was expected.
   */
  static fromJSON(json: unknown): BPETokenizer {
    const obj = expectObject(json, 'BPE tokenizer JSON');
    if (obj.type !== 'bpe') throw new Error(`BPE tokenizer JSON: "type" is ${quoteShort(obj.type)}, expected "bpe"`);
    if (obj.version !== 1) throw new Error(`BPE tokenizer JSON: unsupported version ${quoteShort(obj.version)} (this TensorLM reads version 1)`);
    if (obj.pretokenizer !== undefined && typeof obj.pretokenizer !== 'string') {
      throw new Error(`BPE tokenizer JSON: "pretokenizer" must be a string naming a built-in pre-tokenizer, got ${describeType(obj.pretokenizer)}`);
    }
    if (obj.pattern !== undefined && typeof obj.pattern !== 'string') throw new Error(`BPE tokenizer JSON: "pattern" must be a string, got ${describeType(obj.pattern)}`);
    if (obj.pretokenizer === undefined && obj.pattern === undefined) {
      throw new Error('BPE tokenizer JSON: "pretokenizer" (a built-in\'s name, e.g. "gpt2") or "pattern" (an RE2 pattern) is required');
    }
    let pre: Pretokenizer;
    try {
      pre = resolvePretokenizer({ pretokenizer: obj.pretokenizer as string | undefined, pattern: obj.pattern as string | undefined });
    } catch (error) {
      throw new Error(`BPE tokenizer JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
    const vocab = expectIdRecord(obj.vocab, 'BPE tokenizer JSON "vocab"');
    const specialTokens = obj.specialTokens === undefined ? {} : expectIdRecord(obj.specialTokens, 'BPE tokenizer JSON "specialTokens"', MAX_SPECIAL_TOKENS);
    if (!Array.isArray(obj.merges)) throw new Error(`BPE tokenizer JSON: "merges" must be an array of "left right" strings, got ${describeType(obj.merges)}`);
    if (obj.merges.length > MAX_VOCAB_SIZE) throw new Error(`BPE tokenizer JSON: "merges" has ${obj.merges.length} entries, expected at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE)`);
    const bad = obj.merges.findIndex((m) => typeof m !== 'string');
    if (bad >= 0) throw new Error(`BPE tokenizer JSON: "merges" entry ${bad} must be a "left right" string, got ${describeType(obj.merges[bad])}`);
    const merges = obj.merges as string[];
    const firstRank = new Map<string, number>();
    merges.forEach((line, i) => {
      const earlier = firstRank.get(line);
      if (earlier !== undefined) throw new Error(`BPE tokenizer JSON: "merges" entry ${i} ${quoteShort(line)} repeats entry ${earlier} (each merge is listed once, at its rank)`);
      firstRank.set(line, i);
    });
    for (const text of Object.keys(specialTokens)) {
      const problem = specialTokenProblem(text);
      if (problem !== null) throw new Error(`BPE tokenizer JSON: "specialTokens": ${problem}`);
      if (Object.hasOwn(vocab, text)) throw new Error(`BPE tokenizer JSON: special token ${quoteShort(text)} is spelled like the ordinary token of id ${vocab[text]}`);
    }
    // What TensorLM writes (train, withSpecialTokens) has contiguous ids, and every token longer
    // than a byte is some merge's result; anything else is an edited file (a removed merge leaves
    // a token BPE never produces, a moved id grows the embedding table). Checked on the text,
    // before any table is built.
    // (A shared id or a malformed merge line is left to buildFromSpelledVocab, which names it.)
    const ids = [...Object.values(vocab), ...Object.values(specialTokens)];
    const used = new Uint8Array(ids.length);
    let precheck = true;
    for (const id of ids) {
      if (id >= ids.length) continue;
      if (used[id] === 1) precheck = false;
      used[id] = 1;
    }
    const unused = used.indexOf(0);
    // (So is a missing single-byte token: 256 one-character spellings.)
    let singles = 0;
    for (const spelled of Object.keys(vocab)) if ([...spelled].length === 1) singles++;
    if (singles < 256) precheck = false;
    if (precheck && unused >= 0) throw new Error(`BPE tokenizer JSON: the ids are not contiguous: id ${unused} is unused (${ids.length} tokens, largest id ${Math.max(...ids.slice(0, 1 << 16), 0)}${ids.length > 1 << 16 ? ' or more' : ''})`);
    const wellFormed = merges.every((line) => {
      const parts = line.split(' ');
      return parts.length === 2 && Object.hasOwn(vocab, parts[0]) && Object.hasOwn(vocab, parts[1]) && Object.hasOwn(vocab, parts[0] + parts[1]);
    });
    const produced = new Set(merges.map((line) => line.replace(' ', '')));
    if (precheck && wellFormed) for (const [spelled, id] of Object.entries(vocab)) {
      // GPT-2's spelling has one character per byte: a longer spelling is a token of several bytes.
      if (spelled.length > 1 && [...spelled].length > 1 && !produced.has(spelled)) {
        throw new Error(`BPE tokenizer JSON: token ${quoteShort(spelled)} (id ${id}) is no merge's result, so encoding never produces it (a merge removed?)`);
      }
    }
    return buildFromSpelledVocab(vocab, merges, specialTokens, pretokenizerOf(pre), { vocab: 'BPE tokenizer JSON "vocab"', merges: 'BPE tokenizer JSON "merges"' });
  }

  /**
   * Loads GPT-2's own files: vocab.json (token → id, in the byte-to-unicode spelling) and
   * merges.txt (a "#version" line, then one "left right" merge per line in rank order).
   */
  static fromGPT2(vocabJson: string | Readonly<Record<string, number>>, mergesTxt: string, options: GPT2LoadOptions = {}): BPETokenizer {
    let parsed: unknown = vocabJson;
    if (typeof vocabJson === 'string') {
      try {
        parsed = JSON.parse(vocabJson.charCodeAt(0) === 0xfeff ? vocabJson.slice(1) : vocabJson) as unknown;
      } catch (error) {
        throw new Error(`vocab.json: invalid JSON (${quoteShort(error instanceof Error ? error.message : String(error), 160)})`);
      }
    }
    if (typeof mergesTxt !== 'string') throw new Error(`merges.txt: expected its text (a string), got ${describeType(mergesTxt)}`);
    const all = expectIdRecord(parsed, 'vocab.json');
    const specialNames = new Set(options.specialTokens ?? (Object.hasOwn(all, '<|endoftext|>') ? ['<|endoftext|>'] : []));
    const entries = Object.entries(all);
    const vocab = Object.fromEntries(entries.filter(([name]) => !specialNames.has(name)));
    const specialEntries = entries.filter(([name]) => specialNames.has(name));
    // Requested special tokens that vocab.json lacks (a chat template's markers on GPT-2's
    // vocabulary) are appended after its largest id, in the order given.
    let next = entries.reduce((max, [, id]) => Math.max(max, id + 1), 0);
    for (const name of specialNames) {
      if (name.length === 0) throw new Error('GPT2LoadOptions.specialTokens: a special token cannot be the empty string');
      if (!Object.hasOwn(all, name)) specialEntries.push([name, next++]);
    }
    const specialTokens = Object.fromEntries(specialEntries);
    const merges = (mergesTxt.charCodeAt(0) === 0xfeff ? mergesTxt.slice(1) : mergesTxt)
      .split(/\r?\n/)
      .filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
    if (merges.length > MAX_VOCAB_SIZE) throw new Error(`merges.txt: ${merges.length} merges, expected at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE)`);
    const pre = resolvePretokenizer({ pretokenizer: options.pretokenizer, pattern: options.pattern });
    return buildFromSpelledVocab(vocab, merges, specialTokens, pretokenizerOf(pre), { vocab: 'vocab.json', merges: 'merges.txt' });
  }

  /** Reads a file written by `save`; errors are one line and name the file. */
  static load(path: string): BPETokenizer {
    return withTokenizerFile(path, (json) => BPETokenizer.fromJSON(json));
  }

  /** Loads vocab.json + merges.txt files. */
  static loadGPT2(vocabPath: string, mergesPath: string, options: GPT2LoadOptions = {}): BPETokenizer {
    return BPETokenizer.fromGPT2(readTextFile(vocabPath, 'vocab.json'), readTextFile(mergesPath, 'merges.txt'), options);
  }

  /**
   * A tokenizer with these special tokens added at ids vocabSize, vocabSize + 1, … (ones it
   * already has keep their ids); vocabulary, merges and every existing id are unchanged.
   */
  withSpecialTokens(tokens: readonly string[]): BPETokenizer {
    const specialTokens = addSpecialTokens('BPETokenizer', this.specials, this.vocabSize, tokens);
    return specialTokens === null ? this : new BPETokenizer({ tokens: this.tokens, merges: this.mergePairs, specialTokens, ...pretokenizerOf(this.pre) });
  }

  // ---- encoding --------------------------------------------------------------------------------

  /**
   * Token ids of `text`. Registered special tokens in the text become their ids unless
   * `allowSpecial` is false, in which case they are encoded as ordinary text.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.encodeToBuffer(text, options.allowSpecial !== false).toArray();
  }

  encodeToInt32Array(text: string, options: EncodeOptions = {}): Int32Array {
    return this.encodeToBuffer(text, options.allowSpecial !== false).toInt32Array();
  }

  /** Encodes text with no special-token handling at all. */
  encodeOrdinary(text: string): number[] {
    return this.encodeToBuffer(text, false).toArray();
  }

  private encodeToBuffer(text: string, allowSpecial: boolean): IdBuffer {
    // Around 3 bytes per token for English with a few thousand merges; the buffer grows if not.
    const out = new IdBuffer(text.length / 3 + 16);
    if (!allowSpecial || this.specialMatcher === null) {
      this.encodeOrdinaryInto(text, out);
      return out;
    }
    splitOnSpecial(
      text,
      this.specialMatcher,
      (chunk) => this.encodeOrdinaryInto(chunk, out),
      (token) => out.push(this.specials.get(token) as number),
    );
    return out;
  }

  private encodeOrdinaryInto(text: string, out: IdBuffer): void {
    // The hot loop of encoding: written out (no per-piece callback) because it runs once per
    // pre-token, and almost every piece is a cache hit.
    const pre = this.pre;
    const cache = this.cache;
    pre.start(text);
    let piece: string | null;
    while ((piece = pre.next()) !== null) {
      let ids = cache.get(piece);
      if (ids === undefined) {
        ids = applyMerges(this.pieceBytes(piece), this.table);
        if (piece.length <= CACHE_MAX_PIECE) {
          if (cache.size >= CACHE_MAX_ENTRIES) cache.clear();
          cache.set(piece, ids);
        }
      }
      out.pushAll(ids);
    }
  }

  /** The byte-token ids of a piece; ASCII (most pieces) skips the UTF-8 encoder. */
  private pieceBytes(piece: string): number[] {
    const ids: number[] = [];
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      if (c >= 128) {
        const bytes = utf8Encode(piece);
        const all: number[] = new Array<number>(bytes.length);
        for (let j = 0; j < bytes.length; j++) all[j] = this.byteIds[bytes[j]];
        return all;
      }
      ids.push(this.byteIds[c]);
    }
    return ids;
  }

  // ---- decoding --------------------------------------------------------------------------------

  /** The bytes the ids stand for; an unknown id is an error naming it and its position. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.bytesOf(ids[i]);
      if (bytes === undefined) {
        throw new RangeError(`BPETokenizer.decode: id ${ids[i]} at position ${i} is not in the vocabulary (size ${this.vocabSize})`);
      }
      total += bytes.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.bytesOf(ids[i]) as Uint8Array;
      // A byte loop beats `set` for the few bytes of a typical token.
      if (bytes.length <= 16) for (let j = 0; j < bytes.length; j++) out[at + j] = bytes[j];
      else out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  /**
   * Text of the ids. A sequence that cuts a multi-byte character in two (possible with
   * byte-level tokens, e.g. a truncated generation) decodes that character to U+FFFD.
   */
  decode(ids: ArrayLike<number>): string {
    return utf8Decode(this.decodeBytes(ids));
  }

  private bytesOf(id: number): Uint8Array | undefined {
    return this.idBytes[id];
  }

  // ---- inspection ------------------------------------------------------------------------------

  get numMerges(): number {
    return this.mergePairs.length;
  }

  /** Special token text → id. */
  get specialTokens(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.specials);
  }

  /** The token's bytes (a copy), or undefined for an unknown id. */
  tokenBytes(id: number): Uint8Array | undefined {
    return this.bytesOf(id)?.slice();
  }

  /** The token as vocab.json spells it ('Ġthe'), or the special token's text. */
  idToToken(id: number): string | undefined {
    const bytes = this.tokens[id];
    if (bytes !== undefined) return bytesToGPT2String(bytes);
    return this.specialIds.get(id);
  }

  /** Inverse of `idToToken`. */
  tokenToId(token: string): number | undefined {
    const special = this.specials.get(token);
    if (special !== undefined) return special;
    const bytes = gpt2StringToBytes(token);
    return bytes === null ? undefined : this.idOfBytes.get(bytesKey(bytes));
  }

  /** Merges in rank order as (left id, right id, result id). */
  merges(): Array<[number, number, number]> {
    return this.mergePairs.map(([a, b], rank) => [a, b, this.table.results[rank]]);
  }

  // ---- files -----------------------------------------------------------------------------------

  toJSON(): BPETokenizerJSON {
    // fromEntries (not `obj[k] = v`) so that a token spelled "__proto__" stays an ordinary key.
    const vocab: Record<string, number> = Object.fromEntries(this.vocabEntries());
    const merges = this.mergePairs.map(([a, b]) => `${this.idToToken(a)} ${this.idToToken(b)}`);
    // A built-in is written by name and with its pattern, which older TensorLM versions read.
    const pre = this.pretokenizer === null ? {} : { pretokenizer: this.pretokenizer };
    return { type: 'bpe', version: 1, ...pre, pattern: this.pattern, vocab, merges, specialTokens: this.specialTokens };
  }

  private vocabEntries(): Array<[string, number]> {
    const entries: Array<[string, number]> = [];
    this.tokens.forEach((bytes, id) => {
      if (bytes !== undefined) entries.push([bytesToGPT2String(bytes), id]);
    });
    return entries;
  }

  /** Writes the JSON format (atomically: a temporary file renamed into place). */
  save(path: string): void {
    writeFileAtomic(path, formatJsonFile(this.toJSON(), { vocab: stringifyVocab(this.vocabEntries()) }));
  }

  /** GPT-2's vocab.json and merges.txt contents (special tokens go into vocab.json, as GPT-2's do). */
  toGPT2(): { vocabJson: string; mergesTxt: string } {
    const entries = this.vocabEntries();
    const spelled = new Map(entries);
    for (const [text, id] of this.specials) {
      const clash = spelled.get(text);
      if (clash !== undefined) throw new Error(`toGPT2: special token ${JSON.stringify(text)} is spelled like ordinary token ${clash}; vocab.json cannot hold both`);
      entries.push([text, id]);
    }
    const merges = this.mergePairs.map(([a, b]) => `${this.idToToken(a)} ${this.idToToken(b)}`);
    entries.sort((a, b) => a[1] - b[1]);
    return { vocabJson: stringifyVocab(entries), mergesTxt: ['#version: 0.2', ...merges].join('\n') + '\n' };
  }
}

function readFiles(paths: readonly string[]): string[] {
  return paths.map((p) => readTextFile(p, 'training file'));
}

/** The model fields that select this pre-tokenizer again. */
function pretokenizerOf(pre: Pretokenizer): { pretokenizer: PretokenizerName } | { pattern: string } {
  return pre.name !== null ? { pretokenizer: pre.name } : { pattern: pre.pattern };
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) throw new Error(`BPETokenizer: ${what} has invalid id ${quoteShort(id)} (expected an integer in [0, ${MAX_VOCAB_SIZE}))`);
}

function describeType(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${quoteShort(value, 40)}`;
}

function expectObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what}: expected an object, got ${describeType(value)}`);
  return value as Record<string, unknown>;
}

/** An object of token → id, each id an integer in [0, MAX_VOCAB_SIZE), with at most `maxEntries` entries (checked first). */
function expectIdRecord(value: unknown, what: string, maxEntries = MAX_VOCAB_SIZE): Record<string, number> {
  const obj = expectObject(value, what);
  let count = 0;
  for (const key in obj) {
    if (Object.hasOwn(obj, key) && ++count > maxEntries) throw new Error(`${what}: more than ${maxEntries} entries, expected at most ${maxEntries}`);
  }
  for (const [key, id] of Object.entries(obj)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) {
      throw new Error(`${what}: token ${quoteShort(key)} has invalid id ${quoteShort(id)} (expected an integer in [0, ${MAX_VOCAB_SIZE}))`);
    }
  }
  return obj as Record<string, number>;
}

/** Shared by the JSON format and GPT-2's files: both spell tokens with the byte-to-unicode table. */
function buildFromSpelledVocab(
  vocab: Readonly<Record<string, number>>,
  mergeLines: readonly string[],
  specialTokens: Readonly<Record<string, number>>,
  pre: { pretokenizer: PretokenizerName } | { pattern: string },
  labels: { vocab: string; merges: string },
): BPETokenizer {
  const tokens: (Uint8Array | undefined)[] = [];
  const seen = new Map<number, string>();
  for (const [spelled, id] of Object.entries(vocab)) {
    const bytes = gpt2StringToBytes(spelled);
    if (bytes === null || bytes.length === 0) {
      throw new Error(`${labels.vocab}: token ${quoteShort(spelled)} (id ${id}) is not in GPT-2's byte-to-unicode spelling; if it is a special token, list it in specialTokens`);
    }
    const previous = seen.get(id);
    if (previous !== undefined) throw new Error(`${labels.vocab}: tokens ${quoteShort(previous, 40)} and ${quoteShort(spelled, 40)} share id ${id} (expected one id per token)`);
    seen.set(id, spelled);
    tokens[id] = bytes;
  }
  const what = labels.merges;
  const merges = mergeLines.map((line, i): [number, number] => {
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error(`${what}: merge ${i + 1} ${quoteShort(line)} is not two tokens separated by one space`);
    if (!Object.hasOwn(vocab, parts[0]) || !Object.hasOwn(vocab, parts[1])) {
      throw new Error(`${what}: merge ${i + 1} ${quoteShort(line)} uses a token missing from the vocabulary`);
    }
    const a = vocab[parts[0]];
    const b = vocab[parts[1]];
    if (!Object.hasOwn(vocab, parts[0] + parts[1])) throw new Error(`${what}: merge ${i + 1} ${quoteShort(line)} produces ${quoteShort(parts[0] + parts[1])}, which is missing from the vocabulary`);
    return [a, b];
  });
  // Sparse arrays from `tokens[id] = …` are fine: unused ids stay undefined.
  return new BPETokenizer({ tokens: Array.from(tokens), merges, specialTokens, ...pre });
}
