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
 * from the file (no whole-file buffer, so multi-gigabyte checkpoints load) — into new tensors, or
 * with `into` into given ones (a model's parameters: loadModuleSafetensors, readCheckpoint's
 * `model`), so that loading weights holds them once, not twice.
 *
 * `selfDigestKey` (used by TensorLM checkpoints) stores in the metadata a SHA-256 of the whole file,
 * the header and metadata included, with the digest's own 64 characters read as '0'.
 *
 * This file is the Node (file system) half; the format itself — header encoding and validation,
 * tensor decoding, module state with tied-weight aliases — lives in safetensors-bytes.ts, which
 * also reads and writes whole files held in memory (browsers).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import { noGrad } from '../autograd/grad-mode.js';
import { formatShape, shapeSize } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import {
  allocateLoaded,
  checkLittleEndianHost,
  convertElements,
  dtypeBytes,
  loadedDType,
  moduleLoadPlan,
  DIGEST_PLACEHOLDER,
  digestPosition,
  decodeHeader,
  decodeHeaderLength,
  encodeHeader,
  encodeHeaderLength,
  moduleTensors,
  tensorBytes,
  type LoadedSafetensors,
  type LoadModuleOptions,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './safetensors-bytes.js';

export type { LoadedSafetensors, LoadModuleOptions, SafetensorsDType, SafetensorsEntry, SafetensorsHeader } from './safetensors-bytes.js';
export { huggingFaceLlamaName, MAX_HEADER_BYTES, MAX_TENSORS } from './safetensors-bytes.js';

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
  }
}

export interface SaveSafetensorsOptions {
  /**
   * A metadata key to hold the file's own SHA-256 (hex): of every byte of the file — length
   * prefix, header with all its metadata, tensor data — with this field's 64 digits read as '0'.
   * loadSafetensors recomputes it with the same option. The digest is computed in memory before
   * the single write, so the file is still written once and atomically.
   */
  selfDigestKey?: string;
}

