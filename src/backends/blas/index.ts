/**
 * The BLAS backend: matrix products through the system's CBLAS `sgemm` (OpenBLAS, BLIS, MKL or
 * Accelerate), called with koffi, an FFI package that ships prebuilt binaries (nothing compiles at
 * install). Typed arrays are passed by pointer, without copies; transposed views become CBLAS
 * transpose flags. Every other kernel falls back to the next backend.
 */
import { createRequire } from 'node:module';
import { gemm as referenceGemm } from '../js/matmul.js';
import type { GemmArgs, Kernels } from '../kernels.js';

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
export const BLAS_CANDIDATES = [
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

let cached: { library: BlasLibrary | null; reason: string } | undefined;

/** Finds and loads a CBLAS library once; `reason` says why none was found. */
export function loadBlas(): { library: BlasLibrary | null; reason: string } {
  if (cached) return cached;
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    cached = { library: null, reason: `the koffi FFI package could not be loaded (${(e as Error).message})` };
    return cached;
  }
  const override = process.env.TENSORLM_BLAS;
  const candidates = override ? [override] : BLAS_CANDIDATES;
  for (const path of candidates) {
    const library = tryLoad(koffi, path);
    if (library) {
      // One BLAS thread unless asked otherwise: on small shared machines OpenBLAS's spinning
      // worker threads slowed a whole training step down (measured 4.5k vs 5.5k tokens/s here).
      const requested = Number(process.env.TENSORLM_THREADS ?? process.env.OPENBLAS_NUM_THREADS ?? process.env.BLIS_NUM_THREADS ?? 1);
      library.setNumThreads?.(Number.isInteger(requested) && requested > 0 ? requested : 1);
      cached = { library, reason: '' };
      return cached;
    }
  }
  cached = {
    library: null,
    reason: override
      ? `TENSORLM_BLAS=${override} could not be loaded or has no cblas_sgemm`
      : `no CBLAS library found (tried ${candidates.join(', ')}); on Debian/Ubuntu: apt-get install libopenblas0-pthread`,
  };
  return cached;
}

function view(a: Float32Array, offset: number): Float32Array {
  return offset === 0 ? a : a.subarray(offset);
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
