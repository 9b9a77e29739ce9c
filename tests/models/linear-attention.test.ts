/**
 * Causal linear attention (config.attention = 'linear', φ(x) = elu(x) + 1): the config option, the
 * parallel form and its gradients, the PyTorch golden (tests/golden/linear-attention.json from
 * tools/golden/linear_attention.py, recurrent form), the constant-size state of the graph-path
 * cache and of the DecodeEngine against uncached forwards and against Σ φ(k)vᵀ, generation, and
 * the accounting.
 */
import { describe, expect, it } from 'vitest';
import { causalLinearAttention, eluFeatureMap, LINEAR_ATTENTION_EPS } from '../../src/ops/linear-attention.js';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { TransformerLM } from '../../src/models/transformer.js';
import type { MultiHeadAttention } from '../../src/nn/attention.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { noGrad } from './imports.js';
import { randomIds, sharpened, argmax, expectCachedGreedyMatchesUncached, maxDiff, uncachedLogits, describeModelGolden } from './helpers.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const BASE: TransformerConfigInput = { vocabSize: 29, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: 20, norm: 'rms', mlp: 'swiglu', pos: 'learned', bias: false, attention: 'linear' };

function model(overrides: Partial<TransformerConfigInput> = {}): TransformerLM {
  return sharpened(new TransformerLM({ ...BASE, ...overrides }, { generator: new Generator(5) }));
}

const ids = randomIds;

const phi = (x: number): number => (x > 0 ? x + 1 : Math.exp(x));

describe('config.attention', () => {
  it("defaults to 'softmax', also for configs saved before the key existed", () => {
    expect(resolveConfig({ vocabSize: 5, dModel: 8, nLayers: 1, nHeads: 2, maxSeqLen: 8 }).attention).toBe('softmax');
    expect(resolveConfig(BASE).attention).toBe('linear');
  });

  it('rejects other kinds, RoPE and a sliding window with linear attention, in one line', () => {
    expectOneLineError(() => resolveConfig({ ...BASE, attention: 'performer' as 'linear' }), /attention must be 'softmax' or 'linear'/);
    expectOneLineError(() => resolveConfig({ ...BASE, pos: 'rope' }), /attention 'linear' does not take pos 'rope'/);
    expectOneLineError(() => resolveConfig({ ...BASE, slidingWindow: 4 }), /attention 'linear' cannot be combined with slidingWindow 4/);
  });

  it('changes the logits but not the parameters (same draws as softmax attention)', () => {
    const a = model();
    const b = model({ attention: 'softmax' });
    expect(a.parameters().map((p) => p.toArray())).toEqual(b.parameters().map((p) => p.toArray()));
    expect(maxDiff(uncachedLogits(a, ids(8, 29)), uncachedLogits(b, ids(8, 29)))).toBeGreaterThan(1e-3);
  });
});

