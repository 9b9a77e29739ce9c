/**
 * Data parallelism inside one process, like PyTorch's DistributedDataParallel on one machine:
 * each training step's batch is split into shards, the main thread runs forward + backward on one
 * shard with the caller's model while worker threads run the others on replicas of it, and the
 * replicas' gradients are summed into the main model's `.grad`. The caller then clips and steps
 * the optimizer on the main model exactly as after `loss.backward()`.
 *
 * Why threads per replica and not per op: a small model's step is dominated by per-op JavaScript
 * (graph bookkeeping, allocation, many small kernels), which op-level threading (BLAS threads)
 * cannot split; two whole replicas split all of it.
 *
 *   const dp = new DataParallel(model, { replicas: 2 });
 *   optimizer.zeroGrad();
 *   const loss = await dp.step(x, y);      // x, y: int32 [B, T]; grads now in model's .grad
 *   clipGradNorm(model.parameters(), 1);
 *   optimizer.step();
 *
 * Exactness: the model's loss is the mean cross-entropy over the batch's non-ignored targets, so
 * shard k's loss is weighted by w_k = (its non-ignored targets) / (the batch's) — seeded into its
 * backward — and the summed gradients equal the full-batch gradients up to float32 rounding (the
 * reduction order differs). The returned loss is Σ w_k · loss_k. Shards split rows (the batch
 * dimension) as evenly as possible; a batch smaller than the replica count leaves replicas idle.
 *
 * Dropout: the main thread's shard draws masks from the model's own dropout generator; worker k
 * builds its replica with `new Generator(seed + k)` (options.seed, default 0) and keeps drawing
 * from it, so a run is deterministic for a fixed replica count, but with dropout > 0 it does not
 * reproduce a single-thread run's masks (nor are the workers' generator states in checkpoints, so
 * a resumed run draws different masks). With dropout 0 (the `tiny` preset) none of this matters.
 *
 * Memory and cost per step: one flat shared float32 buffer of all parameters (written by the main
 * thread before each step, ~0.3 ms for 818k floats) and one gradient buffer per worker (summed
 * by the main thread afterwards); each worker holds a full replica and its own activations.
 * Buffers (position tables) are rebuilt from the config in each replica, not copied.
 *
 * Speed (tiny, 16 × 128, 2-core machine, bench/parallel.ts): 1.2–1.3× one thread's tokens/s with
 * V8's default garbage collector, 1.5–1.6× under `node --single-threaded-gc`. The difference: each
 * step allocates hundreds of MB of ArrayBuffers, whose external-memory pressure triggers ~8
 * mark-compacts a step, and V8's parallel/concurrent GC helpers then burn ~100 ms of CPU per step
 * on other threads — free on an idle second core for one thread, but competing with the worker
 * here. The flag must be given at start-up (v8.setFlagsFromString of GC flags crashes V8).
 *
 * Workers are unref'd (an idle DataParallel never keeps the process alive; a step in flight does),
 * and terminated when the DataParallel is garbage-collected; `close()` ends them explicitly.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker, startupSignal } from '../io/worker.js';
import { noGrad } from '../autograd/grad-mode.js';
import { getNumThreads } from '../backends/node.js';
import { getBackend, kernels } from '../backends/registry.js';
import type { LanguageModel } from '../models/language-model.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { accumulateGradients, languageModelLoss } from './loop.js';
import { CTRL_DONE, CTRL_POSTED, CTRL_WORDS, type ParamSlot, type StepRequest, type WorkerInit, type WorkerMessage } from './parallel-protocol.js';

export interface DataParallelOptions {
  /**
   * Replicas, the main thread's included (so replicas − 1 worker threads). Default: the available
   * cores divided by the threads each replica uses (`threads`), at least 1. 1 runs plain steps.
   */
  replicas?: number;
  /** Worker k's dropout generator is `new Generator(seed + k)`. Default 0. */
  seed?: number;
  /** Backend of the workers. Default: the main thread's current backend (getBackend()). */
  backend?: string;
  /** BLAS / WASM-gemm threads of each worker. Default: the main thread's (getNumThreads()). */
  threads?: number;
  /** Target id the loss ignores (the model's cross-entropy uses −100); used only to weight shards. */
  ignoreIndex?: number;
}

