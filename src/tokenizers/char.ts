/**
 * Character-level tokenizer, as in nanoGPT's shakespeare-char: the vocabulary is the sorted set
 * of characters (Unicode code points) of a text, and each character is one token. Optional
 * extra ids: an unknown-character token and special tokens (e.g. a chat template's markers).
 */
import { writeFileAtomic } from '../data/files.js';
import { compileSpecialMatcher } from './pretokenize.js';
import {
  addSpecialTokens,
  checkRoundTrip,
  formatJsonFile,
  IdBuffer,
  MAX_SPECIAL_TOKEN_LENGTH,
  MAX_SPECIAL_TOKENS,
  MAX_VOCAB_SIZE,
  hasLoneSurrogate,
  quoteShort,
  specialTokenProblem,
  ROUND_TRIP_PROBE,
  withTokenizerFile,
  type EncodeOptions,
  type Tokenizer,
} from './tokenizer.js';

export interface CharTokenizerOptions {
  /**
   * Text that stands for any character outside the vocabulary. When set, it gets its own id
   * (right after the characters), unknown characters encode to it and it decodes to this text;
   * when unset, unknown characters are an error.
   */
  unk?: string;
  /**
   * The unk token's id; by default `chars.length`, the id right after the characters. Only
   * tokenizers whose characters were extended after it (`withCharacters`) need another.
   */
  unkId?: number;
  /**
   * Special tokens such as "<|bos|>": matched whole in `encode` (unless `allowSpecial` is
   * false) and decoded to their text. A list gets the ids after the characters and unk, in
   * order; an object gives each token's id (as saved files do).
   */
  specialTokens?: readonly string[] | Readonly<Record<string, number>>;
}

export interface CharTokenizerJSON {
  type: 'char';
  version: 1;
  /**
   * The characters in id order. They take ids 0, 1, 2, … skipping the ids of unk and the
   * special tokens; without special tokens and added characters, id i is simply chars[i].
   */
  chars: string[];
  unk?: string;
  /** Only when unk is not at id chars.length (characters were added after it). */
  unkId?: number;
  /** Special token text → id; only when there are any. */
  specialTokens?: Record<string, number>;
}

/** Code point order, which is what Python's sorted() gives (plain string sort compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  return (a.codePointAt(0) as number) - (b.codePointAt(0) as number);
}

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) as number;
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return cp < 0x20 || cp === 0x7f ? hex : `${JSON.stringify(ch)} (${hex})`;
}

/**
 * A string from UTF-16 code units, copied as they are (lone surrogates and a BOM included): Node's
 * Buffer in one native call, elsewhere (browsers, which have no Buffer) String.fromCharCode in chunks.
 */
function unitsToString(units: Uint16Array): string {
  const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;
  if (NodeBuffer) return NodeBuffer.from(units.buffer, units.byteOffset, units.byteLength).toString('utf16le');
  let out = '';
  for (let i = 0; i < units.length; i += 0x2000) out += String.fromCharCode(...units.subarray(i, i + 0x2000));
  return out;
}

/** Ids above this are refused: a file with a huge id would otherwise make a vocabulary (and an embedding table) that size. */
const MAX_ID = 1 << 21;

function checkReservedId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id >= MAX_ID) throw new Error(`CharTokenizer: ${what} has invalid id ${id} (ids are integers in [0, ${MAX_ID}))`);
}

export class CharTokenizer implements Tokenizer {
  readonly type = 'char';
  /** The characters in id order (see `CharTokenizerJSON.chars` for which ids they take). */
  readonly chars: readonly string[];
  readonly unk: string | undefined;
  /** Largest id + 1. */
  readonly vocabSize: number;
  private readonly unkIdValue: number | undefined;
  /** Code point → id. */
  private readonly ids = new Map<number, number>();
  /** Ids of BMP characters by UTF-16 code (-1 when absent): a table lookup, not a Map, per character. */
  private readonly bmpIds: Int32Array;
  /** Text of every id (characters, unk, special tokens), for decoding; undefined for unused ids. */
  private readonly texts: (string | undefined)[] = [];
  private readonly specials = new Map<string, number>();
  private readonly specialMatcher: RegExp | null;

