/**
 * Encoding many documents on worker threads. `EncoderPool` is a persistent pool (in the spirit of
 * PyTorch's DataLoader workers): its threads start on first use, build the tokenizer once, and
 * serve every later `encode` / `encodeStream` call. `encodeDocuments` / `encodeBatch` are the
 * one-shot form: a pool made for the call and closed after it. Every form yields, per document
 * and in document order, exactly the ids `tokenizer.encodeToInt32Array(doc, { allowSpecial })`
 * gives.
 *
 * - Documents are sent in batches (about `batchChars` characters each, so a message costs little
 *   next to its encoding) to the worker with the fewest batches in flight.
 * - Backpressure: a stream has at most `maxInFlight` batches sent or waiting to be yielded; the
 *   source is read no further until the consumer takes results, so a huge corpus never sits in
 *   memory.
 * - Each worker rebuilds the tokenizer: by name for tiktoken encodings (`gpt2`: the ranks load
 *   faster than 50,000 merges parse), by path for a file, else from `toJSON()`.
 * - Lifetime: workers are unref'd while they have no batch in flight (an idle pool, or a forgotten
 *   generator, never keeps the process alive) and terminated by `close()`, or, for a pool dropped
 *   without `close()`, when it is garbage-collected (a FinalizationRegistry, as in
 *   train/parallel.ts). A stream abandoned early (`break`) leaves the pool usable; the batches it
 *   had in flight are encoded and discarded.
 * - Failures reject in one line: a document the tokenizer refuses (`… document N could not be
 *   encoded: …`, N counted from the call's first document) rejects that call only, the pool stays
 *   usable; a worker that cannot build the tokenizer, crashes or exits rejects every call in
 *   flight and makes the pool unusable (workers are not restarted: a tokenizer that fails to
 *   build or a crash would most likely recur) — later calls reject with "… the pool is unusable
 *   after a worker failure (…)"; make a new pool.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker, startupSignal } from '../io/worker.js';
import { isTiktokenEncodingName, tiktokenNameOf } from './tiktoken.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** How a worker gets its tokenizer. */
export type EncodeWorkerSpec = { name: string } | { path: string } | { json: object };

/** @internal The worker's workerData. */
export interface EncodeWorkerData {
  kind: 'tensorlm-encode-worker';
  spec: EncodeWorkerSpec;
  allowSpecial: boolean;
}
/** @internal A batch sent to a worker. */
export interface EncodeRequest {
  seq: number;
  texts: string[];
}
/**
 * @internal A worker's reply: `ready` once its tokenizer is built (or `failure`), then per batch
 * every document's ids, or the failure of document `index` of the batch (-1: the worker itself).
 */
export type EncodeReply =
  | { type: 'ready'; failure: string | null }
  | { type: 'done'; seq: number; ids: Int32Array[] }
  | { type: 'error'; seq: number; index: number; message: string };

export interface EncoderPoolOptions extends EncodeOptions {
  /** Worker threads (default: the available parallelism, at most 8). */
  workers?: number;
  /** A batch is closed once it holds this many characters (default 65,536) or 1,024 documents. */
  batchChars?: number;
  /** Batches a stream has sent or waiting to be yielded, at most (default 2 per worker). */
  maxInFlight?: number;
}

/** Options of the one-shot `encodeDocuments` / `encodeBatch`: those of the pool they make. */
export type ParallelEncodeOptions = EncoderPoolOptions;

const MAX_BATCH_DOCS = 1024;

/** The worker thread of an encoding pool (encode-worker.ts), from compiled JS or through tsx. */
function startWorker(workerData: EncodeWorkerData, label: string): Worker {
  return startModuleWorker(import.meta.url, './encode-worker', workerData, label);
}

/** What the worker needs to rebuild `tokenizer`: a name, a path, or its JSON. */
export function workerSpecOf(tokenizer: Tokenizer | string, label = 'encodeDocuments'): EncodeWorkerSpec {
  if (typeof tokenizer === 'string') return isTiktokenEncodingName(tokenizer) ? { name: tokenizer } : { path: tokenizer };
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.toJSON !== 'function') {
    throw new Error(`${label}: "tokenizer" must be a Tokenizer, a tiktoken encoding name or a tokenizer file path, got ${tokenizer === null ? 'null' : typeof tokenizer}`);
  }
  const name = tiktokenNameOf(tokenizer);
  return name !== undefined ? { name } : { json: tokenizer.toJSON() };
}

