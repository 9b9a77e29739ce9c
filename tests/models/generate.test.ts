/** The one text-generation path (models/generate.ts): incremental UTF-8-safe decoding, stop strings, seeds. */
import { describe, expect, it } from 'vitest';
import { generateText, generateTexts, IncrementalDecoder, promptIds, streamText, streamTexts, type BatchTextChunk, type TextChunk } from '../../src/models/generate.js';
import { RecurrentLM } from '../../src/models/recurrent.js';
import { presetConfig } from '../../src/models/presets.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';

/** Token ids are bytes; decoding is UTF-8 with U+FFFD for incomplete sequences (as byte-level BPE does). */
const byteTokenizer = {
  decode: (ids: ArrayLike<number>) => new TextDecoder().decode(Uint8Array.from(ids)),
  encode: (text: string) => [...new TextEncoder().encode(text)],
} as unknown as Tokenizer;

/** A stand-in model that "generates" a fixed list of tokens (and records whether it was stopped). */
function scriptedModel(ids: number[]): TransformerLM & { returned: boolean; produced: number } {
  const model = {
    returned: false,
    produced: 0,
    *generateStream(_ids: unknown, options: { maxNewTokens: number }) {
      try {
        for (const id of ids.slice(0, options.maxNewTokens)) {
          model.produced++;
          yield Int32Array.of(id);
        }
      } finally {
        model.returned = true;
      }
    },
  };
  return model as unknown as TransformerLM & { returned: boolean; produced: number };
}

const bytes = (s: string) => [...new TextEncoder().encode(s)];

/** A stand-in batched model: row r "generates" scripts[r] (padded with spaces), and it records the rows it was given. */
function scriptedBatch(scripts: number[][]): TransformerLM & { returned: boolean; produced: number; rows: number } {
  const model = {
    returned: false,
    produced: 0,
    rows: 0,
    *generateStream(ids: { shape: number[] }, options: { maxNewTokens: number }) {
      model.rows = ids.shape[0];
      try {
        for (let i = 0; i < options.maxNewTokens; i++) {
          model.produced++;
          yield Int32Array.from(scripts, (s) => s[i] ?? 0x20);
        }
      } finally {
        model.returned = true;
      }
    },
  };
  return model as unknown as TransformerLM & { returned: boolean; produced: number; rows: number };
}

/** Every chunk a text stream yields, and the value it returns at the end. */
function drain<C, R>(it: Iterator<C, R>): { chunks: C[]; result: R } {
  const chunks: C[] = [];
  for (;;) {
    const r = it.next();
    if (r.done) return { chunks, result: r.value };
    chunks.push(r.value);
  }
}

function collectBatch(model: TransformerLM | RecurrentLM, tokenizer: Tokenizer, prompt: string, options: Parameters<typeof streamTexts>[3]): { chunks: BatchTextChunk[]; results: ReturnType<typeof generateTexts> } {
  const { chunks, result } = drain(streamTexts(model, tokenizer, prompt, options));
  return { chunks, results: result };
}

function collect(model: TransformerLM, tokenizer: Tokenizer, prompt: string | number[], options: Parameters<typeof streamText>[3]): { chunks: TextChunk[]; result: ReturnType<typeof generateText> } {
  return drain(streamText(model, tokenizer, prompt, options));
}

describe('IncrementalDecoder', () => {
  it('holds back a split multi-byte character until the token that completes it', () => {
    const d = new IncrementalDecoder(byteTokenizer);
    const out = [0x41, ...bytes('€'), 0x42, ...bytes('😀')].map((id) => d.push(id));
    expect(out).toEqual(['A', '', '', '€', 'B', '', '', '', '😀']);
    expect(d.flush()).toBe('');
  });

  it('gives up after 8 tokens of invalid bytes, and decodes what is left when final', () => {
    const d = new IncrementalDecoder(byteTokenizer);
    const out = Array.from({ length: 9 }, () => d.push(0xff));
    expect(out.slice(0, 7)).toEqual(Array(7).fill(''));
    expect(out[7]).toBe('\uFFFD'.repeat(8));
    expect(d.push(0xe2)).toBe('');
    expect(d.push(0x82, true)).toBe('\uFFFD\uFFFD');
  });
});

