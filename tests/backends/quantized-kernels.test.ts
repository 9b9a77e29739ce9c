/**
 * kernels.gemmInt8 (int8 weight-only GEMM, issue 18): both WebAssembly builds against the
 * reference kernel, per-channel and Q8_0 blocks, on shapes where the vector loops have tails
 * (k not a multiple of 32, 16 or 4; 1 row, a group of 4 and leftovers), with and without bias,
 * and the backend the registry picks (wasm or blas, which builds on it); and each build split over
 * worker threads (every size threaded: the caller quantizes the rows once, each thread computes a
 * range of output columns from the codes pinned in the shared memory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { resolveKernels } from '../../src/backends/registry.js';
import type { GemmInt8Args, Kernels } from '../../src/backends/kernels.js';
import {
  setWasmSizeThresholds,
  setWasmThreads,
  warmUpWasmThreads,
  wasmInfo,
  wasmKernels,
  wasmThreadedParts,
  type WasmSimdVariant,
  type WasmSizeThresholds,
} from '../../src/backends/wasm/index.js';

const reference = T.referenceKernels;
const wasm = wasmInfo();
const gen = new T.Generator(18);

function random(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = gen.normal() * scale;
  return a;
}

function codes(n: number): Int8Array {
  const q = new Int8Array(n);
  for (let i = 0; i < n; i++) q[i] = gen.randint(-127, 128);
  // The extremes, where a widening bug would show.
  if (n > 2) {
    q[0] = 127;
    q[1] = -127;
  }
  return q;
}

function args(rows: number, n: number, k: number, block: number, bias: boolean): GemmInt8Args {
  const blocks = Math.ceil(k / block);
  return { rows, n, k, x: random(rows * k), q: codes(n * k), scales: random(n * blocks, 0.01).map(Math.abs), block, bias: bias ? random(n) : null, out: new Float32Array(rows * n).fill(NaN) };
}

const SHAPES: [rows: number, n: number, k: number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [1, 5, 17],
  [1, 33, 31],
  [1, 16, 32],
  [1, 9, 100],
  [1, 64, 128],
  [2, 13, 47],
  [4, 8, 64],
  [5, 11, 33],
  [7, 65, 129],
  [9, 32, 512],
  [4, 3, 384], // Q8_0 rows in whole groups of 4 blocks: the straight-line paths (1 and 4 rows)
];

/** name, kernels, why skipped (or null), and the build whose worker threads take every size (or null: one thread). */
const tables: [name: string, table: () => Kernels, skip: string | null, threaded: WasmSimdVariant | null][] = [
  ...(['relaxed-simd', 'simd128'] as WasmSimdVariant[]).flatMap((v): [string, () => Kernels, string | null, WasmSimdVariant | null][] => {
    const skip = wasm.variants.includes(v) ? null : `this engine does not accept the ${v} build`;
    return [
      [`wasm ${v}`, () => ({ ...reference, ...wasmKernels(v) }), skip, null],
      [`wasm ${v} on 2 threads`, () => ({ ...reference, ...wasmKernels(v) }), skip, v],
    ];
  }),
  ['the registry default', () => resolveKernels(T.getBackend()), null, null],
];

let saved: WasmSizeThresholds;
beforeAll(() => {
  saved = setWasmSizeThresholds({ gemm: 0 });
});
afterAll(() => {
  setWasmSizeThresholds(saved);
});

