/*
 * TensorLM's native kernels: compiled on first use by the C compiler of the machine
 * (src/backends/native/index.ts, `cc -O3 -march=native`), loaded through koffi, and called on the
 * tensors' own Float32Arrays — no copies in or out, unlike the WebAssembly kernels, and the full
 * vector width of the CPU (AVX2 / AVX-512 / NEON) instead of WebAssembly's 128 bits.
 *
 * Plain C that the compiler vectorizes: branch-free loop bodies, explicit float64 lane arrays for
 * sums (a compiler may not reorder a float reduction by itself). The arithmetic follows the
 * WebAssembly kernels (src/backends/wasm/kernels.c) formula for formula — the same exp and erf
 * polynomials, float64 sums, the reference's float64 order in Adam and the norms — so both pass
 * the same tests against the reference kernels. Built with -ffp-contract=off: no silent a*b+c
 * fusion; fmaf() is written where a fused multiply-add is meant.
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

/* ---- reductions: sums in float64 lanes ----------------------------------------------------- */
/*
 * Each helper loop below does one thing, which is what the compiler vectorizes reliably; rows of
 * attention and norm widths stay in L1 between the passes.
 */

INLINE double sum_f64(const float *x, long n) {
  double acc[LANES] = {0};
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < n; i++) s += x[i];
  return s;
}

INLINE double dot_f64(const float *x, const float *y, long n) {
  double acc[LANES] = {0};
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += (double)x[i + l] * (double)y[i + l];
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < n; i++) s += (double)x[i] * (double)y[i];
  return s;
}

INLINE double sum_d(const double *x, long n) {
  double acc[LANES] = {0};
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < n; i++) s += x[i];
  return s;
}