describe('streamText', () => {
  it('streams one chunk per token whose texts join to the result', () => {
    const ids = [...bytes('Hé, '), ...bytes('€5')];
    const { chunks, result } = collect(scriptedModel(ids), byteTokenizer, 'x', { maxNewTokens: ids.length });
    expect(chunks.map((c) => c.index)).toEqual(ids.map((_, i) => i));
    expect(chunks.map((c) => c.token)).toEqual(ids);
    expect(chunks.map((c) => c.text).join('')).toBe('Hé, €5');
    expect(result).toEqual({ text: 'Hé, €5', tokens: ids, stopReason: 'length', stop: null });
  });

  it('stops at a stop string, which is not part of the text, and ends the token stream', () => {
    const model = scriptedModel(bytes('Alice: hi\nBob: yo\n'));
    const { chunks, result } = collect(model, byteTokenizer, 'x', { maxNewTokens: 100, stop: ['\nBob:'] });
    expect(result.text).toBe('Alice: hi');
    expect(result.stopReason).toBe('stop');
    expect(result.stop).toBe('\nBob:');
    expect(result.tokens).toEqual(bytes('Alice: hi\nBob:'));
    expect(chunks.map((c) => c.text).join('')).toBe('Alice: hi');
    // The text that might have started the stop string ('\n', '\nB', …) was held back, never shown.
    expect(chunks.some((c) => c.text.includes('\n'))).toBe(false);
    expect(model.produced).toBe(bytes('Alice: hi\nBob:').length);
    expect(model.returned).toBe(true);
  });

  it('releases held-back text when it turns out not to be a stop string, and the earliest stop wins', () => {
    const { chunks, result } = collect(scriptedModel(bytes('a\nb\n\nc')), byteTokenizer, 'x', { maxNewTokens: 100, stop: ['\n\n', 'c'] });
    expect(result).toMatchObject({ text: 'a\nb', stopReason: 'stop', stop: '\n\n' });
    expect(chunks.map((c) => c.text)).toEqual(['a', '', '\nb', '']);
    const tail = collect(scriptedModel(bytes('ab\n')), byteTokenizer, 'x', { maxNewTokens: 3, stop: ['\n\n'] });
    // At the last token nothing can complete the stop string any more: the '\n' is shown.
    expect(tail.result).toEqual({ text: 'ab\n', tokens: bytes('ab\n'), stopReason: 'length', stop: null });
    expect(tail.chunks.map((c) => c.text).join('')).toBe('ab\n');
  });

  it('finds a stop string that a multi-byte character completes', () => {
    const { result } = collect(scriptedModel(bytes('price: 5€ each')), byteTokenizer, 'x', { maxNewTokens: 100, stop: ['5€'] });
    expect(result).toMatchObject({ text: 'price: ', stop: '5€' });
  });

  it('stops at a stop token, which is not decoded into the text (an end-of-turn token)', () => {
    const model = scriptedModel([0x48, 0x69, 0xe2, 0x82, 7, 0x21]);
    const { chunks, result } = collect(model, byteTokenizer, 'x', { maxNewTokens: 10, stopTokens: [7] });
    // The incomplete character before the stop token is flushed as it is.
    expect(result).toEqual({ text: 'Hi\uFFFD', tokens: [0x48, 0x69, 0xe2, 0x82, 7], stopReason: 'stop', stop: null, stopToken: 7 });
    expect(chunks.map((c) => c.text).join('')).toBe('Hi\uFFFD');
    expect(model.returned).toBe(true);
  });

  it('rejects bad stop strings, seeds and empty prompts with one-line errors', () => {
    const model = scriptedModel([1]);
    expect(() => generateText(model, byteTokenizer, 'x', { maxNewTokens: 1, stop: [''] })).toThrow(/stop must be an array of non-empty strings/);
    expect(() => generateText(model, byteTokenizer, 'x', { maxNewTokens: 1, stop: 'x' as unknown as string[] })).toThrow(/stop must be an array/);
    expect(() => generateText(model, byteTokenizer, 'x', { maxNewTokens: 1, seed: NaN })).toThrow(/seed must be a finite number/);
    expect(() => generateText(model, byteTokenizer, [], { maxNewTokens: 1 })).toThrow(/the prompt has no tokens/);
  });

  it('an empty prompt starts from a newline, or token 0 when the vocabulary has none', () => {
    const chars = CharTokenizer.fromText('ab\ncd');
    expect(promptIds(chars, '')).toEqual(chars.encode('\n'));
    expect(promptIds(chars, 'ba')).toEqual(chars.encode('ba'));
    expect(promptIds(CharTokenizer.fromText('abc'), '')).toEqual([0]);
  });
});

describe('generateText on a real model', () => {
  const tokenizer = CharTokenizer.fromText('abcdefgh \n');
  const model = new TransformerLM(presetConfig('tiny', { vocabSize: tokenizer.vocabSize, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 64, maxSeqLen: 32 }), { generator: new Generator(5) });

  it('greedy text is model.generate decoded; a seed makes sampling reproducible', () => {
    const ids = tokenizer.encode('abc');
    const greedy = generateText(model, tokenizer, 'abc', { maxNewTokens: 40, temperature: 0 });
    const reference = Array.from(model.generate(tensor(Int32Array.from(ids), { shape: [1, ids.length] }), { maxNewTokens: 40, temperature: 0 }).toTypedArray());
    expect(greedy.tokens).toEqual(reference.slice(ids.length));
    expect(greedy.text).toBe(tokenizer.decode(greedy.tokens));
    const a = generateText(model, tokenizer, 'abc', { maxNewTokens: 30, temperature: 1, topK: 5, topP: 0.9, seed: 7 });
    const b = generateText(model, tokenizer, 'abc', { maxNewTokens: 30, temperature: 1, topK: 5, topP: 0.9, seed: 7 });
    expect(b).toEqual(a);
    const c = generateText(model, tokenizer, 'abc', { maxNewTokens: 30, temperature: 1, generator: new Generator(7) });
    expect(c.tokens).toEqual(generateText(model, tokenizer, 'abc', { maxNewTokens: 30, temperature: 1, seed: 7 }).tokens);
  });

  it('breaking out of the stream early restores the training mode', () => {
    model.train();
    for (const chunk of streamText(model, tokenizer, 'ab', { maxNewTokens: 20, temperature: 0 })) {
      expect(model.training).toBe(false);
      if (chunk.index === 3) break;
    }
    expect(model.training).toBe(true);
  });
});

