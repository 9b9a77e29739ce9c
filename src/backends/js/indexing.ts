/** Reference gather/scatter kernels. Indices are validated by the caller (the op), not here. */
import type { GatherArgs, ScatterAddArgs } from '../kernels.js';

export function gather({ x, index, out, outer, xSize, indexSize, inner }: GatherArgs): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indexSize; j++) {
      const base = (o * indexSize + j) * inner;
      for (let i = 0; i < inner; i++) out[base + i] = x[(o * xSize + index[base + i]) * inner + i];
    }
  }
}

export function scatterAdd({ src, index, out, outer, outSize, indexSize, inner }: ScatterAddArgs): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indexSize; j++) {
      const base = (o * indexSize + j) * inner;
      for (let i = 0; i < inner; i++) out[(o * outSize + index[base + i]) * inner + i] += src[base + i];
    }
  }
}

export function indexSelect({ x, index, out, outer, xSize, indexSize, inner }: GatherArgs): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indexSize; j++) {
      const from = (o * xSize + index[j]) * inner;
      const to = (o * indexSize + j) * inner;
      for (let i = 0; i < inner; i++) out[to + i] = x[from + i];
    }
  }
}

export function indexAdd({ src, index, out, outer, outSize, indexSize, inner }: ScatterAddArgs): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indexSize; j++) {
      const to = (o * outSize + index[j]) * inner;
      const from = (o * indexSize + j) * inner;
      for (let i = 0; i < inner; i++) out[to + i] += src[from + i];
    }
  }
}
