/*
 * TensorLM's native kernels: compiled on first use by the C compiler of the machine
 * (src/backends/native/index.ts, `cc -O3 -march=native`), loaded through koffi, and called on the
 * tensors' own Float32Arrays — no copies in or out, unlike the WebAssembly kernels, and the full
 * vector width of the CPU (AVX2 / AVX-512 / NEON) instead of WebAssembly's 128 bits.
 *
 * Plain C that the compiler vectorizes: branch-free loop bodies, explicit float64 lane arrays for
 * sums (a compiler may not reorder a float reduction by itself); the register tiles of GEMM and
 * attention (at the end of the file) use GCC/Clang vector types instead. The arithmetic follows the
 * WebAssembly kernels (src/backends/wasm/kernels.c) formula for formula — the same exp and erf
 * polynomials, float64 sums, the reference's float64 order in Adam and the norms — so both pass
 * the same tests against the reference kernels. Built with -ffp-contract=off: no silent a*b+c
 * fusion; fmaf() is written where a fused multiply-add is meant.
 *
 * Kernels that need scratch memory allocate it first and return -1, having written nothing, when
 * they cannot (the caller then runs the base backend's kernel); 0 otherwise.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define LANES 16

INLINE float from_bits(int32_t i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
INLINE int32_t to_bits(float f) {
  int32_t i;
  memcpy(&i, &f, 4);
  return i;
}

/* exp(x), float32, ~1 ulp (Cephes expf), as v_exp in the WebAssembly kernels: NaN stays NaN,
 * overflow to +inf above ln(FLT_MAX), gradual underflow to 0 below about −103.9. */
INLINE float exp_f(float x) {
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  float t = fmaf(x, 1.44269504088896341f, 12582912.0f);
  float n = t - 12582912.0f;
  int32_t ni = to_bits(t) - 0x4b400000;
  float r = fmaf(n, -0.693359375f, x);
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p, r * r, r);
  p = p + 1.0f;
  int32_t n1 = ni >> 1, n2 = ni - n1;
  return p * from_bits((n1 + 127) << 23) * from_bits((n2 + 127) << 23);
}

/* GELU's Φ(x) and e = exp(−x²/2), one exp for both (v_gelu_cdf in the WebAssembly kernels). */
INLINE float gelu_cdf(float x, float *e_out) {
  float az = fabsf(x * 0.7071067811865476f);
  float e = exp_f(-0.5f * x * x);
  float t = 1.0f / fmaf(az, 0.5f, 1.0f);
  float p = 0.043195534497499466f;
  p = fmaf(p, t, -0.23473414778709412f);
  p = fmaf(p, t, 0.4936962127685547f);
  p = fmaf(p, t, -0.45497560501098633f);
  p = fmaf(p, t, 0.13217830657958984f);
  p = fmaf(p, t, -0.05921197310090065f);
  p = fmaf(p, t, 0.09346262365579605f);
  p = fmaf(p, t, 0.1753159463405609f);
  p = fmaf(p, t, 0.24688458442687988f);
  p = fmaf(p, t, 0.28209376335144043f);
  p = fmaf(p, t, 0.282094806432724f);
  float half_erfc = 0.5f * (t * e) * p;
  *e_out = e;
  return x >= 0.0f ? 1.0f - half_erfc : half_erfc;
}

/* GELU'(x)·g, the same formula as the derivative below (and the WebAssembly kernels' v_gelu_backward). */
INLINE float gelu_backward(float x, float g) {
  float e;
  float cdf = gelu_cdf(x, &e);
  return g * (cdf + (x * 0.3989422804014327f) * e);
}

/* out = GELU(x) (inference: no derivative kept). out may equal x. */
void tlm_gelu(const float *x, float *out, long n) {
  for (long i = 0; i < n; i++) {
    float e;
    out[i] = x[i] * gelu_cdf(x[i], &e);
  }
}

/* out = GELU(x), deriv = GELU'(x): training's forward, bit for bit tlm_gelu's and gelu_backward's (g = 1). */
void tlm_gelu_with_derivative(const float *x, float *out, float *deriv, long n) {
  for (long i = 0; i < n; i++) {
    float v = x[i], e;
    float cdf = gelu_cdf(v, &e);
    out[i] = v * cdf;
    deriv[i] = cdf + (v * 0.3989422804014327f) * e;
  }
}

/* ---- binary arithmetic over rows × cols, each operand full, a row vector, a column or a scalar -- */

enum { FULL, ROW, COL, SCALAR };
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_GELU_BWD };

#define BINARY_LOOP(expr)                                                                          \
  for (long r = 0; r < rows; r++) {                                                                \
    const float *ar = a + (aKind == FULL ? r * cols : aKind == COL ? r : 0);                       \
    const float *br = b + (bKind == FULL ? r * cols : bKind == COL ? r : 0);                       \
    float *o = out + r * cols;                                                                     \
    int as = aKind == FULL || aKind == ROW, bs = bKind == FULL || bKind == ROW;                    \
    if (as && bs)                                                                                  \
      for (long j = 0; j < cols; j++) { float x = ar[j], y = br[j]; o[j] = (expr); }               \
    else if (as) {                                                                                 \
      float y = br[0];                                                                             \
      for (long j = 0; j < cols; j++) { float x = ar[j]; o[j] = (expr); }                          \
    } else if (bs) {                                                                               \
      float x = ar[0];                                                                             \
      for (long j = 0; j < cols; j++) { float y = br[j]; o[j] = (expr); }                          \
    } else {                                                                                       \
      float x = ar[0], y = br[0];                                                                  \
      for (long j = 0; j < cols; j++) o[j] = (expr);                                               \
    }                                                                                              \
  }

