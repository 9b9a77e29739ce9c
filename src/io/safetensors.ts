/**
 * The safetensors format (https://github.com/huggingface/safetensors), read and written by hand:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   JSON header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *             "__metadata__": {"key": "value"}} (optional metadata, strings only), space-padded
 *   rest      the raw little-endian tensor bytes; offsets are relative to the end of the header
 *
 * Writing produces F32 (float32), I32 (int32) and BOOL tensors and is atomic: the file is written
 * to a temporary name in the same directory, flushed, then renamed over the target, so a crash
 * never leaves a half-written checkpoint. Reading accepts F32, F16, BF16, F64 (converted to
 * float32), I32, I64 (to int32, range-checked), I8/I16/U8 and BOOL, reading each tensor straight
 * from the file (no whole-file buffer, so multi-gigabyte checkpoints load).
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import { formatShape, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Record<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Byte position of the data section in the file (8 + header length). */
  dataStart: number;
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');
}

function tensorDType(t: Tensor): SafetensorsDType {
  return t.dtype === 'float32' ? 'F32' : t.dtype === 'int32' ? 'I32' : 'BOOL';
}

/** The bytes of t's elements in row-major order (its own storage when contiguous). */
function tensorBytes(t: Tensor): Uint8Array {
  const c = t.contiguous();
  const a = c.storage;
  const bpe = a.BYTES_PER_ELEMENT;
  return new Uint8Array(a.buffer, a.byteOffset + c.offset * bpe, c.size * bpe);
}

/** The header JSON (space-padded to a multiple of 8 bytes) and the tensors' byte ranges. */
function buildHeader(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>>): { header: Buffer; order: [string, Tensor][] } {
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`saveSafetensors: metadata value of '${k}' must be a string`);
    json.__metadata__ = metadata;
  }
  const order = Object.entries(tensors);
  let offset = 0;
  for (const [name, t] of order) {
    if (name === '__metadata__') throw new Error(`saveSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new TypeError(`saveSafetensors: '${name}' is not a Tensor`);
    const bytes = t.size * t.storage.BYTES_PER_ELEMENT;
    json[name] = { dtype: tensorDType(t), shape: t.shape.slice(), data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(json);
  const pad = (8 - (Buffer.byteLength(text) % 8)) % 8;
  text += ' '.repeat(pad);
  return { header: Buffer.from(text, 'utf8'), order };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
  }
}

/** Writes `tensors` to `path` as safetensors, atomically (temporary file + rename). */
export function saveSafetensors(path: string, tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> = {}): void {
  checkHost();
  const { header, order } = buildHeader(tensors, metadata);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
  const fd = openSync(tmp, 'wx');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeAll(fd, length);
    writeAll(fd, header);
    for (const [, t] of order) writeAll(fd, tensorBytes(t));
    fsyncSync(fd);
    closeSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(tmp);
    throw error;
  }
  try {
    renameSync(tmp, path);
  } catch (error) {
    unlinkSync(tmp);
    throw error;
  }
}

function readExactly(fd: number, target: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(target.length - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`safetensors: ${path} ends early (truncated file?)`);
    done += n;
  }
}

function parseHeader(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new Error(`safetensors: ${path} is too short to be a safetensors file (${fileSize} bytes)`);
  const lengthBytes = Buffer.alloc(8);
  readExactly(fd, lengthBytes, 0, path);
  const n = lengthBytes.readBigUInt64LE();
  if (n > BigInt(Math.min(fileSize - 8, 100_000_000))) throw new Error(`safetensors: ${path} has an invalid header length ${n} (file is ${fileSize} bytes)`);
  const headerBytes = Buffer.alloc(Number(n));
  readExactly(fd, headerBytes, 8, path);
  let json: unknown;
  try {
    json = JSON.parse(headerBytes.toString('utf8'));
  } catch (error) {
    throw new Error(`safetensors: ${path} has a header that is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`safetensors: ${path} header is not a JSON object`);
  const dataStart = 8 + Number(n);
  const dataSize = fileSize - dataStart;
  const tensors: Record<string, SafetensorsEntry> = {};
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as Partial<SafetensorsEntry>;
    const where = `safetensors: ${path}: tensor '${name}'`;
    if (typeof e !== 'object' || e === null || !(typeof e.dtype === 'string' && e.dtype in BYTES)) throw new Error(`${where} has unsupported dtype '${String(e?.dtype)}' (supported: ${Object.keys(BYTES).join(', ')})`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${where} has an invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0] || off[1] > dataSize) {
      throw new Error(`${where} has invalid data_offsets ${JSON.stringify(off)} (data section is ${dataSize} bytes)`);
    }
    const expected = shapeSize(e.shape) * BYTES[e.dtype];
    if (off[1] - off[0] !== expected) throw new Error(`${where}: ${off[1] - off[0]} bytes for ${e.dtype} shape ${formatShape(e.shape)}, expected ${expected}`);
    tensors[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off[0], off[1]] };
  }
  return { tensors, metadata, dataStart };
}

