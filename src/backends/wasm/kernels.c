/*
 * TensorLM's WebAssembly SIMD kernels (compiled by tools/build-wasm.sh into binary.ts).
 *
 * Freestanding C: no libc, no libm, no allocator. The JavaScript glue (index.ts) copies inputs into
 * this module's linear memory above __heap_base, calls one function, and copies the result out.
 * All pointers are offsets into that memory; all sizes are element counts.
 *
 * Two builds come from this one file: plain SIMD128, and relaxed SIMD (TLM_RELAXED), where MADD is
 * a fused multiply-add. Everything else is identical, so both must pass the same tests.
 *
 * Accuracy: the reference JS kernels compute in float64 and round once. Here exp, log and tanh are
 * within ~1 ulp, sigmoid/SiLU ~2 ulp, GELU within a few ulp (see the tests' sweeps); sums (row
 * reductions, softmax denominators, softmaxBackward's dot product) accumulate in float64 lanes; and
 * where the reference's own roundings are cheap to reproduce (adamStep, softmaxBackward's final
 * pass) the arithmetic is float64 in the reference's order, giving identical results.
 * The build uses -ffp-contract=off: no silent fusing of a*b+c, so the plain build is IEEE-exact
 * operation by operation.
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define INLINE static inline __attribute__((always_inline))

#ifdef TLM_RELAXED
/* a*b + c, fused where the hardware has FMA (relaxed semantics allow either). */
#define MADD(a, b, c) wasm_f32x4_relaxed_madd((a), (b), (c))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

typedef v128_t v4;
#define F(x) wasm_f32x4_splat((float)(x))
#define I(x) wasm_i32x4_splat((int32_t)(x))

INLINE int imin(int a, int b) { return a < b ? a : b; }

/* The threaded build (TLM_GEMM_ONLY, over shared memory) carries only the GEMMs (f32 and int8). */
#ifndef TLM_GEMM_ONLY

/* ---- partial vectors: tails shorter than 4 lanes ------------------------------------------ */

/* Loads n < 4 floats, filling the other lanes with `fill` (chosen so they cannot change a result). */
INLINE v4 load_tail(const float *p, int n, float fill) {
  float t[4] = {fill, fill, fill, fill};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return wasm_v128_load(t);
}

INLINE void store_tail(float *p, v4 v, int n) {
  float t[4];
  wasm_v128_store(t, v);
  for (int i = 0; i < n; i++) p[i] = t[i];
}

/* ---- vector math ----------------------------------------------------------------------------- */

INLINE v4 v_abs(v4 x) { return wasm_f32x4_abs(x); }
INLINE v4 v_select(v4 mask, v4 ifTrue, v4 ifFalse) { return wasm_v128_bitselect(ifTrue, ifFalse, mask); }
INLINE v4 v_copysign(v4 magnitude, v4 sign) {
  return wasm_v128_or(wasm_f32x4_abs(magnitude), wasm_v128_and(sign, I(0x80000000)));
}

/*
 * exp(x), float32, about 1 ulp (Cephes expf): x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
 * polynomial for e^r, then scaling by 2^n. The scale is applied as two factors 2^(n/2)·2^(n−n/2)
 * so both stay normal floats: results overflow to +inf above ln(FLT_MAX) and underflow gradually
 * through the subnormals to 0 below about −103.9, with no special cases. NaN stays NaN.
 */
INLINE v4 v_exp(v4 x) {
  /* Clamp with pmax/pmin (one instruction each on x64; x first, so a NaN passes through). */
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, F(-104.0f)), F(89.0f));
  /* n = round(x/ln2) by the 1.5·2^23 trick: the sum's low mantissa bits are n as an integer. */
  v4 t = MADD(x, F(1.44269504088896341f), F(12582912.0f));
  v4 n = wasm_f32x4_sub(t, F(12582912.0f));
  v4 ni = wasm_i32x4_sub(t, I(0x4b400000));
  /* ln2 split in two so n·C1 is exact (C1 has 9 significant bits, |n| ≤ 150). */
  v4 r = MADD(n, F(-0.693359375f), x);
  r = MADD(n, F(2.12194440e-4f), r);
  v4 p = F(1.9875691500e-4f);
  p = MADD(p, r, F(1.3981999507e-3f));
  p = MADD(p, r, F(8.3334519073e-3f));
  p = MADD(p, r, F(4.1665795894e-2f));
  p = MADD(p, r, F(1.6666665459e-1f));
  p = MADD(p, r, F(5.0000001201e-1f));
  p = MADD(p, wasm_f32x4_mul(r, r), r);
  p = wasm_f32x4_add(p, F(1.0f));
  v4 n1 = wasm_i32x4_shr(ni, 1);
  v4 n2 = wasm_i32x4_sub(ni, n1);
  v4 s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, I(127)), 23);
  v4 s2 = wasm_i32x4_shl(wasm_i32x4_add(n2, I(127)), 23);
  return wasm_f32x4_mul(wasm_f32x4_mul(p, s1), s2);
}

/*
 * log(x), float32, about 1 ulp (Cephes logf): x = m·2^e with m in [√½, √2), a degree-8 polynomial
 * for log(1+f). Subnormals are scaled by 2^23 first; 0 → −inf, negative → NaN, +inf → +inf.
 */
INLINE v4 v_log(v4 x) {
  v4 tiny = wasm_f32x4_lt(x, F(1.17549435e-38f));
  v4 xs = v_select(tiny, wasm_f32x4_mul(x, F(8388608.0f)), x);
  v4 e = wasm_i32x4_sub(wasm_u32x4_shr(wasm_v128_and(xs, I(0x7f800000)), 23), I(126));
  e = wasm_i32x4_sub(e, wasm_v128_and(tiny, I(23)));
  v4 m = wasm_v128_or(wasm_v128_and(xs, I(0x007fffff)), I(0x3f000000)); /* in [0.5, 1) */
  v4 small = wasm_f32x4_lt(m, F(0.707106781186547524f));
  e = wasm_i32x4_add(e, small); /* mask is −1: e − 1 where m < √½ */
  /* f = 2m − 1 or m − 1, both exact. */
  v4 f = wasm_f32x4_add(wasm_f32x4_sub(m, F(1.0f)), wasm_v128_and(small, m));
  v4 z = wasm_f32x4_mul(f, f);
  v4 y = F(7.0376836292e-2f);
  y = MADD(y, f, F(-1.1514610310e-1f));
  y = MADD(y, f, F(1.1676998740e-1f));
  y = MADD(y, f, F(-1.2420140846e-1f));
  y = MADD(y, f, F(1.4249322787e-1f));
  y = MADD(y, f, F(-1.6668057665e-1f));
  y = MADD(y, f, F(2.0000714765e-1f));
  y = MADD(y, f, F(-2.4999993993e-1f));
  y = MADD(y, f, F(3.3333331174e-1f));
  y = wasm_f32x4_mul(wasm_f32x4_mul(y, f), z);
  v4 fe = wasm_f32x4_convert_i32x4(e);
  y = MADD(fe, F(-2.12194440e-4f), y);
  y = MADD(z, F(-0.5f), y);
  v4 r = wasm_f32x4_add(f, y);
  r = MADD(fe, F(0.693359375f), r);
  r = v_select(wasm_f32x4_eq(x, F(0.0f)), F(-__builtin_inff()), r);
  r = v_select(wasm_f32x4_eq(x, F(__builtin_inff())), x, r);
  /* x < 0 or NaN (the comparison x >= 0 is false for both): NaN. */
  r = v_select(wasm_f32x4_ge(x, F(0.0f)), r, F(__builtin_nanf("")));
  return r;
}

/*
 * tanh(x) (Cephes tanhf): an odd polynomial below |x| = 0.625, else 1 − 2/(e^{2|x|} + 1), which
 * saturates to 1 without overflow trouble (2/inf = 0). The sign is copied back, so tanh(−0) = −0.
 */
INLINE v4 v_tanh(v4 x) {
  v4 ax = v_abs(x);
  v4 z = wasm_f32x4_mul(ax, ax);
  v4 p = F(-5.70498872745e-3f);
  p = MADD(p, z, F(2.06390887954e-2f));
  p = MADD(p, z, F(-5.37397155531e-2f));
  p = MADD(p, z, F(1.33314422036e-1f));
  p = MADD(p, z, F(-3.33332819422e-1f));
  v4 small = MADD(wasm_f32x4_mul(p, z), ax, ax);
  v4 e = v_exp(wasm_f32x4_add(ax, ax));
  v4 large = wasm_f32x4_sub(F(1.0f), wasm_f32x4_div(F(2.0f), wasm_f32x4_add(e, F(1.0f))));
  v4 r = v_select(wasm_f32x4_lt(ax, F(0.625f)), small, large);
  return v_copysign(r, x);
}

/* The logistic function, evaluated stably like the reference: with a = e^{−|x|} and
 * q = 1/(1 + a), σ(x) = q for x ≥ 0 and a·q for x < 0. */
INLINE v4 v_sigmoid(v4 x) {
  v4 a = v_exp(wasm_f32x4_neg(v_abs(x)));
  v4 q = wasm_f32x4_div(F(1.0f), wasm_f32x4_add(F(1.0f), a));
  return v_select(wasm_f32x4_ge(x, F(0.0f)), q, wasm_f32x4_mul(a, q));
}

#define SQRT1_2 0.7071067811865476f

/*
 * GELU's Φ(x) = ½(1 + erf(x/√2)), and e = exp(−x²/2) (φ(x) = e/√(2π)), with one exp for both.
 * erfc(z) = t·exp(−z²)·R(t) with Numerical Recipes' t = 1/(1 + z/2), z = |x|/√2: R(t) = erfcx(z)/t
 * is smooth on (0, 1] (from 1/(2√π) at t → 0 to 1 at t = 1), and a degree-10 polynomial fits it
 * to 1.9e-7 relative in float32 Horner (relative-weighted Chebyshev least squares in float64,
 * coefficients rounded to float32; the fit is in docs/performance.md, "The training step").
 * NR's erfcc writes R(t) as exp(polynomial): a second exp per element, which made GELU and its
 * derivative cost two exps — a tenth of a tiny training step. Φ = 1 − ½erfc(z) for x ≥ 0 and
 * ½erfc(|z|) for x < 0: neither side cancels, and the left tail keeps its relative accuracy.
 * z² is formed as x²/2 (one rounding) rather than from a rounded z: the exponent of erfc
 * magnifies any error in z².
 */
INLINE v4 v_gelu_cdf(v4 x, v4 *e_out) {
  v4 az = v_abs(wasm_f32x4_mul(x, F(SQRT1_2)));
  v4 e = v_exp(wasm_f32x4_mul(wasm_f32x4_mul(F(-0.5f), x), x));
  v4 t = wasm_f32x4_div(F(1.0f), MADD(az, F(0.5f), F(1.0f)));
  v4 p = F(0.043195534497499466f);
  p = MADD(p, t, F(-0.23473414778709412f));
  p = MADD(p, t, F(0.4936962127685547f));
  p = MADD(p, t, F(-0.45497560501098633f));
  p = MADD(p, t, F(0.13217830657958984f));
  p = MADD(p, t, F(-0.05921197310090065f));
  p = MADD(p, t, F(0.09346262365579605f));
  p = MADD(p, t, F(0.1753159463405609f));
  p = MADD(p, t, F(0.24688458442687988f));
  p = MADD(p, t, F(0.28209376335144043f));
  p = MADD(p, t, F(0.282094806432724f));
  v4 half_erfc = wasm_f32x4_mul(wasm_f32x4_mul(F(0.5f), wasm_f32x4_mul(t, e)), p);
  *e_out = e;
  return v_select(wasm_f32x4_ge(x, F(0.0f)), wasm_f32x4_sub(F(1.0f), half_erfc), half_erfc);
}

#define GELU_TANH_C 0.7978845608028654f /* √(2/π) */
#define INV_SQRT_2PI 0.3989422804014327f

/* 1 + tanh(u) = 2σ(2u), so GELU-tanh = x·σ(2u): no cancellation in the left tail. Beyond |x| = 20
 * σ is exactly 0 or 1 in float32, so x is clamped there to keep x³ finite. */
INLINE v4 gelu_tanh_u(v4 x) {
  v4 xc = wasm_f32x4_pmin(wasm_f32x4_pmax(x, F(-20.0f)), F(20.0f));
  v4 cube = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(xc, F(0.044715f)), xc), xc);
  return wasm_f32x4_mul(F(GELU_TANH_C), wasm_f32x4_add(xc, cube));
}

/* ---- unary ----------------------------------------------------------------------------------- */

enum {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_TANH, U_SIGMOID, U_RELU, U_SQUARE, U_GELU, U_GELU_TANH, U_SILU
};

INLINE v4 unary_op(int op, v4 x) {
  switch (op) {
    case U_NEG: return wasm_f32x4_neg(x);
    case U_EXP: return v_exp(x);
    case U_LOG: return v_log(x);
    case U_SQRT: return wasm_f32x4_sqrt(x);
    case U_RSQRT: return wasm_f32x4_div(F(1.0f), wasm_f32x4_sqrt(x));
    case U_ABS: return wasm_f32x4_abs(x);
    case U_TANH: return v_tanh(x);
    case U_SIGMOID: return v_sigmoid(x);
    /* pmax(0, x) = 0 < x ? x : 0, the reference's (x > 0 ? x : 0): NaN and −0 give +0. */
    case U_RELU: return wasm_f32x4_pmax(F(0.0f), x);
    case U_SQUARE: return wasm_f32x4_mul(x, x);
    case U_GELU: {
      v4 e;
      return wasm_f32x4_mul(x, v_gelu_cdf(x, &e));
    }
    case U_GELU_TANH: {
      v4 e = v_exp(wasm_f32x4_mul(F(-2.0f), gelu_tanh_u(x)));
      return wasm_f32x4_div(x, wasm_f32x4_add(F(1.0f), e));
    }
    case U_SILU: return wasm_f32x4_mul(x, v_sigmoid(x));
    default: return x;
  }
}

INLINE void unary_loop(int op, const float *x, float *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, unary_op(op, wasm_v128_load(x + i)));
  if (i < n) store_tail(out + i, unary_op(op, load_tail(x + i, n - i, 1.0f)), n - i);
}

/* One instantiation per op, so each inner loop has its formula inlined and no branch. */
EXPORT(unary_f32) void unary_f32(int op, const float *x, float *out, int n) {
  switch (op) {
    case U_NEG: unary_loop(U_NEG, x, out, n); break;
    case U_EXP: unary_loop(U_EXP, x, out, n); break;
    case U_LOG: unary_loop(U_LOG, x, out, n); break;
    case U_SQRT: unary_loop(U_SQRT, x, out, n); break;
    case U_RSQRT: unary_loop(U_RSQRT, x, out, n); break;
    case U_ABS: unary_loop(U_ABS, x, out, n); break;
    case U_TANH: unary_loop(U_TANH, x, out, n); break;
    case U_SIGMOID: unary_loop(U_SIGMOID, x, out, n); break;
    case U_RELU: unary_loop(U_RELU, x, out, n); break;
    case U_SQUARE: unary_loop(U_SQUARE, x, out, n); break;
    case U_GELU: unary_loop(U_GELU, x, out, n); break;
    case U_GELU_TANH: unary_loop(U_GELU_TANH, x, out, n); break;
    case U_SILU: unary_loop(U_SILU, x, out, n); break;
  }
}

/* ---- activation derivatives ------------------------------------------------------------------ */

/*
 * GELU and its derivative in one pass (training): out = x·Φ(x), deriv = Φ(x) + x·φ(x), with the
 * same formulas as the gelu op and v_gelu_backward (g = 1), so the saved derivative makes the
 * backward a plain multiply.
 */
EXPORT(gelu_with_derivative_f32) void gelu_with_derivative_f32(const float *x, float *out, float *deriv, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 v = wasm_v128_load(x + i);
    v4 e;
    v4 cdf = v_gelu_cdf(v, &e);
    wasm_v128_store(out + i, wasm_f32x4_mul(v, cdf));
    wasm_v128_store(deriv + i, wasm_f32x4_add(cdf, wasm_f32x4_mul(wasm_f32x4_mul(v, F(INV_SQRT_2PI)), e)));
  }
  if (i < n) {
    v4 v = load_tail(x + i, n - i, 0.0f);
    v4 e;
    v4 cdf = v_gelu_cdf(v, &e);
    store_tail(out + i, wasm_f32x4_mul(v, cdf), n - i);
    store_tail(deriv + i, wasm_f32x4_add(cdf, wasm_f32x4_mul(wasm_f32x4_mul(v, F(INV_SQRT_2PI)), e)), n - i);
  }
}

