/**
 * Mamba (selective state-space) layers (config.mamba, config.layerTypes; nn/mamba.ts): the config
 * options, the scan, convolution and softplus ops against finite differences, the PyTorch golden
 * (tests/golden/mamba.json from tools/golden/mamba.py, a sequential scan), the initialisation, the
 * recurrent state of the graph-path cache against uncached forwards and a float64 recomputation,
 * generation, and the accounting.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { layerKinds, resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { decodeEngineUnsupported } from '../../src/models/decode.js';
import { countParameters, describeModel, kvCacheBytes } from '../../src/models/params.js';
import { getPreset } from '../../src/models/presets.js';
import { attentionMaps } from '../../src/models/inspect.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { hfArchitecture } from '../../src/interop/hf-model.js';
import { MambaBlock, MambaCache, type MambaMixer } from '../../src/nn/mamba.js';
import { causalConv1d, selectiveScan, softplus } from '../../src/ops/selective-scan.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { noGrad } from './imports.js';
import { describeModelGolden, expectCachedGreedyMatchesUncached, fromGolden, goldenPath, maxDiff, randomIds, sharpened, stateFromGolden, uncachedLogits, type ModelCase } from './helpers.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const BASE: TransformerConfigInput = { vocabSize: 29, dModel: 16, nLayers: 2, nHeads: 4, dFF: 24, maxSeqLen: 20, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, mamba: { dState: 4, dConv: 3, expand: 2, dtRank: 2 } };

function model(overrides: Partial<TransformerConfigInput> = {}): TransformerLM {
  return sharpened(new TransformerLM({ ...BASE, ...overrides }, { generator: new Generator(5) }));
}

describe('config.mamba and config.layerTypes', () => {
  it('default to null (configs saved before the keys existed load as before); mamba {} takes the default sizes', () => {
    const old = resolveConfig({ vocabSize: 5, dModel: 8, nLayers: 2, nHeads: 2, maxSeqLen: 8 });
    expect(old.mamba).toBeNull();
    expect(old.layerTypes).toBeNull();
    expect(layerKinds(old)).toEqual(['attention', 'attention']);
    const c = resolveConfig({ vocabSize: 5, dModel: 40, nLayers: 2, nHeads: 2, maxSeqLen: 8, mamba: {} });
    expect(c.mamba).toEqual({ dState: 16, dConv: 4, expand: 2, dtRank: 3 });
    expect(layerKinds(c)).toEqual(['mamba', 'mamba']);
    expect(layerKinds(resolveConfig({ ...BASE, layerTypes: ['attention', 'mamba'] }))).toEqual(['attention', 'mamba']);
  });

  it('rejects a wrong length, unknown kinds, mamba layers without `mamba`, post-norm and bad sizes, in one line', () => {
    expectOneLineError(() => resolveConfig({ ...BASE, layerTypes: ['mamba'] }), /layerTypes has 1 entries, expected nLayers = 2/);
    expectOneLineError(() => resolveConfig({ ...BASE, layerTypes: ['mamba', 'rwkv' as 'mamba'] }), /layerTypes\[1\] must be 'attention' or 'mamba', got 'rwkv'/);
    expectOneLineError(() => resolveConfig({ ...BASE, mamba: null, layerTypes: ['mamba', 'attention'] }), /layerTypes has 'mamba' layers but mamba is null/);
    expectOneLineError(() => resolveConfig({ ...BASE, normPlacement: 'post' }), /'mamba' layers are pre-norm only/);
    expectOneLineError(() => resolveConfig({ ...BASE, mamba: { dState: 0 } }), /mamba\.dState must be a positive integer, got 0/);
    expectOneLineError(() => resolveConfig({ ...BASE, mamba: { dStates: 4 } as never }), /unknown mamba key 'dStates'/);
    // Post-norm stays fine when every layer is attention.
    expect(resolveConfig({ ...BASE, normPlacement: 'post', layerTypes: ['attention', 'attention'] }).normPlacement).toBe('post');
  });

  it('packed rows, the decode engine and HF/GGUF export refuse Mamba layers in one line', () => {
    const m = model();
    const x = tensor(Int32Array.from([1, 2, 3]), { shape: [1, 3] });
    expectOneLineError(() => m.forward(x, null, { documentIds: tensor(Int32Array.from([0, 0, 1]), { shape: [1, 3] }) }), /packed rows \(documentIds\) are not supported with 'mamba' layers/);
    expect(decodeEngineUnsupported(m.config)).toMatch(/'mamba' layers are not implemented in the decode engine/);
    expect(decodeEngineUnsupported(resolveConfig({ ...BASE, layerTypes: ['attention', 'attention'] }))).toBeNull();
    expectOneLineError(() => hfArchitecture(m.config), /'mamba' layers \(neither has a selective state-space layer/);
    expectOneLineError(() => attentionMaps(m, [1, 2]), /attentionMaps: the model has 'mamba' layers/);
  });
});

describe('ops: selectiveScan, causalConv1d, softplus', () => {
  const gen = new Generator(3);
  const [B, L, D, N] = [2, 5, 3, 4];
  const x = randn([B, L, D], { generator: gen });
  const delta = softplus(randn([B, L, D], { generator: gen })).detach();
  const A = randn([D, N], { generator: gen }).exp().neg().detach();
  const Bm = randn([B, L, N], { generator: gen });
  const C = randn([B, L, N], { generator: gen });
  const dSkip = randn([D], { generator: gen });
  const h0 = randn([B, D, N], { generator: gen });

  it('selectiveScan passes a finite-difference gradcheck of every input, the initial state included', () => {
    gradcheck('selectiveScan', (...t: Tensor[]) => selectiveScan(t[0], t[1], t[2], t[3], t[4], t[5], { initialState: t[6] }).y, [x, delta, A, Bm, C, dSkip, h0], { rtol: 3e-3, atol: 1e-3 });
    gradcheck('selectiveScan (zero state)', (...t: Tensor[]) => selectiveScan(t[0], t[1], t[2], t[3], t[4], t[5]).y, [x, delta, A, Bm, C, dSkip], { rtol: 3e-3, atol: 1e-3 });
  });

  it('selectiveScan in two chunks (the final state carried) equals one scan', () => {
    const whole = selectiveScan(x, delta, A, Bm, C, dSkip, { initialState: h0 });
    const first = selectiveScan(x.narrow(1, 0, 2), delta.narrow(1, 0, 2), A, Bm.narrow(1, 0, 2), C.narrow(1, 0, 2), dSkip, { initialState: h0 });
    const second = selectiveScan(x.narrow(1, 2, 3), delta.narrow(1, 2, 3), A, Bm.narrow(1, 2, 3), C.narrow(1, 2, 3), dSkip, { initialState: first.finalState });
    expect(maxDiff(whole.y.narrow(1, 2, 3).contiguous().toArray(), second.y.toArray())).toBeLessThan(1e-6);
    expect(maxDiff(whole.finalState.toArray(), second.finalState.toArray())).toBeLessThan(1e-6);
  });

  it('causalConv1d passes a gradcheck (x, weight, bias) and equals the direct sum, with and without a state', () => {
    const w = randn([D, 3], { generator: gen });
    const bias = randn([D], { generator: gen });
    gradcheck('causalConv1d', (xx, ww, bb) => causalConv1d(xx, ww, bb), [x, w, bias], { rtol: 1e-3, atol: 1e-3 });
    gradcheck('causalConv1d kernel 1, no bias', (xx, ww) => causalConv1d(xx, ww, null), [x, randn([D, 1], { generator: gen })]);
    const state = randn([B, D, 2], { generator: gen });
    const y = causalConv1d(x, w, bias, { state }).toArray();
    const xs = x.toArray();
    const ws = w.toArray();
    const st = state.toArray();
    const bs = bias.toArray();
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < L; t++) {
        for (let d = 0; d < D; d++) {
          let want = bs[d];
          for (let k = 0; k < 3; k++) {
            const s = t - 2 + k;
            want += ws[d * 3 + k] * (s >= 0 ? xs[(b * L + s) * D + d] : st[(b * D + d) * 2 + 2 + s]);
          }
          expect(Math.abs(y[(b * L + t) * D + d] - want)).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('softplus passes a gradcheck and switches to the identity above 20, like torch', () => {
    gradcheck('softplus', (t) => softplus(t), [randn([7], { generator: gen }).mul(3)]);
    expect(softplus(tensor([25, -30, 0])).toArray()).toEqual([25, Math.fround(Math.log1p(Math.exp(-30))), Math.fround(Math.log(2))]);
  });

  it('bad shapes give one-line errors naming the argument', () => {
    expectOneLineError(() => selectiveScan(x, delta, A, Bm, C.narrow(2, 0, 3), dSkip), /selectiveScan: C must be float32 \[B, L, N\] = \[2, 5, 4\], got float32 \[2, 5, 3\]/);
    expectOneLineError(() => causalConv1d(x, randn([4, 3]), null), /causalConv1d: weight must be \[Din, dConv\] with Din = 3, got \[4, 3\]/);
  });
});

describeModelGolden('mamba.json');

describe('PyTorch golden, each Mamba gradient on its own scale', () => {
  // describeModelGolden floors every gradient at a tenth of the model's largest, which would hide a
  // wrong aLog gradient (Δ ≈ 1e−2 makes it small); here each tensor is judged against itself.
  const golden = JSON.parse(readFileSync(goldenPath('mamba.json'), 'utf8')) as { cases: (ModelCase & { config: TransformerConfigInput })[] };
  for (const c of golden.cases) {
    it(`${c.name}: every layers.*.mixer.* and Mamba norm gradient within 1e-5 of its own largest value`, () => {
      const m = new TransformerLM(c.config);
      m.loadStateDict(stateFromGolden(c.params));
      m.forward(fromGolden(c.ids), fromGolden(c.targets)).loss!.backward();
      const params = Object.fromEntries(m.namedParameters());
      const names = Object.keys(c.grads).filter((n) => n.includes('.mixer.') || /^layers\.\d+\.norm\./.test(n));
      expect(names.length).toBeGreaterThan(8);
      for (const name of names) {
        const want = c.grads[name].data;
        expect(maxDiff(params[name].grad!.contiguous().toTypedArray(), want) / Math.max(...want.map(Math.abs)), name).toBeLessThan(1e-5);
      }
    });
  }
});

describe('initialisation', () => {
  it('keeps the paper’s SSM init through TransformerLM’s GPT-2 init: A = −(n + 1), D = 1, Δ in [1e−3, 1e−1], dtProj weight within ±dtRank^−½; outProj is a residual projection', () => {
    const m = new TransformerLM({ ...BASE, nLayers: 4, dModel: 32, mamba: {} }, { generator: new Generator(1) });
    const mixer = (m.layers.at(0) as unknown as MambaBlock).mixer;
    const N = mixer.dState;
    const aLog = mixer.aLog.toArray();
    for (let i = 0; i < aLog.length; i++) expect(aLog[i]).toBeCloseTo(Math.log((i % N) + 1), 6);
    expect(mixer.dSkip.toArray().every((v) => v === 1)).toBe(true);
    for (const b of mixer.dtProj.bias!.toArray()) {
      const dt = Math.log1p(Math.exp(b));
      expect(dt).toBeGreaterThanOrEqual(1e-3 * (1 - 1e-5));
      expect(dt).toBeLessThanOrEqual(1e-1 * (1 + 1e-5));
    }
    const bound = mixer.dtRank ** -0.5;
    expect(mixer.dtProj.weight.toArray().every((v) => Math.abs(v) <= bound)).toBe(true);
    // outProj ~ N(0, (0.02/√(2·nLayers))²), inProj ~ N(0, 0.02²).
    const std = (t: Tensor): number => Math.sqrt(t.toArray().reduce((s, v) => s + v * v, 0) / t.size);
    expect(std(mixer.outProj.weight)).toBeCloseTo(0.02 / Math.sqrt(8), 3);
    expect(std(mixer.inProj.weight)).toBeCloseTo(0.02, 3);
  });
});

/** A Mamba mixer's conv and SSM states after the inputs u [L, dModel] (row 0), recomputed in float64 from its parameters. */
function float64States(mixer: MambaMixer, u: Float32Array, L: number): { conv: number[]; ssm: number[] } {
  const { dModel: dm, dInner: din, dState: N, dConv: K, dtRank: R } = mixer;
  const W = (t: Tensor): number[] => Array.from(t.toArray());
  const inW = W(mixer.inProj.weight);
  const inB = mixer.inProj.bias ? W(mixer.inProj.bias) : null;
  const cw = W(mixer.conv.weight);
  const cb = W(mixer.conv.bias);
  const xw = W(mixer.xProj.weight);
  const dw = W(mixer.dtProj.weight);
  const db = W(mixer.dtProj.bias!);
  const aLog = W(mixer.aLog);
  const x: number[][] = [];
  for (let t = 0; t < L; t++) {
    x.push(Array.from({ length: din }, (_, o) => {
      let s = inB ? inB[o] : 0;
      for (let i = 0; i < dm; i++) s += inW[o * dm + i] * u[t * dm + i];
      return s;
    }));
  }
  const silu = (v: number): number => v / (1 + Math.exp(-v));
  const h = new Float64Array(din * N);
  for (let t = 0; t < L; t++) {
    const xc = Array.from({ length: din }, (_, d) => {
      let s = cb[d];
      for (let k = 0; k < K; k++) if (t - (K - 1) + k >= 0) s += cw[d * K + k] * x[t - (K - 1) + k][d];
      return silu(s);
    });
    const dbc = Array.from({ length: R + 2 * N }, (_, o) => xc.reduce((s, v, i) => s + xw[o * din + i] * v, 0));
    for (let d = 0; d < din; d++) {
      let pre = db[d];
      for (let r = 0; r < R; r++) pre += dw[d * R + r] * dbc[r];
      const delta = Math.log1p(Math.exp(pre));
      for (let n = 0; n < N; n++) h[d * N + n] = Math.exp(-delta * Math.exp(aLog[d * N + n])) * h[d * N + n] + delta * dbc[R + n] * xc[d];
    }
  }
  const conv: number[] = [];
  for (let d = 0; d < din; d++) for (let j = 0; j < K - 1; j++) conv.push(L - (K - 1) + j >= 0 ? x[L - (K - 1) + j][d] : 0);
  return { conv, ssm: Array.from(h) };
}

