/**
 * Run by tests/tokenizers/hostile.test.ts in a child process (`node --import tsx` this file),
 * because what it checks is that hostile pre-tokenisation patterns finish: a case that loops
 * forever would hang the test runner itself, while a child can be killed by a timeout and the
 * cases it never reported named. Prints one JSON line per finished case:
 * {"name", "loadMs", "workMs", "ok", "error"?}.
 *
 * Each case is a tokenizer file as any TensorLM version writes it (a "pattern" field, no
 * "pretokenizer"), with the hostile pattern put in, loaded through the public loader, then
 * used to encode and decode texts (or to train).
 */
import { BPETokenizer, GPT2_PATTERN, pretokenize, tokenizerFromJSON } from '../../src/tokenizers/index.js';
import { MAX_PATTERN_WINDOW } from '../../src/tokenizers/pretokenize.js';
import { ADVERSARIAL_STRINGS } from './helpers.js';

const ROUND_TRIP_PROBE = "Hello, World! It's 2024: naïve café e\u0301 日本語 한국어 \u{1F600} \u{1F44D}\u{1F3FD}\n\tTabs\r\nend.";

interface Case {
  name: string;
  pattern: string;
  texts: readonly string[];
  /** Train a tokenizer with this pattern on the texts instead of loading a file. */
  train?: boolean;
  /**
   * Only pre-tokenise the texts: every piece non-empty and at most MAX_PATTERN_WINDOW long, the
   * pieces concatenating to the text, and (when given) exactly these pieces for the first texts.
   */
  split?: true;
  pieces?: readonly (readonly string[])[];
  /** Load this many files whose pattern is `pattern` randomly mutated: each must be refused or round-trip the texts. */
  mutants?: number;
}

/** GPT-2's pattern without its lookahead alternative: valid RE2. */
const RE2_GPT_LIKE = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+";

/** Deterministic edits of a pattern: delete, duplicate, replace or insert a character. */
function mutatePattern(pattern: string, seed: number): string {
  let state = seed * 2654435761 + 1;
  const rand = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  const specials = ['*', '+', '?', '|', '(', ')', '[', ']', '\\', '{', '}', '^', '$', '.', ' ', 'a'];
  let out = pattern;
  for (let edits = 1 + rand(3); edits > 0; edits--) {
    const at = rand(out.length + 1);
    const kind = rand(4);
    const ch = specials[rand(specials.length)];
    if (kind === 0) out = out.slice(0, at) + out.slice(at + 1);
    else if (kind === 1) out = out.slice(0, at) + out.slice(at, at + 1) + out.slice(at);
    else if (kind === 2) out = out.slice(0, at) + ch + out.slice(at + 1);
    else out = out.slice(0, at) + ch + out.slice(at);
  }
  return out;
}

const EMOJI_TEXTS = ['😀', 'a😀b', '😀😀 x😀', ...ADVERSARIAL_STRINGS];

