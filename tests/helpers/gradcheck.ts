/**
 * Finite-difference gradient checking. The loss L = Σ f(inputs)·w with a fixed random w; its
 * analytic gradient comes from backward(), the numeric one from central differences
 * (L(x+ε) − L(x−ε)) / 2ε with L accumulated in float64.
 */
import { expect } from 'vitest';
import { Generator, noGrad, randn, Tensor } from '../../src/index.js';

export interface GradcheckOptions {
  /** Indices of the inputs to check (default: every float32 input). */
  wrt?: number[];
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

function weightedSum(out: Tensor, w: Float64Array): number {
  const v = out.toArray();
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * w[i];
  return s;
}

export function gradcheck(label: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const { eps = 1e-3, rtol = 1e-2, atol = 1e-3, seed = 7 } = options;
  const wrt = options.wrt ?? inputs.map((x, i) => (x.dtype === 'float32' ? i : -1)).filter((i) => i >= 0);
  const leaves = inputs.map((x, i) => {
    const c = x.detach().clone();
    if (wrt.includes(i)) c.requiresGrad = true;
    return c;
  });
  const out = f(...leaves);
  const gen = new Generator(seed);
  const wTensor = randn(out.shape, { generator: gen });
  const w = Float64Array.from(wTensor.toArray());
  out.backward(wTensor);
  leaves.forEach((leaf, k) => {
    if (!wrt.includes(k)) return;
    if (!leaf.grad) expect.fail(`${label}: input ${k} has no grad`);
    const analytic = leaf.grad.toArray();
    const data = leaf.storage as Float32Array;
    for (let i = 0; i < leaf.size; i++) {
      const original = data[i];
      data[i] = original + eps;
      const plus = noGrad(() => weightedSum(f(...leaves), w));
      data[i] = original - eps;
      const minus = noGrad(() => weightedSum(f(...leaves), w));
      data[i] = original;
      // Use the actually representable step: float32 rounds original ± eps.
      const step = Math.fround(original + eps) - Math.fround(original - eps);
      const numeric = (plus - minus) / step;
      const diff = Math.abs(numeric - analytic[i]);
      if (!(diff <= atol + rtol * Math.abs(numeric))) {
        expect.fail(`${label}: input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
      }
    }
  });
}

/** Random normal tensor with a fixed seed, optionally pushed away from 0 (for abs/relu kinks). */
export function sample(shape: number[], seed: number, options: { awayFromZero?: number; positive?: boolean } = {}): Tensor {
  const t = randn(shape, { generator: new Generator(seed) });
  const d = t.storage as Float32Array;
  for (let i = 0; i < d.length; i++) {
    if (options.positive) d[i] = 0.5 + Math.abs(d[i]);
    else if (options.awayFromZero && Math.abs(d[i]) < options.awayFromZero) d[i] = d[i] < 0 ? d[i] - options.awayFromZero : d[i] + options.awayFromZero;
  }
  return t;
}
