/**
 * `tensorlm export --format gguf`: a run as a GGUF v3 file that llama.cpp (and Ollama, LM Studio,
 * node-llama-cpp) loads — ggml's own format, specified in ggml's docs/gguf.md:
 *
 *   "GGUF" · version 3 · tensor count · metadata count       (little-endian)
 *   metadata: key (u64 length + UTF-8) · value type (u32) · value      e.g. llama.block_count = 4
 *   tensor infos: name · n_dims · dims (ggml order: the fastest-varying first) · ggml type · offset
 *   padding to `general.alignment` (32), then each tensor's data, each at an aligned offset
 *
 * Architectures: `llama` (RMSNorm, SwiGLU, RoPE; llama.cpp rotates adjacent pairs, so q/k rows in
 * TensorLM's 'half' order are permuted as convert_hf_to_gguf.py does) and `gpt2` (LayerNorm,
 * GELU, learned positions, fused qkv). The tokenizer is GGUF's `gpt2` byte-level BPE: tokens in
 * GPT-2's byte spelling, merges "left right", special tokens as control tokens; a character
 * tokenizer whose characters are single bytes is the same BPE without merges.
 *
 * Tensor types: F32, F16, and Q8_0 (blocks of 32 weights: an F16 scale d = max|x|/127 and 32
 * int8 values round(x/d)), applied to the matrices whose rows are whole blocks; vectors (norms,
 * biases) stay F32, as llama.cpp's own conversions keep them.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tempPathFor } from '../data/files.js';
import { floatToHalf, halfToFloat } from '../io/half.js';
import type { TransformerConfig } from '../models/config.js';
import { quantizeBlocks } from '../nn/quantized.js';
import { cat } from '../ops/indexing.js';
import type { Tensor } from '../tensor/tensor.js';
import { BPETokenizer } from '../tokenizers/bpe.js';
import { bytesToGPT2String, utf8Encode } from '../tokenizers/bytes.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { GPT2_PATTERN } from '../tokenizers/pretokenize.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { hfArchitecture, permuteRopeRows } from './hf-model.js';
import { specialIds } from './hf-tokenizer.js';

export type GgufTensorType = 'F32' | 'F16' | 'Q8_0';
export const GGUF_TENSOR_TYPES: readonly GgufTensorType[] = ['F32', 'F16', 'Q8_0'];

const GGML_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, Q8_0: 8 };
/** general.file_type: LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0. */
const FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, Q8_0: 7 };
const ALIGNMENT = 32;
const QK8_0 = 32;

// ---- metadata values -----------------------------------------------------------------------------

const enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
}

type MetaValue = { type: 'u32' | 'i32' | 'f32'; value: number } | { type: 'bool'; value: boolean } | { type: 'string'; value: string } | { type: 'strings'; value: readonly string[] } | { type: 'i32s'; value: readonly number[] };

const u32 = (value: number): MetaValue => ({ type: 'u32', value });
const f32 = (value: number): MetaValue => ({ type: 'f32', value });
const str = (value: string): MetaValue => ({ type: 'string', value });

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  #put(n: number, write: (view: DataView, at: number) => void): void {
    this.#room(n);
    write(this.#view, this.length);
    this.length += n;
  }

  u32(v: number): void {
    this.#put(4, (view, at) => view.setUint32(at, v, true));
  }

  i32(v: number): void {
    this.#put(4, (view, at) => view.setInt32(at, v, true));
  }

  u64(v: number): void {
    this.#put(8, (view, at) => view.setBigUint64(at, BigInt(v), true));
  }

  f32(v: number): void {
    this.#put(4, (view, at) => view.setFloat32(at, v, true));
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }

  string(s: string): void {
    const b = utf8Encode(s);
    this.u64(b.length);
    this.bytes(b);
  }

  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    this.#room(n);
    this.#buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  result(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, v: MetaValue): void {
  switch (v.type) {
    case 'u32':
      w.u32(ValueType.UINT32);
      w.u32(v.value);
      return;
    case 'i32':
      w.u32(ValueType.INT32);
      w.i32(v.value);
      return;
    case 'f32':
      w.u32(ValueType.FLOAT32);
      w.f32(v.value);
      return;
    case 'bool':
      w.u32(ValueType.BOOL);
      w.bytes(Uint8Array.of(v.value ? 1 : 0));
      return;
    case 'string':
      w.u32(ValueType.STRING);
      w.string(v.value);
      return;
    case 'strings':
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.string(s);
      return;
    case 'i32s':
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.INT32);
      w.u64(v.value.length);
      for (const x of v.value) w.i32(x);
      return;
  }
}