  constructor(chars: readonly string[], options: CharTokenizerOptions = {}) {
    this.unk = options.unk;
    // Ids held by unk and object-given special tokens; the characters fill the other ids in order.
    const reserved = new Map<number, string>();
    if (options.unkId !== undefined && options.unk === undefined) throw new Error('CharTokenizer: unkId is set but unk is not');
    if (options.unk !== undefined) {
      this.unkIdValue = options.unkId ?? chars.length;
      checkReservedId(this.unkIdValue, 'unk');
      reserved.set(this.unkIdValue, options.unk);
    }
    const specialList = Array.isArray(options.specialTokens) ? (options.specialTokens as readonly string[]) : [];
    if (options.specialTokens !== undefined && !Array.isArray(options.specialTokens)) {
      for (const [text, id] of Object.entries(options.specialTokens as Readonly<Record<string, number>>)) {
        const problem = specialTokenProblem(text);
        if (problem !== null) throw new Error(`CharTokenizer: ${problem}`);
        checkReservedId(id, `special token ${quoteShort(text)}`);
        const other = reserved.get(id);
        if (other !== undefined) throw new Error(`CharTokenizer: special token ${quoteShort(text)} reuses id ${id} (of ${quoteShort(other)})`);
        reserved.set(id, text);
        this.specials.set(text, id);
      }
    }

    let next = 0;
    chars.forEach((ch, i) => {
      const cp = ch.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== ch) {
        throw new Error(`CharTokenizer: vocabulary entry ${i} (${quoteShort(ch)}) must be exactly one character`);
      }
      if (this.ids.has(cp)) throw new Error(`CharTokenizer: character ${describeChar(ch)} appears twice in the vocabulary`);
      while (reserved.has(next)) next++;
      this.ids.set(cp, next);
      this.texts[next] = ch;
      next++;
    });
    for (const [id, text] of reserved) this.texts[id] = text;
    for (const text of specialList) {
      const problem = typeof text === 'string' ? specialTokenProblem(text) : 'a special token must be a string';
      if (problem !== null) throw new Error(`CharTokenizer: ${problem}`);
      if (this.specials.has(text)) continue; // a repeat in the list is the same token
      const id = this.texts.length;
      this.specials.set(text, id);
      this.texts[id] = text;
    }
    this.chars = Object.freeze(chars.slice());
    this.vocabSize = this.texts.length;
    this.specialMatcher = compileSpecialMatcher([...this.specials.keys()]);

