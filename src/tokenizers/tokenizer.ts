/** What every tokenizer offers, so datasets, the CLI and models can take either kind. */

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
