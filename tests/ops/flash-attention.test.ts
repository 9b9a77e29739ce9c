/**
 * Flash attention (ops/flash-attention.ts) against the materialised attention, forward and
 * backward, on every backend: causal, non-causal, sliding window, GQA, MQA, D not a multiple of 4,
 * T not a multiple of the block sizes, Tq < Tk with a causal offset; a finite-difference
 * gradcheck; one-line errors; the automatic choice; and a TransformerLM trained a step either way.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { groupedAttention } from '../../src/nn/attention.js';
import { scaledDotProductAttention } from '../../src/ops/attention.js';
import {
  FLASH_ATTENTION_MIN_SEQ_LEN,
  flashAttention,
  getAttentionImplementation,
  setAttentionImplementation,
  type FlashAttentionOptions,
} from '../../src/ops/flash-attention.js';
import { setWasmSizeThresholds, type WasmSizeThresholds } from '../../src/backends/wasm/index.js';
import { activeFlashAttentionMinSeqLen } from '../../src/backends/registry.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { randint, randn } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { getBackend, listBackends, setBackend } from '../../src/index.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

function maxDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const x = a.toTypedArray() as Float32Array;
  const y = b.toTypedArray() as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

/** k [..., Hkv, T, D] repeated to [..., H, T, D] (head h reads kv head ⌊h/G⌋). */
function repeatHeads(k: Tensor, g: number): Tensor {
  if (g === 1) return k;
  const s = k.shape;
  const n = s.length;
  return k
    .unsqueeze(n - 2)
    .expand([...s.slice(0, n - 2), g, s[n - 2], s[n - 1]])
    .reshape([...s.slice(0, n - 3), s[n - 3] * g, s[n - 2], s[n - 1]]);
}

/** Materialised reference: the scaledSoftmax path of scaledDotProductAttention on repeated heads. */
function materialised(q: Tensor, k: Tensor, v: Tensor, o: FlashAttentionOptions): Tensor {
  const previous = setAttentionImplementation('materialized');
  try {
    const g = q.shape[q.ndim - 3] / k.shape[k.ndim - 3];
    return scaledDotProductAttention(q, repeatHeads(k, g), repeatHeads(v, g), { scale: o.scale, isCausal: o.causal, causalOffset: o.causalOffset, window: o.window });
  } finally {
    setAttentionImplementation(previous);
  }
}

interface Case {
  name: string;
  b: number;
  h: number;
  hkv: number;
  tq: number;
  tk: number;
  d: number;
  /** v's width when not d (MLA). */
  dv?: number;
  o: FlashAttentionOptions;
}

const CASES: Case[] = [
  { name: 'causal', b: 2, h: 3, hkv: 3, tq: 37, tk: 37, d: 8, o: { causal: true } },
  { name: 'non-causal', b: 1, h: 2, hkv: 2, tq: 45, tk: 45, d: 16, o: {} },
  { name: 'sliding window 7', b: 1, h: 2, hkv: 2, tq: 70, tk: 70, d: 8, o: { causal: true, window: 7 } },
  { name: 'GQA 4:2', b: 2, h: 4, hkv: 2, tq: 33, tk: 33, d: 8, o: { causal: true } },
  { name: 'MQA 4:1, non-causal', b: 1, h: 4, hkv: 1, tq: 29, tk: 29, d: 12, o: {} },
  { name: 'D = 5 (not a multiple of 4)', b: 1, h: 2, hkv: 1, tq: 31, tk: 31, d: 5, o: { causal: true } },
  { name: 'T = 100 (no multiple of the 32/64 blocks), scale 0.3', b: 1, h: 2, hkv: 2, tq: 100, tk: 100, d: 7, o: { causal: true, scale: 0.3 } },
  { name: 'Tq < Tk with causal offset Tk − Tq', b: 1, h: 2, hkv: 1, tq: 21, tk: 90, d: 8, o: { causal: true, causalOffset: 69 } },
  { name: 'Tq < Tk, offset, window 13', b: 1, h: 3, hkv: 3, tq: 40, tk: 90, d: 6, o: { causal: true, causalOffset: 50, window: 13 } },
  { name: 'negative offset: first queries see nothing', b: 1, h: 1, hkv: 1, tq: 20, tk: 20, d: 4, o: { causal: true, causalOffset: -3 } },
  { name: 'values wider than keys (MLA-like)', b: 1, h: 4, hkv: 2, tq: 35, tk: 35, d: 12, dv: 7, o: { causal: true } },
  { name: 'one query over a long cache', b: 1, h: 2, hkv: 1, tq: 1, tk: 150, d: 8, o: { causal: true, causalOffset: 149, window: 70 } },
];

