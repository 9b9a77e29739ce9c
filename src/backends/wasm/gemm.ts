/**
 * GEMM plumbing for the WASM backend: copying the operands into WASM memory and C back out
 * (`stageGemm`), splitting one GEMM into independent parts (`splitGemm`), and running the parts on
 * worker threads that share one WebAssembly memory (`ThreadedGemm`) — the float32 GEMM, and the
 * int8 GEMM of quantized layers, whose codes stay pinned in the shared memory.
 *
 * Threads: the kernel interface is synchronous, so the calling thread hands parts to the workers
 * through a SharedArrayBuffer, computes its own part, then waits until the workers are done.
 * Waiting threads spin for at most SPIN_MS, then block in Atomics.wait (a long spin on a busy
 * 2-core host steals the core the other thread needs). Workers are unref'd, so they never keep the
 * process alive. Node only (worker_threads, and Atomics.wait on the main thread, which browsers
 * forbid); elsewhere GEMM runs on one thread.
 */
import type { GemmArgs, GemmInt8Args } from '../kernels.js';
import { Arena, type WasmApi, type WasmMemory } from './arena.js';

/** The int8 GEMM's exports (kernels.c), in both the single-threaded and the threaded build. */
export interface Int8Exports {
  quantize_q8_rows(x: number, xq: number, xs: number, rows: number, k: number, block: number): void;
  q8_block_sums(q: number, sums: number, n: number, k: number, block: number): void;
  /** (xq, xs, q, scales, sums, bias, out, rows, n, k, block, j0, j1), byte addresses. */
  gemm_int8_q(...args: number[]): void;
}

interface GemmExports extends Int8Exports {
  gemm_workspace_floats(m: number, n: number, k: number): number;
  gemm_f32(...args: number[]): void;
}

/** Where the operands were staged (float indices into WASM memory) and their WASM-side batch strides. */
export interface StagedGemm {
  a: number;
  strideA: number;
  b: number;
  strideB: number;
  c: number;
  strideC: number;
}

/**
 * Copies A, B (and C when beta ≠ 0) into the arena, runs `compute`, and copies C back. Each
 * operand's span runs from its first element to its last, leading-dimension padding included, so
 * one `set` copies a whole matrix; batches are packed one after another (a stride of 0 stays 0).
 */
export function stageGemm(arena: Arena, g: GemmArgs, compute: (s: StagedGemm) => void): void {
  const { m, n, k, batch } = g;
  const spanA = ((g.transA ? k : m) - 1) * g.lda + (g.transA ? m : k);
  const spanB = ((g.transB ? n : k) - 1) * g.ldb + (g.transB ? k : n);
  const spanC = (m - 1) * g.ldc + n;
  const countA = g.strideA === 0 ? 1 : batch;
  const countB = g.strideB === 0 ? 1 : batch;
  const pa = arena.alloc(countA * spanA);
  const pb = arena.alloc(countB * spanB);
  const pc = arena.alloc(batch * spanC);
  let mem = arena.floats();
  for (let t = 0; t < countA; t++) {
    const from = g.aOffset + t * g.strideA;
    mem.set(g.a.subarray(from, from + spanA), pa + t * spanA);
  }
  for (let t = 0; t < countB; t++) {
    const from = g.bOffset + t * g.strideB;
    mem.set(g.b.subarray(from, from + spanB), pb + t * spanB);
  }
  if (g.beta !== 0) {
    for (let t = 0; t < batch; t++) {
      const from = g.cOffset + t * g.strideC;
      mem.set(g.c.subarray(from, from + spanC), pc + t * spanC);
    }
  }
  compute({ a: pa, strideA: countA === 1 ? 0 : spanA, b: pb, strideB: countB === 1 ? 0 : spanB, c: pc, strideC: spanC });
  mem = arena.floats(); // compute may have grown memory
  // Copy back only the m×n elements: C's padding between rows may belong to someone else.
  if (g.ldc === n && g.strideC === m * n) {
    g.c.set(mem.subarray(pc, pc + batch * m * n), g.cOffset);
  } else if (g.ldc === n) {
    for (let t = 0; t < batch; t++) g.c.set(mem.subarray(pc + t * spanC, pc + t * spanC + m * n), g.cOffset + t * g.strideC);
  } else {
    for (let t = 0; t < batch; t++) {
      for (let i = 0; i < m; i++) {
        const from = pc + t * spanC + i * g.ldc;
        g.c.set(mem.subarray(from, from + n), g.cOffset + t * g.strideC + i * g.ldc);
      }
    }
  }
}

