/**
 * The post-training losses (src/posttrain/losses.ts) against PyTorch (tests/golden/posttrain.json,
 * written by tools/golden/posttrain.py from the papers' equations), finite differences, errors and
 * edge cases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { F, getBackend, listBackends, noGrad, setBackend, tensor, Tensor } from '../../src/index.js';
import { dpoLoss, groupAdvantages, grpoLoss, maskedCrossEntropy, sequenceLogProbs, tokenLogProbs } from '../../src/posttrain/losses.js';
import { expectClose, fromGolden, loadGolden, type GoldenTensor } from '../helpers/golden.js';
import { gradcheck, sample } from '../helpers/gradcheck.js';

interface LmCase {
  name: string;
  logits: GoldenTensor;
  targets: GoldenTensor;
  mask: GoldenTensor;
}
interface MaskedCeCase extends LmCase {
  loss: number;
  grad: GoldenTensor;
}
interface Reduced {
  out: GoldenTensor;
  gradOut: GoldenTensor;
  grad: GoldenTensor;
}
interface LogProbCase extends LmCase {
  token: Reduced;
  sequence: Reduced;
}
interface DpoCase {
  name: string;
  options: { beta: number; labelSmoothing: number };
  policyChosen: GoldenTensor;
  policyRejected: GoldenTensor;
  referenceChosen: GoldenTensor;
  referenceRejected: GoldenTensor;
  loss: number;
  chosenRewards: GoldenTensor;
  rejectedRewards: GoldenTensor;
  margins: GoldenTensor;
  accuracy: number;
  grads: { policyChosen: GoldenTensor; policyRejected: GoldenTensor };
}
interface AdvantageCase {
  name: string;
  rewards: number[];
  groupSize: number;
  eps: number;
  advantages: GoldenTensor;
}
interface GrpoCase {
  name: string;
  options: { clipEps: number; klBeta: number };
  logProbs: GoldenTensor;
  oldLogProbs: GoldenTensor | null;
  referenceLogProbs: GoldenTensor | null;
  advantages: GoldenTensor;
  mask: GoldenTensor;
  loss: number;
  clipFraction: number;
  kl: number | null;
  grad: GoldenTensor;
}
interface PosttrainGolden {
  maskedCrossEntropy: MaskedCeCase[];
  logProbs: LogProbCase[];
  dpo: DpoCase[];
  groupAdvantages: AdvantageCase[];
  grpo: GrpoCase[];
}

const golden = loadGolden<PosttrainGolden>('posttrain.json');

/** |actual − expected| ≤ atol + rtol·|expected|, the tensors' tolerance, for a scalar result. */
function expectNumber(actual: number, expected: number, label: string, rtol = 1e-5, atol = 1e-6): void {
  if (!(Math.abs(actual - expected) <= atol + rtol * Math.abs(expected))) expect.fail(`${label}: ${actual}, expected ${expected} (rtol ${rtol}, atol ${atol})`);
}

const value = (g: GoldenTensor): Tensor => fromGolden(g).value;
const leaf = (g: GoldenTensor): Tensor => fromGolden(g, true).leaf;

const initialBackend = getBackend();

