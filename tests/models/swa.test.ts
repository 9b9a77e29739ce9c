/**
 * Sliding-window attention (config.slidingWindow = W: key j visible from query i iff i − W < j ≤ i):
 * the config option, the banded fused softmax and its gradients, the PyTorch golden
 * (tests/golden/swa.json from tools/golden/swa.py), the rolling KV cache of the graph path and of
 * the DecodeEngine against uncached forwards, and generation.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { KVCache, KVCacheLayer, groupedAttention } from '../../src/nn/attention.js';
import { scaledSoftmax } from '../../src/ops/attention.js';
import { softmax } from '../../src/ops/softmax.js';
import { where } from '../../src/ops/elementwise.js';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { getBackend, listBackends, noGrad, setBackend } from './imports.js';
import { randomIds, sharpened, argmax, expectCachedGreedyMatchesUncached, expectEngineAndCacheFollowUncached, maxDiff, uncachedLogits, describeModelGolden } from './helpers.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const BASE: TransformerConfigInput = { vocabSize: 29, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: 20, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false };

function model(overrides: Partial<TransformerConfigInput> = {}): TransformerLM {
  return sharpened(new TransformerLM({ ...BASE, slidingWindow: 4, ...overrides }, { generator: new Generator(5) }));
}

const ids = randomIds;

/** Two documents packed in one row (positions restart, documentIds split them) give the logits each gets alone. */
function expectPackedRowMatchesSeparateDocuments(m: TransformerLM): void {
    const a = ids(7, 29, 4);
    const b = ids(6, 29, 5);
    const packed = noGrad(() =>
      m.forward(tensor(Int32Array.from([...a, ...b]), { shape: [1, 13] }), null, {
        positions: tensor(Int32Array.from([...a.keys(), ...b.keys()]), { shape: [1, 13] }),
        documentIds: tensor(Int32Array.from([...a.map(() => 0), ...b.map(() => 1)]), { shape: [1, 13] }),
      }).logits.contiguous().toTypedArray() as Float32Array,
    );
    const V = m.config.vocabSize;
    expect(maxDiff(packed.subarray(0, 7 * V), uncachedLogits(m, a))).toBeLessThan(1e-5);
    expect(maxDiff(packed.subarray(7 * V), uncachedLogits(m, b))).toBeLessThan(1e-5);
}

describe('config.slidingWindow', () => {
  it('defaults to null, also for configs saved before the key existed', () => {
    expect(resolveConfig({ vocabSize: 5, dModel: 8, nLayers: 1, nHeads: 2, maxSeqLen: 8 }).slidingWindow).toBeNull();
    expect(resolveConfig({ ...BASE, slidingWindow: 4 }).slidingWindow).toBe(4);
    // W ≥ maxSeqLen is allowed (it is full causal attention).
    expect(resolveConfig({ ...BASE, slidingWindow: 1000 }).slidingWindow).toBe(1000);
  });

  it('rejects anything but a positive integer or null, in one line', () => {
    for (const bad of [0, -2, 1.5, '4', Number.NaN]) {
      expectOneLineError(() => resolveConfig({ ...BASE, slidingWindow: bad as number }), /slidingWindow must be a positive integer/);
    }
  });

  it('W ≥ T gives the same logits as full causal attention', () => {
    const row = ids(12, 29);
    expect(maxDiff(uncachedLogits(model({ slidingWindow: 12 }), row), uncachedLogits(model({ slidingWindow: null }), row))).toBe(0);
    expect(maxDiff(uncachedLogits(model({ slidingWindow: 4 }), row), uncachedLogits(model({ slidingWindow: null }), row))).toBeGreaterThan(1e-3);
  });
});

