/**
 * Sampling from logits that cannot be sampled from (issue #20, item 8): NaN, +Infinity, or every
 * token masked out used to give the last (or first) id without a word.
 */
import { describe, expect, it } from 'vitest';
import { generateText } from '../../src/models/generate.js';
import { presetConfig } from '../../src/models/presets.js';
import { sampleNext, sampleRows, sampleToken } from '../../src/models/sampling.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';

describe('sampling from logits that hold no distribution', () => {
  const good = [0.5, 2, -1, 0];

  it('NaN in a row is an error naming the row and the index, sampled or greedy', () => {
    const logits = tensor([good, [0.1, NaN, 0.3, 0.2]]);
    for (const temperature of [1, 0.7, 0]) {
      expect(() => sampleNext(logits, { temperature, generator: new Generator(1) })).toThrow(/^sampling: row 1 of the logits holds NaN at index 1 \(of 4\); the model's output is not finite$/);
    }
    expect(() => sampleNext(tensor([NaN, NaN, NaN]), { temperature: 1 })).toThrow(/row 0 of the logits holds NaN at index 0 \(of 3\)/);
    expect(() => sampleNext(tensor([1, Infinity, 0]), { topK: 2 })).toThrow(/row 0 of the logits holds Infinity at index 1/);
  });

  it('a row that is all −Infinity (every token masked out) is an error naming the row', () => {
    const logits = tensor([good, good, [-Infinity, -Infinity, -Infinity, -Infinity]]);
    expect(() => sampleNext(logits, { temperature: 1 })).toThrow(/^sampling: row 2 of the logits is all -Infinity \(every token is masked out\); no token can be chosen$/);
    expect(() => sampleNext(logits, { temperature: 0 })).toThrow(/row 2 of the logits is all -Infinity/);
    expect(() => sampleToken(new Float32Array(0))).toThrow(/row at offset 0 of the logits is empty/);
  });

  it('rows that can be sampled are unchanged: −Infinity entries are never drawn, a tiny temperature is greedy', () => {
    const masked = [-Infinity, 1, -Infinity, 0.5];
    const g = new Generator(3);
    for (let i = 0; i < 50; i++) expect([1, 3]).toContain(sampleToken(masked, { temperature: 1, generator: g }));
    expect(sampleToken(masked, { temperature: 0 })).toBe(1);
    // 2 / 1e-310 overflows to Infinity: the limit of a vanishing temperature is the argmax.
    expect(sampleToken(good, { temperature: 1e-310, generator: g })).toBe(1);
    expect(sampleToken([-1, -3], { temperature: 1e-320, generator: g })).toBe(0);
    expect(Array.from(sampleNext(tensor([good, [3, 0, 0, 0]]), { temperature: 0 }))).toEqual([1, 0]);
    // The decode loop's flat-array form draws the same tokens from the same stream.
    const flat = Float32Array.from([...good, 0.2, 0.1, 0.4, 0.3]);
    const viaTensor = sampleNext(tensor(flat, { shape: [2, 4] }), { temperature: 1, generator: new Generator(9) });
    expect(Array.from(sampleRows(flat, 2, 4, { temperature: 1, generator: new Generator(9) }))).toEqual(Array.from(viaTensor));
    expect(() => sampleRows(Float32Array.from([0, NaN]), 1, 2, { temperature: 0 })).toThrow(/row 0 of the logits holds NaN/);
  });

  it('a model whose weights went NaN fails generation with the error instead of emitting the last token', () => {
    const tokenizer = CharTokenizer.fromText('abcdefgh \n');
    const model = new TransformerLM(presetConfig('tiny', { vocabSize: tokenizer.vocabSize, dModel: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 32, maxSeqLen: 16 }), { generator: new Generator(5) });
    for (const p of model.parameters()) p.storage.fill(NaN);
    expect(() => generateText(model, tokenizer, 'abc', { maxNewTokens: 5, temperature: 0.8, seed: 1 })).toThrow(/sampling: row 0 of the logits holds NaN at index 0/);
  });
});
