/**
 * embedding: a row lookup into a [V, D] table with a `paddingIdx` row that gets no gradient
 * (indexSelect's backward would give that row one).
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguousData, floatData, intData } from './elementwise.js';

/**
 * Rows of `weight` [V, D] picked by int32 `ids` of any shape: the result is [...ids.shape, D]
 * (torch.nn.functional.embedding). The gradient of `weight` is the scatter-add of the upstream
 * rows; the `paddingIdx` row (when given) receives none.
 */
export function embedding(weight: Tensor, ids: Tensor, paddingIdx: number | null = null): Tensor {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D [numEmbeddings, embeddingDim], got shape ${formatShape(weight.shape)}`);
  if (weight.dtype !== 'float32') throw new TypeError(`embedding: weight must be float32, got ${weight.dtype}`);
  if (ids.dtype !== 'int32') throw new TypeError(`embedding: ids must be an int32 tensor, got ${ids.dtype}`);
  const [rows, dim] = weight.shape;
  const idx = intData(ids);
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i];
    if (v < 0 || v >= rows) throw new RangeError(`embedding: index ${v} is out of range for an embedding of ${rows} rows`);
  }
  const out = Tensor.uninitialized([...ids.shape, dim]);
  const w = contiguousData(weight);
  kernels.indexSelect({ x: w.offset === 0 ? w.data : w.data.subarray(w.offset), index: idx, out: out.storage, outer: 1, xSize: rows, indexSize: idx.length, inner: dim });
  return record(out, 'embedding', [weight], (g) => {
    const gw = Tensor.empty(weight.shape);
    const gw32 = gw.storage as Float32Array;
    kernels.indexAdd({ src: floatData(g), index: idx, out: gw32, outer: 1, outSize: rows, indexSize: idx.length, inner: dim });
    if (paddingIdx !== null) gw32.fill(0, paddingIdx * dim, (paddingIdx + 1) * dim);
    return [gw];
  });
}
