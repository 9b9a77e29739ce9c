/**
 * quantizeModel: int8 weight-only quantization of a TransformerLM for inference (issue 18).
 *
 * Every projection of its attention blocks becomes a QuantizedLinear (nn/quantized.ts) in place:
 * attention wq, wk, wv, wo (MLA's wDq, wUq or wq, wQr, wDkv, wKr, wo), the feed-forward w1, w2, w3
 * (every MoE expert and the shared experts too) and an untied head. What stays float32, and why:
 *   - embeddings, norms and biases: few bytes, and the embedding is a lookup, not a product;
 *   - a tied head: it is the token embedding's matrix (the model has no head module);
 *   - an MoE router: d·E weights that decide the routing — a flipped expert costs more than it saves;
 *   - MLA's wUk, wUv: the decode engine folds them into the queries and outputs (absorbed form),
 *     reading them as matrices;
 *   - Mamba blocks: their projections run inside the selective-scan mixer (graph path only).
 * The model is switched to eval mode and every parameter left is frozen: it runs forward and
 * generates (graph path, KV cache, decode engine), and refuses training mode in one line.
 * Checkpoints stay float32: quantize after loading (it takes milliseconds for the tiny model).
 */
import { LoRALinear } from '../nn/lora.js';
import { Linear } from '../nn/layers.js';
import { MambaBlock } from '../nn/mamba.js';
import type { AnyModule } from '../nn/module.js';
import { QUANT_FORMATS, QuantizedLinear, type QuantFormat } from '../nn/quantized.js';
import { floatData } from '../ops/elementwise.js';
import type { TransformerLM } from './transformer.js';

/** One quantized layer's shape and error against its float32 weight. */
export interface QuantizedLayerStats {
  /** Dotted module name, e.g. 'layers.0.attn.wq'. */
  name: string;
  shape: [number, number];
  /** max |W − dequant(q)| over the layer. */
  maxAbsError: number;
  /** ‖W − dequant(q)‖_F / ‖W‖_F. */
  relativeError: number;
  /** The float32 weight's bytes and the codes + scales' bytes (biases stay float32 and count in neither). */
  bytesBefore: number;
  bytesAfter: number;
}

export interface QuantizeStats {
  format: QuantFormat;
  layers: QuantizedLayerStats[];
  /** Bytes of every weight and buffer of the model, before and after (float32 4 each, codes 1, scales 4). */
  bytesBefore: number;
  bytesAfter: number;
  /** Just the quantized matrices, before and after. */
  linearBytesBefore: number;
  linearBytesAfter: number;
}

/** Module names (their last segment) that stay float32 even where they are Linear layers. */
const KEEP_FLOAT = new Set(['router', 'wUk', 'wUv']);

/**
 * Replaces the projections of `model` (see the file comment for which) by QuantizedLinear layers
 * of `format`, in place, and returns the per-layer errors and the bytes before and after.
 */
export function quantizeModel(model: TransformerLM, format: QuantFormat): QuantizeStats {
  if (!QUANT_FORMATS.includes(format)) throw new RangeError(`quantizeModel: format must be ${QUANT_FORMATS.map((f) => `'${f}'`).join(' or ')}, got ${JSON.stringify(format)}`);
  const bytesBefore = modelBytes(model);
  // Collected first, replaced after: (parent, field, Linear, name).
  const targets: { parent: AnyModule; field: string; child: Linear; name: string }[] = [];
  const visit = (m: AnyModule, prefix: string): void => {
    for (const [field, child] of m.namedChildren()) {
      const name = prefix === '' ? field : `${prefix}.${field}`;
      if (child instanceof MambaBlock) continue;
      if (child instanceof QuantizedLinear) throw new Error(`quantizeModel: '${name}' is already quantized (${child.format}); quantize a float32 model`);
      if (child instanceof LoRALinear) throw new Error(`quantizeModel: '${name}' is a LoRALinear; mergeLoRA(model) first`);
      if (child instanceof Linear) {
        if (!KEEP_FLOAT.has(field)) targets.push({ parent: m, field, child, name });
        continue;
      }
      visit(child, name);
    }
  };
  visit(model, '');
  const layers: QuantizedLayerStats[] = [];
  for (const t of targets) {
    const q = new QuantizedLinear(t.child, format);
    layers.push(layerStats(t.name, floatData(t.child.weight), q));
    t.parent.registerModule(t.field, q);
  }
  model.eval();
  for (const p of model.parameters()) p.requiresGrad = false;
  const linearBytesBefore = layers.reduce((s, l) => s + l.bytesBefore, 0);
  const linearBytesAfter = layers.reduce((s, l) => s + l.bytesAfter, 0);
  return { format, layers, bytesBefore, bytesAfter: modelBytes(model), linearBytesBefore, linearBytesAfter };
}

function layerStats(name: string, w: Float32Array, q: QuantizedLinear): QuantizedLayerStats {
  // d·q per element as dequantize() computes it, without materialising the dequantized matrix (a
  // 1 B-parameter model would otherwise allocate its float32 weights once more, layer by layer).
  const { q: codes, scales, block, inFeatures: k, outFeatures: n } = q;
  const perRow = Math.ceil(k / block);
  let max = 0;
  let err = 0;
  let norm = 0;
  for (let j = 0; j < n; j++) {
    for (let b = 0; b < perRow; b++) {
      const d = scales[j * perRow + b];
      for (let i = j * k + b * block, end = j * k + Math.min(k, (b + 1) * block); i < end; i++) {
        const e = Math.abs(w[i] - Math.fround(d * codes[i]));
        if (e > max) max = e;
        err += e * e;
        norm += w[i] * w[i];
      }
    }
  }
  return { name, shape: [n, k], maxAbsError: max, relativeError: norm > 0 ? Math.sqrt(err / norm) : 0, bytesBefore: w.length * 4, bytesAfter: q.weightBytes };
}

/** Float32 parameters and buffers at 4 bytes each plus every QuantizedLinear's codes and scales. */
function modelBytes(model: TransformerLM): number {
  const seen = new Set<unknown>();
  let bytes = 0;
  for (const [, t] of [...model.namedParameters(), ...model.namedBuffers()]) {
    if (seen.has(t.storage)) continue;
    seen.add(t.storage);
    bytes += t.size * 4;
  }
  for (const m of model.modules()) if (m instanceof QuantizedLinear) bytes += m.weightBytes;
  return bytes;
}

/** "3.1 MB → 0.8 MB (int8; the quantized matrices 3.0 MB → 0.8 MB)": the one line the CLI prints. */
export function describeQuantization(s: QuantizeStats): string {
  const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
  const worst = s.layers.reduce((m, l) => Math.max(m, l.relativeError), 0);
  return `quantized ${s.layers.length} layers to ${s.format}: weights ${mb(s.bytesBefore)} → ${mb(s.bytesAfter)} (the quantized matrices ${mb(s.linearBytesBefore)} → ${mb(s.linearBytesAfter)}; worst relative error ${(worst * 100).toFixed(2)}%)`;
}
