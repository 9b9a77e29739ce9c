/**
 * The browser's stand-in for backends/index.ts: registers the WebAssembly backend (js is always
 * registered) and selects it — no BLAS, no malloc tuning, no `process`, no `node:*`.
 *
 * tensor/tensor.ts imports backends/index.js for its side effect (registering the backends
 * whichever module a program imports first). A browser bundle maps that import here, the way a
 * package.json "browser" field would: web/playground/vite.config.ts does it with a resolve hook,
 * so koffi and the BLAS loader never enter the bundle. It exports the same thread controls.
 */
import { setBackend } from './registry.js';
import { registerWasmBackend, setWasmThreads } from './wasm/index.js';

const wasm = registerWasmBackend();
if (wasm.available) setBackend('wasm');

export { wasmInfo, wasmKernels } from './wasm/index.js';

/** Threads for matrix products; in a browser the WASM GEMM runs on one thread whatever is set. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  if (wasm.available) setWasmThreads(n);
}

export function getNumThreads(): number {
  return 1;
}