/*
 * These cross zero (GELU's near x = −0.75, SiLU's near x = −1.28) where two rounded terms cancel;
 * in float32 the absolute error there is below 1e-7·|g| (about 7% of the golden tests' 1e-6 for
 * |g| = 1). Float64 lanes would be exact but 2.5× slower, and these run on every MLP activation.
 */

/* g·(½(1 + erf(x/√2)) + x·φ(x)) */
INLINE v4 v_gelu_backward(v4 x, v4 g) {
  v4 e;
  v4 cdf = v_gelu_cdf(x, &e);
  v4 d = wasm_f32x4_add(cdf, wasm_f32x4_mul(wasm_f32x4_mul(x, F(INV_SQRT_2PI)), e));
  return wasm_f32x4_mul(g, d);
}

INLINE v4 v_gelu_tanh_backward(v4 x, v4 g) {
  v4 u = gelu_tanh_u(x);
  v4 e = v_exp(wasm_f32x4_mul(F(-2.0f), v_abs(u)));
  v4 q = wasm_f32x4_div(F(1.0f), wasm_f32x4_add(F(1.0f), e));
  v4 s = v_select(wasm_f32x4_ge(u, F(0.0f)), q, wasm_f32x4_mul(e, q));
  v4 s1ms = wasm_f32x4_mul(wasm_f32x4_mul(e, q), q);
  v4 xc = wasm_f32x4_pmin(wasm_f32x4_pmax(x, F(-20.0f)), F(20.0f));
  v4 du = wasm_f32x4_mul(F(GELU_TANH_C), MADD(wasm_f32x4_mul(xc, xc), F(3.0f * 0.044715f), F(1.0f)));
  v4 d = wasm_f32x4_add(s, wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(F(2.0f), xc), s1ms), du));
  d = v_select(wasm_f32x4_eq(v_abs(x), F(__builtin_inff())), F(__builtin_nanf("")), d);
  return wasm_f32x4_mul(g, d);
}

/*
 * g·σ(x)·(1 + x(1 − σ(x))). With a = e^{−|x|} and q = 1/(1 + a): for x ≥ 0 it is g·q·(1 + x·a·q),
 * for x < 0 it is g·a·q²·((1 + x) + a) — the same value, written so that the zero near x = −1.28
 * comes from (1 + x) + a, where 1 + x is exact: no cancellation of rounded terms.
 */
INLINE v4 v_silu_backward(v4 x, v4 g) {
  v4 a = v_exp(wasm_f32x4_neg(v_abs(x)));
  v4 q = wasm_f32x4_div(F(1.0f), wasm_f32x4_add(F(1.0f), a));
  v4 aq = wasm_f32x4_mul(a, q);
  v4 pos = MADD(x, aq, F(1.0f));
  v4 pos_d = wasm_f32x4_mul(q, pos);
  v4 neg_d = wasm_f32x4_mul(wasm_f32x4_mul(aq, q), wasm_f32x4_add(wasm_f32x4_add(F(1.0f), x), a));
  return wasm_f32x4_mul(g, v_select(wasm_f32x4_ge(x, F(0.0f)), pos_d, neg_d));
}

/* ---- binary ---------------------------------------------------------------------------------- */

enum {
  B_ADD, B_SUB, B_MUL, B_DIV, B_MAXIMUM, B_MINIMUM, B_RELU_BWD, B_GELU_BWD, B_GELU_TANH_BWD, B_SILU_BWD
};

INLINE v4 binary_op(int op, v4 a, v4 b) {
  switch (op) {
    case B_ADD: return wasm_f32x4_add(a, b);
    case B_SUB: return wasm_f32x4_sub(a, b);
    case B_MUL: return wasm_f32x4_mul(a, b);
    case B_DIV: return wasm_f32x4_div(a, b);
    /* The reference: a > b || isNaN(a) ? a : b (ties give b). pmax(b, a) = b < a ? a : b. */
    case B_MAXIMUM: return v_select(wasm_f32x4_ne(a, a), a, wasm_f32x4_pmax(b, a));
    case B_MINIMUM: return v_select(wasm_f32x4_ne(a, a), a, wasm_f32x4_pmin(b, a));
    /* (x, g) → x > 0 ? g : 0 */
    case B_RELU_BWD: return wasm_v128_and(wasm_f32x4_gt(a, F(0.0f)), b);
    case B_GELU_BWD: return v_gelu_backward(a, b);
    case B_GELU_TANH_BWD: return v_gelu_tanh_backward(a, b);
    case B_SILU_BWD: return v_silu_backward(a, b);
    default: return a;
  }
}

/* One row: each operand is either a vector (advancing) or a scalar (splat once). */
INLINE void binary_row(int op, const float *a, int aScalar, const float *b, int bScalar, float *out, int n) {
  v4 sa = wasm_v128_load32_splat(a), sb = wasm_v128_load32_splat(b);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 va = aScalar ? sa : wasm_v128_load(a + i);
    v4 vb = bScalar ? sb : wasm_v128_load(b + i);
    wasm_v128_store(out + i, binary_op(op, va, vb));
  }
  if (i < n) {
    v4 va = aScalar ? sa : load_tail(a + i, n - i, 1.0f);
    v4 vb = bScalar ? sb : load_tail(b + i, n - i, 1.0f);
    store_tail(out + i, binary_op(op, va, vb), n - i);
  }
}

/* How an operand of a [rows, cols] result is laid out. */
enum { K_FULL, K_ROW, K_COL, K_SCALAR };

INLINE void binary_rows(int op, const float *a, int aKind, const float *b, int bKind, float *out, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const float *ar = aKind == K_FULL ? a + (long)r * cols : aKind == K_COL ? a + r : a;
    const float *br = bKind == K_FULL ? b + (long)r * cols : bKind == K_COL ? b + r : b;
    int as = aKind == K_COL || aKind == K_SCALAR;
    int bs = bKind == K_COL || bKind == K_SCALAR;
    binary_row(op, ar, as, br, bs, out + (long)r * cols, cols);
  }
}

/* out[r, c] = op(a[r, c], b[r, c]) where each operand is full [rows, cols], a row vector [cols]
 * broadcast over rows, a column [rows] broadcast along each row, or a scalar. */
EXPORT(binary_f32)
void binary_f32(int op, const float *a, int aKind, const float *b, int bKind, float *out, int rows, int cols) {
  switch (op) {
    case B_ADD: binary_rows(B_ADD, a, aKind, b, bKind, out, rows, cols); break;
    case B_SUB: binary_rows(B_SUB, a, aKind, b, bKind, out, rows, cols); break;
    case B_MUL: binary_rows(B_MUL, a, aKind, b, bKind, out, rows, cols); break;
    case B_DIV: binary_rows(B_DIV, a, aKind, b, bKind, out, rows, cols); break;
    case B_MAXIMUM: binary_rows(B_MAXIMUM, a, aKind, b, bKind, out, rows, cols); break;
    case B_MINIMUM: binary_rows(B_MINIMUM, a, aKind, b, bKind, out, rows, cols); break;
    case B_RELU_BWD: binary_rows(B_RELU_BWD, a, aKind, b, bKind, out, rows, cols); break;
    case B_GELU_BWD: binary_rows(B_GELU_BWD, a, aKind, b, bKind, out, rows, cols); break;
    case B_GELU_TANH_BWD: binary_rows(B_GELU_TANH_BWD, a, aKind, b, bKind, out, rows, cols); break;
    case B_SILU_BWD: binary_rows(B_SILU_BWD, a, aKind, b, bKind, out, rows, cols); break;
  }
}

/* ---- reductions over rows -------------------------------------------------------------------- */

/* Σ of a row in float64 lanes (the reference sums in float64; float32 lanes drift on long rows). */
INLINE double row_sum_f64(const float *x, int n) {
  v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v4 a = wasm_v128_load(x + i), b = wasm_v128_load(x + i + 4);
    s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(a));
    s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1)));
    s2 = wasm_f64x2_add(s2, wasm_f64x2_promote_low_f32x4(b));
    s3 = wasm_f64x2_add(s3, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(b, b, 2, 3, 0, 1)));
  }
  v128_t s = wasm_f64x2_add(wasm_f64x2_add(s0, s1), wasm_f64x2_add(s2, s3));
  double sum = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
  for (; i < n; i++) sum += x[i];
  return sum;
}

enum { R_SUM, R_MAX, R_MIN };

/*
 * out[r] = reduce(x[r, 0..cols)). max/min follow the reference: any NaN gives NaN, otherwise
 * the largest (smallest) value. pmax/pmin skip NaNs, so NaNs are tracked in a separate mask.
 */
EXPORT(reduce_rows_f32) void reduce_rows_f32(int op, const float *x, float *out, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    if (op == R_SUM) {
      out[r] = (float)row_sum_f64(xr, cols);
      continue;
    }
    int isMax = op == R_MAX;
    float init = isMax ? -__builtin_inff() : __builtin_inff();
    v4 acc0 = F(init), acc1 = acc0, nan = wasm_i32x4_splat(0);
    int i = 0;
    for (; i + 8 <= cols; i += 8) {
      v4 a = wasm_v128_load(xr + i), b = wasm_v128_load(xr + i + 4);
      nan = wasm_v128_or(nan, wasm_v128_or(wasm_f32x4_ne(a, a), wasm_f32x4_ne(b, b)));
      acc0 = isMax ? wasm_f32x4_pmax(acc0, a) : wasm_f32x4_pmin(acc0, a);
      acc1 = isMax ? wasm_f32x4_pmax(acc1, b) : wasm_f32x4_pmin(acc1, b);
    }
    for (; i < cols; i += 4) {
      v4 a = i + 4 <= cols ? wasm_v128_load(xr + i) : load_tail(xr + i, cols - i, init);
      nan = wasm_v128_or(nan, wasm_f32x4_ne(a, a));
      acc0 = isMax ? wasm_f32x4_pmax(acc0, a) : wasm_f32x4_pmin(acc0, a);
    }
    acc0 = isMax ? wasm_f32x4_pmax(acc0, acc1) : wasm_f32x4_pmin(acc0, acc1);
    float best = init;
    for (int l = 0; l < 4; l++) {
      float v = wasm_f32x4_extract_lane(acc0, 0);
      acc0 = wasm_i32x4_shuffle(acc0, acc0, 1, 2, 3, 0);
      if (isMax ? v > best : v < best) best = v;
    }
    out[r] = wasm_v128_any_true(nan) ? __builtin_nanf("") : best;
  }
}

/*
 * Column reductions: x is [rows, inner] (one chunk of the reduced axis) and each of the `inner`
 * columns is reduced into acc, vectorised along the contiguous inner axis — the layout of a bias
 * gradient (sum over batch and time of a [B·T, C] tensor). `first` starts acc afresh, otherwise
 * the chunk is added (or max'ed) onto it, so the caller can stream a long axis through in chunks.
 * Sums accumulate in float64 (acc is double[inner]); max/min keep float32 and propagate NaN.
 */
EXPORT(reduce_cols_sum_f32) void reduce_cols_sum_f32(const float *x, double *acc, int rows, int inner, int first) {
  if (first)
    for (int j = 0; j < inner; j++) acc[j] = 0;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * inner;
    int j = 0;
    for (; j + 4 <= inner; j += 4) {
      v4 v = wasm_v128_load(xr + j);
      wasm_v128_store(acc + j, wasm_f64x2_add(wasm_v128_load(acc + j), wasm_f64x2_promote_low_f32x4(v)));
      wasm_v128_store(acc + j + 2, wasm_f64x2_add(wasm_v128_load(acc + j + 2),
                                                  wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1))));
    }
    for (; j < inner; j++) acc[j] += xr[j];
  }
}

EXPORT(reduce_cols_minmax_f32)
void reduce_cols_minmax_f32(int isMax, const float *x, float *acc, int rows, int inner, int first) {
  int r = 0;
  if (first) {
    for (int j = 0; j < inner; j++) acc[j] = x[j];
    r = 1;
  }
  for (; r < rows; r++) {
    const float *xr = x + (long)r * inner;
    int j = 0;
    /* f32x4.max/min propagate NaN, as the reference does (any NaN makes the result NaN). */
    for (; j + 4 <= inner; j += 4) {
      v4 a = wasm_v128_load(acc + j), v = wasm_v128_load(xr + j);
      wasm_v128_store(acc + j, isMax ? wasm_f32x4_max(a, v) : wasm_f32x4_min(a, v));
    }
    for (; j < inner; j++) {
      float a = acc[j], v = xr[j];
      acc[j] = (a != a || v != v) ? a + v : isMax ? (v > a ? v : a) : (v < a ? v : a);
    }
  }
}

/* ---- softmax --------------------------------------------------------------------------------- */

/* Row-wise softmax or log-softmax of a contiguous [rows, cols] block; the sum of exponentials is
 * accumulated in float64 lanes. */
EXPORT(softmax_f32) void softmax_f32(const float *x, float *out, int rows, int cols, int log) {
  const float NEG_INF = -__builtin_inff();
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    float *orow = out + (long)r * cols;
    /* max: pmax ignores NaNs like the reference's `x > max`; a NaN then poisons the sum. */
    v4 vm = F(NEG_INF);
    int i = 0;
    for (; i + 4 <= cols; i += 4) vm = wasm_f32x4_pmax(vm, wasm_v128_load(xr + i));
    if (i < cols) vm = wasm_f32x4_pmax(vm, load_tail(xr + i, cols - i, NEG_INF));
    float max = NEG_INF;
    for (int l = 0; l < 4; l++) {
      float v = wasm_f32x4_extract_lane(vm, 0);
      vm = wasm_i32x4_shuffle(vm, vm, 1, 2, 3, 0);
      if (v > max) max = v;
    }
    if (max == NEG_INF) max = 0; /* a row of −inf: avoid −inf − −inf, as the reference does */
    v4 vmax = F(max);
    v128_t s0 = wasm_f64x2_splat(0), s1 = s0;
    for (i = 0; i + 4 <= cols; i += 4) {
      v4 e = v_exp(wasm_f32x4_sub(wasm_v128_load(xr + i), vmax));
      if (!log) wasm_v128_store(orow + i, e);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(e));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(e, e, 2, 3, 0, 1)));
    }
    if (i < cols) {
      /* padding lanes are −inf, whose exponential is 0 */
      v4 e = v_exp(wasm_f32x4_sub(load_tail(xr + i, cols - i, NEG_INF), vmax));
      if (!log) store_tail(orow + i, e, cols - i);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(e));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(e, e, 2, 3, 0, 1)));
    }
    v128_t s = wasm_f64x2_add(s0, s1);
    double sum = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
    if (log) {
      /* (x − max) − log Σ: x − max is exact near the max, so small outputs keep their digits. */
      v4 lse = v_log(F((float)sum));
      for (i = 0; i + 4 <= cols; i += 4)
        wasm_v128_store(orow + i, wasm_f32x4_sub(wasm_f32x4_sub(wasm_v128_load(xr + i), vmax), lse));
      if (i < cols)
        store_tail(orow + i, wasm_f32x4_sub(wasm_f32x4_sub(load_tail(xr + i, cols - i, 0), vmax), lse), cols - i);
    } else {
      v4 inv = F((float)(1.0 / sum));
      for (i = 0; i + 4 <= cols; i += 4) wasm_v128_store(orow + i, wasm_f32x4_mul(wasm_v128_load(orow + i), inv));
      if (i < cols) store_tail(orow + i, wasm_f32x4_mul(load_tail(orow + i, cols - i, 0), inv), cols - i);
    }
  }
}

/*
 * Backward of softmax given its output y: dx = y·(g − Σ g·y); of log-softmax: dx = g − e^y·Σ g.
 * The dot product and the final combination run in float64 lanes, as the reference does.
 */
EXPORT(softmax_backward_f32)
void softmax_backward_f32(const float *y, const float *g, float *out, int rows, int cols, int log) {
  for (int r = 0; r < rows; r++) {
    const float *yr = y + (long)r * cols, *gr = g + (long)r * cols;
    float *orow = out + (long)r * cols;
    double dot;
    int i;
    if (log) {
      dot = row_sum_f64(gr, cols);
    } else {
      v128_t s0 = wasm_f64x2_splat(0), s1 = s0;
      for (i = 0; i + 4 <= cols; i += 4) {
        v4 a = wasm_v128_load(gr + i), b = wasm_v128_load(yr + i);
        v4 ah = wasm_i32x4_shuffle(a, a, 2, 3, 0, 1), bh = wasm_i32x4_shuffle(b, b, 2, 3, 0, 1);
        s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(a), wasm_f64x2_promote_low_f32x4(b)));
        s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(ah), wasm_f64x2_promote_low_f32x4(bh)));
      }
      v128_t s = wasm_f64x2_add(s0, s1);
      dot = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
      for (; i < cols; i++) dot += (double)gr[i] * (double)yr[i];
    }
    v128_t vdot = wasm_f64x2_splat(dot);
    for (i = 0; i < cols; i += 4) {
      int n = cols - i < 4 ? cols - i : 4;
      v4 yv = n == 4 ? wasm_v128_load(yr + i) : load_tail(yr + i, n, 0);
      v4 gv = n == 4 ? wasm_v128_load(gr + i) : load_tail(gr + i, n, 0);
      v4 a = log ? v_exp(yv) : yv;
      v4 ah = wasm_i32x4_shuffle(a, a, 2, 3, 0, 1), gh = wasm_i32x4_shuffle(gv, gv, 2, 3, 0, 1);
      v128_t lo, hi;
      if (log) {
        lo = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(gv), wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(a), vdot));
        hi = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(gh), wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(ah), vdot));
      } else {
        lo = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(a), wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(gv), vdot));
        hi = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(ah), wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(gh), vdot));
      }
      v4 res = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
      if (n == 4) wasm_v128_store(orow + i, res);
      else store_tail(orow + i, res, n);
    }
  }
}

