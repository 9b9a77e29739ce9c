/**
 * Multi-head latent attention (config.mla, src/nn/mla.ts): the config option and its refusals,
 * the PyTorch golden (tests/golden/mla.json from tools/golden/mla.py), a finite-difference
 * gradcheck of the module, the latent KV cache (only c_KV and k^R, checked element by element)
 * against uncached forwards, generation, packed rows, the parameter and cache accounting, the
 * nano-mla preset and the export refusal.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { countParameters, describeModel, kvCacheBytes } from '../../src/models/params.js';
import { getPreset } from '../../src/models/presets.js';
import { KVCache, TransformerLM } from '../../src/models/transformer.js';
import { hfArchitecture } from '../../src/interop/hf-model.js';
import { LatentKVCacheLayer, MultiHeadLatentAttention, type MlaConfig } from '../../src/nn/mla.js';
import { RotaryEmbedding } from '../../src/nn/positional.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { getBackend, listBackends, noGrad, setBackend } from './imports.js';
import { randomIds, sharpened, expectCachedGreedyMatchesUncached, expectEngineAndCacheFollowUncached, maxDiff, uncachedLogits, describeModelGolden } from './helpers.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const DIMS = { kvLoraRank: 6, qLoraRank: null, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 5 };
const BASE: TransformerConfigInput = { vocabSize: 29, dModel: 16, nLayers: 2, nHeads: 4, dFF: 24, maxSeqLen: 20, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, mla: DIMS };

function model(overrides: Partial<TransformerConfigInput> = {}): TransformerLM {
  return sharpened(new TransformerLM({ ...BASE, ...overrides }, { generator: new Generator(5) }));
}

const ids = randomIds;
const floats = (t: Tensor): Float32Array => t.contiguous().toTypedArray() as Float32Array;

describe('config.mla', () => {
  it('defaults to null, also for configs saved before the key existed; {} takes DeepSeek-V2 proportions to the head dim', () => {
    expect(resolveConfig({ vocabSize: 5, dModel: 8, nLayers: 1, nHeads: 2, maxSeqLen: 8 }).mla).toBeNull();
    expect(resolveConfig({ ...BASE, mla: {} }).mla).toEqual({ kvLoraRank: 16, qLoraRank: null, qkNopeHeadDim: 4, qkRopeHeadDim: 2, vHeadDim: 4 });
    expect(resolveConfig({ ...BASE, mla: { kvLoraRank: 3, qLoraRank: 5 } }).mla).toEqual({ kvLoraRank: 3, qLoraRank: 5, qkNopeHeadDim: 4, qkRopeHeadDim: 2, vHeadDim: 4 });
    expect(resolveConfig({ ...BASE, dModel: 256, nHeads: 8, mla: {} }).mla).toEqual({ kvLoraRank: 128, qLoraRank: null, qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 });
  });

  it('refuses what it does not implement and bad dimensions, each in one line', () => {
    expectOneLineError(() => resolveConfig({ ...BASE, pos: 'learned' }), /mla needs pos 'rope'/);
    expectOneLineError(() => resolveConfig({ ...BASE, pos: 'sinusoidal' }), /mla needs pos 'rope'/);
    expectOneLineError(() => resolveConfig({ ...BASE, slidingWindow: 4 }), /mla cannot be combined with slidingWindow 4/);
    expectOneLineError(() => resolveConfig({ ...BASE, nKvHeads: 2 }), /mla needs nKvHeads = nHeads/);
    expectOneLineError(() => resolveConfig({ ...BASE, mup: { baseWidth: 8 } }), /mla cannot be combined with mup/);
    expectOneLineError(() => resolveConfig({ ...BASE, attention: 'linear' }), /mla cannot be combined with attention 'linear'/);
    expectOneLineError(() => resolveConfig({ ...BASE, mla: { qkRopeHeadDim: 3 } }), /mla\.qkRopeHeadDim must be even/);
    expectOneLineError(() => resolveConfig({ ...BASE, mla: { kvLoraRank: 0 } }), /mla\.kvLoraRank must be a positive integer, got 0/);
    expectOneLineError(() => resolveConfig({ ...BASE, mla: { qLoraRank: 2.5 } }), /mla\.qLoraRank must be a positive integer or null/);
    expectOneLineError(() => resolveConfig({ ...BASE, mla: { kvRank: 4 } as unknown as MlaConfig }), /unknown mla key 'kvRank'/);
    expectOneLineError(() => resolveConfig({ ...BASE, mla: 4 as unknown as MlaConfig }), /mla must be an object/);
  });

  it('each layer\'s attn is the MLA module with the documented state-dict names; wo gets the residual std', () => {
    const m = new TransformerLM({ ...BASE, mla: { ...DIMS, qLoraRank: 7 }, nLayers: 4 }, { generator: new Generator(1) });
    expect(m.block(0).attn).toBeInstanceOf(MultiHeadLatentAttention);
    expect(Object.keys(m.stateDict()).filter((k) => k.startsWith('layers.0.attn.'))).toEqual(
      ['wDq.weight', 'qNorm.weight', 'wUq.weight', 'wQr.weight', 'wDkv.weight', 'kvNorm.weight', 'wKr.weight', 'wUk.weight', 'wUv.weight', 'wo.weight'].map((n) => `layers.0.attn.${n}`),
    );
    const plain = new TransformerLM({ ...BASE, bias: true }, { generator: new Generator(1) });
    expect(Object.keys(plain.stateDict()).filter((k) => k.startsWith('layers.1.attn.') && k.endsWith('weight'))).toEqual(
      ['wq', 'wQr', 'wDkv', 'kvNorm', 'wKr', 'wUk', 'wUv', 'wo'].map((n) => `layers.1.attn.${n}.weight`),
    );
    const std = (t: Tensor) => Math.sqrt(t.square().mean().item());
    const attn = m.block(0).attn as MultiHeadLatentAttention;
    expect(std(attn.wUk.weight)).toBeCloseTo(0.02, 2);
    expect(std(attn.wo.weight) / (0.02 / Math.sqrt(8))).toBeGreaterThan(0.8);
    expect(std(attn.wo.weight) / (0.02 / Math.sqrt(8))).toBeLessThan(1.2);
    expect(attn.scale).toBe(1 / Math.sqrt(4 + 4));
    expect(m.rope?.headDim).toBe(4);
  });
});

describeModelGolden('mla.json');

describe('MultiHeadLatentAttention gradients', () => {
  for (const qLoraRank of [null, 3]) {
    it(`passes a finite-difference gradcheck of the input and every weight (${qLoraRank === null ? 'plain' : 'low-rank'} queries, bias)`, () => {
      const gen = new Generator(11);
      const dims: MlaConfig = { kvLoraRank: 3, qLoraRank, qkNopeHeadDim: 2, qkRopeHeadDim: 2, vHeadDim: 3 };
      const attn = new MultiHeadLatentAttention(6, 2, dims, { rope: new RotaryEmbedding(2, 8), bias: true, generator: gen });
      const params = attn.namedParameters();
      for (const [, p] of params) p.storage.set(randn(p.shape, { generator: gen }).mul(0.7).toTypedArray() as Float32Array);
      const x = randn([2, 4, 6], { generator: gen });
      const f = (...xs: Tensor[]): Tensor => {
        params.forEach(([name, _p], i) => {
          const path = name.split('.');
          const owner = path.slice(0, -1).reduce((m: Record<string, unknown>, k) => m[k] as Record<string, unknown>, attn as unknown as Record<string, unknown>);
          owner[path[path.length - 1]] = xs[i + 1];
        });
        return attn.forward(xs[0]);
      };
      gradcheck(`MLA ${qLoraRank === null ? 'plain' : 'low-rank'}`, f, [x, ...params.map(([, p]) => p.detach())]);
    });
  }
});

/** The inputs of every layer's attention during one uncached forward (the attnNorm outputs). */
function attentionInputs(m: TransformerLM, row: readonly number[]): Tensor[] {
  const seen: Tensor[] = [];
  const handles = Array.from(m.layers, (_, i) => m.block(i).attn.registerForwardHook((_attn, inputs) => void seen.push((inputs[0] as Tensor).detach())));
  uncachedLogits(m, row);
  for (const h of handles) h.remove();
  return seen;
}