describe('banded fused softmax', () => {
  const initial = getBackend();
  afterAll(() => setBackend(initial));

  for (const backend of listBackends()) {
    it(`equals softmax with the explicit band mask i − W < j ≤ i + offset, forward and backward (${backend})`, () => {
      setBackend(backend);
      // Big enough for the WASM kernel's streaming path; offsets as a cache would give them.
      for (const [tq, tk, offset, w] of [[12, 12, 0, 4], [5, 9, 4, 3], [40, 40, 0, 7], [3, 10, 7, 1]]) {
        const x = randn([2, 3, tq, tk], { generator: new Generator(tq * tk + w) });
        const m = new Uint8Array(tq * tk);
        for (let i = 0; i < tq; i++) for (let j = 0; j < tk; j++) m[i * tk + j] = j <= i + offset && j > i + offset - w ? 1 : 0;
        const mask = tensor(m, { shape: [tq, tk] });
        const g = randn([2, 3, tq, tk], { generator: new Generator(3) });
        const a = x.detach().clone();
        a.requiresGrad = true;
        const ya = scaledSoftmax(a, 0.7, true, offset, w);
        ya.backward(g);
        const b = x.detach().clone();
        b.requiresGrad = true;
        const yb = softmax(where(mask, b.mul(0.7), -Infinity), -1);
        yb.backward(g);
        expect(maxDiff(ya.toTypedArray() as Float32Array, yb.toTypedArray() as Float32Array)).toBeLessThan(1e-6);
        expect(maxDiff(a.grad!.toTypedArray() as Float32Array, b.grad!.toTypedArray() as Float32Array)).toBeLessThan(1e-6);
        // Outside the band the probabilities are exactly 0.
        const p = ya.toTypedArray() as Float32Array;
        for (let i = 0; i < p.length; i++) if (m[i % (tq * tk)] === 0) expect(p[i]).toBe(0);
      }
    });
  }

  it('passes a finite-difference gradcheck of grouped attention with a window (GQA, offset)', () => {
    const gen = new Generator(9);
    const q = randn([1, 2, 2, 6, 4], { generator: gen });
    const k = randn([1, 2, 8, 4], { generator: gen });
    const v = randn([1, 2, 8, 4], { generator: gen });
    gradcheck('groupedAttention window 3', (qq, kk, vv) => groupedAttention(qq, kk, vv, { causal: true, causalOffset: 2, window: 3 }), [q, k, v]);
  });
});

describeModelGolden('swa.json');

/** Reference for a cache's content: the same model with a plain (non-rolling) cache of every position. */
function plainCache(m: TransformerLM): KVCache {
  const c = m.config;
  return new KVCache(Array.from({ length: c.nLayers }, () => new KVCacheLayer(1, c.nKvHeads, c.maxSeqLen, c.dModel / c.nHeads, null)));
}

describe('rolling KV cache (graph path)', () => {
  it('holds min(W, maxLen) slots; token by token and in chunks it gives the uncached logits, and the ring holds exactly the last W keys', () => {
    const m = model();
    const c = m.config;
    const W = 4;
    const row = ids(c.maxSeqLen, c.vocabSize, 3);
    const full = uncachedLogits(m, row);
    const V = c.vocabSize;
    // Chunks of 1 (decode) and of several tokens that wrap the ring (prefill after a wrap, t > W).
    for (const chunks of [Array(row.length).fill(1), [3, 1, 5, 2, 6, 1, 2], [20]]) {
      const cache = m.createCache(1);
      expect(cache.layers[0].slots).toBe(W);
      expect(cache.layers[0].k.shape).toEqual([1, c.nKvHeads, W, c.dModel / c.nHeads]);
      const ref = plainCache(m);
      let at = 0;
      for (const n of chunks as number[]) {
        const chunk = tensor(Int32Array.from(row.slice(at, at + n)), { shape: [1, n] });
        const logits = noGrad(() => m.forward(chunk, null, { cache }).logits.contiguous().toTypedArray() as Float32Array);
        noGrad(() => m.forward(chunk, null, { cache: ref }));
        at += n;
        expect(maxDiff(logits, full.subarray((at - n) * V, at * V))).toBeLessThan(1e-5);
        expect(cache.length).toBe(at);
        // Element by element: slot p mod W of every layer holds position p's key and value, for the last W positions.
        for (let l = 0; l < c.nLayers; l++) {
          for (let p = Math.max(0, at - W); p < at; p++) {
            for (const which of ['k', 'v'] as const) {
              const got = cache.layers[l][which].narrow(2, p % W, 1).contiguous().toTypedArray() as Float32Array;
              const want = ref.layers[l][which].narrow(2, p, 1).contiguous().toTypedArray() as Float32Array;
              expect(maxDiff(got, want), `layer ${l} ${which} position ${p}`).toBeLessThan(1e-5);
            }
          }
        }
      }
    }
  });

  it('W ≥ maxLen keeps a plain cache (slot = position)', () => {
    const m = model({ slidingWindow: 64 });
    expect(m.createCache(1).layers[0].slots).toBe(m.config.maxSeqLen);
    expect(model({ slidingWindow: null }).createCache(1).layers[0].slots).toBe(m.config.maxSeqLen);
  });

  it('packed rows apply the window inside each document', () => {
    const m = model({ slidingWindow: 3 });
    expectPackedRowMatchesSeparateDocuments(m);
  });
});

