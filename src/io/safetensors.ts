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
import type { Tensor } from '../tensor/tensor.js';
import {
  checkLittleEndianHost,
  DIGEST_PLACEHOLDER,
  digestPosition,
  decodeHeader,
  decodeHeaderLength,
  decodeTensor,
  encodeHeader,
  encodeHeaderLength,
  loadModuleFromSafetensors,
  moduleTensors,
  tensorBytes,
  type LoadedSafetensors,
  type LoadModuleOptions,
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
 * Reads a safetensors file: every tensor (or only those named in `names`) as float32 / int32 /
 * bool tensors, plus the metadata. Each tensor is read straight from the file (no whole-file
 * buffer); for bytes already in memory see parseSafetensors (safetensors-bytes.ts). With
 * `selfDigestKey` every tensor is read (in file order) and the file's digest computed on the way.
 */
export function loadSafetensors(path: string, options: { names?: readonly string[]; selfDigestKey?: string } = {}): LoadedSafetensorsFile {
  checkLittleEndianHost();
  const fd = openSync(path, 'r');
  try {
    const { header, prefix, headerBytes } = parseHeader(fd, path);
    const wanted = options.names ?? Object.keys(header.tensors);
    for (const name of wanted) if (!Object.prototype.hasOwnProperty.call(header.tensors, name)) throw new Error(`safetensors: ${path} has no tensor '${name.slice(0, 60)}'`);
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
    // With a digest, all tensors in file order (the header check guarantees they tile the data section).
    const names = hash === null ? wanted : Object.keys(header.tensors).sort((a, b) => header.tensors[a].data_offsets[0] - header.tensors[b].data_offsets[0] || header.tensors[a].data_offsets[1] - header.tensors[b].data_offsets[1]);
    const keep = new Set(wanted);
    const tensors: Record<string, Tensor> = {};
    for (const name of names) {
      const e = header.tensors[name];
      const raw = new Uint8Array(e.data_offsets[1] - e.data_offsets[0]);
      readExactly(fd, raw, header.dataStart + e.data_offsets[0], path);
      hash?.update(raw);
      if (keep.has(name)) tensors[name] = decodeTensor(raw, e, path, name);
    }
    // The requested order, as without a digest.
    const ordered: Record<string, Tensor> = {};
    for (const name of wanted) ordered[name] = tensors[name];
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
 */
export function loadModuleSafetensors(module: AnyModule, path: string, options: LoadModuleOptions = {}): LoadStateDictResult {
  return loadModuleFromSafetensors(module, loadSafetensors(path), options, path);
}