/** One independent piece of a GEMM: batches [batch0, batch0 + batches) × rows [i0, i0 + m) × columns [j0, j0 + n). */
export interface GemmPart {
  batch0: number;
  batches: number;
  i0: number;
  m: number;
  j0: number;
  n: number;
}

/** The micro-kernel's tile (kernels.c MR × NR): row splits are multiples of 4, column splits of 8. */
const MR = 4;
const NR = 8;

/**
 * Splits a GEMM into at most `parts` pieces of nearly equal work: whole batches when they divide
 * evenly (or are many), else rows (when m ≥ n) or columns, in whole micro-tiles.
 */
export function splitGemm(m: number, n: number, batch: number, parts: number): GemmPart[] {
  const out: GemmPart[] = [];
  if (parts > 1 && (batch % parts === 0 || batch >= 4 * parts)) {
    for (let p = 0; p < parts; p++) {
      const b0 = Math.floor((p * batch) / parts);
      const b1 = Math.floor(((p + 1) * batch) / parts);
      if (b1 > b0) out.push({ batch0: b0, batches: b1 - b0, i0: 0, m, j0: 0, n });
    }
    return out;
  }
  const byRows = m >= n;
  const size = byRows ? m : n;
  const unit = byRows ? MR : NR;
  const step = Math.ceil(size / parts / unit) * unit;
  for (let s = 0; s < size; s += step) {
    const len = Math.min(step, size - s);
    out.push(byRows ? { batch0: 0, batches: batch, i0: s, m: len, j0: 0, n } : { batch0: 0, batches: batch, i0: 0, m, j0: s, n: len });
  }
  return out;
}

/** The arguments of gemm_f32 for one part (byte offsets into WASM memory), `ws` its workspace (float index). */
export function partArgs(g: GemmArgs, s: StagedGemm, p: GemmPart, ws: number): number[] {
  const a = s.a + p.batch0 * s.strideA + (g.transA ? p.i0 : p.i0 * g.lda);
  const b = s.b + p.batch0 * s.strideB + (g.transB ? p.j0 * g.ldb : p.j0);
  const c = s.c + p.batch0 * s.strideC + p.i0 * g.ldc + p.j0;
  return [
    g.transA ? 1 : 0, g.transB ? 1 : 0, p.m, p.n, g.k, g.alpha, a * 4, g.lda, s.strideA,
    b * 4, g.ldb, s.strideB, g.beta, c * 4, g.ldc, s.strideC, p.batches, ws * 4,
  ];
}

// ---- threads -------------------------------------------------------------------------------

/** Slots of each worker's control words (Int32Array over a SharedArrayBuffer). */
const JOB = 0; // incremented by the caller to post a job; −1 asks the worker to exit
const DONE = 1; // set to the job number by the worker when it has finished it
const STATUS = 2; // 0 when the last job ran, 1 when it threw
const READY = 3; // 1 once the worker has instantiated the module
/** params[0] is the worker's stack pointer, params[1] the kernel (KERNELS), params[2..] its arguments. */
const PARAMS = 24;
/** The kernels a worker runs, by the number in params[1]. */
const KERNELS = ['gemm_f32', 'gemm_int8_q'] as const;
type WorkerKernel = (typeof KERNELS)[number];
/**
 * How long (ms) a thread spins on a control word before it sleeps in Atomics.wait: a worker after
 * its job, waiting for the next; the caller after its own part, waiting for the workers. Waking a
 * sleeping thread took ~300 µs here (a VM's idle vCPU), against ~1 ms for one layer's product of a
 * 1 B-parameter model, so consecutive products (a decoded token's layers) must not sleep between
 * them; a short bounded spin (as OpenMP's default wait policy does) keeps idle threads from burning
 * a core for long on a shared host.
 */
