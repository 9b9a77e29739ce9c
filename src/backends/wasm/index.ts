/**
 * The WebAssembly SIMD backend: gemm, elementwise, sum/max/min reductions, softmax (plain and
 * scaled/causal), LayerNorm, RMSNorm, cross-entropy (forward and backward), the fused recurrent
 * cells (RNN, LSTM, GRU; forward and backward), flash attention (forward and backward), Mamba's
 * selective scan (forward and backward), the Adam step and the int8 GEMM of quantized models,
 * compiled from kernels.c (see tools/build-wasm.sh) and shipped as base64 in binary.ts, so it needs
 * no compiler at install and no file access at run time (browsers later).
 *
 * Tensors live in JavaScript typed arrays, not in WASM memory (design note 1), so each call copies
 * its inputs into a scratch arena in the module's linear memory, runs, and copies the result out.
 * The arena is a bump allocator that is reset after every call: memory grows to the largest call's
 * need and stays there, but nothing accumulates between calls (one exception: the int8 codes of
 * quantized layers, pinned below the arena at their first call; see gemmInt8). Elementwise work is streamed in
 * chunks that fit in L2, so it never needs a big arena. Inputs a kernel does not handle (other
 * dtypes, strided layouts, tiny sizes where the copy and call cost more than they save) go to the
 * reference JS kernels.
 *
 * Two builds exist: relaxed SIMD (fused multiply-add) and plain SIMD128. The relaxed one is used
 * when the engine validates it; on Node 20 that needs V8's --experimental-wasm-relaxed-simd flag,
 * which is set at run time before compiling. TENSORLM_WASM_SIMD=simd128 forces the plain build.
 * (On AMD Zen, whose separate add pipes keep mul+add at FMA rate, both run GEMM at the same speed;
 * on CPUs where adds share the FMA ports, fusing saves half the arithmetic instructions.)
 *
 * Big GEMMs are split across worker threads sharing one WebAssembly memory (gemm.ts):
 * TENSORLM_WASM_THREADS or setWasmThreads() sets how many threads, the caller included (default
 * min(cores, 2)); 1 turns workers off.
 */
import { wasmSimdEnv, wasmThreadsEnv } from '../../env.js';
import { adamScalars } from '../js/fused.js';
import { jsKernels } from '../js/index.js';
import { registerBackend } from '../registry.js';
import { collapseDims, contiguousStrides } from '../../tensor/shape.js';
import type {
  AdamStepArgs,
  BinaryOp,
  CrossEntropyArgs,
  CrossEntropyBackwardArgs,
  FlashAttentionArgs,
  FlashAttentionBackwardArgs,
  GeluWithDerivativeArgs,
  GemmArgs,
  DecodeAttentionArgs,
  GemmInt8Args,
  Kernels,
  LayerNormArgs,
  LayerNormBackwardArgs,
  RecurrentCellArgs,
  RecurrentCellBackwardArgs,
  RecurrentCellMode,
  ReduceArgs,
  ReduceOp,
  RmsNormArgs,
  RmsNormBackwardArgs,
  ScaledSoftmaxArgs,
  SelectiveScanArgs,
  SelectiveScanBackwardArgs,
  SoftmaxArgs,
  SoftmaxBackwardArgs,
  StridedArray,
  UnaryOp,
} from '../kernels.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { Arena, WebAssemblyApi, type WasmApi, type WasmMemory } from './arena.js';
import { relaxedSimdBase64, relaxedSimdThreadsBase64, simd128Base64, simd128ThreadsBase64 } from './binary.js';
import { constantInt8Layer, int8Gemm, partArgs, stageGemm, stageInt8Layer, ThreadedGemm, type Int8Exports, type Int8Layer, type WorkerThreadsModule } from './gemm.js';

export type WasmSimdVariant = 'relaxed-simd' | 'simd128';

export interface WasmInfo {
  available: boolean;
  /** The build in use, or null when none can run. */
  variant: WasmSimdVariant | null;
  /** Every build this engine accepts (the bench compares them). */
  variants: WasmSimdVariant[];
  /** Why the backend cannot run here, or null when it can. */
  reason: string | null;
}

/** Op codes: the order of the enums in kernels.c. */
const UNARY_CODES: Partial<Record<UnaryOp, number>> = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  rsqrt: 4,
  abs: 5,
  tanh: 6,
  sigmoid: 7,
  relu: 8,
  square: 9,
  gelu: 10,
  geluTanh: 11,
  silu: 12,
};

const BINARY_CODES: Partial<Record<BinaryOp, number>> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  maximum: 4,
  minimum: 5,
  reluBackward: 6,
  geluBackward: 7,
  geluTanhBackward: 8,
  siluBackward: 9,
};

const REDUCE_CODES: Partial<Record<ReduceOp, number>> = { sum: 0, max: 1, min: 2 };

/** Recurrent cell modes (the R_* enum in kernels.c) and their gate counts (G = gates · H). */
const RECURRENT_CODES: Record<RecurrentCellMode, number> = { rnnTanh: 0, rnnRelu: 1, lstm: 2, gru: 3 };
const RECURRENT_GATES = [1, 1, 4, 3];

/** Operand layouts of a [rows, cols] binary op (the K_* enum in kernels.c). */
const FULL = 0;
const ROW = 1;
const COL = 2;
const SCALAR = 3;

/**
 * Below these sizes the reference kernel wins: a WASM call with its copies has a fixed cost of
 * about a microsecond, which a plain JS loop spends on a few hundred elements. Tests set them to 0
 * (setWasmSizeThresholds) to run every size through WASM.
 */
let MIN_ELEMENTWISE = 256;
let MIN_GEMM_FLOPS = 16 * 16 * 16;

/**
 * GEMMs of at least this many multiply-adds (all batches; 256³ ≈ 0.35 ms on one thread) are split
 * across threads. Below it the hand-off — waking a worker costs 20–50 µs, far more when the host is
 * busy and the worker waits for a core — eats what the split saves (measured: 128³ split over 2
 * threads ran slower than on 1 on the shared 2-core host).
 */
let MIN_THREADED_GEMM_FLOPS = 256 * 256 * 256;

/**
 * Int8 GEMMs whose weight matrix has at least this many codes go to the threaded module (its
 * codes then stay pinned there). The test is on the weights alone, not the rows, so that one layer
 * always runs in one module and its codes are pinned once: a 1024 × 1024 matrix-vector product
 * takes ~0.1 ms on one thread, several times a worker's wake-up.
 */
let MIN_THREADED_INT8_CODES = 1024 * 1024;

/**
 * Threads for big GEMMs, the calling one included: setWasmThreads(), else TENSORLM_WASM_THREADS,
 * else min(cores, 2). Null until first needed: the environment is read then, not at import.
 */
let threadCount: number | null = null;

function defaultThreads(): number {
  const fromEnv = wasmThreadsEnv();
  if (fromEnv !== undefined) return fromEnv;
  const os = nodeProcess()?.getBuiltinModule?.('node:os') as { availableParallelism?: () => number } | undefined;
  return Math.max(1, Math.min(2, os?.availableParallelism?.() ?? 1));
}

