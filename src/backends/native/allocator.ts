/**
 * Tensor storage is ordinary typed arrays, which Node allocates with the C library's calloc. By
 * default glibc serves each large block (over 128 KiB) with a fresh mmap and returns it on free,
 * so every new activation or gradient buffer page-faults its memory in again: measured here at
 * ~0.7 ms per MiB, more than the arithmetic of most elementwise ops. Raising glibc's mmap
 * threshold to its maximum (32 MiB) and keeping freed memory in the heap (trim threshold, top pad)
 * lets the allocator hand recycled, already-mapped memory to the next tensor instead.
 *
 * Only on Linux with glibc, through the koffi FFI package; `TENSORLM_MALLOC_TUNING=0` turns it off.
 * It runs when BLAS is first loaded (backends/blas/index.ts), not at import: koffi is loaded then
 * anyway, and a program that never multiplies matrices never pays for the FFI package.
 * The cost: the process keeps up to the trim threshold of freed memory mapped instead of giving it
 * back to the OS at once.
 */
import { createRequire } from 'node:module';
import { mallocTuningEnv } from '../../env.js';

const M_TRIM_THRESHOLD = -1;
const M_TOP_PAD = -2;
const M_MMAP_THRESHOLD = -3;

export interface AllocatorTuning {
  applied: boolean;
  reason: string;
}

let result: AllocatorTuning | undefined;

export function tuneAllocator(): AllocatorTuning {
  if (result) return result;
  if (!mallocTuningEnv()) return (result = { applied: false, reason: 'disabled by TENSORLM_MALLOC_TUNING=0' });
  if (process.platform !== 'linux') return (result = { applied: false, reason: `not needed on ${process.platform}` });
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(sig: string): (...a: number[]) => number } };
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)');
    const ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) === 1 && mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) === 1 && mallopt(M_TOP_PAD, 64 * 1024 * 1024) === 1;
    return (result = { applied: ok, reason: ok ? 'glibc mallopt: mmap threshold 32 MiB, trim threshold 1 GiB, top pad 64 MiB' : 'mallopt refused a setting' });
  } catch (e) {
    // musl or another libc without mallopt: nothing to tune.
    return (result = { applied: false, reason: `mallopt unavailable (${(e as Error).message})` });
  }
}
