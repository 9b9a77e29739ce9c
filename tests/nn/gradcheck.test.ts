/**
 * Finite-difference checks of the losses, linear and dropout: the analytic gradient of
 * L = Σ f(inputs)·w (fixed random w) from backward() against central differences of L,
 * evaluated in float32 and accumulated in float64.
 */
import { describe, it } from 'vitest';
import { gradcheck as sharedGradcheck, type GradcheckOptions } from '../helpers/gradcheck.js';
import { F, Generator, rand, randint, randn, tensor, Tensor } from '../../src/index.js';

/** The shared checker with this file's step (1e-2) and weights (seed 99). */
function gradcheck(label: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  sharedGradcheck(label, f, inputs, { eps: 1e-2, seed: 99, ...options });
}

const gen = new Generator(12345);
const normal = (shape: number[], scale = 1) => randn(shape, { generator: gen }).mul(scale);
/** Targets in [0, classes), with every `ignoreEvery`-th one set to `ignore`. */
function targets(shape: number[], classes: number, ignore?: { index: number; every: number }): Tensor {
  const t = randint(0, classes, shape, { generator: gen });
  if (ignore) {
    const d = t.storage as Int32Array;
    for (let i = 0; i < d.length; i += ignore.every) d[i] = ignore.index;
  }
  return t;
}

const reductions = ['mean', 'sum', 'none'] as const;

describe('finite differences: losses', () => {
  for (const reduction of reductions) {
    it(`mseLoss ${reduction} (input and target)`, () => {
      gradcheck(`mseLoss ${reduction}`, (a, b) => F.mseLoss(a, b, { reduction }), [normal([3, 4]), normal([3, 4])]);
    });

    it(`crossEntropy ${reduction} [N, C]`, () => {
      gradcheck(`crossEntropy ${reduction}`, (x, t) => F.crossEntropy(x, t, { reduction }), [normal([5, 6], 2), targets([5], 6)]);
    });

    it(`crossEntropy ${reduction} [B, T, C] with ignoreIndex and label smoothing`, () => {
      const t = targets([2, 4], 5, { index: -1, every: 3 });
      gradcheck(`crossEntropy BTC ${reduction}`, (x, tt) => F.crossEntropy(x, tt, { reduction, ignoreIndex: -1, labelSmoothing: 0.2 }), [normal([2, 4, 5], 2), t]);
    });

    it(`nllLoss ${reduction} with ignoreIndex`, () => {
      const logp = F.logSoftmax(normal([6, 4], 2), -1);
      gradcheck(`nllLoss ${reduction}`, (x, t) => F.nllLoss(x, t, { reduction, ignoreIndex: 2 }), [logp, targets([6], 4)]);
    });

    it(`binaryCrossEntropy ${reduction} with weight`, () => {
      // probabilities in [0.1, 0.9], so p ± eps stays inside (0, 1)
      const p = rand([3, 4], { generator: gen }).mul(0.8).add(0.1);
      const y = rand([3, 4], { generator: gen });
      const weight = rand([4], { generator: gen }).add(0.5);
      gradcheck(`binaryCrossEntropy ${reduction}`, (pp, yy) => F.binaryCrossEntropy(pp, yy, { reduction, weight }), [p, y], { wrt: [0] });
    });

    it(`binaryCrossEntropyWithLogits ${reduction} (logits through 0)`, () => {
      const x = normal([3, 4], 3);
      (x.storage as Float32Array)[5] = 0; // the kink of max(x, 0) and |x|, where the loss is smooth
      const y = rand([3, 4], { generator: gen });
      gradcheck(`bceWithLogits ${reduction}`, (xx, yy) => F.binaryCrossEntropyWithLogits(xx, yy, { reduction }), [x, y]);
    });

    it(`binaryCrossEntropyWithLogits ${reduction} with posWeight (logits, target and posWeight)`, () => {
      const x = normal([4, 3], 3);
      (x.storage as Float32Array)[0] = 0;
      const y = rand([4, 3], { generator: gen });
      const pw = tensor([0.5, 2, 3]);
      gradcheck(`bceWithLogits posWeight ${reduction}`, (xx, yy, ww) => F.binaryCrossEntropyWithLogits(xx, yy, { reduction, posWeight: ww }), [x, y, pw]);
    });
  }
});

describe('finite differences: linear and dropout', () => {
  it('linear 2-D with bias', () => {
    gradcheck('linear', (x, w, b) => F.linear(x, w, b), [normal([4, 3]), normal([5, 3]), normal([5])]);
  });

  it('linear 3-D input without bias', () => {
    gradcheck('linear 3d', (x, w) => F.linear(x, w), [normal([2, 3, 4]), normal([2, 4])]);
  });

  it('linear on a transposed (non-contiguous) input', () => {
    gradcheck('linear transposed', (x, w, b) => F.linear(x.transpose(0, 1), w, b), [normal([3, 4]), normal([5, 3]), normal([5])]);
  });

  it('dropout with a fixed seed', () => {
    gradcheck('dropout', (x) => F.dropout(x, 0.3, true, new Generator(5)), [normal([4, 5])]);
  });
});
