/**
 * Every environment variable TensorLM reads, in one place, one typed accessor each.
 *
 * The accessors read the environment when they are called, not when this module is imported, so
 * a program (or a test) may set a variable any time before the feature that uses it first runs.
 * They are safe in a browser or a Web Worker, where there is no `process`: every variable then
 * reads as unset. An empty value counts as unset. A value that cannot mean anything (a thread
 * count of "abc", a switch of "maybe") is an error naming the variable, not a silent default.
 *
 * This module sits at the bottom of the layering and imports nothing.
 */

/** The environment when there is one (Node), else undefined (browsers, workers). */
function environment(): Record<string, string | undefined> | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
}

function read(name: string): string | undefined {
  const value = environment()?.[name];
  return value === undefined || value === '' ? undefined : value;
}

function positiveInteger(name: string): number | undefined {
  const value = read(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name}=${value}: expected a positive integer`);
  return n;
}

function onOff(name: string): boolean | undefined {
  const value = read(name);
  if (value === undefined) return undefined;
  const v = value.toLowerCase();
  if (v === '0' || v === 'false' || v === 'off' || v === 'no') return false;
  if (v === '1' || v === 'true' || v === 'on' || v === 'yes') return true;
  throw new RangeError(`${name}=${value}: expected 0 (off) or 1 (on)`);
}

/**
 * TENSORLM_BACKEND: the backend to use by default (`js`, `wasm`, `blas`, `native`, or any registered name)
 * instead of the fastest available one. Read when the default is chosen (the first kernel call,
 * or the first `getBackend()`); `setBackend()` before that wins over it.
 */
export function backendEnv(): string | undefined {
  return read('TENSORLM_BACKEND');
}

/**
 * TENSORLM_BLAS: the CBLAS library to use (a path, or a name the dynamic loader resolves, e.g.
 * `libblis.so.4`) instead of searching the usual OpenBLAS/BLIS/MKL/Accelerate names.
 */
export function blasLibraryEnv(): string | undefined {
  return read('TENSORLM_BLAS');
}

/**
 * Threads for BLAS matrix products when the library is loaded: TENSORLM_THREADS, else the
 * library's own OPENBLAS_NUM_THREADS or BLIS_NUM_THREADS; undefined when none is set (TensorLM
 * then uses 1, see backends/blas/index.ts). `setNumThreads()` overrides all of them. A malformed
 * OPENBLAS_/BLIS_ value is left to the library that owns it and skipped here.
 */
export function blasThreadsEnv(): number | undefined {
  const own = positiveInteger('TENSORLM_THREADS');
  if (own !== undefined) return own;
  for (const name of ['OPENBLAS_NUM_THREADS', 'BLIS_NUM_THREADS']) {
    const n = Number(read(name));
    if (Number.isInteger(n) && n >= 1) return n;
  }
  return undefined;
}

/**
 * TENSORLM_MALLOC_TUNING: 0 turns off the glibc malloc tuning (backends/native/allocator.ts);
 * on by default.
 */
export function mallocTuningEnv(): boolean {
  return onOff('TENSORLM_MALLOC_TUNING') ?? true;
}

/**
 * TENSORLM_NATIVE: 0 leaves out the native backend (backends/native: C kernels compiled with the
 * machine's compiler on first use), with no warning; on by default where a compiler is found.
 */
export function nativeKernelsEnv(): boolean {
  return onOff('TENSORLM_NATIVE') ?? true;
}

/** CC: the C compiler for the native kernels (a path or a name on PATH); undefined: cc, gcc, clang. */
export function compilerEnv(): string | undefined {
  return read('CC');
}

/**
 * TENSORLM_BUFFER_POOL: 0 turns off the recycling of dead float buffers (tensor/pool.ts); on by
 * default. Read when the pool is first used; `setBufferPoolLimit()` overrides it.
 */
export function bufferPoolEnv(): boolean {
  return onOff('TENSORLM_BUFFER_POOL') ?? true;
}

/**
 * TENSORLM_DATA_DIR: where named datasets are looked up and downloaded to (data/resolve.ts);
 * undefined when unset (the default is then ~/.cache/tensorlm). Relative to the working directory.
 */
export function dataDirEnv(): string | undefined {
  return read('TENSORLM_DATA_DIR');
}

/**
 * TENSORLM_WASM_THREADS: threads (the caller included) that big WebAssembly GEMMs are split over;
 * undefined when unset (the default is then min(cores, 2)). `setWasmThreads()` overrides it.
 */
export function wasmThreadsEnv(): number | undefined {
  return positiveInteger('TENSORLM_WASM_THREADS');
}

/**
 * TENSORLM_WASM_SIMD: `simd128` forces the plain SIMD128 build of the WebAssembly kernels even
 * where the engine accepts relaxed SIMD; `relaxed-simd` (or unset) prefers relaxed SIMD.
 */
export function wasmSimdEnv(): 'simd128' | 'relaxed-simd' | undefined {
  const value = read('TENSORLM_WASM_SIMD');
  if (value === undefined || value === 'simd128' || value === 'relaxed-simd') return value;
  throw new RangeError(`TENSORLM_WASM_SIMD=${value}: expected simd128 or relaxed-simd`);
}

/**
 * The directories the platform's dynamic loader searches before its defaults, from its own
 * variable: LD_LIBRARY_PATH on Linux, DYLD_LIBRARY_PATH and DYLD_FALLBACK_LIBRARY_PATH on macOS,
 * PATH on Windows. Used to tell whether a BLAS library is installed without loading it.
 */
export function libraryPathEnv(): string[] {
  const platform = (globalThis as { process?: { platform?: string } }).process?.platform;
  const names = platform === 'darwin' ? ['DYLD_LIBRARY_PATH', 'DYLD_FALLBACK_LIBRARY_PATH'] : platform === 'win32' ? ['PATH'] : ['LD_LIBRARY_PATH'];
  const separator = platform === 'win32' ? ';' : ':';
  const dirs: string[] = [];
  for (const name of names) for (const dir of read(name)?.split(separator) ?? []) if (dir !== '') dirs.push(dir);
  return dirs;
}
