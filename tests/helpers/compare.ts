/** Comparing tensors in tests. */
import type { Tensor } from '../../src/tensor/tensor.js';

/** The largest absolute elementwise difference of two tensors of the same size. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.toTypedArray();
  const y = b.toTypedArray();
  if (x.length !== y.length) throw new Error(`maxAbsDiff: sizes ${x.length} and ${y.length} differ`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}