/* out may equal a full operand (each element is read before it is written). */
void tlm_binary(int op, const float *a, int aKind, const float *b, int bKind, float *out, long rows, long cols) {
  switch (op) {
    case B_ADD: BINARY_LOOP(x + y); break;
    case B_SUB: BINARY_LOOP(x - y); break;
    case B_MUL: BINARY_LOOP(x * y); break;
    case B_DIV: BINARY_LOOP(x / y); break;
    case B_GELU_BWD: BINARY_LOOP(gelu_backward(x, y)); break;
  }
}

/* ---- strided copy of 4-byte elements (up to 4 dims after merging; floats or ints alike) -------- */

void tlm_copy4(const void *src, void *dst, long n0, long n1, long n2, long n3, long s0, long s1, long s2, long s3, long d0,
               long d1, long d2, long d3) {
  const int32_t *x = src;
  int32_t *y = dst;
  for (long i0 = 0; i0 < n0; i0++)
    for (long i1 = 0; i1 < n1; i1++)
      for (long i2 = 0; i2 < n2; i2++) {
        const int32_t *xs = x + i0 * s0 + i1 * s1 + i2 * s2;
        int32_t *ys = y + i0 * d0 + i1 * d1 + i2 * d2;
        if (s3 == 1 && d3 == 1) memcpy(ys, xs, sizeof(int32_t) * n3);
        else
          for (long i3 = 0; i3 < n3; i3++) ys[i3 * d3] = xs[i3 * s3];
      }
}

/* ---- reductions: sums in float64 lanes ----------------------------------------------------- */
/*
 * Each helper loop below does one thing, which is what the compiler vectorizes reliably; rows of
 * attention and norm widths stay in L1 between the passes.
 */

/* Σ term over k in [0, n): LANES float64 partial sums, then the rest; the body of every sum below. */
#define LANE_SUM(term)                                                                             \
  double acc[LANES] = {0};                                                                         \
  long i = 0;                                                                                      \
  for (; i + LANES <= n; i += LANES)                                                               \
    for (int l = 0; l < LANES; l++) {                                                              \
      long k = i + l;                                                                              \
      acc[l] += (term);                                                                            \
    }                                                                                              \
  double s = 0;                                                                                    \
  for (int l = 0; l < LANES; l++) s += acc[l];                                                     \
  for (long k = i; k < n; k++) s += (term);                                                        \
  return s;

INLINE double sum_f64(const float *x, long n) { LANE_SUM((double)x[k]) }
INLINE double dot_f64(const float *x, const float *y, long n) { LANE_SUM((double)x[k] * (double)y[k]) }
INLINE double sum_d(const double *x, long n) { LANE_SUM(x[k]) }
INLINE double dot_d(const double *x, const double *y, long n) { LANE_SUM(x[k] * y[k]) }
/* Σ (x − mu)², the variance pass. */
INLINE double sq_dev_f64(const float *x, long n, double mu) { LANE_SUM(((double)x[k] - mu) * ((double)x[k] - mu)) }

/* out[r] = Σ x[r, 0..cols). */
void tlm_sum_rows(const float *x, float *out, long rows, long cols) {
  for (long r = 0; r < rows; r++) out[r] = (float)sum_f64(x + r * cols, cols);
}

/* x viewed as [outer, size, inner]: out[o, c] = Σ_s x[o, s, c], in float64. */
int tlm_sum_middle(const float *x, float *out, long outer, long size, long inner) {
  double *acc = malloc(sizeof(double) * inner);
  if (!acc) return -1;
  for (long o = 0; o < outer; o++) {
    const float *xo = x + o * size * inner;
    for (long c = 0; c < inner; c++) acc[c] = 0;
    for (long s = 0; s < size; s++) {
      const float *row = xo + s * inner;
      for (long c = 0; c < inner; c++) acc[c] += row[c];
    }
    for (long c = 0; c < inner; c++) out[o * inner + c] = (float)acc[c];
  }
  free(acc);
  return 0;
}

/* ---- softmax -------------------------------------------------------------------------------- */

/* The largest element by the reference's `x > max` scan (NaNs skipped); −inf when none. */
INLINE float row_max(const float *x, long n) {
  float m[LANES];
  for (int l = 0; l < LANES; l++) m[l] = -INFINITY;
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
  float max = -INFINITY;
  for (int l = 0; l < LANES; l++) max = m[l] > max ? m[l] : max;
  for (; i < n; i++) max = x[i] > max ? x[i] : max;
  return max;
}

/* o[j] = exp((x[j] − max)·scale). */
INLINE void exp_shifted(const float *x, float *o, long n, float max, float scale) {
  for (long j = 0; j < n; j++) o[j] = exp_f((x[j] - max) * scale);
}

INLINE void scale_row(float *o, long n, float s) {
  for (long j = 0; j < n; j++) o[j] *= s;
}

/* Softmax or log-softmax of each row of a contiguous [rows, cols] block (float64 sums). */
void tlm_softmax(const float *x, float *out, long rows, long cols, int log_) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *o = out + r * cols;
    float max = row_max(xr, cols);
    if (max == -INFINITY) max = 0; /* a row of −inf: avoid −inf − −inf, as the reference does */
    exp_shifted(xr, o, cols, max, 1.0f);
    double sum = sum_f64(o, cols);
    if (log_) {
      /* (x − max) − log Σ: x − max is exact near the max, so small outputs keep their digits. */
      float lse = (float)log(sum);
      for (long j = 0; j < cols; j++) o[j] = (xr[j] - max) - lse;
    } else {
      scale_row(o, cols, (float)(1.0 / sum));
    }
  }
}