/** Where each replica's work stands; `workerBackends` says what the workers actually run on. */
export interface DataParallelInfo {
  replicas: number;
  /** Backend of each worker (index 0 = replica 1), once started; '' until then. */
  workerBackends: string[];
  /** Timings of the last step that ran on workers; null before the first. */
  lastStep: StepTimings | null;
}

/** Where the last parallel step's time went on the main thread (ms), for benchmarks and tuning. */
export interface StepTimings {
  /** Copying parameters and token ids into shared memory and posting the requests. */
  dispatch: number;
  /** Forward + backward of the main thread's shard. */
  main: number;
  /** Waiting for the workers after the main shard was done (0 when they finished first). */
  wait: number;
  /** Summing the workers' gradients into the model. */
  reduce: number;
  /** The slowest worker's own time for its shard, request to reply. */
  worker: number;
}

interface Reply {
  loss: number;
  missing: number[];
  ms: number;
}

const WORKER_KIND = 'tensorlm-data-parallel';

/** A replica's worker thread (parallel-worker.ts), from compiled JS or through tsx. */
function startWorker(init: WorkerInit): Worker {
  return startModuleWorker(import.meta.url, './parallel-worker', { kind: WORKER_KIND, init }, 'DataParallel');
}

/** One worker thread and the shared memory it writes; knows nothing of the DataParallel that owns it. */
class WorkerHandle {
  readonly worker: Worker;
  readonly grads: Float32Array;
  readonly ctrl: Int32Array;
  inputs: Int32Array | null = null;
  backend = '';
  /** Set once the worker has died or failed to start: every later request fails with it. */
  failure: Error | null = null;
  readonly ready: Promise<void>;
  #pending: { seq: number; resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  #refs = 0;

  constructor(
    readonly rank: number,
    init: WorkerInit,
    onWarning: (message: string) => void,
  ) {
    this.grads = new Float32Array(init.grads);
    this.ctrl = new Int32Array(init.ctrl);
    this.worker = startWorker(init);
    // Nobody may ever await `ready` (a DataParallel that is never stepped); its failure then
    // surfaces at the next step, not as an unhandled rejection.
    const { ready, resolve: readyResolve, reject: readyReject } = startupSignal();
    this.ready = ready;
    this.worker.on('message', (m: WorkerMessage) => {
      switch (m.type) {
        case 'ready':
          this.backend = m.backend;
          if (m.warning) onWarning(`DataParallel replica ${rank}: ${m.warning}`);
          readyResolve();
          break;
        case 'init-error':
          this.#fail(new Error(`DataParallel: replica ${rank} could not start: ${m.message}`), m.stack);
          readyReject(this.failure as Error);
          break;
        case 'done':
        case 'error': {
          const p = this.#pending;
          if (!p || p.seq !== m.seq) return;
          this.#pending = null;
          this.#release();
          if (m.type === 'error') {
            const e = new Error(`DataParallel: replica ${rank} (worker thread) failed: ${m.message}`);
            if (m.stack) e.cause = m.stack;
            p.reject(e);
          } else if (Atomics.load(this.ctrl, CTRL_DONE) !== m.seq) {
            // Pairs with the worker's Atomics.store: its gradient writes are visible from here on.
            p.reject(new Error(`DataParallel: replica ${rank} reported step ${m.seq} done but its control word disagrees`));
          } else p.resolve({ loss: m.loss, missing: m.missing, ms: m.ms });
          break;
        }
      }
    });
    this.worker.on('error', (e: Error) => {
      this.#fail(new Error(`DataParallel: replica ${rank} (worker thread) crashed: ${e.message}`, { cause: e }));
      readyReject(this.failure as Error);
    });
    this.worker.on('exit', (code: number) => {
      this.#fail(new Error(`DataParallel: replica ${rank} (worker thread) exited with code ${code}`));
      readyReject(this.failure as Error);
    });
    // After the listeners: adding a 'message' listener refs the worker's port again (measured on
    // Node 20: unref'd first, an idle DataParallel kept the process alive indefinitely).
    this.worker.unref();
  }

