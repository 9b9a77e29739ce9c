/**
 * The int8 quantizer and QuantizedLinear (nn/quantized.ts, issue 18): the per-element error bound
 * |W − d·q| ≤ d/2 for random and structured weights in both formats, the layer-output bound that
 * follows (with the kernel's on-the-fly activation rounding), Q8_0 codes byte-identical to the GGUF
 * writer's (ggml's quantize_row_q8_0_ref), and the forward against the reference kernel.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { halfToFloat, floatToHalf } from '../../src/io/half.js';
import { dequantizeQ8_0, quantizeQ8_0 } from '../../src/interop/gguf.js';
import { Linear } from '../../src/nn/layers.js';
import { dequantizeBlocks, quantBlock, quantizeBlocks, QuantizedLinear, type QuantFormat } from '../../src/nn/quantized.js';
import { expectOneLineError } from '../helpers/errors.js';

const gen = new T.Generator(180);
const normal = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => gen.normal() * scale);

/** Weights with the shapes quantization finds hard: outliers, zero rows and blocks, constants, tiny and huge values, ties. */
function structured(n: number, k: number): Float32Array {
  const w = normal(n * k, 0.02);
  for (let i = 0; i < n * k; i += 37) w[i] *= 50; // outliers
  w.fill(0, 0, k); // an all-zero row
  if (n > 1) w.fill(0.125, k, 2 * k); // a constant row
  if (n > 2) for (let i = 2 * k; i < 3 * k; i++) w[i] = (i % 2 ? -1 : 1) * 1e-30; // tiny (subnormal scales)
  if (n > 3) for (let i = 3 * k; i < 4 * k; i++) w[i] = ((i % 255) - 127) * 1e30; // huge, exact multiples: codes hit ±127
  if (n > 4) for (let i = 4 * k; i < 5 * k; i++) w[i] = ((i % 5) - 2) * 0.5; // halves: rounding ties
  return w;
}

const FORMATS: QuantFormat[] = ['int8', 'q8_0'];
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [6, 32],
  [5, 33],
  [8, 100],
  [16, 128],
];

describe('quantizeBlocks', () => {
  it.each(FORMATS)('%s: every element within half its scale, codes in [−127, 127], random and structured weights', (format) => {
    for (const [n, k] of SHAPES) {
      for (const w of [normal(n * k), structured(n, k)]) {
        const block = quantBlock(format, k);
        const blocks = quantizeBlocks(w, n, k, block);
        const perRow = Math.ceil(k / block);
        expect(blocks.scales.length).toBe(n * perRow);
        const deq = dequantizeBlocks(blocks, n, k, block);
        for (let j = 0; j < n; j++) {
          for (let i = 0; i < k; i++) {
            const d = blocks.scales[j * perRow + Math.floor(i / block)];
            const q = blocks.q[j * k + i];
            expect(Math.abs(q)).toBeLessThanOrEqual(127);
            // d/2 up to the float32 rounding of w·(1/d) and of d·q.
            expect(Math.abs(w[j * k + i] - deq[j * k + i]), `${format} [${n}, ${k}] at (${j}, ${i})`).toBeLessThanOrEqual(d / 2 + d * 1e-6 + Math.abs(w[j * k + i]) * 1e-7);
          }
        }
        // Each block's largest magnitude maps to ±127 (or the block is zero).
        for (let s = 0; s < n * perRow; s++) {
          const j = Math.floor(s / perRow);
          const b = s % perRow;
          let top = 0;
          for (let i = b * block; i < Math.min(k, (b + 1) * block); i++) top = Math.max(top, Math.abs(blocks.q[j * k + i]));
          expect(top).toBe(blocks.scales[s] === 0 ? 0 : 127);
        }
      }
    }
  });

  it('q8_0 codes and scales are the GGUF writer\'s Q8_0 bytes (ggml\'s quantize_row_q8_0_ref), ties included', () => {
    const w = structured(6, 64);
    const bytes = quantizeQ8_0(w);
    // The reference, as ggml writes it: per block an F16 d, then 32 codes roundf(x · (1/d)).
    const expected = new Uint8Array(bytes.length);
    const view = new DataView(expected.buffer);
    for (let b = 0; b < w.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(w[b * 32 + j]));
      const d = Math.fround(amax / 127);
      const id = d !== 0 ? 1 / d : 0;
      view.setUint16(b * 34, floatToHalf(d), true);
      for (let j = 0; j < 32; j++) {
        const v = Math.fround(w[b * 32 + j] * id);
        view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
      }
    }
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
    // And quantizeModel's q8_0 holds the same codes, its scales the float32 values of the file's F16 ones.
    const { q, scales } = quantizeBlocks(w, 6, 64, 32);
    const file = new DataView(bytes.buffer);
    for (let b = 0; b < w.length / 32; b++) {
      expect(Array.from(new Int8Array(bytes.buffer, b * 34 + 2, 32))).toEqual(Array.from(q.subarray(b * 32, b * 32 + 32)));
      expect(halfToFloat(file.getUint16(b * 34, true))).toBe(halfToFloat(floatToHalf(scales[b])));
    }
    // Exact ties: a block whose largest magnitude is 127 has d = 1, so v = w and ±(t + 0.5) is a
    // tie that roundf sends away from zero (−2.5 → −3), next to values a float32 step off a tie.
    const ties = new Float32Array(8 * 32);
    for (let i = 0; i < ties.length; i++) {
      const t = (i * 37) % 127;
      ties[i] = i % 32 === 0 ? 127 : Math.fround((i % 2 ? -1 : 1) * (t + [0.5, 0.49999997, 0.50000006, 0][(i >> 1) % 4]));
    }
    const tq = quantizeBlocks(ties, 8, 32, 32).q;
    for (let i = 0; i < ties.length; i++) expect(tq[i], `w = ${ties[i]}`).toBe((Math.sign(ties[i]) * Math.round(Math.abs(ties[i]))) | 0);
    // Round trip through the file (weights F16 can scale: not the ±1e32 row): within d/2 plus the F16 rounding of d.
    const v = normal(4 * 64);
    const back = dequantizeQ8_0(quantizeQ8_0(v), v.length);
    const d = quantizeBlocks(v, 4, 64, 32).scales;
    for (let i = 0; i < v.length; i++) expect(Math.abs(back[i] - v[i])).toBeLessThanOrEqual(d[Math.floor(i / 32)] * (0.5 + 127 * 2 ** -11));
  });

  it('one-line errors for a wrong length, block and format', () => {
    expectOneLineError(() => quantizeBlocks(new Float32Array(5), 2, 3, 3), /expected 2·3 = 6 weights for \[2, 3\], got 5/);
    expectOneLineError(() => quantizeBlocks(new Float32Array(6), 2, 3, 0), /block must be a positive integer, got 0/);
    expectOneLineError(() => quantBlock('int4' as QuantFormat, 8), /format must be 'int8' or 'q8_0', got "int4"/);
  });
});

