/**
 * The reference int8 GEMM (issue 18): out ≈ x · dequant(W)ᵀ (+ bias), the WASM kernel's arithmetic
 * step for step, so the two agree bit for bit. Each row of x is quantized with the weights'
 * blocking (dx = max|x_block| / 127, qx = x·(1/dx) rounded to nearest, ties to even, all in
 * float32). Within a block, whole groups of 16 go to four integer lanes (lane l: elements 2l, 2l+1,
 * 8+2l, 8+2l+1 of each group, as i32x4.dot_i16x8_s sums them) and the rest to a scalar tail; lane
 * sums are exact, then scaled by dx·dw and accumulated per lane in float32, and the lanes summed
 * (l0 + l1) + (l2 + l3) at the end, plus the tails' total and the bias. Inference only.
 */
import type { GemmInt8Args } from '../kernels.js';

const f = Math.fround;

/** Round half to even, as f32x4.nearest. */
function nearest(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function gemmInt8(a: GemmInt8Args): void {
  const { rows, n, k, x, q, scales, block, bias, out } = a;
  const blocks = Math.ceil(k / block);
  const xq = new Int16Array(k);
  const xs = new Float32Array(blocks);
  const lanes = [0, 0, 0, 0];
  const tot = [0, 0, 0, 0];
  for (let r = 0; r < rows; r++) {
    const xo = r * k;
    for (let b = 0; b < blocks; b++) {
      const start = b * block;
      const end = Math.min(k, start + block);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(x[xo + i]));
      const d = f(amax / 127);
      const id = d !== 0 ? f(1 / d) : 0;
      xs[b] = d;
      for (let i = start; i < end; i++) xq[i] = nearest(f(x[xo + i] * id));
    }
    for (let j = 0; j < n; j++) {
      const qo = j * k;
      const so = j * blocks;
      tot.fill(0);
      let tail = 0;
      for (let b = 0; b < blocks; b++) {
        const start = b * block;
        const end = Math.min(k, start + block);
        lanes.fill(0);
        let i = start;
        for (; i + 16 <= end; i += 16) {
          for (let l = 0; l < 4; l++) {
            const p = i + 2 * l;
            lanes[l] += xq[p] * q[qo + p] + xq[p + 1] * q[qo + p + 1] + xq[p + 8] * q[qo + p + 8] + xq[p + 9] * q[qo + p + 9];
          }
        }
        const sc = f(xs[b] * scales[so + b]);
        for (let l = 0; l < 4; l++) tot[l] = f(tot[l] + f(f(lanes[l]) * sc));
        if (i < end) {
          let t = 0;
          for (; i < end; i++) t += xq[i] * q[qo + i];
          tail = f(tail + f(f(t) * sc));
        }
      }
      const res = f(f(f(tot[0] + tot[1]) + f(tot[2] + tot[3])) + tail);
      out[r * n + j] = bias ? f(res + bias[j]) : res;
    }
  }
}
