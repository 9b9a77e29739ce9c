/**
 * tiktoken's vocabularies as TensorLM BPE tokenizers: ids must be exactly those of tiktoken (the
 * WASM build of OpenAI's Rust code, the reference) and of js-tiktoken, on all of tiny-shakespeare
 * and on a torture text (scripts, emoji sequences, every kind of Unicode whitespace, contractions
 * in odd cases, digit runs, seeded random junk).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getEncoding } from 'js-tiktoken';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, tokenizerFromJSON } from '../../src/tokenizers/load.js';
import { mergesFromRanks, tiktokenTokenizer, tokenizerFromTiktoken } from '../../src/tokenizers/tiktoken.js';

// tiktoken's package resolves to its CommonJS build under Node (the ESM one imports a .wasm module).
const { get_encoding } = createRequire(import.meta.url)('tiktoken') as typeof import('tiktoken');

const DATA_DIR = process.env.TENSORLM_DATA_DIR;
const SHAKESPEARE = DATA_DIR === undefined ? null : `${DATA_DIR}/tinyshakespeare.txt`;
const HAVE_SHAKESPEARE = SHAKESPEARE !== null && existsSync(SHAKESPEARE);
const SKIP_REASON = SHAKESPEARE === null ? 'TENSORLM_DATA_DIR is unset' : `${SHAKESPEARE} is missing`;
const shakespeare = HAVE_SHAKESPEARE ? readFileSync(SHAKESPEARE as string, 'utf8') : '';

/** Deterministic junk: code points from every plane and range that tends to break tokenizers. */
function junk(seed: number, length: number): string {
  let state = seed >>> 0 || 1;
  const rand = (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const ranges: [number, number][] = [[0x20, 0x7e], [0x00, 0x1f], [0x80, 0x24f], [0x300, 0x36f], [0x2000, 0x206f], [0x3000, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xacff], [0x1f300, 0x1faff], [0xe000, 0xe0ff], [0x10000, 0x1007f]];
  let out = '';
  while (out.length < length) {
    const [lo, hi] = ranges[rand(ranges.length)];
    out += String.fromCodePoint(lo + rand(hi - lo + 1));
    if (rand(8) === 0) out += [' ', "'s", "'LL", '  ', '\n', '\r\n', '\u00a0', '<|endoftext|>', '123456'][rand(9)];
  }
  return out;
}

const TORTURE =
  "Hello, World! DON'T 'S we'LL they'Re I'M it'ſ 'ſ you'VE she'D  'll  \n" +
  '日本語のテキスト、中文，한국어 Привет, мир! مرحبا بالعالم नमस्ते दुनिया สวัสดีชาวโลก\n' +
  '\u{1F44D}\u{1F3FD} \u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466} \u{1F3F3}\uFE0F\u200D\u{1F308} \u{1F600}\u{1F600}\u{1F600}\n' +
  'e\u0301 a\u0308\u0301 Z\u0351\u0352\u0353 naïve café\n' +
  'x\u00a0y\u2009z\u3000w\u0085v\ufeffu\u200bt\u2028s\u2029r\u1680q\t\t p\r\n\r\n\r\nend   \n    words  after   spaces\t \t\n' +
  '0 12 123 1234 12345678901234567890 3.14159 1,000,000 ١٢٣٤ ४५६\n' +
  '<|endoftext|>a<|endoftext|><|endoftext|> <|endoftext|>\n' +
  junk(7, 3000) +
  '   trailing   ';

function ids(a: ArrayLike<number>): number[] {
  return Array.from(a);
}

describe('tiktoken ranks as BPE', () => {
  it('gpt2: loads by name, once, with <|endoftext|> = 50256 and ids = ranks', () => {
    const tok = tiktokenTokenizer('gpt2');
    expect(loadTokenizer('gpt2')).toBe(tok);
    expect(loadTokenizer('r50k_base')).toBe(tok);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.specialTokens).toEqual({ '<|endoftext|>': 50256 });
    expect(tok.pretokenizer).toBe('gpt2');
    expect(tok.numMerges).toBe(50000);
    expect(tok.encode(' the')).toEqual([262]);
    expect(tok.encode('!')).toEqual([0]);
  });

  it.skipIf(!HAVE_SHAKESPEARE)(`tiny-shakespeare: the same ids as tiktoken (WASM) and js-tiktoken (${HAVE_SHAKESPEARE ? 'present' : SKIP_REASON})`, () => {
    const tok = tiktokenTokenizer('gpt2');
    const ours = ids(tok.encodeToInt32Array(shakespeare));
    const wasm = get_encoding('gpt2');
    try {
      expect(ours).toEqual(ids(wasm.encode(shakespeare)));
    } finally {
      wasm.free();
    }
    expect(ours).toEqual(getEncoding('gpt2').encode(shakespeare));
    expect(ours.length).toBe(338025);
    expect(tok.decode(ours)).toBe(shakespeare);
  });

  it('torture text: the same ids as tiktoken, special tokens as allowed_special="all" and off', () => {
    const tok = tiktokenTokenizer('gpt2');
    const wasm = get_encoding('gpt2');
    try {
      expect(ids(tok.encodeToInt32Array(TORTURE))).toEqual(ids(wasm.encode(TORTURE, 'all')));
      expect(tok.encode(TORTURE, { allowSpecial: false })).toEqual(ids(wasm.encode_ordinary(TORTURE)));
      for (let seed = 1; seed <= 5; seed++) {
        const text = junk(seed * 101, 2000);
        expect(ids(tok.encodeToInt32Array(text))).toEqual(ids(wasm.encode(text, 'all')));
      }
    } finally {
      wasm.free();
    }
    expect(tok.decode(tok.encode(TORTURE))).toBe(TORTURE);
    expect(tok.decode(tok.encode(TORTURE, { allowSpecial: false }))).toBe(TORTURE);
  });

  it('torture text: the same ids as js-tiktoken where its JavaScript \\s agrees with Unicode White_Space', () => {
    // js-tiktoken runs the pattern on JavaScript's RegExp, whose \s matches U+FEFF and misses
    // U+0085, unlike tiktoken (and GPT-2's Python); text without those two agrees exactly.
    const text = TORTURE.replace(/[\u0085\ufeff]/g, ' ');
    expect(tiktokenTokenizer('gpt2').encode(text)).toEqual(getEncoding('gpt2').encode(text, 'all'));
  });

  it('p50k_base and cl100k_base: the same ids as tiktoken', () => {
    for (const name of ['p50k_base', 'cl100k_base'] as const) {
      const tok = loadTokenizer(name);
      const wasm = get_encoding(name);
      try {
        expect(ids(tok.encodeToInt32Array(TORTURE))).toEqual(ids(wasm.encode(TORTURE, 'all')));
        if (name === 'cl100k_base' && HAVE_SHAKESPEARE) expect(ids(tok.encodeToInt32Array(shakespeare))).toEqual(ids(wasm.encode(shakespeare)));
      } finally {
        wasm.free();
      }
      expect(tok.decode(tok.encode(TORTURE))).toBe(TORTURE);
    }
    expect(tiktokenTokenizer('cl100k_base').pretokenizer).toBe('cl100k');
    expect(loadTokenizer('cl100k_base').encode("I'M HE'LL ſ'ſ 12345")).toEqual(ids(getEncoding('cl100k_base').encode("I'M HE'LL ſ'ſ 12345")));
  });

  it('survives a JSON round trip (what worker threads rebuild from)', () => {
    const tok = tiktokenTokenizer('gpt2');
    const again = loadTokenizerFromJson(tok.toJSON());
    expect(again.encode(TORTURE)).toEqual(tok.encode(TORTURE));
  });

  it('refuses what it cannot reproduce, in one line', () => {
    expect(() => tokenizerFromTiktoken({ pat_str: '\\w+', special_tokens: {}, bpe_ranks: '' })).toThrow(/no equivalent built-in pre-tokenizer/);
    const bytes = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    // "abc" with neither "ab" nor "bc" below it cannot be a merge of two lower-ranked tokens.
    expect(() => mergesFromRanks([...bytes, Uint8Array.of(97, 98, 99)])).toThrow(/token 256 cannot be built by merging two tokens of lower rank \(BPE on its bytes leaves 3 parts\)/);
    expect(() => tiktokenTokenizer('gpt5' as 'gpt2')).toThrow(/unknown encoding "gpt5", expected one of "gpt2"/);
  });
});

function loadTokenizerFromJson(json: object): ReturnType<typeof tokenizerFromJSON> {
  return tokenizerFromJSON(JSON.parse(JSON.stringify(json)) as unknown);
}
