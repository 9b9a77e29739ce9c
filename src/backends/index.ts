/**
 * Registers the built-in backends and selects the default: TENSORLM_BACKEND when set, else the
 * fastest one that runs here (blas > wasm > js).
 */
import { blasKernels, loadBlas } from './blas/index.js';
import { tuneAllocator } from './native/allocator.js';
import { fastestBackend, registerBackend, setBackend, backendUnavailableReason } from './registry.js';
import { registerWasmBackend, setWasmThreads } from './wasm/index.js';

tuneAllocator();

const wasm = registerWasmBackend();

const blas = loadBlas();
registerBackend({
  name: 'blas',
  kernels: blas.library ? blasKernels(blas.library) : {},
  // BLAS supplies gemm; everything else comes from the WASM kernels when they run here.
  base: wasm.available ? 'wasm' : undefined,
  priority: 20,
  unavailable: blas.library ? null : blas.reason,
});

function chooseDefault(): void {
  const requested = process.env.TENSORLM_BACKEND;
  if (requested) {
    const reason = backendUnavailableReason(requested);
    if (reason === undefined) throw new Error(`TENSORLM_BACKEND=${requested}: unknown backend (choose js, wasm or blas)`);
    if (reason) {
      const fallback = fastestBackend();
      process.emitWarning(`TENSORLM_BACKEND=${requested} is not available (${reason}); using '${fallback}'`);
      setBackend(fallback);
      return;
    }
    setBackend(requested);
    return;
  }
  if (!blas.library) process.emitWarning(`tensorlm: ${blas.reason}; matrix products use the slower '${fastestBackend()}' backend`);
  setBackend(fastestBackend());
}

chooseDefault();

export { loadBlas } from './blas/index.js';
export { tuneAllocator } from './native/allocator.js';
export { wasmInfo, wasmKernels } from './wasm/index.js';

/**
 * Threads for matrix products: BLAS threads and WASM gemm workers (elementwise ops always run on
 * the calling thread). Default 1 for BLAS (TENSORLM_THREADS overrides) — see blas/index.ts.
 */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  blas.library?.setNumThreads?.(n);
  if (wasm.available) setWasmThreads(n);
}

export function getNumThreads(): number {
  return blas.library?.getNumThreads?.() ?? 1;
}