const HOSTILE_CASES: readonly Case[] = [
  { name: 'empty pattern on emoji', pattern: '', texts: EMOJI_TEXTS },
  { name: 'x* on emoji', pattern: 'x*', texts: EMOJI_TEXTS },
  { name: '(?:) on emoji', pattern: '(?:)', texts: EMOJI_TEXTS },
  { name: 'x*|\\p{L}+ on emoji', pattern: 'x*|\\p{L}+', texts: EMOJI_TEXTS },
  { name: '(a+)+b on a×40', pattern: '(a+)+b', texts: ['a'.repeat(40)] },
  { name: '(a+)+b on a×100000', pattern: '(a+)+b', texts: ['a'.repeat(100_000)] },
  { name: '(\\p{L}|\\p{Ll})+$ on letters×30 + "!"', pattern: '(\\p{L}|\\p{Ll})+$', texts: ['abcdefghijklmnopqrstuvwxyzabcd!'] },
  { name: 'a.*b|a on a×20000', pattern: 'a.*b|a', texts: ['a'.repeat(20_000)] },
  { name: '[a-z]+ keeps the text it does not match', pattern: '[a-z]+', texts: ADVERSARIAL_STRINGS },
  { name: 'split: empty pattern', pattern: '', texts: EMOJI_TEXTS, split: true, pieces: [['😀'], ['a😀b']] },
  { name: 'split: x*', pattern: 'x*', texts: EMOJI_TEXTS, split: true, pieces: [['😀'], ['a😀b'], ['😀😀 ', 'x', '😀']] },
  { name: 'split: (?:)', pattern: '(?:)', texts: EMOJI_TEXTS, split: true },
  { name: 'split: \\b', pattern: '\\b', texts: EMOJI_TEXTS, split: true },
  { name: 'split: [a-z]+', pattern: '[a-z]+', texts: ['abc DEF ghi', ...EMOJI_TEXTS], split: true, pieces: [['abc', ' DEF ', 'ghi']] },
  { name: 'mutated patterns: 150 files', pattern: RE2_GPT_LIKE, texts: [...EMOJI_TEXTS.slice(0, 20), ROUND_TRIP_PROBE], mutants: 150 },
  { name: 'mutated GPT-2 patterns: 100 files', pattern: GPT2_PATTERN, texts: [...EMOJI_TEXTS.slice(0, 20), ROUND_TRIP_PROBE], mutants: 100 },
  { name: 'train: empty pattern on emoji', pattern: '', texts: ['😀 a😀b 日本 '.repeat(50)], train: true },
  { name: 'train: x* on emoji', pattern: 'x*', texts: ['😀 a😀b 日本 '.repeat(50)], train: true },
];

function fileWithPattern(pattern: string): Record<string, unknown> {
  const base = BPETokenizer.train('hello world, the cat sat on the mat', { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
  const json: Record<string, unknown> = { ...base.toJSON(), pattern };
  delete json.pretokenizer;
  return json;
}

// First the list of cases, so that the parent can name any that never finished.
console.log(JSON.stringify({ cases: HOSTILE_CASES.map((c) => c.name) }));
// An optional argument runs only the case of that name (for timing one case by hand).
const only = process.argv[2];
for (const c of HOSTILE_CASES) {
  if (only !== undefined && c.name !== only) continue;
  const t0 = performance.now();
  let loadMs = 0;
  try {
    if (c.split) {
      let ok = true;
      c.texts.forEach((text, i) => {
        const pieces = pretokenize(text, c.pattern);
        if (pieces.join('') !== text || !pieces.every((p) => p.length > 0 && p.length <= MAX_PATTERN_WINDOW)) ok = false;
        const expected = c.pieces?.[i];
        if (expected !== undefined && JSON.stringify(pieces) !== JSON.stringify(expected)) ok = false;
      });
      console.log(JSON.stringify({ name: c.name, loadMs: 0, workMs: performance.now() - t0, ok }));
      continue;
    }
    if (c.mutants !== undefined) {
      // Refusing a mutant is fine (most are not valid RE2, or contradict nothing but fail to
      // parse); loading one that then loses text is not.
      let ok = true;
      let refused = 0;
      for (let k = 0; k < c.mutants; k++) {
        let tok: ReturnType<typeof tokenizerFromJSON>;
        try {
          tok = tokenizerFromJSON(fileWithPattern(mutatePattern(c.pattern, k)));
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          if (message.includes('\n') || message.length > 320 || /Cannot read properties/.test(message)) ok = false;
          refused++;
          continue;
        }
        for (const text of c.texts) if (tok.decode(tok.encode(text)) !== text) ok = false;
      }
      console.log(JSON.stringify({ name: c.name, loadMs: 0, workMs: performance.now() - t0, ok, refused }));
      continue;
    }
    let tok: { encode(text: string): number[]; decode(ids: number[]): string };
    if (c.train) {
      tok = BPETokenizer.train(c.texts, { vocabSize: 300, pattern: c.pattern });
    } else {
      tok = tokenizerFromJSON(fileWithPattern(c.pattern));
    }
    loadMs = performance.now() - t0;
    const t1 = performance.now();
    let ok = true;
    for (const text of c.texts) if (tok.decode(tok.encode(text)) !== text) ok = false;
    console.log(JSON.stringify({ name: c.name, loadMs, workMs: performance.now() - t1, ok }));
  } catch (error) {
    console.log(JSON.stringify({ name: c.name, loadMs, workMs: performance.now() - t0, ok: false, error: error instanceof Error ? error.message : String(error) }));
  }
}