const SPIN_MS = 1;
/** Each worker's WASM stack (its instance would otherwise share the caller's). */
const STACK_BYTES = 64 * 1024;
/** Memory the threaded build declares (kernels built with --initial-memory=1 MiB, max 4 GiB). */
const INITIAL_PAGES = 16;
const MAXIMUM_PAGES = 65536;

/**
 * The most bytes of constant int8 codes and their scales pinned in the shared memory: 3 GiB of the
 * 4 GiB it can reach (a 1.1 B-parameter model's codes are about 1 GiB), the rest for the arena.
 */
const PINNED_INT8_MAX = 3 * 2 ** 30;

// ---- int8 GEMM plumbing (both builds) ---------------------------------------------------------

/** Where an int8 layer's codes, scales and per-block code sums are in WASM memory (byte addresses). */
export interface Int8Layer {
  codes: number;
  scales: number;
  sums: number;
  /** Allocated for the caller to fill (allocateInt8): its block sums are computed at its first product. */
  sumsPending?: boolean;
}

/** Bytes of a layer's code sums: int16 for Q8_0 rows in whole groups of 4 blocks (kernels.c q8_sums16), else int32. */
function sumBytes(k: number, block: number, count: number): number {
  return (block === 32 && k % 128 === 0 ? 2 : 4) * count;
}

/** The bytes pinInt8Layer reserves for a layer: codes, scales and block sums, each 64-byte aligned. */
export function int8LayerBytes(n: number, k: number, block: number): number {
  const up = (b: number) => Math.ceil(b / 64) * 64;
  const blocks = Math.ceil(k / block);
  return up(n * k) + up(4 * n * blocks) + up(sumBytes(k, block, n * blocks));
}

function fillInt8Layer(arena: Arena, x: Int8Exports, a: GemmInt8Args, blocks: number, at: Int8Layer): void {
  const buffer = arena.floats().buffer;
  new Int8Array(buffer, at.codes, a.n * a.k).set(a.q.subarray(0, a.n * a.k));
  new Float32Array(buffer, at.scales, a.n * blocks).set(a.scales.subarray(0, a.n * blocks));
  x.q8_block_sums(at.codes, at.sums, a.n, a.k, a.block);
}

/**
 * Reserves a layer's codes, scales and code sums for the rest of the module's life, below the
 * arena; null when that would pass `maxBytes` pinned in all or memory cannot grow. Only between
 * kernel calls.
 */