describe('streamTexts (several samples in one batched run)', () => {
  it('stops each row on its own stop string or token, UTF-8 safe per row, and ends when every row has stopped', () => {
    const model = scriptedBatch([bytes('ab\ncd'), [...bytes('x€'), 7, 0x79], bytes('héllo\nthere')]);
    const { chunks, results } = collectBatch(model, byteTokenizer, 'p', { maxNewTokens: 20, numSamples: 3, stop: ['\n'], stopTokens: [7] });
    expect(model.rows).toBe(3);
    expect(results).toEqual([
      { text: 'ab', tokens: bytes('ab\n'), stopReason: 'stop', stop: '\n' },
      { text: 'x€', tokens: [...bytes('x€'), 7], stopReason: 'stop', stop: null, stopToken: 7 },
      { text: 'héllo', tokens: bytes('héllo\n'), stopReason: 'stop', stop: '\n' },
    ]);
    for (let r = 0; r < 3; r++) {
      const mine = chunks.filter((c) => c.row === r);
      expect(mine.map((c) => c.text).join('')).toBe(results[r].text);
      // A split character is held back, never shown as U+FFFD; indices count the row's tokens.
      expect(mine.some((c) => c.text.includes('\uFFFD'))).toBe(false);
      expect(mine.map((c) => c.index)).toEqual(mine.map((_, i) => i));
    }
    // Row 2 stops last, at its 7th token: no step after that.
    expect(model.produced).toBe(bytes('héllo\n').length);
    expect(model.returned).toBe(true);
    // Chunks of a step come in row order.
    expect(chunks.slice(0, 3).map((c) => c.row)).toEqual([0, 1, 2]);
  });

  it('runs to maxNewTokens while a row is still going; the others report their stop', () => {
    const { results } = collectBatch(scriptedBatch([bytes('a.b'), bytes('abcd')]), byteTokenizer, 'p', { maxNewTokens: 4, numSamples: 2, stop: ['.'] });
    expect(results.map((r) => [r.text, r.stopReason])).toEqual([['a', 'stop'], ['abcd', 'length']]);
  });

  it('rejects a bad numSamples with a one-line error', () => {
    for (const numSamples of [0, -1, 1.5, NaN]) {
      expect(() => generateTexts(scriptedBatch([[1]]), byteTokenizer, 'x', { maxNewTokens: 1, numSamples })).toThrow(/^generate: numSamples must be a positive integer, got/);
    }
  });
});

describe('generateTexts on real models', () => {
  const tokenizer = CharTokenizer.fromText('abcdefgh \n');
  const model = new TransformerLM(presetConfig('tiny', { vocabSize: tokenizer.vocabSize, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 64, maxSeqLen: 32 }), { generator: new Generator(5) });

  it('greedy: every row is the batch-1 greedy continuation (also past the context, and for a recurrent model)', () => {
    const one = generateText(model, tokenizer, 'abc', { maxNewTokens: 40, temperature: 0 });
    const rows = generateTexts(model, tokenizer, 'abc', { maxNewTokens: 40, temperature: 0, numSamples: 4 });
    expect(rows).toEqual([one, one, one, one]);
    const lstm = new RecurrentLM({ arch: 'lstm', vocabSize: tokenizer.vocabSize, embedDim: 6, hiddenSize: 8, nLayers: 1 }, { generator: new Generator(1) });
    const single = generateText(lstm, tokenizer, 'ab', { maxNewTokens: 12, temperature: 0 });
    expect(generateTexts(lstm, tokenizer, 'ab', { maxNewTokens: 12, temperature: 0, numSamples: 3 })).toEqual([single, single, single]);
  });

  it('sampled: reproducible for a seed, rows differ, and one sample is exactly generateText', () => {
    const options = { maxNewTokens: 30, temperature: 1, topK: 8, seed: 3 };
    const a = generateTexts(model, tokenizer, 'ab', { ...options, numSamples: 4 });
    expect(generateTexts(model, tokenizer, 'ab', { ...options, numSamples: 4 })).toEqual(a);
    expect(new Set(a.map((r) => r.text)).size).toBe(4);
    expect(generateTexts(model, tokenizer, 'ab', { ...options, numSamples: 1 })).toEqual([generateText(model, tokenizer, 'ab', options)]);
  });
});
