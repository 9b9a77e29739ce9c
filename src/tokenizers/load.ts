/** Loading a tokenizer file of either kind, by its "type" field. */
import { BPETokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import { quoteShort, withTokenizerFile, type Tokenizer } from './tokenizer.js';

/**
 * A tokenizer from the JSON its `toJSON` wrote. Every field is checked (errors are one line and
 * name the field), and the tokenizer must round-trip its probe text (`checkRoundTrip`).
 */
export function tokenizerFromJSON(json: unknown): CharTokenizer | BPETokenizer {
  const type = json !== null && typeof json === 'object' && !Array.isArray(json) ? (json as { type?: unknown }).type : undefined;
  if (type === 'bpe') return BPETokenizer.fromJSON(json);
  if (type === 'char') return CharTokenizer.fromJSON(json);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`not a TensorLM tokenizer: expected a JSON object with "type": "bpe" or "char", got ${Array.isArray(json) ? 'an array' : quoteShort(json, 40)}`);
  }
  throw new Error(`not a TensorLM tokenizer: "type" is ${type === undefined ? 'missing' : quoteShort(type, 40)}, expected "bpe" or "char"`);
}

/** Reads a tokenizer saved by `save()`; a leading UTF-8 BOM is skipped, and errors are one line naming the file. */
export function loadTokenizer(path: string): CharTokenizer | BPETokenizer {
  return withTokenizerFile(path, tokenizerFromJSON);
}

export type { Tokenizer };