// ---- tensor data -----------------------------------------------------------------------------------

/**
 * Q8_0 blocks of a contiguous float32 array whose length is a multiple of 32 (ggml's
 * quantize_row_q8_0_ref): the codes and scales of nn/quantized.ts's quantizer (the one Q8_0
 * implementation, also behind quantizeModel's 'q8_0'), each block written as its F16 scale and
 * 32 int8 codes.
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const blocks = x.length / QK8_0;
  const { q, scales } = quantizeBlocks(x, blocks, QK8_0, QK8_0);
  const out = new Uint8Array(blocks * (2 + QK8_0));
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const at = b * (2 + QK8_0);
    view.setUint16(at, floatToHalf(scales[b]), true);
    out.set(new Uint8Array(q.buffer, b * QK8_0, QK8_0), at + 2);
  }
  return out;
}

/** The values Q8_0 blocks stand for (d · q), for measuring the quantization error. */
export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < n / QK8_0; b++) {
    const at = b * (2 + QK8_0);
    const d = halfToFloat(view.getUint16(at, true));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * view.getInt8(at + 2 + j);
  }
  return out;
}

interface GgufTensor {
  name: string;
  /** PyTorch order ([rows, cols]); written reversed. */
  shape: readonly number[];
  type: GgufTensorType;
  data: Uint8Array;
}

function encodeTensor(name: string, t: Tensor, wanted: GgufTensorType): GgufTensor {
  const x = t.contiguous().toTypedArray() as Float32Array;
  // Only matrices whose rows are whole Q8_0 blocks are quantized; vectors stay F32, as in llama.cpp.
  const type: GgufTensorType = t.ndim < 2 ? 'F32' : wanted === 'Q8_0' && t.shape[t.ndim - 1] % QK8_0 !== 0 ? 'F16' : wanted;
  let data: Uint8Array;
  if (type === 'F32') data = new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  else if (type === 'F16') {
    const h = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) h[i] = floatToHalf(x[i]);
    data = new Uint8Array(h.buffer);
  } else data = quantizeQ8_0(x);
  return { name, shape: t.shape.slice(), type, data };
}

// ---- the model ---------------------------------------------------------------------------------------