/* ---- Adam / AdamW ------------------------------------------------------------------------------ */

/*
 * One Adam(W) step over n parameters, in float64 lanes with the reference's exact order of
 * operations, rounding to float32 exactly where the reference stores to a Float32Array: the
 * result is bit-identical to the reference kernel (IEEE double arithmetic is the same here and in
 * JavaScript). The scalar constants are computed once by the caller in float64.
 * flags: 1 = decoupled decay (param *= decay), 2 = L2 weight decay, 4 = AMSGrad (vmax != 0).
 */
EXPORT(adam_f32)
void adam_f32(float *param, const float *grad, float *m, float *v, float *vmax, int n, int flags, double decay,
              double weightDecay, double oneMinusBeta1, double beta2, double oneMinusBeta2, double bc2Sqrt,
              double eps, double stepSize) {
  v128_t vdecay = wasm_f64x2_splat(decay), vwd = wasm_f64x2_splat(weightDecay);
  v128_t vomb1 = wasm_f64x2_splat(oneMinusBeta1), vb2 = wasm_f64x2_splat(beta2), vomb2 = wasm_f64x2_splat(oneMinusBeta2);
  v128_t vbc2 = wasm_f64x2_splat(bc2Sqrt), veps = wasm_f64x2_splat(eps), vstep = wasm_f64x2_splat(stepSize);
  /* Two elements at a time: load and store 2 floats as one 64-bit lane. */
  int i = 0;
  for (; i < n; i += 2) {
    int two = i + 2 <= n;
#define LOAD2(p) (two ? wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(p + i)) : wasm_f64x2_make((double)p[i], 0))
#define STORE2(p, x)                                                                              \
  do {                                                                                            \
    v4 f_ = wasm_f32x4_demote_f64x2_zero(x);                                                      \
    if (two) wasm_v128_store64_lane(p + i, f_, 0);                                                \
    else p[i] = wasm_f32x4_extract_lane(f_, 0);                                                   \
  } while (0)
    v128_t p = LOAD2(param);
    v128_t g = LOAD2(grad);
    if (flags & 1) {
      p = wasm_f64x2_mul(p, vdecay);
      STORE2(param, p);
      p = LOAD2(param); /* the reference reads back the rounded float32 */
    }
    if (flags & 2) g = wasm_f64x2_add(g, wasm_f64x2_mul(vwd, p));
    v128_t mi = LOAD2(m);
    mi = wasm_f64x2_add(mi, wasm_f64x2_mul(wasm_f64x2_sub(g, mi), vomb1));
    STORE2(m, mi);
    mi = LOAD2(m);
    v128_t vi = LOAD2(v);
    vi = wasm_f64x2_add(wasm_f64x2_mul(vb2, vi), wasm_f64x2_mul(wasm_f64x2_mul(vomb2, g), g));
    STORE2(v, vi);
    vi = LOAD2(v);
    if (flags & 4) {
      v128_t mx = LOAD2(vmax);
      /* if (v > max) max = v — pmax(max, v) = max < v ? v : max, NaN-for-NaN identical */
      mx = wasm_f64x2_pmax(mx, vi);
      STORE2(vmax, mx);
      vi = mx; /* both already float32 values */
    }
    v128_t denom = wasm_f64x2_add(wasm_f64x2_div(wasm_f64x2_sqrt(vi), vbc2), veps);
    p = wasm_f64x2_sub(p, wasm_f64x2_div(wasm_f64x2_mul(vstep, mi), denom));
    STORE2(param, p);
#undef LOAD2
#undef STORE2
  }
}

/* ---- fused row kernels: scaled/causal softmax, LayerNorm, RMSNorm, cross-entropy -------------- */

/* Float64 lanes of a float32 vector: its low and high halves. */
INLINE v128_t lo64(v4 a) { return wasm_f64x2_promote_low_f32x4(a); }
INLINE v128_t hi64(v4 a) { return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1)); }
/* Two float64 pairs rounded back into one float32 vector. */
INLINE v4 demote4(v128_t lo, v128_t hi) {
  return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
}
INLINE double hsum64(v128_t s) { return wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1); }
/* All-ones in the first n lanes (n < 4): the live lanes of a tail vector. */
INLINE v4 tail_mask(int n) { return wasm_i32x4_lt(wasm_i32x4_make(0, 1, 2, 3), I(n)); }

/* The largest element of x[0..n) by the reference's `x > max` scan: NaNs are skipped (pmax), −inf when none. */
INLINE float row_max(const float *x, int n) {
  const float NEG_INF = -__builtin_inff();
  v4 m0 = F(NEG_INF), m1 = m0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = wasm_f32x4_pmax(m0, wasm_v128_load(x + i));
    m1 = wasm_f32x4_pmax(m1, wasm_v128_load(x + i + 4));
  }
  for (; i < n; i += 4) m0 = wasm_f32x4_pmax(m0, i + 4 <= n ? wasm_v128_load(x + i) : load_tail(x + i, n - i, NEG_INF));
  m0 = wasm_f32x4_pmax(m0, m1);
  float max = NEG_INF;
  for (int l = 0; l < 4; l++) {
    float v = wasm_f32x4_extract_lane(m0, 0);
    m0 = wasm_i32x4_shuffle(m0, m0, 1, 2, 3, 0);
    if (v > max) max = v;
  }
  return max;
}

/*
 * Natural log in float64 (the row log-sum of cross-entropy, kept to double precision like the
 * reference's Math.log): x = m·2^e with m in [√½, √2), log m = 2·atanh(s) with s = (m−1)/(m+1),
 * |s| ≤ 0.172, whose odd series converges to double precision in 12 terms.
 */
static double log_f64(double x) {
  if (x != x || x < 0) return __builtin_nan("");
  if (x == 0) return -__builtin_inf();
  if (x == __builtin_inf()) return x;
  int e = 0;
  if (x < 2.2250738585072014e-308) {
    x *= 18014398509481984.0; /* 2^54: subnormals made normal */
    e = -54;
  }
  uint64_t bits;
  __builtin_memcpy(&bits, &x, 8);
  e += (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1, 2) */
  double m;
  __builtin_memcpy(&m, &bits, 8);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  double s = (m - 1) / (m + 1), s2 = s * s;
  double p = 1.0 / 25;
  for (int k = 11; k >= 0; k--) p = p * s2 + 1.0 / (2 * k + 1);
  /* ln2 split so that e·LN2_HI is exact for |e| < 2^11 */
  const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
  return e * LN2_HI + (2 * s * p + e * LN2_LO);
}

/*
 * Softmax of scale·x over each row of a [rows, cols] block, row r being query position
 * (rowStart + r) mod tq: when causal only columns j ≤ position + causalOffset take part, the rest
 * are written 0 and never exponentiated. As in the reference the max is of x (scale > 0) and the
 * exponentials are of (x − max)·scale; the sum accumulates in float64 lanes. out may equal x.
 */
EXPORT(scaled_softmax_f32)
void scaled_softmax_f32(const float *x, float *out, int rows, int cols, int tq, int rowStart, float scale, int causal,
                        int causalOffset) {
  v4 vs = F(scale);
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    float *orow = out + (long)r * cols;
    int limit = cols;
    if (causal) {
      long long lim = (long long)((rowStart + r) % tq) + causalOffset + 1;
      limit = lim < 0 ? 0 : lim > cols ? cols : (int)lim;
    }
    int i;
    if (limit > 0) {
      v4 vmax = F(row_max(xr, limit));
      v128_t s0 = wasm_f64x2_splat(0), s1 = s0;
      for (i = 0; i + 4 <= limit; i += 4) {
        v4 e = v_exp(wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + i), vmax), vs));
        wasm_v128_store(orow + i, e);
        s0 = wasm_f64x2_add(s0, lo64(e));
        s1 = wasm_f64x2_add(s1, hi64(e));
      }
      if (i < limit) {
        v4 e = v_exp(wasm_f32x4_mul(wasm_f32x4_sub(load_tail(xr + i, limit - i, 0), vmax), vs));
        e = wasm_v128_and(e, tail_mask(limit - i));
        store_tail(orow + i, e, limit - i);
        s0 = wasm_f64x2_add(s0, lo64(e));
        s1 = wasm_f64x2_add(s1, hi64(e));
      }
      v4 inv = F((float)(1.0 / hsum64(wasm_f64x2_add(s0, s1))));
      for (i = 0; i + 4 <= limit; i += 4) wasm_v128_store(orow + i, wasm_f32x4_mul(wasm_v128_load(orow + i), inv));
      for (; i < limit; i++) orow[i] *= wasm_f32x4_extract_lane(inv, 0);
    }
    for (i = limit; i < cols; i++) orow[i] = 0;
  }
}

/* Variance-pass helper: Σ (x − mu)² in float64 lanes. */
INLINE double row_sq_dev_f64(const float *x, int n, double mu) {
  v128_t vmu = wasm_f64x2_splat(mu), s0 = wasm_f64x2_splat(0), s1 = s0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 a = wasm_v128_load(x + i);
    v128_t d0 = wasm_f64x2_sub(lo64(a), vmu), d1 = wasm_f64x2_sub(hi64(a), vmu);
    s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(d0, d0));
    s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(d1, d1));
  }
  double sq = hsum64(wasm_f64x2_add(s0, s1));
  for (; i < n; i++) {
    double d = x[i] - mu;
    sq += d * d;
  }
  return sq;
}

/* Σ x² in float64 lanes. */
INLINE double row_sq_f64(const float *x, int n) {
  v128_t s0 = wasm_f64x2_splat(0), s1 = s0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 a = wasm_v128_load(x + i);
    v128_t d0 = lo64(a), d1 = hi64(a);
    s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(d0, d0));
    s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(d1, d1));
  }
  double sq = hsum64(wasm_f64x2_add(s0, s1));
  for (; i < n; i++) sq += (double)x[i] * x[i];
  return sq;
}

/* out = ((x − mu)·rs)·w + b over one row, in float64 lanes like the reference (mu = 0 for RMSNorm). */
INLINE void norm_row_out(const float *x, float *out, int n, double mu, double rs, const float *w, const float *b,
                         int hasW, int hasB) {
  v128_t vmu = wasm_f64x2_splat(mu), vrs = wasm_f64x2_splat(rs);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 a = wasm_v128_load(x + i);
    v128_t y0 = wasm_f64x2_mul(wasm_f64x2_sub(lo64(a), vmu), vrs);
    v128_t y1 = wasm_f64x2_mul(wasm_f64x2_sub(hi64(a), vmu), vrs);
    if (hasW) {
      v4 wv = wasm_v128_load(w + i);
      y0 = wasm_f64x2_mul(y0, lo64(wv));
      y1 = wasm_f64x2_mul(y1, hi64(wv));
    }
    if (hasB) {
      v4 bv = wasm_v128_load(b + i);
      y0 = wasm_f64x2_add(y0, lo64(bv));
      y1 = wasm_f64x2_add(y1, hi64(bv));
    }
    wasm_v128_store(out + i, demote4(y0, y1));
  }
  for (; i < n; i++) {
    double v = (x[i] - mu) * rs;
    if (hasW) v *= w[i];
    if (hasB) v += b[i];
    out[i] = (float)v;
  }
}

INLINE void layer_norm_rows(const float *x, float *out, float *mean, float *rstd, const float *w, const float *b, int rows,
                            int cols, double eps, int hasW, int hasB) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    double mu = row_sum_f64(xr, cols) / cols;
    double rs = 1 / __builtin_sqrt(row_sq_dev_f64(xr, cols, mu) / cols + eps);
    mean[r] = (float)mu;
    rstd[r] = (float)rs;
    norm_row_out(xr, out + (long)r * cols, cols, mu, rs, w, b, hasW, hasB);
  }
}

/* LayerNorm of each row (two-pass variance, float64 throughout). flags: 1 = weight, 2 = bias. out may equal x. */
EXPORT(layer_norm_f32)
void layer_norm_f32(const float *x, float *out, float *mean, float *rstd, const float *w, const float *b, int rows,
                    int cols, double eps, int flags) {
  switch (flags & 3) {
    case 0: layer_norm_rows(x, out, mean, rstd, w, b, rows, cols, eps, 0, 0); break;
    case 1: layer_norm_rows(x, out, mean, rstd, w, b, rows, cols, eps, 1, 0); break;
    case 2: layer_norm_rows(x, out, mean, rstd, w, b, rows, cols, eps, 0, 1); break;
    default: layer_norm_rows(x, out, mean, rstd, w, b, rows, cols, eps, 1, 1); break;
  }
}

INLINE void rms_norm_rows(const float *x, float *out, float *rstd, const float *w, int rows, int cols, double eps,
                          int hasW) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    double rs = 1 / __builtin_sqrt(row_sq_f64(xr, cols) / cols + eps);
    rstd[r] = (float)rs;
    norm_row_out(xr, out + (long)r * cols, cols, 0, rs, w, 0, hasW, 0);
  }
}

/* RMSNorm of each row: out = x·rs·w, rs = 1/√(mean(x²) + eps), float64 throughout. flags: 1 = weight. */
EXPORT(rms_norm_f32)
void rms_norm_f32(const float *x, float *out, float *rstd, const float *w, int rows, int cols, double eps, int flags) {
  if (flags & 1) rms_norm_rows(x, out, rstd, w, rows, cols, eps, 1);
  else rms_norm_rows(x, out, rstd, w, rows, cols, eps, 0);
}

/*
 * LayerNorm (center = 1) or RMSNorm (center = 0) backward over a chunk of rows, in float64 lanes
 * in the reference's order: x̂ = (x − mu)·rs, dx̂ = g·w, dx = rs·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
 * (RMSNorm drops the mean(dx̂) term). dw/db are float64 per-column accumulators that the caller
 * zeroes once and streams every chunk into. dx may equal g.
 */
