/**
 * The browser's backends: WebAssembly only (js is always registered) — no BLAS, no malloc tuning,
 * no `process`, no `node:*`. Importing this module does nothing; src/browser.ts passes
 * `installBrowserBackends` to `setBackendInstaller`, and the registry runs it on the first kernel
 * call, which then makes wasm the default (the fastest available). Nothing here imports the Node
 * installer, so a bundle of src/browser.ts never contains koffi or the BLAS loader.
 */
import { registerWasmBackend, setWasmThreads } from './wasm/index.js';

let installed = false;

/** Registers `wasm` (idempotent). */
export function installBrowserBackends(): void {
  if (installed) return;
  installed = true;
  registerWasmBackend();
}

/** Threads for matrix products; in a browser the WASM GEMM runs on one thread whatever is set. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  setWasmThreads(n);
}

export function getNumThreads(): number {
  return 1;
}