/*
 * Softmax of scale·x over each row, row r being query position r mod tq: when causal only columns
 * j ≤ position + causalOffset take part; the rest are written 0 and never exponentiated. The max
 * is of x (scale > 0), the exponentials of (x − max)·scale, the sum in float64. out may equal x.
 */
void tlm_scaled_softmax(const float *x, float *out, long rows, long cols, long tq, float scale, int causal,
                        long causalOffset) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *o = out + r * cols;
    long limit = cols;
    if (causal) {
      long lim = r % tq + causalOffset + 1;
      limit = lim < 0 ? 0 : lim > cols ? cols : lim;
    }
    if (limit > 0) {
      exp_shifted(xr, o, limit, row_max(xr, limit), scale);
      scale_row(o, limit, (float)(1.0 / sum_f64(o, limit)));
    }
    for (long j = limit; j < cols; j++) o[j] = 0;
  }
}

/* dx = y·(g − Σ g·y) for softmax; dx = g − e^y·Σ g for log-softmax (float64, the reference's order). */
void tlm_softmax_backward(const float *y, const float *g, float *out, long rows, long cols, int log_) {
  for (long r = 0; r < rows; r++) {
    const float *yr = y + r * cols, *gr = g + r * cols;
    float *o = out + r * cols;
    if (log_) {
      double dot = sum_f64(gr, cols);
      for (long j = 0; j < cols; j++) o[j] = (float)((double)gr[j] - (double)exp_f(yr[j]) * dot);
    } else {
      double dot = dot_f64(gr, yr, cols);
      for (long j = 0; j < cols; j++) o[j] = (float)((double)yr[j] * ((double)gr[j] - dot));
    }
  }
}

/* ---- LayerNorm / RMSNorm: float64 throughout, the reference's order ---------------------------- */

/* out = ((x − mu)·rs)·w + b over one row (mu = 0 for RMSNorm); w, b may be null. */
INLINE void norm_row_out(const float *x, float *out, long n, double mu, double rs, const float *w, const float *b) {
  if (w && b)
    for (long j = 0; j < n; j++) out[j] = (float)((x[j] - mu) * rs * (double)w[j] + (double)b[j]);
  else if (w)
    for (long j = 0; j < n; j++) out[j] = (float)((x[j] - mu) * rs * (double)w[j]);
  else if (b)
    for (long j = 0; j < n; j++) out[j] = (float)((x[j] - mu) * rs + (double)b[j]);
  else
    for (long j = 0; j < n; j++) out[j] = (float)((x[j] - mu) * rs);
}

/* LayerNorm (center = 1) or RMSNorm (center = 0) of each row; mean is null for RMSNorm. out may equal x. */
void tlm_norm(const float *x, float *out, float *mean, float *rstd, const float *w, const float *b, long rows, long cols,
              double eps, int center) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    double mu = center ? sum_f64(xr, cols) / cols : 0;
    double rs = 1 / sqrt(sq_dev_f64(xr, cols, mu) / cols + eps);
    if (center) mean[r] = (float)mu;
    rstd[r] = (float)rs;
    norm_row_out(xr, out + r * cols, cols, mu, rs, w, b);
  }
}

INLINE void xhat_row(const float *x, double *h, long n, double mu, double rs) {
  for (long j = 0; j < n; j++) h[j] = (x[j] - mu) * rs;
}

INLINE void dxhat_row(const float *g, const float *w, double *d, long n) {
  if (w)
    for (long j = 0; j < n; j++) d[j] = (double)g[j] * (double)w[j];
  else
    for (long j = 0; j < n; j++) d[j] = g[j];
}

INLINE void add_gh(double *acc, const float *g, const double *h, long n) {
  for (long j = 0; j < n; j++) acc[j] += (double)g[j] * h[j];
}

INLINE void add_g(double *acc, const float *g, long n) {
  for (long j = 0; j < n; j++) acc[j] += g[j];
}

INLINE void norm_dx_row(float *o, const double *d, const double *h, long n, double rs, double m1, double m2) {
  for (long j = 0; j < n; j++) o[j] = (float)(rs * ((d[j] - m1) - h[j] * m2));
}

/*
 * The norms' backward: x̂ = (x − mu)·rs, dx̂ = g·w, dx = rs·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
 * (RMSNorm, center = 0, drops the mean(dx̂) term). Per-column sums for dw (Σ g·x̂) and db (Σ g)
 * accumulate in float64 over all rows and are added into dw / db once. dx may equal g.
 */
int tlm_norm_backward(const float *x, const float *g, const float *mean, const float *rstd, const float *w, float *dx,
                      float *dw, float *db, long rows, long cols, int center) {
  double *accW = dw ? calloc(cols, sizeof(double)) : 0;
  double *accB = db ? calloc(cols, sizeof(double)) : 0;
  double *h = malloc(sizeof(double) * cols), *d = malloc(sizeof(double) * cols);
  if ((dw && !accW) || (db && !accB) || !h || !d) {
    free(accW);
    free(accB);
    free(h);
    free(d);
    return -1;
  }
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * cols, *gr = g + r * cols;
    double mu = center ? mean[r] : 0, rs = rstd[r];
    xhat_row(xr, h, cols, mu, rs);
    dxhat_row(gr, w, d, cols);
    double m1 = center ? sum_d(d, cols) / cols : 0, m2 = dot_d(d, h, cols) / cols;
    if (accW) add_gh(accW, gr, h, cols);
    if (accB) add_g(accB, gr, cols);
    norm_dx_row(dx + r * cols, d, h, cols, rs, m1, m2);
  }
  if (accW)
    for (long c = 0; c < cols; c++) dw[c] = (float)((double)dw[c] + accW[c]);
  if (accB)
    for (long c = 0; c < cols; c++) db[c] = (float)((double)db[c] + accB[c]);
  free(accW);
  free(accB);
  free(h);
  free(d);
  return 0;
}