INLINE double dot_d(const double *x, const double *y, long n) {
  double acc[LANES] = {0};
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += x[i + l] * y[i + l];
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

/* out[r] = Σ x[r, 0..cols). */
void tlm_sum_rows(const float *x, float *out, long rows, long cols) {
  for (long r = 0; r < rows; r++) out[r] = (float)sum_f64(x + r * cols, cols);
}

/* x viewed as [outer, size, inner]: out[o, c] = Σ_s x[o, s, c], in float64. */
void tlm_sum_middle(const float *x, float *out, long outer, long size, long inner) {
  double *acc = malloc(sizeof(double) * inner);
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

INLINE double sq_dev_f64(const float *x, long n, double mu) {
  double acc[LANES] = {0};
  long i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int l = 0; l < LANES; l++) {
      double d = x[i + l] - mu;
      acc[l] += d * d;
    }
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; i < n; i++) {
    double d = x[i] - mu;
    s += d * d;
  }
  return s;
}

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
void tlm_norm_backward(const float *x, const float *g, const float *mean, const float *rstd, const float *w, float *dx,
                       float *dw, float *db, long rows, long cols, int center) {
  double *accW = dw ? calloc(cols, sizeof(double)) : 0;
  double *accB = db ? calloc(cols, sizeof(double)) : 0;
  double *h = malloc(sizeof(double) * cols), *d = malloc(sizeof(double) * cols);
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
 * Row by row over each head with the whole band of visible keys at once: the scores of a query
 * row are axpy passes over kᵀ (transposed once per kv head), so every inner loop runs along keys
 * or along the head dim, contiguous and vectorized. Softmax sums and the backward's Δ are float64;
 * dot products and the dk / dv sums are float32 (the reference's float64 agrees to ~1e-6).
 */

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

/* dst[c, j] = src[j, c] for a [rows, cols] block. */
static void transpose(const float *src, float *dst, long rows, long cols) {
  for (long j = 0; j < rows; j++)
    for (long c = 0; c < cols; c++) dst[c * rows + j] = src[j * cols + c];
}

/* s[j] = Σ_c x[c]·mt[c, j] for j in [lo, hi): mt is [d, tk]. */
INLINE void row_times(const float *x, const float *mt, float *s, long d, long tk, long lo, long hi) {
  for (long j = lo; j < hi; j++) s[j] = 0;
  for (long c = 0; c < d; c++) {
    float xc = x[c];
    const float *row = mt + c * tk;
    for (long j = lo; j < hi; j++) s[j] += xc * row[j];
  }
}

/* acc[c] += w·row[c] */
INLINE void axpy(float *acc, float w, const float *row, long n) {
  for (long c = 0; c < n; c++) acc[c] += w * row[c];
}

void tlm_flash_forward(const float *q, const float *k, const float *v, float *out, float *lse, long heads, long group,
                       long tq, long tk, long d, long dv, float scale, int causal, long off, long window) {
  float *kt = malloc(sizeof(float) * d * tk), *s = malloc(sizeof(float) * tk), *acc = malloc(sizeof(float) * dv);
  long kvLoaded = -1;
  for (long n = 0; n < heads; n++) {
    long kvh = n / group;
    const float *vh = v + kvh * tk * dv;
    if (kvh != kvLoaded) {
      transpose(k + kvh * tk * d, kt, tk, d);
      kvLoaded = kvh;
    }
    for (long i = 0; i < tq; i++) {
      long row = n * tq + i, lo, hi;
      key_range(i, tk, causal, off, window, &lo, &hi);
      float *o = out + row * dv;
      if (lo >= hi) {
        for (long c = 0; c < dv; c++) o[c] = 0;
        lse[row] = -INFINITY;
        continue;
      }
      row_times(q + row * d, kt, s, d, tk, lo, hi);
      for (long j = lo; j < hi; j++) s[j] *= scale;
      float max = row_max(s + lo, hi - lo);
      exp_shifted(s + lo, s + lo, hi - lo, max, 1.0f);
      double sum = sum_f64(s + lo, hi - lo);
      for (long c = 0; c < dv; c++) acc[c] = 0;
      for (long j = lo; j < hi; j++) axpy(acc, s[j], vh + j * dv, dv);
      float inv = (float)(1.0 / sum);
      for (long c = 0; c < dv; c++) o[c] = acc[c] * inv;
      lse[row] = (float)((double)max + log(sum));
    }
  }
  free(kt);
  free(s);
  free(acc);
}

void tlm_flash_backward(const float *q, const float *k, const float *v, const float *out, const float *lse,
                        const float *dOut, float *dq, float *dk, float *dv, long heads, long group, long tq, long tk,
                        long d, long dw, float scale, int causal, long off, long window) {
  long kvHeads = heads / group;
  float *kt = malloc(sizeof(float) * d * tk), *vt = malloc(sizeof(float) * dw * tk);
  float *p = malloc(sizeof(float) * tk), *ds = malloc(sizeof(float) * tk);
  for (long x = 0; x < kvHeads * tk * d; x++) dk[x] = 0;
  for (long x = 0; x < kvHeads * tk * dw; x++) dv[x] = 0;
  long kvLoaded = -1;
  for (long n = 0; n < heads; n++) {
    long kvh = n / group;
    const float *kh = k + kvh * tk * d, *vh = v + kvh * tk * dw;
    float *dkh = dk + kvh * tk * d, *dvh = dv + kvh * tk * dw;
    if (kvh != kvLoaded) {
      transpose(kh, kt, tk, d);
      transpose(vh, vt, tk, dw);
      kvLoaded = kvh;
    }
    for (long i = 0; i < tq; i++) {
      long row = n * tq + i, lo, hi;
      key_range(i, tk, causal, off, window, &lo, &hi);
      const float *qi = q + row * d, *gi = dOut + row * dw;
      float *dqi = dq + row * d;
      for (long c = 0; c < d; c++) dqi[c] = 0;
      float L = lse[row];
      if (lo >= hi || L == -INFINITY) continue;
      /* Δ_i = Σ_c dO_ic·O_ic */
      float delta = (float)dot_f64(gi, out + row * dw, dw);
      row_times(qi, kt, p, d, tk, lo, hi);
      row_times(gi, vt, ds, dw, tk, lo, hi);
      for (long j = lo; j < hi; j++) p[j] = exp_f(p[j] * scale - L);
      for (long j = lo; j < hi; j++) ds[j] = p[j] * (ds[j] - delta) * scale;
      for (long j = lo; j < hi; j++) {
        axpy(dqi, ds[j], kh + j * d, d);
        axpy(dkh + j * d, ds[j], qi, d);
        axpy(dvh + j * dw, p[j], gi, dw);
      }
    }
  }
  free(kt);
  free(vt);
  free(p);
  free(ds);
}
