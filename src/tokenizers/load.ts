/** Loading a tokenizer file of either kind, by its "type" field. */
import { readJsonFile } from '../data/files.js';
import { BPETokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import type { Tokenizer } from './tokenizer.js';

export function tokenizerFromJSON(json: unknown): CharTokenizer | BPETokenizer {
  const type = json !== null && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
  if (type === 'bpe') return BPETokenizer.fromJSON(json);
  if (type === 'char') return CharTokenizer.fromJSON(json);
  throw new Error(`not a TensorLM tokenizer: "type" is ${JSON.stringify(type)}, expected "bpe" or "char"`);
}

/** Reads a tokenizer saved by `save()`. */
export function loadTokenizer(path: string): CharTokenizer | BPETokenizer {
  const json = readJsonFile(path, 'tokenizer file');
  try {
    return tokenizerFromJSON(json);
  } catch (error) {
    throw new Error(`tokenizer file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export type { Tokenizer };