describe('linear attention op (parallel form)', () => {
  it('φ = elu + 1 and its derivative', () => {
    const x = tensor([-2, -0.5, 0, 0.5, 3]);
    expect(eluFeatureMap(x).toArray()).toEqual(Array.from(Float32Array.from([-2, -0.5, 0, 0.5, 3].map(phi))));
    gradcheck('eluFeatureMap', (xx) => eluFeatureMap(xx), [tensor([-2, -0.5, -0.01, 0.5, 3])]);
  });

  it('equals the recurrence S_i = Σ_{j≤i} φ(k_j)v_jᵀ, z_i = Σ φ(k_j) computed directly (GQA), with and without a prior state', () => {
    const gen = new Generator(3);
    const [B, Hkv, G, T, D] = [2, 2, 2, 5, 3];
    const q = randn([B, Hkv, G, T, D], { generator: gen });
    const k = randn([B, Hkv, T, D], { generator: gen });
    const v = randn([B, Hkv, T, D], { generator: gen });
    const fq = eluFeatureMap(q);
    const fk = eluFeatureMap(k);
    const got = causalLinearAttention(fq, fk, v).toArray();
    const Q = fq.toArray();
    const K = fk.toArray();
    const Vv = v.toArray();
    let worst = 0;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < Hkv; h++) {
        for (let g = 0; g < G; g++) {
          for (let i = 0; i < T; i++) {
            const qo = (((b * Hkv + h) * G + g) * T + i) * D;
            let den = 0;
            const num = new Float64Array(D);
            for (let j = 0; j <= i; j++) {
              const ko = ((b * Hkv + h) * T + j) * D;
              let w = 0;
              for (let e = 0; e < D; e++) w += Q[qo + e] * K[ko + e];
              den += w;
              for (let e = 0; e < D; e++) num[e] += w * Vv[ko + e];
            }
            for (let e = 0; e < D; e++) worst = Math.max(worst, Math.abs(got[qo + e] - num[e] / (den + LINEAR_ATTENTION_EPS)));
          }
        }
      }
    }
    expect(worst).toBeLessThan(1e-5);
    // Split at 2: the first 2 tokens as a state, then 3 more equal the last 3 rows of the whole.
    const s = noGrad(() => fk.narrow(2, 0, 2).transpose(-2, -1).matmul(v.narrow(2, 0, 2)));
    const z = noGrad(() => fk.narrow(2, 0, 2).sum(2));
    const tail = causalLinearAttention(fq.narrow(3, 2, 3), fk.narrow(2, 2, 3), v.narrow(2, 2, 3), { state: { s, z } }).toArray();
    const whole = causalLinearAttention(fq, fk, v).narrow(3, 2, 3).contiguous().toArray();
    expect(maxDiff(tail, whole)).toBeLessThan(1e-5);
  });

  it('passes a finite-difference gradcheck (φ included, GQA, and with a packed-rows mask)', () => {
    const gen = new Generator(9);
    const q = randn([1, 2, 2, 5, 3], { generator: gen });
    const k = randn([1, 2, 5, 3], { generator: gen });
    const v = randn([1, 2, 5, 3], { generator: gen });
    gradcheck('linear attention', (qq, kk, vv) => causalLinearAttention(eluFeatureMap(qq), eluFeatureMap(kk), vv), [q, k, v]);
    // Two documents [0, 0, 1, 1, 1]: causal within each.
    const doc = [0, 0, 1, 1, 1];
    const m = new Uint8Array(25);
    for (let i = 0; i < 5; i++) for (let j = 0; j <= i; j++) m[i * 5 + j] = doc[i] === doc[j] ? 1 : 0;
    const mask = tensor(m, { shape: [5, 5], dtype: 'bool' });
    gradcheck('linear attention masked', (qq, kk, vv) => causalLinearAttention(eluFeatureMap(qq), eluFeatureMap(kk), vv, { mask }), [q, k, v]);
  });
});

describeModelGolden('linear-attention.json');

/** Σ_j φ(k_j) v_jᵀ and Σ_j φ(k_j) of layer 0 over `row`, in float64, from the layer's own projections. */
function layer0State(m: TransformerLM, row: number[]): { s: Float64Array; z: Float64Array } {
  const c = m.config;
  const D = c.dModel / c.nHeads;
  const Hkv = c.nKvHeads;
  const T = row.length;
  const { k, v } = noGrad(() => {
    let x = m.tokEmb.forward(tensor(Int32Array.from(row), { shape: [1, T] }));
    if (m.posEmb) x = m.posEmb.forward(x, 0);
    const block = m.block(0);
    const h = block.attnNorm.forward(x);
    const attn = block.attn as MultiHeadAttention;
    return { k: attn.wk.forward(h).toArray(), v: attn.wv.forward(h).toArray() };
  });
  const s = new Float64Array(Hkv * D * D);
  const z = new Float64Array(Hkv * D);
  for (let j = 0; j < T; j++) {
    for (let hk = 0; hk < Hkv; hk++) {
      for (let a = 0; a < D; a++) {
        const fk = phi(k[j * Hkv * D + hk * D + a]);
        z[hk * D + a] += fk;
        for (let e = 0; e < D; e++) s[(hk * D + a) * D + e] += fk * v[j * Hkv * D + hk * D + e];
      }
    }
  }
  return { s, z };
}

