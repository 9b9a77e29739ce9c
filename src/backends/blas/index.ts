/**
 * The BLAS backend: matrix products through the system's CBLAS `sgemm` (OpenBLAS, BLIS, MKL or
 * Accelerate), called with koffi, an FFI package that ships prebuilt binaries (nothing compiles at
 * install). Typed arrays are passed by pointer, without copies; transposed views become CBLAS
 * transpose flags. Every other kernel falls back to the next backend.
 *
 * Two steps, so that nothing native is loaded before a matrix product needs it: `findBlasLibrary`
 * only looks on disk for a candidate library (cheap, no koffi), which is enough to register the
 * backend as available; `loadBlas` loads koffi and the library, on the first BLAS product
 * (backends/node.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { blasLibraryEnv, blasThreadsEnv, libraryPathEnv } from '../../env.js';
import { gemm as referenceGemm } from '../js/matmul.js';
import type { GemmArgs, Kernels } from '../kernels.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { tuneAllocator } from '../native/allocator.js';

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

/** Below this many multiply-adds a BLAS call's fixed cost (~0.5 µs + threading) outweighs its speed. */
const SMALL_GEMM = 16 * 16 * 16;
/**
 * Products under this many multiply-adds (~15 µs on one core) run on one BLAS thread even when more
 * are set: waking a second thread costs more than it saves there (PyTorch's grain size plays the
 * same role). Decoding is made of such products: with 2 threads and no grain it ran 1.6× slower.
 */
const PARALLEL_MIN = 1 << 20;
/** sgemv's call costs ~1 µs here, so it wins over the JS loop from about this many multiply-adds (attention over a KV cache while decoding). */
const SMALL_GEMV = 1024;

type SgemmFn = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

type SgemvFn = (order: number, trans: number, m: number, n: number, alpha: number, a: Float32Array, lda: number, x: Float32Array, incX: number, beta: number, y: Float32Array, incY: number) => void;

export interface BlasLibrary {
  path: string;
  sgemm: SgemmFn;
  /** Matrix-vector products: 4–6× faster than sgemm with m = 1 here (decoding one token). */
  sgemv: SgemvFn | null;
  setNumThreads: ((n: number) => void) | null;
  getNumThreads: (() => number) | null;
  /** Runs the next products with the requested threads, or one thread when `work` (multiply-adds) is small. */
  threadsFor: (work: number) => void;
}

