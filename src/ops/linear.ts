/**
 * linear: x·Wᵀ + b as one GEMM whose output starts as the broadcast bias (beta = 1), instead of a
 * product followed by a broadcasting add (one pass, one allocation and one kernel call fewer per
 * projection — what dominates single-token decoding). The one implementation: F.linear re-exports
 * it, nn.Linear (and through it nn.project) calls it.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { floatData } from './elementwise.js';
import { layoutOf, matmul } from './matmul.js';
import { sum } from './reduce.js';

/** The 2-D case: x [N, in], weight [out, in], bias [out] or null (shapes already checked). */
function linear2d(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  if (!bias) return matmul(x, weight.transpose(0, 1));
  const [n, k] = x.shape;
  const m = weight.shape[0];
  const out = Tensor.uninitialized([n, m]);
  const c = out.storage as Float32Array;
  const b = floatData(bias);
  // The bias broadcast over the rows, by doubling the filled prefix (log₂ n bulk copies, not n).
  if (n > 0) c.set(b, 0);
  for (let filled = 1; filled < n; filled *= 2) c.copyWithin(filled * m, 0, Math.min(filled, n - filled) * m);
  if (n > 0 && m > 0 && k > 0) {
    const a = layoutOf(x);
    const w = layoutOf(weight);
    kernels.gemm({
      transA: a.trans,
      transB: !w.trans,
      m: n,
      n: m,
      k,
      alpha: 1,
      a: a.source.storage as Float32Array,
      aOffset: a.source.offset,
      lda: a.ld,
      strideA: 0,
      b: w.source.storage as Float32Array,
      bOffset: w.source.offset,
      ldb: w.ld,
      strideB: 0,
      beta: 1,
      c,
      cOffset: 0,
      ldc: m,
      strideC: 0,
      batch: 1,
    });
  }
  return record(out, 'linear', [x, weight, bias], (g) => [
    x.requiresGrad ? matmul(g, weight.detach()) : null,
    weight.requiresGrad ? matmul(g.transpose(0, 1), x.detach()) : null,
    bias.requiresGrad ? sum(g, 0) : null,
  ]);
}

/**
 * y = x·weightᵀ + bias with weight [out, in] and x [..., in] (torch.nn.functional.linear).
 * Leading dims are flattened first (a view when x allows one), so the forward is one GEMM over all
 * tokens and the weight gradient one product, not one per batch element. Gradients: dx = g·W,
 * dW = gᵀ·x, db = Σ_rows g.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D [outFeatures, inFeatures], got shape ${formatShape(weight.shape)}`);
  const [outFeatures, inFeatures] = weight.shape;
  const last = x.ndim === 0 ? undefined : x.shape[x.ndim - 1];
  if (last !== inFeatures) {
    throw new Error(`linear: input last dim is ${last ?? 'missing (0-d input)'}, expected ${inFeatures} (weight shape ${formatShape(weight.shape)})`);
  }
  if (bias && !(bias.ndim === 1 && bias.shape[0] === outFeatures)) {
    throw new Error(`linear: bias must have shape [${outFeatures}] to match weight shape ${formatShape(weight.shape)}, got ${formatShape(bias.shape)}`);
  }
  if (x.dtype !== 'float32' || weight.dtype !== 'float32') throw new TypeError(`linear: x and weight must be float32, got ${x.dtype} and ${weight.dtype}`);
  if (x.ndim === 2) return linear2d(x, weight, bias ?? null);
  return linear2d(x.reshape([-1, inFeatures]), weight, bias ?? null).reshape([...x.shape.slice(0, -1), outFeatures]);
}
