/** Losses stay finite, with finite gradients, at extreme inputs (logits ±1e4, probabilities 0 and 1). */
import { describe, expect, it } from 'vitest';
import { F, Generator, randint, randn, rand, tensor, type Tensor } from '../../src/index.js';
import { goldenInput } from './golden-helpers.js';

function allFinite(t: Tensor | null): boolean {
  return t !== null && t.toArray().every(Number.isFinite);
}

/** Logits of ±1e4 (random signs), with a few zeros and a few 5e3s mixed in. */
function extremeLogits(shape: number[], seed: number): Tensor {
  const t = randn(shape, { generator: new Generator(seed) });
  const d = t.storage as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = i % 7 === 3 ? 0 : i % 5 === 1 ? 5e3 * Math.sign(d[i]) : 1e4 * Math.sign(d[i]);
  return t;
}

const reductions = ['mean', 'sum', 'none'] as const;

describe('no NaN at extreme inputs', () => {
  for (const reduction of reductions) {
    for (const labelSmoothing of [0, 0.1]) {
      it(`crossEntropy ${reduction} ls=${labelSmoothing} on logits ±1e4 ([N, C] and [B, T, C])`, () => {
        for (const shape of [
          [16, 9],
          [3, 5, 9],
        ]) {
          const logits = extremeLogits(shape, 1).requiresGrad_();
          const target = randint(0, 9, shape.slice(0, -1), { generator: new Generator(2) });
          (target.storage as Int32Array)[0] = -100;
          const loss = F.crossEntropy(logits, target, { reduction, labelSmoothing });
          expect(allFinite(loss)).toBe(true);
          loss.backward(randn(loss.shape));
          expect(allFinite(logits.grad)).toBe(true);
        }
      });
    }

    it(`binaryCrossEntropyWithLogits ${reduction} on logits ±1e4, with and without posWeight`, () => {
      for (const posWeight of [undefined, tensor([0.5, 2, 3, 1, 10, 0.1])]) {
        const logits = extremeLogits([8, 6], 3).requiresGrad_();
        const target = rand([8, 6], { generator: new Generator(4) });
        const loss = F.binaryCrossEntropyWithLogits(logits, target, { reduction, posWeight });
        expect(allFinite(loss)).toBe(true);
        loss.backward(randn(loss.shape));
        expect(allFinite(logits.grad)).toBe(true);
      }
    });

    it(`binaryCrossEntropy ${reduction} with probabilities exactly 0 and 1 (log clamped at -100)`, () => {
      const probs = tensor([0, 1, 0, 1, 0.5, 1e-30]).requiresGrad_();
      const target = tensor([1, 0, 0, 1, 1, 1]);
      const loss = F.binaryCrossEntropy(probs, target, { reduction });
      expect(allFinite(loss)).toBe(true);
      loss.backward(randn(loss.shape));
      expect(allFinite(probs.grad)).toBe(true);
      if (reduction === 'none') expect(loss.toArray().slice(0, 4).map((v) => v + 0)).toEqual([100, 100, 0, 0]); // + 0 turns -0 (as in PyTorch) into 0
    });
  }

  it('crossEntropy of a confident correct prediction is ~0 and of a confident wrong one is the logit gap', () => {
    const logits = tensor([
      [1e4, -1e4, 0],
      [1e4, -1e4, 0],
    ]);
    const loss = F.crossEntropy(logits, tensor([0, 1], { dtype: 'int32' }), { reduction: 'none' }).toArray();
    expect(loss.map((v) => v + 0)).toEqual([0, 2e4]);
  });
});

describe('golden helper view steps', () => {
  it('applies transpose, permute, narrow and expand in order, and retains the viewed grad', () => {
    const { leaf, value } = goldenInput(
      { shape: [2, 3, 1], dtype: 'float32', data: [0, 1, 2, 3, 4, 5], view: [{ permute: [2, 1, 0] }, { transpose: [0, 1] }, { narrow: [0, 1, 2] }, { expand: [2, 2, 2] }] },
      true,
    );
    expect(value.shape).toEqual([2, 2, 2]);
    expect(value.tolist()).toEqual([
      [
        [1, 4],
        [1, 4],
      ],
      [
        [2, 5],
        [2, 5],
      ],
    ]);
    value.sum().backward();
    expect(value.grad?.toArray()).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(leaf.grad?.toArray()).toEqual([0, 2, 2, 0, 2, 2]);
  });
});
