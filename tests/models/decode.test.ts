/** The decode engine (models/decode.ts) computes what the graph path computes, for every architecture option. */
import { describe, expect, it } from 'vitest';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { TransformerLM } from '../../src/models/transformer.js';
import type { MultiHeadAttention } from '../../src/nn/attention.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { expectOneLineError } from '../helpers/errors.js';
import { randomIds, sharpened } from './helpers.js';

const BASE: TransformerConfigInput = { vocabSize: 37, dModel: 32, nLayers: 2, nHeads: 4, dFF: 48, maxSeqLen: 24 };
const VARIANTS: [string, Partial<TransformerConfigInput>][] = [
  ['tiny-style (LayerNorm, GELU, learned positions, tied)', {}],
  ['Llama-style (RMSNorm, SwiGLU, RoPE half, GQA 4/2, untied, no bias)', { norm: 'rms', mlp: 'swiglu', pos: 'rope', nKvHeads: 2, tieWeights: false, bias: false }],
  ['RoPE interleaved, MQA', { pos: 'rope', ropePairing: 'interleaved', nKvHeads: 1 }],
  ['sinusoidal positions, post-norm', { pos: 'sinusoidal', normPlacement: 'post' }],
  ['μP (width 64 over base 16, multipliers)', { dModel: 64, dFF: 96, mup: { baseWidth: 16, inputMultiplier: 1.5, outputMultiplier: 0.7 } }],
];

function model(overrides: Partial<TransformerConfigInput>): TransformerLM {
  return sharpened(new TransformerLM(resolveConfig({ ...BASE, ...overrides } as TransformerConfigInput), { generator: new Generator(11) }));
}

const ids = randomIds;

describe('DecodeEngine', () => {
  it.each(VARIANTS)('%s: prefill and step-by-step logits equal the graph forward within 1e-5', (_name, overrides) => {
    const m = model(overrides);
    const V = m.config.vocabSize;
    const seq = [...ids(10, V, 1), ...ids(10, V, 2)];
    const batch = tensor(Int32Array.from(seq), { shape: [2, 10] });
    const ref = m.forward(batch).logits; // [2, 10, V]
    const engine = new DecodeEngine(m, 2);
    // Prefill of 6 tokens per row, then one at a time.
    const first = engine.forward(Int32Array.from([...seq.slice(0, 6), ...seq.slice(10, 16)]), 6);
    let worst = 0;
    const compare = (got: Float32Array, t: number) => {
      for (let b = 0; b < 2; b++) {
        const want = ref.select(0, b).select(0, t).toTypedArray();
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got[b * V + j] - want[j]) / Math.max(1, Math.abs(want[j])));
      }
    };
    compare(first, 5);
    for (let t = 6; t < 10; t++) compare(engine.forward(Int32Array.of(seq[t], seq[10 + t]), 1), t);
    expect(engine.length).toBe(10);
    expect(worst).toBeLessThan(1e-5);
  });

  it.each(VARIANTS)('%s: generate on the engine gives the KV-cache path\'s greedy tokens, past the context (rebuilt from the last tokens)', (_name, overrides) => {
    const m = model(overrides);
    const prompt = tensor(Int32Array.from(ids(5, m.config.vocabSize, 3)), { shape: [1, 5] });
    for (const keepOnOverflow of [undefined, 23, 1]) {
      const engine = Array.from(m.generate(prompt, { maxNewTokens: 50, temperature: 0, keepOnOverflow }).toTypedArray());
      const cached = Array.from(m.generate(prompt, { maxNewTokens: 50, temperature: 0, keepOnOverflow, cache: m.createCache(1) }).toTypedArray());
      expect(engine).toEqual(cached);
    }
    // Sampling with a seed draws the same tokens on both paths too.
    const sample = (cache?: ReturnType<TransformerLM['createCache']>) => Array.from(m.generate(prompt, { maxNewTokens: 20, temperature: 0.9, topK: 10, generator: new Generator(5), cache }).toTypedArray());
    expect(sample()).toEqual(sample(m.createCache(1)));
  });

  it('continues a sequence across calls (a chat\'s turns) as the KV-cache path does, overflow included', () => {
    const m = model({ norm: 'rms', mlp: 'swiglu', pos: 'rope', nKvHeads: 2 });
    const engine = new DecodeEngine(m, 1);
    const cache = m.createCache(1);
    const turns = [ids(6, 37, 21), ids(3, 37, 22), ids(4, 37, 23)];
    let pendingE: number[] = [];
    let pendingK: number[] = [];
    // The third turn fills the 24-token context while generating: both rebuild from its last 8 tokens.
    for (const [i, turn] of turns.entries()) {
      const n = [5, 5, 12][i];
      const a = Array.from(m.generate(tensor(Int32Array.from([...pendingE, ...turn]), { shape: [1, pendingE.length + turn.length] }), { maxNewTokens: n, temperature: 0, cache: engine, keepOnOverflow: 8 }).select(0, 0).toTypedArray()).slice(-n);
      const k = Array.from(m.generate(tensor(Int32Array.from([...pendingK, ...turn]), { shape: [1, pendingK.length + turn.length] }), { maxNewTokens: n, temperature: 0, cache, keepOnOverflow: 8 }).select(0, 0).toTypedArray()).slice(-n);
      expect(a).toEqual(k);
      expect(engine.length).toBe(cache.length);
      pendingE = [a[a.length - 1]];
      pendingK = [k[k.length - 1]];
    }
  });

  it('batched rows decode independently: each row equals its own batch-1 run', () => {
    const m = model({ pos: 'rope', norm: 'rms', mlp: 'swiglu', nKvHeads: 2 });
    const rows = [ids(4, 37, 7), ids(4, 37, 8), ids(4, 37, 9)];
    const both = m.generate(tensor(Int32Array.from(rows.flat()), { shape: [3, 4] }), { maxNewTokens: 15, temperature: 0 });
    rows.forEach((r, i) => expect(Array.from(both.select(0, i).toTypedArray())).toEqual(Array.from(m.generate(tensor(Int32Array.from(r), { shape: [4] }), { maxNewTokens: 15, temperature: 0 }).toTypedArray())));
  });

  it('reads the current weights at every call, and gives one-line errors', () => {
    const m = model({});
    const engine = new DecodeEngine(m, 1, 8);
    const before = engine.forward(Int32Array.of(1, 2), 2).slice();
    (m.block(0).attn as MultiHeadAttention).wq.weight.storage.fill(0.01);
    engine.reset();
    expect(engine.forward(Int32Array.of(1, 2), 2)).not.toEqual(before);
    expectOneLineError(() => engine.forward(Int32Array.of(1, 2, 3, 4, 5, 6, 7), 7), /7 tokens after the 2 in the cache exceed its length 8/);
    expectOneLineError(() => engine.forward(Int32Array.of(99), 1), /token 99 is outside \[0, 37\)/);
    expectOneLineError(() => engine.forward(Int32Array.of(1, 2), 1), /expected 1 rows of t ≥ 1 tokens \(1·t ids\), got 2 ids for t = 1/);
    expectOneLineError(() => new DecodeEngine(m, 1, 99), /maxLen must be an integer in \[1, 24\], got 99/);
  });
});