function positiveInteger(value: number | undefined, fallback: number, what: string, label: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${label}: "${what}" must be a positive integer, got ${String(value)}`);
  return v;
}

interface Pending {
  resolve: (ids: Int32Array[]) => void;
  reject: (error: Error) => void;
  firstDoc: number;
}

/**
 * One worker thread and the batches it has been sent. Knows nothing of the pool: its listeners
 * (which live as long as the thread) must not keep an EncoderPool reachable, or a dropped pool
 * would never be collected and its threads never ended.
 */
class EncodeWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  /** Resolves once the tokenizer is built; rejects if it cannot be, or the thread dies first. */
  readonly ready: Promise<void>;
  #refs = 0;

  constructor(
    readonly index: number,
    data: EncodeWorkerData,
    label: string,
    /** Called once the worker cannot serve any more batches (the pool then fails as a whole). */
    onFailure: (error: Error) => void,
  ) {
    this.worker = startWorker(data, label);
    // Nobody may await `ready` (a pool used only through encode); a failure surfaces there too.
    const { ready, resolve: readyResolve, reject: readyReject } = startupSignal();
    this.ready = ready;
    const fail = (error: Error): void => {
      readyReject(error);
      onFailure(error);
    };
    this.worker.on('message', (reply: EncodeReply) => {
      if (reply.type === 'ready') {
        if (reply.failure === null) readyResolve();
        else fail(new Error(`${label}: worker ${index} failed: ${reply.failure}`));
        return;
      }
      const p = this.pending.get(reply.seq);
      if (p === undefined) return;
      this.pending.delete(reply.seq);
      this.release();
      if (reply.type === 'done') p.resolve(reply.ids);
      else if (reply.index < 0) {
        const error = new Error(`${label}: worker ${index} failed: ${reply.message}`);
        p.reject(error);
        fail(error);
      } else p.reject(new Error(`${label}: document ${p.firstDoc + reply.index} could not be encoded: ${reply.message}`));
    });
    this.worker.on('error', (e: Error) => fail(new Error(`${label}: worker ${index} crashed: ${String(e.message).split('\n')[0]}`)));
    this.worker.on('exit', (code: number) => fail(new Error(`${label}: worker ${index} exited with code ${code}`)));
    // After the listeners (adding a 'message' listener refs the worker again): an idle worker
    // does not keep the process alive; a batch in flight, or an awaited start, does.
    this.worker.unref();
  }

  hold(): void {
    if (this.#refs++ === 0) this.worker.ref();
  }

  release(): void {
    if (--this.#refs === 0) this.worker.unref();
  }

  send(seq: number, texts: string[], firstDoc: number): Promise<Int32Array[]> {
    return new Promise<Int32Array[]>((resolve, reject) => {
      this.hold();
      this.pending.set(seq, { resolve, reject, firstDoc });
      this.worker.postMessage({ seq, texts } satisfies EncodeRequest);
    });
  }

  /** Rejects every batch in flight with `error`. */
  rejectAll(error: Error): void {
    for (const p of this.pending.values()) {
      this.release();
      p.reject(error);
    }
    this.pending.clear();
  }
}

/**
 * The pool's workers and state, without a reference to the EncoderPool itself, so that the
 * FinalizationRegistry can hold it and end the threads of a pool that was dropped.
 */
class PoolCore {
  readonly workers: EncodeWorker[] = [];
  /** Why the pool is unusable (a worker failed, or it was closed), or null. */
  failure: Error | null = null;
  closed = false;
  #seq = 0;

  constructor(
    readonly data: EncodeWorkerData,
    readonly size: number,
    readonly label: string,
  ) {}

  /** Throws if the pool cannot take work. */
  check(): void {
    if (this.closed) throw new Error(`${this.label}: the pool is closed`);
    if (this.failure !== null) throw new Error(`${this.label}: the pool is unusable after a worker failure (${this.failure.message}); make a new pool`);
  }

  startWorker(): EncodeWorker {
    const w = new EncodeWorker(this.workers.length, this.data, this.label, (e) => this.fail(e));
    this.workers.push(w);
    return w;
  }

  /** Sends a batch to the least busy worker, starting one while all are busy and the pool is not full. */
  send(texts: string[], firstDoc: number): Promise<Int32Array[]> {
    try {
      this.check();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    let target: EncodeWorker | undefined;
    for (const w of this.workers) if (target === undefined || w.pending.size < target.pending.size) target = w;
    // Workers start lazily: a short input starts only as many as it has batches.
    if (this.workers.length < this.size && (target === undefined || target.pending.size > 0)) target = this.startWorker();
    return (target as EncodeWorker).send(this.#seq++, texts, firstDoc);
  }

  fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    for (const w of this.workers) w.rejectAll(error);
    // The other threads are of no more use; their 'exit' events find `failure` set.
    for (const w of this.workers) void w.worker.terminate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error(`${this.label}: the pool was closed`);
    this.failure ??= error;
    for (const w of this.workers) w.rejectAll(error);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

/** Ends the threads of an EncoderPool that was dropped without close(). */
const orphans = new FinalizationRegistry<PoolCore>((core) => {
  void core.close();
});

/** @internal The error-message prefix of a pool made by encodeDocuments / encodeBatch. */
const LABEL = Symbol('label');

/**
 * A persistent pool of tokenizer worker threads. `tokenizer` is a tokenizer, a tiktoken encoding
 * name (`'gpt2'`) or a tokenizer file path. Threads start on first use (or `start()`), stay alive
 * between calls, never keep the process alive while idle, and end with `close()` or when the
 * pool is garbage-collected. See the module comment for failures.
 *
 *     const pool = new EncoderPool('gpt2', { workers: 4 });
 *     const ids = await pool.encode(docs);              // Int32Array per document, in order
 *     for await (const a of pool.encodeStream(lines)) … // bounded in-flight work, in order
 */
export class EncoderPool {
  /** Worker threads at most. */
  readonly workers: number;
  readonly #core: PoolCore;
  readonly #batchChars: number;
  readonly #maxInFlight: number;

  constructor(tokenizer: Tokenizer | string, options: EncoderPoolOptions = {}) {
    const label = (options as { [LABEL]?: string })[LABEL] ?? 'EncoderPool';
    this.workers = positiveInteger(options.workers, Math.min(8, availableParallelism()), 'workers', label);
    this.#batchChars = positiveInteger(options.batchChars, 1 << 16, 'batchChars', label);
    this.#maxInFlight = positiveInteger(options.maxInFlight, 2 * this.workers, 'maxInFlight', label);
    const data: EncodeWorkerData = { kind: 'tensorlm-encode-worker', spec: workerSpecOf(tokenizer, label), allowSpecial: options.allowSpecial !== false };
    this.#core = new PoolCore(data, this.workers, label);
    orphans.register(this, this.#core, this);
  }

  /** The thread ids of the workers started so far (a pool reuses them: the list only grows to `workers`). */
  get threadIds(): number[] {
    return this.#core.workers.map((w) => w.worker.threadId);
  }

  /** Starts every worker now and resolves once each has built its tokenizer (optional: workers otherwise start on first use). */
  async start(): Promise<void> {
    const core = this.#core;
    core.check();
    while (core.workers.length < core.size) core.startWorker();
    const workers = core.workers.slice();
    for (const w of workers) w.hold();
    try {
      await Promise.all(workers.map((w) => w.ready));
    } finally {
      for (const w of workers) w.release();
    }
  }

  /** Every document's ids, in order. */
  async encode(docs: readonly string[]): Promise<Int32Array[]> {
    if (!Array.isArray(docs)) throw new Error(`${this.#core.label}: "docs" must be an array of strings, got ${docs === null ? 'null' : typeof docs}`);
    const out: Int32Array[] = [];
    for await (const ids of this.encodeStream(docs)) out.push(ids);
    return out;
  }

  /**
   * One Int32Array per document of `docs`, in order. At most `maxInFlight` batches are sent or
   * waiting to be yielded: the source is read only as fast as results are taken. Several streams
   * may share the pool at once.
   */
  async *encodeStream(docs: AsyncIterable<string> | Iterable<string>): AsyncGenerator<Int32Array, void, undefined> {
    const core = this.#core;
    core.check();
    const isIterable = docs !== null && typeof docs === 'object' && (Symbol.asyncIterator in docs || Symbol.iterator in docs);
    if (!isIterable) throw new Error(`${core.label}: "docs" must be an iterable or async iterable of strings, got ${docs === null ? 'null' : typeof docs}`);
    const source: AsyncIterator<string> | Iterator<string> =
      Symbol.asyncIterator in docs ? (docs as AsyncIterable<string>)[Symbol.asyncIterator]() : (docs as Iterable<string>)[Symbol.iterator]();
    const batchChars = this.#batchChars;
    const maxInFlight = this.#maxInFlight;
    const inFlight = new Map<number, Promise<Int32Array[]>>();
    let docCount = 0;
    let sourceDone = false;

    /** The next batch of documents from the source (empty at its end). */
    const readBatch = async (): Promise<string[]> => {
      const batch: string[] = [];
      let chars = 0;
      while (!sourceDone && chars < batchChars && batch.length < MAX_BATCH_DOCS) {
        const r = await source.next();
        if (r.done === true) {
          sourceDone = true;
          break;
        }
        if (typeof r.value !== 'string') throw new Error(`${core.label}: document ${docCount + batch.length} must be a string, got ${r.value === null ? 'null' : typeof r.value}`);
        batch.push(r.value);
        chars += r.value.length;
      }
      return batch;
    };

    try {
      let sent = 0;
      let taken = 0;
      for (;;) {
        while (!sourceDone && inFlight.size < maxInFlight) {
          const batch = await readBatch();
          if (batch.length === 0) break;
          const result = core.send(batch, docCount);
          // Awaited in order later; until then a failure must not count as unhandled.
          result.catch(() => {});
          inFlight.set(sent++, result);
          docCount += batch.length;
        }
        if (taken === sent) break;
        const ids = await (inFlight.get(taken) as Promise<Int32Array[]>);
        inFlight.delete(taken++);
        for (const a of ids) yield a;
      }
    } finally {
      if (!sourceDone) {
        // Closed early (an error or the consumer's break): let the source release what it holds.
        const close = source.return?.bind(source);
        if (close !== undefined) await Promise.resolve(close()).catch(() => {});
      }
      // Keeps the pool (and so its threads) alive for as long as a stream of it is running.
      void this.#core;
    }
  }

  /** Ends the worker threads; batches in flight reject, and later calls fail. Idempotent. */
  async close(): Promise<void> {
    orphans.unregister(this);
    await this.#core.close();
  }
}