describe('packed rows', () => {
  it('documentIds keep two documents in one row apart: each part equals its own forward', () => {
    const m = model();
    const V = m.config.vocabSize;
    const a = ids(4, V, 21);
    const b = ids(6, V, 22);
    const row = tensor(Int32Array.from([...a, ...b]), { shape: [1, 10] });
    const positions = tensor(Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3, 4, 5]), { shape: [1, 10] });
    const documentIds = tensor(Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), { shape: [1, 10] });
    const packed = noGrad(() => m.forward(row, null, { positions, documentIds }).logits.contiguous().toTypedArray() as Float32Array);
    expect(maxDiff(packed.subarray(0, 4 * V), uncachedLogits(m, a))).toBeLessThan(1e-5);
    expect(maxDiff(packed.subarray(4 * V), uncachedLogits(m, b))).toBeLessThan(1e-5);
  });
});

describe('constant-size state (graph-path cache and DecodeEngine)', () => {
  it('token by token and in chunks both give the uncached logits; the state is Σ φ(k)vᵀ, z = Σ φ(k), and never grows', () => {
    const m = model();
    const c = m.config;
    const D = c.dModel / c.nHeads;
    const row = ids(c.maxSeqLen, c.vocabSize, 3);
    const full = uncachedLogits(m, row);
    const V = c.vocabSize;
    for (const chunks of [Array(row.length).fill(1) as number[], [3, 1, 5, 2, 6, 1, 2], [20]]) {
      const cache = m.createCache(1);
      const engine = new DecodeEngine(m, 1);
      expect(cache.layers[0].state!.s.shape).toEqual([1, c.nKvHeads, D, D]);
      expect(cache.layers[0].state!.z.shape).toEqual([1, c.nKvHeads, D]);
      expect(cache.layers[0].k.size).toBe(0);
      expect(engine.slots).toBe(0);
      let at = 0;
      for (const n of chunks) {
        const chunk = row.slice(at, at + n);
        const logits = noGrad(() => m.forward(tensor(Int32Array.from(chunk), { shape: [1, n] }), null, { cache }).logits.contiguous().toTypedArray() as Float32Array);
        const last = engine.forward(Int32Array.from(chunk), n);
        at += n;
        expect(maxDiff(logits, full.subarray((at - n) * V, at * V))).toBeLessThan(1e-5);
        expect(maxDiff(last, full.subarray((at - 1) * V, at * V))).toBeLessThan(1e-5);
        expect(cache.length).toBe(at);
        const want = layer0State(m, row.slice(0, at));
        const scale = Math.max(...want.s.map(Math.abs));
        expect(maxDiff(cache.layers[0].state!.s.toArray(), want.s) / scale).toBeLessThan(1e-5);
        expect(maxDiff(engine.layerState(0).s, want.s) / scale).toBeLessThan(1e-5);
        expect(maxDiff(cache.layers[0].state!.z.toArray(), want.z) / Math.max(...want.z)).toBeLessThan(1e-5);
        expect(maxDiff(engine.layerState(0).z, want.z) / Math.max(...want.z)).toBeLessThan(1e-5);
        for (let l = 1; l < c.nLayers; l++) {
          expect(maxDiff(engine.layerState(l).s, cache.layers[l].state!.s.toArray())).toBeLessThan(1e-4);
        }
      }
      // reset zeroes the state and starts over.
      cache.reset();
      engine.reset();
      expect(cache.layers[1].state!.z.toArray().every((x) => x === 0)).toBe(true);
      expect(engine.layerState(1).z.every((x) => x === 0)).toBe(true);
    }
  });

  it('DecodeEngine with two rows (prefill, then one token each) matches each row uncached', () => {
    const m = model({ nKvHeads: 1, normPlacement: 'post', bias: true, mlp: 'gelu', norm: 'layer' });
    const c = m.config;
    const V = c.vocabSize;
    const rows = [ids(12, V, 4), ids(12, V, 5)];
    const full = rows.map((r) => uncachedLogits(m, r));
    const engine = new DecodeEngine(m, 2);
    let at = 0;
    for (const n of [5, 1, 1, 3, 2]) {
      const flat = Int32Array.from([...rows[0].slice(at, at + n), ...rows[1].slice(at, at + n)]);
      const logits = engine.forward(flat, n);
      at += n;
      for (let r = 0; r < 2; r++) expect(maxDiff(logits.subarray(r * V, (r + 1) * V), full[r].subarray((at - 1) * V, at * V))).toBeLessThan(1e-5);
    }
  });

  it('a softmax cache does not fit linear attention (and back), in one line', () => {
    const lin = model();
    const soft = model({ attention: 'softmax' });
    const x = tensor(Int32Array.from([1, 2]), { shape: [1, 2] });
    expectOneLineError(() => noGrad(() => lin.forward(x, null, { cache: soft.createCache(1) })), /a softmax cache does not fit linear attention/);
    expectOneLineError(() => noGrad(() => soft.forward(x, null, { cache: lin.createCache(1) })), /a linear cache does not fit softmax attention/);
  });
});

