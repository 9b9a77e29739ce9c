/** Every backend's kernels against the reference kernels, on odd shapes where tiling bugs hide. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { backendUnavailableReason, resolveKernels } from '../../src/backends/registry.js';
import type { GemmArgs } from '../../src/backends/kernels.js';

const reference = T.referenceKernels;
const gen = new T.Generator(5);
function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = gen.normal();
  return a;
}

function expectAllClose(actual: Float32Array, expected: Float32Array, tol: number, label: string): void {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  expect(worst, label).toBeLessThan(tol);
}

const backends = ['js', 'wasm', 'blas'];

describe.each(backends)('%s backend kernels', (name) => {
  const reason = backendUnavailableReason(name);
  const skip = reason !== null;
  it.skipIf(skip)(`gemm matches the reference for every transpose, odd sizes, offsets and batches${skip ? ` (skipped: ${reason ?? 'not registered'})` : ''}`, () => {
    const k = resolveKernels(name);
    for (const [m, n, kk] of [[1, 1, 1], [7, 33, 5], [33, 7, 129], [64, 64, 64], [129, 65, 33], [3, 200, 17]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const batch = 3;
          const lda = (transA ? m : kk) + 2; // padded leading dimensions
          const ldb = (transB ? kk : n) + 1;
          const rowsA = transA ? kk : m;
          const rowsB = transB ? n : kk;
          const a = random(5 + batch * rowsA * lda);
          const b = random(3 + batch * rowsB * ldb);
          const args = (c: Float32Array): GemmArgs => ({
            transA, transB, m, n, k: kk, alpha: 1, a, aOffset: 5, lda, strideA: rowsA * lda,
            b, bOffset: 3, ldb, strideB: rowsB * ldb, beta: 0, c, cOffset: 0, ldc: n, strideC: m * n, batch,
          });
          const expected = new Float32Array(batch * m * n);
          const actual = new Float32Array(batch * m * n);
          reference.gemm(args(expected));
          k.gemm(args(actual));
          expectAllClose(actual, expected, 1e-4, `gemm ${m}x${n}x${kk} transA=${transA} transB=${transB}`);
        }
      }
    }
  });
});
