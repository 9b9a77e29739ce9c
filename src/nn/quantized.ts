/**
 * Int8 weight-only quantization for inference (issue 18): the quantizer and QuantizedLinear.
 *
 * A weight W [n, k] becomes int8 codes q [n, k] and float32 scales, one per block of `block`
 * consecutive codes of a row, symmetric (no zero point):
 *
 *   d = max|W_block| / 127,   q = round(W / d) ∈ [−127, 127]   (C's roundf: halves away from 0)
 *
 * Two formats, one quantizer:
 *   'int8'  one scale per output channel (block = k): 1 byte per weight plus 4 per row.
 *   'q8_0'  blocks of 32 along k, llama.cpp's Q8_0 (ggml's quantize_row_q8_0_ref, the same codes
 *           bit for bit: interop/gguf.ts writes its Q8_0 tensors through `quantizeBlocks`). In
 *           memory the scale stays float32; the GGUF file stores it as F16. A last block of a row
 *           is shorter when 32 ∤ k (GGUF itself only takes rows of whole blocks).
 *
 * Every element's error is at most half its scale, |W − d·q| ≤ d/2. The product (kernels.gemmInt8)
 * also quantizes each row of activations with the same blocking, on the fly (dx = max|x_block|/127,
 * as llama.cpp does for its Q8_0 products), so its inner loop is exact integer dot products: a
 * layer's output error is at most ½ Σ_i |x_i|·dw(i) + ½ Σ_b dx_b·Σ_{i∈b} |dw·q|_i per output
 * (tests/nn/quantized.test.ts checks both bounds). Only the weights are stored quantized.
 * QuantizedLinear is inference only — it has a forward and no backward, and refuses training mode.
 */
import { isGradEnabled } from '../autograd/grad-mode.js';
import { kernels } from '../backends/registry.js';
import { floatData } from '../ops/elementwise.js';
import { zeros } from '../tensor/creation.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { parameter } from './module.js';

/** 'int8': one scale per output channel; 'q8_0': one per block of 32 along the input dim (llama.cpp's Q8_0). */
export type QuantFormat = 'int8' | 'q8_0';
export const QUANT_FORMATS: readonly QuantFormat[] = ['int8', 'q8_0'];

/** Q8_0's block length (ggml's QK8_0). */
export const Q8_0_BLOCK = 32;

/** Int8 codes and their scales: row j's block b has scale scales[j·⌈k/block⌉ + b]. */
export interface QuantizedBlocks {
  q: Int8Array;
  scales: Float32Array;
}

/** Codes per scale of a format for rows of k inputs. */
export function quantBlock(format: QuantFormat, k: number): number {
  if (format === 'int8') return Math.max(1, k);
  if (format === 'q8_0') return Q8_0_BLOCK;
  throw new RangeError(`quantize: format must be ${QUANT_FORMATS.map((f) => `'${f}'`).join(' or ')}, got ${JSON.stringify(format)}`);
}

/**
 * Storage for the codes [n, k] and scales of a constant quantized layer: in the backend's own
 * memory where it keeps one (WASM's threaded module: then no pinned second copy), else new arrays.
 */
export function allocateQuantized(n: number, k: number, block: number): QuantizedBlocks {
  return kernels.allocateInt8Weights(n, k, block) ?? { q: new Int8Array(n * k), scales: new Float32Array(n * Math.ceil(k / block)) };
}

/**
 * Quantizes a contiguous row-major W [n, k] with one scale per block of `block` codes of a row:
 * d = fround(amax / 127), q = roundf(fround(W · (1/d))) — ggml's arithmetic, which the GGUF writer
 * relies on for byte-identical Q8_0 output. An all-zero block gets d = 0 and codes 0.
 */
export function quantizeBlocks(w: Float32Array, n: number, k: number, block: number, into?: QuantizedBlocks): QuantizedBlocks {
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(k) && k >= 0) || w.length !== n * k) {
    throw new Error(`quantizeBlocks: expected ${n}·${k} = ${n * k} weights for [${n}, ${k}], got ${w.length}`);
  }
  if (!(Number.isInteger(block) && block >= 1)) throw new RangeError(`quantizeBlocks: block must be a positive integer, got ${block}`);
  const blocks = Math.ceil(k / block);
  if (into && (into.q.length !== n * k || into.scales.length !== n * blocks)) throw new Error(`quantizeBlocks: 'into' holds ${into.q.length} codes and ${into.scales.length} scales, expected ${n * k} and ${n * blocks}`);
  const q = into?.q ?? new Int8Array(n * k);
  const scales = into?.scales ?? new Float32Array(n * blocks);
  for (let j = 0; j < n; j++) {
    for (let b = 0; b < blocks; b++) {
      const start = j * k + b * block;
      const end = j * k + Math.min(k, (b + 1) * block);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(w[i]));
      const d = Math.fround(amax / 127);
      const id = d !== 0 ? 1 / d : 0;
      scales[j * blocks + b] = d;
      for (let i = start; i < end; i++) {
        // roundf (half away from zero) as floor(v + 0.5), exact for a float32 v, with negative
        // halves moved down: rarely taken, so the branch predicts well, where Math.round's and
        // Math.sign's own branches on the sign of random weights cost ~5× the whole loop.
        const v = Math.fround(w[i] * id);
        const r = Math.floor(v + 0.5);
        q[i] = r - v === 0.5 && v < 0 ? r - 1 : r;
      }
    }
  }
  return { q, scales };
}