describe('recurrent state (graph-path cache)', () => {
  for (const [label, overrides] of [
    ['pure Mamba', {}],
    ['hybrid [mamba, attention]', { layerTypes: ['mamba', 'attention'] }],
  ] as const) {
    it(`${label}: 1-token, mixed and whole-prompt chunks give the uncached logits; the states match a float64 recomputation element by element`, () => {
      const m = model(overrides as Partial<TransformerConfigInput>);
      const c = m.config;
      const V = c.vocabSize;
      const row = randomIds(c.maxSeqLen, V, 3);
      const full = uncachedLogits(m, row);
      const mixer = (m.layers.at(0) as unknown as MambaBlock).mixer;
      let worstLogits = 0;
      for (const chunks of [Array(row.length).fill(1) as number[], [3, 1, 5, 2, 6, 1, 2], [20]]) {
        const cache = m.createCache(1);
        expect(cache.layers[0]).toBeInstanceOf(MambaCache);
        let at = 0;
        for (const n of chunks) {
          const chunk = tensor(Int32Array.from(row.slice(at, at + n)), { shape: [1, n] });
          const logits = noGrad(() => m.forward(chunk, null, { cache }).logits.contiguous().toTypedArray() as Float32Array);
          at += n;
          const diff = maxDiff(logits, full.subarray((at - n) * V, at * V));
          worstLogits = Math.max(worstLogits, diff);
          expect(diff).toBeLessThan(1e-5);
          expect(cache.length).toBe(at);
        }
        // Layer 0's state after the whole row, against float64 from the mixer's input of an uncached forward.
        let u: Float32Array | null = null;
        const handle = mixer.registerForwardHook((_m, inputs) => {
          u = (inputs[0] as Tensor).contiguous().toTypedArray() as Float32Array;
        });
        uncachedLogits(m, row);
        handle.remove();
        const want = float64States(mixer, u!, row.length);
        const state = cache.layers[0] as MambaCache;
        const scale = (a: number[]) => Math.max(...a.map(Math.abs));
        expect(maxDiff(state.conv.toArray(), want.conv) / scale(want.conv)).toBeLessThan(1e-5);
        expect(maxDiff(state.ssm.toArray(), want.ssm) / scale(want.ssm)).toBeLessThan(1e-5);
        // reset zeroes both states.
        cache.reset();
        expect(state.ssm.toArray().every((v) => v === 0) && state.conv.toArray().every((v) => v === 0)).toBe(true);
      }
      expect(worstLogits).toBeLessThan(1e-5);
    });
  }

  it('an attention cache does not fit a Mamba layer (and back), in one line; the state refuses attention methods', () => {
    const mamba = model();
    const attn = model({ layerTypes: ['attention', 'attention'] });
    const x = tensor(Int32Array.from([1, 2]), { shape: [1, 2] });
    expectOneLineError(() => noGrad(() => mamba.forward(x, null, { cache: attn.createCache(1) })), /layer 0 is a Mamba layer but its cache is an attention cache/);
    expectOneLineError(() => noGrad(() => attn.forward(x, null, { cache: mamba.createCache(1) })), /layer 0 is an attention layer but its cache is a Mamba state/);
    expectOneLineError(() => (mamba.createCache(1).layers[0] as MambaCache).append(), /keeps no keys and values/);
  });
});

