/**
 * The native backend: the kernels of kernels.c — GEMM, flash and decode attention, GELU, add/sub/
 * mul/div, strided copies, softmax, norms, sums and AdamW — compiled for this machine's CPU by its
 * C compiler on first use and called through koffi (as BLAS is), on top of the `blas` backend
 * (which keeps matrix-vector and multithreaded products) or else `wasm`.
 *
 * Why: the WebAssembly kernels copy every operand into their own memory and back, and SIMD128 is a
 * quarter of an AVX-512 register; on a tiny training step they spent ~60 ms of 240 in GELU,
 * softmax, norms, adds and Adam, and OpenBLAS ran backward's transposed products at 72–75 GFLOPS
 * (docs/performance.md). Here the C reads the tensors' own typed arrays by pointer and the
 * compiler targets the CPU it runs on (`-march=native`).
 *
 * Like tinygrad's CPU backend and torch.utils.cpp_extension, the source is compiled when it is
 * first needed, not at install: `findCompiler` only looks for a compiler on disk (CC, else cc,
 * gcc, clang on PATH), which is enough to register the backend; `loadNative` compiles into
 * ~/.cache/tensorlm/native (a key of the source, compiler, flags and CPU names the file, so a new
 * source, compiler or machine compiles again; written to a temporary name and renamed, so
 * concurrent processes never load a half-written library) and loads it. Without a compiler the
 * backend is unavailable and the next one (blas, wasm) runs; TENSORLM_NATIVE=0 leaves it out.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, homedir, platform, tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compilerEnv } from '../../env.js';
import type {
  AdamStepArgs,
  BinaryOp,
  DecodeAttentionArgs,
  FlashAttentionArgs,
  FlashAttentionBackwardArgs,
  GemmArgs,
  GeluWithDerivativeArgs,
  Kernels,
  LayerNormArgs,
  LayerNormBackwardArgs,
  ReduceArgs,
  RmsNormArgs,
  RmsNormBackwardArgs,
  ScaledSoftmaxArgs,
  SoftmaxArgs,
  SoftmaxBackwardArgs,
  StridedArray,
  UnaryOp,
} from '../kernels.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { collapseDims } from '../../tensor/shape.js';
import { view } from '../blas/index.js';
import { adamScalars } from '../js/fused.js';
import { binaryLayout } from '../wasm/index.js';

/** The compiler flags: -O3 for this CPU; no implicit a·b+c fusion; libm's errno ignored so sqrt vectorizes. */
const FLAGS = ['-O3', '-march=native', '-ffp-contract=off', '-fno-math-errno', '-shared', '-fPIC', '-std=c11', '-w'];

/** Below this many elements a kernel call's FFI cost (~0.1–0.3 µs) is more than the JS loop takes. */
const MIN_ELEMENTS = 512;
/** Row-wise kernels (norms) from this many elements: a decoded token's one row of 128 costs ~1 µs in the JS loop, ~0.3 µs here. */
const MIN_ROW_ELEMENTS = 64;
/** Products below this many multiply-adds go to the base backend (BLAS's own small-product path). */
const MIN_GEMM = 16 * 16 * 16;
/** From this many multiply-adds a product may use several BLAS threads (blas/index.ts: PARALLEL_MIN); the native GEMM is single-threaded. */
const PARALLEL_GEMM = 1 << 20;

export interface NativeSearch {
  /** The compiler to use (a path or a name on PATH), or null. */
  compiler: string | null;
  /** Why the backend cannot run, when compiler is null. */
  reason: string;
}

/** The C source, next to this module (src/ under tsx, dist/ after the build, which copies it). */
function sourcePath(): string {
  return fileURLToPath(new URL('./kernels.c', import.meta.url));
}

