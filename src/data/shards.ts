/**
 * Token shards: a corpus too large for memory, tokenized once into binary files that training
 * reads window by window (nanoGPT's train.bin / val.bin, cut into pieces so they can be written
 * as a stream and copied around).
 *
 * A shard set is a directory:
 *   shards.json        the manifest (ShardManifest): splits, their files and token counts
 *   tokenizer.json     the tokenizer the ids came from (a run trained on the shards uses it)
 *   train-00000.bin …  shard files, in order; the split is the concatenation of its files
 *   val-00000.bin …
 *
 * A shard file (little-endian) is a 16-byte header — the magic "TLMS", u16 format version (1),
 * u16 bytes per token (2: uint16, 4: uint32), u64 token count — then the ids. Documents are
 * concatenated with a separator (the tokenizer's end-of-text token, or the ids of "\n\n"), so a
 * training window may span two documents, as in nanoGPT and GPT-2.
 *
 * The set is written into a temporary directory next to the target and renamed into place when
 * complete, so a killed `tensorlm data shard` never leaves a set that looks usable.
 * Reading never loads a file whole: each window is one positioned read, so memory does not grow
 * with the corpus.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { describeValue, isJsonObject } from '../io/json.js';
import { readJsonFile, writeFileAtomic } from './files.js';
import type { Batch, Split, TokenSequence } from './dataset.js';

export const SHARD_MAGIC = 'TLMS';
export const SHARD_VERSION = 1;
export const SHARD_HEADER_BYTES = 16;
export const SHARD_MANIFEST = 'shards.json';
export const SHARD_TOKENIZER = 'tokenizer.json';
/** Tokens per shard file unless told otherwise: 200 MB of uint16 ids. */
export const DEFAULT_SHARD_TOKENS = 100_000_000;

export type ShardDtype = 'uint16' | 'uint32';

export interface ShardHeader {
  version: number;
  dtype: ShardDtype;
  count: number;
}

export interface ShardFileInfo {
  /** File name inside the shard directory. */
  file: string;
  tokens: number;
}

/** What shards.json holds. */
export interface ShardManifest {
  format: 'tensorlm-shards';
  version: 1;
  dtype: ShardDtype;
  /** The tokenizer's vocabulary size: every id is below it. */
  vocabSize: number;
  /** The tokenizer file inside the directory. */
  tokenizer: string;
  /** How documents are separated in the stream ("eot" = the tokenizer's end-of-text token). */
  separator: string;
  /** How documents were assigned to splits, e.g. "document (val fraction 0.1, seed 1337)". */
  split: string;
  documents: Record<Split, number>;
  tokens: Record<Split, number>;
  files: Record<Split, ShardFileInfo[]>;
  /** Free-form provenance (inputs, date, tokenizer spec). */
  source?: Record<string, unknown>;
}

/** The smallest id type that holds every id of a vocabulary. */
export function shardDtypeFor(vocabSize: number): ShardDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

function bytesPerToken(dtype: ShardDtype): 2 | 4 {
  return dtype === 'uint16' ? 2 : 4;
}

export function encodeShardHeader(dtype: ShardDtype, count: number): Uint8Array {
  const header = new Uint8Array(SHARD_HEADER_BYTES);
  const view = new DataView(header.buffer);
  for (let i = 0; i < 4; i++) header[i] = SHARD_MAGIC.charCodeAt(i);
  view.setUint16(4, SHARD_VERSION, true);
  view.setUint16(6, bytesPerToken(dtype), true);
  view.setBigUint64(8, BigInt(count), true);
  return header;
}

