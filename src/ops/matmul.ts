/**
 * matmul with NumPy/PyTorch semantics: 1-D operands are promoted, batch dims broadcast.
 * Operands whose last two dims are a transposed view go to the kernel with a transpose flag,
 * so the backward products (g·Bᵀ, Aᵀ·g) and attention's batched products never copy.
 */
import { record } from '../autograd/engine.js';
import { kernels } from '../backends/registry.js';
import { allocateUninitialized } from '../tensor/dtype.js';
import { broadcastShapes, broadcastStrides, collapseDims, forEachRow, formatShape, isContiguous, isDenseRun, shapeSize, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { contiguous, reshape, squeeze, transpose, unsqueeze } from './views.js';

export interface MatrixLayout {
  source: Tensor;
  trans: boolean;
  ld: number;
}

/**
 * How the kernel can read the last two dims of x ([rows, cols]): directly, transposed, or after a
 * copy. Shared with `linear` (ops/linear.ts), whose GEMM reads its operands the same way.
 */
export function layoutOf(x: Tensor): MatrixLayout {
  const r = x.ndim - 2;
  const rows = x.shape[r];
  const cols = x.shape[r + 1];
  const rs = x.strides[r];
  const cs = x.strides[r + 1];
  if ((cs === 1 || cols === 1) && (rs >= Math.max(cols, 1) || rows === 1)) return { source: x, trans: false, ld: rows === 1 ? Math.max(cols, 1) : rs };
  if ((rs === 1 || rows === 1) && (cs >= Math.max(rows, 1) || cols === 1)) return { source: x, trans: true, ld: cols === 1 ? Math.max(rows, 1) : cs };
  const packed = contiguous(x.detach());
  return { source: packed, trans: false, ld: Math.max(cols, 1) };
}

/**
 * The product a·b, written in the memory order of `outStrides` when given (the strides of a dense
 * block with unit stride along the last dim): a gradient then has its input's layout, so the
 * views between an attention head split and its projection stay views in the backward too.
 */
function matmulForward(a: Tensor, b: Tensor, outStrides?: readonly number[]): Tensor {
  const m = a.shape[a.ndim - 2];
  const k = a.shape[a.ndim - 1];
  const n = b.shape[b.ndim - 1];
  if (b.shape[b.ndim - 2] !== k) {
    throw new Error(`matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} cannot be multiplied (${k} != ${b.shape[b.ndim - 2]})`);
  }
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul (batch dims)');
  const outShape = [...batchShape, m, n];
  const out = outStrides ? new Tensor(allocateUninitialized('float32', m * n * shapeSize(batchShape)), outShape, outStrides, 0, 'float32') : Tensor.uninitialized(outShape, 'float32');
  if (out.size === 0) return out;
  const la = layoutOf(a);
  const lb = layoutOf(b);
  const aBatch = broadcastStrides(la.source.shape.slice(0, -2), la.source.strides.slice(0, -2), batchShape);
  const bBatch = broadcastStrides(lb.source.shape.slice(0, -2), lb.source.strides.slice(0, -2), batchShape);
  const cBatch = broadcastStrides(batchShape, out.strides.slice(0, -2), batchShape);
  // Merge batch dims that all three walk uniformly; the innermost run becomes the kernel's batch loop.
  const c = collapseDims(batchShape, [aBatch, bBatch, cBatch]);
  const rank = c.shape.length;
  const base = {
    transA: la.trans,
    transB: lb.trans,
    m,
    n,
    k,
    alpha: 1,
    a: la.source.storage as Float32Array,
    lda: la.ld,
    strideA: c.strides[0][rank - 1],
    b: lb.source.storage as Float32Array,
    ldb: lb.ld,
    strideB: c.strides[1][rank - 1],
    beta: 0,
    c: out.storage as Float32Array,
    ldc: outStrides ? Math.max(outStrides[outStrides.length - 2], n) : n,
    strideC: c.strides[2][rank - 1],
  };
  forEachRow(c.shape, c.strides, [la.source.offset, lb.source.offset, 0], (o, batch) => {
    kernels.gemm({ ...base, aOffset: o[0], bOffset: o[1], cOffset: o[2], batch });
  });
  return out;
}

function checkOperands(a: Tensor, b: Tensor): void {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new Error(`matmul: both arguments need at least 1 dimension, got shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  }
  for (const [name, t] of [['first', a], ['second', b]] as const) {
    if (t.dtype !== 'float32') throw new TypeError(`matmul: the ${name} operand must be float32, got ${t.dtype}`);
  }
  const k1 = a.shape[a.ndim - 1];
  const k2 = b.ndim === 1 ? b.shape[0] : b.shape[b.ndim - 2];
  if (k1 !== k2) throw new Error(`matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} cannot be multiplied (${k1} != ${k2})`);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  checkOperands(a, b);
  // 1-D operands: a vector on the left is a row, on the right a column; the added dim is removed after.
  if (a.ndim === 1 && b.ndim === 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), []);
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  // [..., m, k]·[k, n]: fold the batch into m, so the forward is one GEMM and the weight
  // gradient one Aᵀ·g product instead of a batch of them summed afterwards.
  if (a.ndim > 2 && b.ndim === 2) {
    const lead = a.shape.slice(0, -1);
    return reshape(matmul(reshape(a, [-1, a.shape[a.ndim - 1]]), b), [...lead, b.shape[1]]);
  }
  return recordMatmul(matmulForward(a, b), a, b);
}

/** ∂(a·b): g·bᵀ and aᵀ·g, each in its operand's layout where that saves a copy. */
function recordMatmul(out: Tensor, a: Tensor, b: Tensor): Tensor {
  return record(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? productLike(g, transpose(b.detach(), -1, -2), a) : null,
    b.requiresGrad ? productLike(transpose(a.detach(), -1, -2), g, b) : null,
  ]);
}

/** The shape of a·b for operands of rank ≥ 2: broadcast batch dims, then [m, n]. */
function productShape(a: Tensor, b: Tensor): number[] {
  return [...broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul (batch dims)'), a.shape[a.ndim - 2], b.shape[b.ndim - 1]];
}

/**
 * x·y for the gradient of `like`, laid out like it when `like` is a permuted view of a dense block
 * (attention's q, k, v heads): with unit stride along its last dim the product is written in that
 * order; with unit stride along the second last (kᵀ) the transposed product yᵀ·xᵀ is. Otherwise contiguous.
 */
function productLike(x: Tensor, y: Tensor, like: Tensor): Tensor {
  const r = like.ndim - 2;
  const outShape = productShape(x, y);
  if (r < 0 || isContiguous(like.shape, like.strides) || !shapesEqual(outShape, like.shape) || !isDenseRun(like.shape, like.strides)) return matmulForward(x, y);
  if (like.strides[r + 1] === 1 && like.strides[r] >= like.shape[r + 1]) return matmulForward(x, y, like.strides);
  if (like.strides[r] === 1 && like.strides[r + 1] >= like.shape[r]) {
    const swapped = like.strides.slice();
    [swapped[r], swapped[r + 1]] = [swapped[r + 1], swapped[r]];
    return transpose(matmulForward(transpose(y, -1, -2), transpose(x, -1, -2), swapped), -1, -2);
  }
  return matmulForward(x, y);
}

/**
 * matmul(a, b) for batched operands of the same rank ≥ 3, stored so that `out.permute(order)` is
 * contiguous (order keeps the last dim last). Attention writes its per-head outputs straight into
 * the [B, T, H, D] layout the output projection reads, so merging the heads is a view, not a copy.
 * Same values and gradients as matmul.
 */
export function matmulInLayout(a: Tensor, b: Tensor, order: readonly number[]): Tensor {
  checkOperands(a, b);
  const rank = Math.max(a.ndim, b.ndim);
  if (a.ndim < 3 || order.length !== rank || order[rank - 1] !== rank - 1 || [...order].sort((x, y) => x - y).some((d, i) => d !== i)) {
    throw new Error(`matmulInLayout: order ${formatShape(order)} must permute the ${rank} output dims and keep the last one last`);
  }
  const shape = productShape(a, b);
  // Strides of the contiguous permuted layout, mapped back to the output's own dims.
  const strides = new Array<number>(rank);
  let step = 1;
  for (let j = rank - 1; j >= 0; j--) {
    strides[order[j]] = step;
    step *= shape[order[j]];
  }
  return recordMatmul(matmulForward(a, b, strides), a, b);
}
