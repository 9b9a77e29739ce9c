/**
 * Byte helpers for byte-level BPE: UTF-8 conversion and GPT-2's byte ↔ unicode table.
 *
 * GPT-2 stores tokens (which are byte strings) in vocab.json and merges.txt as text. Raw bytes
 * such as 0x20 (space) or 0x0A (newline) would break the space-separated merges.txt lines, so
 * every byte is first mapped to a printable character: printable Latin-1 bytes map to
 * themselves and the other 68 bytes to U+0100…U+0143 (space becomes 'Ġ', newline 'Ċ').
 */

const utf8Encoder = new TextEncoder();
/** Keeps a leading BOM (it is text like any other); non-fatal: a token sequence that splits a multi-byte character decodes to U+FFFD, like GPT-2's errors='replace'. */
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export function utf8Encode(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function utf8Decode(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

function buildByteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  const isPrintable = new Set(printable);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (!isPrintable.has(b)) table[b] = String.fromCharCode(256 + next++);
  }
  return table;
}

/** GPT-2's `bytes_to_unicode()`: the character that stands for each byte in vocab.json. */
export const BYTE_TO_UNICODE: readonly string[] = Object.freeze(buildByteToUnicode());

const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

/** The vocab.json spelling of a byte string (e.g. " the" → "Ġthe"). */
export function bytesToGPT2String(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]];
  return out;
}

/** The bytes a vocab.json token stands for, or null when it contains a character outside the table. */
export function gpt2StringToBytes(token: string): Uint8Array | null {
  const bytes = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]);
    if (b === undefined) return null;
    bytes[i] = b;
  }
  return bytes;
}

/** Lexicographic comparison of byte strings (a proper prefix sorts first), like Python's bytes ordering. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A string key for a byte string (one char per byte), for Maps keyed by token bytes. */
export function bytesKey(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}