// Every backend: the losses run through the fused cross-entropy, whose kernels differ per backend.
describe.each(listBackends())('posttrain losses match PyTorch on the %s backend', (backend) => {
  beforeAll(() => setBackend(backend));
  afterAll(() => setBackend(initialBackend));

  it('has every kind of case', () => {
    expect(golden.maskedCrossEntropy.length).toBeGreaterThanOrEqual(4);
    expect(golden.logProbs.length).toBeGreaterThanOrEqual(3);
    expect(golden.dpo.length).toBeGreaterThanOrEqual(5);
    expect(golden.groupAdvantages.length).toBeGreaterThanOrEqual(3);
    expect(golden.grpo.length).toBeGreaterThanOrEqual(5);
  });

  for (const c of golden.maskedCrossEntropy) {
    it(c.name, () => {
      const logits = leaf(c.logits);
      const loss = maskedCrossEntropy(logits, value(c.targets), value(c.mask));
      expect(loss.shape).toEqual([]);
      expectNumber(loss.item(), c.loss, `${c.name}: loss`);
      loss.backward();
      expectClose(logits.grad as Tensor, c.grad, `${c.name}: d/dlogits`);
    });
  }

  for (const c of golden.logProbs) {
    for (const [kind, f, expected] of [
      ['token', tokenLogProbs, c.token],
      ['sequence', sequenceLogProbs, c.sequence],
    ] as const) {
      it(`${c.name} (${kind})`, () => {
        const logits = leaf(c.logits);
        const out = f(logits, value(c.targets), value(c.mask));
        expectClose(out, expected.out, `${c.name}: ${kind} log-probs`);
        out.backward(value(expected.gradOut));
        expectClose(logits.grad as Tensor, expected.grad, `${c.name}: ${kind} d/dlogits`);
      });
    }
  }

  for (const c of golden.dpo) {
    it(c.name, () => {
      const policyChosen = leaf(c.policyChosen);
      const policyRejected = leaf(c.policyRejected);
      const r = dpoLoss({ policyChosen, policyRejected, referenceChosen: value(c.referenceChosen), referenceRejected: value(c.referenceRejected) }, c.options);
      expectNumber(r.loss.item(), c.loss, `${c.name}: loss`);
      expectClose(r.chosenRewards, c.chosenRewards, `${c.name}: chosenRewards`);
      expectClose(r.rejectedRewards, c.rejectedRewards, `${c.name}: rejectedRewards`);
      expectClose(r.margins, c.margins, `${c.name}: margins`);
      expect(r.accuracy).toBeCloseTo(c.accuracy, 6);
      expect(r.chosenRewards.requiresGrad || r.rejectedRewards.requiresGrad || r.margins.requiresGrad).toBe(false);
      r.loss.backward();
      expectClose(policyChosen.grad as Tensor, c.grads.policyChosen, `${c.name}: d/dpolicyChosen`);
      expectClose(policyRejected.grad as Tensor, c.grads.policyRejected, `${c.name}: d/dpolicyRejected`);
    });
  }

  for (const c of golden.groupAdvantages) {
    it(c.name, () => {
      expectClose(groupAdvantages(c.rewards, c.groupSize, { eps: c.eps }), c.advantages, `${c.name}: advantages`);
      expectClose(groupAdvantages(Float64Array.from(c.rewards), c.groupSize, { eps: c.eps }), c.advantages, `${c.name}: advantages (Float64Array)`);
    });
  }

  for (const c of golden.grpo) {
    it(c.name, () => {
      const logProbs = leaf(c.logProbs);
      const r = grpoLoss(
        {
          logProbs,
          oldLogProbs: c.oldLogProbs ? value(c.oldLogProbs) : null,
          referenceLogProbs: c.referenceLogProbs ? value(c.referenceLogProbs) : null,
          advantages: value(c.advantages),
          mask: value(c.mask),
        },
        c.options,
      );
      expectNumber(r.loss.item(), c.loss, `${c.name}: loss`);
      expect(r.clipFraction).toBeCloseTo(c.clipFraction, 6);
      if (c.kl === null) expect(r.kl).toBeNull();
      else expectNumber(r.kl as number, c.kl, `${c.name}: kl`);
      r.loss.backward();
      expectClose(logProbs.grad as Tensor, c.grad, `${c.name}: d/dlogProbs`);
    });
  }
});

/** A 0/1 mask [rows, cols] from a row-major list. */
function mask(rows: number, cols: number, bits: number[]): Tensor {
  return tensor(Uint8Array.from(bits), { shape: [rows, cols] }).bool();
}
const ids = (shape: number[], values: number[]): Tensor => tensor(Int32Array.from(values), { shape });

