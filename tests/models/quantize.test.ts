/**
 * quantizeModel (models/quantize.ts, issue 18): which layers become QuantizedLinear, the bytes,
 * logits close to float32, the quantized graph forward equal to the decode engine's logits (same
 * codes), greedy generation equal on the engine and the KV-cache path, training refused, and the
 * perplexity cost of a briefly trained model within 1% for both formats.
 */
import { describe, expect, it } from 'vitest';
import { noGrad, optim, tensor } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { quantizeModel } from '../../src/models/quantize.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { QuantizedLinear, type QuantFormat } from '../../src/nn/quantized.js';
import { Generator } from '../../src/tensor/random.js';
import { expectOneLineError } from '../helpers/errors.js';
import { randomIds, sharpened } from './helpers.js';

const BASE: TransformerConfigInput = { vocabSize: 37, dModel: 32, nLayers: 2, nHeads: 4, dFF: 48, maxSeqLen: 24 };
const VARIANTS: [string, Partial<TransformerConfigInput>, string[]][] = [
  ['tiny-style (LayerNorm, GELU, learned positions, tied head)', {}, ['layers.0.attn.wq', 'layers.1.ffn.w2']],
  ['Llama-style (RMSNorm, SwiGLU, RoPE, GQA, untied head)', { norm: 'rms', mlp: 'swiglu', pos: 'rope', nKvHeads: 2, tieWeights: false, bias: false }, ['layers.0.ffn.w3', 'head']],
  ['mixture of experts (SwiGLU experts, a shared expert)', { norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, moe: { nExperts: 4, topK: 2, nSharedExperts: 1 } }, ['layers.0.ffn.experts.3.w1', 'layers.1.ffn.shared.w2']],
  ['multi-head latent attention', { norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, mla: { kvLoraRank: 8, qLoraRank: 12, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 8 } }, ['layers.0.attn.wDkv', 'layers.1.attn.wDq']],
];
const FORMATS: QuantFormat[] = ['int8', 'q8_0'];

function model(overrides: Partial<TransformerConfigInput>): TransformerLM {
  return sharpened(new TransformerLM({ ...BASE, ...overrides } as TransformerConfigInput, { generator: new Generator(11) }));
}

function logitsOf(m: TransformerLM, ids: number[], rows: number): Float32Array {
  return noGrad(() => m.forward(tensor(Int32Array.from(ids), { shape: [rows, ids.length / rows] })).logits.contiguous().toTypedArray() as Float32Array);
}

describe('quantizeModel', () => {
  it.each(VARIANTS)('%s: the projections are quantized (router, wUk, wUv, a tied head and embeddings stay float32), with their errors and bytes', (_name, overrides, someNames) => {
    for (const format of FORMATS) {
      const m = model(overrides);
      const before = [...m.parameters(), ...m.buffers()].reduce((s, p) => s + p.size * 4, 0);
      const stats = quantizeModel(m, format);
      const names = stats.layers.map((l) => l.name);
      for (const n of someNames) expect(names).toContain(n);
      expect(names.some((n) => /router|wUk|wUv|tokEmb/.test(n))).toBe(false);
      expect(names.includes('head')).toBe(m.config.tieWeights === false);
      expect(m.modules().filter((x) => x instanceof QuantizedLinear)).toHaveLength(stats.layers.length);
      expect(stats.bytesBefore).toBe(before);
      expect(stats.bytesAfter).toBeLessThan(stats.bytesBefore);
      expect(stats.linearBytesAfter).toBeLessThan(stats.linearBytesBefore / 2.5); // 1 byte + a 4-byte scale per row or per ≤ 32 codes
      for (const l of stats.layers) {
        expect(l.relativeError).toBeGreaterThan(0);
        expect(l.relativeError).toBeLessThan(0.02);
        expect(l.maxAbsError).toBeLessThan(0.05);
      }
      expect(m.training).toBe(false);
      expect(m.parameters().every((p) => !p.requiresGrad)).toBe(true);
    }
  });

  it.each(VARIANTS)('%s: logits within 4% of the logit range of float32, and the graph forward equals the engine (prefill and steps) within 1e-5 (MLA: 1e-2)', (_name, overrides) => {
    for (const format of FORMATS) {
      const f32 = model(overrides);
      const q = model(overrides);
      quantizeModel(q, format);
      const V = q.config.vocabSize;
      const seq = [...randomIds(10, V, 1), ...randomIds(10, V, 2)];
      const ref = logitsOf(f32, seq, 2);
      const got = logitsOf(q, seq, 2);
      let range = 0;
      let diff = 0;
      for (let i = 0; i < ref.length; i++) {
        range = Math.max(range, Math.abs(ref[i]));
        diff = Math.max(diff, Math.abs(got[i] - ref[i]));
      }
      // Measured 0.4–1.9% of the largest logit on these sharpened (×4) random models, both formats.
      expect(diff / range, `${format}`).toBeLessThan(0.04);
      const engine = new DecodeEngine(q, 2);
      let worst = 0;
      const compare = (out: Float32Array, t: number) => {
        for (let b = 0; b < 2; b++) for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(out[b * V + j] - got[(b * 10 + t) * V + j]) / Math.max(1, Math.abs(got[(b * 10 + t) * V + j])));
      };
      compare(engine.forward(Int32Array.from([...seq.slice(0, 6), ...seq.slice(10, 16)]), 6), 5);
      for (let t = 6; t < 10; t++) compare(engine.forward(Int32Array.of(seq[t], seq[10 + t]), 1), t);
      // MLA's engine runs the absorbed form (models/mla-decode.ts), whose float32 roundings differ
      // from the graph's at the ulp level; the kernel's on-the-fly activation rounding can turn such
      // a difference into a code one step away (measured: at most 3e-3 relative). The other
      // variants feed both paths identical activations: equal within 1e-5.
      expect(worst, `${format}`).toBeLessThan(overrides.mla ? 1e-2 : 1e-5);
    }
  });

  it.each(VARIANTS)('%s: greedy generation on the engine and on the KV-cache path agree token for token', (_name, overrides) => {
    for (const format of FORMATS) {
      const q = model(overrides);
      quantizeModel(q, format);
      const prompt = tensor(Int32Array.from(randomIds(5, q.config.vocabSize, 3)), { shape: [1, 5] });
      const engine = Array.from(q.generate(prompt, { maxNewTokens: 30, temperature: 0 }).toTypedArray());
      const cached = Array.from(q.generate(prompt, { maxNewTokens: 30, temperature: 0, cache: q.createCache(1) }).toTypedArray());
      expect(engine).toHaveLength(35);
      expect(engine).toEqual(cached);
    }
  });

  it('refuses training, a second quantization and a bad format in one line', () => {
    const m = model({});
    quantizeModel(m, 'int8');
    m.train();
    const ids = tensor(Int32Array.from(randomIds(8, 37, 4)), { shape: [1, 8] });
    expectOneLineError(() => m.forward(ids, ids), /a quantized model is inference only and cannot be trained/);
    m.eval();
    expectOneLineError(() => quantizeModel(m, 'q8_0'), /'layers\.0\.attn\.wq' is already quantized \(int8\); quantize a float32 model/);
    expectOneLineError(() => quantizeModel(model({}), 'fp8' as QuantFormat), /format must be 'int8' or 'q8_0', got "fp8"/);
  });
});