describe('latent KV cache (graph path)', () => {
  for (const [label, overrides] of [
    ['plain queries', {}],
    ['low-rank queries, LayerNorm, GELU, biases, untied', { mla: { ...DIMS, qLoraRank: 7 }, norm: 'layer', mlp: 'gelu', bias: true, tieWeights: false }],
  ] as [string, Partial<TransformerConfigInput>][]) {
    it(`${label}: 1-token, mixed and whole-prompt chunks give the uncached logits; the cache holds exactly c_KV and k^R`, () => {
      const m = model(overrides);
      const c = m.config;
      const mla = c.mla!;
      const row = ids(c.maxSeqLen, c.vocabSize, 3);
      const full = uncachedLogits(m, row);
      const inputs = attentionInputs(m, row);
      const V = c.vocabSize;
      let worst = 0;
      for (const chunks of [Array(row.length).fill(1), [3, 1, 5, 2, 6, 1, 2], [20]]) {
        const cache = m.createCache(1);
        expect(cache.layers[0]).toBeInstanceOf(LatentKVCacheLayer);
        // Nothing but the latent and the rotary key: [1, 1, maxLen, r] and [1, 1, maxLen, rope].
        expect(cache.layers[0].k.shape).toEqual([1, 1, c.maxSeqLen, mla.kvLoraRank]);
        expect(cache.layers[0].v.shape).toEqual([1, 1, c.maxSeqLen, mla.qkRopeHeadDim]);
        let at = 0;
        for (const n of chunks as number[]) {
          const chunk = tensor(Int32Array.from(row.slice(at, at + n)), { shape: [1, n] });
          const logits = noGrad(() => floats(m.forward(chunk, null, { cache }).logits));
          at += n;
          const d = maxDiff(logits, full.subarray((at - n) * V, at * V));
          worst = Math.max(worst, d);
          expect(d).toBeLessThan(1e-5);
          expect(cache.length).toBe(at);
        }
        // Element by element: c_KV = kvNorm(W_DKV h) and k^R = RoPE(W_KR h), recomputed from each layer's input.
        for (let l = 0; l < c.nLayers; l++) {
          const attn = m.block(l).attn as MultiHeadLatentAttention;
          const layer = cache.layers[l] as LatentKVCacheLayer;
          const want = noGrad(() => attn.latents(inputs[l], 0));
          expect(maxDiff(floats(layer.latent), floats(want.latent)), `layer ${l} c_KV`).toBeLessThan(1e-5);
          expect(maxDiff(floats(layer.ropeKey), floats(want.ropeKey)), `layer ${l} k^R`).toBeLessThan(1e-5);
        }
      }
      expect(worst).toBeLessThan(1e-5);
    });
  }

  it('batch 2 with a cache equals each row alone', () => {
    const m = model();
    const rows = [ids(9, 29, 4), ids(9, 29, 5)];
    const cache = m.createCache(2);
    const V = m.config.vocabSize;
    const flat = (from: number, n: number) => tensor(Int32Array.from(rows.flatMap((r) => r.slice(from, from + n))), { shape: [2, n] });
    noGrad(() => m.forward(flat(0, 4), null, { cache }));
    const last = noGrad(() => floats(m.forward(flat(4, 5), null, { cache }).logits));
    for (let r = 0; r < 2; r++) expect(maxDiff(last.subarray((r * 5 + 4) * V, (r * 5 + 5) * V), uncachedLogits(m, rows[r]).subarray(8 * V))).toBeLessThan(1e-5);
  });

  it('refuses a key/value cache for MLA and a latent cache for MHA, each in one line', () => {
    const m = model();
    const plain = new TransformerLM({ ...BASE, mla: null });
    expectOneLineError(() => noGrad(() => m.forward(tensor(Int32Array.of(1), { shape: [1, 1] }), null, { cache: plain.createCache(1) })), /the cache must be a LatentKVCacheLayer/);
    expectOneLineError(() => noGrad(() => plain.forward(tensor(Int32Array.of(1), { shape: [1, 1] }), null, { cache: m.createCache(1) })), /MultiHeadAttention: cache .* does not fit/);
  });

  it('greedy tokens through the DecodeEngine and the KVCache path equal the uncached argmax, token for token', () => {
    const m = model();
    expectCachedGreedyMatchesUncached(m, ids(5, m.config.vocabSize, 11));
  });

  it('packed rows (positions, documentIds) compute each document as alone', () => {
    const m = model();
    const a = ids(7, 29, 4);
    const b = ids(6, 29, 5);
    const packed = noGrad(() =>
      floats(
        m.forward(tensor(Int32Array.from([...a, ...b]), { shape: [1, 13] }), null, {
          positions: tensor(Int32Array.from([...a.keys(), ...b.keys()]), { shape: [1, 13] }),
          documentIds: tensor(Int32Array.from([...a.map(() => 0), ...b.map(() => 1)]), { shape: [1, 13] }),
        }).logits,
      ),
    );
    const V = m.config.vocabSize;
    expect(maxDiff(packed.subarray(0, 7 * V), uncachedLogits(m, a))).toBeLessThan(1e-5);
    expect(maxDiff(packed.subarray(7 * V), uncachedLogits(m, b))).toBeLessThan(1e-5);
  });
});