function onPath(name: string): string | null {
  if (isAbsolute(name)) return existsSync(name) ? name : null;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** Looks for a C compiler and the source on disk, without running anything (TENSORLM_NATIVE=0 is the installer's to check). */
export function findCompiler(): NativeSearch {
  if (platform() === 'win32') return { compiler: null, reason: 'native kernels are built with a Unix C compiler; not on Windows' };
  if (!existsSync(sourcePath())) return { compiler: null, reason: `the kernel source ${sourcePath()} is missing` };
  const requested = compilerEnv();
  const names = requested ? [requested] : ['cc', 'gcc', 'clang'];
  for (const name of names) {
    const path = onPath(name);
    if (path) return { compiler: path, reason: '' };
  }
  return {
    compiler: null,
    reason: requested ? `CC=${requested} was not found` : 'no C compiler found (looked for cc, gcc, clang on PATH); on Debian/Ubuntu: apt-get install gcc',
  };
}

type Fn = (...args: unknown[]) => unknown;
interface KoffiLib {
  func(signature: string): Fn;
}

export interface NativeLibrary {
  path: string;
  gelu: Fn;
  geluWithDerivative: Fn;
  binary: Fn;
  sumRows: Fn;
  sumMiddle: Fn;
  softmax: Fn;
  scaledSoftmax: Fn;
  softmaxBackward: Fn;
  norm: Fn;
  normBackward: Fn;
  adam: Fn;
  flashForward: Fn;
  flashBackward: Fn;
  gemm: Fn;
  decodeAttention: Fn;
  /** The GEMM tile's width in columns (32 with AVX-512, 16 otherwise). */
  gemmPanel: number;
  copy4: Fn;
}

/** Where compiled libraries are kept: ~/.cache/tensorlm/native, else the temporary directory. */
function cacheDir(): string {
  for (const base of [join(homedir(), '.cache', 'tensorlm'), join(tmpdir(), 'tensorlm')]) {
    const dir = join(base, 'native');
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      // not writable: try the next
    }
  }
  throw new Error(`no writable cache directory for the native kernels (tried ~/.cache/tensorlm and ${tmpdir()})`);
}

/** Compiles kernels.c (unless this source, compiler and CPU were compiled before) and returns the library's path. */
function compile(compiler: string): string {
  const source = readFileSync(sourcePath());
  const version = execFileSync(compiler, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const key = createHash('sha256')
    .update(source)
    .update(`\0${compiler}\0${version}\0${FLAGS.join(' ')}\0${arch()}\0${cpus()[0]?.model ?? ''}`)
    .digest('hex')
    .slice(0, 20);
  const dir = cacheDir();
  const target = join(dir, `kernels-${key}.so`);
  if (existsSync(target)) return target;
  const temporary = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    execFileSync(compiler, [...FLAGS, '-o', temporary, sourcePath(), '-lm'], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(temporary, target);
  } catch (e) {
    rmSync(temporary, { force: true });
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n')[0];
    throw new Error(`${compiler} failed on ${sourcePath()}${stderr ? `: ${stderr}` : ''}`);
  }
  return target;
}

let loaded: { library: NativeLibrary | null; reason: string } | undefined;

/** Compiles with `compiler` (findCompiler's; once per source, compiler and CPU) and loads the native kernels; `reason` says why not. */
export function loadNative(compiler: string): { library: NativeLibrary | null; reason: string } {
  if (loaded) return loaded;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): KoffiLib };
    const path = compile(compiler);
    const lib = koffi.load(path);
    const f = (signature: string) => lib.func(signature);
    loaded = {
      library: {
        path,
        gelu: f('void tlm_gelu(const float *x, float *out, long n)'),
        geluWithDerivative: f('void tlm_gelu_with_derivative(const float *x, float *out, float *deriv, long n)'),
        binary: f('void tlm_binary(int op, const float *a, int aKind, const float *b, int bKind, float *out, long rows, long cols)'),
        sumRows: f('void tlm_sum_rows(const float *x, float *out, long rows, long cols)'),
        sumMiddle: f('int tlm_sum_middle(const float *x, float *out, long outer, long size, long inner)'),
        softmax: f('void tlm_softmax(const float *x, float *out, long rows, long cols, int log)'),
        scaledSoftmax: f('void tlm_scaled_softmax(const float *x, float *out, long rows, long cols, long tq, float scale, int causal, long causalOffset)'),
        softmaxBackward: f('void tlm_softmax_backward(const float *y, const float *g, float *out, long rows, long cols, int log)'),
        norm: f('void tlm_norm(const float *x, float *out, float *mean, float *rstd, const float *w, const float *b, long rows, long cols, double eps, int center)'),
        normBackward: f(
          'int tlm_norm_backward(const float *x, const float *g, const float *mean, const float *rstd, const float *w, float *dx, float *dw, float *db, long rows, long cols, int center)',
        ),
        adam: f(
          'void tlm_adam(float *param, const float *grad, float *m, float *v, float *vmax, long n, int flags, double decay, double weightDecay, double oneMinusBeta1, double beta2, double oneMinusBeta2, double bc2Sqrt, double eps, double stepSize)',
        ),
        flashForward: f(
          'int tlm_flash_forward(const float *q, const float *k, const float *v, float *out, float *lse, long heads, long group, long tq, long tk, long d, long dv, float scale, int causal, long off, long window)',
        ),
        flashBackward: f(
          'int tlm_flash_backward(const float *q, const float *k, const float *v, const float *out, const float *lse, const float *dOut, float *dq, float *dk, float *dv, long heads, long group, long tq, long tk, long d, long dw, float scale, int causal, long off, long window)',
        ),
        gemm: f(
          'int tlm_gemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda, long strideA, const float *b, long ldb, long strideB, float beta, float *c, long ldc, long strideC, long batch)',
        ),
        gemmPanel: f('int tlm_gemm_panel(void)')() as number,
        decodeAttention: f(
          'void tlm_decode_attention(const float *q, const float *k, const float *v, long slots, long n, long heads, long kvHeads, long dim, float scale, float *out, float *scores)',
        ),
        copy4: f('void tlm_copy4(const void *src, void *dst, long n0, long n1, long n2, long n3, long s0, long s1, long s2, long s3, long d0, long d1, long d2, long d3)'),
      },
      reason: '',
    };
  } catch (e) {
    loaded = { library: null, reason: `the native kernels could not be built or loaded (${(e as Error).message})` };
  }
  return loaded;
}


