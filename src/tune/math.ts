/** Numeric helpers for the samplers: per-trial random streams, the normal CDF, log-sum-exp. */
import { erf, fmix32 } from '../math.js';
import { Generator } from '../tensor/random.js';

/**
 * The random stream of trial `number` in a study seeded with `seed`. Keyed by trial number, not
 * by worker, so which worker samples a trial never changes what it draws.
 */
export function trialGenerator(seed: number, number: number, stream = 0): Generator {
  const a = fmix32((seed >>> 0) ^ 0x9e3779b9);
  const b = fmix32((a ^ Math.imul(number + 1, 0x27d4eb2d)) >>> 0);
  const c = fmix32((b ^ Math.imul(stream + 1, 0x165667b1)) >>> 0);
  return new Generator(c + 4294967296 * (a & 0xfffff));
}

/**
 * Φ(x). erf's 1.2e-7 absolute error is ample for the mixture normalisers, which only ever
 * subtract CDF values of points inside or near the range.
 */
export function normalCdf(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2));
}

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

export function normalLogPdf(x: number, mu: number, sigma: number): number {
  const z = (x - mu) / sigma;
  return -0.5 * z * z - Math.log(sigma) - LOG_SQRT_2PI;
}

export function logSumExp(values: readonly number[]): number {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : 0.5 * (s[mid - 1] + s[mid]);
}