/** A seeded corpus with structure to learn: sentences from a small grammar, as characters. */
function corpus(chars: number, seed: number): string {
  const g = new Generator(seed);
  const pick = (a: string[]): string => a[g.randint(0, a.length)];
  const who = ['the king', 'a fool', 'my lord', 'the queen', 'good sir', 'his son'];
  const verb = ['speaks of', 'loves', 'fears', 'will see', 'hath found', 'dreams of'];
  const what = ['the crown', 'a rose', 'the night', 'her eyes', 'this land', 'the sea'];
  let s = '';
  while (s.length < chars) s += `${pick(who)} ${pick(verb)} ${pick(what)}${pick(['.', ',', '!', '?'])}\n`;
  return s.slice(0, chars);
}

describe('perplexity cost', () => {
  it('a briefly trained model: int8 and q8_0 validation perplexity within 1% of float32', () => {
    const train = corpus(20000, 1);
    const val = corpus(4000, 2);
    const vocab = [...new Set(train + val)].sort();
    const encode = (s: string): Int32Array => Int32Array.from(s, (c) => vocab.indexOf(c));
    const tr = encode(train);
    const va = encode(val);
    const T = 32;
    const B = 8;
    const make = (): TransformerLM => new TransformerLM({ vocabSize: vocab.length, dModel: 48, nLayers: 2, nHeads: 4, dFF: 96, maxSeqLen: T }, { generator: new Generator(3) });
    const m = make();
    const opt = new optim.AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 });
    const g = new Generator(9);
    m.train();
    for (let step = 0; step < 500; step++) {
      const x = new Int32Array(B * T);
      const y = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        const s = g.randint(0, tr.length - T - 1);
        x.set(tr.subarray(s, s + T), b * T);
        y.set(tr.subarray(s + 1, s + T + 1), b * T);
      }
      opt.zeroGrad();
      const loss = m.forward(tensor(x, { shape: [B, T] }), tensor(y, { shape: [B, T] })).loss;
      loss?.backward();
      opt.step();
    }
    m.eval();
    const perplexity = (lm: TransformerLM): number => {
      const windows = Math.floor((va.length - 1) / T);
      const x = new Int32Array(windows * T);
      const y = new Int32Array(windows * T);
      for (let w = 0; w < windows; w++) {
        x.set(va.subarray(w * T, w * T + T), w * T);
        y.set(va.subarray(w * T + 1, w * T + T + 1), w * T);
      }
      return Math.exp(noGrad(() => lm.forward(tensor(x, { shape: [windows, T] }), tensor(y, { shape: [windows, T] })).loss?.item() ?? NaN));
    };
    const base = perplexity(m);
    expect(base).toBeLessThan(3); // it learned something (uniform: about 30)
    const state = m.stateDict();
    for (const format of FORMATS) {
      const q = make();
      q.loadStateDict(state);
      quantizeModel(q, format);
      const p = perplexity(q);
      // Measured: int8 +0.099%, q8_0 −0.018% (perplexity 1.883; 7-bit activations since the relaxed-SIMD kernel).
      expect(Math.abs(p / base - 1), `${format}: ${p} against ${base}`).toBeLessThan(0.01);
    }
  });
});
