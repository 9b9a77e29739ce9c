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
import { allocateQuantized, QUANT_FORMATS, QuantizedLinear, quantBlock, quantizeBlocks, type QuantFormat, type QuantizedBlocks } from '../nn/quantized.js';
import type { TensorSink } from '../io/safetensors.js';
import { floatData } from '../ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
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
  return quantizeProgressively(model, format).finish();
}

/** quantizeProgressively's handle: see there. */
export interface ProgressiveQuantization {
  /**
   * Where a loader should read stateDict entry `name` (the model's tensor `own`): a layer's weight
   * still to quantize goes to a sink that quantizes its rows as they arrive (no buffer of the whole
   * matrix), so the model's own float32 storage — allocated, never written — is never resident;
   * anything else to `own`.
   */
  destination(name: string, own: Tensor): Tensor | TensorSink;
  /** A stateDict name has just been loaded: finishes the layer whose weight it is, if any. */
  weightRead(name: string): void;
  /** Quantizes the layers not done yet, freezes the model (eval mode) and returns quantizeModel's figures. */
  finish(): QuantizeStats;
}

/**
 * quantizeModel one layer at a time, for a loader that reads weights straight into the model
 * (loadRun's `quantize`): `weightRead(name)` quantizes the layer whose weight just arrived, so its
 * float32 matrix is garbage before the next one is read — peak memory about the quantized model
 * plus one float32 matrix, not the whole float32 model (whose unread weights, allocated but never
 * written under skipInit, are not resident). Which layers, and every refusal, as quantizeModel,
 * checked here, before anything is read.
 */
export function quantizeProgressively(model: TransformerLM, format: QuantFormat): ProgressiveQuantization {
  if (!QUANT_FORMATS.includes(format)) throw new RangeError(`quantizeModel: format must be ${QUANT_FORMATS.map((f) => `'${f}'`).join(' or ')}, got ${JSON.stringify(format)}`);
  const bytesBefore = modelBytes(model);
  // By weight name, in module order; a layer leaves the map once quantized (and its Linear with it).
  const pending = new Map<string, { parent: AnyModule; field: string; child: Linear; name: string }>();
  const visit = (m: AnyModule, prefix: string): void => {
    for (const [field, child] of m.namedChildren()) {
      const name = prefix === '' ? field : `${prefix}.${field}`;
      if (child instanceof MambaBlock) continue;
      if (child instanceof QuantizedLinear) throw new Error(`quantizeModel: '${name}' is already quantized (${child.format}); quantize a float32 model`);
      if (child instanceof LoRALinear) throw new Error(`quantizeModel: '${name}' is a LoRALinear; mergeLoRA(model) first`);
      if (child instanceof Linear) {
        if (!KEEP_FLOAT.has(field)) pending.set(`${name}.weight`, { parent: m, field, child, name });
        continue;
      }
      visit(child, name);
    }
  };
  visit(model, '');
  const layers: QuantizedLayerStats[] = [];
  // Layers whose weight a loader is streaming into a sink: their codes so far and their error.
  const streamed = new Map<string, { blocks: QuantizedBlocks; tally: ErrorTally }>();
  const quantize = (key: string): void => {
    const t = pending.get(key);
    if (t === undefined) return;
    pending.delete(key);
    const s = streamed.get(key);
    streamed.delete(key);
    let q: QuantizedLinear;
    if (s === undefined) {
      q = new QuantizedLinear(t.child, format);
      layers.push(layerStats(t.name, floatData(t.child.weight), q));
    } else {
      // Its rows were quantized as they streamed in (destination's sink).
      q = new QuantizedLinear(t.child, format, s.blocks);
      layers.push(s.tally.stats(t.name, q));
    }
    t.parent.registerModule(t.field, q);
  };
  return {
    destination(name: string, own: Tensor): Tensor | TensorSink {
      const t = pending.get(name);
      if (t === undefined || own.dtype !== 'float32' || own.ndim !== 2) return own;
      const [n, k] = own.shape;
      const block = quantBlock(format, k);
      const perRow = Math.ceil(k / block);
      const blocks = allocateQuantized(n, k, block);
      const tally = new ErrorTally();
      streamed.set(name, { blocks, tally });
      // Whole rows are quantized as they complete, a batch of up to 1 MiB of them at a time.
      const batch = Math.max(1, Math.floor((1 << 18) / Math.max(1, k)));
      const rows = new Float32Array(Math.min(n, batch) * k);
      let row0 = 0; // first row held in `rows`
      let filled = 0; // elements of `rows` written
      const flush = (count: number): void => {
        const data = rows.subarray(0, count * k);
        const into = { q: blocks.q.subarray(row0 * k, (row0 + count) * k), scales: blocks.scales.subarray(row0 * perRow, (row0 + count) * perRow) };
        quantizeBlocks(data, count, k, block, into);
        tally.add(data, into.q, into.scales, count, k, block);
        row0 += count;
        filled = 0;
      };
      return {
        shape: own.shape,
        write(values: Float32Array, offset: number): void {
          let at = 0;
          if (offset !== row0 * k + filled) throw new Error(`quantizeProgressively: '${name}' arrived out of order (element ${offset}, expected ${row0 * k + filled})`);
          while (at < values.length) {
            const take = Math.min(values.length - at, rows.length - filled);
            rows.set(values.subarray(at, at + take), filled);
            filled += take;
            at += take;
            if (filled === rows.length || row0 * k + filled === n * k) flush(filled / k);
          }
        },
      };
    },
    weightRead: quantize,
    finish(): QuantizeStats {
      for (const key of [...pending.keys()]) quantize(key);
      model.eval();
      for (const p of model.parameters()) p.requiresGrad = false;
      const linearBytesBefore = layers.reduce((s, l) => s + l.bytesBefore, 0);
      const linearBytesAfter = layers.reduce((s, l) => s + l.bytesAfter, 0);
      return { format, layers, bytesBefore, bytesAfter: modelBytes(model), linearBytesBefore, linearBytesAfter };
    },
  };
}