describe('attention maps (the attnDropout hook point)', () => {
  it('records each layer\'s causal probabilities [H, T, T] (rows sum to 1) and leaves the logits unchanged', async () => {
    const { attentionMaps } = await import('../../src/models/inspect.js');
    const m = model();
    const row = ids(9, 29, 6);
    const before = uncachedLogits(m, row);
    const maps = attentionMaps(m, row);
    expect(maps.layers).toHaveLength(2);
    for (const l of maps.layers) {
      expect(l.length).toBe(4 * 9 * 9);
      for (let r = 0; r < 4 * 9; r++) {
        const i = r % 9;
        let sum = 0;
        for (let j = 0; j < 9; j++) {
          if (j > i) expect(l[r * 9 + j]).toBe(0);
          sum += l[r * 9 + j];
        }
        expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
      }
    }
    expect(maxDiff(uncachedLogits(m, row), before)).toBe(0);
  });
});

describe('DecodeEngine (absorbed form: W_UK folded into the query, W_UV into the output)', () => {
  const initial = getBackend();
  afterAll(() => setBackend(initial));
  for (const backend of listBackends()) for (const [label, overrides, B] of [
    ['plain queries', {}, 1],
    ['low-rank queries, LayerNorm, GELU, biases, interleaved RoPE, post-norm, batch 2', { mla: { ...DIMS, qLoraRank: 7 }, norm: 'layer', mlp: 'gelu', bias: true, ropePairing: 'interleaved', normPlacement: 'post' }, 2],
  ] as [string, Partial<TransformerConfigInput>, number][]) {
    it(`${label} (${backend}): logits equal the uncached forward for 1-token, mixed and whole-prompt chunks, and its latent cache equals the graph path's`, () => {
      setBackend(backend);
      const m = model(overrides);
      const c = m.config;
      expect(m.createDecoder(B)).toBeInstanceOf(DecodeEngine);
      const rows = Array.from({ length: B }, (_, r) => ids(c.maxSeqLen, c.vocabSize, 7 + r));
      expectEngineAndCacheFollowUncached(m, rows, [Array(c.maxSeqLen).fill(1), [5, 1, 6, 8], [20]], (engine, graph) => {
        for (let l = 0; l < c.nLayers; l++) {
          const cache = engine.layerCache(l);
          // c_KV [B, maxLen, r] and k^R [B, maxLen, rope]: the graph's [B, 1, maxLen, ·] element by element.
          expect(maxDiff(cache.k, floats(graph.layers[l].k))).toBeLessThan(1e-5);
          expect(maxDiff(cache.v, floats(graph.layers[l].v))).toBeLessThan(1e-5);
        }
      });
    });
  }
});

