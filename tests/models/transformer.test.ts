/**
 * TransformerLM behaviour: causality, KV-cache decoding against the full forward at every step,
 * generation (greedy, sampling, streaming, context overflow), config validation, initialisation,
 * GQA/MQA shapes and the loss.
 */
import { describe, expect, it } from 'vitest';
import { Generator, models, noGrad, randint, tensor, TransformerLM, type Tensor } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import type { FeedForward } from '../../src/nn/feedforward.js';
import type { MultiHeadAttention } from '../../src/nn/attention.js';

const small = (overrides: Partial<TransformerConfigInput> = {}): TransformerConfigInput => ({
  vocabSize: 13,
  dModel: 16,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  dFF: 24,
  maxSeqLen: 12,
  ...overrides,
});

const maxDiff = (a: Tensor, b: Tensor) => {
  const x = a.toArray();
  const y = b.toArray();
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

const VARIANTS: [string, Partial<TransformerConfigInput>][] = [
  ['layer/gelu/learned', { norm: 'layer', mlp: 'gelu', pos: 'learned' }],
  ['rms/swiglu/rope (GQA)', { norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, tieWeights: false }],
  ['layer/swiglu/sinusoidal (MQA)', { norm: 'layer', mlp: 'swiglu', pos: 'sinusoidal', nKvHeads: 1 }],
  ['rms/gelu/rope interleaved (MHA, post-norm)', { norm: 'rms', mlp: 'gelu', pos: 'rope', ropePairing: 'interleaved', nKvHeads: 4, normPlacement: 'post' }],
];

describe('TransformerLM', () => {
  for (const [label, cfg] of VARIANTS) {
    it(`${label}: logits at positions ≤ t do not change when tokens after t change (exactly)`, () => {
      const model = new TransformerLM(small(cfg), { generator: new Generator(3) });
      const ids = randint(0, 13, [2, 10], { generator: new Generator(4) });
      const base = noGrad(() => model.forward(ids).logits);
      for (const t of [0, 4, 8]) {
        const changed = ids.clone();
        const d = changed.storage as Int32Array;
        for (let b = 0; b < 2; b++) for (let j = t + 1; j < 10; j++) d[b * 10 + j] = (d[b * 10 + j] + 1 + j) % 13;
        const out = noGrad(() => model.forward(changed).logits);
        expect(out.narrow(1, 0, t + 1).toArray()).toEqual(base.narrow(1, 0, t + 1).toArray());
        expect(maxDiff(out.narrow(1, t + 1, 9 - t), base.narrow(1, t + 1, 9 - t))).toBeGreaterThan(0);
      }
    });

    it(`${label}: KV-cache decoding equals the full forward at every step`, () => {
      const model = new TransformerLM(small(cfg), { generator: new Generator(5) });
      const ids = randint(0, 13, [2, 12], { generator: new Generator(6) });
      const full = noGrad(() => model.forward(ids).logits);
      const cache = model.createCache(2);
      // prefill 4 tokens with forward(…, {cache}), then step one token at a time
      const prefill = model.forward(ids.narrow(1, 0, 4), null, { cache }).logits;
      expect(maxDiff(prefill, full.narrow(1, 0, 4))).toBeLessThan(1e-5);
      for (let t = 4; t < 12; t++) {
        const logits = model.step(ids.narrow(1, t, 1), cache);
        expect(logits.shape).toEqual([2, 13]);
        expect(maxDiff(logits, full.select(1, t))).toBeLessThan(1e-5);
      }
      expect(cache.length).toBe(12);
      expect(() => model.step(ids.narrow(1, 0, 1), cache)).toThrow(/exceed maxSeqLen 12/);
    });
  }

  it('forward returns logits [B, T, V] and the mean cross-entropy, ignoring −100 targets', () => {
    const model = new TransformerLM(small(), { generator: new Generator(1) });
    const ids = randint(0, 13, [2, 5], { generator: new Generator(2) });
    const targets = randint(0, 13, [2, 5], { generator: new Generator(3) });
    const { logits, loss } = model.forward(ids, targets);
    expect(logits.shape).toEqual([2, 5, 13]);
    const logp = noGrad(() => logits.logSoftmax(-1));
    let expected = 0;
    const t = targets.toArray();
    for (let i = 0; i < 10; i++) expected -= logp.reshape([10, 13]).get(i, t[i]).item();
    expect((loss as Tensor).item()).toBeCloseTo(expected / 10, 5);
    // near log(V) at initialisation (std 0.02)
    expect(Math.abs((loss as Tensor).item() - Math.log(13))).toBeLessThan(0.1);
    const masked = targets.clone();
    (masked.storage as Int32Array)[0] = -100;
    const l2 = model.forward(ids, masked).loss as Tensor;
    expect(l2.item()).toBeCloseTo((expected + logp.reshape([10, 13]).get(0, t[0]).item()) / 9, 5);
    expect(model.forward(ids).loss).toBeNull();
  });

  it('GQA/MQA shapes: wk and wv have nKvHeads·headDim rows', () => {
    for (const kv of [4, 2, 1]) {
      const model = new TransformerLM(small({ nKvHeads: kv }));
      const attn = model.block(0).attn as MultiHeadAttention;
      expect(attn.wk.weight.shape).toEqual([kv * 4, 16]);
      expect(attn.wv.weight.shape).toEqual([kv * 4, 16]);
      expect(attn.wq.weight.shape).toEqual([16, 16]);
      expect(model.createCache(3).layers[0].k.shape).toEqual([3, kv, 12, 4]);
    }
  });

  it('state-dict names follow the documented layout', () => {
    const tied = new TransformerLM(small({ tieWeights: true, bias: false, norm: 'rms', mlp: 'swiglu', pos: 'rope' }));
    expect(Object.keys(tied.stateDict())).toEqual([
      'tokEmb.weight',
      ...[0, 1].flatMap((i) => ['attnNorm.weight', 'attn.wq.weight', 'attn.wk.weight', 'attn.wv.weight', 'attn.wo.weight', 'ffnNorm.weight', 'ffn.w1.weight', 'ffn.w3.weight', 'ffn.w2.weight'].map((n) => `layers.${i}.${n}`)),
      'norm.weight',
    ]);
    const untied = new TransformerLM(small({ tieWeights: false }));
    const names = Object.keys(untied.stateDict());
    expect(names[0]).toBe('tokEmb.weight');
    expect(names[1]).toBe('posEmb.weight');
    expect(names.at(-1)).toBe('head.weight');
    expect(names).toContain('layers.1.attn.wq.bias');
    expect(untied.headWeight).toBe(untied.head?.weight);
    expect(tied.headWeight).toBe(tied.tokEmb.weight);
  });

  it('initialises GPT-2 style: N(0, 0.02), residual projections N(0, 0.02/√(2·nLayers)), zero biases', () => {
    const model = new TransformerLM({ vocabSize: 64, dModel: 64, nLayers: 8, nHeads: 4, maxSeqLen: 16, dFF: 256 }, { generator: new Generator(9) });
    const std = (t: Tensor) => Math.sqrt(t.square().mean().item());
    expect(std(model.tokEmb.weight)).toBeCloseTo(0.02, 2);
    expect(std((model.block(0).attn as MultiHeadAttention).wq.weight)).toBeCloseTo(0.02, 2);
    const residual = 0.02 / Math.sqrt(16);
    expect(std(model.block(3).attn.wo.weight) / residual).toBeGreaterThan(0.9);
    expect(std(model.block(3).attn.wo.weight) / residual).toBeLessThan(1.1);
    const w2 = (model.block(5).ffn as FeedForward).w2.weight;
    expect(std(w2) / residual).toBeGreaterThan(0.9);
    expect(std(w2) / residual).toBeLessThan(1.1);
    expect((model.block(2).attn as MultiHeadAttention).wq.bias?.abs().max().item()).toBe(0);
    // the same generator seed gives the same weights
    const again = new TransformerLM({ vocabSize: 64, dModel: 64, nLayers: 8, nHeads: 4, maxSeqLen: 16, dFF: 256 }, { generator: new Generator(9) });
    expect((again.block(7).ffn as FeedForward).w1.weight.toArray()).toEqual((model.block(7).ffn as FeedForward).w1.weight.toArray());
  });

  it('validates its config with clear errors', () => {
    const base = { vocabSize: 10, dModel: 64, nLayers: 2, nHeads: 8, maxSeqLen: 16 };
    expect(() => new TransformerLM({ ...base, dModel: 250 })).toThrow('dModel 250 is not divisible by nHeads 8');
    expect(() => new TransformerLM({ ...base, nKvHeads: 3 })).toThrow('nHeads 8 not divisible by nKvHeads 3');
    expect(() => new TransformerLM({ ...base, dModel: 40, pos: 'rope' })).toThrow(/even head dim/);
    expect(() => new TransformerLM({ ...base, norm: 'batch' as never })).toThrow(/norm must be 'layer' or 'rms', got 'batch'/);
    expect(() => new TransformerLM({ ...base, nHead: 8 } as never)).toThrow(/unknown config key 'nHead' \(did you mean 'nHeads'\?\)/);
    expect(() => new TransformerLM({ ...base, dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => new TransformerLM({ ...base, vocabSize: 0 })).toThrow(/vocabSize must be a positive integer/);
    // every problem at once
    expect(() => models.resolveConfig({ ...base, dModel: 250, nKvHeads: 3 })).toThrow(/dModel 250 is not divisible by nHeads 8; nHeads 8 not divisible by nKvHeads 3/);
    const c = models.resolveConfig(base);
    expect(c).toMatchObject({ nKvHeads: 8, dFF: 256, norm: 'layer', mlp: 'gelu', pos: 'learned', ropeTheta: 10000, ropePairing: 'half', tieWeights: true, bias: true, dropout: 0, normEps: 1e-5, normPlacement: 'pre' });
    expect(models.resolveConfig({ ...base, norm: 'rms' }).normEps).toBe(1e-6);
  });

  it('rejects sequences longer than maxSeqLen and non-int ids', () => {
    const model = new TransformerLM(small());
    expect(() => model.forward(randint(0, 13, [1, 13]))).toThrow(/13 tokens at position 0 exceed maxSeqLen 12/);
    expect(() => model.forward(tensor([[1, 2]]))).toThrow(/int32/);
  });

  it('dropout: training forward is stochastic, eval deterministic', () => {
    const model = new TransformerLM(small({ dropout: 0.3 }), { generator: new Generator(1), dropoutGenerator: new Generator(2) });
    const ids = randint(0, 13, [1, 6], { generator: new Generator(3) });
    expect(maxDiff(model.forward(ids).logits, model.forward(ids).logits)).toBeGreaterThan(1e-6);
    model.eval();
    expect(maxDiff(model.forward(ids).logits, model.forward(ids).logits)).toBe(0);
  });
});

describe('generate', () => {
  const model = new TransformerLM(small({ pos: 'rope', norm: 'rms', mlp: 'swiglu' }), { generator: new Generator(11) });
  // Make the distribution peaky so greedy decoding is unambiguous.
  noGrad(() => model.tokEmb.weight.mul_(40));

  it('greedy (temperature 0) equals argmax of the full forward pass at every step', () => {
    const ids = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'int32' });
    const out = model.generate(ids, { maxNewTokens: 6, temperature: 0 });
    expect(out.shape).toEqual([2, 9]);
    expect(out.narrow(1, 0, 3).toArray()).toEqual(ids.toArray());
    for (let t = 3; t < 9; t++) {
      const logits = noGrad(() => model.forward(out.narrow(1, 0, t)).logits.select(1, t - 1));
      expect(Array.from(logits.argmax(-1).toTypedArray())).toEqual(Array.from(out.select(1, t).toTypedArray()));
    }
  });

  it('sampling is reproducible with a generator, streams tokens, and restores the training mode', () => {
    const ids = tensor([3, 1], { dtype: 'int32' });
    const a = model.generate(ids, { maxNewTokens: 8, temperature: 1.2, topK: 5, topP: 0.9, generator: new Generator(1) });
    const b = model.generate(ids, { maxNewTokens: 8, temperature: 1.2, topK: 5, topP: 0.9, generator: new Generator(1) });
    expect(a.shape).toEqual([10]);
    expect(a.toArray()).toEqual(b.toArray());
    const streamed: number[] = [];
    for (const tok of model.generateStream(ids, { maxNewTokens: 8, temperature: 1.2, topK: 5, topP: 0.9, generator: new Generator(1) })) streamed.push(tok[0]);
    expect(streamed).toEqual(a.toArray().slice(2));
    expect(model.training).toBe(true);
    expect(model.layers.at(1).training).toBe(true);
    const seen: number[] = [];
    model.generate(ids, { maxNewTokens: 3, temperature: 0, onToken: (t, i) => seen.push(i * 100 + t[0]) });
    expect(seen.length).toBe(3);
  });

  it('keeps going past maxSeqLen by rebuilding the cache; keepOnOverflow = maxSeqLen − 1 is the exact sliding window', () => {
    const ids = tensor([[2, 7]], { dtype: 'int32' });
    const out = model.generate(ids, { maxNewTokens: 20, temperature: 0, keepOnOverflow: 11 });
    expect(out.shape).toEqual([1, 22]);
    // each token = argmax of a full forward over the previous ≤ 12 tokens (nanoGPT's crop)
    for (let t = 2; t < 22; t++) {
      const start = Math.max(0, t - 12);
      const logits = noGrad(() => model.forward(out.narrow(1, start, t - start)).logits.select(1, t - start - 1));
      expect(logits.argmax(-1).item()).toBe(out.get(0, t).item());
    }
    expect(model.generate(ids, { maxNewTokens: 30, temperature: 0 }).shape).toEqual([1, 32]);
    expect(() => model.generate(ids, { maxNewTokens: 1, keepOnOverflow: 12 })).toThrow(/keepOnOverflow/);
    expect(() => model.generate(ids, { maxNewTokens: 1, topP: 0 })).toThrow(/topP/);
  });
});

describe('sampling', () => {
  it('top-k keeps the k most likely tokens, top-p the smallest nucleus', () => {
    const logits = Float32Array.from([0, 3, 1, 2.9, -5]);
    const gen = new Generator(4);
    const counts = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      const t = models.sampleToken(logits, { topK: 2, generator: gen });
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([1, 3]);
    // probabilities ∝ e^3, e^2.9, e^1, e^0, e^-5: the top two hold ~0.87, so p = 0.8 keeps exactly {1, 3}
    for (let i = 0; i < 200; i++) expect([1, 3]).toContain(models.sampleToken(logits, { topP: 0.8, generator: gen }));
    expect(models.sampleToken(logits, { temperature: 0 })).toBe(1);
    expect(Array.from(models.sampleNext(tensor([[0, 1], [5, 2]]), { temperature: 0 }))).toEqual([1, 0]);
  });
});