describe('QuantizedLinear', () => {
  it.each(FORMATS)('%s: forward is the reference kernel on the codes, within ½ Σ|x|·dw + ½ Σ_b dx_b·Σ|dw·q| of the float32 layer', (format) => {
    for (const [k, n, bias] of [[33, 7, true], [128, 20, false], [5, 3, true]] as [number, number, boolean][]) {
      const lin = new Linear(k, n, { bias, generator: new T.Generator(k) });
      const ql = new QuantizedLinear(lin, format);
      expect(ql.inFeatures).toBe(k);
      expect(ql.outFeatures).toBe(n);
      const x = T.randn([2, 3, k], { generator: new T.Generator(n) });
      const got = T.noGrad(() => ql.forward(x));
      expect(got.shape).toEqual([2, 3, n]);
      const g = got.toTypedArray() as Float32Array;
      const xs = x.toTypedArray() as Float32Array;
      const want = new Float32Array(6 * n);
      T.referenceKernels.gemmInt8({ rows: 6, n, k, x: xs, q: ql.q, scales: ql.scales, block: ql.block, bias: lin.bias ? (lin.bias.toTypedArray() as Float32Array) : null, out: want });
      expect(Array.from(g)).toEqual(Array.from(want));
      // |y − y_f32| ≤ Σ_i |x_i|·|W − Ŵ|_ji + Σ_i |x_i − x̂_i|·|Ŵ_ji| ≤ ½ Σ_i |x_i|·dw + ½ Σ_b dx_b·Σ_{i∈b} |Ŵ_ji|.
      const exact = T.noGrad(() => lin.forward(x)).toTypedArray();
      const deq = ql.dequantize().toTypedArray();
      const perRow = Math.ceil(k / ql.block);
      for (let r = 0; r < 6; r++) {
        for (let j = 0; j < n; j++) {
          let bound = 0;
          for (let b = 0; b < perRow; b++) {
            const end = Math.min(k, (b + 1) * ql.block);
            let amax = 0;
            for (let i = b * ql.block; i < end; i++) amax = Math.max(amax, Math.abs(xs[r * k + i]));
            for (let i = b * ql.block; i < end; i++) bound += 0.5 * Math.abs(xs[r * k + i]) * ql.scales[j * perRow + b] + 0.5 * (amax / 127) * Math.abs(deq[j * k + i]);
          }
          expect(Math.abs(g[r * n + j] - exact[r * n + j])).toBeLessThanOrEqual(bound * 1.001 + 1e-5);
        }
      }
      expect(ql.weightBytes).toBe(n * k + 4 * n * perRowOf(format, k));
    }
  });

  it('is inference only: training mode and inputs that need a gradient are refused in one line', () => {
    const ql = new QuantizedLinear(new Linear(4, 2), 'int8');
    expect(ql.parameters().every((p) => !p.requiresGrad)).toBe(true);
    const x = T.randn([1, 4], { requiresGrad: true });
    expectOneLineError(() => ql.forward(x), /inference only, but its input requires a gradient; run it inside noGrad\(\)/);
    ql.train();
    expectOneLineError(() => T.noGrad(() => ql.forward(x)), /a quantized model is inference only and cannot be trained/);
    ql.eval();
    expectOneLineError(() => ql.forward(T.randn([1, 5])), /QuantizedLinear\(4, 2\): input last dim is 5, expected 4/);
    expectOneLineError(() => new QuantizedLinear(ql, 'q8_0'), /expected a float32 Linear to quantize/);
  });
});

function perRowOf(format: QuantFormat, k: number): number {
  return Math.ceil(k / quantBlock(format, k));
}