/** kernels.c's op numbers; the operand kinds are binaryLayout's (FULL 0, ROW 1, COL 2, SCALAR 3), as kernels.c numbers them. */
const BINARY_CODES: Partial<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, div: 3, geluBackward: 4 };

const isF32 = (x: TypedArray | null): x is Float32Array => x instanceof Float32Array;

/** decodeAttention's scores, grown to the longest cache seen (one per thread: each has its own module instance). */
let decodeScores = new Float32Array(0);

/** The kernels `nativeKernels` implements: the lazy stand-ins (backends/node.ts) cover exactly these. */
export const NATIVE_KERNEL_NAMES: readonly (keyof Kernels)[] = [
  'gemm',
  'copy',
  'unary',
  'geluWithDerivative',
  'binary',
  'reduce',
  'softmax',
  'scaledSoftmax',
  'softmaxBackward',
  'layerNorm',
  'rmsNorm',
  'layerNormBackward',
  'rmsNormBackward',
  'flashAttentionForward',
  'flashAttentionBackward',
  'decodeAttention',
  'adamStep',
];

/**
 * The kernel table over a loaded library. Each kernel takes the layouts kernels.c handles and
 * hands anything else (other dtypes or ops, strided operands, tiny sizes) to `base`, the kernels
 * of the backend underneath.
 */
