/**
 * Character-level tokenizer, as in nanoGPT's shakespeare-char: the vocabulary is the sorted set
 * of characters (Unicode code points) of a text, and each character is one token.
 */
import { readJsonFile, writeFileAtomic } from '../data/files.js';
import { formatJsonFile, IdBuffer, type Tokenizer } from './tokenizer.js';

export interface CharTokenizerOptions {
  /**
   * Text that stands for any character outside the vocabulary. When set, it gets the last id,
   * unknown characters encode to it and it decodes to this text; when unset, unknown
   * characters are an error.
   */
  unk?: string;
}

export interface CharTokenizerJSON {
  type: 'char';
  version: 1;
  /** The vocabulary: id i is chars[i]. */
  chars: string[];
  unk?: string;
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

export class CharTokenizer implements Tokenizer {
  readonly type = 'char';
  readonly chars: readonly string[];
  readonly unk: string | undefined;
  private readonly ids = new Map<number, number>();
  /** Ids of BMP characters by UTF-16 code (-1 when absent): a table lookup, not a Map, per character. */
  private readonly bmpIds: Int32Array;

  constructor(chars: readonly string[], options: CharTokenizerOptions = {}) {
    chars.forEach((ch, i) => {
      const cp = ch.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== ch) {
        throw new Error(`CharTokenizer: vocabulary entry ${i} (${JSON.stringify(ch)}) must be exactly one character`);
      }
      if (this.ids.has(cp)) throw new Error(`CharTokenizer: character ${describeChar(ch)} appears twice in the vocabulary`);
      this.ids.set(cp, i);
    });
    this.chars = Object.freeze(chars.slice());
    this.unk = options.unk;
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

  get vocabSize(): number {
    return this.chars.length + (this.unk === undefined ? 0 : 1);
  }

  /** The id of the unknown-character token, or undefined without `unk`. */
  get unkId(): number | undefined {
    return this.unk === undefined ? undefined : this.chars.length;
  }

  encode(text: string): number[] {
    return this.encodeToBuffer(text).toArray();
  }

  encodeToInt32Array(text: string): Int32Array {
    return this.encodeToBuffer(text).toInt32Array();
  }

  private encodeToBuffer(text: string): IdBuffer {
    const out = new IdBuffer(text.length);
    const unkId = this.unkId;
    const bmp = this.bmpIds;
    for (let i = 0; i < text.length; i++) {
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
            `(${this.chars.length} characters); build the tokenizer from text that contains it, or pass { unk } to map unknown characters to one token`,
        );
      }
      if (cp > 0xffff) i++; // the low surrogate of an astral character
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    // Gather UTF-16 code units and turn them into a string in one native call: appending a
    // million one-character strings is far slower. Node's 'utf16le' decoding copies code units
    // as they are, so a leading BOM or a lone surrogate comes back unchanged (TextDecoder
    // would drop or replace them).
    const units = new Uint16Array(this.countUnits(ids));
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const s = this.textOf(ids[i]) as string;
      for (let j = 0; j < s.length; j++) units[at++] = s.charCodeAt(j);
    }
    return unitsToString(units);
  }

  private textOf(id: number): string | undefined {
    return this.chars[id] ?? (id === this.unkId ? this.unk : undefined);
  }

  /** Total UTF-16 length of the decoded text; also validates every id. */
  private countUnits(ids: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const s = this.textOf(ids[i]);
      if (s === undefined) {
        throw new RangeError(`CharTokenizer.decode: id ${ids[i]} at position ${i} is not in the vocabulary (size ${this.vocabSize})`);
      }
      total += s.length;
    }
    return total;
  }

  toJSON(): CharTokenizerJSON {
    const json: CharTokenizerJSON = { type: 'char', version: 1, chars: this.chars.slice() };
    if (this.unk !== undefined) json.unk = this.unk;
    return json;
  }

  static fromJSON(json: unknown): CharTokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('char tokenizer JSON: expected an object');
    const obj = json as Record<string, unknown>;
    if (obj.type !== 'char') throw new Error(`char tokenizer JSON: expected type "char", got ${JSON.stringify(obj.type)}`);
    if (obj.version !== 1) throw new Error(`char tokenizer JSON: unsupported version ${JSON.stringify(obj.version)} (this TensorLM reads version 1)`);
    if (!Array.isArray(obj.chars) || !obj.chars.every((c): c is string => typeof c === 'string')) {
      throw new Error('char tokenizer JSON: "chars" must be an array of strings');
    }
    if (obj.unk !== undefined && typeof obj.unk !== 'string') throw new Error('char tokenizer JSON: "unk" must be a string');
    return new CharTokenizer(obj.chars, { unk: obj.unk });
  }

  save(path: string): void {
    writeFileAtomic(path, formatJsonFile(this.toJSON()));
  }

  static load(path: string): CharTokenizer {
    return CharTokenizer.fromJSON(readJsonFile(path, 'tokenizer file'));
  }
}
