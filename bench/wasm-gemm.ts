/**
 * Micro benchmark of single-precision GEMM (C = A·B, square n×n), not a test:
 *   npx tsx bench/wasm-gemm.ts [--quick]
 * Prints GFLOPS for the reference JS kernel, each WebAssembly build this engine accepts, and BLAS
 * on one thread, then the ratio wasm/blas (the target: ≥ 0.35 at n ≥ 256); then the
 * preferred WASM build and BLAS on two threads, and their ratio. Each figure is
 * the best of several timed runs after a warm-up, in rounds that interleave the backends, since
 * the host is shared and noisy. The WASM
 * figures include copying the operands into and out of WASM memory, as every real call does.
 */
import { performance } from 'node:perf_hooks';
import { jsKernels } from '../src/backends/js/index.js';
import { blasKernels, loadBlas } from '../src/backends/blas/index.js';
import { setWasmThreads, warmUpWasmThreads, wasmInfo, wasmKernels, wasmThreadedParts } from '../src/backends/wasm/index.js';
import type { GemmArgs, Kernels } from '../src/backends/kernels.js';

const quick = process.argv.includes('--quick');
const sizes = [64, 128, 256, 512, 1024];

function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

interface Problem {
  args: GemmArgs;
  flops: number;
}

function problem(n: number): Problem {
  const a = random(n * n);
  const b = random(n * n);
  const c = new Float32Array(n * n);
  const args: GemmArgs = {
    transA: false, transB: false, m: n, n, k: n, alpha: 1, a, aOffset: 0, lda: n, strideA: 0,
    b, bOffset: 0, ldb: n, strideB: 0, beta: 0, c, cOffset: 0, ldc: n, strideC: 0, batch: 1,
  };
  return { args, flops: 2 * n * n * n };
}

/** Best GFLOPS over timed batches of calls (each batch ~50 ms) within the time budget. */
function measure(gemm: Kernels['gemm'], p: Problem, budgetMs: number): number {
  gemm(p.args); // warm-up (JIT, memory growth)
  let t = performance.now();
  gemm(p.args);
  const once = Math.max(performance.now() - t, 1e-3);
  const reps = Math.max(1, Math.round(50 / once));
  let best = Infinity;
  const end = performance.now() + budgetMs;
  do {
    t = performance.now();
    for (let r = 0; r < reps; r++) gemm(p.args);
    best = Math.min(best, (performance.now() - t) / reps);
  } while (performance.now() < end);
  return p.flops / (best * 1e-3) / 1e9;
}

interface Column {
  name: string;
  gemm: Kernels['gemm'];
  maxN: number;
  /** Called before each measurement: sets the thread count this column runs with. */
  setup: () => void;
}

const columns: Column[] = [{ name: 'js', gemm: jsKernels.gemm, maxN: quick ? 256 : 512, setup: () => {} }];
const info = wasmInfo();
for (const v of info.variants) {
  const k = wasmKernels(v);
  if (k.gemm) columns.push({ name: `wasm ${v}`, gemm: k.gemm, maxN: Infinity, setup: () => setWasmThreads(1) });
}
const blas = loadBlas();
const lib = blas.library;
if (lib) {
  const k = blasKernels(lib);
  if (k.gemm) columns.push({ name: 'blas 1 thread', gemm: k.gemm, maxN: Infinity, setup: () => lib.setNumThreads?.(1) });
}
// Two threads, as extra columns: the preferred WASM build with one worker, and BLAS on 2 threads.
const twoThreads = info.available && warmUpWasmThreads(info.variant ?? undefined, 10_000) >= 1;
if (info.available && twoThreads) {
  const k = wasmKernels();
  if (k.gemm) columns.push({ name: `wasm 2 threads`, gemm: k.gemm, maxN: Infinity, setup: () => setWasmThreads(2) });
}
if (lib?.setNumThreads) {
  const k = blasKernels(lib);
  if (k.gemm) columns.push({ name: 'blas 2 threads', gemm: k.gemm, maxN: Infinity, setup: () => lib.setNumThreads?.(2) });
}
if (!info.available) console.log(`wasm: not available (${info.reason})`);
if (!lib) console.log(`blas: not available (${blas.reason})`);

const budget = quick ? 300 : 1500;
const ROUNDS = 3;
const rows: Record<string, number | null>[] = [];
const header = ['n', ...columns.map((c) => c.name), ...info.variants.map((v) => `${v}/blas`)];
if (twoThreads && lib) header.push('2 threads/blas');
console.log(`sgemm GFLOPS (C = A·B, n×n×n), best of runs; wasm build in use: ${info.variant ?? 'none'}`);
console.log(header.map((h) => h.padStart(18)).join(''));
for (const n of sizes) {
  const row: Record<string, number | null> = { n };
  // Rounds interleave the backends, so a burst of load from other processes on this shared
  // host lowers one round of every column rather than all of one column; the best round counts.
  const p = problem(n);
  for (const col of columns) row[col.name] = null;
  for (let round = 0; round < ROUNDS; round++) {
    for (const col of columns) {
      if (n > col.maxN) continue;
      col.setup();
      const g = measure(col.gemm, p, budget / ROUNDS);
      row[col.name] = Math.max(row[col.name] ?? 0, g);
    }
  }
  const b = row['blas 1 thread'];
  for (const v of info.variants) {
    const w = row[`wasm ${v}`];
    row[`${v}/blas`] = b && w ? w / b : null;
  }
  if (twoThreads && lib) {
    const w2 = row['wasm 2 threads'];
    const b2 = row['blas 2 threads'];
    row['2 threads/blas'] = w2 && b2 ? w2 / b2 : null;
  }
  rows.push(row);
  console.log(header.map((h) => {
    const v = row[h === 'n' ? 'n' : h];
    return (v === null || v === undefined ? '—' : h === 'n' ? String(v) : v.toFixed(h.endsWith('/blas') ? 3 : 1)).padStart(18);
  }).join(''));
}

if (twoThreads) console.log(`(GEMM parts computed by the WASM worker: ${wasmThreadedParts()})`);