/** Writes `tensors` to `path` as safetensors, atomically (temporary file + rename). */
export function saveSafetensors(path: string, tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> = {}, options: SaveSafetensorsOptions = {}): void {
  checkLittleEndianHost();
  const key = options.selfDigestKey;
  const { header, order } = encodeHeader(tensors, key === undefined ? metadata : { ...metadata, [key]: DIGEST_PLACEHOLDER });
  const prefix = encodeHeaderLength(header.length);
  if (key !== undefined) {
    const at = digestPosition(header, key);
    if (at === null) throw new Error(`saveSafetensors: cannot place the digest field '${key}' in the header of ${path}`);
    const hash = createHash('sha256').update(prefix).update(header);
    for (const [, t] of order) hash.update(tensorBytes(t));
    header.set(Buffer.from(hash.digest('hex'), 'latin1'), at);
  }
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
  const fd = openSync(tmp, 'wx');
  try {
    writeAll(fd, prefix);
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

function parseHeader(fd: number, path: string): { header: SafetensorsHeader; prefix: Uint8Array; headerBytes: Uint8Array } {
  const fileSize = fstatSync(fd).size;
  const prefix = new Uint8Array(8);
  if (fileSize >= 8) readExactly(fd, prefix, 0, path);
  const n = decodeHeaderLength(prefix, fileSize, path);
  const headerBytes = new Uint8Array(n);
  readExactly(fd, headerBytes, 8, path);
  return { header: decodeHeader(headerBytes, fileSize, path), prefix, headerBytes };
}

/** The header of a safetensors file (names, dtypes, shapes, offsets, metadata) without reading any tensor. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    return parseHeader(fd, path).header;
  } finally {
    closeSync(fd);
  }
}

export interface LoadedSafetensorsFile extends LoadedSafetensors {
  /** The validated header: each tensor's dtype as stored (F16 loads as float32), shape and offsets. */
  header: SafetensorsHeader;
  /**
   * With `selfDigestKey`: the file's SHA-256 as saveSafetensors computes it, to compare with
   * `metadata[selfDigestKey]`; null when that field is missing or not in its plain form.
   */
  selfDigest: string | null;
}

/**
 * A destination that takes a float tensor's values as they are read, in order and in chunks,
 * instead of holding them all: `write(values, offset)` gets elements [offset, offset + length) as
 * float32 (the chunk is reused afterwards). For consumers that transform a matrix row by row as it
 * arrives (quantizing while loading), so that no buffer of the whole tensor exists.
 */
export interface TensorSink {
  readonly shape: readonly number[];
  write(values: Float32Array, offset: number): void;
}

export interface LoadSafetensorsOptions {
  /** The tensors to read into new tensors (default: all of them, or none when `into` is given). */
  names?: readonly string[];
  /** See LoadedSafetensorsFile.selfDigest: every tensor is then read (in file order) or streamed through the hash. */
  selfDigestKey?: string;
  /**
   * Tensors to read in place, by stored name: each is read from the file straight into the
   * tensor's own storage (F16/BF16/F64 converted chunk by chunk), so loading weights into a model
   * needs no second copy of them. A function is called with the validated header before any tensor
   * is read, to choose the destinations from it (or throw). A destination must have the stored
   * shape; one of another dtype or not contiguous is filled through a copy of that one tensor.
   * These tensors are returned in `tensors` too. With a self-digest, their contents are undefined
   * when the digest does not match.
   */
  into?: Readonly<Record<string, Tensor | TensorSink>> | ((header: SafetensorsHeader) => Readonly<Record<string, Tensor | TensorSink>>);
  /**
   * Called with each `into` tensor's stored name once it has been read (in file order). With it,
   * the reader keeps no reference to a destination after reading it, and destinations are not in
   * the returned `tensors`: a caller can replace a tensor as soon as it arrives (quantizing a
   * model while it loads) and the garbage collector can take the original.
   */
  onRead?: (name: string) => void;
}

/**
 * Bytes read at a time where a tensor is not read straight into its destination (converted
 * dtypes, tensors only hashed): a bounded buffer whatever the tensor's size.
 */
const CHUNK_BYTES = 8 * 1024 * 1024;

type LoadedArray = Float32Array | Int32Array | Uint8Array;

/**
 * Reads `length` bytes at `position` through the scratch buffer, `size`-byte elements at a time
 * (whole elements per chunk), feeding `hash`, and hands each chunk to `use` with its element index.
 */
function readChunks(fd: number, position: number, length: number, size: number, hash: Hash | null, scratch: () => Uint8Array, path: string, use: (chunk: Uint8Array, at: number) => void): void {
  const buffer = scratch();
  const step = Math.floor(buffer.length / size) * size;
  for (let done = 0; done < length; done += step) {
    const chunk = buffer.subarray(0, Math.min(step, length - done));
    readExactly(fd, chunk, position + done, path);
    hash?.update(chunk);
    use(chunk, done / size);
  }
}

/**
 * Reads tensor `e` of the file into `out` (its loaded dtype, exactly its elements), feeding `hash`
 * on the way: straight into `out`'s bytes when no conversion is needed, otherwise through `scratch`.
 */
function readTensor(fd: number, dataStart: number, e: SafetensorsEntry, out: LoadedArray, hash: Hash | null, scratch: () => Uint8Array, path: string, name: string): void {
  const position = dataStart + e.data_offsets[0];
  const length = e.data_offsets[1] - e.data_offsets[0];
  const direct = (e.dtype === 'F32' && out instanceof Float32Array) || (e.dtype === 'I32' && out instanceof Int32Array) || ((e.dtype === 'BOOL' || e.dtype === 'U8') && out instanceof Uint8Array);
  if (direct) {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, length);
    readExactly(fd, bytes, position, path);
    hash?.update(bytes);
    return;
  }
  readChunks(fd, position, length, dtypeBytes(e.dtype), hash, scratch, path, (chunk, at) => convertElements(chunk, e.dtype, out, at, path, name));
}