describe('posttrain finite-difference gradients', () => {
  const targets = ids([2, 3], [1, 4, 0, 2, 3, -100]);
  const m = mask(2, 3, [1, 0, 1, 1, 1, 0]);
  it('maskedCrossEntropy', () => gradcheck('maskedCrossEntropy', (x) => maskedCrossEntropy(x, targets, m), [sample([2, 3, 5], 1)]));
  it('tokenLogProbs', () => gradcheck('tokenLogProbs', (x) => tokenLogProbs(x, targets, m), [sample([2, 3, 5], 2)]));
  it('sequenceLogProbs', () => gradcheck('sequenceLogProbs', (x) => sequenceLogProbs(x, targets, m), [sample([2, 3, 5], 3)]));

  it('dpoLoss (β 0.5, ε 0.1)', () => {
    const rc = tensor([-10.2, -7.1, -12.9]);
    const rr = tensor([-9.8, -8.0, -11.5]);
    gradcheck('dpoLoss', (pc, pr) => dpoLoss({ policyChosen: pc, policyRejected: pr, referenceChosen: rc, referenceRejected: rr }, { beta: 0.5, labelSmoothing: 0.1 }).loss, [
      tensor([-9.7, -7.4, -12.0]),
      tensor([-10.1, -7.9, -11.9]),
    ]);
  });

  it('dpoLoss through sequenceLogProbs to the logits', () => {
    // Rows 0–1 are the chosen responses, rows 2–3 the rejected ones, as a batch of pairs is laid out.
    const t = ids([4, 3], [1, 2, 3, 0, 4, 1, 2, 2, 0, 3, 1, 4]);
    const sel = mask(4, 3, [0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    const reference = noGrad(() => sequenceLogProbs(sample([4, 3, 5], 11), t, sel));
    gradcheck('dpo end to end', (x) => {
      const s = sequenceLogProbs(x, t, sel);
      return dpoLoss({ policyChosen: s.narrow(0, 0, 2), policyRejected: s.narrow(0, 2, 2), referenceChosen: reference.narrow(0, 0, 2), referenceRejected: reference.narrow(0, 2, 2) }, { beta: 0.3 }).loss;
    }, [sample([4, 3, 5], 12)]);
  });

  it('grpoLoss: clipped and unclipped tokens, KL', () => {
    // log-ratios well inside (−0.22, 0.18) and well outside it, away from the kinks at ln(1 ± 0.2).
    const logRatio = [-0.5, -0.1, 0.05, 0.4, 0.0, -0.3, 0.1, 0.6];
    const logp = tensor([-1.2, -0.4, -2.5, -0.9, -1.7, -0.3, -3.1, -0.8], { shape: [2, 4] });
    const old = tensor(logp.toArray().map((v, i) => v - logRatio[i]), { shape: [2, 4] });
    const ref = tensor(logp.toArray().map((v, i) => v + 0.3 * Math.sin(3 * i)), { shape: [2, 4] });
    const inputs = { oldLogProbs: old, referenceLogProbs: ref, advantages: tensor([0.8, -1.3]), mask: mask(2, 4, [1, 1, 1, 1, 1, 1, 0, 1]) };
    gradcheck('grpoLoss', (x) => grpoLoss({ logProbs: x, ...inputs }, { clipEps: 0.2, klBeta: 0.1 }).loss, [logp]);
  });

  it('grpoLoss through tokenLogProbs to the logits', () => {
    const t = ids([2, 3], [1, 4, 0, 2, 3, 1]);
    const sel = mask(2, 3, [0, 1, 1, 1, 1, 1]);
    const old = noGrad(() => tokenLogProbs(sample([2, 3, 5], 21), t, sel));
    const ref = noGrad(() => tokenLogProbs(sample([2, 3, 5], 22), t, sel));
    const advantages = groupAdvantages([1, 0], 2);
    gradcheck('grpo end to end', (x) => grpoLoss({ logProbs: tokenLogProbs(x, t, sel), oldLogProbs: old, referenceLogProbs: ref, advantages, mask: sel }, { clipEps: 10 / 11 }).loss, [
      sample([2, 3, 5], 23),
    ]);
  });
});

describe('posttrain edge cases', () => {
  it('sequenceLogProbs: a row the mask leaves empty is 0, with a zero gradient', () => {
    const logits = sample([2, 3, 4], 31);
    logits.requiresGrad = true;
    const s = sequenceLogProbs(logits, ids([2, 3], [1, 2, 3, 0, 1, 2]), mask(2, 3, [1, 1, 0, 0, 0, 0]));
    expect(s.toArray()[1]).toBe(0);
    expect(s.toArray()[0]).toBeLessThan(0);
    s.sum().backward();
    const g = (logits.grad as Tensor).toArray();
    expect(g.slice(12).every((v) => v === 0)).toBe(true);
    expect(g.slice(8, 12).every((v) => v === 0)).toBe(true); // the masked third position of row 0
  });

  it('maskedCrossEntropy with a full mask is the plain mean cross-entropy; masked targets are never read', () => {
    const logits = sample([2, 3, 5], 32);
    const t = ids([2, 3], [1, 4, 0, 2, 3, 1]);
    expectNumber(maskedCrossEntropy(logits, t, mask(2, 3, [1, 1, 1, 1, 1, 1])).item(), F.crossEntropy(logits, t).item(), 'full mask');
    const partial = mask(2, 3, [1, 0, 1, 0, 1, 1]);
    const padded = ids([2, 3], [1, 999, 0, -7, 3, 1]);
    expect(maskedCrossEntropy(logits, padded, partial).item()).toBe(maskedCrossEntropy(logits, t, partial).item());
    // float and int32 masks select the same positions as bool ones
    expect(maskedCrossEntropy(logits, t, partial.float()).item()).toBe(maskedCrossEntropy(logits, t, partial).item());
    expect(maskedCrossEntropy(logits, t, partial.int()).item()).toBe(maskedCrossEntropy(logits, t, partial).item());
  });

  it('groupAdvantages: a group of equal rewards gets exactly zero advantages', () => {
    const a = groupAdvantages([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 0.7, 0.7, 1, 0, 1, 0], 3).toArray();
    expect(a.slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(groupAdvantages([3, 3, 3, 3], 4).toArray()).toEqual([0, 0, 0, 0]);
  });

  it('grpoLoss: values at masked positions (padding, −∞, NaN) change nothing', () => {
    const sel = mask(2, 3, [1, 1, 0, 1, 0, 0]);
    const base = { advantages: tensor([0.5, -1.0]), mask: sel };
    const run = (fill: number) => {
      const at = (v: number[]) => tensor(v.map((x, i) => ([2, 4, 5].includes(i) ? fill : x)), { shape: [2, 3] });
      const logProbs = at([-1.0, -0.5, -2.0, -0.7, -1.5, -0.2]).requiresGrad_();
      const r = grpoLoss({ ...base, logProbs, oldLogProbs: at([-0.9, -0.8, -2.2, -0.3, -1.4, -0.1]), referenceLogProbs: at([-1.1, -0.4, -1.9, -0.8, -1.6, -0.3]) });
      r.loss.backward();
      return { loss: r.loss.item(), grad: (logProbs.grad as Tensor).toArray(), kl: r.kl, clip: r.clipFraction };
    };
    const clean = run(-1);
    expect(Number.isFinite(clean.loss)).toBe(true);
    for (const fill of [-Infinity, Number.NaN, 0]) expect(run(fill)).toEqual(clean);
  });

  it('grpoLoss: without oldLogProbs the ratio is 1, so the loss is −mean(Â) over sequences plus the KL term', () => {
    const logProbs = tensor([-1.0, -0.5, -2.0, -0.7], { shape: [2, 2] }).requiresGrad_();
    const r = grpoLoss({ logProbs, advantages: tensor([0.5, -1.5]), mask: mask(2, 2, [1, 1, 1, 0]) });
    expectNumber(r.loss.item(), -(0.5 - 1.5) / 2, 'loss');
    expect(r.clipFraction).toBe(0);
    expect(r.kl).toBeNull();
    r.loss.backward();
    // d/dlogp of −r·Â with r = exp(logp − sg(logp)): −Â/|o_i|/B per token
    expect((logProbs.grad as Tensor).toArray()).toEqual([-0.125, -0.125, 0.75, 0]);
  });

  it('dpoLoss: at Δ = 0 the loss is log 2 for any label smoothing, accuracy counts strict wins', () => {
    const x = tensor([-5, -6]);
    for (const labelSmoothing of [0, 0.1, 0.5]) {
      const r = dpoLoss({ policyChosen: x, policyRejected: x, referenceChosen: x, referenceRejected: x }, { labelSmoothing });
      expectNumber(r.loss.item(), Math.LN2, `ε ${labelSmoothing}`);
      expect(r.accuracy).toBe(0);
      expect(r.margins.toArray()).toEqual([0, 0]);
    }
  });
});

describe('posttrain errors', () => {
  const logits = sample([2, 3, 5], 41);
  const t = ids([2, 3], [1, 4, 0, 2, 3, 1]);
  const m = mask(2, 3, [1, 1, 0, 1, 0, 1]);

  it('masked losses name the argument, the shapes and what was expected', () => {
    expect(() => maskedCrossEntropy(logits, t, mask(2, 3, [0, 0, 0, 0, 0, 0]))).toThrow('maskedCrossEntropy: lossMask [2, 3] selects no position; the mean loss is undefined');
    expect(() => maskedCrossEntropy(logits, t, tensor([1, 0.5, 0, 1, 1, 1], { shape: [2, 3] }))).toThrow('maskedCrossEntropy: mask must hold only 0 and 1, got 0.5 at [0, 1]');
    expect(() => maskedCrossEntropy(logits, t, mask(3, 2, [1, 1, 1, 1, 1, 1]))).toThrow("maskedCrossEntropy: mask shape [3, 2] must equal logits' [B, T] = [2, 3]");
    expect(() => maskedCrossEntropy(logits, ids([2, 2], [1, 1, 1, 1]), m)).toThrow("maskedCrossEntropy: targets shape [2, 2] must equal logits' [B, T] = [2, 3]");
    expect(() => maskedCrossEntropy(logits, t.float(), m)).toThrow('maskedCrossEntropy: targets must be int32 token ids, got float32');
    expect(() => maskedCrossEntropy(logits.reshape([6, 5]), t, m)).toThrow('maskedCrossEntropy: logits must be [B, T, V], got shape [6, 5]');
    expect(() => sequenceLogProbs(logits, ids([2, 3], [1, 4, 0, 5, 3, 1]), m)).toThrow('sequenceLogProbs: targets[1, 0] = 5 is outside the vocabulary [0, 5) at a position the mask selects');
    expect(() => tokenLogProbs(logits, t, mask(2, 3, [1, 1, 1, 1, 1, 1]).int().mul(2))).toThrow('tokenLogProbs: mask must hold only 0 and 1, got 2 at [0, 0]');
  });

  it('dpoLoss', () => {
    const x = tensor([-5, -6]);
    const policy = tensor([-5, -6]).requiresGrad_();
    const pairs = { policyChosen: policy, policyRejected: x, referenceChosen: x, referenceRejected: x };
    expect(() => dpoLoss({ ...pairs, referenceChosen: policy })).toThrow(
      'dpoLoss: referenceChosen requires grad, but it comes from a frozen model; compute it under noGrad() or pass referenceChosen.detach()',
    );
    expect(() => dpoLoss({ ...pairs, referenceRejected: tensor([-1, -2, -3]) })).toThrow("dpoLoss: referenceRejected shape [3] must equal policyChosen's [2]");
    expect(() => dpoLoss({ ...pairs, policyRejected: x.reshape([2, 1]) })).toThrow('dpoLoss: policyRejected must be sequence log-probs [B], got shape [2, 1]');
    expect(() => dpoLoss(pairs, { beta: 0 })).toThrow('dpoLoss: beta must be a finite number > 0, got 0');
    expect(() => dpoLoss(pairs, { labelSmoothing: 0.6 })).toThrow('dpoLoss: labelSmoothing must be in [0, 0.5], got 0.6');
  });

  it('groupAdvantages', () => {
    expect(() => groupAdvantages([1, 0, 1], 2)).toThrow('groupAdvantages: rewards has 3 values, expected a positive multiple of groupSize 2');
    expect(() => groupAdvantages([1, 0], 1)).toThrow('groupAdvantages: groupSize must be an integer ≥ 2 (the sample std needs two completions per prompt), got 1');
    expect(() => groupAdvantages([1, Number.NaN], 2)).toThrow('groupAdvantages: rewards[1] is NaN, expected a finite number');
  });

  it('grpoLoss', () => {
    const logProbs = tensor([-1, -2, -3, -4], { shape: [2, 2] }).requiresGrad_();
    const base = { logProbs, advantages: tensor([1, -1]), mask: mask(2, 2, [1, 1, 1, 1]) };
    expect(() => grpoLoss({ ...base, mask: mask(2, 2, [0, 0, 0, 0]) })).toThrow('grpoLoss: mask [2, 2] selects no token; the loss is undefined');
    expect(() => grpoLoss({ ...base, advantages: tensor([1, -1, 0]) })).toThrow('grpoLoss: advantages shape [3] must be [B] = [2] for logProbs [2, 2]');
    expect(() => grpoLoss({ ...base, oldLogProbs: logProbs.mul(1) })).toThrow('grpoLoss: oldLogProbs requires grad, but it comes from a frozen model; compute it under noGrad() or pass oldLogProbs.detach()');
    expect(() => grpoLoss({ ...base, referenceLogProbs: tensor([1, 2], { shape: [1, 2] }) })).toThrow("grpoLoss: referenceLogProbs shape [1, 2] must equal logProbs' [2, 2]");
    expect(() => grpoLoss(base, { clipEps: 0 })).toThrow('grpoLoss: clipEps must be in (0, 1), got 0');
    expect(() => grpoLoss(base, { klBeta: -1 })).toThrow('grpoLoss: klBeta must be a finite number ≥ 0, got -1');
  });
});