describe('flashAttention equals materialised attention, forward and backward', () => {
  const initial = getBackend();
  let saved: WasmSizeThresholds;
  // Every size through the WASM kernels (by default small products fall back to the reference).
  beforeAll(() => {
    saved = setWasmSizeThresholds({ gemm: 0 });
  });
  afterAll(() => {
    setWasmSizeThresholds(saved);
    setBackend(initial);
  });

  for (const backend of listBackends()) {
    for (const c of CASES) {
      it(`${c.name} [${c.b}, ${c.h}/${c.hkv} heads, Tq ${c.tq}, Tk ${c.tk}, D ${c.d}] (${backend})`, () => {
        setBackend(backend);
        const gen = new Generator(c.tq * 31 + c.tk + c.d);
        const q = randn([c.b, c.h, c.tq, c.d], { generator: gen });
        const k = randn([c.b, c.hkv, c.tk, c.d], { generator: gen });
        const v = randn([c.b, c.hkv, c.tk, c.dv ?? c.d], { generator: gen });
        const up = randn([c.b, c.h, c.tq, c.dv ?? c.d], { generator: gen });
        const run = (f: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => {
          const [qq, kk, vv] = [q, k, v].map((x) => x.detach().clone().requiresGrad_());
          const y = f(qq, kk, vv);
          y.backward(up);
          return [y, qq.grad as Tensor, kk.grad as Tensor, vv.grad as Tensor];
        };
        const flash = run((a, b, d) => flashAttention(a, b, d, c.o));
        const ref = run((a, b, d) => materialised(a, b, d, c.o));
        ['out', 'dq', 'dk', 'dv'].forEach((what, i) => expect(maxDiff(flash[i], ref[i]), `${what}`).toBeLessThan(1e-5));
      });
    }
  }

  it('passes a finite-difference gradcheck (GQA, causal offset, window, D = 3)', () => {
    setBackend('js');
    const gen = new Generator(3);
    const q = randn([1, 2, 5, 3], { generator: gen });
    const k = randn([1, 1, 7, 3], { generator: gen });
    const v = randn([1, 1, 7, 3], { generator: gen });
    gradcheck('flashAttention', (a, b, d) => flashAttention(a, b, d, { causal: true, causalOffset: 2, window: 4 }), [q, k, v]);
    gradcheck('flashAttention non-causal', (a, b, d) => flashAttention(a, b, d, { scale: 0.7 }), [q, k, v]);
  });
});

describe('flashAttention arguments', () => {
  const q = randn([1, 4, 6, 8]);
  const k = randn([1, 2, 6, 8]);
  it('rejects bad shapes and options in one line', () => {
    expectOneLineError(() => flashAttention(q, randn([1, 2, 6, 5]), randn([1, 2, 6, 5])), /flashAttention: q and k must share the head dim/);
    expectOneLineError(() => flashAttention(q, k, randn([1, 2, 7, 8])), /differ in sequence length/);
    expectOneLineError(() => flashAttention(q, randn([1, 3, 6, 8]), randn([1, 3, 6, 8])), /kv head count must divide/);
    expectOneLineError(() => flashAttention(q, randn([2, 2, 6, 8]), randn([2, 2, 6, 8])), /share the leading dims/);
    expectOneLineError(() => flashAttention(q, randn([2, 6, 8]), randn([2, 6, 8])), /same rank/);
    expectOneLineError(() => flashAttention(q, k, k, { window: 3 }), /sliding window needs causal/);
    expectOneLineError(() => flashAttention(q, k, k, { causal: true, window: 0 }), /window must be a positive integer/);
    expectOneLineError(() => flashAttention(q, k, k, { scale: -1 }), /scale must be a positive number/);
  });

  it('takes [T, D] (one head) and T = 0', () => {
    const a = randn([9, 4]);
    expect(maxDiff(flashAttention(a, a, a, { causal: true }), materialised(a.unsqueeze(0), a.unsqueeze(0), a.unsqueeze(0), { causal: true }).squeeze(0))).toBeLessThan(1e-6);
    expect(flashAttention(randn([1, 2, 0, 4]), randn([1, 2, 0, 4]), randn([1, 2, 0, 4])).shape).toEqual([1, 2, 0, 4]);
  });
});

describe('automatic selection', () => {
  afterEach(() => setAttentionImplementation('auto'));

  it('defaults to auto; setAttentionImplementation returns the previous choice and rejects others', () => {
    expect(getAttentionImplementation()).toBe('auto');
    expect(setAttentionImplementation('flash')).toBe('auto');
    expect(setAttentionImplementation('materialized')).toBe('flash');
    expectOneLineError(() => setAttentionImplementation('fast' as 'auto'), /expected 'auto', 'flash' or 'materialized'/);
  });

  it("auto takes the flash path from the backend's threshold on (FLASH_ATTENTION_MIN_SEQ_LEN; the native backend's 128), the materialised one below (seen in the graph)", () => {
    const node = (t: number) => {
      const x = randn([1, 2, t, 4]).requiresGrad_();
      return scaledDotProductAttention(x, x, x, { isCausal: true }).gradFn?.name;
    };
    const threshold = activeFlashAttentionMinSeqLen() ?? FLASH_ATTENTION_MIN_SEQ_LEN;
    expect(threshold).toBe(getBackend() === 'native' ? 128 : FLASH_ATTENTION_MIN_SEQ_LEN);
    expect(node(threshold)).toBe('flashAttention');
    expect(node(threshold - 1)).not.toBe('flashAttention');
    const previous = getBackend();
    setBackend('wasm');
    try {
      expect(node(FLASH_ATTENTION_MIN_SEQ_LEN)).toBe('flashAttention');
      expect(node(FLASH_ATTENTION_MIN_SEQ_LEN - 1)).not.toBe('flashAttention');
    } finally {
      setBackend(previous);
    }
    setAttentionImplementation('flash');
    expect(node(3)).toBe('flashAttention');
    // A mask or dropout keeps the materialised path even when flash is forced.
    const x = randn([1, 2, 5, 4]).requiresGrad_();
    expect(scaledDotProductAttention(x, x, x, { dropoutP: 0.5, generator: new Generator(1) }).gradFn?.name).not.toBe('flashAttention');
    setAttentionImplementation('materialized');
    expect(node(FLASH_ATTENTION_MIN_SEQ_LEN)).not.toBe('flashAttention');
  });

  it('groupedAttention with the flash path forced equals its materialised path (GQA, window, offset, pre-scaled q)', () => {
    const gen = new Generator(4);
    const q = randn([2, 2, 3, 20, 8], { generator: gen });
    const k = randn([2, 2, 26, 8], { generator: gen });
    const v = randn([2, 2, 26, 8], { generator: gen });
    for (const o of [{ causal: true, causalOffset: 6, window: 9 }, { causal: false }, { causal: true, causalOffset: 6, scale: 0.5, qIsScaled: true }]) {
      setAttentionImplementation('flash');
      const a = groupedAttention(q, k, v, o);
      setAttentionImplementation('materialized');
      const b = groupedAttention(q, k, v, o);
      expect(maxDiff(a, b)).toBeLessThan(1e-6);
    }
  });

  it('takes values of another width (MLA) in groupedAttention, and keeps the materialised path for a hook on the probabilities', () => {
    const gen = new Generator(5);
    const q = randn([1, 2, 1, 9, 8], { generator: gen }).requiresGrad_();
    const k = randn([1, 2, 9, 8], { generator: gen });
    const v = randn([1, 2, 9, 5], { generator: gen });
    setAttentionImplementation('flash');
    const a = groupedAttention(q, k, v, { causal: true });
    expect(a.gradFn?.name).not.toBe(undefined);
    setAttentionImplementation('materialized');
    expect(maxDiff(a, groupedAttention(q, k, v, { causal: true }))).toBeLessThan(1e-6);
    setAttentionImplementation('flash');
    let seen = 0;
    groupedAttention(q, k, k, { causal: true, applyToProbs: (p) => (seen++, p) });
    expect(seen).toBe(1);
  });
});

describe('TransformerLM with flash attention', () => {
  afterEach(() => setAttentionImplementation('auto'));

  for (const [name, extra] of [['GQA, RoPE, RMSNorm', {}], ['sliding window 5, learned positions', { slidingWindow: 5, pos: 'learned' as const, nKvHeads: 4 }]] as const) {
    it(`forward + backward with the flash path forced equals the materialised path within 1e-5 (${name})`, () => {
      const config = { vocabSize: 31, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 48, maxSeqLen: 40, norm: 'rms' as const, mlp: 'swiglu' as const, pos: 'rope' as const, bias: false, ...extra };
      const ids = randint(0, 31, [2, 33], { generator: new Generator(2) });
      const targets = randint(0, 31, [2, 33], { generator: new Generator(3) });
      const run = (impl: 'flash' | 'materialized') => {
        setAttentionImplementation(impl);
        const model = new TransformerLM(config, { generator: new Generator(7) });
        const { logits, loss } = model.forward(ids, targets);
        (loss as Tensor).backward();
        return { logits, grads: model.parameters().map((p) => p.grad as Tensor) };
      };
      const flash = run('flash');
      const ref = run('materialized');
      expect(maxDiff(flash.logits, ref.logits)).toBeLessThan(1e-5);
      flash.grads.forEach((g, i) => expect(maxDiff(g, ref.grads[i]), `grad ${i}`).toBeLessThan(1e-5));
    });
  }
});
