/**
 * Flat-buffer helpers shared by the decode engine (decode.ts) and its MLA layer (mla-decode.ts):
 * a projection as one GEMM that starts from the bias (or, for a QuantizedLinear, the int8 kernel),
 * the exponentiation step of a softmax over a row of attention scores, and RoPE in place.
 */
import { kernels } from '../backends/registry.js';
import { floatData } from '../ops/elementwise.js';
import type { Linear } from '../nn/layers.js';
import { QuantizedLinear } from '../nn/quantized.js';
import type { Tensor } from '../tensor/tensor.js';

/** out[rows, n] = x[rows, k] · Wᵀ (+ b), W [n, k], all contiguous from 0. */
export function linear(x: Float32Array, rows: number, w: Tensor, b: Tensor | null, out: Float32Array): void {
  const [n, k] = w.shape;
  if (b) {
    const bias = floatData(b);
    for (let r = 0; r < rows; r++) out.set(bias, r * n);
  }
  kernels.gemm({ transA: false, transB: true, m: rows, n, k, alpha: 1, a: x, aOffset: 0, lda: k, strideA: 0, b: floatData(w), bOffset: 0, ldb: k, strideB: 0, beta: b ? 1 : 0, c: out, cOffset: 0, ldc: n, strideC: 0, batch: 1 });
}

/**
 * out[rows, n] = lin(x[rows, k]): the one dispatch of the engine's projections — a float32 Linear
 * through `linear` (BLAS/WASM GEMM), a QuantizedLinear through kernels.gemmInt8 on its codes.
 */
export function project(x: Float32Array, rows: number, lin: Linear, out: Float32Array): void {
  if (lin instanceof QuantizedLinear) lin.project(x, rows, out);
  else linear(x, rows, lin.weight, lin.bias, out);
}

/**
 * scores[j] ← exp(scores[j] − max) for j < n, returning 1 / Σ: the softmax of a row of attention
 * scores over a cache, left for the caller to scale while it accumulates the values.
 */
export function exponentiateScores(scores: Float32Array, n: number, max: number): number {
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const e = Math.exp(scores[j] - max);
    scores[j] = e;
    sum += e;
  }
  return 1 / sum;
}

/** Rotates `heads` heads of `dim` features per row in place, row r at position past + (r mod t), as RotaryEmbedding does. */
export function rotate(buf: Float32Array, rows: number, t: number, past: number, heads: number, dim: number, cos: Float32Array, sin: Float32Array, interleaved: boolean): void {
  const half = dim / 2;
  for (let r = 0; r < rows; r++) {
    const p = (past + (r % t)) * half;
    for (let hh = 0; hh < heads; hh++) {
      const o = (r * heads + hh) * dim;
      for (let i = 0; i < half; i++) {
        const ia = o + (interleaved ? 2 * i : i);
        const ib = o + (interleaved ? 2 * i + 1 : i + half);
        const a = buf[ia];
        const b = buf[ib];
        buf[ia] = a * cos[p + i] - b * sin[p + i];
        buf[ib] = a * sin[p + i] + b * cos[p + i];
      }
    }
  }
}
