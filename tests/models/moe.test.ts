/**
 * Mixture of experts (config.moe, nn/moe.ts): the PyTorch golden (tests/golden/moe.json from
 * tools/golden/moe.py, a dense reference), one expert top-1 against the dense SwiGLU, the auxiliary
 * losses against their formulas on hand-made router outputs, the dispatch, gradchecks, the
 * decode engine and the KV-cache path against uncached forwards, and the utilisation metrics.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { countParameters } from '../../src/models/params.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { SwiGLU } from '../../src/nn/feedforward.js';
import { MixtureOfExperts, routerMetrics, topKIndices } from '../../src/nn/moe.js';
import { cat, indexAdd } from '../../src/ops/indexing.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { noGrad } from './imports.js';
import { describeModelGolden, expectCachedGreedyMatchesUncached, expectEngineAndCacheFollowUncached, fromGolden, goldenPath, maxDiff, randomIds, sharpened, stateFromGolden, uncachedLogits } from './helpers.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const BASE: TransformerConfigInput = { vocabSize: 29, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: 20, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false };

function model(overrides: Partial<TransformerConfigInput> = {}): TransformerLM {
  return new TransformerLM({ ...BASE, moe: { nExperts: 4, topK: 2 }, ...overrides }, { generator: new Generator(5) });
}

describe('config.moe', () => {
  it('is null by default (also for configs saved before the key existed) and fills its defaults', () => {
    expect(resolveConfig(BASE).moe).toBeNull();
    expect(resolveConfig({ ...BASE, moe: { nExperts: 8, topK: 2 } }).moe).toEqual({
      nExperts: 8,
      topK: 2,
      dExpert: 12,
      nSharedExperts: 0,
      router: 'softmax',
      normalizeTopK: true,
      auxLossWeight: 0.01,
      zLossWeight: 1e-3,
    });
    expect(resolveConfig({ ...BASE, moe: { nExperts: 8, topK: 1 } }).moe?.normalizeTopK).toBe(false);
  });

  it('rejects bad values in one line', () => {
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 2, topK: 3 } }), /moe.topK 3 exceeds moe.nExperts 2/);
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 0, topK: 1 } }), /moe.nExperts must be an integer ≥ 1/);
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 4, topK: 1, router: 'relu' as 'softmax' } }), /moe.router must be 'softmax' or 'sigmoid'/);
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 4, topK: 1, auxLossWeight: -1 } }), /moe.auxLossWeight must be a non-negative number/);
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 4, topK: 1, capacity: 2 } as never }), /unknown moe key 'capacity'/);
    expectOneLineError(() => resolveConfig({ ...BASE, moe: { nExperts: 4, topK: 1 }, mup: { baseWidth: 8 } }), /moe cannot be combined with mup/);
  });
});

describeModelGolden('moe.json');

describe('auxiliary losses', () => {
  const golden = JSON.parse(readFileSync(goldenPath('moe.json'), 'utf8')) as {
    cases: { name: string; config: TransformerConfigInput; params: Record<string, never>; ids: never; targets: never; crossEntropy: number; aux: number[]; z: number[] }[];
  };
  for (const c of golden.cases) {
    it(`${c.name}: each layer's load-balancing and z loss equal the reference's; eval mode reports the cross-entropy alone`, () => {
      const m = new TransformerLM(c.config);
      m.loadStateDict(stateFromGolden(c.params));
      m.forward(fromGolden(c.ids), fromGolden(c.targets));
      m.moeLayers().forEach((layer, i) => {
        expect(Math.abs(layer.auxLoss!.item() - c.aux[i]) / c.aux[i]).toBeLessThan(1e-5);
        expect(Math.abs(layer.zLoss!.item() - c.z[i]) / c.z[i]).toBeLessThan(1e-5);
      });
      m.eval();
      const ce = noGrad(() => m.forward(fromGolden(c.ids), fromGolden(c.targets)).loss!.item());
      expect(Math.abs(ce - c.crossEntropy) / c.crossEntropy).toBeLessThan(1e-5);
    });
  }

  it('equal their formulas on hand-made router outputs', () => {
    // x = the identity, so the router's logits are exactly the rows of its weight's transpose.
    const E = 4;
    const logits = [
      [2.0, 1.0, 0.5, -1.0],
      [0.1, 3.0, 0.2, 0.0],
      [1.5, 1.4, -2.0, 0.3],
      [-0.5, 0.0, 2.5, 2.4],
    ];
    for (const [router, k] of [['softmax', 2], ['sigmoid', 2], ['softmax', 1]] as const) {
      const moe = new MixtureOfExperts(4, { nExperts: E, topK: k, dExpert: 3, router, generator: new Generator(1) });
      const w = new Float32Array(E * 4);
      for (let t = 0; t < 4; t++) for (let e = 0; e < E; e++) w[e * 4 + t] = logits[t][e];
      moe.router.weight.storage.set(w);
      const eye = tensor(Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)), { shape: [4, 4] });
      noGrad(() => moe.forward(eye));
      // The formulas, by hand, in float64.
      const f = new Array<number>(E).fill(0);
      const P = new Array<number>(E).fill(0);
      let z = 0;
      for (const row of logits) {
        const max = Math.max(...row);
        const sumExp = row.reduce((a, v) => a + Math.exp(v - max), 0);
        const lse = max + Math.log(sumExp);
        z += (lse * lse) / 4;
        const scores = router === 'softmax' ? row.map((v) => Math.exp(v - max) / sumExp) : row.map((v) => 1 / (1 + Math.exp(-v)));
        const total = scores.reduce((a, b) => a + b, 0);
        scores.forEach((s, e) => (P[e] += s / total / 4));
        const top = scores.map((s, e) => [s, e]).sort((a, b) => b[0] - a[0]).slice(0, k);
        for (const [, e] of top) f[e] += 1 / (4 * k);
      }
      const aux = E * f.reduce((a, fe, e) => a + fe * P[e], 0);
      expect(moe.auxLoss!.item()).toBeCloseTo(aux, 6);
      expect(moe.zLoss!.item()).toBeCloseTo(z, 5);
      expect(moe.routerStats().counts).toEqual(f.map((fe) => Math.round(fe * 4 * k)));
    }
  });

  it('are 1 for perfectly balanced routing (aux) and part of the training objective with their weights', () => {
    const m = model({ moe: { nExperts: 4, topK: 2, auxLossWeight: 0.5, zLossWeight: 0.25 } });
    const x = tensor(Int32Array.from(randomIds(24, 29)), { shape: [2, 12] });
    const y = tensor(Int32Array.from(randomIds(24, 29, 2)), { shape: [2, 12] });
    const total = m.forward(x, y).loss!.item();
    const layers = m.moeLayers();
    const aux = layers.reduce((a, l) => a + l.auxLoss!.item(), 0) / layers.length;
    const z = layers.reduce((a, l) => a + l.zLoss!.item(), 0) / layers.length;
    m.eval();
    const ce = noGrad(() => m.forward(x, y).loss!.item());
    expect(total).toBeCloseTo(ce + 0.5 * aux + 0.25 * z, 5);
    // Uniform probabilities and an even split give E · Σ (1/E)(1/E) = 1.
    const uniform = new MixtureOfExperts(4, { nExperts: 4, topK: 1, dExpert: 2, generator: new Generator(2) });
    uniform.router.weight.storage.fill(0);
    noGrad(() => uniform.forward(randn([8, 4], { generator: new Generator(3) })));
    expect(uniform.auxLoss!.item()).toBeCloseTo(1, 6);
  });
});

describe('MixtureOfExperts', () => {
  it('with one expert and top-1 equals the dense SwiGLU exactly, forward and backward', () => {
    const dense = new TransformerLM({ ...BASE }, { generator: new Generator(5) });
    const moe = new TransformerLM({ ...BASE, moe: { nExperts: 1, topK: 1, auxLossWeight: 0, zLossWeight: 0 } }, { generator: new Generator(5) });
    const state = dense.stateDict();
    const mapped: Record<string, (typeof state)[string]> = {};
    for (const [name, p] of Object.entries(state)) mapped[name.replace(/\.ffn\./, '.ffn.experts.0.')] = p;
    for (const [name, p] of moe.namedParameters()) if (name.endsWith('router.weight')) mapped[name] = p;
    moe.loadStateDict(mapped);
    const x = tensor(Int32Array.from(randomIds(24, 29)), { shape: [2, 12] });
    const y = tensor(Int32Array.from(randomIds(24, 29, 3)), { shape: [2, 12] });
    const a = dense.forward(x, y);
    const b = moe.forward(x, y);
    expect(b.logits.toTypedArray()).toEqual(a.logits.toTypedArray());
    a.loss!.backward();
    b.loss!.backward();
    const gradsB = Object.fromEntries(moe.namedParameters());
    for (const [name, p] of dense.namedParameters()) expect(gradsB[name.replace(/\.ffn\./, '.ffn.experts.0.')].grad!.toTypedArray(), name).toEqual(p.grad!.toTypedArray());
    // One expert: every score is exactly 1, so the router learns nothing from the LM loss.
    expect(Math.max(...(gradsB['layers.0.ffn.router.weight'].grad!.toTypedArray() as Float32Array).map(Math.abs))).toBe(0);
    expect(moe.block(0).ffn).toBeInstanceOf(MixtureOfExperts);
    expect(dense.block(0).ffn).toBeInstanceOf(SwiGLU);
  });

  it('dispatches each token to its top-k experts: the counts are those of the router scores', () => {
    const moe = new MixtureOfExperts(6, { nExperts: 5, topK: 2, dExpert: 4, generator: new Generator(4) });
    const x = randn([3, 7, 6], { generator: new Generator(8) });
    const out = noGrad(() => moe.forward(x));
    expect(out.shape).toEqual([3, 7, 6]);
    const scores = noGrad(() => moe.router.forward(x.reshape([21, 6])).softmax(-1)).toTypedArray() as Float32Array;
    const counts = new Array<number>(5).fill(0);
    for (let t = 0; t < 21; t++) {
      const row = Array.from(scores.subarray(t * 5, t * 5 + 5));
      const order = row.map((s, e) => [s, e]).sort((p, q) => q[0] - p[0]);
      counts[order[0][1]]++;
      counts[order[1][1]]++;
    }
    expect(moe.routerStats().counts).toEqual(counts);
    expect(moe.routerStats().tokens).toBe(21);
    // Token by token through the experts by hand gives the same output.
    const flat = x.reshape([21, 6]);
    const want = new Float32Array(21 * 6);
    noGrad(() => {
      for (let t = 0; t < 21; t++) {
        const row = Array.from(scores.subarray(t * 5, t * 5 + 5));
        const top = row.map((s, e) => [s, e]).sort((p, q) => q[0] - p[0]).slice(0, 2);
        const norm = top[0][0] + top[1][0];
        for (const [s, e] of top) {
          const y = moe.experts.at(e).forward(flat.narrow(0, t, 1)).toTypedArray();
          for (let j = 0; j < 6; j++) want[t * 6 + j] += (s / norm) * y[j];
        }
      }
    });
    expect(maxDiff(out.toTypedArray(), want)).toBeLessThan(1e-6);
  });

  it('passes finite-difference gradchecks: input, router and expert weights, through the output and both auxiliary losses', () => {
    for (const [router, shared] of [['softmax', 0], ['sigmoid', 1]] as const) {
      const moe = new MixtureOfExperts(5, { nExperts: 4, topK: 2, dExpert: 3, router, nSharedExperts: shared, generator: new Generator(11) });
      const x = randn([6, 5], { generator: new Generator(12) });
      const e0 = moe.experts.at(0) as SwiGLU;
      const weights = [moe.router.weight, e0.w1.weight, e0.w3.weight, e0.w2.weight, ...(moe.shared ? [(moe.shared as SwiGLU).w1.weight] : [])];
      gradcheck(
        `moe ${router}${shared ? ' shared' : ''}`,
        (xi, rw, w1, w3, w2, sw1) => {
          // The leaves become the module's weights, so the gradient reaches them.
          moe.router.weight = rw;
          e0.w1.weight = w1;
          e0.w3.weight = w3;
          e0.w2.weight = w2;
          if (moe.shared) (moe.shared as SwiGLU).w1.weight = sw1;
          const y = moe.forward(xi);
          return cat([y.reshape([-1]), moe.auxLoss!.reshape([1]), moe.zLoss!.reshape([1])], 0);
        },
        [x, ...weights],
      );
    }
  });

  it('topKIndices picks the k largest in descending order, the lower index first on ties', () => {
    const out = new Int32Array(3);
    topKIndices(Float32Array.of(0.1, 0.5, 0.5, 0.9, 0.2), 0, 5, 3, out, 0);
    expect(Array.from(out)).toEqual([3, 1, 2]);
    topKIndices(Float32Array.of(9, 1, 1, 1, 1), 1, 4, 2, out, 1);
    expect(Array.from(out.subarray(1))).toEqual([0, 1]);
  });

  it('indexAdd adds rows at repeated indices, with gradients for both inputs', () => {
    const base = randn([4, 3], { generator: new Generator(1) });
    const src = randn([5, 3], { generator: new Generator(2) });
    const index = tensor(Int32Array.of(2, 0, 2, 3, 0), { shape: [5] });
    const out = indexAdd(base, 0, index, src).toTypedArray();
    const b = base.toTypedArray();
    const s = src.toTypedArray();
    const want = Float32Array.from(b);
    [2, 0, 2, 3, 0].forEach((r, i) => {
      for (let j = 0; j < 3; j++) want[r * 3 + j] += s[i * 3 + j];
    });
    expect(maxDiff(out, want)).toBeLessThan(1e-6);
    gradcheck('indexAdd', (x, v) => indexAdd(x, 0, index, v), [base, src]);
    expectOneLineError(() => indexAdd(base, 0, index, randn([4, 3])), /indexAdd: source must have shape \[5, 3\]/);
    expectOneLineError(() => indexAdd(base, 0, tensor(Int32Array.of(4), { shape: [1] }), randn([1, 3])), /index 4 is out of bounds for size 4/);
  });
});

describe('generation', () => {
  it('the decode engine and the KV-cache path give the uncached logits within 1e-5, prefill and step by step', () => {
    for (const moe of [{ nExperts: 4, topK: 2 }, { nExperts: 3, topK: 1, nSharedExperts: 1, router: 'sigmoid' as const }]) {
      const m = sharpened(model({ moe }));
      expectEngineAndCacheFollowUncached(m, [randomIds(14, 29, 4)], [[5, 1, 1, 4, 3], [14]]);
    }
  });

  it('greedy tokens of the engine and the KV-cache path equal an uncached argmax loop', () => {
    expectCachedGreedyMatchesUncached(sharpened(model()), randomIds(4, 29, 9));
    expectCachedGreedyMatchesUncached(sharpened(model({ moe: { nExperts: 5, topK: 3, nSharedExperts: 2, router: 'sigmoid' } })), randomIds(3, 29, 10));
  });

  it('batched rows equal their batch-1 runs on the engine', () => {
    const m = sharpened(model());
    const rows = [randomIds(6, 29, 1), randomIds(6, 29, 2)];
    const both = new DecodeEngine(m, 2).forward(Int32Array.from([...rows[0], ...rows[1]]), 6).slice();
    rows.forEach((row, r) => expect(maxDiff(both.subarray(r * 29, (r + 1) * 29), new DecodeEngine(m, 1).forward(Int32Array.from(row), 6))).toBeLessThan(1e-5));
  });
});

describe('utilisation', () => {
  it('routerMetrics reports each expert\'s share, the load range and the mean losses; the counts reset', () => {
    const m = model();
    noGrad(() => m.forward(tensor(Int32Array.from(randomIds(40, 29)), { shape: [2, 20] })));
    const metrics = routerMetrics(m.moeLayers());
    for (let l = 0; l < 2; l++) {
      let sum = 0;
      for (let e = 0; e < 4; e++) sum += metrics[`moe.layer${l}.expert${e}`];
      expect(sum).toBeCloseTo(1, 6);
    }
    expect(metrics['moe.maxLoad']).toBeGreaterThanOrEqual(1);
    expect(metrics['moe.minLoad']).toBeLessThanOrEqual(1);
    expect(metrics['moe.auxLoss']).toBeGreaterThan(0);
    for (const layer of m.moeLayers()) layer.resetRouterStats();
    expect(m.moeLayers()[0].routerStats()).toEqual({ counts: [0, 0, 0, 0], tokens: 0, auxLoss: 0, zLoss: 0 });
  });

  it('nano-moe allocates exactly the parameters `tensorlm params` prints, and its KV cache is the dense model\'s', async () => {
    const { presetConfig } = await import('../../src/models/presets.js');
    const { kvCacheBytes } = await import('../../src/models/params.js');
    const config = presetConfig('nano-moe');
    const m = new TransformerLM(config);
    expect(m.numParameters()).toBe(15_809_792);
    expect(countParameters(config)).toMatchObject({ total: 15_809_792, active: 5_192_960 });
    expect(kvCacheBytes(config).bytesPerSequence).toBe(m.createCache(1).layers.reduce((s, l) => s + 4 * (l.k.size + l.v.size), 0));
    expect(kvCacheBytes(config)).toEqual(kvCacheBytes(presetConfig('nano-trickster')));
  });

  it('counts parameters and active parameters exactly', () => {
    for (const moe of [{ nExperts: 4, topK: 2 }, { nExperts: 3, topK: 1, nSharedExperts: 2, dExpert: 5 }]) {
      for (const mlp of ['swiglu', 'gelu'] as const) {
        const m = model({ moe, mlp, bias: mlp === 'gelu', norm: mlp === 'gelu' ? 'layer' : 'rms' });
        const allocated = m.parameters().reduce((a, p) => a + p.size, 0);
        const p = countParameters(m.config);
        expect(p.total).toBe(allocated);
        // Active: everything except the experts a token is not routed to.
        const cfg = m.config.moe!;
        const expertSize = m.moeLayers()[0].experts.at(0).parameters().reduce((a, q) => a + q.size, 0);
        expect(p.active).toBe(allocated - m.config.nLayers * (cfg.nExperts - cfg.topK) * expertSize);
      }
    }
  });
});