describe.each(tables)('gemmInt8 on %s', (_name, table, skip, threaded) => {
  let inner: WasmSizeThresholds | undefined;
  let threads = 0;
  let workersReady = 0;
  let partsBefore = 0;
  beforeAll(() => {
    if (skip !== null || threaded === null) return;
    inner = setWasmSizeThresholds({ threadedInt8: 0 });
    threads = setWasmThreads(2);
    workersReady = warmUpWasmThreads(threaded, 20_000);
    partsBefore = wasmThreadedParts(threaded);
  });
  afterAll(() => {
    if (inner) setWasmSizeThresholds(inner);
    if (threads) setWasmThreads(threads);
  });
  it.skipIf(skip !== null)('equals the reference bit for bit, per-channel and Q8_0 blocks, with and without bias', () => {
    const k = table();
    for (const [rows, n, kk] of SHAPES) {
      for (const block of [kk, 32]) {
        for (const bias of [false, true]) {
          const a = args(rows, n, kk, block, bias);
          const expected = new Float32Array(rows * n);
          reference.gemmInt8({ ...a, out: expected });
          k.gemmInt8(a);
          // The same float32 operations on exact integer sums: bit for bit.
          expect(Array.from(a.out), `rows ${rows}, n ${n}, k ${kk}, block ${block}, bias ${bias}`).toEqual(Array.from(expected));
        }
      }
    }
  });

  it.skipIf(skip !== null)('rounds activation ties to even as the reference does (x = ±63 and halves: dx = 1)', () => {
    const k = table();
    const kk = 40;
    const x = Float32Array.from({ length: 2 * kk }, (_, i) => (i % kk === 0 ? 63 : i % kk === 1 ? -63 : ((i % 9) - 4) + 0.5));
    const a = { ...args(2, 6, kk, 32, true), x };
    const expected = new Float32Array(2 * 6);
    reference.gemmInt8({ ...a, out: expected });
    k.gemmInt8(a);
    expect(Array.from(a.out)).toEqual(Array.from(expected));
  });

  it.skipIf(skip !== null)('a NaN or an infinity in a block of x gives NaN outputs, as the reference', () => {
    const k = table();
    for (const bad of [NaN, Infinity, -Infinity]) {
      const a = args(2, 5, 64, 32, true);
      a.x[3] = bad; // row 0, first block
      const expected = new Float32Array(10);
      reference.gemmInt8({ ...a, out: expected });
      k.gemmInt8(a);
      expect(Array.from(a.out)).toEqual(Array.from(expected));
      expect(a.out.slice(0, 5).every(Number.isNaN)).toBe(true);
      expect(a.out.slice(5).some(Number.isNaN)).toBe(false);
    }
  });

  it.skipIf(skip !== null)('constant codes (kept by the backend between calls) give the same results, call after call, layer after layer', () => {
    const k = table();
    const layers = [args(1, 33, 47, 32, true), args(3, 16, 128, 128, false), args(1, 64, 96, 32, true)];
    for (let round = 0; round < 3; round++) {
      for (const layer of layers) {
        const a = { ...layer, x: random(layer.rows * layer.k), out: new Float32Array(layer.rows * layer.n), constantCodes: true };
        const expected = new Float32Array(a.rows * a.n);
        reference.gemmInt8({ ...a, out: expected });
        k.gemmInt8(a);
        expect(Array.from(a.out), `round ${round}, [${a.n}, ${a.k}]`).toEqual(Array.from(expected));
      }
    }
  });

  it.skipIf(skip !== null)('is within the activation rounding of a float32 GEMM on the dequantized weight: |Δ| ≤ Σ_b dx_b/2 · dw_b · Σ|q|, dx = max|x_b|/63', () => {
    const k = table();
    for (const [rows, n, kk, block] of [[3, 20, 70, 32], [5, 9, 100, 100]]) {
      const a = args(rows, n, kk, block, true);
      k.gemmInt8(a);
      const blocks = Math.ceil(kk / block);
      const w = new Float32Array(n * kk);
      for (let j = 0; j < n; j++) for (let i = 0; i < kk; i++) w[j * kk + i] = a.scales[j * blocks + Math.floor(i / block)] * a.q[j * kk + i];
      const y = T.F.linear(T.tensor(a.x, { shape: [rows, kk] }), T.tensor(w, { shape: [n, kk] }), T.tensor(a.bias as Float32Array)).toTypedArray();
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < n; j++) {
          let bound = 0;
          for (let b = 0; b < blocks; b++) {
            let amax = 0;
            let qsum = 0;
            for (let i = b * block; i < Math.min(kk, (b + 1) * block); i++) {
              amax = Math.max(amax, Math.abs(a.x[r * kk + i]));
              qsum += Math.abs(a.q[j * kk + i]);
            }
            bound += (amax / 63 / 2) * a.scales[j * blocks + b] * qsum; // 7-bit activations: |x − dx·qx| ≤ dx/2
          }
          expect(Math.abs(a.out[r * n + j] - y[r * n + j]), `row ${r}, output ${j}`).toBeLessThanOrEqual(bound * 1.001 + 1e-5);
        }
      }
    }
  });
  it.skipIf(skip !== null)('codes and scales in storage the backend allocates (allocateInt8Weights) give the same results, read in place', () => {
    const k = table();
    for (const [n, kk, block] of [[64, 128, 32], [33, 100, 100]]) {
      const layer = args(2, n, kk, block, true);
      const storage = k.allocateInt8Weights(n, kk, block);
      if (threaded !== null && workersReady > 0) expect(storage?.q.buffer, 'threaded layers live in the shared memory').toBeInstanceOf(SharedArrayBuffer);
      if (threaded === null) expect(storage).toBeNull(); // single-threaded: ordinary arrays
      if (storage === null) continue;
      storage.q.set(layer.q);
      storage.scales.set(layer.scales);
      for (let round = 0; round < 2; round++) {
        const a = { ...layer, q: storage.q, scales: storage.scales, x: random(2 * kk), out: new Float32Array(2 * n), constantCodes: true };
        const expected = new Float32Array(2 * n);
        reference.gemmInt8({ ...a, out: expected });
        k.gemmInt8(a);
        expect(Array.from(a.out), `[${n}, ${kk}] round ${round}`).toEqual(Array.from(expected));
      }
    }
  });

  if (threaded !== null) {
    it.skipIf(skip !== null)('a worker thread computed parts of those products', () => {
      // Where worker_threads or SharedArrayBuffer are missing no worker starts: one thread it is.
      if (workersReady === 0) return;
      expect(wasmThreadedParts(threaded)).toBeGreaterThan(partsBefore);
    });
  }
});

describe('gemmInt8 reference', () => {
  it('takes an empty k (the bias alone) and zero rows', () => {
    const out = new Float32Array(2).fill(NaN);
    reference.gemmInt8({ rows: 1, n: 2, k: 0, x: new Float32Array(0), q: new Int8Array(0), scales: new Float32Array(0), block: 1, bias: Float32Array.of(1, 2), out });
    expect(Array.from(out)).toEqual([1, 2]);
    reference.gemmInt8({ rows: 0, n: 2, k: 3, x: new Float32Array(0), q: new Int8Array(6), scales: new Float32Array(2), block: 3, bias: null, out: new Float32Array(0) });
  });
});
