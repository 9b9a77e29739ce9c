/**
 * OpenAI's tiktoken vocabularies (GPT-2's `gpt2`/`r50k_base`, `p50k_base`, `p50k_edit`, and
 * `cl100k_base`) as TensorLM byte-level BPE tokenizers, with ids equal to tiktoken's ranks.
 *
 * tiktoken stores no merge list, only token bytes → rank, and encodes a piece by repeatedly
 * joining the adjacent pair whose concatenation has the lowest rank. TensorLM's BPE (GPT-2's
 * `bpe()`) applies merges of (left id, right id) instead. The two agree when each token of rank r
 * becomes the merge of the two parts that tiktoken's own algorithm leaves when run on the token's
 * bytes with only ranks below r (the conversion Hugging Face uses for these vocabularies): every
 * pair tiktoken could join into that token in real text is then the pair the merge names. The
 * tests check the ids against tiktoken itself (WASM) and js-tiktoken.
 *
 * The ranks come from the `js-tiktoken` package (`js-tiktoken/ranks/<name>`), loaded on first use
 * through `require` (so `loadTokenizer` stays synchronous and importing this module loads nothing).
 */
import { applyMergesScan, pairKey } from './bpe-merge.js';
import { BPETokenizer } from './bpe.js';
import type { PretokenizerName } from './pretokenize.js';
import { KNOWN_PRETOKENIZERS } from './pretokenize.js';
import { MAX_VOCAB_SIZE, quoteShort } from './tokenizer.js';

/** A tiktoken encoding's tables, as js-tiktoken's rank modules and tiktoken's files describe them. */
export interface TiktokenRanks {
  /** The pre-tokenisation pattern, in tiktoken's (Rust regex / fancy-regex) syntax. */
  pat_str: string;
  /** Special token text → id. */
  special_tokens: Readonly<Record<string, number>>;
  /**
   * The ranks: either js-tiktoken's compact text (lines of `<ignored> <first rank> <base64 token>
   * <base64 token> …`, consecutive ranks) or a map of token bytes to rank.
   */
  bpe_ranks: string | ReadonlyMap<Uint8Array, number> | Iterable<readonly [Uint8Array, number]>;
}

/** The encodings `tiktokenTokenizer` knows by name. */
export const TIKTOKEN_ENCODINGS = ['gpt2', 'r50k_base', 'p50k_base', 'p50k_edit', 'cl100k_base'] as const;
export type TiktokenEncodingName = (typeof TIKTOKEN_ENCODINGS)[number];

/**
 * tiktoken's patterns → TensorLM's built-in pre-tokenizers that give the same pieces on every
 * input. GPT-2's: tiktoken runs it on fancy-regex, whose `\s` is Unicode White_Space, which
 * GPT2_PATTERN spells out. cl100k's: tiktoken's Python spelling with `(?i:…)` and possessive-free
 * quantifiers, and js-tiktoken's with the case variants written out, both map to `cl100k`.
 */