/** Sets the number of threads big GEMMs use (1 = no workers); returns the previous number. */
export function setWasmThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setWasmThreads: expected a positive integer, got ${n}`);
  const previous = getWasmThreads();
  threadCount = n;
  return previous;
}

export function getWasmThreads(): number {
  return (threadCount ??= defaultThreads());
}

export interface WasmSizeThresholds {
  /** Elementwise, softmax, reduction and optimizer calls with fewer elements use the reference. */
  elementwise: number;
  /** GEMMs with fewer multiply-adds (m·n·k) use the reference. */
  gemm: number;
  /** GEMMs with fewer multiply-adds over all batches run on one thread. */
  threadedGemm: number;
  /** Codes (n·k) from which an int8 GEMM is split across threads. */
  threadedInt8: number;
}

/** Changes the small-size cut-offs (for tests and benchmarks); returns the previous ones. */
export function setWasmSizeThresholds(t: Partial<WasmSizeThresholds>): WasmSizeThresholds {
  const previous = { elementwise: MIN_ELEMENTWISE, gemm: MIN_GEMM_FLOPS, threadedGemm: MIN_THREADED_GEMM_FLOPS, threadedInt8: MIN_THREADED_INT8_CODES };
  if (t.elementwise !== undefined) MIN_ELEMENTWISE = t.elementwise;
  if (t.gemm !== undefined) MIN_GEMM_FLOPS = t.gemm;
  if (t.threadedGemm !== undefined) MIN_THREADED_GEMM_FLOPS = t.threadedGemm;
  if (t.threadedInt8 !== undefined) MIN_THREADED_INT8_CODES = t.threadedInt8;
  return previous;
}

/**
 * The most bytes of constant int8 codes (quantized layers) one module pins in its memory: 1 GiB of
 * the 4 GiB a wasm32 memory can reach. Pinned bytes are never returned (codes whose layer was
 * dropped stay until the process ends); past the cap, codes are copied at every call.
 */
const PINNED_CODES_MAX = 1 << 30;

/** Elementwise work is streamed through the arena in chunks this many floats long (64 KiB). */
const CHUNK = 16384;

interface KernelExports extends Int8Exports {
  memory: WasmMemory;
  __heap_base: { value: number };
  unary_f32(op: number, x: number, out: number, n: number): void;
  binary_f32(op: number, a: number, aKind: number, b: number, bKind: number, out: number, rows: number, cols: number): void;
  reduce_rows_f32(op: number, x: number, out: number, rows: number, cols: number): void;
  reduce_cols_sum_f32(x: number, acc: number, rows: number, inner: number, first: number): void;
  reduce_cols_minmax_f32(isMax: number, x: number, acc: number, rows: number, inner: number, first: number): void;
  softmax_f32(x: number, out: number, rows: number, cols: number, log: number): void;
  softmax_backward_f32(y: number, g: number, out: number, rows: number, cols: number, log: number): void;
  gelu_with_derivative_f32(x: number, out: number, deriv: number, n: number): void;
  scaled_softmax_f32(x: number, out: number, rows: number, cols: number, tq: number, rowStart: number, scale: number, causal: number, causalOffset: number): void;
  layer_norm_f32(x: number, out: number, mean: number, rstd: number, w: number, b: number, rows: number, cols: number, eps: number, flags: number): void;
  layer_norm_backward_f32(x: number, g: number, mean: number, rstd: number, w: number, dx: number, dw: number, db: number, rows: number, cols: number, flags: number): void;
  rms_norm_f32(x: number, out: number, rstd: number, w: number, rows: number, cols: number, eps: number, flags: number): void;
  rms_norm_backward_f32(x: number, g: number, rstd: number, w: number, dx: number, dw: number, rows: number, cols: number, flags: number): void;
  cross_entropy_f32(logits: number, targets: number, losses: number, rowMax: number, rowLogSum: number, rows: number, classes: number, ignoreIndex: number, smoothing: number): void;
  cross_entropy_backward_f32(
    logits: number,
    targets: number,
    rowMax: number,
    rowLogSum: number,
    rowScale: number,
    dlogits: number,
    rows: number,
    classes: number,
    ignoreIndex: number,
    smoothing: number,
  ): void;
  recurrent_cell_f32(mode: number, gi: number, gh: number, h: number, c: number, hOut: number, cOut: number, saved: number, rows: number, hidden: number): void;
  recurrent_cell_backward_f32(
    mode: number,
    saved: number,
    hOut: number,
    h: number,
    c: number,
    cOut: number,
    dh: number,
    dc: number,
    dGi: number,
    dGh: number,
    dhPrev: number,
    rows: number,
    hidden: number,
  ): void;
  adam_f32(
    param: number,
    grad: number,
    m: number,
    v: number,
    vmax: number,
    n: number,
    flags: number,
    decay: number,
    weightDecay: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    bc2Sqrt: number,
    eps: number,
    stepSize: number,
  ): void;
  flash_attention_forward_f32(...args: number[]): void;
  flash_attention_backward_f32(...args: number[]): void;
  /** (x, dt, a, bm, cm, dskip, h0, y, hlast, L, D, Np) */
  selective_scan_forward_f32(...args: number[]): void;
  /** (x, dt, a, bm, cm, dskip, h0, gy, dx, ddt, dA, dB, dC, dD, dh0, hs, dec, dBf, dCf, L, D, Np) */
  selective_scan_backward_f32(...args: number[]): void;
  /** (q, k, v, scores, out, heads, kvHeads, n, dim, ldkv, scale): attention of one token over the KV cache. */
  decode_attention_f32(q: number, k: number, v: number, scores: number, out: number, heads: number, kvHeads: number, n: number, dim: number, ldkv: number, scale: number): void;
  // The int8 GEMM: quantize_q8_rows, q8_block_sums, gemm_int8_q (Int8Exports, gemm.ts).
  gemm_workspace_floats(m: number, n: number, k: number): number;
  /** (transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch, ws) */
  gemm_f32(...args: number[]): void;
}

function decodeBase64(text: string): Uint8Array {
  const NodeBuffer = (globalThis as { Buffer?: { from(s: string, enc: string): Uint8Array } }).Buffer;
  if (NodeBuffer) return NodeBuffer.from(text, 'base64');
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Node's process object when there is one (not in browsers). */
function nodeProcess(): (typeof globalThis)['process'] | undefined {
  return (globalThis as { process?: (typeof globalThis)['process'] }).process;
}

/**
 * Relaxed SIMD is on by default from V8 11.4 (Chrome 114, Node 22); Node 20 has it behind a flag
 * that can still be set before the first relaxed module is compiled.
 */
function acceptsRelaxed(wasm: WasmApi, bytes: Uint8Array): boolean {
  if (wasm.validate(bytes)) return true;
  try {
    const v8 = nodeProcess()?.getBuiltinModule?.('node:v8') as { setFlagsFromString(flags: string): void } | undefined;
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return wasm.validate(bytes);
}

/** How a staged buffer moves between the caller's arrays and the arena (see `streamRows`). */
const PER_ROW = 0;
const PER_CALL = 1;
const SUM64 = 2;

/**
 * One arena buffer of a row-streamed kernel call, made by `rowsIn`, `rowsOut`, `rowsInOut`,
 * `perCall` or `sum64` below. One class for all of them keeps the helper's property reads
 * monomorphic: it runs on every WASM call, and at a few hundred elements its overhead counts.
 */
class Staged {
  constructor(
    readonly kind: typeof PER_ROW | typeof PER_CALL | typeof SUM64,
    /** Elements per row (PER_ROW), floats per call (PER_CALL) or doubles (SUM64). */
    readonly size: number,
    readonly from: Float32Array | Int32Array | null,
    readonly offset: number,
    /** Where results go: rows out, or the float32 array a SUM64 accumulator is added into. */
    readonly to: Float32Array | null,
  ) {}
}

/** `perRow` elements per row, copied in from `from` (at offset + r·perRow); int32 sources are copied as int32. */
function rowsIn(perRow: number, from: Float32Array | Int32Array, offset = 0): Staged {
  return new Staged(PER_ROW, perRow, from, offset, null);
}

/** `perRow` elements per row that the kernel writes, copied out to `to` (at r·perRow). */
function rowsOut(perRow: number, to: Float32Array): Staged {
  return new Staged(PER_ROW, perRow, null, 0, to);
}

/** Copied in from `from` and out to `to`: the kernel works in place (or writes its result over this input). */
function rowsInOut(perRow: number, from: Float32Array, to: Float32Array | null, offset = 0): Staged {
  return new Staged(PER_ROW, perRow, from, offset, to);
}

/** `size` floats for the whole call (a weight, a broadcast row or scalar), copied in before the first chunk. */
function perCall(size: number, from: Float32Array, offset = 0): Staged {
  return new Staged(PER_CALL, size, from, offset, null);
}

/**
 * A float64 accumulator of `size` doubles, zeroed before the first chunk and added into `addTo`
 * after the last: column sums over every chunk round to float32 once.
 */
function sum64(size: number, addTo: Float32Array): Staged {
  return new Staged(SUM64, size, null, 0, addTo);
}

/** A kernel call streamed through the arena in chunks of whole rows. */
interface RowStream<K extends string> {
  rows: number;
  /** The buffers, allocated in this order; null (an absent weight, say) reaches the kernel as address 0. */
  buffers: Record<K, Staged | null>;
  /** One kernel call on rows [r, r + nr), given each buffer's byte address. */
  call(p: Record<K, number>, r: number, nr: number): void;
}

/**
 * The marshalling every row-wise WASM kernel shares: allocates the buffers for a chunk of rows
 * (about CHUNK elements of the widest per-row buffer, at least one row), copies the per-call
 * buffers in once, then for each chunk copies the rows in, calls the kernel and copies the results
 * out, and finally adds the float64 accumulators into their targets. Runs inside `Arena.run`.
 */
function streamRows<K extends string>(arena: Arena, { rows, buffers, call }: RowStream<K>): void {
  const names = Object.keys(buffers) as K[];
  const count = names.length;
  const staged = new Array<Staged | null>(count);
  let width = 1;
  for (let i = 0; i < count; i++) {
    const b = buffers[names[i]];
    staged[i] = b;
    if (b !== null && b.kind === PER_ROW && b.size > width) width = b.size;
  }
  const chunkRows = Math.min(rows, Math.max(1, Math.floor(CHUNK / width)));
  const at = new Array<number>(count); // float index of each buffer
  const p = {} as Record<K, number>; // byte addresses, for the kernel
  for (let i = 0; i < count; i++) {
    const b = staged[i];
    at[i] = b === null ? 0 : arena.alloc(b.kind === PER_ROW ? chunkRows * b.size : b.kind === PER_CALL ? b.size : 2 * b.size);
    p[names[i]] = at[i] * 4;
  }
  // Views are taken after the last alloc: growing the memory replaces its buffer.
  const floats = arena.floats();
  let ints: Int32Array | null = null;
  for (let i = 0; i < count; i++) {
    const b = staged[i];
    if (b?.kind === PER_CALL && b.from) floats.set(b.from.subarray(b.offset, b.offset + b.size), at[i]);
    else if (b?.kind === SUM64) new Float64Array(floats.buffer, at[i] * 4, b.size).fill(0);
  }
  for (let r = 0; r < rows; r += chunkRows) {
    const nr = Math.min(chunkRows, rows - r);
    for (let i = 0; i < count; i++) {
      const b = staged[i];
      if (b?.kind !== PER_ROW || !b.from) continue;
      const src = b.from.subarray(b.offset + r * b.size, b.offset + (r + nr) * b.size);
      if (src instanceof Int32Array) (ints ??= new Int32Array(floats.buffer)).set(src, at[i]);
      else floats.set(src, at[i]);
    }
    call(p, r, nr);
    for (let i = 0; i < count; i++) {
      const b = staged[i];
      if (b?.kind === PER_ROW && b.to) b.to.set(floats.subarray(at[i], at[i] + nr * b.size), r * b.size);
    }
  }
  for (let i = 0; i < count; i++) {
    const b = staged[i];
    if (b?.kind !== SUM64 || !b.to) continue;
    const sum = new Float64Array(floats.buffer, at[i] * 4, b.size);
    for (let j = 0; j < b.size; j++) b.to[j] += sum[j];
  }
}

/** One instantiated build: its exports and the scratch arena over its linear memory. */
class WasmModule {
  private readonly x: KernelExports;
  private readonly arena: Arena;
  /** The multithreaded GEMM of the same build, created at the first GEMM big enough for it. */
  private threaded: ThreadedGemm | null | undefined;

  constructor(
    private readonly wasm: WasmApi,
    bytes: Uint8Array,
    /** The GEMM-only shared-memory build, for threads. */
    private readonly threadsBytes: Uint8Array,
  ) {
    const instance = new wasm.Instance(new wasm.Module(bytes), {});
    this.x = instance.exports as unknown as KernelExports;
    this.arena = new Arena(this.x.memory, Number(this.x.__heap_base.value));
  }

  private alloc(count: number): number {
    return this.arena.alloc(count);
  }

  private floats(): Float32Array {
    return this.arena.floats();
  }

  private run(body: () => void, fallback: () => void): void {
    this.arena.run(body, fallback);
  }

  /** Runs one row-streamed kernel call (see `streamRows`) on a fresh arena, or `fallback` when memory cannot grow. */
  private stream<K extends string>(spec: RowStream<K>, fallback: () => void): void {
    this.arena.run(() => streamRows(this.arena, spec), fallback);
  }

  unary(op: UnaryOp, x: TypedArray, xOffset: number, n: number, out: TypedArray): void {
    const code = UNARY_CODES[op];
    if (code === undefined || n < MIN_ELEMENTWISE || n === 0 || !(x instanceof Float32Array) || !(out instanceof Float32Array)) {
      jsKernels.unary(op, x, xOffset, n, out);
      return;
    }
    if (n <= CHUNK) {
      // One chunk (a decode step's activation: a few hundred floats) skips the row-stream
      // machinery, whose objects and closures cost several times the kernel at that size.
      this.unaryArgs = { code, op, x, xOffset, n, out };
      try {
        this.run(this.unaryBody, this.unaryFallback);
      } finally {
        this.unaryArgs = null;
      }
      return;
    }
    const fallback = () => jsKernels.unary(op, x, xOffset, n, out);
    // In place in one buffer: the kernel reads each vector before writing it.
    this.stream({ rows: n, buffers: { x: rowsInOut(1, x, out, xOffset) }, call: (p, _r, nr) => this.x.unary_f32(code, p.x, p.x, nr) }, fallback);
  }

  geluWithDerivative(a: GeluWithDerivativeArgs): void {
    const fallback = () => jsKernels.geluWithDerivative(a);
    if (a.n < MIN_ELEMENTWISE || a.n === 0) {
      fallback();
      return;
    }
    this.stream(
      {
        rows: a.n,
        // x is overwritten by out in place; the derivative goes to a second buffer.
        buffers: { x: rowsInOut(1, a.x, a.out, a.xOffset), deriv: rowsOut(1, a.deriv) },
        call: (p, _r, nr) => this.x.gelu_with_derivative_f32(p.x, p.x, p.deriv, nr),
      },
      fallback,
    );
  }

  binary(op: BinaryOp, shape: readonly number[], a: StridedArray, b: StridedArray, out: TypedArray): void {
    const code = BINARY_CODES[op];
    const layout =
      code !== undefined && a.data instanceof Float32Array && b.data instanceof Float32Array && out instanceof Float32Array
        ? binaryLayout(shape, a.strides, b.strides)
        : null;
    if (code === undefined || !layout || layout.rows * layout.cols < MIN_ELEMENTWISE || layout.rows * layout.cols === 0) {
      jsKernels.binary(op, shape, a, b, out);
      return;
    }
    const { rows, cols, aKind, bKind } = layout;
    const o = out as Float32Array;
    // The result overwrites a full operand's buffer (the kernel reads before it writes).
    const into = aKind === FULL ? 'a' : bKind === FULL ? 'b' : 'out';
    this.stream(
      {
        rows,
        buffers: {
          a: binaryOperand(a, aKind, cols, into === 'a' ? o : null),
          b: binaryOperand(b, bKind, cols, into === 'b' ? o : null),
          out: into === 'out' ? rowsOut(cols, o) : null,
        },
        call: (p, _r, nr) => this.x.binary_f32(code, p.a, aKind, p.b, bKind, into === 'a' ? p.a : into === 'b' ? p.b : p.out, nr, cols),
      },
      () => jsKernels.binary(op, shape, a, b, out),
    );
  }

  reduce(a: ReduceArgs): void {
    const { op, x, xOffset, outer, size, inner, out } = a;
    const code = REDUCE_CODES[op];
    const n = outer * size * inner;
    const fallback = () => jsKernels.reduce(a);
    if (code === undefined || size === 0 || n === 0 || n < MIN_ELEMENTWISE || !(x instanceof Float32Array) || !(out instanceof Float32Array)) {
      fallback();
      return;
    }
    if (inner === 1) {
      // Rows of the reduced axis: a chunk of whole rows per call.
      this.stream(
        {
          rows: outer,
          buffers: { x: rowsIn(size, x, xOffset), out: rowsOut(1, out) },
          call: (p, _r, nr) => this.x.reduce_rows_f32(code, p.x, p.out, nr, size),
        },
        fallback,
      );
      return;
    }
    this.run(() => {
      // Columns: for each outer index, stream [size, inner] in chunks of rows into an accumulator row.
      const chunkRows = Math.max(1, Math.floor(CHUNK / inner));
      const px = this.alloc(Math.min(size, chunkRows) * inner);
      const pacc = this.alloc(inner * 2); // double[inner] for sums, float[inner] for max/min
      const mem = this.floats();
      const acc = op === 'sum' ? new Float64Array(mem.buffer, pacc * 4, inner) : mem.subarray(pacc, pacc + inner);
      for (let o = 0; o < outer; o++) {
        const base = xOffset + o * size * inner;
        for (let s = 0; s < size; s += chunkRows) {
          const nr = Math.min(chunkRows, size - s);
          mem.set(x.subarray(base + s * inner, base + (s + nr) * inner), px);
          if (op === 'sum') this.x.reduce_cols_sum_f32(px * 4, pacc * 4, nr, inner, s === 0 ? 1 : 0);
          else this.x.reduce_cols_minmax_f32(op === 'max' ? 1 : 0, px * 4, pacc * 4, nr, inner, s === 0 ? 1 : 0);
        }
        out.set(acc, o * inner); // float64 sums round to float32 here, once
      }
    }, fallback);
  }

  softmax(a: SoftmaxArgs): void {
    const { rows, cols, log } = a;
    const fallback = () => jsKernels.softmax(a);
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      fallback();
      return;
    }
    this.stream(
      {
        rows,
        buffers: { x: rowsInOut(cols, a.x, a.out, a.xOffset) },
        call: (p, _r, nr) => this.x.softmax_f32(p.x, p.x, nr, cols, log ? 1 : 0), // in place
      },
      fallback,
    );
  }

  softmaxBackward(a: SoftmaxBackwardArgs): void {
    const { rows, cols, log } = a;
    const fallback = () => jsKernels.softmaxBackward(a);
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      fallback();
      return;
    }
    this.stream(
      {
        rows,
        buffers: { y: rowsIn(cols, a.y), g: rowsInOut(cols, a.g, a.out) },
        call: (p, _r, nr) => this.x.softmax_backward_f32(p.y, p.g, p.g, nr, cols, log ? 1 : 0), // result over g
      },
      fallback,
    );
  }

  scaledSoftmax(a: ScaledSoftmaxArgs): void {
    const { rows, cols, tq, scale, causal, causalOffset } = a;
    const fallback = () => jsKernels.scaledSoftmax(a);
    // Odd arguments (a causal mask without whole query blocks, offsets beyond int32) keep the reference's meaning.
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0 || (causal && !(tq >= 1 && Number.isInteger(tq) && Math.abs(causalOffset) < 2 ** 30 && Number.isInteger(causalOffset)))) {
      fallback();
      return;
    }
    this.stream(
      {
        rows,
        buffers: { x: rowsInOut(cols, a.x, a.out, a.xOffset) },
        // The global row start, so each row's query position (r mod tq) and causal limit are right.
        call: (p, r, nr) => this.x.scaled_softmax_f32(p.x, p.x, nr, cols, causal ? tq : 1, causal ? r % tq : 0, scale, causal ? 1 : 0, causalOffset), // in place
      },
      fallback,
    );
  }

  layerNorm(a: LayerNormArgs): void {
    const { rows, cols, weight, bias, eps } = a;
    // The small-size exit before any closure exists: a decode step's one-row norms take it, and
    // building (and, under tsx, naming) the fallback closure cost more than the norm itself.
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      jsKernels.layerNorm(a);
      return;
    }
    const fallback = () => jsKernels.layerNorm(a);
    const flags = (weight ? 1 : 0) | (bias ? 2 : 0);
    this.stream(
      {
        rows,
        buffers: {
          x: rowsInOut(cols, a.x, a.out),
          mean: rowsOut(1, a.mean),
          rstd: rowsOut(1, a.rstd),
          w: weight && perCall(cols, weight),
          b: bias && perCall(cols, bias),
        },
        call: (p, _r, nr) => this.x.layer_norm_f32(p.x, p.x, p.mean, p.rstd, p.w, p.b, nr, cols, eps, flags), // in place
      },
      fallback,
    );
  }

  layerNormBackward(a: LayerNormBackwardArgs): void {
    const { rows, cols, weight, dWeight, dBias } = a;
    const fallback = () => jsKernels.layerNormBackward(a);
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      fallback();
      return;
    }
    const flags = (weight ? 1 : 0) | (dWeight ? 2 : 0) | (dBias ? 4 : 0);
    this.stream(
      {
        rows,
        buffers: {
          x: rowsIn(cols, a.x),
          g: rowsInOut(cols, a.g, a.dx),
          mean: rowsIn(1, a.mean),
          rstd: rowsIn(1, a.rstd),
          w: weight && perCall(cols, weight),
          dw: dWeight && sum64(cols, dWeight),
          db: dBias && sum64(cols, dBias),
        },
        call: (p, _r, nr) => this.x.layer_norm_backward_f32(p.x, p.g, p.mean, p.rstd, p.w, p.g, p.dw, p.db, nr, cols, flags), // dx over g
      },
      fallback,
    );
  }

  rmsNorm(a: RmsNormArgs): void {
    const { rows, cols, weight, eps } = a;
    // The small-size exit before any closure exists: a decode step's one-row norms take it, and
    // building (and, under tsx, naming) the fallback closure cost more than the norm itself.
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      jsKernels.rmsNorm(a);
      return;
    }
    const fallback = () => jsKernels.rmsNorm(a);
    this.stream(
      {
        rows,
        buffers: { x: rowsInOut(cols, a.x, a.out), rstd: rowsOut(1, a.rstd), w: weight && perCall(cols, weight) },
        call: (p, _r, nr) => this.x.rms_norm_f32(p.x, p.x, p.rstd, p.w, nr, cols, eps, weight ? 1 : 0), // in place
      },
      fallback,
    );
  }

  rmsNormBackward(a: RmsNormBackwardArgs): void {
    const { rows, cols, weight, dWeight } = a;
    const fallback = () => jsKernels.rmsNormBackward(a);
    if (rows * cols < MIN_ELEMENTWISE || rows * cols === 0) {
      fallback();
      return;
    }
    const flags = (weight ? 1 : 0) | (dWeight ? 2 : 0);
    this.stream(
      {
        rows,
        buffers: {
          x: rowsIn(cols, a.x),
          g: rowsInOut(cols, a.g, a.dx),
          rstd: rowsIn(1, a.rstd),
          w: weight && perCall(cols, weight),
          dw: dWeight && sum64(cols, dWeight),
        },
        call: (p, _r, nr) => this.x.rms_norm_backward_f32(p.x, p.g, p.rstd, p.w, p.g, p.dw, nr, cols, flags), // dx over g
      },
      fallback,
    );
  }

  crossEntropy(a: CrossEntropyArgs): void {
    const { rows, classes, ignoreIndex, labelSmoothing } = a;
    const fallback = () => jsKernels.crossEntropy(a);
    if (rows * classes < MIN_ELEMENTWISE || rows * classes === 0 || !isInt32(ignoreIndex)) {
      fallback();
      return;
    }
    this.stream(
      {
        rows,
        buffers: {
          logits: rowsIn(classes, a.logits),
          targets: rowsIn(1, a.targets),
          losses: rowsOut(1, a.losses),
          rowMax: rowsOut(1, a.rowMax),
          rowLogSum: rowsOut(1, a.rowLogSum),
        },
        call: (p, _r, nr) => this.x.cross_entropy_f32(p.logits, p.targets, p.losses, p.rowMax, p.rowLogSum, nr, classes, ignoreIndex, labelSmoothing),
      },
      fallback,
    );
  }

  crossEntropyBackward(a: CrossEntropyBackwardArgs): void {
    const { rows, classes, ignoreIndex, labelSmoothing } = a;
    const fallback = () => jsKernels.crossEntropyBackward(a);
    if (rows * classes < MIN_ELEMENTWISE || rows * classes === 0 || !isInt32(ignoreIndex)) {
      fallback();
      return;
    }
    this.stream(
      {
        rows,
        buffers: {
          logits: rowsInOut(classes, a.logits, a.dlogits),
          targets: rowsIn(1, a.targets),
          rowMax: rowsIn(1, a.rowMax),
          rowLogSum: rowsIn(1, a.rowLogSum),
          rowScale: rowsIn(1, a.rowScale),
        },
        call: (p, _r, nr) =>
          this.x.cross_entropy_backward_f32(p.logits, p.targets, p.rowMax, p.rowLogSum, p.rowScale, p.logits, nr, classes, ignoreIndex, labelSmoothing), // in place
      },
      fallback,
    );
  }

  /**
   * One recurrent step: only the [B, width] blocks the step reads and writes travel (from their
   * offsets), streamed in chunks of whole batch rows; outputs go back through views at their offsets.
   */
  recurrentCell(a: RecurrentCellArgs): void {
    const { mode, batch: B, hidden: H } = a;
    const code = RECURRENT_CODES[mode] as number | undefined;
    const fallback = () => jsKernels.recurrentCell(a);
    const isLSTM = code === 2;
    if (code === undefined || B * H < MIN_ELEMENTWISE || B * H === 0 || (isLSTM && (!a.c || !a.cOut))) {
      fallback();
      return;
    }
    const G = RECURRENT_GATES[code] * H;
    const saved = code >= 2 ? a.saved : null; // RNN saves nothing
    this.stream(
      {
        rows: B,
        buffers: {
          gi: rowsIn(G, a.gi, a.giOffset),
          gh: rowsIn(G, a.gh, a.ghOffset),
          h: code === 3 ? rowsIn(H, a.h, a.hOffset) : null,
          c: isLSTM ? rowsIn(H, a.c as Float32Array, a.cOffset) : null,
          hOut: rowsOut(H, a.hOut.subarray(a.hOutOffset, a.hOutOffset + B * H)),
          cOut: isLSTM ? rowsOut(H, (a.cOut as Float32Array).subarray(a.cOutOffset, a.cOutOffset + B * H)) : null,
          saved: saved && rowsOut(4 * H, saved.subarray(a.savedOffset, a.savedOffset + B * 4 * H)),
        },
        call: (p, _r, nr) => this.x.recurrent_cell_f32(code, p.gi, p.gh, p.h, p.c, p.hOut, p.cOut, p.saved, nr, H),
      },
      fallback,
    );
  }

  /**
   * The adjoint step. dc is in place; dGh may be dGi itself (the same array and offset, as the op
   * passes for all but GRU): then one arena buffer serves both, written dGi first like the reference.
   */
  recurrentCellBackward(a: RecurrentCellBackwardArgs): void {
    const { mode, batch: B, hidden: H, dGi, dGh } = a;
    const code = RECURRENT_CODES[mode] as number | undefined;
    const fallback = () => jsKernels.recurrentCellBackward(a);
    const G = code === undefined ? 0 : RECURRENT_GATES[code] * H;
    const isLSTM = code === 2;
    const isRNN = code === 0 || code === 1;
    const shared = dGh === dGi && a.dGhOffset === a.dGiOffset;
    if (
      code === undefined ||
      B * H < MIN_ELEMENTWISE ||
      B * H === 0 ||
      (!isRNN && !a.saved) ||
      (isLSTM && (!a.c || !a.cOut || !a.dc)) ||
      // Partly overlapping gradient blocks keep the reference's element order.
      (dGh === dGi && !shared && Math.abs(a.dGhOffset - a.dGiOffset) < B * G)
    ) {
      fallback();
      return;
    }
    const dc = a.dc as Float32Array;
    this.stream(
      {
        rows: B,
        buffers: {
          saved: isRNN ? null : rowsIn(4 * H, a.saved as Float32Array, a.savedOffset),
          hOut: isRNN ? rowsIn(H, a.hOut, a.hOutOffset) : null,
          h: code === 3 ? rowsIn(H, a.h, a.hOffset) : null,
          c: isLSTM ? rowsIn(H, a.c as Float32Array, a.cOffset) : null,
          cOut: isLSTM ? rowsIn(H, a.cOut as Float32Array, a.cOutOffset) : null,
          dh: rowsIn(H, a.dh),
          dc: isLSTM ? rowsInOut(H, dc, dc) : null,
          dGi: rowsOut(G, dGi.subarray(a.dGiOffset, a.dGiOffset + B * G)),
          dGh: shared ? null : rowsOut(G, dGh.subarray(a.dGhOffset, a.dGhOffset + B * G)),
          dhPrev: rowsOut(H, a.dhPrev),
        },
        call: (p, _r, nr) =>
          this.x.recurrent_cell_backward_f32(code, p.saved, p.hOut, p.h, p.c, p.cOut, p.dh, p.dc, p.dGi, shared ? p.dGi : p.dGh, p.dhPrev, nr, H),
      },
      fallback,
    );
  }

  /**
   * Flash attention, one call per key/value head with its group of query heads: their rows are
   * copied into the arena zero-padded (queries to a multiple of 4 rows, keys to 8, D to 4) so the
   * kernel's 4×8 register tiles need no tails, and the arena holds O(T·D) floats at most.
   */
  flashAttentionForward(a: FlashAttentionArgs): void {
    const { heads, group, tq, tk, d, valueDim: dv, causal, causalOffset, window } = a;
    const fallback = () => jsKernels.flashAttentionForward(a);
    const pad = flashPadding(a);
    if (!pad) {
      fallback();
      return;
    }
    const { tqp, tkp, dp, dvp, qRows } = pad;
    this.run(() => {
      const pq = this.alloc(qRows * dp);
      const pk = this.alloc(tkp * dp);
      const pv = this.alloc(tkp * dvp);
      const pkt = this.alloc(tkp * dp);
      const pout = this.alloc(qRows * dvp);
      const plse = this.alloc(qRows);
      const ps = this.alloc(FLASH_BR * FLASH_BC);
      const pacc = this.alloc(FLASH_BR * dvp);
      const mem = this.floats();
      for (let kv = 0; kv < heads / group; kv++) {
        for (let g = 0; g < group; g++) padRows(mem, pq + g * tqp * dp, a.q, (kv * group + g) * tq * d, tq, tqp, d, dp);
        padRows(mem, pk, a.k, kv * tk * d, tk, tkp, d, dp);
        padRows(mem, pv, a.v, kv * tk * dv, tk, tkp, dv, dvp);
        this.x.flash_attention_forward_f32(pq * 4, pk * 4, pv * 4, pkt * 4, pout * 4, plse * 4, ps * 4, pacc * 4, group, tq, tk, dp, dvp, a.scale, causal ? 1 : 0, causalOffset, window);
        for (let g = 0; g < group; g++) {
          const n = kv * group + g;
          unpadRows(mem, pout + g * tqp * dvp, a.out, n * tq * dv, tq, dv, dvp);
          a.lse.set(mem.subarray(plse + g * tqp, plse + g * tqp + tq), n * tq);
        }
      }
    }, fallback);
  }

  flashAttentionBackward(a: FlashAttentionBackwardArgs): void {
    const { heads, group, tq, tk, d, valueDim: dv, causal, causalOffset, window } = a;
    const fallback = () => jsKernels.flashAttentionBackward(a);
    const pad = flashPadding(a);
    if (!pad) {
      fallback();
      return;
    }
    const { tqp, tkp, dp, dvp, qRows } = pad;
    this.run(() => {
      const pq = this.alloc(qRows * dp);
      const po = this.alloc(qRows * dvp);
      const pdo = this.alloc(qRows * dvp);
      const pdq = this.alloc(qRows * dp);
      const plse = this.alloc(qRows);
      const pdelta = this.alloc(qRows);
      const pk = this.alloc(tkp * dp);
      const pv = this.alloc(tkp * dvp);
      const pkt = this.alloc(tkp * dp);
      const pvt = this.alloc(tkp * dvp);
      const pdk = this.alloc(tkp * dp);
      const pdv = this.alloc(tkp * dvp);
      const ps = this.alloc(FLASH_BR * FLASH_BC);
      const pdp = this.alloc(FLASH_BR * FLASH_BC);
      const pt = this.alloc(FLASH_BR * FLASH_BC);
      const mem = this.floats();
      for (let kv = 0; kv < heads / group; kv++) {
        for (let g = 0; g < group; g++) {
          const n = kv * group + g;
          padRows(mem, pq + g * tqp * dp, a.q, n * tq * d, tq, tqp, d, dp);
          padRows(mem, po + g * tqp * dvp, a.out, n * tq * dv, tq, tqp, dv, dvp);
          padRows(mem, pdo + g * tqp * dvp, a.dOut, n * tq * dv, tq, tqp, dv, dvp);
          padRows(mem, plse + g * tqp, a.lse, n * tq, tq, tqp, 1, 1);
        }
        padRows(mem, pk, a.k, kv * tk * d, tk, tkp, d, dp);
        padRows(mem, pv, a.v, kv * tk * dv, tk, tkp, dv, dvp);
        this.x.flash_attention_backward_f32(
          pq * 4, pk * 4, pv * 4, po * 4, pdo * 4, plse * 4, pdelta * 4, pkt * 4, pvt * 4, pdq * 4, pdk * 4, pdv * 4, ps * 4, pdp * 4, pt * 4,
          group, tq, tk, dp, dvp, a.scale, causal ? 1 : 0, causalOffset, window,
        );
        for (let g = 0; g < group; g++) unpadRows(mem, pdq + g * tqp * dp, a.dq, (kv * group + g) * tq * d, tq, d, dp);
        unpadRows(mem, pdk, a.dk, kv * tk * d, tk, d, dp);
        unpadRows(mem, pdv, a.dv, kv * tk * dv, tk, dv, dvp);
      }
    }, fallback);
  }

  /**
   * The selective scan, one batch row per kernel call: that row's x and Δ [L, Din] and B, C
   * [L, N] travel, so the arena holds O(L·(Din + N) + Din·N) floats whatever the batch. N is padded
   * to a multiple of 4 with zeros (see kernels.c: padded lanes stay 0).
   */
  selectiveScanForward(a: SelectiveScanArgs): void {
    const { batch: B, length: L, channels: D, state: N } = a;
    const fallback = () => jsKernels.selectiveScanForward(a);
    const np = roundUp(N, 4);
    if (B === 0 || L === 0 || D === 0 || N === 0 || B * L * D * N < MIN_ELEMENTWISE || np > 4 * SCAN_MAX_VECTORS) {
      fallback();
      return;
    }
    this.run(() => {
      const px = this.alloc(L * D);
      const pdt = this.alloc(L * D);
      const pa = this.alloc(D * np);
      const pb = this.alloc(L * np);
      const pc = this.alloc(L * np);
      const pds = this.alloc(D);
      const ph0 = a.h0 ? this.alloc(D * np) : 0;
      const py = this.alloc(L * D);
      const phl = this.alloc(D * np);
      const mem = this.floats();
      padRows(mem, pa, a.a, 0, D, D, N, np);
      mem.set(a.dSkip.subarray(0, D), pds);
      for (let b = 0; b < B; b++) {
        mem.set(a.x.subarray(b * L * D, (b + 1) * L * D), px);
        mem.set(a.delta.subarray(b * L * D, (b + 1) * L * D), pdt);
        padRows(mem, pb, a.bmat, b * L * N, L, L, N, np);
        padRows(mem, pc, a.cmat, b * L * N, L, L, N, np);
        if (a.h0) padRows(mem, ph0, a.h0, b * D * N, D, D, N, np);
        this.x.selective_scan_forward_f32(px * 4, pdt * 4, pa * 4, pb * 4, pc * 4, pds * 4, ph0 * 4, py * 4, phl * 4, L, D, np);
        a.y.set(mem.subarray(py, py + L * D), b * L * D);
        unpadRows(mem, phl, a.hLast, b * D * N, D, N, np);
      }
    }, fallback);
  }

  /** The adjoint, one batch row per call; dA, dD (float64) are summed over the rows in the arena. */
  selectiveScanBackward(a: SelectiveScanBackwardArgs): void {
    const { batch: B, length: L, channels: D, state: N } = a;
    const fallback = () => jsKernels.selectiveScanBackward(a);
    const np = roundUp(N, 4);
    if (B === 0 || L === 0 || D === 0 || N === 0 || B * L * D * N < MIN_ELEMENTWISE || np > 4 * SCAN_MAX_VECTORS || (a.h0 === null) !== (a.dh0 === null)) {
      fallback();
      return;
    }
    this.run(() => {
      const px = this.alloc(L * D);
      const pdt = this.alloc(L * D);
      const pgy = this.alloc(L * D);
      const pdx = this.alloc(L * D);
      const pddt = this.alloc(L * D);
      const pa = this.alloc(D * np);
      const pb = this.alloc(L * np);
      const pc = this.alloc(L * np);
      const pds = this.alloc(D);
      const ph0 = a.h0 ? this.alloc(D * np) : 0;
      const pdh0 = a.h0 ? this.alloc(D * np) : 0;
      // float64 accumulators: two floats each.
      const pdA = this.alloc(2 * D * np);
      const pdB = this.alloc(2 * L * np);
      const pdC = this.alloc(2 * L * np);
      const pdD = this.alloc(2 * D);
      const phs = this.alloc((L + 1) * np);
      const pdec = this.alloc(L * np);
      const pdBf = this.alloc(L * np);
      const pdCf = this.alloc(L * np);
      const mem = this.floats();
      const dA = new Float64Array(mem.buffer, pdA * 4, D * np);
      const dB = new Float64Array(mem.buffer, pdB * 4, L * np);
      const dC = new Float64Array(mem.buffer, pdC * 4, L * np);
      const dD = new Float64Array(mem.buffer, pdD * 4, D);
      dA.fill(0);
      dD.fill(0);
      padRows(mem, pa, a.a, 0, D, D, N, np);
      mem.set(a.dSkip.subarray(0, D), pds);
      for (let b = 0; b < B; b++) {
        const o = b * L * D;
        mem.set(a.x.subarray(o, o + L * D), px);
        mem.set(a.delta.subarray(o, o + L * D), pdt);
        mem.set(a.dy.subarray(o, o + L * D), pgy);
        padRows(mem, pb, a.bmat, b * L * N, L, L, N, np);
        padRows(mem, pc, a.cmat, b * L * N, L, L, N, np);
        if (a.h0) padRows(mem, ph0, a.h0, b * D * N, D, D, N, np);
        dB.fill(0);
        dC.fill(0);
        this.x.selective_scan_backward_f32(
          px * 4, pdt * 4, pa * 4, pb * 4, pc * 4, pds * 4, ph0 * 4, pgy * 4, pdx * 4, pddt * 4,
          pdA * 4, pdB * 4, pdC * 4, pdD * 4, pdh0 * 4, phs * 4, pdec * 4, pdBf * 4, pdCf * 4, L, D, np,
        );
        a.dx.set(mem.subarray(pdx, pdx + L * D), o);
        a.dDelta.set(mem.subarray(pddt, pddt + L * D), o);
        unpad64(dB, a.dBmat, b * L * N, L, N, np);
        unpad64(dC, a.dCmat, b * L * N, L, N, np);
        if (a.dh0) unpadRows(mem, pdh0, a.dh0, b * D * N, D, N, np);
      }
      unpad64(dA, a.dA, 0, D, N, np);
      a.dDSkip.set(dD);
    }, fallback);
  }

  adamStep(s: AdamStepArgs): void {
    const n = s.param.length;
    if (n < MIN_ELEMENTWISE || n === 0) {
      jsKernels.adamStep(s);
      return;
    }
    // The same float64 constants as the reference, passed as doubles.
    const { stepSize, bc2Sqrt, decay } = adamScalars(s);
    const flags = (s.decoupledWeightDecay !== 0 ? 1 : 0) | (s.weightDecay !== 0 ? 2 : 0) | (s.maxExpAvgSq ? 4 : 0);
    const max = s.maxExpAvgSq;
    this.stream(
      {
        rows: n,
        buffers: {
          param: rowsInOut(1, s.param, s.param),
          grad: rowsIn(1, s.grad),
          m: rowsInOut(1, s.expAvg, s.expAvg),
          v: rowsInOut(1, s.expAvgSq, s.expAvgSq),
          max: max && rowsInOut(1, max, max),
        },
        call: (p, _r, len) =>
          this.x.adam_f32(p.param, p.grad, p.m, p.v, p.max, len, flags, decay, s.weightDecay, 1 - s.beta1, s.beta2, 1 - s.beta2, bc2Sqrt, s.eps, stepSize),
      },
      () => jsKernels.adamStep(s),
    );
  }

  gemm(g: GemmArgs): void {
    const { m, n, k, batch } = g;
    // Overlapping outputs (strideC 0 over several batches) keep the reference's sequential meaning.
    if (m === 0 || n === 0 || k === 0 || batch === 0 || m * n * k < MIN_GEMM_FLOPS || (g.strideC === 0 && batch > 1)) {
      jsKernels.gemm(g);
      return;
    }
    const threads = getWasmThreads();
    const threaded = threads > 1 && m * n * k * batch >= MIN_THREADED_GEMM_FLOPS ? this.threads() : null;
    if (threaded) {
      threaded.gemm(g, threads, () => jsKernels.gemm(g));
      return;
    }
    this.run(
      () =>
        stageGemm(this.arena, g, (s) => {
          const ws = this.alloc(this.x.gemm_workspace_floats(m, n, k));
          this.x.gemm_f32(...partArgs(g, s, { batch0: 0, batches: batch, i0: 0, m, j0: 0, n }, ws));
        }),
      () => jsKernels.gemm(g),
    );
  }

  // ---- int8 weight-only GEMM (issue 18) ----

  /** Where constant layers (GemmInt8Args.constantCodes) were pinned in this module's memory, by their codes (null: past the cap). */
  private readonly pinnedLayers = new WeakMap<Int8Array, Int8Layer | null>();

  /** The threaded module where a layer of n × k codes runs its int8 products, or null: this module (one thread, or a small layer). */
  private int8Threads(n: number, k: number): ThreadedGemm | null {
    return getWasmThreads() > 1 && n * k >= MIN_THREADED_INT8_CODES ? this.threads() : null;
  }

  /**
   * Layers the threaded module would run (see gemmInt8) get their codes and scales in its shared
   * memory, so they are held once (the pinned copy is the only copy); others ordinary arrays.
   */
  allocateInt8Weights(n: number, k: number, block: number): { q: Int8Array; scales: Float32Array } | null {
    if (Math.min(block, k) > 65536) return null; // the reference's layers (see gemmInt8)
    return this.int8Threads(n, k)?.allocateInt8(n, k, block) ?? null;
  }

  /**
   * x · dequant(W)ᵀ (+ bias) for int8 codes with per-block scales (kernels.c quantizes the
   * activations per block itself, into scratch). Constant layers are pinned in WASM memory at their
   * first call — codes, scales and the block sums the relaxed kernel needs — since for batch-1
   * decoding the codes' bytes are the traffic that matters, and copying them at every call would
   * read and write them once more; other codes are copied per call. x and out travel in chunks of
   * rows, so the arena stays small for a long prompt. Big layers go to the threaded module (see
   * MIN_THREADED_INT8_CODES). Blocks longer than 65536 could overflow the kernel's int32 sums: the
   * reference (float64 sums) takes those.
   */
  gemmInt8(a: GemmInt8Args): void {
    const { rows, n, k, block } = a;
    const fallback = () => jsKernels.gemmInt8(a);
    if (rows === 0 || n === 0 || k === 0 || rows * n * k < MIN_GEMM_FLOPS || Math.min(block, k) > 65536) {
      fallback();
      return;
    }
    const threaded = this.int8Threads(n, k);
    if (threaded) {
      threaded.gemmInt8(a, getWasmThreads(), fallback);
      return;
    }
    const blocks = Math.ceil(k / block);
    const pinned = constantInt8Layer(this.pinnedLayers, this.arena, this.x, a, blocks, PINNED_CODES_MAX);
    this.run(() => {
      const layer = pinned ?? stageInt8Layer(this.arena, this.x, a, blocks);
      int8Gemm(this.arena, this.x, a, layer, blocks, (args) => this.x.gemm_int8_q(...args));
    }, fallback);
  }

  private unaryArgs: { code: number; op: UnaryOp; x: Float32Array; xOffset: number; n: number; out: Float32Array } | null = null;
  private readonly unaryFallback = (): void => {
    const u = this.unaryArgs as NonNullable<WasmModule['unaryArgs']>;
    jsKernels.unary(u.op, u.x, u.xOffset, u.n, u.out);
  };
  private readonly unaryBody = (): void => {
    const u = this.unaryArgs as NonNullable<WasmModule['unaryArgs']>;
    const px = this.alloc(u.n);
    const mem = this.floats();
    mem.set(u.x.subarray(u.xOffset, u.xOffset + u.n), px);
    this.x.unary_f32(u.code, px * 4, px * 4, u.n); // in place, as the stream does
    u.out.set(mem.subarray(px, px + u.n));
  };

  /**
   * One token's attention over a KV cache (kernels.c: decode_attention_f32). The first n rows of
   * each kv head's cache are copied in compact, [kvHeads, n, dim], at every call: a plain memcpy
   * per head, a fraction of the kernel's time at decode lengths. (Keeping the caches resident in
   * WASM memory instead, one slot copied per call, measured ~0.7 µs faster per call at n = 60 —
   * within the bench's noise, for pinned memory and a cache registry: not done.) This runs once
   * per layer and token, so the body and fallback are bound once (no closures per call), and q
   * and out, a few hundred floats, move by plain loops.
   */
  decodeAttention(a: DecodeAttentionArgs): void {
    this.decodeArgs = a;
    try {
      this.run(this.decodeBody, this.decodeFallback);
    } finally {
      this.decodeArgs = null;
    }
  }

  private decodeArgs: DecodeAttentionArgs | null = null;
  private readonly decodeFallback = (): void => jsKernels.decodeAttention(this.decodeArgs as DecodeAttentionArgs);
  private readonly decodeBody = (): void => {
    const a = this.decodeArgs as DecodeAttentionArgs;
    const { n, slots, heads, kvHeads, dim, q, qOffset, out, outOffset } = a;
    const width = heads * dim;
    const ldkv = n * dim;
    const pq = this.alloc(width);
    const pk = this.alloc(kvHeads * ldkv);
    const pv = this.alloc(kvHeads * ldkv);
    const ps = this.alloc(n);
    const po = this.alloc(width);
    const mem = this.floats();
    for (let i = 0; i < width; i++) mem[pq + i] = q[qOffset + i];
    for (let c = 0; c < kvHeads; c++) {
      const from = a.kvOffset + c * slots * dim;
      mem.set(a.k.subarray(from, from + ldkv), pk + c * ldkv);
      mem.set(a.v.subarray(from, from + ldkv), pv + c * ldkv);
    }
    this.x.decode_attention_f32(pq * 4, pk * 4, pv * 4, ps * 4, po * 4, heads, kvHeads, n, dim, ldkv, a.scale);
    for (let i = 0; i < width; i++) out[outOffset + i] = mem[po + i];
  };

  /** Starts the GEMM workers and waits for them (tests, benchmarks); returns how many are ready. */
  warmUpThreads(timeoutMs: number): number {
    return this.threads()?.warmUp(getWasmThreads(), timeoutMs) ?? 0;
  }

  /** GEMM parts that worker threads have computed so far. */
  partsOnWorkers(): number {
    return this.threaded?.partsOnWorkers ?? 0;
  }

  /** The threaded GEMM, started on first use; null where threads cannot run (browsers, no SharedArrayBuffer). */
  private threads(): ThreadedGemm | null {
    if (this.threaded !== undefined) return this.threaded;
    this.threaded = null;
    const workerThreads = nodeProcess()?.getBuiltinModule?.('node:worker_threads') as WorkerThreadsModule | undefined;
    if (workerThreads && typeof SharedArrayBuffer !== 'undefined') {
      try {
        this.threaded = new ThreadedGemm(this.wasm, new this.wasm.Module(this.threadsBytes), workerThreads);
      } catch {
        this.threaded = null; // e.g. shared memory refused: one thread it is
      }
    }
    return this.threaded;
  }

  kernels(): Partial<Kernels> {
    return {
      unary: this.unary.bind(this),
      binary: this.binary.bind(this),
      reduce: this.reduce.bind(this),
      softmax: this.softmax.bind(this),
      softmaxBackward: this.softmaxBackward.bind(this),
      geluWithDerivative: this.geluWithDerivative.bind(this),
      scaledSoftmax: this.scaledSoftmax.bind(this),
      layerNorm: this.layerNorm.bind(this),
      layerNormBackward: this.layerNormBackward.bind(this),
      rmsNorm: this.rmsNorm.bind(this),
      rmsNormBackward: this.rmsNormBackward.bind(this),
      crossEntropy: this.crossEntropy.bind(this),
      crossEntropyBackward: this.crossEntropyBackward.bind(this),
      recurrentCell: this.recurrentCell.bind(this),
      recurrentCellBackward: this.recurrentCellBackward.bind(this),
      flashAttentionForward: this.flashAttentionForward.bind(this),
      flashAttentionBackward: this.flashAttentionBackward.bind(this),
      selectiveScanForward: this.selectiveScanForward.bind(this),
      selectiveScanBackward: this.selectiveScanBackward.bind(this),
      adamStep: this.adamStep.bind(this),
      gemm: this.gemm.bind(this),
      gemmInt8: this.gemmInt8.bind(this),
      allocateInt8Weights: this.allocateInt8Weights.bind(this),
      decodeAttention: this.decodeAttention.bind(this),
    };
  }
}

/**
 * The arena buffer of one operand of a [rows, cols] binary op: a full operand moves with the rows
 * (and takes the result when `result` is given), a column gives one element per row, and a row
 * vector or a scalar is copied once.
 */
function binaryOperand(x: StridedArray, kind: number, cols: number, result: Float32Array | null): Staged {
  const data = x.data as Float32Array;
  if (kind === FULL) return rowsInOut(cols, data, result, x.offset);
  if (kind === COL) return rowsIn(1, data, x.offset);
  return perCall(kind === ROW ? cols : 1, data, x.offset);
}

/** The most 4-lane state vectors per channel the scan kernels hold (SS_MAXV in kernels.c): N ≤ 128. */
const SCAN_MAX_VECTORS = 32;

/** The flash kernels' block sizes (FA_BR, FA_BC in kernels.c). */
const FLASH_BR = 32;
const FLASH_BC = 64;

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * The padded geometry of a flash-attention call (queries to a multiple of 4 rows, keys to 8, head
 * dims to 4: the kernel's register tiles need no tails), or null when the JS kernel should run
 * instead (empty or tiny problems, offsets or windows beyond int32).
 */
function flashPadding(a: FlashAttentionArgs): { tqp: number; tkp: number; dp: number; dvp: number; qRows: number } | null {
  const { heads, group, tq, tk, d, valueDim: dv, causalOffset, window } = a;
  if (heads === 0 || tq === 0 || tk === 0 || d === 0 || dv === 0 || tq * tk * d < MIN_GEMM_FLOPS || !isInt32(causalOffset) || !isInt32(window)) return null;
  const tqp = roundUp(tq, 4);
  return { tqp, tkp: roundUp(tk, 8), dp: roundUp(d, 4), dvp: roundUp(dv, 4), qRows: group * tqp };
}

/** Copies rows × d floats from src (at offset) into mem at `at` as rowsPadded × dp, zero-padded. */
function padRows(mem: Float32Array, at: number, src: Float32Array, offset: number, rows: number, rowsPadded: number, d: number, dp: number): void {
  if (d === dp) mem.set(src.subarray(offset, offset + rows * d), at);
  else {
    mem.fill(0, at, at + rows * dp);
    for (let r = 0; r < rows; r++) mem.set(src.subarray(offset + r * d, offset + (r + 1) * d), at + r * dp);
  }
  mem.fill(0, at + rows * dp, at + rowsPadded * dp);
}

/** Rounds rows × d float64 accumulators of a dp-wide padded block into dst at offset. */
function unpad64(src: Float64Array, dst: Float32Array, offset: number, rows: number, d: number, dp: number): void {
  if (d === dp) dst.set(src.subarray(0, rows * d), offset);
  else for (let r = 0; r < rows; r++) dst.set(src.subarray(r * dp, r * dp + d), offset + r * d);
}

/** Copies rows × d floats out of a dp-wide padded block at `at` into dst at offset. */
function unpadRows(mem: Float32Array, at: number, dst: Float32Array, offset: number, rows: number, d: number, dp: number): void {
  if (d === dp) dst.set(mem.subarray(at, at + rows * d), offset);
  else for (let r = 0; r < rows; r++) dst.set(mem.subarray(at + r * dp, at + r * dp + d), offset + r * d);
}

/** Whether a number fits the int32 parameters of the WASM kernels. */
function isInt32(v: number): boolean {
  return Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31;
}

/**
 * Classifies a broadcast binary op as rows × cols with each operand full, a row vector, a column
 * or a scalar (after merging dimensions that every operand walks contiguously); null for any
 * other layout, which the reference kernel handles.
 */
export function binaryLayout(
  shape: readonly number[],
  aStrides: readonly number[],
  bStrides: readonly number[],
): { rows: number; cols: number; aKind: number; bKind: number } | null {
  const c = collapseDims(shape, [aStrides, bStrides, contiguousStrides(shape)]);
  if (c.shape.length === 1) {
    const kind = (st: number) => (st === 1 ? FULL : st === 0 ? SCALAR : -1);
    const aKind = kind(c.strides[0][0]);
    const bKind = kind(c.strides[1][0]);
    return aKind < 0 || bKind < 0 ? null : { rows: 1, cols: c.shape[0], aKind, bKind };
  }
  if (c.shape.length === 2) {
    const cols = c.shape[1];
    const kind = ([s0, s1]: number[]) =>
      s0 === cols && s1 === 1 ? FULL : s0 === 0 && s1 === 1 ? ROW : s0 === 1 && s1 === 0 ? COL : s0 === 0 && s1 === 0 ? SCALAR : -1;
    const aKind = kind(c.strides[0]);
    const bKind = kind(c.strides[1]);
    return aKind < 0 || bKind < 0 ? null : { rows: c.shape[0], cols, aKind, bKind };
  }
  return null;
}

const modules = new Map<WasmSimdVariant, WasmModule>();
let info: WasmInfo | undefined;

function probe(): WasmInfo {
  if (info) return info;
  const wasm = WebAssemblyApi;
  if (!wasm) {
    info = { available: false, variant: null, variants: [], reason: 'this JavaScript engine has no WebAssembly' };
    return info;
  }
  const variants: WasmSimdVariant[] = [];
  const plain = decodeBase64(simd128Base64);
  if (!wasm.validate(plain)) {
    info = { available: false, variant: null, variants, reason: 'this engine does not support WebAssembly SIMD (128-bit)' };
    return info;
  }
  const forced = wasmSimdEnv();
  const relaxed = decodeBase64(relaxedSimdBase64);
  if (forced !== 'simd128' && acceptsRelaxed(wasm, relaxed)) variants.push('relaxed-simd');
  variants.push('simd128');
  try {
    modules.set('simd128', new WasmModule(wasm, plain, decodeBase64(simd128ThreadsBase64)));
    if (variants[0] === 'relaxed-simd') modules.set('relaxed-simd', new WasmModule(wasm, relaxed, decodeBase64(relaxedSimdThreadsBase64)));
  } catch (e) {
    info = { available: false, variant: null, variants: [], reason: `the WebAssembly kernels failed to load (${(e as Error).message})` };
    return info;
  }
  info = { available: true, variant: variants[0], variants, reason: null };
  return info;
}

/** Whether the backend runs here, which build it uses, and why not when it cannot. */
export function wasmInfo(): WasmInfo {
  return probe();
}

/**
 * Starts the GEMM worker threads of a build now and waits up to `timeoutMs` for them; returns how
 * many are ready (0 where threads cannot run). GEMMs never wait for workers to start — until they
 * are ready their share runs on the calling thread — so tests and benchmarks call this first.
 */
export function warmUpWasmThreads(variant?: WasmSimdVariant, timeoutMs = 10_000): number {
  return moduleFor(variant).warmUpThreads(timeoutMs);
}

/** How many GEMM parts worker threads have computed so far (for tests and benchmarks). */
export function wasmThreadedParts(variant?: WasmSimdVariant): number {
  return moduleFor(variant).partsOnWorkers();
}

function moduleFor(variant?: WasmSimdVariant): WasmModule {
  const i = probe();
  const name = variant ?? i.variant;
  const module = name ? modules.get(name) : undefined;
  if (!module) throw new Error(`WebAssembly build '${name ?? 'any'}' is not available: ${i.reason ?? 'not accepted by this engine'}`);
  return module;
}

/** The WASM kernels (of the preferred build, or of the one named); throws when unavailable. */
export function wasmKernels(variant?: WasmSimdVariant): Partial<Kernels> {
  return moduleFor(variant).kernels();
}

/** Registers the WebAssembly backend (priority 10; unavailable, with the reason, where it cannot run) and reports on it. */
export function registerWasmBackend(): WasmInfo {
  const info = wasmInfo();
  registerBackend({ name: 'wasm', kernels: info.available ? wasmKernels() : {}, priority: 10, unavailable: info.available ? null : info.reason });
  return info;
}
