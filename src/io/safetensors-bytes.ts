/**
 * The safetensors format (https://github.com/huggingface/safetensors) over bytes in memory — no
 * file system, so it runs in browsers and workers as well as in Node:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   JSON header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *             "__metadata__": {"key": "value"}} (optional metadata, strings only), space-padded
 *   rest      the raw little-endian tensor bytes; offsets are relative to the end of the header
 *
 * `serializeSafetensors` writes F32 (float32), I32 (int32) and BOOL tensors; `parseSafetensors`
 * reads F32, F16, BF16, F64 (converted to float32), I32, I64 (to int32, range-checked), I8/I16/U8
 * and BOOL. The file functions in safetensors.ts (atomic writes, reading tensor by tensor from a
 * file descriptor) are built on the header and tensor helpers here.
 *
 * Reading is strict, as the format's README asks of a reader: a header of at most
 * MAX_HEADER_BYTES, valid UTF-8 beginning with '{', no key twice, at most MAX_TENSORS tensors,
 * string metadata values, byte lengths that match dtype × shape, and tensors that index the data
 * section exactly (no overlap, no gap, no trailing bytes: a file cannot hide a second payload).
 * Every error is one line naming the file (`label`), the tensor or field, and what was expected.
 */
import { halfToFloat } from './half.js';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import { formatShape, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { describeValue, isJsonObject, parseScannedJson, quoteText, scanJson, truncateList } from './json.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

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

export interface LoadedSafetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export interface LoadModuleOptions {
  /** Every module entry present and every file tensor used (default true). */
  strict?: boolean;
  /** Maps a file's tensor name to the module's name, or null to skip the tensor (e.g. huggingFaceLlamaName). */
  rename?: (name: string) => string | null;
}

/** Bytes in memory: a Uint8Array (any view) or a whole ArrayBuffer. */
export type SafetensorsBytes = Uint8Array | ArrayBuffer;

const utf8Encoder = new TextEncoder();

/** Typed arrays are read and written in host byte order, which must be the format's (little-endian). */
export function checkLittleEndianHost(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: only little-endian hosts are supported');
}

function tensorDType(t: Tensor): SafetensorsDType {
  return t.dtype === 'float32' ? 'F32' : t.dtype === 'int32' ? 'I32' : 'BOOL';
}

/** The bytes of t's elements in row-major order (its own storage when contiguous). */
export function tensorBytes(t: Tensor): Uint8Array {
  const c = t.contiguous();
  const a = c.storage;
  const bpe = a.BYTES_PER_ELEMENT;
  return new Uint8Array(a.buffer, a.byteOffset + c.offset * bpe, c.size * bpe);
}

/** The header JSON (space-padded to a multiple of 8 bytes) and the tensors in the order they are written. */
export function encodeHeader(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>>): { header: Uint8Array; order: [string, Tensor][] } {
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
  const encoded = utf8Encoder.encode(JSON.stringify(json));
  const pad = (8 - (encoded.length % 8)) % 8;
  const header = new Uint8Array(encoded.length + pad);
  header.set(encoded);
  header.fill(0x20, encoded.length);
  return { header, order };
}

/** The 8-byte little-endian length prefix of a header. */
export function encodeHeaderLength(length: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  return out;
}

/**
 * Largest header accepted, in bytes. The reference implementation allows 100 MB; a TensorLM
 * checkpoint's header is a few kilobytes and a large Hugging Face shard's about 1 MB, while a
 * 29 MB header of 500,000 empty tensors took 5.2 s and 806 MB to parse before this cap.
 */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** Most tensors one file may hold (a 70B Llama has 723; a TensorLM checkpoint, 3 per parameter). */
export const MAX_TENSORS = 65_536;
/** Nesting of the header JSON: the top object, a tensor entry, its shape / data_offsets arrays. */
const MAX_HEADER_DEPTH = 3;

/** Checks the file size and the 8-byte length prefix; returns the header length. */
export function decodeHeaderLength(prefix: Uint8Array, fileSize: number, label: string): number {
  if (fileSize < 8) throw new Error(`safetensors: ${label} is too short to be a safetensors file (${fileSize} bytes)`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`safetensors: ${label} has a header length of ${n} bytes, more than the limit of ${MAX_HEADER_BYTES} (MAX_HEADER_BYTES)`);
  if (n > BigInt(fileSize - 8)) throw new Error(`safetensors: ${label} has an invalid header length ${n} (file is ${fileSize} bytes: truncated?)`);
  if (n < 2n) throw new Error(`safetensors: ${label} has an invalid header length ${n} (a header is at least '{}')`);
  return Number(n);
}

/**
 * Parses and validates the header JSON (the N bytes after the length prefix) of a file of
 * `fileSize` bytes, as the format requires: valid UTF-8 beginning with '{', no duplicate keys,
 * `__metadata__` a string-to-string map, each tensor a supported dtype with a shape whose byte
 * length matches its data_offsets, and the tensors covering the data section exactly — no
 * overlap, no gap, no trailing bytes. At most MAX_TENSORS tensors.
 */
export function decodeHeader(headerBytes: Uint8Array, fileSize: number, label: string): SafetensorsHeader {
  const fail = (what: string): never => {
    throw new Error(`safetensors: ${label}: ${what}`);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail('the header is not valid UTF-8');
  }
  if (text.charCodeAt(0) !== 0x7b) fail(`the header must begin with '{', found ${quoteText(text.slice(0, 8))}`);
  // Counted while scanning, before JSON.parse builds anything: tensors plus one __metadata__ key.
  const problem = scanJson(text, { maxDepth: MAX_HEADER_DEPTH, maxTopLevelKeys: MAX_TENSORS + 1 });
  if (problem !== null) fail(problem.startsWith('the top-level object has more than') ? `the header lists more than ${MAX_TENSORS} tensors (MAX_TENSORS)` : `header: invalid JSON: ${problem}`);
  const json = parseScannedJson(text, `safetensors: ${label}: header`);
  if (!isJsonObject(json)) return fail('the header is not a JSON object');
  const count = Object.keys(json).length - (Object.prototype.hasOwnProperty.call(json, '__metadata__') ? 1 : 0);
  if (count > MAX_TENSORS) fail(`the header lists more than ${MAX_TENSORS} tensors (MAX_TENSORS)`);
  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  const tensors: Record<string, SafetensorsEntry> = {};
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isJsonObject(raw)) fail(`__metadata__ must be an object of strings, got ${describeValue(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value of ${quoteText(k)} must be a string, got ${describeValue(v)}`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = { toString: () => `tensor ${quoteText(name)}` };
    if (name === '__proto__') fail(`${where} cannot be read (the name is reserved in JavaScript objects)`);
    if (!isJsonObject(raw)) return fail(`${where} must be an object with dtype, shape and data_offsets, got ${describeValue(raw)}`);
    const e = raw as Partial<Record<keyof SafetensorsEntry, unknown>>;
    if (!(typeof e.dtype === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, e.dtype))) {
      fail(`${where} has unsupported dtype ${typeof e.dtype === 'string' ? `'${e.dtype.slice(0, 20)}'` : describeValue(e.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    const dtype = e.dtype as SafetensorsDType;
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      fail(`${where} has an invalid shape (expected an array of non-negative integers, got ${Array.isArray(shape) ? `[${truncateList(shape.map((d) => describeValue(d)))}]` : describeValue(shape)})`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) || (off[1] as number) < (off[0] as number)) {
      fail(`${where} has invalid data_offsets (expected [begin, end] with 0 <= begin <= end, got ${Array.isArray(off) ? `[${truncateList(off.map((o) => describeValue(o)))}]` : describeValue(off)})`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) fail(`${where} has data_offsets [${begin}, ${end}] beyond the data section of ${dataSize} bytes (truncated file?)`);
    const dims = shape as number[];
    const elements = dims.reduce((a, d) => a * d, 1);
    const expected = elements * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      const shown = dims.length > 8 ? `a ${dims.length}-dimensional shape` : `shape ${formatShape(dims)}`;
      fail(`${where}: ${end - begin} bytes for ${dtype} ${shown}, expected ${expected}`);
    }
    tensors[name] = { dtype, shape: dims, data_offsets: [begin, end] };
  }
  checkCoverage(tensors, dataSize, fail);
  return { tensors, metadata, dataStart };
}

/** The tensors must index the whole data section: sorted by offset, each begins where the last ended. */
function checkCoverage(tensors: Record<string, SafetensorsEntry>, dataSize: number, fail: (what: string) => never): void {
  const order = Object.keys(tensors).map((name) => ({ name, begin: tensors[name].data_offsets[0], end: tensors[name].data_offsets[1] }));
  order.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous = '';
  for (const { name, begin, end } of order) {
    if (begin < at) fail(`tensor ${quoteText(name)} (bytes ${begin}..${end}) overlaps tensor ${quoteText(previous)} (which ends at ${at})`);
    if (begin > at) fail(`bytes ${at}..${begin} of the data section belong to no tensor (a gap before tensor ${quoteText(name)})`);
    at = end;
    previous = name;
  }
  if (at !== dataSize) fail(`${dataSize - at} trailing bytes after the last tensor (the data section is ${dataSize} bytes, the tensors index ${at})`);
}

/** The value a self-digest field holds while the digest is computed (and when it is checked). */
export const DIGEST_PLACEHOLDER = '0'.repeat(64);

/**
 * Byte position of the 64 hex digits of metadata field `key` in encoded header bytes, or null
 * when the field is not there exactly once in its plain form `"key":"<64 hex>"`. Inside JSON
 * strings quotes are escaped, so that text can only be the field itself.
 */
export function digestPosition(header: Uint8Array, key: string): number | null {
  const pattern = utf8Encoder.encode(`${JSON.stringify(key)}:"`);
  const find = (from: number): number => {
    outer: for (let i = header.indexOf(pattern[0], from); i >= 0 && i + pattern.length <= header.length; i = header.indexOf(pattern[0], i + 1)) {
      for (let k = 1; k < pattern.length; k++) if (header[i + k] !== pattern[k]) continue outer;
      return i;
    }
    return -1;
  };
  const at = find(0);
  if (at < 0 || find(at + 1) >= 0) return null;
  const start = at + pattern.length;
  if (start + 65 > header.length || header[start + 64] !== 0x22) return null;
  for (let i = start; i < start + 64; i++) {
    const c = header[i];
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return null;
  }
  return start;
}

/**
 * What a self-digest (saveSafetensors' `selfDigestKey`) is the SHA-256 of: a copy of the whole
 * file's bytes with the field's 64 hex digits read as '0'; null when the field is missing or not
 * in its plain form. For bytes in memory (a browser digests them with WebCrypto).
 */
export function selfDigestInput(bytes: SafetensorsBytes, key: string): Uint8Array | null {
  const b = asBytes(bytes);
  const n = decodeHeaderLength(b.subarray(0, 8), b.length, 'data');
  const at = digestPosition(b.subarray(8, 8 + n), key);
  if (at === null) return null;
  const copy = b.slice();
  copy.set(utf8Encoder.encode(DIGEST_PLACEHOLDER), 8 + at);
  return copy;
}

/** The element type a stored dtype loads as: float32 for floats, int32 for integers, bool for BOOL. */
export function loadedDType(dtype: SafetensorsDType): 'float32' | 'int32' | 'bool' {
  return dtype === 'BOOL' ? 'bool' : dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64' ? 'float32' : 'int32';
}

/** Bytes per stored element of a dtype. */
export function dtypeBytes(dtype: SafetensorsDType): number {
  return DTYPE_BYTES[dtype];
}

/**
 * Converts whole stored elements into a loaded array: `raw` holds elements of `dtype` (its
 * byteOffset a multiple of their size), written to `out` from element `at` on. `out` is the array
 * of loadedDType(dtype). The one conversion of every reader (decodeTensor, and the file reader's
 * chunks), so F16/BF16/F64/I64… load the same from bytes and from files.
 */
export function convertElements(raw: Uint8Array, dtype: SafetensorsDType, out: Float32Array | Int32Array | Uint8Array, at: number, label: string, name: string): void {
  const n = raw.length / DTYPE_BYTES[dtype];
  const buf = raw.buffer;
  const o = raw.byteOffset;
  switch (dtype) {
    case 'F32':
      out.set(new Float32Array(buf, o, n), at);
      return;
    case 'I32':
      out.set(new Int32Array(buf, o, n), at);
      return;
    case 'F64':
      out.set(new Float64Array(buf, o, n), at);
      return;
    case 'BF16': {
      // bfloat16 is the top half of a float32: shift its bits into place.
      const src = new Uint16Array(buf, o, n);
      const bits = new Uint32Array(out.buffer, out.byteOffset + at * 4, n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return;
    }
    case 'F16': {
      const src = new Uint16Array(buf, o, n);
      for (let i = 0; i < n; i++) out[at + i] = halfToFloat(src[i]);
      return;
    }
    case 'I64': {
      const src = new BigInt64Array(buf, o, n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) throw new RangeError(`safetensors: ${label}: I64 tensor '${name}' holds ${v}, outside the int32 range`);
        out[at + i] = Number(v);
      }
      return;
    }
    case 'I16':
      out.set(new Int16Array(buf, o, n), at);
      return;
    case 'I8':
      out.set(new Int8Array(buf, o, n), at);
      return;
    case 'U8':
    case 'BOOL':
      out.set(raw, at);
      return;
  }
}

/** A new zeroed array of `n` elements of a loaded dtype. */
export function allocateLoaded(dtype: 'float32' | 'int32' | 'bool', n: number): Float32Array | Int32Array | Uint8Array {
  return dtype === 'float32' ? new Float32Array(n) : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
}

/**
 * A tensor from its raw bytes. `raw` must own its whole (aligned) ArrayBuffer — a fresh array —
 * because F32, I32 and BOOL tensors view that buffer without copying.
 */
export function decodeTensor(raw: Uint8Array, e: SafetensorsEntry, label: string, name: string): Tensor {
  const buf = raw.buffer as ArrayBuffer;
  switch (e.dtype) {
    case 'F32':
      return new Tensor(new Float32Array(buf), e.shape);
    case 'I32':
      return new Tensor(new Int32Array(buf), e.shape);
    case 'BOOL':
      return new Tensor(raw, e.shape, undefined, 0, 'bool');
    default: {
      const kind = loadedDType(e.dtype);
      const out = allocateLoaded(kind, shapeSize(e.shape));
      convertElements(raw, e.dtype, out, 0, label, name);
      return new Tensor(out, e.shape, undefined, 0, kind);
    }
  }
}

function asBytes(bytes: SafetensorsBytes): Uint8Array {
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
}

/** The header (names, dtypes, shapes, offsets, metadata) of safetensors bytes. */
export function parseSafetensorsHeader(bytes: SafetensorsBytes, label = 'data'): SafetensorsHeader {
  const b = asBytes(bytes);
  const n = decodeHeaderLength(b.subarray(0, 8), b.length, label);
  return decodeHeader(b.subarray(8, 8 + n), b.length, label);
}

/**
 * Reads safetensors bytes (e.g. a fetched or picked `.safetensors` file): every tensor (or only
 * those named in `names`) as float32 / int32 / bool tensors, plus the metadata. The tensors are
 * copies; `bytes` can be dropped afterwards.
 */
export function parseSafetensors(bytes: SafetensorsBytes, options: { names?: readonly string[]; label?: string } = {}): LoadedSafetensors {
  checkLittleEndianHost();
  const b = asBytes(bytes);
  const label = options.label ?? 'data';
  const header = parseSafetensorsHeader(b, label);
  const tensors: Record<string, Tensor> = {};
  for (const name of options.names ?? Object.keys(header.tensors)) {
    const e = header.tensors[name];
    if (!e) throw new Error(`safetensors: ${label} has no tensor '${name.slice(0, 60)}'`);
    // A fresh, aligned copy (not b.slice: on a Node Buffer that is a view of the whole pool).
    const raw = new Uint8Array(e.data_offsets[1] - e.data_offsets[0]);
    raw.set(b.subarray(header.dataStart + e.data_offsets[0], header.dataStart + e.data_offsets[1]));
    tensors[name] = decodeTensor(raw, e, label, name);
  }
  return { tensors, metadata: header.metadata };
}

/** `tensors` (and string metadata) as the bytes of a safetensors file. */
export function serializeSafetensors(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  checkLittleEndianHost();
  const { header, order } = encodeHeader(tensors, metadata);
  const parts = order.map(([, t]) => tensorBytes(t));
  const out = new Uint8Array(8 + header.length + parts.reduce((s, p) => s + p.length, 0));
  out.set(encodeHeaderLength(header.length), 0);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- modules ---------------------------------------------------------------------------------

/**
 * A module's stateDict (parameters and persistent buffers) prepared for writing: a tensor shared
 * under several names (tied weights) appears once, under its first name, and the others are listed
 * in the metadata key "aliases" ({"alias": "name"} as JSON).
 */
export function moduleTensors(module: AnyModule, metadata: Readonly<Record<string, string>> = {}): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
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
  return { tensors, metadata: meta };
}

/** A module's weights as safetensors bytes (tied weights written once; see moduleTensors). */
export function serializeModuleSafetensors(module: AnyModule, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const m = moduleTensors(module, metadata);
  return serializeSafetensors(m.tensors, m.metadata);
}

/**
 * Which stored tensor each of a module's stateDict names loads from: the stored names renamed
 * (`options.rename`), aliased (tied) names restored from the metadata key "aliases", and names that
 * share one tensor in the module given under any one of them. Keys are module names, values stored
 * names; names mapping to nothing are left out (loadStateDict reports them).
 */
export function moduleLoadPlan(module: AnyModule, storedNames: readonly string[], metadata: Readonly<Record<string, string>>, options: LoadModuleOptions, label: string): Record<string, string> {
  const plan: Record<string, string> = {};
  for (const name of storedNames) {
    const target = options.rename ? options.rename(name) : name;
    if (target === null) continue;
    if (target in plan) throw new Error(`safetensors: ${label}: two tensors map to '${target}'`);
    plan[target] = name;
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
  for (const [alias, name] of Object.entries(aliases)) if (!(alias in plan) && name in plan && alias in own) plan[alias] = plan[name];
  // Within this module, names sharing one tensor (tied weights) may be given under any one of them.
  const names = Object.keys(own);
  for (const name of names) {
    if (name in plan) continue;
    const t = own[name];
    const twin = names.find((other) => other !== name && other in plan && own[other].storage === t.storage && own[other].offset === t.offset);
    if (twin) plan[name] = plan[twin];
  }
  return plan;
}

/**
 * Loads read safetensors into a module by stateDict name (in place, so optimizers keep their
 * parameters): renames, restores aliased (tied) names from the metadata, and lets names that
 * share one tensor in the module be given under any one of them.
 */
export function loadModuleFromSafetensors(module: AnyModule, loaded: LoadedSafetensors, options: LoadModuleOptions = {}, label = 'data'): LoadStateDictResult {
  const plan = moduleLoadPlan(module, Object.keys(loaded.tensors), loaded.metadata, options, label);
  const dict: Record<string, Tensor> = {};
  for (const [name, stored] of Object.entries(plan)) dict[name] = loaded.tensors[stored];
  return module.loadStateDict(dict, { strict: options.strict });
}

/**
 * Loads safetensors bytes into a module. A TensorLM training checkpoint (`best.safetensors`,
 * `latest.safetensors`) loads too with `rename: checkpointModelName`, which skips its optimizer
 * tensors.
 */
export function loadModuleSafetensorsBytes(module: AnyModule, bytes: SafetensorsBytes, options: LoadModuleOptions & { label?: string } = {}): LoadStateDictResult {
  const label = options.label ?? 'data';
  return loadModuleFromSafetensors(module, parseSafetensors(bytes, { label }), options, label);
}

/** For loading a TensorLM checkpoint into a model: its model tensors keep their names, optimizer buffers are skipped. */
export function checkpointModelName(name: string): string | null {
  return name.startsWith('optimizer.') ? null : name;
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