/** A layer's error against its float32 weight, summed over rows as they are quantized (d·q per element as dequantize() computes it). */
class ErrorTally {
  private max = 0;
  private err = 0;
  private norm = 0;

  /** Rows [0, rows) of w against their codes and scales (each row ⌈k/block⌉ scales). */
  add(w: Float32Array, codes: Int8Array, scales: Float32Array, rows: number, k: number, block: number): void {
    const perRow = Math.ceil(k / block);
    for (let j = 0; j < rows; j++) {
      for (let b = 0; b < perRow; b++) {
        const d = scales[j * perRow + b];
        for (let i = j * k + b * block, end = j * k + Math.min(k, (b + 1) * block); i < end; i++) {
          const e = Math.abs(w[i] - Math.fround(d * codes[i]));
          if (e > this.max) this.max = e;
          this.err += e * e;
          this.norm += w[i] * w[i];
        }
      }
    }
  }

  stats(name: string, q: QuantizedLinear): QuantizedLayerStats {
    return { name, shape: [q.outFeatures, q.inFeatures], maxAbsError: this.max, relativeError: this.norm > 0 ? Math.sqrt(this.err / this.norm) : 0, bytesBefore: q.outFeatures * q.inFeatures * 4, bytesAfter: q.weightBytes };
  }
}

function layerStats(name: string, w: Float32Array, q: QuantizedLinear): QuantizedLayerStats {
  // Without materialising the dequantized matrix (a 1 B-parameter model would otherwise allocate
  // its float32 weights once more, layer by layer).
  const tally = new ErrorTally();
  tally.add(w, q.q, q.scales, q.outFeatures, q.inFeatures, q.block);
  return tally.stats(name, q);
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
