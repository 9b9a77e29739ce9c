/** Loading a tokenizer file of either kind, by its "type" field. */
import { BPETokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import { isTiktokenEncodingName, tiktokenTokenizer } from './tiktoken.js';
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

/**
 * A tokenizer by spec: the name of a tiktoken encoding (`gpt2`, `r50k_base`, `p50k_base`,
 * `p50k_edit`, `cl100k_base`: ids exactly tiktoken's, built once per process and cached), or
 * the path of a file saved by `save()` (a leading UTF-8 BOM is skipped, and errors are one line
 * naming the file). A file that happens to be named like an encoding is read as a path when
 * written with a directory (`./gpt2`).
 */
export function loadTokenizer(spec: string): CharTokenizer | BPETokenizer {
  if (isTiktokenEncodingName(spec)) return tiktokenTokenizer(spec);
  return withTokenizerFile(spec, tokenizerFromJSON);
}

export type { Tokenizer };
