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

export interface BlasLibrary {
  path: string;
  sgemm: SgemmFn;
  setNumThreads: ((n: number) => void) | null;
  getNumThreads: (() => number) | null;
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
  const setOpen = optional('void openblas_set_num_threads(int n)');
  const getOpen = optional('int openblas_get_num_threads()');
  const setBlis = optional('void bli_thread_set_num_threads(int n)');
  const getBlis = optional('int bli_thread_get_num_threads()');
  const set = setOpen ?? setBlis;
  const get = getOpen ?? getBlis;
  return {
    path,
    sgemm,
    setNumThreads: set ? (n: number) => void set(n) : null,
    getNumThreads: get ? () => get() as number : null,
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

export function blasKernels(library: BlasLibrary): Partial<Kernels> {
  const { sgemm } = library;
  return {
    gemm(g: GemmArgs): void {
      if (g.m * g.n * g.k < SMALL_GEMM || g.m === 0 || g.n === 0) {
        referenceGemm(g);
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