interface KoffiLib {
  func(signature: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(path: string): KoffiLib;
}

/** Library names tried in order when TENSORLM_BLAS does not name one. */
const BLAS_CANDIDATES = [
  'libopenblas.so.0',
  'libopenblas.so',
  'libblis.so.4',
  'libmkl_rt.so',
  'libblas.so.3',
  '/System/Library/Frameworks/Accelerate.framework/Accelerate',
  'libopenblas.dylib',
  'libopenblas.dll',
];

function tryLoad(koffi: Koffi, path: string): BlasLibrary | null {
  let lib: KoffiLib;
  try {
    lib = koffi.load(path);
  } catch {
    return null;
  }
  let sgemm: SgemmFn;
  try {
    sgemm = lib.func(
      'void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)',
    ) as SgemmFn;
  } catch {
    return null; // a BLAS without the CBLAS interface (e.g. a Fortran-only libblas)
  }
  const optional = (signature: string) => {
    try {
      return lib.func(signature);
    } catch {
      return null;
    }
  };
  const sgemv = optional(
    'void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda, const float *X, int incX, float beta, float *Y, int incY)',
  ) as SgemvFn | null;
  const setOpen = optional('void openblas_set_num_threads(int n)');
  const getOpen = optional('int openblas_get_num_threads()');
  const setBlis = optional('void bli_thread_set_num_threads(int n)');
  const getBlis = optional('int bli_thread_get_num_threads()');
  const set = setOpen ?? setBlis;
  const get = getOpen ?? getBlis;
  // The library's own thread count is switched to 1 for small products (see PARALLEL_MIN) and back;
  // `requested` is what the user asked for, `active` what the library runs with now.
  let requested = 1;
  let active = -1;
  const use = set
    ? (n: number) => {
        if (n !== active) {
          set(n);
          active = n;
        }
      }
    : null;
  return {
    path,
    sgemm,
    sgemv,
    setNumThreads: use
      ? (n: number) => {
          requested = n;
          use(n);
        }
      : null,
    getNumThreads: get ? () => requested : null,
    threadsFor: use ? (work: number) => use(work < PARALLEL_MIN ? 1 : requested) : () => {},
  };
}

/** Where the platform's dynamic loader looks for a bare library name after its own variable's directories. */
function defaultLibraryDirs(): string[] {
  switch (process.platform) {
    case 'darwin':
      return ['/usr/local/lib', '/usr/lib', '/opt/homebrew/lib', '/opt/homebrew/opt/openblas/lib', '/usr/local/opt/openblas/lib'];
    case 'win32':
      return [dirname(process.execPath), process.cwd()];
    default: {
      const triplet = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : null;
      const multiarch = triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : [];
      return [...multiarch, '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib'];
    }
  }
}

let loaderCache: string | null | undefined;

/**
 * The full path that glibc's loader cache (/etc/ld.so.cache, written by ldconfig from
 * /etc/ld.so.conf) records for a library name, or null. The cache's string table holds each
 * library's path as a NUL-terminated string, so the path is the string that ends in `/name`; no
 * need to parse the binary format (which changed between glibc versions).
 */
function fromLoaderCache(name: string): string | null {
  if (process.platform !== 'linux') return null;
  if (loaderCache === undefined) {
    try {
      loaderCache = readFileSync('/etc/ld.so.cache', 'latin1');
    } catch {
      loaderCache = null; // musl and some containers have no cache
    }
  }
  if (loaderCache === null) return null;
  for (let at = loaderCache.indexOf(`/${name}\0`); at >= 0; at = loaderCache.indexOf(`/${name}\0`, at + 1)) {
    const path = loaderCache.slice(loaderCache.lastIndexOf('\0', at) + 1, at + name.length + 1);
    if (path.startsWith('/') && existsSync(path)) return path;
  }
  return null;
}

/**
 * Where a library would be loaded from, found without loading it: a path is checked as is; a
 * bare name is looked up the way the dynamic loader would (its environment variable's
 * directories, glibc's loader cache, the default directories). Null when it is not there.
 */
function locateLibrary(candidate: string): string | null {
  if (process.platform === 'darwin' && candidate.startsWith('/System/Library/Frameworks/')) {
    // Since macOS 11 system frameworks live in the dyld shared cache, not as files: the
    // framework's directory is what exists on disk.
    const framework = candidate.slice(0, candidate.indexOf('.framework') + '.framework'.length);
    return existsSync(framework) ? candidate : null;
  }
  if (isAbsolute(candidate) || candidate.includes('/') || candidate.includes('\\')) {
    const path = resolve(candidate);
    return existsSync(path) && statSync(path).isFile() ? path : null;
  }
  for (const dir of libraryPathEnv()) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  const cached = fromLoaderCache(candidate);
  if (cached) return cached;
  for (const dir of defaultLibraryDirs()) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  return null;
}

export interface BlasSearch {
  /** The first candidate found on disk (the name to load), or null. */
  candidate: string | null;
  /** Where it is, or null. */
  path: string | null;
  /** Why none was found ('' when one was). */
  reason: string;
}

/** The candidates TENSORLM_BLAS names, else the usual library names. */
function blasCandidates(): { override: string | undefined; candidates: string[] } {
  const override = blasLibraryEnv();
  return { override, candidates: override ? [override] : BLAS_CANDIDATES };
}

/**
 * Looks on disk for a CBLAS library, without loading koffi or the library: enough to tell whether
 * the blas backend can run. (A file that is found may still fail to load, e.g. a BLAS without the
 * CBLAS interface; `loadBlas` finds that out.)
 */
export function findBlasLibrary(): BlasSearch {
  const { override, candidates } = blasCandidates();
  for (const candidate of candidates) {
    const path = locateLibrary(candidate);
    if (path) return { candidate, path, reason: '' };
  }
  return {
    candidate: null,
    path: null,
    reason: override
      ? `TENSORLM_BLAS=${override} was not found`
      : `no CBLAS library found (looked for ${candidates.join(', ')}); on Debian/Ubuntu: apt-get install libopenblas0-pthread`,
  };
}

let cached: { library: BlasLibrary | null; reason: string } | undefined;

/**
 * Loads koffi and the first CBLAS library that loads, once; `reason` says why none did. This is
 * the only place BLAS is loaded; the blas backend calls it on its first matrix product.
 */
export function loadBlas(): { library: BlasLibrary | null; reason: string } {
  if (cached) return cached;
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    cached = { library: null, reason: `the koffi FFI package could not be loaded (${(e as Error).message})` };
    return cached;
  }
  // The malloc tuning needs koffi too. It used to run when TensorLM was imported; loading koffi
  // there cost every program (even one that only tokenizes) the FFI package and a libc call, so
  // it runs here instead, where koffi is loaded anyway and before the large tensors of the
  // BLAS-sized work that gains from it are allocated. (Without a BLAS library it does not run.)
  tuneAllocator();
  const { override, candidates } = blasCandidates();
  for (const path of candidates) {
    const library = tryLoad(koffi, path);
    if (library) {
      // One BLAS thread unless asked otherwise: on small shared machines OpenBLAS's spinning
      // worker threads slowed a whole training step down (measured 4.5k vs 5.5k tokens/s here).
      library.setNumThreads?.(blasThreadsEnv() ?? 1);
      cached = { library, reason: '' };
      return cached;
    }
  }
  cached = {
    library: null,
    reason: override
      ? `TENSORLM_BLAS=${override} could not be loaded or has no cblas_sgemm`
      : `no CBLAS library could be loaded (tried ${candidates.join(', ')}); on Debian/Ubuntu: apt-get install libopenblas0-pthread`,
  };
  return cached;
}