INLINE void norm_backward_rows(const float *x, const float *g, const float *mean, const float *rstd, const float *w,
                               float *dx, double *dw, double *db, int rows, int cols, int center, int hasW, int hasDW,
                               int hasDB) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols, *gr = g + (long)r * cols;
    float *dr = dx + (long)r * cols;
    double mu = center ? mean[r] : 0, rs = rstd[r];
    v128_t vmu = wasm_f64x2_splat(mu), vrs = wasm_f64x2_splat(rs);
    v128_t a0 = wasm_f64x2_splat(0), a1 = a0, b0 = a0, b1 = a0;
    int i = 0;
    for (; i + 4 <= cols; i += 4) {
      v4 xv = wasm_v128_load(xr + i), gv = wasm_v128_load(gr + i);
      v128_t g0 = lo64(gv), g1 = hi64(gv);
      v128_t h0 = wasm_f64x2_mul(wasm_f64x2_sub(lo64(xv), vmu), vrs);
      v128_t h1 = wasm_f64x2_mul(wasm_f64x2_sub(hi64(xv), vmu), vrs);
      v128_t d0 = g0, d1 = g1;
      if (hasW) {
        v4 wv = wasm_v128_load(w + i);
        d0 = wasm_f64x2_mul(g0, lo64(wv));
        d1 = wasm_f64x2_mul(g1, hi64(wv));
      }
      if (center) {
        a0 = wasm_f64x2_add(a0, d0);
        a1 = wasm_f64x2_add(a1, d1);
      }
      b0 = wasm_f64x2_add(b0, wasm_f64x2_mul(d0, h0));
      b1 = wasm_f64x2_add(b1, wasm_f64x2_mul(d1, h1));
      if (hasDW) {
        wasm_v128_store(dw + i, wasm_f64x2_add(wasm_v128_load(dw + i), wasm_f64x2_mul(g0, h0)));
        wasm_v128_store(dw + i + 2, wasm_f64x2_add(wasm_v128_load(dw + i + 2), wasm_f64x2_mul(g1, h1)));
      }
      if (hasDB) {
        wasm_v128_store(db + i, wasm_f64x2_add(wasm_v128_load(db + i), g0));
        wasm_v128_store(db + i + 2, wasm_f64x2_add(wasm_v128_load(db + i + 2), g1));
      }
    }
    double sumD = hsum64(wasm_f64x2_add(a0, a1)), sumDH = hsum64(wasm_f64x2_add(b0, b1));
    for (int j = i; j < cols; j++) {
      double h = (xr[j] - mu) * rs;
      double d = hasW ? (double)gr[j] * w[j] : gr[j];
      sumD += d;
      sumDH += d * h;
      if (hasDW) dw[j] += gr[j] * h;
      if (hasDB) db[j] += gr[j];
    }
    double m1 = center ? sumD / cols : 0, m2 = sumDH / cols;
    v128_t vm1 = wasm_f64x2_splat(m1), vm2 = wasm_f64x2_splat(m2);
    for (i = 0; i + 4 <= cols; i += 4) {
      v4 xv = wasm_v128_load(xr + i), gv = wasm_v128_load(gr + i);
      v128_t h0 = wasm_f64x2_mul(wasm_f64x2_sub(lo64(xv), vmu), vrs);
      v128_t h1 = wasm_f64x2_mul(wasm_f64x2_sub(hi64(xv), vmu), vrs);
      v128_t d0 = lo64(gv), d1 = hi64(gv);
      if (hasW) {
        v4 wv = wasm_v128_load(w + i);
        d0 = wasm_f64x2_mul(d0, lo64(wv));
        d1 = wasm_f64x2_mul(d1, hi64(wv));
      }
      if (center) {
        d0 = wasm_f64x2_sub(d0, vm1);
        d1 = wasm_f64x2_sub(d1, vm1);
      }
      v128_t y0 = wasm_f64x2_mul(vrs, wasm_f64x2_sub(d0, wasm_f64x2_mul(h0, vm2)));
      v128_t y1 = wasm_f64x2_mul(vrs, wasm_f64x2_sub(d1, wasm_f64x2_mul(h1, vm2)));
      wasm_v128_store(dr + i, demote4(y0, y1));
    }
    for (; i < cols; i++) {
      double h = (xr[i] - mu) * rs;
      double d = hasW ? (double)gr[i] * w[i] : gr[i];
      dr[i] = (float)(rs * ((center ? d - m1 : d) - h * m2));
    }
  }
}

#define NORM_BWD(center, w_, dw_, db_)                                                                          \
  norm_backward_rows(x, g, mean, rstd, w, dx, dw, db, rows, cols, center, w_, dw_, db_)

/* flags: 1 = weight, 2 = dWeight accumulator, 4 = dBias accumulator. */
EXPORT(layer_norm_backward_f32)
void layer_norm_backward_f32(const float *x, const float *g, const float *mean, const float *rstd, const float *w,
                             float *dx, double *dw, double *db, int rows, int cols, int flags) {
  switch (flags & 7) {
    case 0: NORM_BWD(1, 0, 0, 0); break;
    case 1: NORM_BWD(1, 1, 0, 0); break;
    case 2: NORM_BWD(1, 0, 1, 0); break;
    case 3: NORM_BWD(1, 1, 1, 0); break;
    case 4: NORM_BWD(1, 0, 0, 1); break;
    case 5: NORM_BWD(1, 1, 0, 1); break;
    case 6: NORM_BWD(1, 0, 1, 1); break;
    default: NORM_BWD(1, 1, 1, 1); break;
  }
}

/* flags: 1 = weight, 2 = dWeight accumulator. */
EXPORT(rms_norm_backward_f32)
void rms_norm_backward_f32(const float *x, const float *g, const float *rstd, const float *w, float *dx, double *dw,
                           int rows, int cols, int flags) {
  const float *mean = 0;
  double *db = 0;
  switch (flags & 3) {
    case 0: NORM_BWD(0, 0, 0, 0); break;
    case 1: NORM_BWD(0, 1, 0, 0); break;
    case 2: NORM_BWD(0, 0, 1, 0); break;
    default: NORM_BWD(0, 1, 1, 0); break;
  }
}
#undef NORM_BWD

/*
 * Cross-entropy of each row of logits [rows, classes]: the max, Σ exp(x − max) (float64 lanes) and
 * log of it in float64, kept apart; loss = (1−ε)·(lse − x[t]) + ε·(lse − mean(x)) in float64, 0
 * where t = ignoreIndex (the caller has checked the other targets are in range).
 */
EXPORT(cross_entropy_f32)
void cross_entropy_f32(const float *logits, const int32_t *targets, float *losses, float *rowMax, float *rowLogSum,
                       int rows, int classes, int ignoreIndex, double smoothing) {
  for (int r = 0; r < rows; r++) {
    const float *xr = logits + (long)r * classes;
    float max = row_max(xr, classes);
    v4 vmax = F(max);
    v128_t s0 = wasm_f64x2_splat(0), s1 = s0, t0 = s0, t1 = s0;
    int i = 0;
    for (; i + 4 <= classes; i += 4) {
      v4 a = wasm_v128_load(xr + i);
      v4 e = v_exp(wasm_f32x4_sub(a, vmax));
      s0 = wasm_f64x2_add(s0, lo64(e));
      s1 = wasm_f64x2_add(s1, hi64(e));
      t0 = wasm_f64x2_add(t0, lo64(a));
      t1 = wasm_f64x2_add(t1, hi64(a));
    }
    if (i < classes) {
      v4 a = load_tail(xr + i, classes - i, 0);
      v4 e = wasm_v128_and(v_exp(wasm_f32x4_sub(a, vmax)), tail_mask(classes - i));
      s0 = wasm_f64x2_add(s0, lo64(e));
      s1 = wasm_f64x2_add(s1, hi64(e));
      t0 = wasm_f64x2_add(t0, lo64(a));
      t1 = wasm_f64x2_add(t1, hi64(a));
    }
    double logSum = log_f64(hsum64(wasm_f64x2_add(s0, s1)));
    double total = hsum64(wasm_f64x2_add(t0, t1));
    rowMax[r] = max;
    rowLogSum[r] = (float)logSum;
    double l = max + logSum;
    int t = targets[r];
    if (t == ignoreIndex) {
      losses[r] = 0;
      continue;
    }
    double nll = t >= 0 && t < classes ? l - xr[t] : __builtin_nan("");
    losses[r] = (float)(smoothing == 0 ? nll : (1 - smoothing) * nll + smoothing * (l - total / classes));
  }
}

/*
 * dlogits = s·(exp(x − max − logSum) − ε/C), then − s·(1−ε) at the target; zero on ignored rows.
 * The exponent is formed in float64 and rounded once; the rest is float64 like the reference.
 */
EXPORT(cross_entropy_backward_f32)
void cross_entropy_backward_f32(const float *logits, const int32_t *targets, const float *rowMax, const float *rowLogSum,
                                const float *rowScale, float *dl, int rows, int classes, int ignoreIndex,
                                double smoothing) {
  double smooth = smoothing / classes;
  v128_t vsmooth = wasm_f64x2_splat(smooth);
  for (int r = 0; r < rows; r++) {
    const float *xr = logits + (long)r * classes;
    float *dr = dl + (long)r * classes;
    int t = targets[r];
    if (t == ignoreIndex) {
      for (int j = 0; j < classes; j++) dr[j] = 0;
      continue;
    }
    double s = rowScale[r];
    v128_t vshift = wasm_f64x2_splat((double)rowMax[r] + (double)rowLogSum[r]), vs = wasm_f64x2_splat(s);
    int i = 0;
    for (; i < classes; i += 4) {
      int n = classes - i < 4 ? classes - i : 4;
      v4 a = n == 4 ? wasm_v128_load(xr + i) : load_tail(xr + i, n, 0);
      v4 e = v_exp(demote4(wasm_f64x2_sub(lo64(a), vshift), wasm_f64x2_sub(hi64(a), vshift)));
      v128_t y0 = wasm_f64x2_mul(vs, wasm_f64x2_sub(lo64(e), vsmooth));
      v128_t y1 = wasm_f64x2_mul(vs, wasm_f64x2_sub(hi64(e), vsmooth));
      v4 y = demote4(y0, y1);
      if (n == 4) wasm_v128_store(dr + i, y);
      else store_tail(dr + i, y, n);
    }
    if (t >= 0 && t < classes) dr[t] = (float)((double)dr[t] - s * (1 - smoothing));
  }
}

/* ---- recurrent cells: RNN, LSTM, GRU --------------------------------------------------------- */

/* Modes: the order of RecurrentCellMode's codes in index.ts ('rnnTanh', 'rnnRelu', 'lstm', 'gru'). */
enum { R_RNN_TANH, R_RNN_RELU, R_LSTM, R_GRU };

/* Up to 4 lanes at p: a full vector when n = 4 (the main loop, folded away), else a tail. */
INLINE v4 ld(const float *p, int n) { return n == 4 ? wasm_v128_load(p) : load_tail(p, n, 0.0f); }
INLINE void st(float *p, v4 v, int n) {
  if (n == 4) wasm_v128_store(p, v);
  else store_tail(p, v, n);
}

/* 1 − y² as (1 − y)(1 + y): no cancellation when |y| is near 1 (a saturated tanh). */
INLINE v4 one_minus_sq(v4 y) { return wasm_f32x4_mul(wasm_f32x4_sub(F(1.0f), y), wasm_f32x4_add(F(1.0f), y)); }

/* σ'(x) from s = σ(x): s·(1 − s). */
INLINE v4 sig_deriv(v4 s) { return wasm_f32x4_mul(s, wasm_f32x4_sub(F(1.0f), s)); }

/*
 * tanh'(x) = 1 − tanh²(x) = 4e/(1 + e)² with e = e^{−2|x|}: products and quotients only, so a few
 * ulp relative for every x, where 1 − tanh² from a float32 tanh would lose all its digits as |x|
 * grows (the reference has float64 there). Underflows gracefully to 0.
 */
INLINE v4 v_tanh_deriv(v4 x) {
  v4 e = v_exp(wasm_f32x4_mul(F(-2.0f), v_abs(x)));
  v4 q = wasm_f32x4_div(F(1.0f), wasm_f32x4_add(F(1.0f), e));
  return wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(F(4.0f), e), q), q);
}

/*
 * Lanes k..k+n of one batch row of the forward step (n = 4 or a tail). gi/gh are the row's G-wide
 * gate projections, the others H wide; saved is 4H wide (LSTM i, f, g, o; GRU r, z, n, gh_n).
 * Every input is loaded before anything is stored.
 */
INLINE void cell_lanes(int mode, int hasSaved, const float *gi, const float *gh, const float *h, const float *c,
                       float *hOut, float *cOut, float *saved, int H, int k, int n) {
  if (mode == R_RNN_TANH || mode == R_RNN_RELU) {
    v4 v = wasm_f32x4_add(ld(gi + k, n), ld(gh + k, n));
    /* pmax(0, v) = 0 < v ? v : 0, the reference's relu. */
    st(hOut + k, mode == R_RNN_TANH ? v_tanh(v) : wasm_f32x4_pmax(F(0.0f), v), n);
  } else if (mode == R_LSTM) {
    v4 ig = v_sigmoid(wasm_f32x4_add(ld(gi + k, n), ld(gh + k, n)));
    v4 fg = v_sigmoid(wasm_f32x4_add(ld(gi + H + k, n), ld(gh + H + k, n)));
    v4 gg = v_tanh(wasm_f32x4_add(ld(gi + 2 * H + k, n), ld(gh + 2 * H + k, n)));
    v4 og = v_sigmoid(wasm_f32x4_add(ld(gi + 3 * H + k, n), ld(gh + 3 * H + k, n)));
    /* h' from the float32 c' that is stored, as the reference does. */
    v4 cn = MADD(fg, ld(c + k, n), wasm_f32x4_mul(ig, gg));
    st(cOut + k, cn, n);
    st(hOut + k, wasm_f32x4_mul(og, v_tanh(cn)), n);
    if (hasSaved) {
      st(saved + k, ig, n);
      st(saved + H + k, fg, n);
      st(saved + 2 * H + k, gg, n);
      st(saved + 3 * H + k, og, n);
    }
  } else {
    v4 r = v_sigmoid(wasm_f32x4_add(ld(gi + k, n), ld(gh + k, n)));
    v4 z = v_sigmoid(wasm_f32x4_add(ld(gi + H + k, n), ld(gh + H + k, n)));
    v4 ghn = ld(gh + 2 * H + k, n);
    v4 nn = v_tanh(MADD(r, ghn, ld(gi + 2 * H + k, n)));
    /* (1 − z)·n + z·h in the reference's form. */
    v4 hn = MADD(z, ld(h + k, n), wasm_f32x4_mul(wasm_f32x4_sub(F(1.0f), z), nn));
    st(hOut + k, hn, n);
    if (hasSaved) {
      st(saved + k, r, n);
      st(saved + H + k, z, n);
      st(saved + 2 * H + k, nn, n);
      st(saved + 3 * H + k, ghn, n);
    }
  }
}

INLINE void cell_rows(int mode, int hasSaved, const float *gi, const float *gh, const float *h, const float *c,
                      float *hOut, float *cOut, float *saved, int rows, int H) {
  int G = (mode == R_LSTM ? 4 : mode == R_GRU ? 3 : 1) * H;
  for (int b = 0; b < rows; b++) {
    const float *gib = gi + (long)b * G, *ghb = gh + (long)b * G;
    const float *hb = h ? h + (long)b * H : 0, *cb = c ? c + (long)b * H : 0;
    float *hob = hOut + (long)b * H, *cob = cOut ? cOut + (long)b * H : 0;
    float *sb = saved ? saved + (long)b * 4 * H : 0;
    int k = 0;
    for (; k + 4 <= H; k += 4) cell_lanes(mode, hasSaved, gib, ghb, hb, cb, hob, cob, sb, H, k, 4);
    if (k < H) cell_lanes(mode, hasSaved, gib, ghb, hb, cb, hob, cob, sb, H, k, H - k);
  }
}

/*
 * One recurrent step (kernels.ts, RecurrentCellArgs) over `rows` batch rows, fused: the gate
 * nonlinearities, the cell update and the saved activations in one pass, instead of a dozen
 * elementwise ops per time step. Every buffer is a contiguous [rows, width] block: gi, gh [rows, G]
 * (G = H, 4H, 3H for RNN, LSTM, GRU), h (GRU), c, cOut (LSTM) and hOut [rows, H], saved [rows, 4H]
 * or 0 (not written). The sums gi + gh round to float32 before the activations, which the reference
 * takes in float64; results stay within a few ulp (absolute ~1e-7 where the sum cancels).
 */
EXPORT(recurrent_cell_f32)
void recurrent_cell_f32(int mode, const float *gi, const float *gh, const float *h, const float *c, float *hOut,
                        float *cOut, float *saved, int rows, int hidden) {
  int s = saved != 0;
  switch (mode) {
    case R_RNN_TANH: cell_rows(R_RNN_TANH, 0, gi, gh, h, c, hOut, cOut, saved, rows, hidden); break;
    case R_RNN_RELU: cell_rows(R_RNN_RELU, 0, gi, gh, h, c, hOut, cOut, saved, rows, hidden); break;
    case R_LSTM:
      if (s) cell_rows(R_LSTM, 1, gi, gh, h, c, hOut, cOut, saved, rows, hidden);
      else cell_rows(R_LSTM, 0, gi, gh, h, c, hOut, cOut, saved, rows, hidden);
      break;
    case R_GRU:
      if (s) cell_rows(R_GRU, 1, gi, gh, h, c, hOut, cOut, saved, rows, hidden);
      else cell_rows(R_GRU, 0, gi, gh, h, c, hOut, cOut, saved, rows, hidden);
      break;
  }
}

/*
 * Lanes k..k+n of one batch row of the backward step. dGi is stored before dGh, so when the two
 * are one buffer (the caller passes the same address) the result is the reference's: identical
 * values, and for GRU's n block dGh's dN·r written last.
 */
