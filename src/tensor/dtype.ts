import { noteAllocation, POOL_MIN_FLOATS, takeBuffer } from './pool.js';

/** Element types. float32 carries values and gradients; int32 carries indices and targets; bool carries masks. */
export type DType = 'float32' | 'int32' | 'bool';

export type TypedArray = Float32Array | Int32Array | Uint8Array;

export function allocate(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': {
      const out = new Float32Array(size);
      if (size >= POOL_MIN_FLOATS) noteAllocation(out);
      return out;
    }
    case 'int32':
      return new Int32Array(size);
    case 'bool':
      return new Uint8Array(size);
  }
}

/**
 * Like `allocate`, but the contents are unspecified: for outputs a kernel overwrites completely.
 * Skipping calloc's zeroing (and its page faults) matters for the many activation-sized buffers
 * of a training step. Large float32 buffers come from Node's uninitialised allocator; elsewhere
 * (small sizes, browsers) this is plain `allocate`.
 */
export function allocateUninitialized(dtype: DType, size: number): TypedArray {
  if (dtype === 'float32' && size >= POOL_MIN_FLOATS) {
    // Recycled gradient buffers first (tensor/pool.ts), then fresh uninitialised memory.
    const out = takeBuffer(size) ?? (uninitializedBytes ? floatsOver(uninitializedBytes(size * 4), size) : new Float32Array(size));
    noteAllocation(out);
    return out;
  }
  return allocate(dtype, size);
}

function floatsOver(bytes: Uint8Array, size: number): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, size);
}

type ByteAllocator = (bytes: number) => Uint8Array;
const uninitializedBytes: ByteAllocator | null =
  typeof globalThis.Buffer?.allocUnsafeSlow === 'function' ? (n: number) => globalThis.Buffer.allocUnsafeSlow(n) : null;

export function dtypeOfArray(array: TypedArray): DType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Int32Array) return 'int32';
  return 'bool';
}

/** PyTorch's promotion for arithmetic: any float wins, else int32 (bool + bool is int32 here, not bool). */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === 'float32' || b === 'float32') return 'float32';
  return 'int32';
}
