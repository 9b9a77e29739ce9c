/**
 * Positional encodings: learned absolute positions (GPT-2), fixed sinusoids (Vaswani et al.) and
 * rotary embeddings (RoPE, Su et al.; GPT-J, GPT-NeoX, Llama).
 *
 * The additive ones map x [..., T, d] to x + table[offset .. offset+T−1]; `offset` is the position
 * of the first token (non-zero when decoding with a KV cache). Instead of an offset they also take
 * explicit per-token positions, int32 [B, T] (packed sequences, each document restarting at 0):
 * x [B, T, d] + table[positions[b, t]]. RoPE instead rotates queries and keys inside attention,
 * so MultiHeadAttention calls it.
 */
import { embedding } from '../ops/embedding.js';
import { rotaryEmbedding, rotaryTables, type RopePairing } from '../ops/rotary.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { normal_ } from './init.js';
import { Module, parameter } from './module.js';

export type { RopePairing } from '../ops/rotary.js';

function checkPositions(x: Tensor, offset: number, maxSeqLen: number, layer: string): number {
  if (x.ndim < 2) throw new Error(`${layer}: input must be [..., T, d], got shape ${formatShape(x.shape)}`);
  const t = x.shape[x.ndim - 2];
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`${layer}: offset must be a non-negative integer, got ${offset}`);
  if (offset + t > maxSeqLen) {
    throw new RangeError(`${layer}: positions ${offset}..${offset + t - 1} do not fit maxSeqLen ${maxSeqLen} (sequence of ${t} tokens at offset ${offset})`);
  }
  return t;
}

/**
 * Explicit positions [B, T] for x [B, T, d]: checked (int32, the shape, each in [0, maxSeqLen))
 * so that a bad one fails with the layer's name rather than deep inside a kernel.
 */
function checkExplicitPositions(x: Tensor, positions: Tensor, maxSeqLen: number, layer: string): void {
  if (x.ndim !== 3 || positions.dtype !== 'int32' || positions.ndim !== 2 || positions.shape[0] !== x.shape[0] || positions.shape[1] !== x.shape[1]) {
    throw new Error(`${layer}: positions must be int32 [B, T] matching the input ${formatShape(x.shape)}, got ${positions.dtype} ${formatShape(positions.shape)}`);
  }
  const data = positions.contiguous().toTypedArray() as Int32Array;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0 || data[i] >= maxSeqLen) throw new RangeError(`${layer}: position ${data[i]} does not fit maxSeqLen ${maxSeqLen}`);
  }
}