INLINE void cell_backward_lanes(int mode, const float *saved, const float *hOut, const float *h, const float *c,
                                const float *cOut, const float *dh, float *dc, float *dGi, float *dGh, float *dhPrev,
                                int H, int k, int n) {
  v4 dhk = ld(dh + k, n);
  if (mode == R_RNN_TANH || mode == R_RNN_RELU) {
    v4 y = ld(hOut + k, n);
    /* relu' as the reference's dh·(y > 0 ? 1 : 0): 0·inf and 0·NaN stay NaN. */
    v4 d = mode == R_RNN_TANH ? one_minus_sq(y) : v_select(wasm_f32x4_gt(y, F(0.0f)), F(1.0f), F(0.0f));
    v4 da = wasm_f32x4_mul(dhk, d);
    st(dGi + k, da, n);
    st(dGh + k, da, n);
    st(dhPrev + k, F(0.0f), n);
  } else if (mode == R_LSTM) {
    v4 ig = ld(saved + k, n), fg = ld(saved + H + k, n), gg = ld(saved + 2 * H + k, n), og = ld(saved + 3 * H + k, n);
    v4 cn = ld(cOut + k, n);
    v4 tc = v_tanh(cn);
    /* dc' + dh·o·tanh'(c'), the gradient of c' through both paths. */
    v4 dct = MADD(wasm_f32x4_mul(dhk, og), v_tanh_deriv(cn), ld(dc + k, n));
    v4 dI = wasm_f32x4_mul(wasm_f32x4_mul(dct, gg), sig_deriv(ig));
    v4 dF = wasm_f32x4_mul(wasm_f32x4_mul(dct, ld(c + k, n)), sig_deriv(fg));
    v4 dG = wasm_f32x4_mul(wasm_f32x4_mul(dct, ig), one_minus_sq(gg));
    v4 dO = wasm_f32x4_mul(wasm_f32x4_mul(dhk, tc), sig_deriv(og));
    st(dGi + k, dI, n);
    st(dGi + H + k, dF, n);
    st(dGi + 2 * H + k, dG, n);
    st(dGi + 3 * H + k, dO, n);
    st(dGh + k, dI, n);
    st(dGh + H + k, dF, n);
    st(dGh + 2 * H + k, dG, n);
    st(dGh + 3 * H + k, dO, n);
    st(dc + k, wasm_f32x4_mul(dct, fg), n);
    st(dhPrev + k, F(0.0f), n);
  } else {
    v4 r = ld(saved + k, n), z = ld(saved + H + k, n), nn = ld(saved + 2 * H + k, n), ghn = ld(saved + 3 * H + k, n);
    v4 dN = wasm_f32x4_mul(wasm_f32x4_mul(dhk, wasm_f32x4_sub(F(1.0f), z)), one_minus_sq(nn));
    v4 dZ = wasm_f32x4_mul(wasm_f32x4_mul(dhk, wasm_f32x4_sub(ld(h + k, n), nn)), sig_deriv(z));
    v4 dR = wasm_f32x4_mul(wasm_f32x4_mul(dN, ghn), sig_deriv(r));
    st(dGi + k, dR, n);
    st(dGi + H + k, dZ, n);
    st(dGi + 2 * H + k, dN, n);
    st(dGh + k, dR, n);
    st(dGh + H + k, dZ, n);
    st(dGh + 2 * H + k, wasm_f32x4_mul(dN, r), n);
    st(dhPrev + k, wasm_f32x4_mul(dhk, z), n);
  }
}

INLINE void cell_backward_rows(int mode, const float *saved, const float *hOut, const float *h, const float *c,
                               const float *cOut, const float *dh, float *dc, float *dGi, float *dGh, float *dhPrev,
                               int rows, int H) {
  int G = (mode == R_LSTM ? 4 : mode == R_GRU ? 3 : 1) * H;
  for (int b = 0; b < rows; b++) {
    long o = (long)b * H;
    const float *sb = saved ? saved + 4 * o : 0, *hob = hOut ? hOut + o : 0, *hb = h ? h + o : 0;
    const float *cb = c ? c + o : 0, *cob = cOut ? cOut + o : 0;
    float *dcb = dc ? dc + o : 0, *dgib = dGi + (long)b * G, *dghb = dGh + (long)b * G;
    int k = 0;
    for (; k + 4 <= H; k += 4) cell_backward_lanes(mode, sb, hob, hb, cb, cob, dh + o, dcb, dgib, dghb, dhPrev + o, H, k, 4);
    if (k < H) cell_backward_lanes(mode, sb, hob, hb, cb, cob, dh + o, dcb, dgib, dghb, dhPrev + o, H, k, H - k);
  }
}

/*
 * The adjoint of recurrent_cell_f32 (kernels.ts, RecurrentCellBackwardArgs), fused the same way.
 * Contiguous blocks: saved [rows, 4H] (LSTM, GRU), hOut (RNN), h (GRU), c and cOut (LSTM), dh,
 * dc (LSTM, in place: dc' in, dc out) and dhPrev [rows, H]; dGi, dGh [rows, G], which may be the
 * same address. The derivatives avoid the cancellations of 1 − y² (see one_minus_sq and
 * v_tanh_deriv), so the float32 arithmetic stays within a few ulp of the float64 reference except
 * where sums of terms cancel (absolute ~1e-7 relative to the terms).
 */
EXPORT(recurrent_cell_backward_f32)
void recurrent_cell_backward_f32(int mode, const float *saved, const float *hOut, const float *h, const float *c,
                                 const float *cOut, const float *dh, float *dc, float *dGi, float *dGh, float *dhPrev,
                                 int rows, int hidden) {
  switch (mode) {
    case R_RNN_TANH: cell_backward_rows(R_RNN_TANH, saved, hOut, h, c, cOut, dh, dc, dGi, dGh, dhPrev, rows, hidden); break;
    case R_RNN_RELU: cell_backward_rows(R_RNN_RELU, saved, hOut, h, c, cOut, dh, dc, dGi, dGh, dhPrev, rows, hidden); break;
    case R_LSTM: cell_backward_rows(R_LSTM, saved, hOut, h, c, cOut, dh, dc, dGi, dGh, dhPrev, rows, hidden); break;
    case R_GRU: cell_backward_rows(R_GRU, saved, hOut, h, c, cOut, dh, dc, dGi, dGh, dhPrev, rows, hidden); break;
  }
}

/* ---- flash attention ----------------------------------------------------------------------- */

/*
 * FlashAttention-2 for one key/value head and the `group` query heads that read it (the JS side
 * loops over kv heads). Layouts, all zero-padded by the caller: q, dq [group][tqp][dp] and out,
 * dout [group][tqp][dvp] with tqp a multiple of 4; k, dk [tkp][dp] and v, dv [tkp][dvp] with tkp a
 * multiple of 8; dp, dvp (the q/k and the v widths) multiples of 4; lse, delta [group][tqp].
 * kt [dp][tkp] and vt [dvp][tkp] are scratch (the transposed keys/values, so a score
 * block is a run of 4×8 register tiles without horizontal sums). Blocks: FA_BR queries × FA_BC keys.
 */
#define FA_BR 32
#define FA_BC 64

/* The keys [lo, hi) query i sees (see FlashAttentionArgs). */
INLINE void fa_key_range(int i, int tk, int causal, int off, int window, int *lo, int *hi) {
  if (!causal) {
    *lo = 0;
    *hi = tk;
    return;
  }
  long long h = (long long)i + off + 1;
  h = h < 0 ? 0 : h > tk ? tk : h;
  long long l = 0;
  if (window > 0) {
    l = (long long)i + off - window + 1;
    l = l < 0 ? 0 : l > h ? h : l;
  }
  *lo = (int)l;
  *hi = (int)h;
}

/* dst [cols][ldd] = srcᵀ for src [rows][lds]: dst[c][r] = src[r][c]. */
static void fa_transpose(const float *src, int lds, float *dst, int ldd, int rows, int cols) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(long)c * ldd + r] = src[(long)r * lds + c];
}

/* c[r][j] = Σ_d a[r][d]·bt[d][j] for rows (multiple of 4) × cols (multiple of 8), 4×8 register tiles. */
static void fa_mm_abt(const float *a, int lda, const float *bt, int ldb, float *c, int ldc, int rows, int cols, int depth) {
  for (int r = 0; r < rows; r += 4) {
    const float *a0 = a + (long)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    for (int j = 0; j < cols; j += 8) {
      v4 c00 = F(0), c01 = F(0), c10 = F(0), c11 = F(0), c20 = F(0), c21 = F(0), c30 = F(0), c31 = F(0);
      const float *b = bt + j;
      for (int d = 0; d < depth; d++, b += ldb) {
        v4 b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
        v4 x0 = F(a0[d]), x1 = F(a1[d]), x2 = F(a2[d]), x3 = F(a3[d]);
        c00 = MADD(x0, b0, c00);
        c01 = MADD(x0, b1, c01);
        c10 = MADD(x1, b0, c10);
        c11 = MADD(x1, b1, c11);
        c20 = MADD(x2, b0, c20);
        c21 = MADD(x2, b1, c21);
        c30 = MADD(x3, b0, c30);
        c31 = MADD(x3, b1, c31);
      }
      float *o = c + (long)r * ldc + j;
      wasm_v128_store(o, c00);
      wasm_v128_store(o + 4, c01);
      wasm_v128_store(o + ldc, c10);
      wasm_v128_store(o + ldc + 4, c11);
      wasm_v128_store(o + 2 * ldc, c20);
      wasm_v128_store(o + 2 * ldc + 4, c21);
      wasm_v128_store(o + 3 * ldc, c30);
      wasm_v128_store(o + 3 * ldc + 4, c31);
    }
  }
}

/* c[r][:] += Σ_j p[r][j]·b[j][:] for rows (multiple of 4) × cols (multiple of 4), depth n. */
static void fa_mm_ab_acc(const float *p, int ldp, const float *b, int ldb, float *c, int ldc, int rows, int n, int cols) {
  for (int r = 0; r < rows; r += 4) {
    const float *p0 = p + (long)r * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
    float *o0 = c + (long)r * ldc, *o1 = o0 + ldc, *o2 = o1 + ldc, *o3 = o2 + ldc;
    int c0 = 0;
    for (; c0 + 8 <= cols; c0 += 8) {
      v4 c00 = wasm_v128_load(o0 + c0), c01 = wasm_v128_load(o0 + c0 + 4);
      v4 c10 = wasm_v128_load(o1 + c0), c11 = wasm_v128_load(o1 + c0 + 4);
      v4 c20 = wasm_v128_load(o2 + c0), c21 = wasm_v128_load(o2 + c0 + 4);
      v4 c30 = wasm_v128_load(o3 + c0), c31 = wasm_v128_load(o3 + c0 + 4);
      const float *bb = b + c0;
      for (int j = 0; j < n; j++, bb += ldb) {
        v4 b0 = wasm_v128_load(bb), b1 = wasm_v128_load(bb + 4);
        v4 x0 = F(p0[j]), x1 = F(p1[j]), x2 = F(p2[j]), x3 = F(p3[j]);
        c00 = MADD(x0, b0, c00);
        c01 = MADD(x0, b1, c01);
        c10 = MADD(x1, b0, c10);
        c11 = MADD(x1, b1, c11);
        c20 = MADD(x2, b0, c20);
        c21 = MADD(x2, b1, c21);
        c30 = MADD(x3, b0, c30);
        c31 = MADD(x3, b1, c31);
      }
      wasm_v128_store(o0 + c0, c00);
      wasm_v128_store(o0 + c0 + 4, c01);
      wasm_v128_store(o1 + c0, c10);
      wasm_v128_store(o1 + c0 + 4, c11);
      wasm_v128_store(o2 + c0, c20);
      wasm_v128_store(o2 + c0 + 4, c21);
      wasm_v128_store(o3 + c0, c30);
      wasm_v128_store(o3 + c0 + 4, c31);
    }
    if (c0 < cols) {
      v4 c00 = wasm_v128_load(o0 + c0), c10 = wasm_v128_load(o1 + c0), c20 = wasm_v128_load(o2 + c0), c30 = wasm_v128_load(o3 + c0);
      const float *bb = b + c0;
      for (int j = 0; j < n; j++, bb += ldb) {
        v4 b0 = wasm_v128_load(bb);
        c00 = MADD(F(p0[j]), b0, c00);
        c10 = MADD(F(p1[j]), b0, c10);
        c20 = MADD(F(p2[j]), b0, c20);
        c30 = MADD(F(p3[j]), b0, c30);
      }
      wasm_v128_store(o0 + c0, c00);
      wasm_v128_store(o1 + c0, c10);
      wasm_v128_store(o2 + c0, c20);
      wasm_v128_store(o3 + c0, c30);
    }
  }
}

INLINE float hsum(v4 s) {
  return (wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1)) + (wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3));
}

INLINE float fa_exp1(float x) { return wasm_f32x4_extract_lane(v_exp(F(x)), 0); }

INLINE void fa_zero(float *p, long n) {
  for (long i = 0; i < n; i++) p[i] = 0;
}

/* The block [j0, j0 + nc) of each row intersected with its key range, as columns [a0, a1) of the block. */
INLINE void fa_row_cols(int i, int j0, int nc, int tk, int causal, int off, int window, int *a0, int *a1) {
  int lo, hi;
  fa_key_range(i, tk, causal, off, window, &lo, &hi);
  *a0 = (lo > j0 ? lo : j0) - j0;
  *a1 = (hi < j0 + nc ? hi : j0 + nc) - j0;
}

/*
 * Forward. out rows and lse written for the first tq rows of each query head; sbuf [FA_BR][FA_BC]
 * and acc [FA_BR][dvp] are scratch. Scores are scale·q·k; each row keeps its running max m and sum
 * l, and rescales its accumulator by exp(m_old − m_new) when the max grows.
 */
EXPORT(flash_attention_forward_f32)
void flash_attention_forward_f32(const float *q, const float *k, const float *v, float *kt, float *out, float *lse,
                                 float *sbuf, float *acc, int group, int tq, int tk, int dp, int dvp, float scale,
                                 int causal, int off, int window) {
  int tqp = (tq + 3) & ~3, tkp = (tk + 7) & ~7;
  fa_transpose(k, dp, kt, tkp, tkp, dp);
  float m[FA_BR], l[FA_BR];
  v4 vscale = F(scale);
  for (int g = 0; g < group; g++) {
    const float *qg = q + (long)g * tqp * dp;
    for (int i0 = 0; i0 < tq; i0 += FA_BR) {
      int nr = imin(FA_BR, tq - i0), nrp = (nr + 3) & ~3;
      int blockLo, blockHi, unused;
      fa_key_range(i0, tk, causal, off, window, &blockLo, &unused);
      fa_key_range(i0 + nr - 1, tk, causal, off, window, &unused, &blockHi);
      fa_zero(acc, (long)nrp * dvp);
      for (int r = 0; r < FA_BR; r++) {
        m[r] = -__builtin_inff();
        l[r] = 0;
      }
      for (int j0 = blockLo / FA_BC * FA_BC; j0 < blockHi; j0 += FA_BC) {
        int nc = imin(FA_BC, tk - j0), ncp = (nc + 7) & ~7;
        fa_mm_abt(qg + (long)i0 * dp, dp, kt + j0, tkp, sbuf, FA_BC, nrp, ncp, dp);
        for (int r = 0; r < nrp; r++) {
          float *s = sbuf + r * FA_BC;
          int a0 = 0, a1 = 0;
          if (r < nr) fa_row_cols(i0 + r, j0, nc, tk, causal, off, window, &a0, &a1);
          if (a0 >= a1) {
            fa_zero(s, ncp);
            continue;
          }
          float bmax = -__builtin_inff();
          for (int j = a0; j < a1; j++) {
            float x = s[j] * scale;
            if (x > bmax) bmax = x;
          }
          float mNew = m[r] > bmax ? m[r] : bmax;
          float corr = fa_exp1(m[r] - mNew);
          v4 vm = F(mNew), sum = F(0);
          for (int j = 0; j < ncp; j += 4) {
            v4 e = v_exp(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(s + j), vscale), vm));
            wasm_v128_store(s + j, e);
          }
          for (int j = 0; j < a0; j++) s[j] = 0;
          for (int j = a1; j < ncp; j++) s[j] = 0;
          for (int j = 0; j < ncp; j += 4) sum = wasm_f32x4_add(sum, wasm_v128_load(s + j));
          l[r] = l[r] * corr + hsum(sum);
          m[r] = mNew;
          if (corr != 1.0f) {
            v4 vc = F(corr);
            float *ar = acc + (long)r * dvp;
            for (int c = 0; c < dvp; c += 4) wasm_v128_store(ar + c, wasm_f32x4_mul(wasm_v128_load(ar + c), vc));
          }
        }
        fa_mm_ab_acc(sbuf, FA_BC, v + (long)j0 * dvp, dvp, acc, dvp, nrp, ncp, dvp);
      }
      for (int r = 0; r < nr; r++) {
        float *o = out + ((long)g * tqp + i0 + r) * dvp;
        float *ar = acc + (long)r * dvp;
        if (l[r] == 0) {
          fa_zero(o, dvp);
          lse[g * tqp + i0 + r] = -__builtin_inff();
          continue;
        }
        v4 inv = F(1.0f / l[r]);
        for (int c = 0; c < dvp; c += 4) wasm_v128_store(o + c, wasm_f32x4_mul(wasm_v128_load(ar + c), inv));
        lse[g * tqp + i0 + r] = m[r] + wasm_f32x4_extract_lane(v_log(F(l[r])), 0);
      }
    }
  }
}