/** Reads float tensor `e` in chunks into `sink` (TensorSink), converting to float32 where needed. */
function readIntoSink(fd: number, dataStart: number, e: SafetensorsEntry, sink: TensorSink, hash: Hash | null, scratch: () => Uint8Array, path: string, name: string): void {
  const size = dtypeBytes(e.dtype);
  const values = new Float32Array(Math.floor(scratch().length / size));
  readChunks(fd, dataStart + e.data_offsets[0], e.data_offsets[1] - e.data_offsets[0], size, hash, scratch, path, (chunk, at) => {
    const count = chunk.length / size;
    convertElements(chunk, e.dtype, values, 0, path, name);
    sink.write(values.subarray(0, count), at);
  });
}

/**
 * Reads a safetensors file: every tensor (or only those named in `names`) as float32 / int32 /
 * bool tensors, plus the metadata; with `into`, tensors are read in place into given tensors
 * (a model's parameters). Each tensor is read straight from the file (no whole-file buffer); for
 * bytes already in memory see parseSafetensors (safetensors-bytes.ts). With `selfDigestKey`
 * every tensor is read in file order and the file's digest computed on the way; the tensors
 * neither named nor in `into` are streamed through the hash in bounded chunks and dropped.
 */
export function loadSafetensors(path: string, options: LoadSafetensorsOptions = {}): LoadedSafetensorsFile {
  checkLittleEndianHost();
  const fd = openSync(path, 'r');
  try {
    const { header, prefix, headerBytes } = parseHeader(fd, path);
    const has = (name: string) => Object.prototype.hasOwnProperty.call(header.tensors, name);
    // A copy the reader owns, so that with onRead it can drop each destination once read.
    const into: Record<string, Tensor | TensorSink> = { ...(typeof options.into === 'function' ? options.into(header) : (options.into ?? {})) };
    const intoNames = Object.keys(into);
    const wanted = options.names ?? (options.into === undefined ? Object.keys(header.tensors) : []);
    for (const name of [...wanted, ...intoNames]) if (!has(name)) throw new Error(`safetensors: ${path} has no tensor '${name.slice(0, 60)}'`);
    for (const name of intoNames) {
      const t = into[name];
      const shape = header.tensors[name].shape;
      if (!(t instanceof Tensor) && !(t !== null && typeof t === 'object' && typeof (t as TensorSink).write === 'function' && Array.isArray(t.shape))) {
        throw new TypeError(`safetensors: ${path}: the destination of tensor '${name.slice(0, 60)}' is not a Tensor or a sink`);
      }
      if (!(t instanceof Tensor) && loadedDType(header.tensors[name].dtype) !== 'float32') throw new TypeError(`safetensors: ${path}: tensor '${name.slice(0, 60)}' is ${header.tensors[name].dtype}; a sink takes float tensors only`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`safetensors: ${path}: tensor '${name.slice(0, 60)}' has shape ${formatShape(shape)}, its destination's is ${formatShape(t.shape)}`);
      }
    }
    const key = options.selfDigestKey;
    let hash: Hash | null = null;
    if (key !== undefined && typeof header.metadata[key] === 'string') {
      const at = digestPosition(headerBytes, key);
      if (at !== null) {
        const zeroed = headerBytes.slice();
        zeroed.set(Buffer.from(DIGEST_PLACEHOLDER, 'latin1'), at);
        hash = createHash('sha256').update(prefix).update(zeroed);
      }
    }
    const keep = new Set([...wanted, ...intoNames]);
    // With a digest, all tensors in file order (the header check guarantees they tile the data section).
    const byOffset = (a: string, b: string) => header.tensors[a].data_offsets[0] - header.tensors[b].data_offsets[0] || header.tensors[a].data_offsets[1] - header.tensors[b].data_offsets[1];
    const names = (hash === null ? [...keep] : Object.keys(header.tensors)).sort(byOffset);
    let buffer: Uint8Array | null = null;
    const scratch = () => (buffer ??= new Uint8Array(CHUNK_BYTES));
    const tensors: Record<string, Tensor> = {};
    for (const name of names) {
      const e = header.tensors[name];
      const kind = loadedDType(e.dtype);
      const dest = Object.prototype.hasOwnProperty.call(into, name) ? into[name] : undefined;
      if (dest !== undefined && !(dest instanceof Tensor)) {
        readIntoSink(fd, header.dataStart, e, dest, hash, scratch, path, name);
      } else if (dest !== undefined && dest.dtype === kind && dest.isContiguous) {
        readTensor(fd, header.dataStart, e, dest.storage.subarray(dest.offset, dest.offset + dest.size) as LoadedArray, hash, scratch, path, name);
        tensors[name] = dest;
      } else if (keep.has(name)) {
        const out = allocateLoaded(kind, shapeSize(e.shape));
        readTensor(fd, header.dataStart, e, out, hash, scratch, path, name);
        const t = new Tensor(out, e.shape, undefined, 0, kind);
        // A destination this reader cannot fill in place: one tensor's copy, as loadStateDict makes.
        if (dest !== undefined) noGrad(() => dest.copy_(t));
        tensors[name] = dest ?? t;
      } else if (hash !== null) {
        // Checked, not kept: streamed through the hash.
        readChunks(fd, header.dataStart + e.data_offsets[0], e.data_offsets[1] - e.data_offsets[0], 1, hash, scratch, path, () => {});
      }
      if (dest !== undefined && options.onRead !== undefined) {
        delete into[name];
        delete tensors[name];
        options.onRead(name);
      }
    }
    // The requested order, as without a digest.
    const ordered: Record<string, Tensor> = {};
    for (const name of [...wanted, ...(options.onRead === undefined ? intoNames : [])]) ordered[name] = tensors[name];
    return { tensors: ordered, metadata: header.metadata, header, selfDigest: hash === null ? null : hash.digest('hex') };
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
  const m = moduleTensors(module, metadata);
  saveSafetensors(path, m.tensors, m.metadata);
}

