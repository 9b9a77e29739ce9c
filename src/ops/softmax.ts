/** softmax / logSoftmax along any dim, through one fused kernel each way. */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { normalizeDim } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguousData } from './elementwise.js';
import { transpose } from './views.js';

function softmaxLastDim(x: Tensor, log: boolean): Tensor {
  const cols = x.ndim === 0 ? 1 : x.shape[x.ndim - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.uninitialized(x.shape, 'float32');
  const { data, offset } = contiguousData(x);
  kernels.softmax({ x: data as Float32Array, xOffset: offset, rows, cols, out: out.storage as Float32Array, log });
  return record(out, log ? 'logSoftmax' : 'softmax', [x], (g) => {
    const gx = Tensor.uninitialized(x.shape, 'float32');
    const gd = contiguousData(g);
    kernels.softmaxBackward({ y: out.storage as Float32Array, g: gd.data.subarray(gd.offset) as Float32Array, rows, cols, out: gx.storage as Float32Array, log });
    return [gx];
  });
}

function alongDim(x: Tensor, dim: number, log: boolean, name: string): Tensor {
  if (x.dtype !== 'float32') x = x.float();
  const d = normalizeDim(dim, x.ndim, name);
  const last = Math.max(x.ndim - 1, 0);
  if (d === last) return softmaxLastDim(x, log);
  return transpose(softmaxLastDim(transpose(x, d, last), log), d, last);
}

export function softmax(x: Tensor, dim: number): Tensor {
  return alongDim(x, dim, false, 'softmax');
}

export function logSoftmax(x: Tensor, dim: number): Tensor {
  return alongDim(x, dim, true, 'logSoftmax');
}
