/** Reference GEMM: correct for every transpose/stride combination; the oracle for faster backends. */
import type { GemmArgs } from '../kernels.js';

export function gemm(g: GemmArgs): void {
  const { transA, transB, m, n, k, alpha, a, b, c, lda, ldb, ldc, beta } = g;
  const row = new Float64Array(n);
  for (let batch = 0; batch < g.batch; batch++) {
    const aBase = g.aOffset + batch * g.strideA;
    const bBase = g.bOffset + batch * g.strideB;
    const cBase = g.cOffset + batch * g.strideC;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      if (transB) {
        // B is stored [n, k]: each output is a dot product of two contiguous k-runs (when A is not transposed).
        for (let j = 0; j < n; j++) {
          let acc = 0;
          const bj = bBase + j * ldb;
          if (!transA) {
            const ai = aBase + i * lda;
            for (let p = 0; p < k; p++) acc += a[ai + p] * b[bj + p];
          } else {
            for (let p = 0; p < k; p++) acc += a[aBase + p * lda + i] * b[bj + p];
          }
          row[j] = acc;
        }
      } else {
        // i-k-j order: the inner loop streams a contiguous row of B.
        for (let p = 0; p < k; p++) {
          const aip = transA ? a[aBase + p * lda + i] : a[aBase + i * lda + p];
          if (aip === 0) continue;
          const bp = bBase + p * ldb;
          for (let j = 0; j < n; j++) row[j] += aip * b[bp + j];
        }
      }
      const ci = cBase + i * ldc;
      if (beta === 0) for (let j = 0; j < n; j++) c[ci + j] = alpha * row[j];
      else for (let j = 0; j < n; j++) c[ci + j] = alpha * row[j] + beta * c[ci + j];
    }
  }
}