/**
 * Encodes `docs` on worker threads; yields one Int32Array per document, in order, each equal to
 * `tokenizer.encodeToInt32Array(doc, { allowSpecial })`. `tokenizer` is a tokenizer, a tiktoken
 * encoding name (`'gpt2'`) or a tokenizer file path. One-shot: a pool is made for this call and
 * closed when the generator finishes, fails or is closed early; use an `EncoderPool` to keep the
 * threads (and their tokenizers and caches) across calls.
 */
export async function* encodeDocuments(
  tokenizer: Tokenizer | string,
  docs: AsyncIterable<string> | Iterable<string>,
  options: ParallelEncodeOptions = {},
): AsyncGenerator<Int32Array, void, undefined> {
  const pool = new EncoderPool(tokenizer, { ...options, [LABEL]: 'encodeDocuments' } as EncoderPoolOptions);
  try {
    yield* pool.encodeStream(docs);
  } finally {
    await pool.close();
  }
}

/** All documents' ids at once (in order), encoded on worker threads; see `encodeDocuments`. */
export async function encodeBatch(tokenizer: Tokenizer | string, docs: readonly string[], options: ParallelEncodeOptions = {}): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for await (const ids of encodeDocuments(tokenizer, docs, options)) out.push(ids);
  return out;
}