describe('generation with Mamba layers', () => {
  it('greedy tokens from createDecoder (the graph path) and the KVCache equal the uncached argmax, pure and hybrid', () => {
    const pure = model();
    expect(pure.createDecoder(1)).toBeInstanceOf(Object.getPrototypeOf(pure.createCache(1)).constructor);
    expectCachedGreedyMatchesUncached(pure, randomIds(5, pure.config.vocabSize, 11));
    const hybrid = model({ layerTypes: ['attention', 'mamba'] });
    expectCachedGreedyMatchesUncached(hybrid, randomIds(4, hybrid.config.vocabSize, 12));
  });
});

describe('accounting and the nano-mamba preset', () => {
  for (const overrides of [{}, { layerTypes: ['mamba', 'attention'] as const }, { bias: true, norm: 'layer' as const, pos: 'learned' as const, mamba: { dState: 5, dConv: 2, expand: 3, dtRank: 1 } }]) {
    it(`countParameters and kvCacheBytes equal the allocated model and cache (${JSON.stringify(overrides)})`, () => {
      const config = { ...BASE, ...overrides, layerTypes: 'layerTypes' in overrides && overrides.layerTypes ? [...overrides.layerTypes] : null } as TransformerConfigInput;
      const m = new TransformerLM(config, { generator: new Generator(1) });
      const allocated = m.parameters().reduce((s, p) => s + p.size, 0);
      const p = countParameters(config);
      expect(p.total).toBe(allocated);
      let mixers = 0;
      for (const layer of m.layers) if (layer instanceof MambaBlock) mixers += layer.mixer.parameters().reduce((s, q) => s + q.size, 0);
      expect(p.mamba).toBe(mixers);
      const cache = m.createCache(1);
      let stateBytes = 0;
      let kvBytes = 0;
      for (const l of cache.layers) {
        if (l instanceof MambaCache) stateBytes += 4 * (l.conv.size + l.ssm.size);
        else kvBytes += 4 * (l.k.size + l.v.size);
      }
      const est = kvCacheBytes(config);
      expect(est.stateBytes).toBe(stateBytes);
      expect(est.bytesPerSequence).toBe(stateBytes + kvBytes);
    });
  }

  it('nano-mamba: nano-trickster with 12 Mamba layers, 5,321,984 parameters and a 456 KiB state; `params` prints them', () => {
    const cfg = getPreset('nano-mamba').config as TransformerConfigInput;
    const base = getPreset('nano-trickster').config as TransformerConfigInput;
    expect({ ...cfg, nLayers: undefined, mamba: undefined }).toEqual({ ...base, nLayers: undefined, mamba: undefined });
    const p = countParameters(cfg);
    expect(p.total).toBe(5_321_984);
    expect(Math.abs(p.total / countParameters(base).total - 1)).toBeLessThan(0.03);
    expect(kvCacheBytes(cfg).bytesPerSequence).toBe(12 * 512 * (3 + 16) * 4);
    expect(kvCacheBytes(cfg, 7)).toEqual(kvCacheBytes(cfg));
    const text = describeModel('nano-mamba', cfg);
    expect(text).toMatch(/nano-mamba: 5,321,984 parameters/);
    expect(text).toMatch(/mamba mixers\s+5,253,120 .*\(12 × 437,760: dState 16, dConv 4, expand 2, dtRank 16\)/);
    expect(text).toMatch(/Mamba state per sequence: 456\.00 KiB \(12 layers × 512 channels × \(3 conv \+ 16 SSM\) floats, fp32, any length\)/);
    expect(text).not.toMatch(/KV cache per sequence/);
    // The printed figures are the allocated model's.
    const m = new TransformerLM(cfg, { generator: new Generator(1) });
    expect(m.parameters().reduce((s, q) => s + q.size, 0)).toBe(5_321_984);
    const cache = m.createCache(1);
    expect(cache.layers.reduce((s, l) => s + (l instanceof MambaCache ? 4 * (l.conv.size + l.ssm.size) : 0), 0)).toBe(456 * 1024);
  });
});
