/**
 * Node's backends: `wasm` (WebAssembly SIMD kernels), `blas` (the system CBLAS for matrix
 * products, on top of wasm) and `native` (C kernels compiled for this CPU on first use, on top of
 * blas; see native/index.ts). Importing this module does nothing; the Node entry points
 * (src/index.ts, the tune/scaling/mup entries, the CLI, the data-parallel worker, vitest's setup
 * file) pass `installNodeBackends` to `setBackendInstaller`, and the registry runs it on the first
 * kernel call or registry query.
 *
 * Installing registers the backends without loading anything native: `blas` counts as available
 * when a CBLAS library file is found on disk, and its `gemm` is a stand-in that loads koffi and the
 * library (and tunes malloc, see native/allocator.ts) on its first call, then replaces itself. If
 * the library then fails to load, `blas` is marked unavailable, the product runs on the base
 * backend's gemm, and one warning says so.
 */
import { blasKernels, findBlasLibrary, loadBlas, loadedBlas } from './blas/index.js';
import type { GemmArgs, Kernels } from './kernels.js';
import { findCompiler, loadNative, NATIVE_KERNEL_NAMES, nativeKernels } from './native/index.js';
import { backendUnavailableReason, registerBackend, resolveKernels, updateBackend } from './registry.js';
import { registerWasmBackend, setWasmThreads } from './wasm/index.js';
import { blasThreadsEnv, nativeKernelsEnv } from '../env.js';

type Gemm = (args: GemmArgs) => void;

let installed = false;
/** Whether a BLAS library file is on disk (null until looked for). */
let blasFound: boolean | null = null;
/** The threads `setNumThreads` asked for, applied to BLAS when it loads (undefined: the default). */
let requestedThreads: number | undefined;
/** What the blas backend's gemm runs once loaded: the library's, or the base backend's after a failed load. */
let loadedGemm: Gemm | null = null;
/** The backend under `native` (blas when a library is on disk, else wasm); undefined when native is not registered. */
let nativeBase: string | undefined;

/** Registers `wasm`, `blas` and `native` (idempotent; loads and compiles no native code). */
export function installNodeBackends(): void {
  if (installed) return;
  installed = true;
  const wasm = registerWasmBackend();
  const search = findBlasLibrary();
  blasFound = search.candidate !== null;
  registerBackend({
    name: 'blas',
    kernels: blasFound ? { gemm: lazyBlasGemm } : {},
    // BLAS supplies gemm; everything else comes from the WASM kernels when they run here.
    base: wasm.available ? 'wasm' : undefined,
    priority: 20,
    unavailable: blasFound ? null : search.reason,
  });
  // TENSORLM_NATIVE=0 leaves the backend out altogether: an explicit choice needs no warning.
  if (!nativeKernelsEnv()) return;
  const { compiler, reason } = findCompiler();
  nativeBase = blasFound ? 'blas' : wasm.available ? 'wasm' : undefined;
  registerBackend({
    name: 'native',
    kernels: compiler ? lazyNativeKernels(compiler) : {},
    base: nativeBase,
    priority: 30,
    unavailable: compiler ? null : reason,
    // Its flash kernels (no copies, full vector width) beat the materialised path from T 128
    // (tiny training step 0.90–0.94× the time, batch 8 and 16, alternated; docs/performance.md).
    flashAttentionMinSeqLen: 128,
  });
}

/**
 * The native backend's kernels until the library is built and loaded: each stand-in compiles and
 * loads it on its first call (once), then forwards; tables copied earlier keep forwarding. If the
 * build fails, the backend is marked unavailable, its kernels are the base backend's, and one
 * warning says so.
 */
function lazyNativeKernels(compiler: string): Partial<Kernels> {
  let table: Kernels | null = null;
  const load = (): Kernels => {
    const base = nativeBase ?? 'js';
    const below = resolveKernels(base);
    const { library, reason } = loadNative(compiler);
    if (library) {
      const own = nativeKernels(library, below, () => requestedThreads ?? blasThreadsEnv() ?? 1);
      table = { ...below, ...own };
      updateBackend('native', { kernels: own });
    } else {
      table = below;
      const active = updateBackend('native', { kernels: {}, unavailable: reason });
      process.emitWarning(`tensorlm: ${reason}; the '${base}' kernels run instead${active ? ` (backend now '${active}')` : ''}`);
    }
    return table;
  };
  const stand: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of NATIVE_KERNEL_NAMES) stand[name] = (...args: unknown[]) => ((table ?? load())[name] as (...a: unknown[]) => unknown)(...args);
  return stand as Partial<Kernels>;
}

/** The blas backend's gemm until BLAS is loaded; tables copied earlier keep forwarding through it. */
function lazyBlasGemm(args: GemmArgs): void {
  (loadedGemm ?? loadBlasGemm())(args);
}

function loadBlasGemm(): Gemm {
  const { library, reason } = loadBlas();
  if (library) {
    if (requestedThreads !== undefined) library.setNumThreads?.(requestedThreads);
    const gemm = blasKernels(library).gemm as Gemm;
    loadedGemm = gemm;
    updateBackend('blas', { kernels: { gemm } });
    return gemm;
  }
  // The file was there but did not load (no koffi, no cblas_sgemm, wrong architecture …).
  const base = backendUnavailableReason('wasm') === null ? 'wasm' : 'js';
  const gemm = resolveKernels(base).gemm;
  loadedGemm = gemm;
  // The native backend stood on blas: it moves onto the same base, so it keeps running.
  if (nativeBase === 'blas') {
    nativeBase = base;
    updateBackend('native', { base });
  }
  const active = updateBackend('blas', { kernels: {}, unavailable: reason });
  process.emitWarning(`tensorlm: BLAS could not be loaded (${reason}); matrix products use the '${base}' kernels${active ? ` (backend now '${active}')` : ''}`);
  return gemm;
}

/**
 * Threads for matrix products: BLAS threads and WASM gemm workers (elementwise ops always run on
 * the calling thread). Default 1 for BLAS (TENSORLM_THREADS overrides) — see blas/index.ts. Set
 * before BLAS is loaded, the number is remembered and applied when it loads.
 */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  requestedThreads = n;
  loadedBlas()?.setNumThreads?.(n);
  setWasmThreads(n);
}

/** The BLAS thread count (1 without BLAS); does not load BLAS to find out. */
export function getNumThreads(): number {
  const library = loadedBlas();
  if (library) return library.getNumThreads?.() ?? 1;
  blasFound ??= findBlasLibrary().candidate !== null;
  // Not loaded yet: what it will be given when it loads.
  return blasFound && loadedGemm === null ? (requestedThreads ?? blasThreadsEnv() ?? 1) : 1;
}