/** The float32 values the codes stand for, d·q, [n, k] row-major. */
export function dequantizeBlocks(blocks: QuantizedBlocks, n: number, k: number, block: number): Float32Array {
  const out = new Float32Array(n * k);
  const perRow = Math.ceil(k / block);
  const { q, scales } = blocks;
  for (let j = 0; j < n; j++) {
    for (let b = 0; b < perRow; b++) {
      const d = scales[j * perRow + b];
      const end = j * k + Math.min(k, (b + 1) * block);
      for (let i = j * k + b * block; i < end; i++) out[i] = d * q[i];
    }
  }
  return out;
}

/** A frozen tensor standing in for the float32 weight a QuantizedLinear no longer holds. */
function noWeight(): Tensor {
  return zeros([0]);
}

/**
 * A Linear layer whose weight is int8 codes and float32 scales (inference only). It is a Linear
 * (so it sits wherever one is typed, and its parents' forwards call it unchanged), but `weight`
 * is an empty placeholder: read the weight through `dequantize()`; the decode engine and the
 * graph path both run `kernels.gemmInt8` on the codes. The bias stays float32 (frozen).
 */
export class QuantizedLinear extends Linear {
  readonly format: QuantFormat;
  /** Codes per scale along the input dim: inFeatures ('int8') or 32 ('q8_0'). */
  readonly block: number;
  /** Int8 codes [outFeatures, inFeatures], row-major. */
  readonly q: Int8Array;
  /** [outFeatures, ⌈inFeatures / block⌉] scales. */
  readonly scales: Float32Array;

  /**
   * Quantizes `linear`'s current weight (a copy: the Linear is left as it was; the bias tensor is
   * shared, frozen), or takes `quantized`: its codes and scales already quantized in this format
   * (a loader that quantized the rows as they arrived).
   */
  constructor(linear: Linear, format: QuantFormat, quantized?: QuantizedBlocks) {
    super(0, 0, { bias: false });
    if (!(linear instanceof Linear) || linear instanceof QuantizedLinear) throw new TypeError('QuantizedLinear: expected a float32 Linear to quantize');
    const [n, k] = linear.weight.shape;
    this.format = format;
    this.block = quantBlock(format, k);
    if (quantized && (quantized.q.length !== n * k || quantized.scales.length !== n * Math.ceil(k / this.block))) throw new Error(`QuantizedLinear: codes and scales for [${n}, ${k}] expected, got ${quantized.q.length} codes and ${quantized.scales.length} scales`);
    const { q, scales } = quantized ?? quantizeBlocks(floatData(linear.weight), n, k, this.block, allocateQuantized(n, k, this.block));
    this.q = q;
    this.scales = scales;
    const bias = linear.bias ? parameter(linear.bias, false) : null;
    // inFeatures/outFeatures are readonly for users; set once here, as LoRALinear does.
    Object.assign(this, { inFeatures: k, outFeatures: n, weight: noWeight(), bias });
    this.training = false;
  }

  /** The weight the codes stand for, d·q, as a new float32 tensor [outFeatures, inFeatures]. */
  dequantize(): Tensor {
    const data = dequantizeBlocks(this, this.outFeatures, this.inFeatures, this.block);
    return new Tensor(data, [this.outFeatures, this.inFeatures]);
  }

  /** Bytes of the quantized weight: one per code plus four per scale (the bias not counted). */
  get weightBytes(): number {
    return this.q.byteLength + this.scales.byteLength;
  }

  /**
   * out[rows, n] ≈ x[rows, k] · dequant(W)ᵀ (+ b) on flat buffers through kernels.gemmInt8 (which
   * quantizes x per block on the fly): the one entry of both the graph forward and the decode engine.
   */
  project(x: Float32Array, rows: number, out: Float32Array): void {
    kernels.gemmInt8({ rows, n: this.outFeatures, k: this.inFeatures, x, q: this.q, scales: this.scales, block: this.block, bias: this.bias ? floatData(this.bias) : null, out, constantCodes: true });
  }

  /** x [..., in] → [..., out]. Inference only: no gradient flows, and training mode is refused. */
  override forward(x: Tensor): Tensor {
    const k = this.inFeatures;
    const n = this.outFeatures;
    const last = x.ndim === 0 ? undefined : x.shape[x.ndim - 1];
    if (last !== k) throw new Error(`QuantizedLinear(${k}, ${n}): input last dim is ${last ?? `missing (0-d input of shape ${formatShape(x.shape)})`}, expected ${k}`);
    if (this.training) throw new Error('QuantizedLinear: a quantized model is inference only and cannot be trained; train the float32 model and quantize it afterwards (call eval() to run this one)');
    if (isGradEnabled() && x.requiresGrad) throw new Error('QuantizedLinear: inference only, but its input requires a gradient; run it inside noGrad()');
    if (x.dtype !== 'float32') throw new TypeError(`QuantizedLinear: input must be float32, got ${x.dtype}`);
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const out = Tensor.uninitialized([...x.shape.slice(0, -1), n]);
    if (rows > 0 && n > 0) this.project(floatData(x), rows, out.storage as Float32Array);
    return out;
  }

  override extraRepr(): string {
    return `${super.extraRepr()}, format='${this.format}'`;
  }
}
