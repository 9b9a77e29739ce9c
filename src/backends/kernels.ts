/**
 * The kernel interface: every numeric loop in TensorLM runs through one of these functions.
 *
 * Kernels are plain functions over typed arrays with explicit sizes, offsets and strides; they
 * know nothing of tensors or autograd. A backend implements any subset (see `registry.ts`):
 * what it leaves out falls back to the plain-JS reference kernels, which stay the oracle in tests.
 */
import type { TypedArray } from '../tensor/dtype.js';

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'abs'
  | 'sign'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'square'
  | 'sin'
  | 'cos'
  | 'gelu'
  | 'geluTanh'
  | 'silu'
  | 'logicalNot';

export type BinaryOp =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  | 'eq'
  | 'ne'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge'
  | 'logicalAnd'
  | 'logicalOr'
  // d/dx of activations, given (x, upstream gradient): kept as kernels so backward is one pass.
  | 'reluBackward'
  | 'geluBackward'
  | 'geluTanhBackward'
  | 'siluBackward';

export type ReduceOp = 'sum' | 'max' | 'min' | 'prod';
export type ArgReduceOp = 'argmax' | 'argmin';

/** A strided read of `shape` elements starting at `offset`. Zero strides broadcast. */
export interface StridedArray {
  data: TypedArray;
  offset: number;
  strides: readonly number[];
}

/**
 * Row-major batched GEMM, the CBLAS `sgemm` contract plus a batch loop:
 * C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], where op(X) is X or Xᵀ,
 * A[b] starts at aOffset + b·strideA (and likewise B, C). A stride of 0 reuses one matrix.
 */
export interface GemmArgs {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  a: Float32Array;
  aOffset: number;
  lda: number;
  strideA: number;
  b: Float32Array;
  bOffset: number;
  ldb: number;
  strideB: number;
  beta: number;
  c: Float32Array;
  cOffset: number;
  ldc: number;
  strideC: number;
  batch: number;
}

export interface AdamStepArgs {
  param: Float32Array;
  grad: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Running max of expAvgSq when AMSGrad is on, else null. */
  maxExpAvgSq: Float32Array | null;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty added to the gradient (Adam) — 0 when decoupled. */
  weightDecay: number;
  /** Decoupled decay (AdamW): param *= 1 - lr·decoupledWeightDecay before the update. */
  decoupledWeightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
}

