/**
 * Dropout, the one implementation: F.dropout and nn.Dropout re-export/call it, and so does
 * attention for its probabilities.
 */
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { mul } from './elementwise.js';

/**
 * Inverted dropout: zeroes each element with probability p and scales the survivors by 1/(1-p),
 * so evaluation (training = false) needs no rescaling. Draws from `generator` (the default
 * generator otherwise) so a seeded run drops the same elements every time. The gradient is the
 * same mask times the upstream gradient (it is a `mul` by the mask).
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator: Generator = defaultGenerator): Tensor {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`dropout: probability has to be between 0 and 1, but got ${p}`);
  if (!training || p === 0) return x;
  // p = 1 keeps nothing: no draws are needed, and the scale 1/(1-p) would be 0·inf = NaN.
  if (p === 1) return mul(x, 0);
  const keep = Tensor.empty(x.shape);
  const k = keep.storage;
  const scale = 1 / (1 - p);
  for (let i = 0; i < k.length; i++) k[i] = generator.random() < p ? 0 : scale;
  return mul(x, keep);
}