    let maxBmp = -1;
    for (const cp of this.ids.keys()) if (cp < 0x10000 && cp > maxBmp) maxBmp = cp;
    this.bmpIds = new Int32Array(maxBmp + 1).fill(-1);
    // Surrogates stay out of the table: a high surrogate may start a pair (one astral
    // character), which only the code-point path below recognises.
    for (const [cp, id] of this.ids) if (cp <= maxBmp && (cp < 0xd800 || cp > 0xdfff)) this.bmpIds[cp] = id;
  }

  /** The vocabulary of `text`: its distinct characters in code point order. */
  static fromText(text: string, options: CharTokenizerOptions = {}): CharTokenizer {
    const seen = new Set<string>();
    for (const ch of text) seen.add(ch);
    return new CharTokenizer([...seen].sort(compareCodePoints), options);
  }

  /** The id of the unknown-character token, or undefined without `unk`. */
  get unkId(): number | undefined {
    return this.unkIdValue;
  }

  /** Special token text → id. */
  get specialTokens(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.specials);
  }

  /** The text of an id (a character, the unk text or a special token), or undefined for an unknown id. */
  idToToken(id: number): string | undefined {
    return this.texts[id];
  }

  /** The id of a character or special token; undefined when it has none. */
  tokenToId(token: string): number | undefined {
    const special = this.specials.get(token);
    if (special !== undefined) return special;
    const cp = token.codePointAt(0);
    return cp !== undefined && String.fromCodePoint(cp) === token ? this.ids.get(cp) : undefined;
  }

  /**
   * A tokenizer with these characters added (any text: its characters not yet in the vocabulary,
   * in code point order) at new ids after the current ones; every existing id is unchanged,
   * so a model trained with this tokenizer keeps its embeddings for them.
   */
  withCharacters(chars: string | readonly string[]): CharTokenizer {
    const added = new Set<string>();
    const list = typeof chars === 'string' ? [...chars] : chars;
    list.forEach((ch, i) => {
      if (typeof ch !== 'string' || [...ch].length !== 1) {
        throw new Error(`CharTokenizer.withCharacters: entry ${i} (${JSON.stringify(ch)}) must be exactly one character`);
      }
      const cp = ch.codePointAt(0) as number;
      if (!this.ids.has(cp)) added.add(ch);
    });
    if (added.size === 0) return this;
    return new CharTokenizer([...this.chars, ...[...added].sort(compareCodePoints)], this.layout());
  }

  /**
   * A tokenizer with these special tokens added at ids vocabSize, vocabSize + 1, … (tokens it
   * already has keep their ids); every existing id is unchanged.
   */
  withSpecialTokens(tokens: readonly string[]): CharTokenizer {
    const specialTokens = addSpecialTokens('CharTokenizer', this.specials, this.vocabSize, tokens);
    return specialTokens === null ? this : new CharTokenizer(this.chars, { ...this.layout(), specialTokens });
  }

  /** The options that rebuild this tokenizer's ids from `chars`. */
  private layout(): CharTokenizerOptions {
    return { unk: this.unk, unkId: this.unkIdValue, specialTokens: this.specialTokens };
  }

  /**
   * Token ids of `text`. Registered special tokens in the text become their ids unless
   * `allowSpecial` is false, in which case their characters are encoded one by one.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.encodeToBuffer(text, options.allowSpecial !== false).toArray();
  }

  encodeToInt32Array(text: string, options: EncodeOptions = {}): Int32Array {
    return this.encodeToBuffer(text, options.allowSpecial !== false).toInt32Array();
  }

  private encodeToBuffer(text: string, allowSpecial: boolean): IdBuffer {
    const out = new IdBuffer(text.length);
    const matcher = allowSpecial ? this.specialMatcher : null;
    if (matcher === null) {
      this.encodeRange(text, 0, text.length, out);
      return out;
    }
    // Ranges of the original string rather than slices, so an error names the index in `text`.
    matcher.lastIndex = 0;
    let start = 0;
    let m: RegExpExecArray | null;
    while ((m = matcher.exec(text)) !== null) {
      this.encodeRange(text, start, m.index, out);
      out.push(this.specials.get(m[0]) as number);
      start = m.index + m[0].length;
    }
    this.encodeRange(text, start, text.length, out);
    return out;
  }

  private encodeRange(text: string, start: number, end: number, out: IdBuffer): void {
    const unkId = this.unkIdValue;
    const bmp = this.bmpIds;
    for (let i = start; i < end; i++) {
      const unit = text.charCodeAt(i);
      const fast = unit < bmp.length ? bmp[unit] : -1;
      if (fast >= 0) {
        out.push(fast);
        continue;
      }
      const cp = text.codePointAt(i) as number;
      const id = this.ids.get(cp);
      if (id !== undefined) out.push(id);
      else if (unkId !== undefined) out.push(unkId);
      else {
        throw new Error(
          `CharTokenizer.encode: character ${describeChar(String.fromCodePoint(cp))} at index ${i} is not in the vocabulary ` +
            `(${this.chars.length} characters); build the tokenizer from text that contains it, add it with withCharacters, or pass { unk } to map unknown characters to one token`,
        );
      }
      if (cp > 0xffff) i++; // the low surrogate of an astral character
    }
  }

  decode(ids: ArrayLike<number>): string {
    // Gather UTF-16 code units and turn them into a string in one native call: appending a
    // million one-character strings is far slower. Node's 'utf16le' decoding copies code units
    // as they are, so a leading BOM or a lone surrogate comes back unchanged (TextDecoder
    // would drop or replace them).
    const units = new Uint16Array(this.countUnits(ids));
    const texts = this.texts;
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const s = texts[ids[i]] as string;
      for (let j = 0; j < s.length; j++) units[at++] = s.charCodeAt(j);
    }
    return unitsToString(units);
  }

  /** Total UTF-16 length of the decoded text; also validates every id. */
  private countUnits(ids: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const s = this.texts[ids[i]];
      if (s === undefined) {
        throw new RangeError(`CharTokenizer.decode: id ${ids[i]} at position ${i} is not in the vocabulary (size ${this.vocabSize})`);
      }
      total += s.length;
    }
    return total;
  }

  toJSON(): CharTokenizerJSON {
    // Fields beyond chars/unk only when used, so files of plain tokenizers stay as they were.
    const json: CharTokenizerJSON = { type: 'char', version: 1, chars: this.chars.slice() };
    if (this.unk !== undefined) json.unk = this.unk;
    if (this.unkIdValue !== undefined && this.unkIdValue !== this.chars.length) json.unkId = this.unkIdValue;
    if (this.specials.size > 0) json.specialTokens = Object.fromEntries(this.specials);
    return json;
  }

  /**
   * Builds a tokenizer from its JSON (as `toJSON` writes it). Errors are one line naming the
   * field and what was expected; the result must round-trip its own characters and those of the
   * probe text it has (`checkRoundTrip`).
   */
  static fromJSON(json: unknown): CharTokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('char tokenizer JSON: expected an object');
    const obj = json as Record<string, unknown>;
    if (obj.type !== 'char') throw new Error(`char tokenizer JSON: "type" is ${quoteShort(obj.type)}, expected "char"`);
    if (obj.version !== 1) throw new Error(`char tokenizer JSON: unsupported version ${quoteShort(obj.version)} (this TensorLM reads version 1)`);
    if (!Array.isArray(obj.chars)) throw new Error('char tokenizer JSON: "chars" must be an array of strings (one character each)');
    if (obj.chars.length === 0) throw new Error('char tokenizer JSON: "chars" is empty (a char tokenizer needs at least one character)');
    if (obj.chars.length > MAX_VOCAB_SIZE) throw new Error(`char tokenizer JSON: "chars" has ${obj.chars.length} entries, expected at most ${MAX_VOCAB_SIZE} (MAX_VOCAB_SIZE)`);
    const bad = obj.chars.findIndex((c) => typeof c !== 'string');
    if (bad >= 0) throw new Error(`char tokenizer JSON: "chars" entry ${bad} must be a one-character string, got ${quoteShort(obj.chars[bad], 40)}`);
    // Text read from a UTF-8 file never holds a lone surrogate: a file with one is damaged.
    const lone = (obj.chars as string[]).findIndex((c) => hasLoneSurrogate(c));
    if (lone >= 0) throw new Error(`char tokenizer JSON: "chars" entry ${lone} is a lone surrogate (${quoteShort(obj.chars[lone])}), which no UTF-8 text holds`);
    if (obj.unk !== undefined && typeof obj.unk !== 'string') throw new Error('char tokenizer JSON: "unk" must be a string');
    if (typeof obj.unk === 'string') {
      if (obj.unk.length === 0 || obj.unk.includes('\u0000') || hasLoneSurrogate(obj.unk)) throw new Error(`char tokenizer JSON: "unk" must be non-empty text without NUL or lone surrogates, got ${quoteShort(obj.unk)}`);
      if ((obj.chars as string[]).includes(obj.unk)) throw new Error(`char tokenizer JSON: "unk" ${quoteShort(obj.unk)} is also a vocabulary character, so decoding could not tell them apart`);
    }
    if (obj.unkId !== undefined && (typeof obj.unkId !== 'number' || !Number.isInteger(obj.unkId) || obj.unkId < 0)) {
      throw new Error('char tokenizer JSON: "unkId" must be a non-negative integer');
    }
    let specialTokens: Record<string, number> | undefined;
    if (obj.specialTokens !== undefined) {
      const st = obj.specialTokens;
      if (st === null || typeof st !== 'object' || Array.isArray(st)) throw new Error('char tokenizer JSON: "specialTokens" must be an object of token → id');
      const entries = Object.entries(st);
      if (entries.length > MAX_SPECIAL_TOKENS) throw new Error(`char tokenizer JSON: "specialTokens" has ${entries.length} entries, expected at most ${MAX_SPECIAL_TOKENS}`);
      for (const [text, id] of entries) {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
          throw new Error(`char tokenizer JSON: "specialTokens": special token ${quoteShort(text)} has invalid id ${quoteShort(id)} (expected a non-negative integer)`);
        }
        if (text.length > MAX_SPECIAL_TOKEN_LENGTH) throw new Error(`char tokenizer JSON: "specialTokens": special token ${quoteShort(text)} has ${text.length} characters, expected at most ${MAX_SPECIAL_TOKEN_LENGTH}`);
      }
      specialTokens = st as Record<string, number>;
    }
    const tok = new CharTokenizer(obj.chars as string[], { unk: obj.unk, unkId: obj.unkId as number | undefined, specialTokens });
    // The ids TensorLM writes are contiguous and start with a character: the unk and special
    // tokens follow the characters (fromText, withSpecialTokens), or sit between characters
    // added later (withCharacters). An unused id, or a token before the first character, is an
    // edited file (it would silently renumber every character, or grow the embedding table).
    const reservedCount = (tok.unkId !== undefined ? 1 : 0) + Object.keys(tok.specialTokens).length;
    if (tok.idToToken(0) !== tok.chars[0]) throw new Error(`char tokenizer JSON: id 0 is ${quoteShort(tok.idToToken(0))}, but the first id belongs to the first character (${quoteShort(tok.chars[0])}); an unk or special token id of 0 renumbers every character`);
    if (tok.vocabSize !== tok.chars.length + reservedCount) {
      let unused = 0;
      while (tok.idToToken(unused) !== undefined) unused++;
      throw new Error(`char tokenizer JSON: the ids are not contiguous: id ${unused} is unused although the largest id is ${tok.vocabSize - 1} (an unk or special token id too large?)`);
    }
    // Its characters (the first 4096) and the probe's characters that it has; lone surrogates
    // are left out, since two of them side by side would read as one astral character.
    const known = new Set(tok.chars);
    const sample = tok.chars.slice(0, 4096).filter((ch) => !/^[\uD800-\uDFFF]$/.test(ch));
    const probe = sample.join('') + [...ROUND_TRIP_PROBE].filter((ch) => known.has(ch)).join('');
    try {
      checkRoundTrip(tok, probe);
    } catch (error) {
      throw new Error(`CharTokenizer: ${error instanceof Error ? error.message : String(error)}`);
    }
    return tok;
  }

  save(path: string): void {
    writeFileAtomic(path, formatJsonFile(this.toJSON()));
  }

  /** Reads a file written by `save`; errors are one line and name the file. */
  static load(path: string): CharTokenizer {
    return withTokenizerFile(path, (json) => CharTokenizer.fromJSON(json));
  }
}
