/** Sampling training windows from a token sequence; no Node APIs, so the browser playground uses it too. */
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * `batchSize` windows of `blockSize + 1` consecutive tokens at uniformly random starts that keep
 * the window inside `data` (which must hold more than blockSize tokens): x is each window without
 * its last token, y without its first. The same generator state gives the same batch.
 */
export function randomWindows(data: Int32Array | Uint16Array | Uint32Array, batchSize: number, blockSize: number, rng: Generator): { x: Tensor; y: Tensor } {
  const x = new Int32Array(batchSize * blockSize);
  const y = new Int32Array(batchSize * blockSize);
  for (let b = 0; b < batchSize; b++) {
    const start = rng.randint(0, data.length - blockSize);
    x.set(data.subarray(start, start + blockSize), b * blockSize);
    y.set(data.subarray(start + 1, start + 1 + blockSize), b * blockSize);
  }
  return { x: tensor(x, { shape: [batchSize, blockSize] }), y: tensor(y, { shape: [batchSize, blockSize] }) };
}
