/**
 * TensorLM tokenizers ⇄ Hugging Face `tokenizer.json` (the `tokenizers` library's format).
 *
 * Byte-level BPE maps one to one: the same vocabulary spelling (GPT-2's printable bytes, 'Ġ' for
 * a space), the same merges ("left right" in rank order), the special tokens as `added_tokens`.
 * GPT-2's pre-tokenizer is the ByteLevel pre-tokenizer with its regex; a user pattern becomes a
 * Split on that regex followed by ByteLevel without its own regex.
 *
 * A character tokenizer becomes a vocabulary-only BPE: no merges, no pre-tokenizer, so each
 * character is looked up whole, and a Fuse decoder joins the pieces without spaces. Unknown
 * characters map to the unk token when the tokenizer has one.
 */
import { BPETokenizer, type BPETokenizerJSON } from '../tokenizers/bpe.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { GPT2_PATTERN } from '../tokenizers/pretokenize.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** The special token ids a model config names (GPT-2's <|endoftext|> is both), or null. */
export function specialIds(tokenizer: Tokenizer): { bos: number | null; eos: number | null } {
  const s = tokenizer.specialTokens;
  const first = (...names: string[]) => names.map((n) => s[n]).find((v) => v !== undefined) ?? null;
  return { bos: first('<|bos|>', '<s>', '<|begin_of_text|>', '<|endoftext|>'), eos: first('<|eos|>', '</s>', '<|end_of_text|>', '<|endoftext|>') };
}

function addedTokens(special: Readonly<Record<string, number>>): object[] {
  return Object.entries(special)
    .sort((a, b) => a[1] - b[1])
    .map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** The tokenizer as a `tokenizers` library tokenizer.json object. */
export function toHfTokenizerJson(tokenizer: Tokenizer): Record<string, unknown> {
  const base = { version: '1.0', truncation: null, padding: null, added_tokens: addedTokens(tokenizer.specialTokens), normalizer: null };
  if (tokenizer instanceof BPETokenizer) {
    const j = tokenizer.toJSON();
    const pre =
      j.pattern === GPT2_PATTERN
        ? BYTE_LEVEL
        : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: j.pattern }, behavior: 'Isolated', invert: false }, { ...BYTE_LEVEL, use_regex: false }] };
    return {
      ...base,
      pre_tokenizer: pre,
      post_processor: { ...BYTE_LEVEL, trim_offsets: false },
      decoder: BYTE_LEVEL,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: j.vocab, merges: j.merges },
    };
  }
  if (tokenizer instanceof CharTokenizer) {
    const vocab: Record<string, number> = {};
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      const text = tokenizer.idToToken(id);
      if (text !== undefined && tokenizer.specialTokens[text] === undefined) vocab[text] = id;
    }
    return {
      ...base,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: { type: 'BPE', dropout: null, unk_token: tokenizer.unk ?? null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
    };
  }
  throw new Error(`toHfTokenizerJson: unsupported tokenizer type '${(tokenizer as Tokenizer).type}'`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The pre-tokenisation regex of a byte-level tokenizer.json, or null when it is not byte-level. */
function byteLevelPattern(pre: unknown, what: string): string | null {
  if (!isObject(pre)) return null;
  if (pre.type === 'ByteLevel') {
    if (pre.add_prefix_space === true) throw new Error(`${what}: ByteLevel add_prefix_space true is not supported`);
    return pre.use_regex === false ? null : GPT2_PATTERN;
  }
  if (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, bytes] = pre.pretokenizers as unknown[];
    if (isObject(split) && split.type === 'Split' && isObject(split.pattern) && typeof split.pattern.Regex === 'string' && isObject(bytes) && bytes.type === 'ByteLevel') {
      if (split.behavior !== 'Isolated' || split.invert === true) throw new Error(`${what}: a Split pre-tokenizer must be 'Isolated' and not inverted`);
      return split.pattern.Regex;
    }
  }
  throw new Error(`${what}: unsupported pre_tokenizer ${JSON.stringify(pre).slice(0, 80)} (TensorLM reads ByteLevel BPE and vocabulary-only tokenizers)`);
}

/** A TensorLM tokenizer from a tokenizer.json object (byte-level BPE, or vocabulary-only → char). */
export function fromHfTokenizerJson(json: unknown, what: string): Tokenizer {
  if (!isObject(json) || !isObject(json.model)) throw new Error(`${what}: not a tokenizers library tokenizer.json (no "model" object)`);
  const model = json.model;
  if (model.type !== 'BPE') throw new Error(`${what}: model type ${JSON.stringify(model.type)} is not supported (BPE only)`);
  if (!isObject(model.vocab)) throw new Error(`${what}: model.vocab must be an object`);
  const merges = model.merges ?? [];
  if (!Array.isArray(merges)) throw new Error(`${what}: model.merges must be an array`);
  const special: Record<string, number> = {};
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') throw new Error(`${what}: every added_tokens entry needs "content" and "id"`);
    special[t.content] = t.id;
  }
  const vocab = Object.fromEntries(Object.entries(model.vocab).filter(([k]) => special[k] === undefined)) as Record<string, number>;
  const pattern = byteLevelPattern(json.pre_tokenizer, what);
  if (pattern !== null) {
    // Merges may be "a b" strings or [a, b] pairs (newer tokenizers versions).
    const mergeLines = merges.map((m, i) => {
      if (typeof m === 'string') return m;
      if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return `${m[0]} ${m[1]}`;
      throw new Error(`${what}: merge ${i} must be "left right" or a pair of strings`);
    });
    const file: BPETokenizerJSON = { type: 'bpe', version: 1, pattern, vocab, merges: mergeLines, specialTokens: special };
    if (pattern === GPT2_PATTERN) file.pretokenizer = 'gpt2';
    return BPETokenizer.fromJSON(file);
  }
  if (json.pre_tokenizer !== null && json.pre_tokenizer !== undefined) throw new Error(`${what}: unsupported pre_tokenizer`);
  if (merges.length > 0) throw new Error(`${what}: a BPE with merges but no ByteLevel pre-tokenizer is not supported`);
  // Vocabulary-only: single characters in id order (as CharTokenizer numbers them), unk and specials by id.
  const unk = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  const entries = Object.entries(vocab).filter(([k]) => k !== unk);
  for (const [k] of entries) if ([...k].length !== 1) throw new Error(`${what}: a vocabulary-only tokenizer must hold single characters, got ${JSON.stringify(k).slice(0, 40)}`);
  const chars = entries.sort((a, b) => a[1] - b[1]).map(([k]) => k);
  const unkId = unk !== undefined ? (model.vocab as Record<string, number>)[unk] : undefined;
  const tokenizer = new CharTokenizer(chars, { unk, unkId, specialTokens: special });
  for (const [k, id] of entries) if (tokenizer.tokenToId(k) !== id) throw new Error(`${what}: character ids must run 0, 1, 2, … around unk and the special tokens (${JSON.stringify(k)} has id ${id})`);
  return tokenizer;
}
