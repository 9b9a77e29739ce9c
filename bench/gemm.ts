/** sgemm GFLOPS per backend and thread count, measured on the kernel interface directly. */
import type { GemmArgs, Kernels } from '../src/backends/kernels.js';
import { Generator } from '../src/tensor/random.js';

export type GemmShape = [m: number, n: number, k: number];

export function gemmArgs(m: number, n: number, k: number, seed = 1): GemmArgs {
  const g = new Generator(seed);
  const fill = (len: number) => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = g.random() - 0.5;
    return a;
  };
  return {
    transA: false, transB: false, m, n, k, alpha: 1,
    a: fill(m * k), aOffset: 0, lda: k, strideA: 0,
    b: fill(k * n), bOffset: 0, ldb: n, strideB: 0,
    beta: 0, c: new Float32Array(m * n), cOffset: 0, ldc: n, strideC: 0, batch: 1,
  };
}

/** Best-of timing: the machine is shared, so the fastest repetition is the least disturbed one. */
export function bestSeconds(fn: () => void, budgetSeconds: number): number {
  fn();
  let best = Infinity;
  const deadline = performance.now() + budgetSeconds * 1000;
  let reps = 0;
  while (reps < 3 || performance.now() < deadline) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
    if (++reps > 100_000) break;
  }
  return best / 1000;
}

export function measureGemm(kernels: Kernels, [m, n, k]: GemmShape, budgetSeconds: number): number {
  const args = gemmArgs(m, n, k);
  const seconds = bestSeconds(() => kernels.gemm(args), budgetSeconds);
  return (2 * m * n * k) / seconds / 1e9;
}