/*
 * Backward: key blocks outer, query heads and query blocks inner (FlashAttention-2's order), so
 * dk, dv of a key block accumulate over every query that sees it; dq accumulates across key
 * blocks. P = exp(scale·s − L) is recomputed, dS = P ⊙ (dP − Δ)·scale. Scratch: delta
 * [group][tqp], kt, vt [dp][tkp], sbuf (P), dpbuf (dP, then dS) [FA_BR][FA_BC], tbuf [FA_BC][FA_BR].
 */
EXPORT(flash_attention_backward_f32)
void flash_attention_backward_f32(const float *q, const float *k, const float *v, const float *o, const float *dout,
                                  const float *lse, float *delta, float *kt, float *vt, float *dq, float *dk, float *dv,
                                  float *sbuf, float *dpbuf, float *tbuf, int group, int tq, int tk, int dp, int dvp,
                                  float scale, int causal, int off, int window) {
  int tqp = (tq + 3) & ~3, tkp = (tk + 7) & ~7;
  fa_transpose(k, dp, kt, tkp, tkp, dp);
  fa_transpose(v, dvp, vt, tkp, tkp, dvp);
  for (long i = 0; i < (long)group * tqp; i++) {
    const float *a = o + i * dvp, *b = dout + i * dvp;
    v4 s = F(0);
    for (int c = 0; c < dvp; c += 4) s = MADD(wasm_v128_load(a + c), wasm_v128_load(b + c), s);
    delta[i] = hsum(s);
  }
  fa_zero(dq, (long)group * tqp * dp);
  fa_zero(dk, (long)tkp * dp);
  fa_zero(dv, (long)tkp * dvp);
  v4 vscale = F(scale);
  for (int j0 = 0; j0 < tk; j0 += FA_BC) {
    int nc = imin(FA_BC, tk - j0), ncp = (nc + 7) & ~7;
    for (int g = 0; g < group; g++) {
      const float *qg = q + (long)g * tqp * dp, *dog = dout + (long)g * tqp * dvp;
      for (int i0 = 0; i0 < tq; i0 += FA_BR) {
        int nr = imin(FA_BR, tq - i0), nrp = (nr + 3) & ~3;
        int blockLo, blockHi, unused;
        fa_key_range(i0, tk, causal, off, window, &blockLo, &unused);
        fa_key_range(i0 + nr - 1, tk, causal, off, window, &unused, &blockHi);
        if (blockHi <= j0 || blockLo >= j0 + nc || blockLo >= blockHi) continue;
        fa_mm_abt(qg + (long)i0 * dp, dp, kt + j0, tkp, sbuf, FA_BC, nrp, ncp, dp);
        fa_mm_abt(dog + (long)i0 * dvp, dvp, vt + j0, tkp, dpbuf, FA_BC, nrp, ncp, dvp);
        for (int r = 0; r < nrp; r++) {
          float *p = sbuf + r * FA_BC, *ds = dpbuf + r * FA_BC;
          int a0 = 0, a1 = 0;
          float L = -__builtin_inff();
          if (r < nr) {
            fa_row_cols(i0 + r, j0, nc, tk, causal, off, window, &a0, &a1);
            L = lse[g * tqp + i0 + r];
          }
          if (a0 >= a1 || L == -__builtin_inff()) {
            fa_zero(p, ncp);
            fa_zero(ds, ncp);
            continue;
          }
          v4 vL = F(L), vd = F(delta[g * tqp + i0 + r]);
          for (int j = 0; j < ncp; j += 4) {
            v4 e = v_exp(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(p + j), vscale), vL));
            wasm_v128_store(p + j, e);
          }
          for (int j = 0; j < a0; j++) p[j] = 0;
          for (int j = a1; j < ncp; j++) p[j] = 0;
          for (int j = 0; j < ncp; j += 4) {
            v4 e = wasm_v128_load(p + j);
            wasm_v128_store(ds + j, wasm_f32x4_mul(wasm_f32x4_mul(e, wasm_f32x4_sub(wasm_v128_load(ds + j), vd)), vscale));
          }
        }
        fa_mm_ab_acc(dpbuf, FA_BC, k + (long)j0 * dp, dp, dq + ((long)g * tqp + i0) * dp, dp, nrp, ncp, dp);
        fa_transpose(sbuf, FA_BC, tbuf, FA_BR, nrp, ncp);
        fa_mm_ab_acc(tbuf, FA_BR, dog + (long)i0 * dvp, dvp, dv + (long)j0 * dvp, dvp, ncp, nrp, dvp);
        fa_transpose(dpbuf, FA_BC, tbuf, FA_BR, nrp, ncp);
        fa_mm_ab_acc(tbuf, FA_BR, qg + (long)i0 * dp, dp, dk + (long)j0 * dp, dp, ncp, nrp, dp);
      }
    }
  }
}

/* ---- selective scan (Mamba S6) --------------------------------------------------------------- */

/*
 * One batch row of the selective scan, vectorised over the state dimension: the JS side pads N to
 * Np (a multiple of 4) with A = B = C = h0 = 0, so a padded lane decays by exp(0) = 1 from 0, stays
 * 0 and adds nothing to y or to any gradient. Layouts: x, dt, y, gy, dx, ddt [L][D] (channel d at
 * stride D); a [D][Np]; bm, cm [L][Np]; h0, hlast, dh0 [D][Np]. States are float32 (so is the exp):
 * the recurrence only decays (|a_t| ≤ 1), so rounding errors do not grow along it. Sums across
 * channels or time steps (dA, dB, dC, dD) accumulate in float64 like the reference, fed by float32
 * partial sums over SS_FLUSH steps (dA) or channels (dB, dC): float64 adds on every step would cost
 * a third of the backward, and 16-term float32 sums round about as well as the terms themselves.
 * N=16 (Mamba's default) and other small N get their own inlined copy so the state stays in
 * registers; SS_MAXV bounds the vectors per channel (the JS side falls back beyond it).
 */
#define SS_MAXV 32
/* Steps (dA) or channels (dB, dC) summed in float32 before each float64 add. */
#define SS_FLUSH 16

INLINE float hsum4(v4 v) {
  v4 s = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  s = wasm_f32x4_add(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(s, 0);
}

/* acc[0..4) (doubles) += v. */
INLINE void add64(double *acc, v4 v) {
  wasm_v128_store(acc, wasm_f64x2_add(wasm_v128_load(acc), lo64(v)));
  wasm_v128_store(acc + 2, wasm_f64x2_add(wasm_v128_load(acc + 2), hi64(v)));
}

INLINE void ss_forward_channel(const float *x, const float *dt, const float *a, const float *bm, const float *cm,
                               float dskip, const float *h0, float *y, float *hlast, int L, int D, int nv) {
  v4 h[SS_MAXV], av[SS_MAXV];
  for (int k = 0; k < nv; k++) {
    h[k] = h0 ? wasm_v128_load(h0 + 4 * k) : F(0);
    av[k] = wasm_v128_load(a + 4 * k);
  }
  const int np = 4 * nv;
  for (int t = 0; t < L; t++) {
    float dv = dt[(long)t * D], xv = x[(long)t * D];
    v4 vd = F(dv), vdx = F(dv * xv);
    const float *b = bm + (long)t * np, *c = cm + (long)t * np;
    v4 acc = F(0);
    for (int k = 0; k < nv; k++) {
      v4 at = v_exp(wasm_f32x4_mul(vd, av[k]));
      h[k] = MADD(at, h[k], wasm_f32x4_mul(vdx, wasm_v128_load(b + 4 * k)));
      acc = MADD(wasm_v128_load(c + 4 * k), h[k], acc);
    }
    y[(long)t * D] = hsum4(acc) + dskip * xv;
  }
  for (int k = 0; k < nv; k++) wasm_v128_store(hlast + 4 * k, h[k]);
}

EXPORT(selective_scan_forward_f32)
void selective_scan_forward_f32(const float *x, const float *dt, const float *a, const float *bm, const float *cm,
                                const float *dskip, const float *h0, float *y, float *hlast, int L, int D, int np) {
  int nv = np / 4;
  for (int d = 0; d < D; d++) {
    const float *h0d = h0 ? h0 + (long)d * np : 0;
    const float *ad = a + (long)d * np;
    float *hl = hlast + (long)d * np;
    /* Constant nv: the loops unroll and the state lives in registers. */
    if (nv == 4) ss_forward_channel(x + d, dt + d, ad, bm, cm, dskip[d], h0d, y + d, hl, L, D, 4);
    else if (nv == 2) ss_forward_channel(x + d, dt + d, ad, bm, cm, dskip[d], h0d, y + d, hl, L, D, 2);
    else if (nv == 1) ss_forward_channel(x + d, dt + d, ad, bm, cm, dskip[d], h0d, y + d, hl, L, D, 1);
    else ss_forward_channel(x + d, dt + d, ad, bm, cm, dskip[d], h0d, y + d, hl, L, D, nv);
  }
}

/*
 * One channel's backward: recompute h_−1..h_L−1 into hs [(L+1)][Np] (row 0 is h0) and the decays
 * into dec [L][Np], then the reverse scan g_t = C_t·gy_t + a_t+1·g_t+1 with
 *   dC_t += gy·h_t;  dB_t += g_t·Δ·x;  dA += g_t·h_t−1·a_t·Δ;  dΔ = Σ g_t·h_t−1·a_t·A + x·Σ g_t·B_t;
 *   dx = D·gy + Δ·Σ g_t·B_t;  dD += gy·x;  dh0 = g_0·a_0.
 */
INLINE void ss_backward_channel(const float *x, const float *dt, const float *a, const float *bm, const float *cm,
                                float dskip, const float *h0, const float *gy, float *dx, float *ddt, double *dA,
                                float *dB, float *dC, double *dD, float *dh0, float *hs, float *dec, int L, int D,
                                int nv) {
  v4 h[SS_MAXV], av[SS_MAXV], g[SS_MAXV], da[SS_MAXV];
  const int np = 4 * nv;
  for (int k = 0; k < nv; k++) {
    h[k] = h0 ? wasm_v128_load(h0 + 4 * k) : F(0);
    av[k] = wasm_v128_load(a + 4 * k);
    wasm_v128_store(hs + 4 * k, h[k]);
  }
  for (int t = 0; t < L; t++) {
    float dv = dt[(long)t * D], xv = x[(long)t * D];
    v4 vd = F(dv), vdx = F(dv * xv);
    const float *b = bm + (long)t * np;
    float *ht = hs + (long)(t + 1) * np, *et = dec + (long)t * np;
    for (int k = 0; k < nv; k++) {
      v4 at = v_exp(wasm_f32x4_mul(vd, av[k]));
      h[k] = MADD(at, h[k], wasm_f32x4_mul(vdx, wasm_v128_load(b + 4 * k)));
      wasm_v128_store(ht + 4 * k, h[k]);
      wasm_v128_store(et + 4 * k, at);
    }
  }
  for (int k = 0; k < nv; k++) g[k] = da[k] = F(0);
  double dd = 0;
  for (int t = L - 1; t >= 0; t--) {
    float dv = dt[(long)t * D], xv = x[(long)t * D], gyv = gy[(long)t * D];
    v4 vd = F(dv), vdx = F(dv * xv), vgy = F(gyv);
    const float *b = bm + (long)t * np, *c = cm + (long)t * np;
    const float *ht = hs + (long)(t + 1) * np, *hp = hs + (long)t * np, *et = dec + (long)t * np;
    float *dbt = dB + (long)t * np, *dct = dC + (long)t * np;
    v4 sgb = F(0), sga = F(0);
    for (int k = 0; k < nv; k++) {
      v4 gt = MADD(wasm_v128_load(c + 4 * k), vgy, g[k]);
      v4 bk = wasm_v128_load(b + 4 * k);
      v4 at = wasm_v128_load(et + 4 * k);
      v4 gdecay = wasm_f32x4_mul(wasm_f32x4_mul(gt, wasm_v128_load(hp + 4 * k)), at);
      wasm_v128_store(dct + 4 * k, MADD(vgy, wasm_v128_load(ht + 4 * k), wasm_v128_load(dct + 4 * k)));
      wasm_v128_store(dbt + 4 * k, MADD(gt, vdx, wasm_v128_load(dbt + 4 * k)));
      sga = MADD(gdecay, av[k], sga);
      sgb = MADD(gt, bk, sgb);
      da[k] = MADD(gdecay, vd, da[k]);
      g[k] = wasm_f32x4_mul(gt, at);
    }
    float gb = hsum4(sgb);
    dx[(long)t * D] = dskip * gyv + dv * gb;
    ddt[(long)t * D] = hsum4(sga) + xv * gb;
    dd += (double)gyv * xv;
    /* Short float32 runs keep dA's rounding near the reference's float64 sum. */
    if (t % SS_FLUSH == 0) {
      for (int k = 0; k < nv; k++) {
        add64(dA + 4 * k, da[k]);
        da[k] = F(0);
      }
    }
  }
  *dD += dd;
  if (dh0)
    for (int k = 0; k < nv; k++) wasm_v128_store(dh0 + 4 * k, g[k]);
}

/*
 * Scratch: hs (L+1)·Np floats, dec L·Np, and dBf, dCf L·Np (the float32 partial sums of dB, dC).
 * dA [D][Np] and dD [D] are added into (the JS side sums them over batch rows); dB, dC [L][Np] too
 * (it zeroes them per row).
 */
EXPORT(selective_scan_backward_f32)
void selective_scan_backward_f32(const float *x, const float *dt, const float *a, const float *bm, const float *cm,
                                 const float *dskip, const float *h0, const float *gy, float *dx, float *ddt,
                                 double *dA, double *dB, double *dC, double *dD, float *dh0, float *hs, float *dec,
                                 float *dBf, float *dCf, int L, int D, int np) {
  int nv = np / 4;
  long n = (long)L * np;
  for (int d0 = 0; d0 < D; d0 += SS_FLUSH) {
    for (long i = 0; i < n; i += 4) {
      wasm_v128_store(dBf + i, F(0));
      wasm_v128_store(dCf + i, F(0));
    }
    for (int d = d0; d < imin(D, d0 + SS_FLUSH); d++) {
      const float *h0d = h0 ? h0 + (long)d * np : 0;
      float *dh0d = dh0 ? dh0 + (long)d * np : 0;
#define SS_BWD(NV)                                                                                                   \
  ss_backward_channel(x + d, dt + d, a + (long)d * np, bm, cm, dskip[d], h0d, gy + d, dx + d, ddt + d, dA + (long)d * np, \
                      dBf, dCf, dD + d, dh0d, hs, dec, L, D, NV)
      if (nv == 4) SS_BWD(4);
      else if (nv == 2) SS_BWD(2);
      else if (nv == 1) SS_BWD(1);
      else SS_BWD(nv);
#undef SS_BWD
    }
    for (long i = 0; i < n; i += 4) {
      add64(dB + i, wasm_v128_load(dBf + i));
      add64(dC + i, wasm_v128_load(dCf + i));
    }
  }
}


/* ---- Decode attention ------------------------------------------------------------------------ */

/*
 * One new token's softmax attention over a KV cache (the decode engine's step): for each query
 * head h, reading kv head h / (H / Hkv), out[h] = softmax(q[h]·K[kv]ᵀ·scale)·V[kv] over n cached
 * rows, kv head c's rows from k + c·ldkv (and v + c·ldkv), D floats each; q and out [H, D]. The
 * dot products and the weighted sum of V are f32x4 lanes (D = 32 is 8 vectors per row); the exponentials go through v_exp with the sum
 * in float64 as softmax_f32 does. `scores` is n floats of scratch.
 */
#define DA_BLOCK 16

EXPORT(decode_attention_f32)
void decode_attention_f32(const float *q, const float *k, const float *v, float *scores, float *out, int H, int Hkv, int n, int D,
                          long ldkv, float scale) {
  int g = H / Hkv;
  for (int h = 0; h < H; h++) {
    const float *qh = q + (long)h * D;
    const float *K = k + (h / g) * ldkv;
    const float *V = v + (h / g) * ldkv;
    float *oh = out + (long)h * D;
    float max = -__builtin_inff();
    for (int j = 0; j < n; j++) {
      const float *kr = K + (long)j * D;
      v4 a0 = F(0), a1 = F(0);
      int i = 0;
      for (; i + 8 <= D; i += 8) {
        a0 = MADD(wasm_v128_load(qh + i), wasm_v128_load(kr + i), a0);
        a1 = MADD(wasm_v128_load(qh + i + 4), wasm_v128_load(kr + i + 4), a1);
      }
      for (; i + 4 <= D; i += 4) a0 = MADD(wasm_v128_load(qh + i), wasm_v128_load(kr + i), a0);
      v4 a = wasm_f32x4_add(a0, a1);
      float s = (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) + (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
      for (; i < D; i++) s += qh[i] * kr[i];
      s *= scale;
      scores[j] = s;
      if (s > max) max = s;
    }
    v4 vmax = F(max);
    v128_t s0 = wasm_f64x2_splat(0), s1 = wasm_f64x2_splat(0);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      v4 e = v_exp(wasm_f32x4_sub(wasm_v128_load(scores + j), vmax));
      wasm_v128_store(scores + j, e);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(e));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(e, e, 2, 3, 0, 1)));
    }
    if (j < n) {
      /* padding lanes are −inf, whose exponential is 0 */
      v4 e = v_exp(wasm_f32x4_sub(load_tail(scores + j, n - j, -__builtin_inff()), vmax));
      store_tail(scores + j, e, n - j);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(e));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(e, e, 2, 3, 0, 1)));
    }
    double inv = 1.0 / hsum64(wasm_f64x2_add(s0, s1));
    /*
     * out = Σ_j e_j·V[j] / Σ e: float32 lanes over blocks of DA_BLOCK positions, each block's sum
     * added into float64 lanes, so the rounding error grows with the block, not with n (a long
     * cache's thousands of terms), and the output stays within float32 rounding of the reference.
     */
    v128_t vinv = wasm_f64x2_splat(inv);
    int i = 0;
    for (; i + 4 <= D; i += 4) {
      v128_t lo = wasm_f64x2_splat(0), hi = wasm_f64x2_splat(0);
      for (int j0 = 0; j0 < n; j0 += DA_BLOCK) {
        int j1 = j0 + DA_BLOCK < n ? j0 + DA_BLOCK : n;
        v4 a0 = F(0), a1 = F(0);
        int jj = j0;
        for (; jj + 2 <= j1; jj += 2) {
          a0 = MADD(F(scores[jj]), wasm_v128_load(V + (long)jj * D + i), a0);
          a1 = MADD(F(scores[jj + 1]), wasm_v128_load(V + (long)(jj + 1) * D + i), a1);
        }
        if (jj < j1) a0 = MADD(F(scores[jj]), wasm_v128_load(V + (long)jj * D + i), a0);
        v4 a = wasm_f32x4_add(a0, a1);
        lo = wasm_f64x2_add(lo, wasm_f64x2_promote_low_f32x4(a));
        hi = wasm_f64x2_add(hi, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1)));
      }
      v4 rlo = wasm_f32x4_demote_f64x2_zero(wasm_f64x2_mul(lo, vinv));
      v4 rhi = wasm_f32x4_demote_f64x2_zero(wasm_f64x2_mul(hi, vinv));
      wasm_v128_store(oh + i, wasm_i32x4_shuffle(rlo, rhi, 0, 1, 4, 5));
    }
    for (; i < D; i++) {
      double a = 0;
      for (int jj = 0; jj < n; jj++) a += (double)scores[jj] * V[(long)jj * D + i];
      oh[i] = (float)(a * inv);
    }
  }
}