/* ---- Adam / AdamW ---------------------------------------------------------------------------- */

/*
 * One Adam(W) step, float64 in the reference's exact order, rounding to float32 where the
 * reference stores to a Float32Array: bit-identical to it. flags: 1 = decoupled decay,
 * 2 = L2 weight decay, 4 = AMSGrad (vmax not null).
 */
void tlm_adam(float *param, const float *grad, float *m, float *v, float *vmax, long n, int flags, double decay,
              double weightDecay, double oneMinusBeta1, double beta2, double oneMinusBeta2, double bc2Sqrt, double eps,
              double stepSize) {
  int decoupled = flags & 1, l2 = flags & 2;
  if (vmax) {
    for (long i = 0; i < n; i++) {
      double g = grad[i];
      if (decoupled) param[i] = (float)((double)param[i] * decay);
      double p = param[i];
      if (l2) g += weightDecay * p;
      m[i] = (float)((double)m[i] + (g - (double)m[i]) * oneMinusBeta1);
      v[i] = (float)(beta2 * (double)v[i] + oneMinusBeta2 * g * g);
      if (v[i] > vmax[i]) vmax[i] = v[i];
      double denom = sqrt((double)vmax[i]) / bc2Sqrt + eps;
      param[i] = (float)(p - stepSize * (double)m[i] / denom);
    }
    return;
  }
  for (long i = 0; i < n; i++) {
    double g = grad[i];
    float pf = decoupled ? (float)((double)param[i] * decay) : param[i];
    double p = pf;
    if (l2) g += weightDecay * p;
    float mf = (float)((double)m[i] + (g - (double)m[i]) * oneMinusBeta1);
    float vf = (float)(beta2 * (double)v[i] + oneMinusBeta2 * g * g);
    m[i] = mf;
    v[i] = vf;
    double denom = sqrt((double)vf) / bc2Sqrt + eps;
    param[i] = (float)(p - stepSize * (double)mf / denom);
  }
}

/* ---- flash attention (kernels.ts: FlashAttentionArgs) ---------------------------------------- */
/*
 * Blocks of QB query rows against the whole band of keys they see, per head: the products are
 * register tiles over vectors of VL floats (GCC/Clang vector types: one AVX-512 register here, two
 * AVX2 or four NEON registers elsewhere), on operands packed once per kv head with zero padding to
 * whole vectors, so no tile has a tail. Scores are exponentiated and normalised row by row in the
 * block's buffer; nothing of size T×T is stored. Sums of exponentials and Δ are float64; the
 * products accumulate in float32 (the reference's float64 agrees to ~1e-6).
 */

/* The tiles below are meant to fuse a*b + c: contraction on from here to the end of the file; and
 * GCC is kept from turning short row copies into libc calls (memcpy of 32 floats cost 11% here). */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast", "no-tree-loop-distribute-patterns")
#endif

/* Floats per vector: one AVX-512 register; elsewhere two AVX2 (or four NEON) registers' worth. */
#if defined(__AVX512F__)
#define VL 16
#define MR 8
#else
#define VL 8
#define MR 6
#endif
#define QB 8
/* Vectors per chunk of scores, so that a chunk's QB × QV accumulators fill 16 registers. */
#define QV (16 / QB)
typedef float vf __attribute__((vector_size(VL * 4)));

