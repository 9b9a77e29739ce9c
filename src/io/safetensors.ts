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
 * This file is the Node (file system) half; the format itself — header encoding and validation,
 * tensor decoding, module state with tied-weight aliases — lives in safetensors-bytes.ts, which
 * also reads and writes whole files held in memory (browsers).
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  checkLittleEndianHost,
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
export { huggingFaceLlamaName } from './safetensors-bytes.js';

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
  }
}

/** Writes `tensors` to `path` as safetensors, atomically (temporary file + rename). */
export function saveSafetensors(path: string, tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> = {}): void {
  checkLittleEndianHost();
  const { header, order } = encodeHeader(tensors, metadata);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
  const fd = openSync(tmp, 'wx');
  try {
    writeAll(fd, encodeHeaderLength(header.length));
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
  const lengthBytes = new Uint8Array(8);
  if (fileSize >= 8) readExactly(fd, lengthBytes, 0, path);
  const n = decodeHeaderLength(lengthBytes, fileSize, path);
  const headerBytes = new Uint8Array(n);
  readExactly(fd, headerBytes, 8, path);
  return decodeHeader(headerBytes, fileSize, path);
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

/**
 * Reads a safetensors file: every tensor (or only those named in `names`) as float32 / int32 /
 * bool tensors, plus the metadata. Each tensor is read straight from the file (no whole-file
 * buffer); for bytes already in memory see parseSafetensors (safetensors-bytes.ts).
 */
export function loadSafetensors(path: string, options: { names?: readonly string[] } = {}): LoadedSafetensors {
  checkLittleEndianHost();
  const fd = openSync(path, 'r');
  try {
    const header = parseHeader(fd, path);
    const tensors: Record<string, Tensor> = {};
    const names = options.names ?? Object.keys(header.tensors);
    for (const name of names) {
      const e = header.tensors[name];
      if (!e) throw new Error(`safetensors: ${path} has no tensor '${name}'`);
      const raw = new Uint8Array(e.data_offsets[1] - e.data_offsets[0]);
      readExactly(fd, raw, header.dataStart + e.data_offsets[0], path);
      tensors[name] = decodeTensor(raw, e, path, name);
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