  /** Resolves once the replica is built; keeps the process alive meanwhile (only while awaited). */
  async whenReady(): Promise<void> {
    this.#hold();
    try {
      await this.ready;
    } finally {
      this.#release();
    }
  }

  /** Posts a step (its inputs already in shared memory) and resolves with the worker's reply. */
  run(request: StepRequest): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      this.#pending = { seq: request.seq, resolve, reject };
      this.#hold();
      Atomics.store(this.ctrl, CTRL_POSTED, request.seq);
      this.worker.postMessage(request);
    });
  }

  /**
   * While a reply is awaited the worker must keep the event loop alive, or `await dp.step()` at
   * the end of a script would let Node exit mid-step (the worker is otherwise unref'd).
   */
  #hold(): void {
    if (this.#refs++ === 0) this.worker.ref();
  }

  #release(): void {
    if (--this.#refs === 0) this.worker.unref();
  }

  #fail(e: Error, stack?: string): void {
    if (this.failure) return;
    if (stack) e.cause = stack;
    this.failure = e;
    const p = this.#pending;
    this.#pending = null;
    if (p) {
      this.#release();
      p.reject(e);
    }
  }
}

/** Ends the workers of a DataParallel that was dropped without close(). */
const orphans = new FinalizationRegistry<Worker[]>((workers) => {
  for (const w of workers) void w.terminate();
});

/** Splits `rows` into `parts` contiguous shards; the main thread's (first) one is never the larger. */
function splitRows(rows: number, parts: number): { start: number; rows: number }[] {
  const base = Math.floor(rows / parts);
  const extra = rows % parts;
  const out: { start: number; rows: number }[] = [];
  let start = 0;
  for (let k = 0; k < parts; k++) {
    // The main thread also copies parameters and sums gradients, so extra rows go to workers.
    const n = base + (k >= parts - extra ? 1 : 0);
    out.push({ start, rows: n });
    start += n;
  }
  return out;
}

/** The dense elements of a tensor as a typed-array view (copying only when it is not contiguous). */
function denseData<T extends Float32Array | Int32Array>(t: Tensor): T {
  const d = t.isContiguous ? t : noGrad(() => t.contiguous());
  return d.storage.subarray(d.offset, d.offset + d.size) as T;
}

/**
 * Runs each training step's forward + backward on `replicas` copies of a language model: the
 * caller's model on the main thread plus replicas − 1 worker threads, gradients summed into the
 * caller's model. See the module comment for the contract.
 */
export class DataParallel {
  readonly model: LanguageModel;
  readonly replicas: number;
  readonly #layout: ParamSlot[];
  readonly #moduleCount: number;
  readonly #params: Float32Array;
  readonly #workers: WorkerHandle[];
  readonly #ignoreIndex: number;
  #seq = 0;
  #lastStep: StepTimings | null = null;
  #busy = false;
  #closed = false;

