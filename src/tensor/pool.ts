/**
 * Recycled float32 buffers. A training step allocates hundreds of MB of activation and gradient
 * buffers; left to the garbage collector, V8 runs a full mark-compact about once a step (external
 * memory pressure) and every new buffer is page-faulted in again.
 *
 * Users never free anything. TensorLM hands back only buffers it knows to be dead
 * (autograd/engine.ts): inside `backward()`, an intermediate gradient it created during the pass
 * once no pending gradient holds it (not even through a view) — a leaf's gradient is either a copy
 * or a buffer it takes over and that is then never recycled; and, when its own training loops ask
 * with `recycleIntermediates`, the graph's op outputs after the pass. `allocateUninitialized`
 * serves the next activations and gradients from them. Everything else stays with the garbage
 * collector.
 *
 * Buffers are pooled by exact length (a step's shapes repeat), up to `limit` bytes in all (the
 * memory stays mapped while pooled; `setBufferPoolLimit(0)` empties and disables the pool, as does
 * TENSORLM_BUFFER_POOL=0).
 */
import { bufferPoolEnv } from '../env.js';

/** Buffers smaller than this are cheap to allocate and are not pooled. */
export const POOL_MIN_FLOATS = 4096;

const free = new Map<number, Float32Array[]>();
let pooledBytes = 0;
/** Counters since start: buffers served from the pool, fresh ones allocated, buffers released to it. */
let reused = 0;
let fresh = 0;
let released = 0;
/** The byte limit; −1 until first needed, so TENSORLM_BUFFER_POOL is read then, not at import. */
let limitBytes = -1;
/** Storages created while a backward pass runs (the only ones it may release). */
let born: WeakSet<Float32Array> | null = null;
let depth = 0;

function limit(): number {
  if (limitBytes < 0) limitBytes = bufferPoolEnv() ? 256 * 1024 * 1024 : 0;
  return limitBytes;
}

/** Sets the most bytes the pool may hold (0 disables it and drops what it holds). */
export function setBufferPoolLimit(bytes: number): void {
  if (!(Number.isFinite(bytes) && bytes >= 0)) throw new RangeError(`setBufferPoolLimit: expected a number of bytes ≥ 0, got ${bytes}`);
  limitBytes = bytes;
  if (pooledBytes > limitBytes) {
    free.clear();
    pooledBytes = 0;
  }
}

export function bufferPoolStats(): { bytes: number; buffers: number; limit: number; reused: number; fresh: number; released: number } {
  let buffers = 0;
  for (const list of free.values()) buffers += list.length;
  return { bytes: pooledBytes, buffers, limit: limit(), reused, fresh, released };
}

/** A pooled buffer of exactly `size` floats (old contents), or null. */
export function takeBuffer(size: number): Float32Array | null {
  const list = free.get(size);
  const buffer = list?.pop();
  if (buffer === undefined) {
    fresh++;
    return null;
  }
  reused++;
  pooledBytes -= size * 4;
  return buffer;
}

/** Marks a new storage as created inside the running backward pass (no-op outside one). */
export function noteAllocation(storage: Float32Array): void {
  born?.add(storage);
}

/** Whether `storage` was created inside the running backward pass. */
export function bornInBackward(storage: unknown): storage is Float32Array {
  return born !== null && storage instanceof Float32Array && born.has(storage);
}

/** Returns a dead buffer to the pool (dropped when the pool is full or the buffer small). */
export function releaseBuffer(storage: Float32Array): void {
  const size = storage.length;
  if (size < POOL_MIN_FLOATS || pooledBytes + size * 4 > limit()) return;
  let list = free.get(size);
  if (!list) free.set(size, (list = []));
  list.push(storage);
  pooledBytes += size * 4;
  released++;
}

/** Runs a backward pass with allocation tracking on (nested passes share the outer tracking). */
export function trackBackward<T>(fn: () => T): T {
  if (depth++ === 0 && limit() > 0) born = new WeakSet();
  try {
    return fn();
  } finally {
    if (--depth === 0) born = null;
  }
}
