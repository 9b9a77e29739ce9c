/**
 * Numeric helpers on plain numbers that layers far apart need alike: erf for the reference GELU
 * kernels (backends/) and the samplers' normal CDF (tune/), and a 32-bit hash finaliser for the
 * samplers' random streams (tune/) and the tasks' train/test split (chat/). Kept at the bottom of the layering,
 * next to env.ts, so both can import it; it imports nothing.
 */

/**
 * erf(x) with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit, `erfcc`). The bound is
 * absolute: near 0, where erf itself is tiny, a caller wanting relative accuracy needs a series.
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/** MurmurHash3's 32-bit finaliser (fmix32): spreads nearby inputs over the whole 32-bit range. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
