/** Reference reductions over the middle axis of a contiguous [outer, size, inner] block. */
import type { ArgReduceArgs, ReduceArgs } from '../kernels.js';

export function reduce({ op, x, xOffset, outer, size, inner, out }: ReduceArgs): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let p = xOffset + o * size * inner + i;
      // Accumulating in a double keeps long float32 sums accurate.
      let acc = op === 'sum' ? 0 : op === 'prod' ? 1 : op === 'max' ? -Infinity : Infinity;
      for (let s = 0; s < size; s++, p += inner) {
        const v = x[p];
        if (op === 'sum') acc += v;
        else if (op === 'prod') acc *= v;
        else if (Number.isNaN(v)) acc = NaN;
        else if (op === 'max' ? v > acc : v < acc) acc = v;
        if (Number.isNaN(acc) && op !== 'sum' && op !== 'prod') break;
      }
      out[o * inner + i] = acc;
    }
  }
}

export function argReduce({ op, x, xOffset, outer, size, inner, indices, values }: ArgReduceArgs): void {
  const isMax = op === 'argmax';
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let p = xOffset + o * size * inner + i;
      let best = x[p];
      let bestIndex = 0;
      p += inner;
      for (let s = 1; s < size && !Number.isNaN(best); s++, p += inner) {
        const v = x[p];
        if (Number.isNaN(v) || (isMax ? v > best : v < best)) {
          best = v;
          bestIndex = s;
        }
      }
      indices[o * inner + i] = bestIndex;
      if (values) values[o * inner + i] = best;
    }
  }
}
