/**
 * nn.init's fills write straight into the tensor (no temporaries the size of the weight) and give
 * exactly what the tensor expression they replace gives — `rand(shape).mul(high − low).add(low)`,
 * `randn(shape).mul(std).add(mean)` — bit for bit, on every backend's elementwise kernels, for
 * contiguous tensors (the direct path) and views (the expression itself); and skipInit, which
 * builds a model without running them (loadRun: the checkpoint overwrites every weight).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { normal_, skipInit, uniform_ } from '../../src/nn/init.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { rand, randn } from '../../src/tensor/creation.js';

const CASES: [low: number, high: number][] = [
  [0, 1],
  [-0.1, 0.1],
  [-1 / Math.sqrt(3), 1 / Math.sqrt(3)],
  [2.5, 1e6],
  [-1e-30, 1e-30],
  [0, 0],
];

const initialBackend = T.getBackend();

describe.each(T.listBackends())('nn.init on %s', (backend) => {
  beforeAll(() => T.setBackend(backend));
  afterAll(() => T.setBackend(initialBackend));

  it('uniform_ and normal_ fill a contiguous tensor with the tensor expression’s values, bit for bit', () => {
    {
      for (const shape of [[3], [17, 33], [300, 7]]) {
        for (const [low, high] of CASES) {
          const a = uniform_(T.zeros(shape), low, high, new T.Generator(5));
          const b = rand(shape, { generator: new T.Generator(5) }).mul(high - low).add(low);
          expect(Array.from(a.toTypedArray()), `uniform ${low} ${high} [${shape}]`).toEqual(Array.from(b.toTypedArray()));
          const std = Math.abs(high - low) / 3;
          const c = normal_(T.zeros(shape), low, std, new T.Generator(6));
          const d = randn(shape, { generator: new T.Generator(6) }).mul(std).add(low);
          expect(Array.from(c.toTypedArray()), `normal ${low} ${std} [${shape}]`).toEqual(Array.from(d.toTypedArray()));
        }
      }
    }
  });

  it('a view (offset, transposed) is filled in place through the expression, leaving the rest alone', () => {
    {
      const base = T.zeros([6, 8]);
      const view = base.transpose(0, 1).narrow(0, 2, 3); // [3, 6], strided, at an offset
      normal_(view, 1, 2, new T.Generator(7));
      const expected = randn([3, 6], { generator: new T.Generator(7) }).mul(2).add(1);
      expect(Array.from(view.contiguous().toTypedArray())).toEqual(Array.from(expected.toTypedArray()));
      const rest = base.toTypedArray().filter((_, i) => !(i % 8 >= 2 && i % 8 < 5));
      expect(rest.every((v) => v === 0)).toBe(true);
    }
  });

  it('fills a parameter that requires grad (under noGrad) and a contiguous slice at an offset', () => {
    {
      const p = T.zeros([4, 5], { requiresGrad: true });
      uniform_(p, -1, 1, new T.Generator(8));
      expect(Array.from(p.toTypedArray())).toEqual(Array.from(rand([4, 5], { generator: new T.Generator(8) }).mul(2).add(-1).toTypedArray()));
      const base = T.zeros([5, 4]);
      const rows = base.narrow(0, 1, 2); // contiguous, offset 4
      uniform_(rows, 0, 3, new T.Generator(9));
      expect(Array.from(rows.toTypedArray())).toEqual(Array.from(rand([2, 4], { generator: new T.Generator(9) }).mul(3).toTypedArray()));
      expect(Array.from(base.toTypedArray().slice(0, 4))).toEqual([0, 0, 0, 0]);
      expect(Array.from(base.toTypedArray().slice(12))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    }
  });
});

describe('skipInit', () => {
  it('builds a model without running the initialisers (weights stay zeros), and init runs again afterwards, even after a throw', () => {
    const lm = skipInit(() => new TransformerLM({ vocabSize: 11, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: 8 }, { generator: new T.Generator(1) }));
    const plain = new TransformerLM({ vocabSize: 11, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: 8 }, { generator: new T.Generator(1) });
    expect(plain.tokEmb.weight.toTypedArray().some((v) => v !== 0)).toBe(true);
    for (const [name, p] of Object.entries(lm.stateDict())) {
      if (/norm/i.test(name)) continue; // LayerNorm's ones are how it is created, not an initialiser
      expect(p.toTypedArray().every((v) => v === 0), name).toBe(true);
    }
    expect(() => skipInit(() => skipInit(() => {
      throw new Error('boom');
    }))).toThrow('boom');
    const t = uniform_(T.zeros([4]), 1, 2, new T.Generator(3));
    expect(t.toTypedArray().every((v) => v >= 1 && v <= 2)).toBe(true);
  });
});