export function nativeKernels(lib: NativeLibrary, base: Kernels, threads: () => number = () => 1): Partial<Kernels> {
  return {
    // Matrix products of training's shapes (k or n of a few hundred): 1.1–1.4× OpenBLAS here,
    // since the transposes are read in place (docs/performance.md). Vectors (m or n = 1) keep
    // sgemv, and products big enough for several threads keep BLAS when more than one is asked for.
    gemm(g: GemmArgs): void {
      const size = g.m * g.n * g.k;
      // n is padded to whole tiles: a 65-column output (tiny's head) would compute 96.
      const padded = Math.ceil(g.n / lib.gemmPanel) * lib.gemmPanel;
      if (size < MIN_GEMM || padded > 1.15 * g.n || g.m === 1 || g.n === 1 || g.batch === 0 || (g.strideC === 0 && g.batch > 1) || (size >= PARALLEL_GEMM && threads() > 1)) return base.gemm(g);
      const ok = lib.gemm(g.transA ? 1 : 0, g.transB ? 1 : 0, g.m, g.n, g.k, g.alpha, view(g.a, g.aOffset), g.lda, g.strideA, view(g.b, g.bOffset), g.ldb, g.strideB, g.beta, view(g.c, g.cOffset), g.ldc, g.strideC, g.batch);
      if (ok !== 0) base.gemm(g); // no scratch memory: nothing was written
    },
    // Strided copies (head transposes, contiguous()): the JS loop walks short rows one element at a time.
    copy(shape: readonly number[], src: StridedArray, dst: StridedArray): void {
      const s = src.data;
      const d = dst.data;
      let n = 1;
      for (const e of shape) n *= e;
      if (n < MIN_ELEMENTS || s.BYTES_PER_ELEMENT !== 4 || s.constructor !== d.constructor) return base.copy(shape, src, dst);
      const c = collapseDims(shape, [src.strides, dst.strides]);
      const rank = c.shape.length;
      if (rank > 4) return base.copy(shape, src, dst);
      // Leading dims of 1 (stride 0) pad the merged shape to four.
      const dims = [1, 1, 1, 1];
      const ss = [0, 0, 0, 0];
      const ds = [0, 0, 0, 0];
      for (let i = 0; i < rank; i++) {
        dims[4 - rank + i] = c.shape[i];
        ss[4 - rank + i] = c.strides[0][i];
        ds[4 - rank + i] = c.strides[1][i];
      }
      lib.copy4(view(s, src.offset), view(d, dst.offset), dims[0], dims[1], dims[2], dims[3], ss[0], ss[1], ss[2], ss[3], ds[0], ds[1], ds[2], ds[3]);
    },
    // GELU's three kernels come from one formula (training's forward must equal inference's bit for bit).
    unary(op: UnaryOp, x: TypedArray, xOffset: number, n: number, out: TypedArray): void {
      if (op !== 'gelu' || n < MIN_ELEMENTS || !isF32(x) || !isF32(out)) return base.unary(op, x, xOffset, n, out);
      lib.gelu(view(x, xOffset), out, n);
    },
    geluWithDerivative(a: GeluWithDerivativeArgs): void {
      if (a.n < MIN_ELEMENTS) return base.geluWithDerivative(a);
      lib.geluWithDerivative(view(a.x, a.xOffset), a.out, a.deriv, a.n);
    },
    binary(op: BinaryOp, shape: readonly number[], a: StridedArray, b: StridedArray, out: TypedArray): void {
      const code = BINARY_CODES[op];
      const layout = code !== undefined && isF32(a.data) && isF32(b.data) && isF32(out) ? binaryLayout(shape, a.strides, b.strides) : null;
      if (code === undefined || !layout || layout.rows * layout.cols < MIN_ELEMENTS) return base.binary(op, shape, a, b, out);
      lib.binary(code, view(a.data, a.offset), layout.aKind, view(b.data, b.offset), layout.bKind, out, layout.rows, layout.cols);
    },
    reduce(a: ReduceArgs): void {
      const n = a.outer * a.size * a.inner;
      if (a.op !== 'sum' || n < MIN_ELEMENTS || a.size === 0 || !isF32(a.x) || !isF32(a.out)) return base.reduce(a);
      if (a.inner === 1) lib.sumRows(view(a.x, a.xOffset), a.out, a.outer, a.size);
      else if (lib.sumMiddle(view(a.x, a.xOffset), a.out, a.outer, a.size, a.inner) !== 0) base.reduce(a);
    },
    softmax(a: SoftmaxArgs): void {
      if (a.rows * a.cols < MIN_ELEMENTS) return base.softmax(a);
      lib.softmax(view(a.x, a.xOffset), a.out, a.rows, a.cols, a.log ? 1 : 0);
    },
    scaledSoftmax(a: ScaledSoftmaxArgs): void {
      if (a.rows * a.cols < MIN_ELEMENTS || a.tq < 1) return base.scaledSoftmax(a);
      lib.scaledSoftmax(view(a.x, a.xOffset), a.out, a.rows, a.cols, a.tq, a.scale, a.causal ? 1 : 0, a.causalOffset);
    },
    softmaxBackward(a: SoftmaxBackwardArgs): void {
      if (a.rows * a.cols < MIN_ELEMENTS) return base.softmaxBackward(a);
      lib.softmaxBackward(a.y, a.g, a.out, a.rows, a.cols, a.log ? 1 : 0);
    },
    layerNorm(a: LayerNormArgs): void {
      if (a.rows * a.cols < MIN_ROW_ELEMENTS) return base.layerNorm(a);
      lib.norm(a.x, a.out, a.mean, a.rstd, a.weight, a.bias, a.rows, a.cols, a.eps, 1);
    },
    rmsNorm(a: RmsNormArgs): void {
      if (a.rows * a.cols < MIN_ROW_ELEMENTS) return base.rmsNorm(a);
      lib.norm(a.x, a.out, null, a.rstd, a.weight, null, a.rows, a.cols, a.eps, 0);
    },
    layerNormBackward(a: LayerNormBackwardArgs): void {
      if (a.rows * a.cols < MIN_ROW_ELEMENTS) return base.layerNormBackward(a);
      if (lib.normBackward(a.x, a.g, a.mean, a.rstd, a.weight, a.dx, a.dWeight, a.dBias, a.rows, a.cols, 1) !== 0) base.layerNormBackward(a);
    },
    rmsNormBackward(a: RmsNormBackwardArgs): void {
      if (a.rows * a.cols < MIN_ROW_ELEMENTS) return base.rmsNormBackward(a);
      if (lib.normBackward(a.x, a.g, null, a.rstd, a.weight, a.dx, a.dWeight, null, a.rows, a.cols, 0) !== 0) base.rmsNormBackward(a);
    },
    flashAttentionForward(a: FlashAttentionArgs): void {
      if (a.heads * a.tq * a.tk * a.d < MIN_ELEMENTS) return base.flashAttentionForward(a);
      if (lib.flashForward(a.q, a.k, a.v, a.out, a.lse, a.heads, a.group, a.tq, a.tk, a.d, a.valueDim, a.scale, a.causal ? 1 : 0, a.causalOffset, a.window) !== 0) base.flashAttentionForward(a);
    },
    flashAttentionBackward(a: FlashAttentionBackwardArgs): void {
      if (a.heads * a.tq * a.tk * a.d < MIN_ELEMENTS) return base.flashAttentionBackward(a);
      if (lib.flashBackward(a.q, a.k, a.v, a.out, a.lse, a.dOut, a.dq, a.dk, a.dv, a.heads, a.group, a.tq, a.tk, a.d, a.valueDim, a.scale, a.causal ? 1 : 0, a.causalOffset, a.window) !== 0) base.flashAttentionBackward(a);
    },
    decodeAttention(a: DecodeAttentionArgs): void {
      if (a.n < 1 || a.heads % a.kvHeads !== 0) return base.decodeAttention(a);
      if (decodeScores.length < a.n) decodeScores = new Float32Array(Math.max(a.n, 2 * decodeScores.length));
      lib.decodeAttention(view(a.q, a.qOffset), view(a.k, a.kvOffset), view(a.v, a.kvOffset), a.slots, a.n, a.heads, a.kvHeads, a.dim, a.scale, view(a.out, a.outOffset), decodeScores);
    },
    adamStep(s: AdamStepArgs): void {
      const n = s.param.length;
      if (n < MIN_ELEMENTS) return base.adamStep(s);
      const { decay, bc2Sqrt, stepSize } = adamScalars(s);
      const flags = (s.decoupledWeightDecay !== 0 ? 1 : 0) | (s.weightDecay !== 0 ? 2 : 0);
      lib.adam(s.param, s.grad, s.expAvg, s.expAvgSq, s.maxExpAvgSq, n, flags, decay, s.weightDecay, 1 - s.beta1, s.beta2, 1 - s.beta2, bc2Sqrt, s.eps, stepSize);
    },
  };
}
