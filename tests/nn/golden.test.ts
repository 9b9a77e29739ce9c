/** Every case of tests/golden/nn.json (PyTorch values): forward output and input gradients. */
import { describe, it } from 'vitest';
import { F, type Tensor } from '../../src/index.js';
import type { Reduction } from '../../src/nn/index.js';
import { baseTensor, expectClose, goldenInput, isGoldenTensor, loadCases, type GoldenCase } from './golden-helpers.js';

function reduction(c: GoldenCase): Reduction {
  return c.args.reduction as Reduction;
}

/** Runs a case's op on its (already built) inputs. */
function run(c: GoldenCase, xs: Tensor[]): Tensor {
  switch (c.op) {
    case 'mseLoss':
      return F.mseLoss(xs[0], xs[1], { reduction: reduction(c) });
    case 'crossEntropy':
      return F.crossEntropy(xs[0], xs[1], {
        reduction: reduction(c),
        ignoreIndex: c.args.ignoreIndex as number,
        labelSmoothing: c.args.labelSmoothing as number,
      });
    case 'nllLoss':
      return F.nllLoss(xs[0], xs[1], { reduction: reduction(c), ignoreIndex: c.args.ignoreIndex as number });
    case 'binaryCrossEntropy':
      return F.binaryCrossEntropy(xs[0], xs[1], { reduction: reduction(c) });
    case 'binaryCrossEntropyWithLogits': {
      const pw = c.args.posWeight;
      return F.binaryCrossEntropyWithLogits(xs[0], xs[1], { reduction: reduction(c), posWeight: isGoldenTensor(pw) ? baseTensor(pw) : undefined });
    }
    case 'linear':
      return F.linear(xs[0], xs[1], xs[2]);
    default:
      throw new Error(`nn golden: no runner for op '${c.op}' (case ${c.name})`);
  }
}

const cases = loadCases('nn.json');

describe('nn golden values (PyTorch)', () => {
  it('covers every op in nn.json', () => {
    const ops = new Set(cases.map((c) => c.op));
    for (const op of ['mseLoss', 'crossEntropy', 'nllLoss', 'binaryCrossEntropy', 'binaryCrossEntropyWithLogits', 'linear']) {
      if (!ops.has(op)) throw new Error(`nn.json has no ${op} case`);
    }
  });

  for (const c of cases) {
    it(c.name, () => {
      const built = c.inputs.map((g, i) => goldenInput(g, c.grads?.[i] != null));
      const out = run(
        c,
        built.map((b) => b.value),
      );
      // rtol 1e-5 with a 1e-6 floor everywhere, the ±1e4 'extreme' cases included.
      expectClose(out, c.out, `${c.name} out`);
      if (!c.gradOut || !c.grads) return;
      out.backward(baseTensor(c.gradOut));
      c.grads.forEach((g, i) => {
        if (g === null) return;
        expectClose(built[i].value.grad, g, `${c.name} grad[${i}]`);
      });
    });
  }
});