#endif /* TLM_GEMM_ONLY */

/* ==== int8 weight-only GEMM (issue 18; in both builds: the threaded one splits it over workers) ==== */

/*
 * out[rows, n] ≈ x[rows, k] · dequant(W)ᵀ (+ bias): W is int8 codes q [n, k] in [−127, 127] with
 * one float scale per block of `block` codes of a row (block = k: per output channel; 32: Q8_0
 * blocks, the last one shorter when 32 ∤ k). As llama.cpp does for its Q8_0 products, each row of
 * x is quantized on the fly with the same blocking, so the inner loop is integer dot products and
 * each block's exact integer sum S_b is scaled once by dx·dw:
 *
 *   activations: dx = max|x_block| / 63, qx = nearest-even(x · (1/dx)) in [−63, 63] (7 bits);
 *   per output:  S_b = Σ qx·q over block b (exact int32); blocks go 4 at a time into the lanes of
 *                a float32 vector, tot[b mod 4] += float(S_b) · float(dx_b·dw_b) (a short last
 *                group padded with zeros); res = (tot0 + tot1) + (tot2 + tot3) + bias.
 *
 * Why 7 bits: relaxed SIMD's dot products multiply 16 signed codes by 16 values in [0, 127] in
 * one instruction (pmaddubsw on x86, sdot on Arm),
 * deterministic only when the second operand's top bit is clear (i16x8.relaxed_dot_i8x16_i7x16_s
 * and a pairwise add here, see Q8_STEP). So the relaxed build stores qx + 64 (in [1, 127]) as
 * bytes and subtracts 64·Σ_b q — precomputed per block by q8_block_sums, pinned with the codes —
 * from each block sum: 5 instructions per 16 weights instead of 9. The
 * plain build widens codes and activations to int16 (i32x4.dot_i16x8_s) and gets the same exact
 * S_b, so both builds and the JS reference (js/quantized.ts) agree bit for bit. The price is an
 * activation rounding of 1/126 of a block's largest |x| instead of 1/254 (perplexity: see
 * docs/performance.md). Block sums must fit int32: the caller keeps block ≤ 65536.
 */

#ifdef TLM_RELAXED
typedef int8_t xq_t; /* qx + 64 */
#else
typedef int16_t xq_t; /* qx */
#endif

/* Row r's activations in blocks: xq[r·k + i] the codes (offset by 64 in the relaxed build), xs[r·blocks + b] the scales. */
static void q8_quantize_rows(const float *x, xq_t *xq, float *xs, int rows, int k, int block) {
  int blocks = (k + block - 1) / block;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * k;
    xq_t *qr = xq + (long)r * k;
    for (int b = 0; b < blocks; b++) {
      int start = b * block, end = imin(k, start + block);
      float amax = 0.0f;
      /* A NaN makes the block's scale NaN (as the reference's Math.max does), so it reaches the output. */
      for (int i = start; i < end; i++) {
        float a = xr[i] < 0 ? -xr[i] : xr[i];
        amax = (a > amax || a != a) && amax == amax ? a : amax;
      }
      float d = amax / 63.0f;
      float id = d != 0.0f ? 1.0f / d : 0.0f;
      xs[(long)r * blocks + b] = d;
      int i = start;
      v4 vid = F(id);
#define Q8_ROUND(p) wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(p), vid)))
#ifdef TLM_RELAXED
      for (; i + 16 <= end; i += 16) {
        v128_t lo = wasm_i16x8_narrow_i32x4(Q8_ROUND(xr + i), Q8_ROUND(xr + i + 4));
        v128_t hi = wasm_i16x8_narrow_i32x4(Q8_ROUND(xr + i + 8), Q8_ROUND(xr + i + 12));
        wasm_v128_store(qr + i, wasm_i8x16_add(wasm_i8x16_narrow_i16x8(lo, hi), wasm_i8x16_splat(64)));
      }
#else
      for (; i + 8 <= end; i += 8) wasm_v128_store(qr + i, wasm_i16x8_narrow_i32x4(Q8_ROUND(xr + i), Q8_ROUND(xr + i + 4)));
#endif
#undef Q8_ROUND
      for (; i < end; i++) {
        int v = wasm_i32x4_extract_lane(wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(F(xr[i] * id))), 0);
#ifdef TLM_RELAXED
        qr[i] = (int8_t)(v + 64);
#else
        qr[i] = (int16_t)v;
#endif
      }
    }
  }
}

/*
 * Q8_0 rows in whole groups of 4 blocks (block 32, k a multiple of 128: the straight-line paths)
 * keep their code sums as int16 (|Σ| ≤ 32·127), others as int32: 2 bytes per block of 32 codes
 * instead of 4 to read and to hold (6 % of a Q8_0 model's bytes).
 */
INLINE int q8_sums16(int k, int block) { return block == 32 && (k & 127) == 0; }

/* sums[j·blocks + b] = Σ q over row j's block b (what the relaxed build's offset adds to a block sum, /64), int16 or int32 (q8_sums16). */
EXPORT(q8_block_sums) void q8_block_sums(const int8_t *q, void *sums, int n, int k, int block) {
  int blocks = (k + block - 1) / block;
  for (int j = 0; j < n; j++) {
    const int8_t *qj = q + (long)j * k;
    for (int b = 0; b < blocks; b++) {
      int start = b * block, end = imin(k, start + block);
      v128_t acc = wasm_i32x4_splat(0);
      int i = start;
      for (; i + 16 <= end; i += 16) acc = wasm_i32x4_add(acc, wasm_i32x4_extadd_pairwise_i16x8(wasm_i16x8_extadd_pairwise_i8x16(wasm_v128_load(qj + i))));
      int32_t s = wasm_i32x4_extract_lane(acc, 0) + wasm_i32x4_extract_lane(acc, 1) + wasm_i32x4_extract_lane(acc, 2) + wasm_i32x4_extract_lane(acc, 3);
      for (; i < end; i++) s += qj[i];
      if (q8_sums16(k, block)) ((int16_t *)sums)[(long)j * blocks + b] = (int16_t)s;
      else ((int32_t *)sums)[(long)j * blocks + b] = s;
    }
  }
}

/* n ≤ 4 values from p, zeros in the other lanes (a short last group of blocks). */
INLINE v128_t q8_load4(const void *p, int n) {
  const int32_t *v = (const int32_t *)p;
  /* Lanes built in registers, not through a stack array (per-channel int8 has one block per row: this is every output's path). */
  switch (n) {
    case 4: return wasm_v128_load(p);
    case 3: return wasm_i32x4_make(v[0], v[1], v[2], 0);
    case 2: return wasm_i32x4_make(v[0], v[1], 0, 0);
    default: return wasm_i32x4_make(v[0], 0, 0, 0);
  }
}

/* [Σa, Σb, Σc, Σd] of four integer vectors (exact). */
INLINE v128_t q8_hsum4(v128_t a, v128_t b, v128_t c, v128_t d) {
  v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

/*
 * R rows of quantized x (stride k) against one output's codes qj, scales sj and block sums wj:
 * res[r] as described at the top of this section. Blocks go four at a time (one lane each).
 */
#ifdef TLM_RELAXED
/*
 * i16x8.relaxed_dot_i8x16_i7x16_s then a widening pairwise add, not the one-instruction
 * i32x4.relaxed_dot_i8x16_i7x16_add_s: Node 20's V8 (11.3) computes that one wrongly (twice the
 * dot product, the accumulator dropped; measured). Pairs of 7-bit by 8-bit products fit int16.
 */
#define Q8_STEP(acc, w, xr) acc = wasm_i32x4_add((acc), wasm_i32x4_extadd_pairwise_i16x8(wasm_i16x8_relaxed_dot_i8x16_i7x16((w), wasm_v128_load(xr))))
#define Q8_WIDEN(w)
#else
#define Q8_STEP(acc, w, xr) acc = wasm_i32x4_add(wasm_i32x4_add((acc), wasm_i32x4_dot_i16x8(wl, wasm_v128_load(xr))), wasm_i32x4_dot_i16x8(wh, wasm_v128_load((xr) + 8)))
#define Q8_WIDEN(w) v128_t wl = wasm_i16x8_extend_low_i8x16(w), wh = wasm_i16x8_extend_high_i8x16(w);
#endif
#define Q8_DOT(R)                                                                                      \
  INLINE void q8_dot_##R(const xq_t *xq, const float *xs, int k, int blocks, const int8_t *qj, const float *sj, const int32_t *wj, int block, float *res) { \
    v4 tot[R];                                                                                         \
    for (int r = 0; r < R; r++) tot[r] = F(0);                                                         \
    for (int b0 = 0; b0 < blocks; b0 += 4) {                                                           \
      int nb = imin(4, blocks - b0);                                                                   \
      v128_t acc[4][R];                                                                                \
      for (int bb = 0; bb < 4; bb++)                                                                   \
        for (int r = 0; r < R; r++) acc[bb][r] = wasm_i32x4_splat(0);                                  \
      for (int bb = 0; bb < nb; bb++) {                                                                \
        int start = (b0 + bb) * block, end = imin(k, start + block);                                   \
        int i = start;                                                                                 \
        for (; i + 16 <= end; i += 16) {                                                               \
          v128_t w = wasm_v128_load(qj + i);                                                           \
          Q8_WIDEN(w)                                                                                  \
          for (int r = 0; r < R; r++) Q8_STEP(acc[bb][r], w, xq + (long)r * k + i);                    \
        }                                                                                              \
        for (; i < end; i++)                                                                           \
          for (int r = 0; r < R; r++)                                                                  \
            acc[bb][r] = wasm_i32x4_add(acc[bb][r], wasm_i32x4_make((int32_t)xq[(long)r * k + i] * (int32_t)qj[i], 0, 0, 0)); \
      }                                                                                                \
      v4 dw = q8_load4(sj + b0, nb);                                                                   \
      v128_t offset = wasm_i32x4_shl(q8_load4(wj + b0, nb), 6);                                        \
      for (int r = 0; r < R; r++) {                                                                    \
        v128_t s = q8_hsum4(acc[0][r], acc[1][r], acc[2][r], acc[3][r]);                               \
        if (RELAXED_OFFSET) s = wasm_i32x4_sub(s, offset);                                             \
        v4 sc = wasm_f32x4_mul(q8_load4(xs + (long)r * blocks + b0, nb), dw);                          \
        tot[r] = wasm_f32x4_add(tot[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), sc));              \
      }                                                                                                \
    }                                                                                                  \
    for (int r = 0; r < R; r++)                                                                        \
      res[r] = (wasm_f32x4_extract_lane(tot[r], 0) + wasm_f32x4_extract_lane(tot[r], 1)) +             \
               (wasm_f32x4_extract_lane(tot[r], 2) + wasm_f32x4_extract_lane(tot[r], 3));              \
  }
#ifdef TLM_RELAXED
#define RELAXED_OFFSET 1
#else
#define RELAXED_OFFSET 0
#endif
Q8_DOT(4)
#undef Q8_DOT

/*
 * q8_dot_4 for Q8_0 rows in whole groups of 4 blocks (block 32, k a multiple of 128), straight-line
 * as q8_dot_1's fast path: each block's two weight vectors are loaded once for the four rows, whose
 * sums accumulate in locals and are stored once per block.
 */
INLINE void q8_dot_4_q32(const xq_t *xq, const float *xs, int k, int blocks, const int8_t *qj, const float *sj, const int16_t *wj, float *res) {
  v4 tot[4] = {F(0), F(0), F(0), F(0)};
  for (int b0 = 0; b0 < blocks; b0 += 4) {
    v128_t acc[4][4];
    for (int bb = 0; bb < 4; bb++) {
      int i = (b0 + bb) * 32;
      v128_t w = wasm_v128_load(qj + i), u = wasm_v128_load(qj + i + 16);
      v128_t c0 = wasm_i32x4_splat(0), c1 = c0, c2 = c0, c3 = c0;
      {
        Q8_WIDEN(w)
        Q8_STEP(c0, w, xq + i);
        Q8_STEP(c1, w, xq + k + i);
        Q8_STEP(c2, w, xq + 2 * (long)k + i);
        Q8_STEP(c3, w, xq + 3 * (long)k + i);
      }
      {
        Q8_WIDEN(u)
        Q8_STEP(c0, u, xq + i + 16);
        Q8_STEP(c1, u, xq + k + i + 16);
        Q8_STEP(c2, u, xq + 2 * (long)k + i + 16);
        Q8_STEP(c3, u, xq + 3 * (long)k + i + 16);
      }
      acc[0][bb] = c0, acc[1][bb] = c1, acc[2][bb] = c2, acc[3][bb] = c3;
    }
    v128_t offset = wasm_i32x4_shl(wasm_i32x4_load16x4(wj + b0), 6);
    v4 dw = wasm_v128_load(sj + b0);
    for (int r = 0; r < 4; r++) {
      v128_t s = q8_hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      if (RELAXED_OFFSET) s = wasm_i32x4_sub(s, offset);
      v4 sc = wasm_f32x4_mul(wasm_v128_load(xs + (long)r * blocks + b0), dw);
      tot[r] = wasm_f32x4_add(tot[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), sc));
    }
  }
  for (int r = 0; r < 4; r++)
    res[r] = (wasm_f32x4_extract_lane(tot[r], 0) + wasm_f32x4_extract_lane(tot[r], 1)) + (wasm_f32x4_extract_lane(tot[r], 2) + wasm_f32x4_extract_lane(tot[r], 3));
}

/* One block's integer lane sums for one row (zeros for an empty block): accumulated in a local. */
INLINE v128_t q8_block_1(const xq_t *xr, const int8_t *qj, int start, int end) {
  v128_t c = wasm_i32x4_splat(0);
  int i = start;
  for (; i + 16 <= end; i += 16) {
    v128_t w = wasm_v128_load(qj + i);
    Q8_WIDEN(w)
    Q8_STEP(c, w, xr + i);
  }
  for (; i < end; i++) c = wasm_i32x4_add(c, wasm_i32x4_make((int32_t)xr[i] * (int32_t)qj[i], 0, 0, 0));
  return c;
}