function tensorsFor(state: Readonly<Record<string, Tensor>>, c: TransformerConfig, arch: 'llama' | 'gpt2'): [string, Tensor][] {
  const get = (name: string): Tensor => {
    const t = state[name];
    if (!t) throw new Error(`gguf: the model has no '${name}'`);
    return t;
  };
  const out: [string, Tensor][] = [['token_embd.weight', get('tokEmb.weight')]];
  const headDim = c.dModel / c.nHeads;
  if (arch === 'gpt2') out.push(['position_embd.weight', get('posEmb.weight')]);
  for (let i = 0; i < c.nLayers; i++) {
    const l = `layers.${i}`;
    const b = `blk.${i}`;
    const norm = (to: string, from: string) => {
      out.push([`${b}.${to}.weight`, get(`${l}.${from}.weight`)]);
      if (c.bias && c.norm === 'layer') out.push([`${b}.${to}.bias`, get(`${l}.${from}.bias`)]);
    };
    const linear = (to: string, from: string) => {
      out.push([`${b}.${to}.weight`, get(`${l}.${from}.weight`)]);
      if (c.bias) out.push([`${b}.${to}.bias`, get(`${l}.${from}.bias`)]);
    };
    norm('attn_norm', 'attnNorm');
    if (arch === 'llama') {
      const q = get(`${l}.attn.wq.weight`);
      const k = get(`${l}.attn.wk.weight`);
      const interleaved = c.ropePairing === 'interleaved';
      out.push([`${b}.attn_q.weight`, interleaved ? q : permuteRopeRows(q, c.nHeads, headDim, 'interleaved')]);
      out.push([`${b}.attn_k.weight`, interleaved ? k : permuteRopeRows(k, c.nKvHeads, headDim, 'interleaved')]);
      out.push([`${b}.attn_v.weight`, get(`${l}.attn.wv.weight`)]);
      linear('attn_output', 'attn.wo');
      norm('ffn_norm', 'ffnNorm');
      linear('ffn_gate', 'ffn.w1');
      linear('ffn_up', 'ffn.w3');
      linear('ffn_down', 'ffn.w2');
    } else {
      out.push([`${b}.attn_qkv.weight`, cat([get(`${l}.attn.wq.weight`), get(`${l}.attn.wk.weight`), get(`${l}.attn.wv.weight`)], 0)]);
      out.push([`${b}.attn_qkv.bias`, cat([get(`${l}.attn.wq.bias`), get(`${l}.attn.wk.bias`), get(`${l}.attn.wv.bias`)], 0)]);
      linear('attn_output', 'attn.wo');
      norm('ffn_norm', 'ffnNorm');
      linear('ffn_up', 'ffn.w1');
      linear('ffn_down', 'ffn.w2');
    }
  }
  out.push(['output_norm.weight', get('norm.weight')]);
  if (c.bias && c.norm === 'layer') out.push(['output_norm.bias', get('norm.bias')]);
  // Written even when tied: every llama.cpp version then finds the head it expects.
  out.push(['output.weight', c.tieWeights ? get('tokEmb.weight') : get('head.weight')]);
  return out;
}

const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;
const TOKEN_UNUSED = 5;

/** The vocabulary as GGUF's `gpt2` tokenizer: tokens (byte spelling), their types and the merges. */
function tokenizerMetadata(tokenizer: Tokenizer, vocabSize: number): [string, MetaValue][] {
  const tokens: string[] = new Array<string>(vocabSize);
  const types: number[] = new Array<number>(vocabSize).fill(TOKEN_UNUSED);
  let merges: string[] = [];
  if (tokenizer instanceof BPETokenizer) {
    const j = tokenizer.toJSON();
    if (j.pattern !== GPT2_PATTERN) throw new Error("gguf: this BPE tokenizer has its own pre-tokenisation pattern; llama.cpp's 'gpt2' tokenizer applies GPT-2's, so the ids would differ (train the tokenizer with the default pre-tokenizer to export GGUF)");
    for (const [text, id] of Object.entries(j.vocab)) {
      tokens[id] = text;
      types[id] = TOKEN_NORMAL;
    }
    merges = j.merges;
  } else if (tokenizer instanceof CharTokenizer) {
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      const text = tokenizer.idToToken(id);
      if (text === undefined || tokenizer.specialTokens[text] !== undefined) continue;
      const bytes = utf8Encode(text);
      if (bytes.length !== 1) throw new Error(`gguf: the character tokenizer holds ${JSON.stringify(text)}, which is ${bytes.length} UTF-8 bytes; llama.cpp's byte-level tokenizer needs single-byte characters (or a BPE tokenizer)`);
      tokens[id] = bytesToGPT2String(bytes);
      types[id] = tokenizer.unk === text ? 2 : TOKEN_NORMAL;
    }
  } else throw new Error(`gguf: unsupported tokenizer type '${(tokenizer as Tokenizer).type}'`);
  for (const [text, id] of Object.entries(tokenizer.specialTokens)) {
    tokens[id] = text;
    types[id] = TOKEN_CONTROL;
  }
  // Ids the tokenizer does not use (a model vocabulary padded past it) get placeholder names.
  for (let id = 0; id < vocabSize; id++) if (tokens[id] === undefined) tokens[id] = `[PAD${id}]`;
  const ids = specialIds(tokenizer);
  const out: [string, MetaValue][] = [
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str('gpt-2')],
    ['tokenizer.ggml.tokens', { type: 'strings', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'i32s', value: types }],
    ['tokenizer.ggml.merges', { type: 'strings', value: merges }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
  if (ids.bos !== null) out.push(['tokenizer.ggml.bos_token_id', u32(ids.bos)]);
  if (ids.eos !== null) out.push(['tokenizer.ggml.eos_token_id', u32(ids.eos)]);
  return out;
}