function checkSize(v: number, what: string, layer: string): void {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${layer}: ${what} must be a positive integer, got ${v}`);
}

/** A learned table weight [maxSeqLen, dModel] added to the input (GPT-2's wpe). */
export class LearnedPositionalEmbedding extends Module<[Tensor, (number | Tensor)?], Tensor> {
  readonly maxSeqLen: number;
  readonly dModel: number;
  weight: Tensor;

  constructor(maxSeqLen: number, dModel: number, options: { generator?: Generator } = {}) {
    super();
    checkSize(maxSeqLen, 'maxSeqLen', 'LearnedPositionalEmbedding');
    checkSize(dModel, 'dModel', 'LearnedPositionalEmbedding');
    this.maxSeqLen = maxSeqLen;
    this.dModel = dModel;
    this.weight = parameter(zeros([maxSeqLen, dModel]));
    normal_(this.weight, 0, 1, options.generator);
  }

  /** x [..., T, dModel] + weight[offset .. offset+T−1], or x [B, T, dModel] + weight[positions] (int32 [B, T]). */
  forward(x: Tensor, at: number | Tensor = 0): Tensor {
    if (typeof at !== 'number') {
      checkExplicitPositions(x, at, this.maxSeqLen, 'LearnedPositionalEmbedding');
      // A row gather with a scatter-add backward: the same values (and gradient rows) as the narrow below.
      return x.add(embedding(this.weight, at));
    }
    const offset = at;
    const t = checkPositions(x, offset, this.maxSeqLen, 'LearnedPositionalEmbedding');
    return x.add(this.weight.narrow(0, offset, t));
  }

  override extraRepr(): string {
    return `${this.maxSeqLen}, ${this.dModel}`;
  }
}

/**
 * The fixed table pe[p, 2i] = sin(p / base^(2i/d)), pe[p, 2i+1] = cos(p / base^(2i/d)) of
 * "Attention Is All You Need", added to the input. A non-persistent buffer (not in stateDict).
 */
export class SinusoidalPositionalEncoding extends Module<[Tensor, (number | Tensor)?], Tensor> {
  readonly maxSeqLen: number;
  readonly dModel: number;
  declare pe: Tensor;

  constructor(maxSeqLen: number, dModel: number, options: { base?: number } = {}) {
    super();
    checkSize(maxSeqLen, 'maxSeqLen', 'SinusoidalPositionalEncoding');
    checkSize(dModel, 'dModel', 'SinusoidalPositionalEncoding');
    if (dModel % 2 !== 0) throw new Error(`SinusoidalPositionalEncoding: dModel must be even, got ${dModel}`);
    this.maxSeqLen = maxSeqLen;
    this.dModel = dModel;
    this.registerBuffer('pe', sinusoidalTable(maxSeqLen, dModel, options.base ?? 10000), { persistent: false });
  }

  /** x + pe[offset .. offset+T−1], or x [B, T, dModel] + pe[positions] (int32 [B, T]). */
  forward(x: Tensor, at: number | Tensor = 0): Tensor {
    if (typeof at !== 'number') {
      checkExplicitPositions(x, at, this.maxSeqLen, 'SinusoidalPositionalEncoding');
      return x.add(embedding(this.pe, at));
    }
    const offset = at;
    const t = checkPositions(x, offset, this.maxSeqLen, 'SinusoidalPositionalEncoding');
    return x.add(this.pe.narrow(0, offset, t));
  }

  override extraRepr(): string {
    return `${this.maxSeqLen}, ${this.dModel}`;
  }
}

/** The sinusoid table [positions, d], computed in float32 steps like the PyTorch tutorial code. */
export function sinusoidalTable(positions: number, d: number, base = 10000): Tensor {
  const f = Math.fround;
  const out = Tensor.empty([positions, d]);
  const o = out.storage as Float32Array;
  const scale = f(-Math.log(base) / d);
  for (let i = 0; i < d / 2; i++) {
    const div = f(Math.exp(f(2 * i * scale)));
    for (let p = 0; p < positions; p++) {
      const angle = f(p * div);
      o[p * d + 2 * i] = Math.sin(angle);
      o[p * d + 2 * i + 1] = Math.cos(angle);
    }
  }
  return out;
}

export interface RotaryEmbeddingOptions {
  /** Base of the angle frequencies θ_i = theta^(−2i/headDim); default 10000. */
  theta?: number;
  /**
   * Feature pairing, default 'half' (i, i + headDim/2): the convention of Hugging Face Llama /
   * TinyLlama / Mistral / GPT-NeoX checkpoints, so their q/k weights load without permuting rows.
   * 'interleaved' (2i, 2i+1) is GPT-J's and Meta's original Llama release's.
   */
  pairing?: RopePairing;
}

/**
 * Rotary position embedding for heads of size headDim: forward(x [..., T, headDim], offset)
 * rotates each feature pair of the token at position offset + t by angle (offset + t)·θ_i.
 * Because a rotation by m·θ dotted with one by n·θ depends only on m − n, attention scores of
 * rotated queries and keys depend only on relative position. cos/sin tables [maxSeqLen, headDim/2]
 * are non-persistent buffers.
 */
export class RotaryEmbedding extends Module<[Tensor, (number | Tensor)?, number?], Tensor> {
  readonly headDim: number;
  readonly maxSeqLen: number;
  readonly theta: number;
  readonly pairing: RopePairing;
  declare cos: Tensor;
  declare sin: Tensor;

  constructor(headDim: number, maxSeqLen: number, options: RotaryEmbeddingOptions = {}) {
    super();
    checkSize(headDim, 'headDim', 'RotaryEmbedding');
    checkSize(maxSeqLen, 'maxSeqLen', 'RotaryEmbedding');
    if (headDim % 2 !== 0) throw new Error(`RotaryEmbedding: headDim must be even, got ${headDim}`);
    this.headDim = headDim;
    this.maxSeqLen = maxSeqLen;
    this.theta = options.theta ?? 10000;
    this.pairing = options.pairing ?? 'half';
    if (this.pairing !== 'half' && this.pairing !== 'interleaved') throw new Error(`RotaryEmbedding: pairing must be 'half' or 'interleaved', got '${String(this.pairing)}'`);
    const { cos, sin } = rotaryTables(maxSeqLen, headDim, this.theta);
    this.registerBuffer('cos', cos, { persistent: false });
    this.registerBuffer('sin', sin, { persistent: false });
  }

  /**
   * Rotates x [..., T, headDim] at positions offset.. (or x [B, ..., T, headDim] at the explicit
   * positions int32 [B, T]), multiplied by `scale` (default 1).
   */
  forward(x: Tensor, at: number | Tensor = 0, scale = 1): Tensor {
    if (typeof at !== 'number') {
      if (x.shape[x.ndim - 1] !== this.headDim) throw new Error(`RotaryEmbedding: last dim of input ${formatShape(x.shape)} must be headDim ${this.headDim}`);
      return rotaryEmbedding(x, this.cos, this.sin, { positions: at, pairing: this.pairing, scale });
    }
    const offset = at;
    checkPositions(x, offset, this.maxSeqLen, 'RotaryEmbedding');
    if (x.shape[x.ndim - 1] !== this.headDim) throw new Error(`RotaryEmbedding: last dim of input ${formatShape(x.shape)} must be headDim ${this.headDim}`);
    return rotaryEmbedding(x, this.cos, this.sin, { offset, pairing: this.pairing, scale });
  }

  override extraRepr(): string {
    return `headDim=${this.headDim}, maxSeqLen=${this.maxSeqLen}, theta=${this.theta}, pairing='${this.pairing}'`;
  }
}