/** The library `loadBlas` loaded, or null when it has not run (or found none); loads nothing. */
export function loadedBlas(): BlasLibrary | null {
  return cached?.library ?? null;
}

/** A typed array from `offset` on, for a C pointer parameter (koffi passes a view's own start). */
export function view<T extends TypedArray>(a: T, offset: number): T {
  return (offset === 0 ? a : a.subarray(offset)) as T;
}

/**
 * A product with one output row (m = 1) or column (n = 1) as sgemv. CBLAS leaves y's old contents
 * in play when beta = 0 on some builds (0·NaN), and op outputs are uninitialised memory, so y is
 * cleared first.
 */
function gemmAsGemv(sgemv: SgemvFn, g: GemmArgs, i: number): void {
  const a = view(g.a, g.aOffset + i * g.strideA);
  const b = view(g.b, g.bOffset + i * g.strideB);
  const cOffset = g.cOffset + i * g.strideC;
  let matrix: Float32Array, ld: number, trans: number, rows: number, cols: number, x: Float32Array, incX: number, incY: number, length: number;
  if (g.m === 1) {
    // y[n] = op(B)ᵀ·x: B stored [n,k] (transB) is used as is, B stored [k,n] transposed.
    matrix = b;
    ld = g.ldb;
    [trans, rows, cols] = g.transB ? [NO_TRANS, g.n, g.k] : [TRANS, g.k, g.n];
    x = a;
    incX = g.transA ? g.lda : 1;
    incY = 1;
    length = g.n;
  } else {
    // y[m] = op(A)·x, written down C's column (stride ldc).
    matrix = a;
    ld = g.lda;
    [trans, rows, cols] = g.transA ? [TRANS, g.k, g.m] : [NO_TRANS, g.m, g.k];
    x = b;
    incX = g.transB ? 1 : g.ldb;
    incY = g.ldc;
    length = g.m;
  }
  if (g.beta === 0) for (let j = 0; j < length; j++) g.c[cOffset + j * incY] = 0;
  sgemv(ROW_MAJOR, trans, rows, cols, g.alpha, matrix, ld, x, incX, g.beta, view(g.c, cOffset), incY);
}

export function blasKernels(library: BlasLibrary): Partial<Kernels> {
  const { sgemm, sgemv, threadsFor } = library;
  return {
    gemm(g: GemmArgs): void {
      const size = g.m * g.n * g.k;
      threadsFor(size);
      const vector = sgemv !== null && (g.m === 1 || g.n === 1);
      if (size < (vector ? SMALL_GEMV : SMALL_GEMM) || g.m === 0 || g.n === 0) {
        referenceGemm(g);
        return;
      }
      if (vector) {
        for (let i = 0; i < g.batch; i++) gemmAsGemv(sgemv, g, i);
        return;
      }
      const ta = g.transA ? TRANS : NO_TRANS;
      const tb = g.transB ? TRANS : NO_TRANS;
      for (let i = 0; i < g.batch; i++) {
        sgemm(
          ROW_MAJOR,
          ta,
          tb,
          g.m,
          g.n,
          g.k,
          g.alpha,
          view(g.a, g.aOffset + i * g.strideA),
          g.lda,
          view(g.b, g.bOffset + i * g.strideB),
          g.ldb,
          g.beta,
          view(g.c, g.cOffset + i * g.strideC),
          g.ldc,
        );
      }
    },
  };
}