export interface GgufExportOptions {
  /** Tensor type of the matrices (default 'F32'). */
  type?: GgufTensorType;
  /** general.name (default 'tensorlm'). */
  name?: string;
}

/**
 * Writes `state` (a TransformerLM's state dict with its config) and the tokenizer as a GGUF file,
 * atomically: a temporary file beside `path`, renamed when complete.
 */
export function writeGguf(path: string, state: Readonly<Record<string, Tensor>>, config: TransformerConfig, tokenizer: Tokenizer, options: GgufExportOptions = {}): { architecture: 'llama' | 'gpt2'; tensors: number; bytes: number } {
  const type = options.type ?? 'F32';
  if (!GGUF_TENSOR_TYPES.includes(type)) throw new Error(`gguf: type must be one of ${GGUF_TENSOR_TYPES.join(', ')}, got '${String(type)}'`);
  const arch = hfArchitecture(config) === 'LlamaForCausalLM' ? 'llama' : 'gpt2';
  if (tokenizer.vocabSize > config.vocabSize) throw new Error(`gguf: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocabSize ${config.vocabSize}`);
  const c = config;
  const meta: [string, MetaValue][] = [
    ['general.architecture', str(arch)],
    ['general.name', str(options.name ?? 'tensorlm')],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.alignment', u32(ALIGNMENT)],
    [`${arch}.context_length`, u32(c.maxSeqLen)],
    [`${arch}.embedding_length`, u32(c.dModel)],
    [`${arch}.block_count`, u32(c.nLayers)],
    [`${arch}.feed_forward_length`, u32(c.dFF)],
    [`${arch}.attention.head_count`, u32(c.nHeads)],
  ];
  if (arch === 'llama') {
    meta.push(
      ['llama.attention.head_count_kv', u32(c.nKvHeads)],
      ['llama.rope.dimension_count', u32(c.dModel / c.nHeads)],
      ['llama.rope.freq_base', f32(c.ropeTheta)],
      ['llama.attention.layer_norm_rms_epsilon', f32(c.normEps)],
      ['llama.vocab_size', u32(c.vocabSize)],
    );
  } else {
    meta.push(['gpt2.attention.layer_norm_epsilon', f32(c.normEps)]);
  }
  meta.push(...tokenizerMetadata(tokenizer, c.vocabSize));

  const tensors = tensorsFor(state, c, arch).map(([name, t]) => encodeTensor(name, t, type));
  const header = new ByteWriter();
  header.bytes(utf8Encode('GGUF'));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(meta.length);
  for (const [key, value] of meta) {
    header.string(key);
    writeValue(header, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) header.u64(t.shape[d]);
    header.u32(GGML_TYPE[t.type]);
    header.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.data.length / ALIGNMENT) * ALIGNMENT;
  }
  header.pad(ALIGNMENT);

  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'w');
  let written = 0;
  try {
    const put = (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done);
      written += b.length;
    };
    put(header.result());
    const zeros = new Uint8Array(ALIGNMENT);
    for (const t of tensors) {
      put(t.data);
      const pad = (ALIGNMENT - (t.data.length % ALIGNMENT)) % ALIGNMENT;
      if (pad) put(zeros.subarray(0, pad));
    }
    closeSync(fd);
    renameSync(tmp, path);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw error;
  }
  return { architecture: arch, tensors: tensors.length, bytes: written };
}