const PATTERN_TO_PRETOKENIZER: ReadonlyMap<string, PretokenizerName> = new Map<string, PretokenizerName>([
  [String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, 'gpt2'],
  [String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, 'cl100k'],
  [String.raw`'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`, 'cl100k'],
  [String.raw`('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, 'cl100k'],
]);

/** The built-in pre-tokenizer equivalent to a tiktoken pattern, or null when TensorLM has none. */
export function pretokenizerForTiktokenPattern(patStr: string): PretokenizerName | null {
  return PATTERN_TO_PRETOKENIZER.get(patStr) ?? null;
}

/** Token bytes in rank order (index = rank), from either form of `bpe_ranks`. */
function tokensByRank(bpeRanks: TiktokenRanks['bpe_ranks']): Uint8Array[] {
  const tokens: Uint8Array[] = [];
  const put = (rank: number, bytes: Uint8Array): void => {
    if (!Number.isInteger(rank) || rank < 0 || rank >= MAX_VOCAB_SIZE) throw new Error(`tiktoken ranks: rank ${quoteShort(rank)} is not an integer in [0, ${MAX_VOCAB_SIZE})`);
    if (tokens[rank] !== undefined) throw new Error(`tiktoken ranks: rank ${rank} is given twice`);
    tokens[rank] = bytes;
  };
  if (typeof bpeRanks === 'string') {
    for (const line of bpeRanks.split('\n')) {
      if (line.length === 0) continue;
      const fields = line.split(' ');
      const first = Number(fields[1]);
      for (let i = 2; i < fields.length; i++) put(first + i - 2, base64Decode(fields[i]));
    }
  } else {
    for (const [bytes, rank] of bpeRanks) put(rank, bytes);
  }
  return tokens;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < BASE64.length; i++) BASE64_VALUE[BASE64.charCodeAt(i)] = i;

/** Standard base64 (the ranks' tokens are short; no Buffer, so this also runs in browsers). */
function base64Decode(text: string): Uint8Array {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61 /* = */) end--;
  const out = new Uint8Array((end * 3) >> 2);
  let bits = 0;
  let value = 0;
  let at = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? BASE64_VALUE[c] : -1;
    if (v < 0) throw new Error(`tiktoken ranks: token ${quoteShort(text, 40)} is not base64`);
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * A TensorLM BPE tokenizer with exactly the ids of a tiktoken encoding: token ids are the ranks,
 * special tokens keep their ids, and the pattern must be one TensorLM has a built-in for.
 */
export function tokenizerFromTiktoken(ranks: TiktokenRanks): BPETokenizer {
  if (ranks === null || typeof ranks !== 'object') throw new Error(`tokenizerFromTiktoken: "ranks" must be an object { pat_str, special_tokens, bpe_ranks }, got ${quoteShort(ranks)}`);
  if (typeof ranks.pat_str !== 'string') throw new Error('tokenizerFromTiktoken: "pat_str" must be a string (the pre-tokenisation pattern)');
  const pretokenizer = pretokenizerForTiktokenPattern(ranks.pat_str);
  if (pretokenizer === null) {
    throw new Error(`tokenizerFromTiktoken: pattern ${quoteShort(ranks.pat_str, 80)} has no equivalent built-in pre-tokenizer (expected GPT-2's or cl100k's pattern)`);
  }
  const tokens = tokensByRank(ranks.bpe_ranks);
  const merges = mergesFromRanks(tokens);
  return new BPETokenizer({ tokens, merges, specialTokens: ranks.special_tokens, pretokenizer });
}

/**
 * The merge list that reproduces tiktoken's ranks. Tokens are visited in rank order, so when the
 * token of rank r is reached the merge table holds exactly the merges of ranks below r; BPE on
 * the token's bytes with that table must stop at two parts, which become its merge. (TensorLM's
 * rule "merge the lowest-ranked pair" and tiktoken's "join the pair whose bytes have the lowest
 * rank" coincide here, since every merge so far produced its token from the parts tiktoken's
 * rule would join.) A token that does not come out as two parts could never be produced by
 * tiktoken's BPE either, except as a whole piece; such vocabularies are refused.
 */
export function mergesFromRanks(tokens: readonly (Uint8Array | undefined)[]): [number, number][] {
  const byteId = new Int32Array(256).fill(-1);
  tokens.forEach((bytes, id) => {
    if (bytes !== undefined && bytes.length === 1) byteId[bytes[0]] = id;
  });
  const missing = byteId.indexOf(-1);
  if (missing >= 0) throw new Error(`tiktoken ranks: no token for the single byte 0x${missing.toString(16).padStart(2, '0')}`);
  const ranks = new Map<number, number>();
  const results: number[] = [];
  const table = { ranks, results };
  const merges: [number, number][] = [];
  for (let id = 0; id < tokens.length; id++) {
    const bytes = tokens[id];
    if (bytes === undefined || bytes.length < 2) continue;
    const start = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) start[i] = byteId[bytes[i]];
    const parts = applyMergesScan(start, table);
    if (parts.length !== 2) {
      throw new Error(`tiktoken ranks: token ${id} cannot be built by merging two tokens of lower rank (BPE on its bytes leaves ${parts.length} parts)`);
    }
    ranks.set(pairKey(parts[0], parts[1]), results.length);
    results.push(id);
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}

/** Built tokenizers by encoding name: building GPT-2's 50,000 merges is done once per process. */
const cache = new Map<TiktokenEncodingName, BPETokenizer>();
/** Which tokenizers were built by name, so worker threads can rebuild them by name instead of from JSON. */
const names = new WeakMap<BPETokenizer, TiktokenEncodingName>();

export function isTiktokenEncodingName(name: string): name is TiktokenEncodingName {
  return (TIKTOKEN_ENCODINGS as readonly string[]).includes(name);
}

/**
 * The tokenizer of a tiktoken encoding by name (`gpt2`, `r50k_base` — the same ranks —,
 * `p50k_base`, `p50k_edit`, `cl100k_base`), built on first use and cached. Node only: the ranks
 * are read from the `js-tiktoken` package.
 */
export function tiktokenTokenizer(name: TiktokenEncodingName): BPETokenizer {
  if (typeof name !== 'string' || !isTiktokenEncodingName(name)) {
    throw new Error(`tiktokenTokenizer: unknown encoding ${quoteShort(name)}, expected one of ${TIKTOKEN_ENCODINGS.map((n) => `"${n}"`).join(', ')}`);
  }
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  // r50k_base is GPT-2's encoding under another name: same ranks, pattern and special token.
  const tok = name === 'r50k_base' && cache.has('gpt2') ? (cache.get('gpt2') as BPETokenizer) : tokenizerFromTiktoken(requireRanks(name));
  cache.set(name, tok);
  if (!names.has(tok)) names.set(tok, name);
  return tok;
}

/** The encoding name a tokenizer was built from by `tiktokenTokenizer`, or undefined. */
export function tiktokenNameOf(tokenizer: object): TiktokenEncodingName | undefined {
  return tokenizer instanceof BPETokenizer ? names.get(tokenizer) : undefined;
}

function requireRanks(name: TiktokenEncodingName): TiktokenRanks {
  // Through process.getBuiltinModule rather than a static `import 'node:module'`: this module is
  // part of the browser bundle (load.ts), where only a call by name can fail, not the import.
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const moduleApi = proc?.getBuiltinModule?.('node:module') as typeof import('node:module') | undefined;
  if (moduleApi === undefined) throw new Error(`tiktokenTokenizer: the "${name}" ranks are read from the js-tiktoken package, which needs Node.js (20.16 or later)`);
  let ranks: unknown;
  try {
    ranks = moduleApi.createRequire(import.meta.url)(`js-tiktoken/ranks/${name}`);
  } catch (error) {
    throw new Error(`tiktokenTokenizer: cannot load the "${name}" ranks from the js-tiktoken package (${quoteShort(error instanceof Error ? error.message : String(error), 120)}); install js-tiktoken`);
  }
  return ranks as TiktokenRanks;
}
