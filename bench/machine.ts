/** What machine the bench runs on, and its theoretical fp32 peak (cores × clock × FLOP/cycle). */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  ghz: number;
  simd: 'avx512' | 'avx2+fma' | 'sse/neon';
  flopsPerCycle: number;
  peakGflopsPerCore: number;
}

/**
 * FLOP/cycle per core, fp32, assuming two FMA pipes: AVX-512 = 2×16 lanes×2, AVX2+FMA = 2×8×2,
 * otherwise 128-bit = 2×4×2. The clock is the one /proc/cpuinfo reports (boost clocks can be
 * higher, so a measured figure may exceed 100% on some machines).
 */
export function detectMachine(): MachineInfo {
  let flags = '';
  let ghz = os.cpus()[0]?.speed ? os.cpus()[0].speed / 1000 : 2;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    flags = /^flags\s*:(.*)$/m.exec(info)?.[1] ?? '';
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1]);
    if (mhz > 0) ghz = mhz / 1000;
  } catch {
    // not Linux: keep os.cpus()
  }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  const simd = has('avx512f') ? 'avx512' : has('avx2') && has('fma') ? 'avx2+fma' : 'sse/neon';
  const flopsPerCycle = simd === 'avx512' ? 64 : simd === 'avx2+fma' ? 32 : 16;
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    ghz,
    simd,
    flopsPerCycle,
    peakGflopsPerCore: ghz * flopsPerCycle,
  };
}