INLINE vf ldv(const float *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
INLINE void stv(float *p, vf v) { memcpy(p, &v, sizeof v); }
INLINE vf splat(float x) { return (vf){0} + x; }
INLINE long pad(long n) { return (n + VL - 1) / VL * VL; }
/* n rounded up to whole GEMM panels of 2·VL columns. */
INLINE long pad2(long n) { return (n + 2 * VL - 1) / (2 * VL) * (2 * VL); }

typedef int32_t vi __attribute__((vector_size(VL * 4)));
INLINE vf vsel(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
INLINE vi vsplati(int32_t x) { return (vi){0} + x; }
INLINE vi iota(void) {
  vi v;
  for (int l = 0; l < VL; l++) v[l] = l;
  return v;
}
INLINE float hmax(vf v) {
  float m = v[0];
  for (int l = 1; l < VL; l++) m = v[l] > m ? v[l] : m;
  return m;
}
/* The sum of a vector's lanes, by halves (a scalar loop over the lanes was the cost of a GEMV). */
typedef float vf4 __attribute__((vector_size(16)));
INLINE float hsum(vf v) {
  vf4 q[VL / 4];
  memcpy(q, &v, sizeof v);
  for (int w = VL / 4; w > 1; w /= 2)
    for (int i = 0; i < w / 2; i++) q[i] += q[i + w / 2];
  return (q[0][0] + q[0][2]) + (q[0][1] + q[0][3]);
}

/* exp_f on a vector (the same Cephes steps; the multiply-adds unfused, like the plain SIMD128 build). */
INLINE vf exp_v(vf x) {
  x = vsel(x < splat(-104.0f), splat(-104.0f), x);
  x = vsel(x > splat(89.0f), splat(89.0f), x);
  vf t = x * 1.44269504088896341f + 12582912.0f;
  vf n = t - 12582912.0f;
  vi ni = (vi)t - 0x4b400000;
  vf r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r;
  p = p + 1.0f;
  vi n1 = ni >> 1, n2 = ni - n1;
  return p * (vf)((n1 + 127) << 23) * (vf)((n2 + 127) << 23);
}

/* Lanes j0 + l that fall in [lo, hi). */
INLINE vi in_band(long j0, long lo, long hi) {
  vi j = iota() + vsplati((int32_t)j0);
  return (j >= vsplati((int32_t)lo)) & (j < vsplati((int32_t)hi));
}

INLINE void key_range(long i, long tk, int causal, long off, long window, long *lo, long *hi) {
  if (!causal) {
    *lo = 0;
    *hi = tk;
    return;
  }
  long h = i + off + 1;
  h = h < 0 ? 0 : h > tk ? tk : h;
  long l = 0;
  if (window > 0) {
    l = i + off - window + 1;
    l = l < 0 ? 0 : l > h ? h : l;
  }
  *lo = l;
  *hi = h;
}

/* dst[c, j] = src[j, c] for src [rows, cols] into dst [cols, ldd] (columns j ≥ rows stay as they are). */
static void pack_transposed(const float *src, float *dst, long rows, long cols, long ldd) {
  for (long j = 0; j < rows; j++)
    for (long c = 0; c < cols; c++) dst[c * ldd + j] = src[j * cols + c];
}

/* dst [rows, ldd] = src [rows, cols], the padding columns zero. */
static void pack_rows(const float *src, float *dst, long rows, long cols, long ldd) {
  for (long j = 0; j < rows; j++) {
    for (long c = 0; c < cols; c++) dst[j * ldd + c] = src[j * cols + c];
    for (long c = cols; c < ldd; c++) dst[j * ldd + c] = 0;
  }
}

/*
 * s[r, j] = Σ_c x[r, c]·mt[c, j] for QB rows of x ([QB, ldx]) and the columns [j0, j1) of mt
 * ([depth, ldm]), j0 a multiple of VL and j1 ≤ ldm; s is [QB, lds].
 */
static void tile_rows_times(const float *x, long ldx, const float *mt, long ldm, long depth, float *s, long lds, long j0,
                            long j1) {
  long j = j0;
  for (; j + QV * VL <= j1; j += QV * VL) {
    vf a[QB][QV];
    for (int r = 0; r < QB; r++)
      for (int v = 0; v < QV; v++) a[r][v] = (vf){0};
    for (long c = 0; c < depth; c++) {
      const float *m = mt + c * ldm + j;
      vf mv[QV];
      for (int v = 0; v < QV; v++) mv[v] = ldv(m + v * VL);
      for (int r = 0; r < QB; r++) {
        vf xb = splat(x[r * ldx + c]);
        for (int v = 0; v < QV; v++) a[r][v] += xb * mv[v];
      }
    }
    for (int r = 0; r < QB; r++)
      for (int v = 0; v < QV; v++) stv(s + r * lds + j + v * VL, a[r][v]);
  }
  for (; j < j1; j += VL) {
    vf a[QB];
    for (int r = 0; r < QB; r++) a[r] = (vf){0};
    for (long c = 0; c < depth; c++) {
      vf m0 = ldv(mt + c * ldm + j);
      for (int r = 0; r < QB; r++) a[r] += splat(x[r * ldx + c]) * m0;
    }
    for (int r = 0; r < QB; r++) stv(s + r * lds + j, a[r]);
  }
}

/* out[r, :] = Σ_j w[r, j]·m[j, :] over j in [j0, j1): w [QB, ldw], m [.., ldm] with ldm = width (a multiple of VL). */
static void tile_weights_times(const float *w, long ldw, const float *m, long width, long j0, long j1, float *out,
                               long ldo) {
  for (long c = 0; c < width; c += 2 * VL) {
    int two = c + 2 * VL <= width;
    vf a[QB][2] = {{0}};
    for (long j = j0; j < j1; j++) {
      const float *mj = m + j * width + c;
      vf m0 = ldv(mj), m1 = two ? ldv(mj + VL) : (vf){0};
      for (int r = 0; r < QB; r++) {
        vf wb = splat(w[r * ldw + j]);
        a[r][0] += wb * m0;
        a[r][1] += wb * m1;
      }
    }
    for (int r = 0; r < QB; r++) {
      stv(out + r * ldo + c, a[r][0]);
      if (two) stv(out + r * ldo + c + VL, a[r][1]);
    }
  }
}

/* acc[j, :] += Σ_r w[r, j]·x[r, :] for j in [j0, j1): the transposed product, rows of acc [.., width]. */
static void tile_add_transposed(float *acc, long width, const float *w, long ldw, const float *x, long ldx, long j0,
                                long j1) {
  for (long j = j0; j < j1; j++) {
    float *aj = acc + j * width;
    vf b[QB];
    int any = 0;
    for (int r = 0; r < QB; r++) {
      float wr = w[r * ldw + j];
      any |= wr != 0;
      b[r] = splat(wr);
    }
    if (!any) continue;
    for (long c = 0; c < width; c += VL) {
      vf t = ldv(aj + c);
      for (int r = 0; r < QB; r++) t += b[r] * ldv(x + r * ldx + c);
      stv(aj + c, t);
    }
  }
}

/* The QB rows [i0, i0 + QB) of a head's [t, width] matrix into a zero-padded [QB, ld] block. */
/* dst[0..n) = src[0..n): whole vectors, then the rest (rows of a head dim: a libc call costs more). */
INLINE void copy_row(float *dst, const float *src, long n) {
  long c = 0;
  for (; c + VL <= n; c += VL) stv(dst + c, ldv(src + c));
  for (; c < n; c++) dst[c] = src[c];
}

static void load_block(const float *src, long t, long width, long i0, float *dst, long ld) {
  for (int r = 0; r < QB; r++) {
    long i = i0 + r;
    long n = i < t ? width : 0;
    float *d = dst + r * ld;
    copy_row(d, src + i * width, n);
    for (long c = n; c < ld; c++) d[c] = 0;
  }
}

/* The key band [lo, hi) of the block's rows, widened to whole vectors at the bottom. */
INLINE void block_band(long i0, long tq, long tk, int causal, long off, long window, long *blo, long *bhi) {
  long lo, hi, lo2, hi2;
  key_range(i0, tk, causal, off, window, &lo, &hi);
  long last = i0 + QB - 1 < tq ? i0 + QB - 1 : tq - 1;
  key_range(last, tk, causal, off, window, &lo2, &hi2);
  *blo = lo / VL * VL;
  *bhi = hi2 > hi ? hi2 : hi;
}

int tlm_flash_forward(const float *q, const float *k, const float *v, float *out, float *lse, long heads, long group,
                       long tq, long tk, long d, long dv, float scale, int causal, long off, long window) {
  long tkp = pad(tk), dp = pad(d), dvp = pad(dv);
  float *kt = calloc(dp * tkp, sizeof(float)), *vp = calloc(tkp * dvp, sizeof(float));
  float *qb = malloc(sizeof(float) * QB * dp), *s = malloc(sizeof(float) * QB * tkp), *ob = malloc(sizeof(float) * QB * dvp);
  if (!kt || !vp || !qb || !s || !ob) {
    free(kt);
    free(vp);
    free(qb);
    free(s);
    free(ob);
    return -1;
  }
  long kvLoaded = -1;
  for (long n = 0; n < heads; n++) {
    long kvh = n / group;
    if (kvh != kvLoaded) {
      pack_transposed(k + kvh * tk * d, kt, tk, d, tkp);
      pack_rows(v + kvh * tk * dv, vp, tk, dv, dvp);
      kvLoaded = kvh;
    }
    for (long i0 = 0; i0 < tq; i0 += QB) {
      long blo, bhi;
      block_band(i0, tq, tk, causal, off, window, &blo, &bhi);
      load_block(q + n * tq * d, tq, d, i0, qb, dp);
      if (bhi > blo) tile_rows_times(qb, dp, kt, tkp, d, s, tkp, blo, pad(bhi) < tkp ? pad(bhi) : tkp);

      long bpad = pad(bhi) < tkp ? pad(bhi) : tkp;
      for (int r = 0; r < QB && i0 + r < tq; r++) {
        long row = n * tq + i0 + r, lo, hi;
        key_range(i0 + r, tk, causal, off, window, &lo, &hi);
        float *sr = s + r * tkp;
        if (lo >= hi) {
          for (long j = blo; j < bpad; j++) sr[j] = 0;
          lse[row] = -INFINITY;
          continue;
        }
        /* The band's whole vectors: lanes outside the row's keys are −inf for the max and 0 after. */
        vf vmax = splat(-INFINITY);
        for (long j = blo; j < bpad; j += VL) {
          vf x = vsel(in_band(j, lo, hi), ldv(sr + j) * scale, splat(-INFINITY));
          stv(sr + j, x);
          vmax = vsel(x > vmax, x, vmax);
        }
        float max = hmax(vmax);
        vf vsum = {0};
        for (long j = blo; j < bpad; j += VL) {
          vf e = vsel(in_band(j, lo, hi), exp_v(ldv(sr + j) - max), (vf){0});
          stv(sr + j, e);
          vsum += e;
        }
        float sum = hsum(vsum);
        vf inv = splat(1.0f / sum);
        for (long j = blo; j < bpad; j += VL) stv(sr + j, ldv(sr + j) * inv);
        lse[row] = max + logf(sum);
      }
      if (bhi > blo) tile_weights_times(s, tkp, vp, dvp, blo, bhi, ob, dvp);
      else
        for (long x = 0; x < QB * dvp; x++) ob[x] = 0;
      for (int r = 0; r < QB && i0 + r < tq; r++) copy_row(out + (n * tq + i0 + r) * dv, ob + r * dvp, dv);
    }
  }
  free(kt);
  free(vp);
  free(qb);
  free(s);
  free(ob);
  return 0;
}

int tlm_flash_backward(const float *q, const float *k, const float *v, const float *out, const float *lse,
                        const float *dOut, float *dq, float *dk, float *dv, long heads, long group, long tq, long tk,
                        long d, long dw, float scale, int causal, long off, long window) {
  long tkp = pad(tk), dp = pad(d), dwp = pad(dw);
  float *kt = calloc(dp * tkp, sizeof(float)), *vt = calloc(dwp * tkp, sizeof(float)), *kp = calloc(tkp * dp, sizeof(float));
  float *dka = malloc(sizeof(float) * tkp * dp), *dva = malloc(sizeof(float) * tkp * dwp);
  float *qb = malloc(sizeof(float) * QB * dp), *gb = malloc(sizeof(float) * QB * dwp), *ob = malloc(sizeof(float) * QB * dwp);
  float *p = malloc(sizeof(float) * QB * tkp), *ds = malloc(sizeof(float) * QB * tkp), *dqb = malloc(sizeof(float) * QB * dp);
  if (!kt || !vt || !kp || !dka || !dva || !qb || !gb || !ob || !p || !ds || !dqb) {
    float *all[] = {kt, vt, kp, dka, dva, qb, gb, ob, p, ds, dqb};
    for (int i = 0; i < 11; i++) free(all[i]);
    return -1;
  }
  for (long kvh = 0; kvh < heads / group; kvh++) {
    pack_transposed(k + kvh * tk * d, kt, tk, d, tkp);
    pack_transposed(v + kvh * tk * dw, vt, tk, dw, tkp);
    pack_rows(k + kvh * tk * d, kp, tk, d, dp);
    memset(dka, 0, sizeof(float) * tkp * dp);
    memset(dva, 0, sizeof(float) * tkp * dwp);
    for (long n = kvh * group; n < (kvh + 1) * group; n++) {
      for (long i0 = 0; i0 < tq; i0 += QB) {
        long blo, bhi;
        block_band(i0, tq, tk, causal, off, window, &blo, &bhi);
        load_block(q + n * tq * d, tq, d, i0, qb, dp);
        load_block(dOut + n * tq * dw, tq, dw, i0, gb, dwp);
        load_block(out + n * tq * dw, tq, dw, i0, ob, dwp);
        long bpad = pad(bhi) < tkp ? pad(bhi) : tkp;
        if (bhi > blo) {
          tile_rows_times(qb, dp, kt, tkp, d, p, tkp, blo, bpad);
          tile_rows_times(gb, dwp, vt, tkp, dw, ds, tkp, blo, bpad);
        }
        for (int r = 0; r < QB; r++) {
          long i = i0 + r, lo = 0, hi = 0;
          float *pr = p + r * tkp, *dr = ds + r * tkp;
          if (i < tq) key_range(i, tk, causal, off, window, &lo, &hi);
          float L = i < tq ? lse[n * tq + i] : -INFINITY;
          if (L == -INFINITY) lo = hi = 0;
          /* Δ_i = Σ_c dO_ic·O_ic */
          float delta = (float)dot_f64(gb + r * dwp, ob + r * dwp, dw);
          for (long j = blo; j < bpad; j += VL) {
            vi in = in_band(j, lo, hi);
            vf pj = vsel(in, exp_v(ldv(pr + j) * scale - L), (vf){0});
            stv(pr + j, pj);
            stv(dr + j, pj * (ldv(dr + j) - delta) * scale);
          }
        }
        if (bhi > blo) {
          tile_weights_times(ds, tkp, kp, dp, blo, bhi, dqb, dp);
          tile_add_transposed(dka, dp, ds, tkp, qb, dp, blo, bhi);
          tile_add_transposed(dva, dwp, p, tkp, gb, dwp, blo, bhi);
        } else {
          for (long x = 0; x < QB * dp; x++) dqb[x] = 0;
        }
        for (int r = 0; r < QB && i0 + r < tq; r++) copy_row(dq + (n * tq + i0 + r) * d, dqb + r * dp, d);
      }
    }
    for (long j = 0; j < tk; j++) {
      memcpy(dk + (kvh * tk + j) * d, dka + j * dp, sizeof(float) * d);
      memcpy(dv + (kvh * tk + j) * dw, dva + j * dwp, sizeof(float) * dw);
    }
  }
  free(kt);
  free(vt);
  free(kp);
  free(dka);
  free(dva);
  free(qb);
  free(gb);
  free(ob);
  free(p);
  free(ds);
  free(dqb);
  return 0;
}

/* ---- GEMM (kernels.ts: GemmArgs) ------------------------------------------------------------- */
/*
 * C = alpha·op(A)·op(B) + beta·C, row-major, batched, in the usual three levels of blocking (as
 * BLIS and OpenBLAS do it): a KC × NC block of op(B) is packed into panels of NR columns, an
 * MC × KC block of op(A) into panels of MR rows (the transposes are absorbed by the packing), and
 * an MR × NR register tile runs over KC. Padding rows and columns of the panels are zero, so the
 * tile has no tails; only the edge tiles of C go through a small buffer. beta applies with the
 * first KC block (C is not read when beta = 0, as CBLAS promises: outputs may be uninitialised).
 */

#define NR (2 * VL)
#define KC 512
#define MC 96
#define NC 512

static void pack_b(int transB, const float *b, long ldb, long k0, long kc, long j0, long nc, float *dst) {
  for (long jp = 0; jp < nc; jp += NR) {
    long w = nc - jp < NR ? nc - jp : NR;
    float *d = dst + jp * kc;
    for (long k = 0; k < kc; k++) {
      float *dk = d + k * NR;
      if (transB)
        for (long c = 0; c < w; c++) dk[c] = b[(j0 + jp + c) * ldb + k0 + k];
      else
        for (long c = 0; c < w; c++) dk[c] = b[(k0 + k) * ldb + j0 + jp + c];
      for (long c = w; c < NR; c++) dk[c] = 0;
    }
  }
}

static void pack_a(int transA, const float *a, long lda, long i0, long mc, long k0, long kc, float *dst) {
  for (long ip = 0; ip < mc; ip += MR) {
    long h = mc - ip < MR ? mc - ip : MR;
    float *d = dst + ip * kc;
    if (transA) {
      for (long k = 0; k < kc; k++) {
        const float *src = a + (k0 + k) * lda + i0 + ip;
        for (long r = 0; r < h; r++) d[k * MR + r] = src[r];
        for (long r = h; r < MR; r++) d[k * MR + r] = 0;
      }
    } else {
      for (long r = 0; r < h; r++) {
        const float *src = a + (i0 + ip + r) * lda + k0;
        for (long k = 0; k < kc; k++) d[k * MR + r] = src[k];
      }
      for (long r = h; r < MR; r++)
        for (long k = 0; k < kc; k++) d[k * MR + r] = 0;
    }
  }
}

/*
 * One MR × NR tile of C (h × w of it real): A's MR values of each k are read where they lie (row r
 * at ar + r·rs + k·ks: rs = lda, ks = 1 untransposed; rs = 1, ks = lda transposed), B from its panel [kc][NR].
 */
static void gemm_tile(long kc, const float *ar, long rs, long ks, const float *bp, float *c, long ldc, long h, long w,
                      float alpha, float beta) {
  vf acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = (vf){0};
  for (long k = 0; k < kc; k++) {
    vf b0 = ldv(bp + k * NR), b1 = ldv(bp + k * NR + VL);
    const float *ak = ar + k * ks;
    for (int r = 0; r < MR; r++) {
      vf x = splat(ak[r * rs]);
      acc[r][0] += x * b0;
      acc[r][1] += x * b1;
    }
  }
  if (h == MR && w == NR) {
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      vf c0 = acc[r][0] * alpha, c1 = acc[r][1] * alpha;
      if (beta != 0) {
        c0 += ldv(cr) * beta;
        c1 += ldv(cr + VL) * beta;
      }
      stv(cr, c0);
      stv(cr + VL, c1);
    }
    return;
  }
  float tile[MR][NR];
  for (int r = 0; r < MR; r++) {
    stv(tile[r], acc[r][0]);
    stv(tile[r] + VL, acc[r][1]);
  }
  for (long r = 0; r < h; r++)
    for (long j = 0; j < w; j++) c[r * ldc + j] = beta != 0 ? alpha * tile[r][j] + beta * c[r * ldc + j] : alpha * tile[r][j];
}

/* The tile's width in columns: the loader sends products whose n would leave most of a panel empty elsewhere. */
int tlm_gemm_panel(void) { return NR; }

int tlm_gemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda, long strideA,
              const float *b, long ldb, long strideB, float beta, float *c, long ldc, long strideC, long batch) {
  long kcMax = k < KC ? k : KC, ncMax = n < NC ? n : NC;
  float *bp = malloc(sizeof(float) * kcMax * pad2(ncMax)), *edge = malloc(sizeof(float) * kcMax * MR);
  if (!bp || !edge) {
    free(bp);
    free(edge);
    return -1;
  }
  long rs = transA ? 1 : lda, ks = transA ? lda : 1;
  for (long t = 0; t < batch; t++) {
    const float *A = a + t * strideA, *B = b + t * strideB;
    float *C = c + t * strideC;
    for (long jc = 0; jc < n; jc += NC) {
      long nc = n - jc < NC ? n - jc : NC;
      for (long pc = 0; pc < k; pc += KC) {
        long kc = k - pc < KC ? k - pc : KC;
        float be = pc == 0 ? beta : 1.0f;
        pack_b(transB, B, ldb, pc, kc, jc, nc, bp);
        for (long ic = 0; ic < m; ic += MC) {
          long mc = m - ic < MC ? m - ic : MC;
          for (long ir = 0; ir < mc; ir += MR) {
            long i = ic + ir, h = mc - ir < MR ? mc - ir : MR;
            const float *ar = A + i * rs + pc * ks;
            long ers = rs, eks = ks;
            if (h < MR) {
              /* the last rows: copied into a zero-padded [kc][MR] block so the tile reads no further */
              pack_a(transA, A, lda, i, h, pc, kc, edge);
              ar = edge, ers = 1, eks = MR;
            }
            /* the MR rows of A (kc long) stay in L1 while B's panels go by */
            for (long jr = 0; jr < nc; jr += NR)
              gemm_tile(kc, ar, ers, eks, bp + jr * kc, C + i * ldc + jc + jr, ldc, h, nc - jr < NR ? nc - jr : NR, alpha, be);
          }
        }
      }
    }
  }
  free(bp);
  free(edge);
  return 0;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/*
 * One token's attention over a KV cache (kernels.ts: DecodeAttentionArgs): for each head, the
 * scores q·k_j·scale of the first n cached positions, their softmax, and Σ_j p_j·v_j — read from
 * the cache where it lies. scores has room for n floats.
 */
void tlm_decode_attention(const float *q, const float *kc, const float *vc, long slots, long n, long heads, long kvHeads,
                          long dim, float scale, float *out, float *scores) {
  long g = heads / kvHeads;
  for (long h = 0; h < heads; h++) {
    const float *qh = q + h * dim;
    const float *kh = kc + (h / g) * slots * dim, *vh = vc + (h / g) * slots * dim;
    float max = -INFINITY;
    for (long j = 0; j < n; j++) {
      const float *kj = kh + j * dim;
      vf s = {0};
      long i = 0;
      for (; i + VL <= dim; i += VL) s += ldv(qh + i) * ldv(kj + i);
      float d = hsum(s);
      for (; i < dim; i++) d += qh[i] * kj[i];
      d *= scale;
      scores[j] = d;
      max = d > max ? d : max;
    }
    float sum = 0;
    for (long j = 0; j < n; j++) {
      float e = exp_f(scores[j] - max);
      scores[j] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
    float *oh = out + h * dim;
    for (long i = 0; i < dim; i++) oh[i] = 0;
    for (long j = 0; j < n; j++) {
      float w = scores[j];
      const float *vj = vh + j * dim;
      long i = 0;
      for (; i + VL <= dim; i += VL) stv(oh + i, ldv(oh + i) + w * ldv(vj + i));
      for (; i < dim; i++) oh[i] += w * vj[i];
    }
    for (long i = 0; i < dim; i++) oh[i] *= inv;
  }
}
