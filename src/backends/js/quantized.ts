/**
 * The reference int8 GEMM (issue 18): out ≈ x · dequant(W)ᵀ (+ bias), the WASM kernel's arithmetic
 * step for step (kernels.c, "int8 weight-only GEMM"), so the two agree bit for bit. Each row of x
 * is quantized with the weights' blocking to 7-bit codes (dx = max|x_block| / 63, qx = x·(1/dx)
 * rounded to nearest, ties to even, all in float32); each block's integer sum S_b = Σ qx·q is
 * exact; blocks go four at a time into four float32 lanes, tot[b mod 4] += float(S_b)·(dx_b·dw_b)
 * (a short last group adds +0 in its empty lanes), and the lanes are summed
 * (tot0 + tot1) + (tot2 + tot3), plus the bias. Inference only.
 */
import type { GemmInt8Args } from '../kernels.js';

const f = Math.fround;

/** Round half to even, as f32x4.nearest. */
function nearest(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** |qx| ≤ 63: the relaxed-SIMD kernel's dot product takes activations as 7-bit values. */
const LEVELS = 63;

export function gemmInt8(a: GemmInt8Args): void {
  const { rows, n, k, x, q, scales, block, bias, out } = a;
  const blocks = Math.ceil(k / block);
  const xq = new Int16Array(k);
  const xs = new Float32Array(blocks);
  const tot = [0, 0, 0, 0];
  for (let r = 0; r < rows; r++) {
    const xo = r * k;
    for (let b = 0; b < blocks; b++) {
      const start = b * block;
      const end = Math.min(k, start + block);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(x[xo + i]));
      const d = f(amax / LEVELS);
      const id = d !== 0 ? f(1 / d) : 0;
      xs[b] = d;
      // A NaN or infinite product stores as 0 (Int16Array), as the kernel's saturating conversion does.
      for (let i = start; i < end; i++) xq[i] = nearest(f(x[xo + i] * id));
    }
    for (let j = 0; j < n; j++) {
      const qo = j * k;
      const so = j * blocks;
      tot.fill(0);
      for (let b0 = 0; b0 < blocks; b0 += 4) {
        for (let l = 0; l < 4; l++) {
          const b = b0 + l;
          let s = 0;
          let sc = 0;
          if (b < blocks) {
            for (let i = b * block, end = Math.min(k, i + block); i < end; i++) s += xq[i] * q[qo + i];
            sc = f(xs[b] * scales[so + b]);
          }
          tot[l] = f(tot[l] + f(f(s) * sc));
        }
      }
      const res = f(f(tot[0] + tot[1]) + f(tot[2] + tot[3]));
      out[r * n + j] = bias ? f(res + bias[j]) : res;
    }
  }
}