describe('accounting, the nano-mla preset and export', () => {
  it('countParameters equals the allocated count, and kvCacheBytes what createCache allocates: nLayers·(kvLoraRank + qkRopeHeadDim)·4 B per token', () => {
    for (const qLoraRank of [null, 5])
      for (const bias of [true, false])
        for (const norm of ['layer', 'rms'] as const)
          for (const tieWeights of [true, false]) {
            const config: TransformerConfigInput = { ...BASE, mla: { ...DIMS, qLoraRank }, bias, norm, tieWeights, normPlacement: bias ? 'pre' : 'post' };
            const m = new TransformerLM(config);
            const counted = countParameters(config);
            expect(counted.total, JSON.stringify(config)).toBe(m.numParameters());
            expect(counted.attention).toBe(m.namedParameters().filter(([n]) => n.includes('.attn.')).reduce((s, [, p]) => s + p.size, 0));
            const cache = m.createCache(1);
            const est = kvCacheBytes(config);
            expect(est.bytesPerToken).toBe(2 * (6 + 4) * 4);
            expect(est.bytesPerSequence).toBe(cache.layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size), 0));
          }
  });

  it('nano-mla: nano-trickster with MLA, a similar parameter count (5,206,016, allocated) and a 3.6× smaller cache', () => {
    const cfg = getPreset('nano-mla').config as TransformerConfigInput;
    const base = getPreset('nano-trickster').config as TransformerConfigInput;
    expect({ ...cfg, mla: undefined }).toEqual({ ...base, mla: undefined });
    const counted = countParameters(cfg).total;
    expect(counted).toBe(5_206_016);
    expect(new TransformerLM(cfg).numParameters()).toBe(counted);
    expect(Math.abs(counted / countParameters(base).total - 1)).toBeLessThan(0.01);
    const est = kvCacheBytes(cfg);
    // 6 layers × (128 + 16) floats × 4 B = 3,456 B per token (MHA: 2 × 6 × 256 × 4 = 12,288 B).
    expect(est.bytesPerToken).toBe(3456);
    expect(kvCacheBytes(base).bytesPerToken / est.bytesPerToken).toBeGreaterThan(3.5);
    const small = new TransformerLM({ ...cfg, nLayers: 1, maxSeqLen: 8 });
    expect(small.createCache(1).layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size), 0)).toBe(kvCacheBytes({ ...cfg, nLayers: 1, maxSeqLen: 8 }).bytesPerSequence);
    expect(describeModel('nano-mla', cfg)).toMatch(/KV cache per sequence: 1\.69 MiB \(3\.38 KiB per token × 512 positions, fp32; multi-head latent attention caches 6 layers × \(128 c_KV \+ 16 k\^R\) floats per token\)/);
  });

  it('Hugging Face and GGUF export refuse an MLA model in one line', () => {
    expectOneLineError(() => hfArchitecture(resolveConfig(BASE)), /cannot be written as LlamaForCausalLM or GPT2LMHeadModel: mla \(neither has multi-head latent attention/);
  });
});