/** Reads and checks a shard file's header against the file's size; errors name the file. */
export function readShardHeader(path: string): ShardHeader {
  const fd = openShard(path);
  try {
    return headerOf(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openShard(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(`cannot read shard ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? (error as Error).message)}`);
  }
}

function headerOf(fd: number, path: string): ShardHeader {
  const header = new Uint8Array(SHARD_HEADER_BYTES);
  const size = fstatSync(fd).size;
  if (size < SHARD_HEADER_BYTES || readSync(fd, header, 0, SHARD_HEADER_BYTES, 0) < SHARD_HEADER_BYTES) {
    throw new Error(`shard ${path} is ${size} bytes, shorter than its ${SHARD_HEADER_BYTES}-byte header`);
  }
  const magic = String.fromCharCode(...header.subarray(0, 4));
  if (magic !== SHARD_MAGIC) throw new Error(`shard ${path} is not a TensorLM token shard (magic ${JSON.stringify(magic)}, expected "${SHARD_MAGIC}")`);
  const view = new DataView(header.buffer);
  const version = view.getUint16(4, true);
  if (version !== SHARD_VERSION) throw new Error(`shard ${path} has format version ${version}; this TensorLM reads version ${SHARD_VERSION}`);
  const width = view.getUint16(6, true);
  if (width !== 2 && width !== 4) throw new Error(`shard ${path} stores ${width} bytes per token, expected 2 or 4`);
  const count = Number(view.getBigUint64(8, true));
  if (SHARD_HEADER_BYTES + count * width !== size) {
    throw new Error(`shard ${path} says it holds ${count} tokens (${SHARD_HEADER_BYTES + count * width} bytes) but is ${size} bytes: truncated or corrupt`);
  }
  return { version, dtype: width === 2 ? 'uint16' : 'uint32', count };
}

/** The file a split is writing: its descriptor, name and tokens so far. */
interface OpenShard {
  fd: number;
  file: string;
  tokens: number;
}

/** Ids are copied into this many-token buffer per split and written when it fills. */
const WRITE_BUFFER_TOKENS = 1 << 20;

/**
 * Writes a shard set into a temporary directory; `finish` writes the manifest and renames the
 * directory into place. Ids arrive split by split in any number of `appendDocument` calls and are
 * written through a small buffer into the split's current file, which is closed (its header
 * completed with the count) at `shardTokens` tokens; memory stays a few MB whatever the corpus.
 */
export class ShardSetWriter {
  readonly dir: string;
  readonly dtype: ShardDtype;
  readonly vocabSize: number;
  readonly shardTokens: number;
  readonly #tmp: string;
  readonly #buffers: Record<Split, Uint16Array | Uint32Array>;
  readonly #filled: Record<Split, number> = { train: 0, val: 0 };
  readonly #open: Record<Split, OpenShard | null> = { train: null, val: null };
  readonly #files: Record<Split, ShardFileInfo[]> = { train: [], val: [] };
  readonly #documents: Record<Split, number> = { train: 0, val: 0 };
  #done = false;

  /**
   * `tokenizerJson` is the tokenizer file's text, stored as tokenizer.json. An existing `dir` is
   * refused unless `overwrite` (then replaced only once the new set is complete).
   */
  constructor(dir: string, options: { vocabSize: number; tokenizerJson: string; shardTokens?: number; overwrite?: boolean }) {
    const shardTokens = options.shardTokens ?? DEFAULT_SHARD_TOKENS;
    if (!Number.isSafeInteger(shardTokens) || shardTokens < 1) throw new RangeError(`ShardSetWriter: shardTokens must be a positive integer, got ${describeValue(shardTokens)}`);
    if (!Number.isSafeInteger(options.vocabSize) || options.vocabSize < 1) throw new RangeError(`ShardSetWriter: vocabSize must be a positive integer, got ${describeValue(options.vocabSize)}`);
    if (existsSync(dir) && options.overwrite !== true) throw new Error(`shard directory ${dir} already exists; choose another directory or overwrite it (--overwrite)`);
    this.dir = dir;
    this.vocabSize = options.vocabSize;
    this.dtype = shardDtypeFor(options.vocabSize);
    this.shardTokens = shardTokens;
    mkdirSync(dirname(dir), { recursive: true });
    this.#tmp = join(dirname(dir), `.${basename(dir)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
    mkdirSync(this.#tmp);
    const capacity = Math.min(shardTokens, WRITE_BUFFER_TOKENS);
    const make = () => (this.dtype === 'uint16' ? new Uint16Array(capacity) : new Uint32Array(capacity));
    this.#buffers = { train: make(), val: make() };
    writeFileAtomic(join(this.#tmp, SHARD_TOKENIZER), options.tokenizerJson);
  }

  /** Appends one document's ids (separator included, as the caller wants it) to a split. */
  appendDocument(split: Split, ids: ArrayLike<number>): void {
    if (this.#done) throw new Error('ShardSetWriter: the set is already finished');
    let at = 0;
    while (at < ids.length) {
      const open = this.#open[split] ?? this.#startFile(split);
      const buffer = this.#buffers[split];
      const filled = this.#filled[split];
      // No further than the buffer's end or the current file's end.
      const n = Math.min(ids.length - at, buffer.length - filled, this.shardTokens - open.tokens - filled);
      for (let i = 0; i < n; i++) {
        const id = ids[at + i];
        if (!(id >= 0 && id < this.vocabSize && Number.isInteger(id))) throw new RangeError(`ShardSetWriter: id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
        buffer[filled + i] = id;
      }
      this.#filled[split] = filled + n;
      at += n;
      if (this.#filled[split] === buffer.length) this.#writeBuffer(split);
      if (open.tokens + this.#filled[split] === this.shardTokens) this.#endFile(split);
    }
    this.#documents[split]++;
  }

  #startFile(split: Split): OpenShard {
    const file = `${split}-${String(this.#files[split].length).padStart(5, '0')}.bin`;
    const fd = openSync(join(this.#tmp, file), 'w');
    // The count is written when the file ends; until then the header says 0 tokens.
    writeAll(fd, encodeShardHeader(this.dtype, 0), 0);
    return (this.#open[split] = { fd, file, tokens: 0 });
  }

  #writeBuffer(split: Split): void {
    const open = this.#open[split];
    const count = this.#filled[split];
    if (open === null || count === 0) return;
    const ids = this.#buffers[split].subarray(0, count);
    writeAll(open.fd, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength), SHARD_HEADER_BYTES + open.tokens * bytesPerToken(this.dtype));
    open.tokens += count;
    this.#filled[split] = 0;
  }

  #endFile(split: Split): void {
    this.#writeBuffer(split);
    const open = this.#open[split];
    if (open === null) return;
    writeAll(open.fd, encodeShardHeader(this.dtype, open.tokens), 0);
    closeSync(open.fd);
    this.#files[split].push({ file: open.file, tokens: open.tokens });
    this.#open[split] = null;
  }

  /** Writes the last files and the manifest, and moves the set into place; returns the manifest. */
  finish(details: { separator: string; split: string; source?: Record<string, unknown> }): ShardManifest {
    this.#endFile('train');
    this.#endFile('val');
    const sum = (split: Split) => this.#files[split].reduce((n, f) => n + f.tokens, 0);
    const manifest: ShardManifest = {
      format: 'tensorlm-shards',
      version: 1,
      dtype: this.dtype,
      vocabSize: this.vocabSize,
      tokenizer: SHARD_TOKENIZER,
      separator: details.separator,
      split: details.split,
      documents: { ...this.#documents },
      tokens: { train: sum('train'), val: sum('val') },
      files: { train: [...this.#files.train], val: [...this.#files.val] },
      ...(details.source ? { source: details.source } : {}),
    };
    writeFileAtomic(join(this.#tmp, SHARD_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    if (existsSync(this.dir)) {
      const old = `${this.#tmp}.old`;
      renameSync(this.dir, old);
      renameSync(this.#tmp, this.dir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(this.#tmp, this.dir);
    }
    this.#done = true;
    return manifest;
  }

  /** Removes the temporary directory (after an error); the target is left as it was. */
  abort(): void {
    this.#done = true;
    for (const split of ['train', 'val'] as const) {
      const open = this.#open[split];
      if (open !== null) closeSync(open.fd);
      this.#open[split] = null;
    }
    rmSync(this.#tmp, { recursive: true, force: true });
  }
}

/** Writes all of `bytes` at `position`. */
function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let written = 0;
  while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written, position + written);
}

/** Reads and validates `<dir>/shards.json`; errors are one line naming the file. */
export function readShardManifest(dir: string): ShardManifest {
  const path = join(dir, SHARD_MANIFEST);
  if (!existsSync(path)) throw new Error(`${dir} is not a shard directory: ${SHARD_MANIFEST} is missing (make one with 'tensorlm data shard')`);
  const json = readJsonFile(path, 'shard manifest');
  const bad = (what: string) => new Error(`shard manifest ${path}: ${what}`);
  if (!isJsonObject(json) || json.format !== 'tensorlm-shards') throw bad('not a TensorLM shard manifest (format must be "tensorlm-shards")');
  if (json.version !== 1) throw bad(`version ${describeValue(json.version)} is not supported (expected 1)`);
  if (json.dtype !== 'uint16' && json.dtype !== 'uint32') throw bad(`dtype must be "uint16" or "uint32", got ${describeValue(json.dtype)}`);
  if (typeof json.vocabSize !== 'number' || !Number.isSafeInteger(json.vocabSize) || json.vocabSize < 1) throw bad(`vocabSize must be a positive integer, got ${describeValue(json.vocabSize)}`);
  if (!isJsonObject(json.files)) throw bad('files must be an object with train and val lists');
  for (const split of ['train', 'val'] as const) {
    const list = json.files[split];
    if (!Array.isArray(list)) throw bad(`files.${split} must be a list`);
    list.forEach((f, i) => {
      if (!isJsonObject(f) || typeof f.file !== 'string' || !/^[\w.-]+$/.test(f.file) || typeof f.tokens !== 'number' || !Number.isSafeInteger(f.tokens) || f.tokens < 0) {
        throw bad(`files.${split}[${i}] must be {"file": a plain file name, "tokens": a count}, got ${describeValue(f)}`);
      }
    });
  }
  return json as unknown as ShardManifest;
}

interface SplitFiles {
  paths: string[];
  /** starts[i] = tokens before file i; starts[files] = tokens in the split. */
  starts: number[];
}

/**
 * A token dataset over a shard set, with TokenDataset's `getBatch` contract: the same generator
 * state gives the same windows as an in-memory TokenDataset whose splits hold the same tokens
 * (one `randint` per row, over the whole split as one stream), so sharded and in-memory training
 * take identical steps. Windows are read from the files on demand.
 */
export class ShardDataset {
  readonly dir: string;
  readonly manifest: ShardManifest;
  readonly #splits: Record<Split, SplitFiles>;

  constructor(dir: string) {
    this.dir = dir;
    this.manifest = readShardManifest(dir);
    const open = (split: Split): SplitFiles => {
      const paths: string[] = [];
      const starts = [0];
      for (const { file, tokens } of this.manifest.files[split]) {
        const path = join(dir, file);
        const header = readShardHeader(path);
        if (header.count !== tokens) throw new Error(`shard ${path} holds ${header.count} tokens but ${SHARD_MANIFEST} lists ${tokens}`);
        if (header.dtype !== this.manifest.dtype) throw new Error(`shard ${path} stores ${header.dtype} ids but ${SHARD_MANIFEST} says ${this.manifest.dtype}`);
        paths.push(path);
        starts.push(starts[starts.length - 1] + tokens);
      }
      return { paths, starts };
    };
    this.#splits = { train: open('train'), val: open('val') };
  }

  /** Tokens in a split. */
  tokens(split: Split): number {
    const s = this.#splitFiles(split);
    return s.starts[s.starts.length - 1];
  }

  get trainTokens(): number {
    return this.tokens('train');
  }

  get valTokens(): number {
    return this.tokens('val');
  }

  #splitFiles(split: Split): SplitFiles {
    if (split !== 'train' && split !== 'val') throw new Error(`unknown split ${JSON.stringify(split)}; expected "train" or "val"`);
    return this.#splits[split];
  }

  /** Tokens [start, start + length) of a split (possibly spanning files), as int32. */
  read(split: Split, start: number, length: number, out: Int32Array = new Int32Array(length)): Int32Array {
    const { paths, starts } = this.#splitFiles(split);
    const total = starts[starts.length - 1];
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(length) && start >= 0 && length >= 0 && start + length <= total)) {
      throw new RangeError(`ShardDataset.read: tokens [${start}, ${start + length}) are outside the ${split} split of ${total} tokens`);
    }
    const width = bytesPerToken(this.manifest.dtype);
    // The file holding `start`: the last whose start is ≤ it.
    let lo = 0;
    let hi = paths.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    let done = 0;
    for (let f = lo; done < length; f++) {
      const from = start + done - starts[f];
      const n = Math.min(length - done, starts[f + 1] - starts[f] - from);
      if (n <= 0) continue;
      const bytes = new Uint8Array(n * width);
      const fd = openShard(paths[f]);
      try {
        let got = 0;
        while (got < bytes.length) {
          const r = readSync(fd, bytes, got, bytes.length - got, SHARD_HEADER_BYTES + from * width + got);
          if (r === 0) throw new Error(`shard ${paths[f]} ended early: truncated since it was opened`);
          got += r;
        }
      } finally {
        closeSync(fd);
      }
      const ids = width === 2 ? new Uint16Array(bytes.buffer) : new Uint32Array(bytes.buffer);
      out.set(ids, done);
      done += n;
    }
    return out;
  }

  /** A whole split (or its first `maxTokens`) in memory, for evaluation over a fixed stream. */
  readSplit(split: Split, maxTokens = Infinity): Int32Array {
    return this.read(split, 0, Math.min(this.tokens(split), maxTokens));
  }

  /** TokenDataset.getBatch over the shards: random windows of blockSize + 1 tokens. */
  getBatch(split: Split, batchSize: number, blockSize: number, rng: Generator): Batch {
    for (const [name, v] of [['batchSize', batchSize], ['blockSize', blockSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`getBatch: ${name} must be a positive integer, got ${v}`);
    }
    const n = this.tokens(split);
    if (blockSize >= n) {
      throw new RangeError(`getBatch: blockSize ${blockSize} needs at least ${blockSize + 1} tokens, but the ${split} split of shards ${this.dir} has ${n}; use a smaller blockSize or more data`);
    }
    const x = new Int32Array(batchSize * blockSize);
    const y = new Int32Array(batchSize * blockSize);
    const window = new Int32Array(blockSize + 1);
    for (let b = 0; b < batchSize; b++) {
      // Exactly randomWindows' draw, so the same generator state picks the same windows.
      const start = rng.randint(0, n - blockSize);
      this.read(split, start, blockSize + 1, window);
      x.set(window.subarray(0, blockSize), b * blockSize);
      y.set(window.subarray(1), b * blockSize);
    }
    return { x: tensor(x, { shape: [batchSize, blockSize] }), y: tensor(y, { shape: [batchSize, blockSize] }) };
  }
}

/** Writes a shard set from whole in-memory splits (tests, small corpora, conversions). */
export function writeShardSet(
  dir: string,
  splits: Record<Split, TokenSequence>,
  options: { vocabSize: number; tokenizerJson: string; shardTokens?: number; overwrite?: boolean; separator?: string; split?: string },
): ShardManifest {
  const writer = new ShardSetWriter(dir, options);
  try {
    writer.appendDocument('train', splits.train);
    writer.appendDocument('val', splits.val);
    return writer.finish({ separator: options.separator ?? 'none', split: options.split ?? 'given' });
  } catch (error) {
    writer.abort();
    throw error;
  }
}

export interface ShardDocumentsOptions {
  vocabSize: number;
  /** The tokenizer file's text, stored as tokenizer.json. */
  tokenizerJson: string;
  /** Ids appended after every document (the end-of-text token, or the ids of "\n\n"). */
  separatorIds: readonly number[];
  /** How the separator is named in the manifest ("<|endoftext|>", "\n\n"). */
  separatorName: string;
  /** Fraction of documents for validation: every round(1 / valFraction)-th document. Default 0.1. */
  valFraction?: number;
  shardTokens?: number;
  overwrite?: boolean;
  source?: Record<string, unknown>;
}

/**
 * Writes a shard set from a stream of encoded documents (one id array per document, in corpus
 * order), each followed by the separator. Documents are split systematically — with a validation
 * fraction f, every round(1/f)-th document (the k-th, 2k-th, …) goes to val — so the split is
 * by document (no document is cut between train and val), deterministic, and needs no second pass.
 * Memory holds one shard buffer per split, whatever the corpus size.
 */
export async function writeShardsFromDocuments(dir: string, documents: AsyncIterable<ArrayLike<number>> | Iterable<ArrayLike<number>>, options: ShardDocumentsOptions): Promise<ShardManifest> {
  const valFraction = options.valFraction ?? 0.1;
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`valFraction must be in [0, 1), got ${describeValue(valFraction)}`);
  const every = valFraction === 0 ? Infinity : Math.max(2, Math.round(1 / valFraction));
  const writer = new ShardSetWriter(dir, options);
  try {
    let index = 0;
    for await (const ids of documents) {
      const split: Split = (index + 1) % every === 0 ? 'val' : 'train';
      const withSeparator = new Int32Array(ids.length + options.separatorIds.length);
      withSeparator.set(ids);
      withSeparator.set(options.separatorIds, ids.length);
      writer.appendDocument(split, withSeparator);
      index++;
    }
    if (valFraction > 0 && index < every) {
      throw new Error(`the corpus has ${index} document${index === 1 ? '' : 's'}; with val fraction ${valFraction} the last of every ${every} documents goes to validation, so the val split would be empty (give more documents or a larger fraction)`);
    }
    const split = valFraction === 0 ? 'none (no validation split)' : `by document: the last of every ${every} documents to val (fraction ${valFraction})`;
    return writer.finish({ separator: options.separatorName, split, source: options.source });
  } catch (error) {
    writer.abort();
    throw error;
  }
}
