/**
 * Streaming encoding: any chunking of a text gives exactly the ids of the whole text, for char,
 * trained BPE (built-in and RE2 user pattern) and GPT-2 tokenizers, with special tokens.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BPETokenizer } from '../../src/tokenizers/bpe.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { encodeChunks, encodeChunksAsync, StreamEncoder } from '../../src/tokenizers/stream.js';
import { tiktokenTokenizer } from '../../src/tokenizers/tiktoken.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';

const path = process.env.TENSORLM_DATA_DIR === undefined ? null : `${process.env.TENSORLM_DATA_DIR}/tinyshakespeare.txt`;
const HAVE = path !== null && existsSync(path);
// Without the corpus, a built-in stand-in keeps the chunking tests meaningful.
const CORPUS = HAVE ? readFileSync(path as string, 'utf8').slice(0, 40_000) : 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n'.repeat(200);

function rng(seed: number): (n: number) => number {
  let state = seed >>> 0 || 1;
  return (n) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
}

const SPECIALS = ['<|endoftext|>', '<|end|>', '<|endoftext|>x'];
const TORTURE =
  "DON'T 'S we'LL I'M it'ſ  'll \n日本語 中文 한국어 Привет مرحبا नमस्ते สวัสดี \u{1F44D}\u{1F3FD} \u{1F468}\u200D\u{1F469}\u200D\u{1F467} e\u0301 " +
  'x\u00a0y\u2009z\u3000w\u0085v\ufeffu\t\t p\r\n\r\n\r\nend   \n    words  after   spaces\t \t\n0 12 123 1234 12345678901 ' +
  '<|endoftext|>a<|end|><|endoftext|>x<|endoftext|> <|end <|endoftext <|endoftext|>\n\n\n   trailing   ';

/** Random cuts (1..50 code units, so some fall inside surrogate pairs, "\r\n", whitespace runs and special tokens). */
function randomChunks(text: string, seed: number): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + r(50);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

/** Every single cut position, one at a time: text[0:i] + text[i:]. */
function expectSameAsWhole(tok: Tokenizer, text: string, chunks: Iterable<string>, blockSize = 1): void {
  const whole = Array.from(tok.encodeToInt32Array(text));
  const streamed = [...encodeChunks(tok, chunks, { blockSize })].flatMap((a) => Array.from(a));
  expect(streamed).toEqual(whole);
}

const trained = BPETokenizer.train(CORPUS.slice(0, 20_000) + TORTURE, { vocabSize: 400, specialTokens: SPECIALS });
const userPattern = BPETokenizer.train(CORPUS.slice(0, 20_000), { vocabSize: 300, pattern: String.raw`\p{L}+|\p{N}|[^\p{L}\p{N}]+`, specialTokens: SPECIALS });
const char = CharTokenizer.fromText(CORPUS + TORTURE, { specialTokens: SPECIALS });
const gpt2 = tiktokenTokenizer('gpt2').withSpecialTokens(['<|end|>']);

const tokenizers: [string, Tokenizer][] = [
  ['char', char],
  ['trained BPE', trained],
  ['BPE with an RE2 user pattern', userPattern],
  ['GPT-2', gpt2],
];

describe('encodeChunks', () => {
  for (const [name, tok] of tokenizers) {
    it(`${name}: random chunkings give the ids of the whole text`, () => {
      const text = CORPUS.slice(0, 12_000) + TORTURE + CORPUS.slice(12_000, 14_000);
      for (let seed = 1; seed <= 3; seed++) expectSameAsWhole(tok, text, randomChunks(text, seed));
      // Larger blocks, and one chunk.
      expectSameAsWhole(tok, text, randomChunks(text, 9), 4096);
      expectSameAsWhole(tok, text, [text]);
    });

    it(`${name}: every two-way cut of the torture text`, () => {
      for (let i = 0; i <= TORTURE.length; i++) expectSameAsWhole(tok, TORTURE, [TORTURE.slice(0, i), TORTURE.slice(i)]);
    });

    it(`${name}: one code unit at a time, special tokens off`, () => {
      const whole = Array.from(tok.encodeToInt32Array(TORTURE, { allowSpecial: false }));
      const streamed = [...encodeChunks(tok, [...TORTURE.split('')], { blockSize: 1, allowSpecial: false })].flatMap((a) => Array.from(a));
      expect(streamed).toEqual(whole);
    });
  }

  it('the async variant, and empty input', async () => {
    async function* source(): AsyncGenerator<string> {
      for (const c of randomChunks(TORTURE, 5)) yield c;
    }
    const got: number[] = [];
    for await (const block of encodeChunksAsync(gpt2, source(), { blockSize: 7 })) got.push(...block);
    expect(got).toEqual(gpt2.encode(TORTURE));
    expect([...encodeChunks(gpt2, [])]).toEqual([]);
    expect([...encodeChunks(gpt2, ['', ''])]).toEqual([]);
  });

  it('holds only the unsettled tail, and a 2 MB run of spaces stays linear (it is one piece, held whole)', () => {
    const enc = new StreamEncoder(gpt2, { blockSize: 1 });
    const first = enc.push('Hello world, this is a test');
    expect(gpt2.decode(first)).toBe('Hello world, this is a'); // " test" may grow
    expect(gpt2.decode(enc.end())).toBe(' test');

    const spaces = ' '.repeat(2_000_000);
    const chunks = Array.from({ length: 2000 }, (_, i) => spaces.slice(i * 1000, (i + 1) * 1000));
    const start = performance.now();
    const streamed = [...encodeChunks(gpt2, ['a', ...chunks, 'b'], { blockSize: 1 })].flatMap((a) => Array.from(a));
    expect(performance.now() - start).toBeLessThan(10_000);
    expect(streamed).toEqual(gpt2.encode(`a${spaces}b`));
  });

  it('errors are one line', () => {
    expect(() => new StreamEncoder(gpt2, { blockSize: 0 })).toThrow(/"blockSize" must be a positive integer, got 0/);
    const enc = new StreamEncoder(char);
    enc.end();
    expect(() => enc.push('a')).toThrow(/the stream has ended/);
  });
});