function reserveInt8Layer(arena: Arena, n: number, k: number, block: number, maxBytes: number): Int8Layer | null {
  if (arena.pinnedBytes + int8LayerBytes(n, k, block) > maxBytes) return null;
  const blocks = Math.ceil(k / block);
  try {
    return { codes: arena.pin(n * k), scales: arena.pin(4 * n * blocks), sums: arena.pin(sumBytes(k, block, n * blocks)) };
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}

/**
 * Where a constant layer (GemmInt8Args.constantCodes) is pinned in this module's memory: looked up
 * in `pinned` (by its codes), else copied there now with its code sums and remembered — null too,
 * past `maxBytes`, and the caller then stages it at every call. A layer that allocateInt8 placed
 * there gets its code sums at its first product. Null for codes that may change.
 */
export function constantInt8Layer(pinned: WeakMap<Int8Array, Int8Layer | null>, arena: Arena, x: Int8Exports, a: GemmInt8Args, blocks: number, maxBytes: number): Int8Layer | null {
  if (a.constantCodes !== true) return null;
  let layer = pinned.get(a.q);
  if (layer === undefined) {
    layer = reserveInt8Layer(arena, a.n, a.k, a.block, maxBytes);
    if (layer !== null) fillInt8Layer(arena, x, a, blocks, layer);
    pinned.set(a.q, layer);
  }
  if (layer?.sumsPending) {
    x.q8_block_sums(layer.codes, layer.sums, a.n, a.k, a.block);
    layer.sumsPending = false;
  }
  return layer;
}

/** Copies a layer into the arena for one call (codes that may change, or past the pinning cap). */
export function stageInt8Layer(arena: Arena, x: Int8Exports, a: GemmInt8Args, blocks: number): Int8Layer {
  const at = { codes: arena.alloc(Math.ceil((a.n * a.k) / 4)) * 4, scales: arena.alloc(a.n * blocks) * 4, sums: arena.alloc(Math.ceil(sumBytes(a.k, a.block, a.n * blocks) / 4)) * 4 };
  fillInt8Layer(arena, x, a, blocks, at);
  return at;
}

/**
 * Rows of x an int8 GEMM takes at a time: up to 2^18 floats of them (1 MiB), a multiple of 4 (the
 * kernel's row blocking). Each chunk streams every code once, so long prompts want big chunks.
 */
function int8ChunkRows(rows: number, n: number, k: number): number {
  return Math.min(rows, Math.max(4, Math.floor((1 << 18) / Math.max(k, n)) & ~3));
}

/**
 * out = x · dequant(W)ᵀ (+ bias) for a layer in WASM memory, inside an arena run: x travels in
 * chunks of rows, each chunk quantized once (quantize_q8_rows), then `columns` computes outputs
 * from gemm_int8_q's arguments — [xq, xs, codes, scales, sums, bias, out, rows, n, k, block, 0, n]
 * — on this thread (calling it) or split by their last two, the column range, across threads.
 */
export function int8Gemm(arena: Arena, x: Int8Exports, a: GemmInt8Args, layer: Int8Layer, blocks: number, columns: (args: number[]) => void): void {
  const { rows, n, k, block } = a;
  const pb = a.bias ? arena.alloc(n) : 0;
  const chunkRows = int8ChunkRows(rows, n, k);
  const px = arena.alloc(chunkRows * k);
  const po = arena.alloc(chunkRows * n);
  const pxq = arena.alloc(Math.ceil((chunkRows * k) / 2)); // int16 codes (the relaxed build uses half)
  const pxs = arena.alloc(chunkRows * blocks);
  if (a.bias) arena.floats().set(a.bias.subarray(0, n), pb);
  for (let r = 0; r < rows; r += chunkRows) {
    const nr = Math.min(chunkRows, rows - r);
    arena.floats().set(a.x.subarray(r * k, (r + nr) * k), px);
    x.quantize_q8_rows(px * 4, pxq * 4, pxs * 4, nr, k, block);
    columns([pxq * 4, pxs * 4, layer.codes, layer.scales, layer.sums, pb * 4, po * 4, nr, n, k, block, 0, n]);
    a.out.set(arena.floats().subarray(po, po + nr * n), r * n); // floats(): a worker's stack may have grown memory
  }
}

/** The worker's whole program, run with `eval`: instantiate, then serve jobs until told to exit. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctrl, params } = workerData;
const x = new WebAssembly.Instance(module, { env: { memory } }).exports;
const kernels = ${JSON.stringify(KERNELS)}.map((name) => x[name]);
Atomics.store(ctrl, ${READY}, 1);
Atomics.notify(ctrl, ${READY});
let seen = 0;
for (;;) {
  const until = performance.now() + ${SPIN_MS};
  while (Atomics.load(ctrl, ${JOB}) === seen && performance.now() < until);
  Atomics.wait(ctrl, ${JOB}, seen);
  const job = Atomics.load(ctrl, ${JOB});
  if (job < 0) break;
  seen = job;
  let status = 0;
  try {
    x.__stack_pointer.value = params[0];
    kernels[params[1]](...Array.from(params.subarray(2)));
  } catch (e) {
    status = 1;
  }
  Atomics.store(ctrl, ${STATUS}, status);
  Atomics.store(ctrl, ${DONE}, job);
  Atomics.notify(ctrl, ${DONE});
}
`;

interface NodeWorker {
  unref(): void;
  on(event: 'error' | 'exit', listener: (arg: unknown) => void): void;
}
export interface WorkerThreadsModule {
  Worker: new (source: string, options: { eval: true; workerData: unknown }) => NodeWorker;
}

interface WorkerSlot {
  ctrl: Int32Array;
  params: Float64Array;
  job: number;
  dead: boolean;
}

/** A GEMM that runs on the calling thread plus up to `threads − 1` workers over one shared memory. */
export class ThreadedGemm {
  private readonly arena: Arena;
  private readonly x: GemmExports;
  private readonly memory: WasmMemory;
  private readonly workers: WorkerSlot[] = [];
  /** Parts computed by workers so far (tests check that threads really ran). */
  partsOnWorkers = 0;

  /** `module` is the compiled threaded build (gemm only, shared imported memory). */
  constructor(
    wasm: WasmApi,
    private readonly module: object,
    private readonly workerThreads: WorkerThreadsModule,
  ) {
    this.memory = new wasm.Memory({ initial: INITIAL_PAGES, maximum: MAXIMUM_PAGES, shared: true });
    const instance = new wasm.Instance(module, { env: { memory: this.memory } });
    this.x = instance.exports as unknown as GemmExports;
    const heapBase = Number((instance.exports as { __heap_base: { value: number } }).__heap_base.value);
    this.arena = new Arena(this.memory, heapBase);
  }

  /** Starts workers until there are `count`. They take tens of milliseconds to start; until then their share runs here. */
  private spawn(count: number): void {
    while (this.workers.length < count) {
      const ctrl = new Int32Array(new SharedArrayBuffer(16));
      const params = new Float64Array(new SharedArrayBuffer(PARAMS * 8));
      const slot: WorkerSlot = { ctrl, params, job: 0, dead: false };
      const worker = new this.workerThreads.Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: this.module, memory: this.memory, ctrl, params },
      });
      worker.unref();
      // A worker that failed to start or exited is never given work again (its parts run here).
      worker.on('error', () => (slot.dead = true));
      worker.on('exit', () => (slot.dead = true));
      this.workers.push(slot);
    }
  }

  /**
   * Starts workers until there are `threads − 1` and waits (up to `timeoutMs`) until they are
   * ready; returns how many are. Only for tests and benchmarks: gemm never waits for a start.
   */
  warmUp(threads: number, timeoutMs: number): number {
    this.spawn(threads - 1);
    const end = Date.now() + timeoutMs;
    for (const w of this.workers) {
      while (!w.dead && Atomics.load(w.ctrl, READY) !== 1 && Date.now() < end) Atomics.wait(w.ctrl, READY, 0, 50);
    }
    return this.live().length;
  }

  /** Workers that have started and not died; a worker still starting is simply not used yet. */
  private live(): WorkerSlot[] {
    return this.workers.filter((w) => !w.dead && Atomics.load(w.ctrl, READY) === 1);
  }

  /** C = alpha·op(A)·op(B) + beta·C on up to `threads` threads (this one included). */
  gemm(g: GemmArgs, threads: number, fallback: () => void): void {
    this.spawn(threads - 1);
    this.arena.run(
      () =>
        stageGemm(this.arena, g, (s) => {
          const workers = this.live().slice(0, threads - 1);
          const parts = splitGemm(g.m, g.n, g.batch, 1 + workers.length);
          const args = parts.map((p) => partArgs(g, s, p, this.arena.alloc(this.x.gemm_workspace_floats(p.m, p.n, g.k))));
          this.runParts('gemm_f32', args, workers);
        }),
      fallback,
    );
  }

  /**
   * Runs `args[0]` here and `args[i]` on `workers[i − 1]` (each given a stack of its own in the
   * arena), then waits for them; a part whose worker died or threw is redone here.
   */
  private runParts(kernel: WorkerKernel, args: number[][], workers: WorkerSlot[]): void {
    const posted: [WorkerSlot, number][] = [];
    for (let i = 1; i < args.length; i++) {
      const w = workers[i - 1];
      const stack = this.arena.alloc(STACK_BYTES / 4);
      w.params[0] = (stack * 4 + STACK_BYTES) | 0; // the stack grows down from its top
      w.params[1] = KERNELS.indexOf(kernel);
      w.params.set(args[i], 2);
      w.job++;
      Atomics.store(w.ctrl, JOB, w.job);
      Atomics.notify(w.ctrl, JOB);
      posted.push([w, i]);
    }
    this.x[kernel](...args[0]);
    for (const [w, i] of posted) {
      const until = performance.now() + SPIN_MS;
      while (Atomics.load(w.ctrl, DONE) !== w.job && performance.now() < until);
      for (;;) {
        const done = Atomics.load(w.ctrl, DONE);
        if (done === w.job) break;
        // Generous timeout: only a worker killed mid-job would take this long.
        if (Atomics.wait(w.ctrl, DONE, done, 120_000) === 'timed-out') {
          w.dead = true;
          break;
        }
      }
      if (w.dead || Atomics.load(w.ctrl, STATUS) !== 0) this.x[kernel](...args[i]); // redo it here
      else this.partsOnWorkers++;
    }
  }

  /** Where constant layers were pinned in the shared memory, by their codes. */
  private readonly pinnedLayers = new WeakMap<Int8Array, Int8Layer | null>();

  /**
   * The int8 GEMM (kernels.c gemm_int8_q) on up to `threads` threads: this thread quantizes the
   * activations once, then each thread computes a range of output columns (rows of the codes)
   * from them — for one token, each thread streams its share of the weight bytes. Constant
   * layers are pinned in the shared memory at their first call (up to PINNED_INT8_MAX).
   */
  gemmInt8(a: GemmInt8Args, threads: number, fallback: () => void): void {
    this.spawn(threads - 1);
    const blocks = Math.ceil(a.k / a.block);
    const pinned = constantInt8Layer(this.pinnedLayers, this.arena, this.x, a, blocks, PINNED_INT8_MAX);
    this.arena.run(() => {
      const layer = pinned ?? stageInt8Layer(this.arena, this.x, a, blocks);
      const workers = this.live().slice(0, threads - 1);
      const parts = 1 + workers.length;
      int8Gemm(this.arena, this.x, a, layer, blocks, (args) => {
        const split: number[][] = [];
        for (let p = 0; p < parts; p++) split.push([...args.slice(0, 11), Math.floor((p * a.n) / parts), Math.floor(((p + 1) * a.n) / parts)]);
        this.runParts('gemm_int8_q', split, workers);
      });
    }, fallback);
  }

  /**
   * Codes and scales of a constant layer allocated in the shared memory (kernels.allocateInt8Weights):
   * views that stay valid as the memory grows (a shared buffer is never detached), registered as
   * pinned, so gemmInt8 reads them where the caller wrote them. Null past PINNED_INT8_MAX.
   */
  allocateInt8(n: number, k: number, block: number): { q: Int8Array; scales: Float32Array } | null {
    const at = reserveInt8Layer(this.arena, n, k, block, PINNED_INT8_MAX);
    if (at === null) return null;
    at.sumsPending = true;
    const buffer = this.arena.floats().buffer;
    const q = new Int8Array(buffer, at.codes, n * k);
    this.pinnedLayers.set(q, at);
    return { q, scales: new Float32Array(buffer, at.scales, n * Math.ceil(k / block)) };
  }

  /** Asks the workers to exit (they are unref'd, so this is only needed to free them early). */
  close(): void {
    for (const w of this.workers) {
      Atomics.store(w.ctrl, JOB, -1);
      Atomics.notify(w.ctrl, JOB);
      w.dead = true;
    }
  }
}