/**
 * Loads a safetensors file into a module by stateDict name (in place, so optimizers keep their
 * parameters). Tensors of another float precision (F16, BF16, F64) are converted to float32.
 * Each tensor is read straight into the module's own tensor (no copy of the weights in between);
 * names, shapes and strictness are checked by loadStateDict, with its messages, before any is read.
 */
export function loadModuleSafetensors(module: AnyModule, path: string, options: LoadModuleOptions = {}): LoadStateDictResult {
  let result: LoadStateDictResult | null = null;
  // Module tensors that load the same stored tensor without sharing its storage: copied afterwards.
  const copies: [Tensor, Tensor][] = [];
  loadSafetensors(path, {
    into: (header) => {
      const plan = moduleLoadPlan(module, Object.keys(header.tensors), header.metadata, options, path);
      const own = module.stateDict();
      // loadStateDict's checks and messages (names under strict, shapes) with nothing to copy: each
      // entry is the module's own tensor, or, where the shapes differ, a stand-in of the stored
      // shape (zero strides, one element) that only its size-mismatch message reads.
      const check: Record<string, Tensor> = {};
      for (const [name, stored] of Object.entries(plan)) {
        const target = Object.prototype.hasOwnProperty.call(own, name) ? own[name] : undefined;
        const shape = header.tensors[stored].shape;
        const same = target !== undefined && target.shape.length === shape.length && target.shape.every((d, i) => d === shape[i]);
        check[name] = same ? target : new Tensor(new Float32Array(1), shape, shape.map(() => 0));
      }
      try {
        result = module.loadStateDict(check, { strict: options.strict });
      } catch (error) {
        // loadStateDict's message (names, shapes), with the file it came from.
        throw new Error(`safetensors: ${path}: ${error instanceof Error ? error.message : String(error)}`);
      }
      const into: Record<string, Tensor> = {};
      for (const [name, stored] of Object.entries(plan)) {
        if (!Object.prototype.hasOwnProperty.call(own, name)) continue;
        const first = Object.prototype.hasOwnProperty.call(into, stored) ? into[stored] : undefined;
        if (first === undefined) into[stored] = own[name];
        else if (first.storage !== own[name].storage || first.offset !== own[name].offset) copies.push([own[name], first]);
      }
      return into;
    },
  });
  noGrad(() => {
    for (const [target, source] of copies) target.copy_(source);
  });
  if (result === null) throw new Error(`safetensors: ${path}: internal error: the module was not checked`);
  return result;
}