/*
 * q8_dot_4's arithmetic for one row (the batch-1 decode case), written without arrays: the four
 * blocks of a group accumulate in four locals, which stay in registers (an array indexed by the
 * block would live in the WASM stack, a load and a store per step; measured 1.5 cycles per 16
 * codes for the bare dot loop against ~5.5 for the array form).
 */
/* One Q8_0 block (32 codes) of one row, straight-line. */
INLINE v128_t q8_block32_1(const xq_t *xr, const int8_t *qj) {
  v128_t c = wasm_i32x4_splat(0);
  v128_t w = wasm_v128_load(qj), u = wasm_v128_load(qj + 16);
  {
    Q8_WIDEN(w)
    Q8_STEP(c, w, xr);
  }
  {
    Q8_WIDEN(u)
    Q8_STEP(c, u, xr + 16);
  }
  return c;
}

INLINE void q8_dot_1(const xq_t *xr, const float *xs, int k, int blocks, const int8_t *qj, const float *sj, const void *sums, int block, float *res) {
  const int32_t *wj = (const int32_t *)sums;
  v4 tot = F(0);
  int b0 = 0;
  /*
   * Q8_0 rows in whole groups of 4 blocks (k a multiple of 128: every model dimension here) take a
   * straight-line path: 2.3–3.4× the looped form's speed in isolation (18–22 vs 6–8 GB/s of codes on
   * one thread), whose per-block loop control and bounds cost more than the block's two dot steps.
   */
  if (block == 32 && (k & 127) == 0) {
    for (; b0 < blocks; b0 += 4) {
      int s0 = b0 * 32;
      v128_t s = q8_hsum4(q8_block32_1(xr + s0, qj + s0), q8_block32_1(xr + s0 + 32, qj + s0 + 32), q8_block32_1(xr + s0 + 64, qj + s0 + 64), q8_block32_1(xr + s0 + 96, qj + s0 + 96));
      if (RELAXED_OFFSET) s = wasm_i32x4_sub(s, wasm_i32x4_shl(wasm_i32x4_load16x4((const int16_t *)sums + b0), 6));
      v4 sc = wasm_f32x4_mul(wasm_v128_load(xs + b0), wasm_v128_load(sj + b0));
      tot = wasm_f32x4_add(tot, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), sc));
    }
  }
  for (; b0 < blocks; b0 += 4) {
    int nb = imin(4, blocks - b0);
    int s0 = b0 * block;
    v128_t c0 = q8_block_1(xr, qj, s0, imin(k, s0 + block));
    v128_t c1 = nb > 1 ? q8_block_1(xr, qj, s0 + block, imin(k, s0 + 2 * block)) : wasm_i32x4_splat(0);
    v128_t c2 = nb > 2 ? q8_block_1(xr, qj, s0 + 2 * block, imin(k, s0 + 3 * block)) : wasm_i32x4_splat(0);
    v128_t c3 = nb > 3 ? q8_block_1(xr, qj, s0 + 3 * block, imin(k, s0 + 4 * block)) : wasm_i32x4_splat(0);
    v128_t s = q8_hsum4(c0, c1, c2, c3);
    if (RELAXED_OFFSET) s = wasm_i32x4_sub(s, wasm_i32x4_shl(q8_load4(wj + b0, nb), 6));
    v4 sc = wasm_f32x4_mul(q8_load4(xs + b0, nb), q8_load4(sj + b0, nb));
    tot = wasm_f32x4_add(tot, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), sc));
  }
  res[0] = (wasm_f32x4_extract_lane(tot, 0) + wasm_f32x4_extract_lane(tot, 1)) + (wasm_f32x4_extract_lane(tot, 2) + wasm_f32x4_extract_lane(tot, 3));
}

/* Quantizes rows of x for gemm_int8_q: xq rows·k int16 of scratch (bytes suffice in the relaxed build), xs rows·⌈k/block⌉ floats. */
EXPORT(quantize_q8_rows) void quantize_q8_rows(const float *x, xq_t *xq, float *xs, int rows, int k, int block) {
  q8_quantize_rows(x, xq, xs, rows, k, block);
}

/*
 * Output columns [j0, j1) of out[rows, n] from activations already quantized by quantize_q8_rows
 * and the codes' block sums from q8_block_sums: the threaded build's workers each take a range of
 * columns of one product (rows of the codes), sharing the quantized activations.
 */
EXPORT(gemm_int8_q)
void gemm_int8_q(const xq_t *xq, const float *xs, const int8_t *q, const float *scales, const void *sums, const float *bias, float *out, int rows, int n, int k, int block, int j0, int j1) {
  const int16_t *sums16 = (const int16_t *)sums;
  const int32_t *sums32 = (const int32_t *)sums;
  int blocks = (k + block - 1) / block;
  float res[4];
  int r = 0;
  int q32 = block == 32 && (k & 127) == 0;
  for (; r + 4 <= rows; r += 4) {
    for (int j = j0; j < j1; j++) {
      if (q32)
        q8_dot_4_q32(xq + (long)r * k, xs + (long)r * blocks, k, blocks, q + (long)j * k, scales + (long)j * blocks, sums16 + (long)j * blocks, res);
      else
        q8_dot_4(xq + (long)r * k, xs + (long)r * blocks, k, blocks, q + (long)j * k, scales + (long)j * blocks, sums32 + (long)j * blocks, block, res);
      float b = bias ? bias[j] : 0.0f;
      for (int rr = 0; rr < 4; rr++) out[(long)(r + rr) * n + j] = res[rr] + b;
    }
  }
  for (; r < rows; r++) {
    for (int j = j0; j < j1; j++) {
      q8_dot_1(xq + (long)r * k, xs + (long)r * blocks, k, blocks, q + (long)j * k, scales + (long)j * blocks, q8_sums16(k, block) ? (const void *)(sums16 + (long)j * blocks) : (const void *)(sums32 + (long)j * blocks), block, res);
      out[(long)r * n + j] = res[0] + (bias ? bias[j] : 0.0f);
    }
  }
}

#undef Q8_STEP
#undef Q8_WIDEN
#undef RELAXED_OFFSET

/* ==== end of the int8 weight-only GEMM ========================================================== */

/* ---- GEMM ------------------------------------------------------------------------------------ */

/*
 * Goto/BLIS-style sgemm. op(B) is packed in KC×NC panels of NR-wide column strips, op(A) in MC×KC
 * blocks of MR-tall row strips (both zero-padded to whole strips, so the micro-kernel never
 * branches on edges), and a 4×8 register tile accumulates one C tile over KC steps: 8 f32x4
 * accumulators + 2 B vectors + 1 A broadcast fit V8's 16 vector registers without spilling.
 * Loop order (outer → inner): jc (NC) · pc (KC, pack B) · ic (MC, pack A) · jr (NR) · ir (MR):
 * the B strip (KC·NR floats = 8 KiB) stays in L1 while the A block (MC·KC = 128 KiB) streams
 * from L2. Measured on the project's AMD EPYC host: 49–51 GFLOPS without the JS copies, in both
 * builds, for n = 128…1024 and every transpose — the 128-bit ceiling (two 4-lane FMAs, or a
 * 4-lane mul and add, per cycle). KC 128–384 and MC 64–128 are all within noise of each other.
 */
#define MR 4
#define NR 8
#define KC 256
#define MC 128
#define NC 2048

INLINE int round_up(int x, int to) { return (x + to - 1) / to * to; }

/*
 * Floats of packing workspace gemm_f32 needs for these sizes: an A block and a B panel. The caller
 * provides it (not static arrays), so that threads sharing one memory each get their own.
 */
EXPORT(gemm_workspace_floats) int gemm_workspace_floats(int m, int n, int k) {
  int kc = imin(KC, k);
  return round_up(imin(MC, m), MR) * kc + kc * round_up(imin(NC, n), NR) + 16;
}

/* A's MC×KC block starting at op(A)[i0, p0] into MR-row strips: strip s, step p holds op(A)[i0+s·MR+0..3, p0+p]. */
static void pack_a(int transA, const float *a, int lda, int i0, int p0, int mc, int kc, float *dst) {
  for (int i = 0; i < mc; i += MR) {
    int rows = imin(MR, mc - i);
    if (!transA) {
      /* op(A) = A: each of the 4 rows is contiguous in p; transpose 4×4 blocks. */
      const float *r0 = a + (long)(i0 + i) * lda + p0;
      if (rows == MR) {
        const float *r1 = r0 + lda, *r2 = r1 + lda, *r3 = r2 + lda;
        int p = 0;
        for (; p + 4 <= kc; p += 4) {
          v4 x0 = wasm_v128_load(r0 + p), x1 = wasm_v128_load(r1 + p);
          v4 x2 = wasm_v128_load(r2 + p), x3 = wasm_v128_load(r3 + p);
          v4 t0 = wasm_i32x4_shuffle(x0, x1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(x2, x3, 0, 4, 1, 5);
          v4 t2 = wasm_i32x4_shuffle(x0, x1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(x2, x3, 2, 6, 3, 7);
          wasm_v128_store(dst, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
          wasm_v128_store(dst + 4, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
          wasm_v128_store(dst + 8, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
          wasm_v128_store(dst + 12, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
          dst += 16;
        }
        for (; p < kc; p++, dst += MR) {
          dst[0] = r0[p];
          dst[1] = r1[p];
          dst[2] = r2[p];
          dst[3] = r3[p];
        }
      } else {
        for (int p = 0; p < kc; p++, dst += MR)
          for (int r = 0; r < MR; r++) dst[r] = r < rows ? r0[(long)r * lda + p] : 0.0f;
      }
    } else {
      /* op(A) = Aᵀ: op(A)[i, p] = a[p·lda + i], so each step's 4 values are contiguous. */
      const float *src = a + (long)p0 * lda + i0 + i;
      if (rows == MR) {
        for (int p = 0; p < kc; p++, dst += MR) wasm_v128_store(dst, wasm_v128_load(src + (long)p * lda));
      } else {
        for (int p = 0; p < kc; p++, dst += MR)
          for (int r = 0; r < MR; r++) dst[r] = r < rows ? src[(long)p * lda + r] : 0.0f;
      }
    }
  }
}

/* B's KC×NC panel starting at op(B)[p0, j0] into NR-column strips: strip s, step p holds op(B)[p0+p, j0+s·NR+0..7]. */
static void pack_b(int transB, const float *b, int ldb, int p0, int j0, int kc, int nc, float *dst) {
  for (int j = 0; j < nc; j += NR) {
    int cols = imin(NR, nc - j);
    if (!transB) {
      const float *src = b + (long)p0 * ldb + j0 + j;
      if (cols == NR) {
        for (int p = 0; p < kc; p++, dst += NR) {
          const float *s = src + (long)p * ldb;
          wasm_v128_store(dst, wasm_v128_load(s));
          wasm_v128_store(dst + 4, wasm_v128_load(s + 4));
        }
      } else {
        for (int p = 0; p < kc; p++, dst += NR)
          for (int c = 0; c < NR; c++) dst[c] = c < cols ? src[(long)p * ldb + c] : 0.0f;
      }
    } else {
      /* op(B) = Bᵀ: op(B)[p, j] = b[j·ldb + p]; the 8 columns are 8 rows of b, contiguous in p. */
      const float *src = b + (long)(j0 + j) * ldb + p0;
      if (cols == NR) {
        const float *r[8];
        for (int c = 0; c < 8; c++) r[c] = src + (long)c * ldb;
        int p = 0;
        for (; p + 4 <= kc; p += 4) {
          for (int h = 0; h < 2; h++) {
            v4 x0 = wasm_v128_load(r[4 * h] + p), x1 = wasm_v128_load(r[4 * h + 1] + p);
            v4 x2 = wasm_v128_load(r[4 * h + 2] + p), x3 = wasm_v128_load(r[4 * h + 3] + p);
            v4 t0 = wasm_i32x4_shuffle(x0, x1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(x2, x3, 0, 4, 1, 5);
            v4 t2 = wasm_i32x4_shuffle(x0, x1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(x2, x3, 2, 6, 3, 7);
            wasm_v128_store(dst + 4 * h, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
            wasm_v128_store(dst + 4 * h + 8, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
            wasm_v128_store(dst + 4 * h + 16, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
            wasm_v128_store(dst + 4 * h + 24, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
          }
          dst += 4 * NR;
        }
        for (; p < kc; p++, dst += NR)
          for (int c = 0; c < NR; c++) dst[c] = r[c][p];
      } else {
        for (int p = 0; p < kc; p++, dst += NR)
          for (int c = 0; c < NR; c++) dst[c] = c < cols ? src[(long)c * ldb + p] : 0.0f;
      }
    }
  }
}

/* C[i, j] = alpha·acc + beta·C[i, j] for one row of the tile (beta 0: C is not read, like BLAS). */
INLINE void store_row(float *c, v4 lo, v4 hi, v4 valpha, float beta, int nr) {
  lo = wasm_f32x4_mul(lo, valpha);
  hi = wasm_f32x4_mul(hi, valpha);
  if (nr == NR) {
    if (beta != 0.0f) {
      v4 vb = F(beta);
      lo = MADD(vb, wasm_v128_load(c), lo);
      hi = MADD(vb, wasm_v128_load(c + 4), hi);
    }
    wasm_v128_store(c, lo);
    wasm_v128_store(c + 4, hi);
  } else {
    float t[NR];
    wasm_v128_store(t, lo);
    wasm_v128_store(t + 4, hi);
    for (int j = 0; j < nr; j++) c[j] = beta != 0.0f ? t[j] + beta * c[j] : t[j];
  }
}

/* The 4×8 micro-kernel: C[0..mr, 0..nr] (= alpha·Ã·B̃ + beta·C) from packed strips of depth kc. */
static void micro_4x8(int kc, const float *a, const float *b, float *c, int ldc, int mr, int nr, float alpha,
                      float beta) {
  v4 c00 = F(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < kc; p++) {
    v4 b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    v4 a0 = wasm_v128_load32_splat(a);
    c00 = MADD(a0, b0, c00);
    c01 = MADD(a0, b1, c01);
    v4 a1 = wasm_v128_load32_splat(a + 1);
    c10 = MADD(a1, b0, c10);
    c11 = MADD(a1, b1, c11);
    v4 a2 = wasm_v128_load32_splat(a + 2);
    c20 = MADD(a2, b0, c20);
    c21 = MADD(a2, b1, c21);
    v4 a3 = wasm_v128_load32_splat(a + 3);
    c30 = MADD(a3, b0, c30);
    c31 = MADD(a3, b1, c31);
    a += MR;
    b += NR;
  }
  v4 va = F(alpha);
  store_row(c, c00, c01, va, beta, nr);
  if (mr > 1) store_row(c + ldc, c10, c11, va, beta, nr);
  if (mr > 2) store_row(c + 2 * (long)ldc, c20, c21, va, beta, nr);
  if (mr > 3) store_row(c + 3 * (long)ldc, c30, c31, va, beta, nr);
}

/*
 * Batched C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b], row-major, the CBLAS contract (see
 * kernels.ts GemmArgs). Requires m, n, k ≥ 1. A stride of 0 reuses one matrix for every batch.
 * `ws` is gemm_workspace_floats(m, n, k) floats of scratch, 16-byte aligned.
 */
EXPORT(gemm_f32)
void gemm_f32(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, int strideA,
              const float *b, int ldb, int strideB, float beta, float *c, int ldc, int strideC, int batch,
              float *ws) {
  float *packA = ws;
  float *packB = ws + round_up(imin(MC, m), MR) * imin(KC, k);
  for (int t = 0; t < batch; t++) {
    const float *at = a + (long)t * strideA, *bt = b + (long)t * strideB;
    float *ct = c + (long)t * strideC;
    for (int jc = 0; jc < n; jc += NC) {
      int nc = imin(NC, n - jc);
      for (int pc = 0; pc < k; pc += KC) {
        int kc = imin(KC, k - pc);
        pack_b(transB, bt, ldb, pc, jc, kc, nc, packB);
        /* Later depth blocks add onto the partial sums already stored in C. */
        float betaBlock = pc == 0 ? beta : 1.0f;
        for (int ic = 0; ic < m; ic += MC) {
          int mc = imin(MC, m - ic);
          pack_a(transA, at, lda, ic, pc, mc, kc, packA);
          for (int jr = 0; jr < nc; jr += NR) {
            int nr = imin(NR, nc - jr);
            for (int ir = 0; ir < mc; ir += MR) {
              micro_4x8(kc, packA + ir * kc, packB + jr * kc, ct + (long)(ic + ir) * ldc + jc + jr, ldc,
                        imin(MR, mc - ir), nr, alpha, betaBlock);
            }
          }
        }
      }
    }
  }
}