export interface SgdStepArgs {
  param: Float32Array;
  grad: Float32Array;
  /** Momentum buffer, or null without momentum. `firstStep` initialises it to the gradient. */
  momentumBuffer: Float32Array | null;
  firstStep: boolean;
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

/** What both reductions read: contiguous x from xOffset viewed as [outer, size, inner], reduced over the middle. */
export interface ReduceInput {
  x: TypedArray;
  xOffset: number;
  outer: number;
  size: number;
  inner: number;
}

/** `reduce`: out has outer·inner elements. */
export interface ReduceArgs extends ReduceInput {
  op: ReduceOp;
  out: TypedArray;
}

/** `argReduce`: reduced to indices (and values). */
export interface ArgReduceArgs extends ReduceInput {
  op: ArgReduceOp;
  /** outer·inner indices along the middle axis. */
  indices: Int32Array;
  /** The max/min values themselves, or null when only the indices are wanted. */
  values: TypedArray | null;
}

/** What the index kernels share: [outer, ·, inner] blocks whose middle axis is indexed, indexSize entries of it. */
export interface IndexLayout {
  /** gather/scatterAdd: [outer, indexSize, inner] (one index per element); indexSelect/indexAdd: [indexSize]. */
  index: Int32Array;
  outer: number;
  indexSize: number;
  inner: number;
}

/** `gather`, `indexSelect`: contiguous x [outer, xSize, inner] read into out [outer, indexSize, inner]. */
export interface GatherArgs extends IndexLayout {
  x: TypedArray;
  xSize: number;
  out: TypedArray;
}

/** `scatterAdd`, `indexAdd` (the adjoints): src [outer, indexSize, inner] added into out [outer, outSize, inner]. */
export interface ScatterAddArgs extends IndexLayout {
  src: Float32Array;
  out: Float32Array;
  outSize: number;
}

/** `softmax`: a contiguous [rows, cols] block of x from xOffset; out is written from 0. */
export interface SoftmaxArgs {
  x: Float32Array;
  xOffset: number;
  rows: number;
  cols: number;
  out: Float32Array;
  /** Log-softmax instead. */
  log: boolean;
}

/** `softmaxBackward`: the forward's output y and the upstream gradient g, both contiguous [rows, cols]. */
export interface SoftmaxBackwardArgs {
  y: Float32Array;
  g: Float32Array;
  rows: number;
  cols: number;
  out: Float32Array;
  /** y is a log-softmax. */
  log: boolean;
}

/** `geluWithDerivative`: n contiguous elements of x from xOffset; out and deriv are written from 0. */
export interface GeluWithDerivativeArgs {
  x: Float32Array;
  xOffset: number;
  n: number;
  out: Float32Array;
  deriv: Float32Array;
}

/** `scaledSoftmax`: a contiguous [rows, cols] block of x from xOffset; out is written from 0. */
export interface ScaledSoftmaxArgs {
  x: Float32Array;
  xOffset: number;
  rows: number;
  cols: number;
  /** Query positions per block of rows: row r is query position r mod tq. */
  tq: number;
  scale: number;
  causal: boolean;
  /** With causal, row r keeps columns j ≤ (r mod tq) + causalOffset. */
  causalOffset: number;
  out: Float32Array;
}

/** What every LayerNorm/RMSNorm kernel reads: a contiguous [rows, cols] block and an optional per-column weight. */
export interface NormInput {
  x: Float32Array;
  rows: number;
  cols: number;
  weight: Float32Array | null;
}

export interface LayerNormArgs extends NormInput {
  bias: Float32Array | null;
  eps: number;
  out: Float32Array;
  /** Per-row statistics written for the backward pass. */
  mean: Float32Array;
  rstd: Float32Array;
}

export interface LayerNormBackwardArgs extends NormInput {
  /** The upstream gradient, [rows, cols]. */
  g: Float32Array;
  /** The forward's per-row statistics. */
  mean: Float32Array;
  rstd: Float32Array;
  dx: Float32Array;
  /** Per-column sums are added into these (not overwritten), when given. */
  dWeight: Float32Array | null;
  dBias: Float32Array | null;
}

export interface RmsNormArgs extends NormInput {
  eps: number;
  out: Float32Array;
  rstd: Float32Array;
}

export interface RmsNormBackwardArgs extends NormInput {
  g: Float32Array;
  rstd: Float32Array;
  dx: Float32Array;
  /** Per-column sums are added into it (not overwritten), when given. */
  dWeight: Float32Array | null;
}

/** What both cross-entropy kernels read: contiguous logits [rows, classes] and one int target per row. */
export interface CrossEntropyInput {
  logits: Float32Array;
  targets: Int32Array;
  rows: number;
  classes: number;
  /** Rows whose target equals this get loss 0 and a zero gradient. */
  ignoreIndex: number;
  labelSmoothing: number;
}

export interface CrossEntropyArgs extends CrossEntropyInput {
  losses: Float32Array;
  /** Each row's max and log Σ exp(x − max), written for the backward pass. */
  rowMax: Float32Array;
  rowLogSum: Float32Array;
}

export interface CrossEntropyBackwardArgs extends CrossEntropyInput {
  /** The forward's per-row statistics. */
  rowMax: Float32Array;
  rowLogSum: Float32Array;
  /** The upstream gradient of each row's loss (e.g. 1/count for a mean). */
  rowScale: Float32Array;
  dlogits: Float32Array;
}

/** Which recurrence a cell kernel computes (torch's gate order: LSTM i, f, g, o; GRU r, z, n). */
export type RecurrentCellMode = 'rnnTanh' | 'rnnRelu' | 'lstm' | 'gru';

/**
 * `recurrentCell`: one time step of B sequences from the two gate projections, G = gates·H wide
 * (1 for RNN, 4 for LSTM, 3 for GRU):
 *   RNN   h' = act(gi + gh)
 *   LSTM  i, f, g, o = σ, σ, tanh, σ of the four H-blocks of gi + gh;  c' = f·c + i·g;  h' = o·tanh(c')
 *   GRU   r, z = σ of the first two blocks of gi + gh;  n = tanh(gi_n + r·gh_n);  h' = (1 − z)·n + z·h
 * Every buffer is a contiguous [B, width] block starting at its offset.
 */
export interface RecurrentCellArgs {
  mode: RecurrentCellMode;
  batch: number;
  hidden: number;
  /** x·W_ihᵀ + b_ih, [B, G]. */
  gi: Float32Array;
  giOffset: number;
  /** h·W_hhᵀ + b_hh, [B, G]. */
  gh: Float32Array;
  ghOffset: number;
  /** The previous hidden state [B, H] (GRU reads it). */
  h: Float32Array;
  hOffset: number;
  /** LSTM: the previous cell state [B, H]; null otherwise. */
  c: Float32Array | null;
  cOffset: number;
  /** The new hidden state [B, H]. */
  hOut: Float32Array;
  hOutOffset: number;
  /** LSTM: the new cell state [B, H]; null otherwise. */
  cOut: Float32Array | null;
  cOutOffset: number;
  /**
   * What backward needs, [B, 4H]: LSTM the activated gates i, f, g, o; GRU r, z, n and gh_n
   * (h·W_hnᵀ + b_hn). Null for RNN (its backward reads hOut) or when no backward will run.
   */
  saved: Float32Array | null;
  savedOffset: number;
}

/**
 * `recurrentCellBackward`: the adjoint of one recurrentCell step. From dh (the total gradient of
 * h', [B, H]) and, for LSTM, dc (that of c', updated in place to the gradient of c), writes the
 * gradients of the two gate projections and the part of dh_prev that does not go through W_hh
 * (GRU: dh·z; zero otherwise; the caller adds dGh·W_hh).
 */
export interface RecurrentCellBackwardArgs {
  mode: RecurrentCellMode;
  batch: number;
  hidden: number;
  /** The forward's saved activations (LSTM, GRU). */
  saved: Float32Array | null;
  savedOffset: number;
  /** The forward's h' (RNN's derivative reads it). */
  hOut: Float32Array;
  hOutOffset: number;
  /** The previous hidden state (GRU). */
  h: Float32Array;
  hOffset: number;
  /** LSTM: the previous and the new cell state. */
  c: Float32Array | null;
  cOffset: number;
  cOut: Float32Array | null;
  cOutOffset: number;
  /** The gradient of h', [B, H] from 0. */
  dh: Float32Array;
  /** LSTM: the gradient of c' in, that of c out, [B, H] from 0, in place. */
  dc: Float32Array | null;
  /** The gradient of gi, [B, G] from dGiOffset. */
  dGi: Float32Array;
  dGiOffset: number;
  /** The gradient of gh, [B, G] from dGhOffset (equal to dGi except GRU's n block). */
  dGh: Float32Array;
  dGhOffset: number;
  /** dh_prev's direct part, [B, H] from 0 (overwritten). */
  dhPrev: Float32Array;
}

/**
 * `flashAttentionForward`: blocked attention with an online softmax (FlashAttention-2), never
 * materialising the [Tq, Tk] scores. `heads` query heads of q [heads, tq, d] read heads/group
 * key/value heads of k [heads/group, tk, d] and v [heads/group, tk, valueDim]: query head n uses
 * kv head ⌊n / group⌋ (a batch
 * folds into the head count: [B, H] query heads over [B, Hkv] kv heads with group = H/Hkv).
 * Every buffer is contiguous from 0. Query i sees key j when (not causal) always, (causal)
 * j ≤ i + causalOffset, and (causal with a window W) also j > i + causalOffset − W. A query that
 * sees no key gets output 0 and logsumexp −inf.
 */
export interface FlashAttentionArgs {
  heads: number;
  group: number;
  tq: number;
  tk: number;
  /** The width of q and k rows. */
  d: number;
  /** The width of v rows, and so of out (d for most models; MLA's differs). */
  valueDim: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  scale: number;
  causal: boolean;
  causalOffset: number;
  /** Sliding window W (with causal only), or 0 for none. */
  window: number;
  /** The attention output [heads, tq, valueDim]. */
  out: Float32Array;
  /** Each query row's logsumexp of its scaled scores [heads, tq], saved for the backward pass. */
  lse: Float32Array;
}

/**
 * `flashAttentionBackward`: recomputes the probabilities blockwise from q, k and the forward's
 * lse, and writes (overwrites) dq [heads, tq, d], dk [heads/group, tk, d] and dv [heads/group, tk,
 * valueDim] from the upstream gradient dOut [heads, tq, valueDim] and the forward's out. A kv head's dk, dv sum over its query heads.
 */
export interface FlashAttentionBackwardArgs extends Omit<FlashAttentionArgs, 'out' | 'lse'> {
  out: Float32Array;
  lse: Float32Array;
  dOut: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/**
 * `selectiveScan`: Mamba's S6 recurrence (ops/selective-scan.ts) over `batch` rows of `length`
 * steps, `channels` (Din) independent channels and `state` (N) states each:
 *   h_t,d,n = exp(Δ_t,d·A_d,n)·h_t−1,d,n + Δ_t,d·B_t,n·x_t,d;   y_t,d = Σ_n C_t,n·h_t,d,n + D_d·x_t,d
 * Every buffer is contiguous from 0: x, delta, y [B, L, Din]; a [Din, N]; bmat, cmat [B, L, N];
 * dSkip [Din]; h0 and hLast [B, Din, N].
 */
export interface SelectiveScanArgs {
  batch: number;
  length: number;
  channels: number;
  state: number;
  x: Float32Array;
  delta: Float32Array;
  a: Float32Array;
  bmat: Float32Array;
  cmat: Float32Array;
  dSkip: Float32Array;
  /** The state before the first step, or null for zeros. */
  h0: Float32Array | null;
  /** The outputs (overwritten). */
  y: Float32Array;
  /** The state after the last step (overwritten). */
  hLast: Float32Array;
}

/**
 * `selectiveScanBackward`: recomputes the states channel by channel (nothing is saved by the
 * forward) and writes (overwrites) the gradients of every input from dy [B, L, Din]; dh0 is
 * written when h0 is given (null otherwise).
 */
export interface SelectiveScanBackwardArgs extends Omit<SelectiveScanArgs, 'y' | 'hLast'> {
  dy: Float32Array;
  dx: Float32Array;
  dDelta: Float32Array;
  dA: Float32Array;
  dBmat: Float32Array;
  dCmat: Float32Array;
  dDSkip: Float32Array;
  dh0: Float32Array | null;
}

// ---- Decode attention (the decode engine's step) --------------------------------------------------

/**
 * `decodeAttention`: one new token's softmax attention over a KV cache, every query head at once:
 * out[h] = softmax(q[h]·K[c]ᵀ·scale)·V[c] over the first n slots of kv head c = ⌊h / (heads /
 * kvHeads)⌋. The caches are [kvHeads, slots, dim] row-major from kvOffset (one batch row of the
 * engine's per-layer cache); q and out are [heads, dim] from their offsets.
 */
export interface DecodeAttentionArgs {
  q: Float32Array;
  qOffset: number;
  k: Float32Array;
  v: Float32Array;
  kvOffset: number;
  /** Rows per kv head in k and v (the cache's capacity); the first n of them are read. */
  slots: number;
  n: number;
  heads: number;
  kvHeads: number;
  dim: number;
  scale: number;
  /** [heads, dim] from outOffset, overwritten. */
  out: Float32Array;
  outOffset: number;
}

// ---- int8 weight-only quantization (issue 18) --------------------------------------------------

/**
 * `gemmInt8`: out[rows, n] ≈ x[rows, k] · dequant(W)ᵀ (+ bias), W quantized to int8 codes q [n, k]
 * with one float32 scale per block of `block` consecutive codes of a row (block = k: one scale per
 * output channel; block = 32: Q8_0-style blocks, the last one of a row shorter when 32 ∤ k):
 * dequant(W)[j, i] = scales[j·⌈k/block⌉ + ⌊i/block⌋] · q[j, i]. Like llama.cpp's Q8_0 product,
 * each row of x is quantized to int8 on the fly with the same blocks (dx = max|x_block|/127,
 * nearest-even codes), so the inner products are exact integer sums, scaled by dx·dw per block
 * (js/quantized.ts spells out the arithmetic; every backend must match it bit for bit).
 * Inference only: there is no backward kernel. Every buffer is contiguous from 0.
 */
export interface GemmInt8Args {
  rows: number;
  n: number;
  k: number;
  x: Float32Array;
  q: Int8Array;
  scales: Float32Array;
  /** Codes per scale along k: k (per output channel) or 32 (Q8_0 blocks); a positive integer. */
  block: number;
  bias: Float32Array | null;
  /** [rows, n], overwritten. */
  out: Float32Array;
  /**
   * The caller's promise that these codes never change (a QuantizedLinear's): a backend may keep
   * its own copy of them between calls, keyed by the array (the WASM backend pins them in its memory).
   */
  constantCodes?: boolean;
}

export interface Kernels {
  /** out[i] = op(x[xOffset + i]) for i < n (contiguous). */
  unary(op: UnaryOp, x: TypedArray, xOffset: number, n: number, out: TypedArray): void;
  /** out (contiguous, `shape`) = op(a, b) with a and b read through (broadcast) strides. */
  binary(op: BinaryOp, shape: readonly number[], a: StridedArray, b: StridedArray, out: TypedArray): void;
  /** out = cond ? a : b, all read through (broadcast) strides. */
  where(shape: readonly number[], cond: StridedArray, a: StridedArray, b: StridedArray, out: TypedArray): void;
  /** Copies a strided view of `shape` elements into another strided view. */
  copy(shape: readonly number[], src: StridedArray, dst: StridedArray): void;
  /** Contiguous x viewed as [outer, size, inner] reduced over the middle: out has outer·inner elements. */
  reduce(args: ReduceArgs): void;
  /** Like reduce, writing the index of the max/min (first one on ties) and optionally its value. */
  argReduce(args: ArgReduceArgs): void;
  gemm(args: GemmArgs): void;
  /**
   * Contiguous x viewed as [outer, xSize, inner], index as [outer, indexSize, inner]:
   * out[o, j, i] = x[o, index[o, j, i], i]  (torch.gather along the middle dimension).
   */
  gather(args: GatherArgs): void;
  /** The adjoint of gather: out[o, index[o, j, i], i] += src[o, j, i]. */
  scatterAdd(args: ScatterAddArgs): void;
  /** out[o, j, i] = x[o, index[j], i]  (torch.index_select; embeddings). */
  indexSelect(args: GatherArgs): void;
  /** The adjoint of indexSelect: out[o, index[j], i] += src[o, j, i]. */
  indexAdd(args: ScatterAddArgs): void;
  /** Row-wise (log-)softmax of a contiguous [rows, cols] block. */
  softmax(args: SoftmaxArgs): void;
  /**
   * Softmax of scale·x over each row of a contiguous [rows, cols] block, where row r is query
   * position i = r mod tq and, when causal, only columns j ≤ i + causalOffset take part (the rest
   * get probability 0). Used by attention: scaling and masking fused into the softmax pass.
   */
  scaledSoftmax(args: ScaledSoftmaxArgs): void;
  /**
   * GELU (exact, erf) and its derivative in one pass: out = x·Φ(x), deriv = Φ(x) + x·φ(x). Training
   * keeps `deriv`, so GELU's backward is one multiply instead of a second erf evaluation.
   */
  geluWithDerivative(args: GeluWithDerivativeArgs): void;
  /** Backward of softmax given its output y: dx = y·(g − Σ g·y), or for log-softmax dx = g − exp(y)·Σ g. */
  softmaxBackward(args: SoftmaxBackwardArgs): void;
  /**
   * Row-wise LayerNorm of a contiguous [rows, cols] block: out = (x − mean)·rstd·weight + bias,
   * also writing each row's mean and rstd = 1/√(var + eps) for the backward pass.
   */
  layerNorm(args: LayerNormArgs): void;
  /** LayerNorm backward: writes dx, and adds into dWeight/dBias (when given) the per-column sums. */
  layerNormBackward(args: LayerNormBackwardArgs): void;
  /** Row-wise RMSNorm: out = x·rstd·weight with rstd = 1/√(mean(x²) + eps). */
  rmsNorm(args: RmsNormArgs): void;
  /** RMSNorm backward: writes dx, and adds into dWeight (when given) the per-column sums. */
  rmsNormBackward(args: RmsNormBackwardArgs): void;
  /**
   * Cross-entropy of each row of contiguous logits [rows, classes] against an int target, with
   * label smoothing ε: loss = (1−ε)·(lse − x[t]) + ε·(lse − mean(x)); rows whose target equals
   * ignoreIndex get loss 0. Writes each row's max and log Σ exp(x − max) for the backward pass
   * (kept apart: a float32 log-sum-exp near 1e4 would lose the precision softmax needs).
   */
  crossEntropy(args: CrossEntropyArgs): void;
  /** dlogits = scale_r · (softmax − (1−ε)·onehot(t) − ε/C), zero on ignored rows; scale per row. */
  crossEntropyBackward(args: CrossEntropyBackwardArgs): void;
  /** One step of an RNN, LSTM or GRU from its gate projections (nn/recurrent.ts runs the sequence). */
  recurrentCell(args: RecurrentCellArgs): void;
  /** The adjoint of recurrentCell: gate-projection gradients and dh_prev's direct part. */
  recurrentCellBackward(args: RecurrentCellBackwardArgs): void;
  /**
   * Attention softmax(scale·q·kᵀ [causal/window band])·v in O(T·D) memory: blocked, with an online
   * softmax, skipping key blocks outside the band; also writes each row's logsumexp.
   */
  flashAttentionForward(args: FlashAttentionArgs): void;
  /** The adjoint of flashAttentionForward: dq, dk, dv from recomputed probabilities. */
  flashAttentionBackward(args: FlashAttentionBackwardArgs): void;
  /** Mamba's selective scan (S6) over whole sequences: outputs and the final state. */
  selectiveScanForward(args: SelectiveScanArgs): void;
  /** The adjoint of selectiveScanForward, recomputing the states (O(L·N) scratch per channel). */
  selectiveScanBackward(args: SelectiveScanBackwardArgs): void;
  /** One token's attention over a KV cache, all heads (the decode engine's step; inference only). */
  decodeAttention(args: DecodeAttentionArgs): void;
  /** x · dequant(W)ᵀ (+ bias) for int8 weights with per-block scales, activations quantized per block on the fly (inference only). */
  gemmInt8(args: GemmInt8Args): void;
  /**
   * Storage for a constant quantized layer's codes [n, k] and scales [n, ⌈k/block⌉] inside the
   * backend's own memory, where gemmInt8 then reads them in place (no second copy of the codes);
   * null where the backend keeps no such memory (then ordinary arrays, which a backend may copy).
   * The caller fills them once and passes them with `constantCodes`. Never freed.
   */
  allocateInt8Weights(n: number, k: number, block: number): { q: Int8Array; scales: Float32Array } | null;
  /** One SGD update in place, torch.optim.SGD's arithmetic. */
  sgdStep(args: SgdStepArgs): void;
  /** One Adam/AdamW update in place, torch.optim.Adam(W)'s arithmetic. */
  adamStep(args: AdamStepArgs): void;
}