describe('generation with linear attention', () => {
  it('greedy tokens from the DecodeEngine and the KVCache path equal the uncached argmax, token for token', () => {
    const m = model();
    expectCachedGreedyMatchesUncached(m, ids(5, m.config.vocabSize, 11));
  });
});

describe('accounting and the nano-linear preset', () => {
  it('kvCacheBytes reports a constant state that matches what createCache and the DecodeEngine allocate', async () => {
    const { kvCacheBytes } = await import('../../src/models/params.js');
    const m = model();
    const c = m.config;
    const est = kvCacheBytes(c);
    const D = c.dModel / c.nHeads;
    const cache = m.createCache(1);
    const graphBytes = cache.layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size + l.state!.s.size + l.state!.z.size), 0);
    const engine = new DecodeEngine(m, 1);
    let engineBytes = 0;
    for (let l = 0; l < c.nLayers; l++) engineBytes += engine.layerState(l).s.byteLength + engine.layerState(l).z.byteLength + engine.layerCache(l).k.byteLength;
    expect(est.stateBytes).toBe(c.nLayers * c.nKvHeads * (D * D + D) * 4);
    expect(est.bytesPerSequence).toBe(graphBytes);
    expect(est.bytesPerSequence).toBe(engineBytes);
    expect(kvCacheBytes(c, 3)).toEqual(est);
    expect(est.positions).toBe(0);
    expect(kvCacheBytes({ ...BASE, attention: 'softmax' }).stateBytes).toBe(0);
  });

  it('nano-linear is nano-trickster with linear attention and learned positions; `params` reports its state', async () => {
    const { getPreset } = await import('../../src/models/presets.js');
    const { describeModel, countParameters } = await import('../../src/models/params.js');
    const lin = getPreset('nano-linear').config as TransformerConfigInput;
    const base = getPreset('nano-trickster').config as TransformerConfigInput;
    expect({ ...lin, attention: undefined, pos: undefined }).toEqual({ ...base, attention: undefined, pos: undefined });
    expect(lin.attention).toBe('linear');
    expect(countParameters(lin).total).toBe(5_180_672 + 512 * 256);
    // 6 layers × 8 kv heads × (32² + 32) floats × 4 B = 202,752 B = 198 KiB, for any length.
    expect(describeModel('nano-linear', lin)).toMatch(/Linear-attention state per sequence: 198\.00 KiB \(6 layers × 8 kv heads × \(32² \+ 32\) floats, fp32, any length\)/);
  });
});