/** The header of a safetensors file (names, dtypes, shapes, offsets, metadata) without reading any tensor. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    return parseHeader(fd, path);
  } finally {
    closeSync(fd);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function readTensor(fd: number, path: string, name: string, e: SafetensorsEntry, dataStart: number): Tensor {
  const n = shapeSize(e.shape);
  const raw = new Uint8Array(n * BYTES[e.dtype]);
  readExactly(fd, raw, dataStart + e.data_offsets[0], path);
  const buf = raw.buffer;
  switch (e.dtype) {
    case 'F32':
      return new Tensor(new Float32Array(buf), e.shape);
    case 'F64':
      return new Tensor(Float32Array.from(new Float64Array(buf)), e.shape);
    case 'BF16': {
      const src = new Uint16Array(buf);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return new Tensor(new Float32Array(bits.buffer), e.shape);
    }
    case 'F16': {
      const src = new Uint16Array(buf);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]);
      return new Tensor(out, e.shape);
    }
    case 'I32':
      return new Tensor(new Int32Array(buf), e.shape);
    case 'I64': {
      const src = new BigInt64Array(buf);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) throw new RangeError(`safetensors: ${path}: I64 tensor '${name}' holds ${v}, outside the int32 range`);
        out[i] = Number(v);
      }
      return new Tensor(out, e.shape);
    }
    case 'I16':
      return new Tensor(Int32Array.from(new Int16Array(buf)), e.shape);
    case 'I8':
      return new Tensor(Int32Array.from(new Int8Array(buf)), e.shape);
    case 'U8':
      return new Tensor(Int32Array.from(raw), e.shape);
    case 'BOOL':
      return new Tensor(raw, e.shape, undefined, 0, 'bool');
  }
}

export interface LoadedSafetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/**
 * Reads a safetensors file: every tensor (or only those named in `names`) as float32 / int32 /
 * bool tensors, plus the metadata.
 */
export function loadSafetensors(path: string, options: { names?: readonly string[] } = {}): LoadedSafetensors {
  checkHost();
  const fd = openSync(path, 'r');
  try {
    const header = parseHeader(fd, path);
    const tensors: Record<string, Tensor> = {};
    const names = options.names ?? Object.keys(header.tensors);
    for (const name of names) {
      const e = header.tensors[name];
      if (!e) throw new Error(`safetensors: ${path} has no tensor '${name}'`);
      tensors[name] = readTensor(fd, path, name, e, header.dataStart);
    }
    return { tensors, metadata: header.metadata };
  } finally {
    closeSync(fd);
  }
}

// ---- modules ---------------------------------------------------------------------------------

/**
 * Saves a module's stateDict (parameters and persistent buffers) by name. A tensor shared under
 * several names (tied weights) is written once, under its first name; the others are listed in
 * the metadata key "aliases" ({"alias": "name"} as JSON) and restored by loadModuleSafetensors.
 */