  constructor(model: LanguageModel, options: DataParallelOptions = {}) {
    const threads = options.threads ?? getNumThreads();
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`DataParallel: threads must be a positive integer, got ${threads}`);
    const replicas = options.replicas ?? Math.max(1, Math.floor(availableParallelism() / threads));
    if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`DataParallel: replicas must be a positive integer, got ${replicas}`);
    const seed = options.seed ?? 0;
    if (!Number.isFinite(seed)) throw new RangeError(`DataParallel: seed must be a finite number, got ${seed}`);
    this.model = model;
    this.replicas = replicas;
    this.#ignoreIndex = options.ignoreIndex ?? -100;

    let offset = 0;
    this.#layout = model.namedParameters().map(([name, p]) => {
      if (p.dtype !== 'float32') throw new Error(`DataParallel: parameter '${name}' is ${p.dtype}; only float32 parameters are supported`);
      const slot = { name, offset, size: p.size, shape: p.shape.slice() };
      offset += p.size;
      return slot;
    });
    const moduleNames = model.namedModules().map(([name]) => name);
    this.#moduleCount = moduleNames.length;
    const paramBuffer = new SharedArrayBuffer(Math.max(1, offset) * 4);
    this.#params = new Float32Array(paramBuffer);

    const backend = options.backend ?? getBackend();
    const warn = (message: string) => process.emitWarning(message);
    this.#workers = [];
    for (let rank = 1; rank < replicas; rank++) {
      const init: WorkerInit = {
        rank,
        config: { ...model.config },
        layout: this.#layout,
        moduleNames,
        params: paramBuffer,
        grads: new SharedArrayBuffer(Math.max(1, offset) * 4),
        ctrl: new SharedArrayBuffer(CTRL_WORDS * 4),
        backend,
        threads,
        dropoutSeed: seed + rank,
      };
      this.#workers.push(new WorkerHandle(rank, init, warn));
    }
    if (this.#workers.length > 0) orphans.register(this, this.#workers.map((w) => w.worker), this);
  }

  /** Resolves once every worker has built its replica (steps wait for this themselves). */
  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.whenReady()));
  }

  info(): DataParallelInfo {
    return { replicas: this.replicas, workerBackends: this.#workers.map((w) => w.backend), lastStep: this.#lastStep };
  }

  /**
   * Forward + backward of the batch (x, y: int32 [B, T]) split across the replicas; the
   * full-batch gradients are added into the main model's `.grad` (as `loss.backward()` would add
   * them: call optimizer.zeroGrad() first) and the full-batch mean loss is returned. One step at
   * a time: await it before the next. Rejects with the worker's message when a replica fails
   * (the main model's gradients are then incomplete and should be zeroed). `weight` scales the
   * gradients (not the returned loss): 1/k for each of k accumulated micro-batches.
   */
  async step(x: Tensor, y: Tensor, weight = 1): Promise<number> {
    if (this.#closed) throw new Error('DataParallel.step: this DataParallel was closed');
    if (this.#busy) throw new Error('DataParallel.step: the previous step has not finished (await it before starting another)');
    if (x.dtype !== 'int32' || y.dtype !== 'int32' || x.ndim !== 2 || y.ndim !== 2 || x.shape[0] !== y.shape[0] || x.shape[1] !== y.shape[1]) {
      throw new Error(`DataParallel.step: x and y must be int32 tensors of the same shape [B, T], got ${x.dtype} ${formatShape(x.shape)} and ${y.dtype} ${formatShape(y.shape)}`);
    }
    if (!(weight > 0 && Number.isFinite(weight))) throw new RangeError(`DataParallel.step: weight must be a positive number, got ${weight}`);
    this.#busy = true;
    try {
      if (this.#workers.length === 0) return this.#plainStep(x, y, weight);
      await this.ready();
      return await this.#parallelStep(x, y, weight);
    } finally {
      this.#busy = false;
    }
  }

  /** Ends the worker threads; later steps throw. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    orphans.unregister(this);
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }

  #plainStep(x: Tensor, y: Tensor, weight: number): number {
    return accumulateGradients(this.model, languageModelLoss, { x, y }, weight);
  }

  async #parallelStep(x: Tensor, y: Tensor, scale: number): Promise<number> {
    const [b, t] = x.shape;
    const shards = splitRows(b, this.replicas);
    const ids = denseData<Int32Array>(x);
    const targets = denseData<Int32Array>(y);
    const counts = shards.map((s) => {
      let n = 0;
      for (let i = s.start * t, end = (s.start + s.rows) * t; i < end; i++) if (targets[i] !== this.#ignoreIndex) n++;
      return n;
    });
    const total = counts.reduce((a, c) => a + c, 0);
    // Nothing to weight by: the full-batch loss is undefined (0/0) and a plain step says so.
    if (total === 0) return this.#plainStep(x, y, scale);

    const t0 = performance.now();
    const named = this.model.namedParameters();
    this.#checkLayout(named);
    for (let i = 0; i < named.length; i++) this.#params.set(denseData<Float32Array>(named[i][1]), this.#layout[i].offset);
    const training = this.model.modules().map((m) => m.training);
    if (training.length !== this.#moduleCount) throw new Error('DataParallel.step: the main model gained or lost modules since the DataParallel was made');
    const requiresGrad = named.map(([, p]) => p.requiresGrad);

    const seq = ++this.#seq;
    const pending: { rank: number; reply: Promise<Reply>; weight: number }[] = [];
    for (let k = 1; k < this.replicas; k++) {
      const s = shards[k];
      if (s.rows === 0 || counts[k] === 0) continue; // no targets: contributes nothing
      const w = this.#workers[k - 1];
      const n = s.rows * t;
      let fresh: SharedArrayBuffer | undefined;
      if (!w.inputs || w.inputs.length < 2 * n) {
        fresh = new SharedArrayBuffer(2 * n * 4);
        w.inputs = new Int32Array(fresh);
      }
      w.inputs.set(ids.subarray(s.start * t, s.start * t + n), 0);
      w.inputs.set(targets.subarray(s.start * t, s.start * t + n), n);
      const weight = counts[k] / total;
      pending.push({ rank: k, weight, reply: w.run({ type: 'step', seq, inputs: fresh, rows: s.rows, cols: t, weight: weight * scale, training, requiresGrad }) });
    }

    // The main thread's shard runs while the workers run theirs.
    const t1 = performance.now();
    let loss = 0;
    let mainError: unknown = null;
    if (shards[0].rows > 0 && counts[0] > 0) {
      try {
        const weight = counts[0] / total;
        const shard = { x: x.narrow(0, 0, shards[0].rows), y: y.narrow(0, 0, shards[0].rows) };
        loss += weight * accumulateGradients(this.model, languageModelLoss, shard, weight * scale);
      } catch (e) {
        mainError = e;
      }
    }
    // Wait for every worker even after a failure: none may still be reading shared memory when
    // the next step rewrites it.
    const t2 = performance.now();
    const settled = await Promise.allSettled(pending.map((p) => p.reply));
    if (mainError !== null) throw mainError;
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const t3 = performance.now();
    let worker = 0;
    noGrad(() => {
      for (let j = 0; j < pending.length; j++) {
        const reply = (settled[j] as PromiseFulfilledResult<Reply>).value;
        loss += pending[j].weight * reply.loss;
        worker = Math.max(worker, reply.ms);
        this.#addGrads(this.#workers[pending[j].rank - 1].grads, named, reply.missing);
      }
    });
    this.#lastStep = { dispatch: t1 - t0, main: t2 - t1, wait: t3 - t2, reduce: performance.now() - t3, worker };
    return loss;
  }

  /** The main model's parameters must still be the ones the replicas were built to mirror. */
  #checkLayout(named: [string, Tensor][]): void {
    const ok =
      named.length === this.#layout.length &&
      named.every(([name, p], i) => name === this.#layout[i].name && p.size === this.#layout[i].size);
    if (!ok) throw new Error('DataParallel.step: the main model\'s parameters changed (names or sizes) since the DataParallel was made; make a new one');
  }

  /** Adds one worker's (already weighted) gradients into the main model's `.grad`. */
  #addGrads(grads: Float32Array, named: [string, Tensor][], missing: number[]): void {
    const skip = new Set(missing);
    for (let i = 0; i < named.length; i++) {
      if (skip.has(i)) continue;
      const p = named[i][1];
      const slot = this.#layout[i];
      const src = grads.subarray(slot.offset, slot.offset + slot.size);
      if (p.grad === null) {
        p.grad = new Tensor(src.slice(), p.shape);
        continue;
      }
      // Autograd's stored gradients own dense memory (engine.ts accumulate), so adding in place
      // changes nothing but this parameter's gradient. Through the add kernel: this runs on the
      // main thread while the workers wait, and a float32 add is the same in every backend (tiny:
      // lastStep.reduce 2.0–2.2 ms with a JS loop here, 0.9–1.6 ms with the kernel).
      if (!p.grad.isContiguous) p.grad = p.grad.contiguous();
      const g = (p.grad.storage as Float32Array).subarray(p.grad.offset, p.grad.offset + slot.size);
      kernels.binary('add', [slot.size], { data: g, offset: 0, strides: [1] }, { data: src, offset: 0, strides: [1] }, g);
    }
  }
}