describe('rolling KV cache (DecodeEngine)', () => {
  for (const [label, overrides] of [
    ['RoPE, GQA, W 4', {}],
    ['learned positions, LayerNorm, GELU, MHA, W 3, batch 2', { pos: 'learned', norm: 'layer', mlp: 'gelu', nKvHeads: 4, bias: true, slidingWindow: 3 }],
  ] as [string, Partial<TransformerConfigInput>][]) {
    it(`${label}: logits equal the uncached forward, and its ring equals the graph path's`, () => {
      const m = model(overrides);
      const c = m.config;
      const W = c.slidingWindow!;
      const B = label.includes('batch 2') ? 2 : 1;
      const rows = Array.from({ length: B }, (_, r) => ids(c.maxSeqLen, c.vocabSize, 7 + r));
      expect(new DecodeEngine(m, B).slots).toBe(W);
      expectEngineAndCacheFollowUncached(m, rows, [Array(c.maxSeqLen).fill(1), [5, 1, 6, 8]], (engine, graph) => {
        for (let l = 0; l < c.nLayers; l++) {
          const ring = engine.layerCache(l);
          expect(maxDiff(ring.k, graph.layers[l].k.contiguous().toTypedArray() as Float32Array)).toBeLessThan(1e-5);
          expect(maxDiff(ring.v, graph.layers[l].v.contiguous().toTypedArray() as Float32Array)).toBeLessThan(1e-5);
        }
      });
    });
  }
});

describe('generation with a window', () => {
  it('greedy tokens from the DecodeEngine and the KVCache path equal the uncached argmax, token for token', () => {
    const m = model();
    expectCachedGreedyMatchesUncached(m, ids(5, m.config.vocabSize, 11));
  });
});

describe('accounting and the nano-swa preset', () => {
  it('kvCacheBytes caps the positions at W and matches what createCache and the DecodeEngine allocate', async () => {
    const { kvCacheBytes } = await import('../../src/models/params.js');
    for (const w of [4, null, 64]) {
      const m = model({ slidingWindow: w });
      const est = kvCacheBytes(m.config);
      const cache = m.createCache(1);
      const graphBytes = cache.layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size), 0);
      const engine = new DecodeEngine(m, 1);
      let engineBytes = 0;
      for (let l = 0; l < m.config.nLayers; l++) engineBytes += engine.layerCache(l).k.byteLength + engine.layerCache(l).v.byteLength;
      expect(est.positions).toBe(Math.min(w ?? Infinity, m.config.maxSeqLen));
      expect(est.bytesPerSequence).toBe(graphBytes);
      expect(est.bytesPerSequence).toBe(engineBytes);
      expect(est.bytesPerToken).toBe(2 * m.config.nLayers * m.config.nKvHeads * (m.config.dModel / m.config.nHeads) * 4);
    }
    // A sequence shorter than the window caches all of its tokens.
    expect(kvCacheBytes({ ...BASE, slidingWindow: 8 }, 5).positions).toBe(5);
  });

  it("nano-swa is nano-trickster with a window of 128, and `params` reports its capped KV cache", async () => {
    const { getPreset } = await import('../../src/models/presets.js');
    const { describeModel, countParameters } = await import('../../src/models/params.js');
    const swa = getPreset('nano-swa').config as TransformerConfigInput;
    const base = getPreset('nano-trickster').config as TransformerConfigInput;
    expect({ ...swa, slidingWindow: undefined }).toEqual({ ...base, slidingWindow: undefined });
    expect(swa.slidingWindow).toBe(128);
    expect(countParameters(swa).total).toBe(5_180_672);
    const text = describeModel('nano-swa', swa);
    // 2 (k, v) × 6 layers × 256 floats × 4 B = 12 KiB per token; 128 positions = 1.5 MiB (full causal: 6 MiB).
    expect(text).toMatch(/KV cache per sequence: 1\.50 MiB \(12\.00 KiB per token × 128 positions, fp32, sliding window 128/);
    expect(describeModel('nano-trickster', base)).toMatch(/KV cache per sequence: 6\.00 MiB \(12\.00 KiB per token × 512 positions, fp32\)/);
  });
});