export function saveModuleSafetensors(module: AnyModule, path: string, metadata: Readonly<Record<string, string>> = {}): void {
  const state = module.stateDict();
  const tensors: Record<string, Tensor> = {};
  const aliases: Record<string, string> = {};
  const seen: { t: Tensor; name: string }[] = [];
  for (const [name, t] of Object.entries(state)) {
    const same = seen.find((s) => s.t.storage === t.storage && s.t.offset === t.offset && s.t.shape.length === t.shape.length && s.t.shape.every((d, i) => d === t.shape[i]) && s.t.strides.every((d, i) => d === t.strides[i]));
    if (same) aliases[name] = same.name;
    else {
      seen.push({ t, name });
      tensors[name] = t;
    }
  }
  const meta: Record<string, string> = { format: 'pt', ...metadata };
  if (Object.keys(aliases).length > 0) meta.aliases = JSON.stringify(aliases);
  saveSafetensors(path, tensors, meta);
}

export interface LoadModuleOptions {
  /** Every module entry present and every file tensor used (default true). */
  strict?: boolean;
  /** Maps a file's tensor name to the module's name, or null to skip the tensor (e.g. huggingFaceLlamaName). */
  rename?: (name: string) => string | null;
}

/**
 * Loads a safetensors file into a module by stateDict name (in place, so optimizers keep their
 * parameters). Tensors of another float precision (F16, BF16, F64) are converted to float32.
 */
export function loadModuleSafetensors(module: AnyModule, path: string, options: LoadModuleOptions = {}): LoadStateDictResult {
  const { tensors, metadata } = loadSafetensors(path);
  const dict: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const target = options.rename ? options.rename(name) : name;
    if (target === null) continue;
    if (target in dict) throw new Error(`safetensors: ${path}: two tensors map to '${target}'`);
    dict[target] = t;
  }
  const own = module.stateDict();
  let aliases: Record<string, string> = {};
  if (metadata.aliases) {
    try {
      aliases = JSON.parse(metadata.aliases) as Record<string, string>;
    } catch {
      aliases = {};
    }
  }
  for (const [alias, name] of Object.entries(aliases)) if (!(alias in dict) && name in dict && alias in own) dict[alias] = dict[name];
  // Within this module, names sharing one tensor (tied weights) may be given under any one of them.
  const names = Object.keys(own);
  for (const name of names) {
    if (name in dict) continue;
    const t = own[name];
    const twin = names.find((other) => other !== name && other in dict && own[other].storage === t.storage && own[other].offset === t.offset);
    if (twin) dict[name] = dict[twin];
  }
  return module.loadStateDict(dict, { strict: options.strict });
}

/**
 * The TransformerLM name of a Hugging Face Llama-family tensor (TinyLlama, Llama 2, Mistral…),
 * or null for tensors TransformerLM does not keep (rotary inv_freq buffers). With the default
 * 'half' RoPE pairing these checkpoints load without permuting any weight:
 * `model.loadSafetensors(path, { rename: huggingFaceLlamaName })`.
 */
export function huggingFaceLlamaName(name: string): string | null {
  if (name.endsWith('rotary_emb.inv_freq')) return null;
  const fixed: Record<string, string> = { 'model.embed_tokens.weight': 'tokEmb.weight', 'model.norm.weight': 'norm.weight', 'lm_head.weight': 'head.weight' };
  if (name in fixed) return fixed[name];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return name;
  const parts: Record<string, string> = {
    'self_attn.q_proj': 'attn.wq',
    'self_attn.k_proj': 'attn.wk',
    'self_attn.v_proj': 'attn.wv',
    'self_attn.o_proj': 'attn.wo',
    'mlp.gate_proj': 'ffn.w1',
    'mlp.up_proj': 'ffn.w3',
    'mlp.down_proj': 'ffn.w2',
    input_layernorm: 'attnNorm',
    post_attention_layernorm: 'ffnNorm',
  };
  const rest = m[2];
  const dot = rest.lastIndexOf('.');
  const owner = rest.slice(0, dot);
  return owner in parts ? `layers.${m[1]}.${parts[owner]}.${rest.slice(dot + 1)}` : name;
}
