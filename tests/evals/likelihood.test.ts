/** Log-likelihood scoring against a direct computation, and bits per byte against evaluateStream. */
import { describe, expect, it } from 'vitest';
import { bitsPerByte, predictedBytes } from '../../src/evals/bits-per-byte.js';
import { scoreContinuations, scoreTokenContinuations } from '../../src/evals/likelihood.js';
import { createLanguageModel, type LanguageModel } from '../../src/models/language-model.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { evaluateStream } from '../../src/train/evaluate.js';
import { expectOneLineError } from '../helpers/errors.js';

const TEXT = 'to be or not to be, that is the question\n';
const tokenizer = CharTokenizer.fromText(TEXT);

function models(): [string, LanguageModel][] {
  const v = tokenizer.vocabSize;
  return [
    ['transformer', createLanguageModel({ vocabSize: v, dModel: 16, nLayers: 1, nHeads: 2, maxSeqLen: 24 }, { generator: new Generator(3) })],
    ['lstm', createLanguageModel({ arch: 'lstm', vocabSize: v, hiddenSize: 12, embedDim: 8, nLayers: 1 }, { generator: new Generator(4) })],
  ];
}

/** Σ log softmax(logits)[next token] over the continuation, position by position, in float64. */
function direct(model: LanguageModel, ids: number[], scored: number): number {
  const { logits } = model.forward(tensor(Int32Array.from(ids.slice(0, -1)), { shape: [1, ids.length - 1] }));
  const v = logits.shape[2];
  const data = logits.contiguous().toTypedArray() as Float32Array;
  let sum = 0;
  for (let t = ids.length - 1 - scored; t < ids.length - 1; t++) {
    const row = Array.from(data.subarray(t * v, (t + 1) * v));
    const max = Math.max(...row);
    const logZ = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    sum += row[ids[t + 1]] - logZ;
  }
  return sum;
}

describe('scoreContinuations', () => {
  for (const [kind, model] of models()) {
    it(`equals log-softmax summed by hand (${kind}), batched with padding, training flag restored`, () => {
      model.train(true);
      const pairs = [
        { context: 'to be or ', continuation: 'not' },
        { context: 't', continuation: 'o be, that' },
        { context: 'that is the ', continuation: 'question\n' },
      ];
      const scores = scoreContinuations(model, tokenizer, pairs, { batchSize: 2 });
      expect(model.training).toBe(true);
      model.eval();
      pairs.forEach((p, i) => {
        const ids = tokenizer.encode(p.context + p.continuation);
        expect(scores[i].tokens).toBe(p.continuation.length);
        expect(scores[i].logLikelihood).toBeLessThan(0);
        expect(scores[i].logLikelihood).toBeCloseTo(direct(model, ids, p.continuation.length), 4);
      });
    });
  }

  it("cuts a transformer's context from the left to its maxSeqLen; a recurrent model reads all", () => {
    const [[, transformer], [, lstm]] = models();
    const context = 'to be or not to be, that is the question\nto be ';
    const continuation = 'the';
    const [t] = scoreContinuations(transformer, tokenizer, [{ context, continuation }]);
    // 24 inputs: the last 24 of context + continuation without its last token.
    expect(t.contextTokens).toBe(24 - continuation.length + 1);
    const kept = tokenizer.encode(context + continuation).slice(-25);
    expect(t.logLikelihood).toBeCloseTo(direct(transformer, kept, 3), 4);
    const [r] = scoreContinuations(lstm, tokenizer, [{ context, continuation }]);
    expect(r.contextTokens).toBe(context.length);
    expect(r.logLikelihood).toBeCloseTo(direct(lstm, tokenizer.encode(context + continuation), 3), 4);
  });

  it('rejects empty contexts and continuations longer than the context window', () => {
    const [[, transformer]] = models();
    expectOneLineError(() => scoreTokenContinuations(transformer, [{ context: [], continuation: [1] }]), /request 0: the context encodes to no tokens/);
    expectOneLineError(() => scoreTokenContinuations(transformer, [{ context: [1], continuation: new Array(25).fill(1) }]), /25 tokens, more than the model's context of 24/);
    expectOneLineError(() => scoreTokenContinuations(transformer, [{ context: [1], continuation: [999] }]), /token id 999 is outside/);
  });
});

describe('bitsPerByte', () => {
  it('equals loss / ln 2 × tokens / bytes; for ASCII with a char tokenizer, bits per char', () => {
    const [[, model]] = models();
    const stream = Int32Array.from(tokenizer.encode(TEXT.repeat(3)));
    const b = bitsPerByte(model, tokenizer, stream, 12, 4);
    const f = evaluateStream(model, stream, 12, 4);
    expect(b.bytes).toBe(stream.length - 1);
    expect(b.tokens).toBe(stream.length - 1);
    expect(b.bitsPerByte).toBeCloseTo(((f.loss / Math.LN2) * f.tokens) / b.bytes, 10);
    expect(b.bitsPerByte).toBeCloseTo(f.bitsPerToken, 10);
  });

  it('counts the UTF-8 bytes of the predicted tokens only (stream[1..])', () => {
    const t = CharTokenizer.fromText('aé日');
    expect(predictedBytes(t, Int32Array.from(t.encode('é日a')))).toBe(4);
    expect(predictedBytes(t, Int32Array.from(t.encode('aé日')))).toBe(5);
    expectOneLineError(() => predictedBytes(t, Int32Array.from([0])), /at least 2 are needed/);
  });
});