describe('per-layer windows (slidingWindow as a list)', () => {
  const perLayer = (windows: (number | null)[], overrides: Partial<TransformerConfigInput> = {}) => model({ nLayers: windows.length, slidingWindow: windows, ...overrides });

  it('validates the list in one line: one entry per layer, each a positive integer or null, null at Mamba layers', () => {
    expect(resolveConfig({ ...BASE, slidingWindow: [3, null] }).slidingWindow).toEqual([3, null]);
    expectOneLineError(() => resolveConfig({ ...BASE, slidingWindow: [3] }), /slidingWindow as a list needs one entry per layer \(nLayers 2\), got 1/);
    expectOneLineError(() => resolveConfig({ ...BASE, slidingWindow: [3, 0] }), /slidingWindow's entries must be positive integers or null/);
    expectOneLineError(() => resolveConfig({ ...BASE, pos: 'learned', attention: 'linear', slidingWindow: [null, 2] }), /attention 'linear' cannot be combined with slidingWindow/);
    expectOneLineError(() => resolveConfig({ ...BASE, mamba: {}, layerTypes: ['mamba', 'attention'], slidingWindow: [4, 4] }), /slidingWindow\[0\] must be null: layer 0 is a 'mamba' layer/);
    expect(resolveConfig({ ...BASE, mamba: {}, layerTypes: ['mamba', 'attention'], slidingWindow: [null, 4] }).slidingWindow).toEqual([null, 4]);
  });

  it('each layer gets its own window: a list of equal windows is the single window, [null, …] is full attention', () => {
    const row = ids(16, 29, 2);
    expect(maxDiff(uncachedLogits(perLayer([4, 4]), row), uncachedLogits(model({ slidingWindow: 4 }), row))).toBe(0);
    expect(maxDiff(uncachedLogits(perLayer([null, null]), row), uncachedLogits(model({ slidingWindow: null }), row))).toBe(0);
    expect(maxDiff(uncachedLogits(perLayer([4, null]), row), uncachedLogits(model({ slidingWindow: 4 }), row))).toBeGreaterThan(1e-3);
  });

  it('the graph cache and the DecodeEngine keep a ring only where there is a window, and give the uncached logits', () => {
    const m = perLayer([3, null, 5]);
    const c = m.config;
    expect(new DecodeEngine(m, 1).layerSlots).toEqual([3, c.maxSeqLen, 5]);
    expect(m.createCache(1).layers.map((l) => l.slots)).toEqual([3, c.maxSeqLen, 5]);
    expectEngineAndCacheFollowUncached(m, [ids(c.maxSeqLen, c.vocabSize, 4)], [Array(c.maxSeqLen).fill(1), [4, 1, 7, 8]]);
    expectCachedGreedyMatchesUncached(m, ids(4, c.vocabSize, 12));
  });

  it('packed rows apply each layer\'s window inside each document', () => {
    const m = perLayer([3, null, 2]);
    expectPackedRowMatchesSeparateDocuments(m);
  });

  it('kvCacheBytes sums each layer\'s ring and matches what createCache and the DecodeEngine allocate; params and export say so', async () => {
    const { kvCacheBytes, describeModel } = await import('../../src/models/params.js');
    const { hfArchitecture } = await import('../../src/interop/hf-model.js');
    const m = perLayer([3, null, 5]);
    const c = m.config;
    const est = kvCacheBytes(c);
    const perLayerToken = 2 * c.nKvHeads * (c.dModel / c.nHeads) * 4;
    expect(est.bytesPerSequence).toBe((3 + c.maxSeqLen + 5) * perLayerToken);
    expect(est.bytesPerSequence).toBe(m.createCache(1).layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size), 0));
    const engine = new DecodeEngine(m, 1);
    expect(est.bytesPerSequence).toBe([0, 1, 2].reduce((s, l) => s + engine.layerCache(l).k.byteLength + engine.layerCache(l).v.byteLength, 0));
    expect(est.positions).toBe(c.maxSeqLen);
    expect(describeModel('windows', c)).toMatch(/KV cache per sequence: .* \(up to .* per token, fp32, per-layer windows \[3,null,5\]/);
    expectOneLineError(() => hfArchitecture(c), /slidingWindow \[3,null,5\]/);
  });
});
