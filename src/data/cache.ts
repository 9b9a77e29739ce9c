/**
 * Encoded corpora cached as compact binary, so a large text is tokenised once.
 *
 * The cache file is named `<tokenizer>.<tokenizer hash>.<text hash>.tokens` and stored next to
 * the tokenizer file (or in `<data dir>/tokens` for a tokenizer that has no file). Either hash
 * changing — a retrained tokenizer, an edited text — gives another name, so a stale cache is
 * never read; stale files of the same tokenizer file are deleted when a new one is written.
 *
 * Layout (little-endian): "TLMT", u16 version (1), u16 bytes per token (2 or 4), u32 token
 * count low, u32 token count high, 32-byte SHA-256 of the tokenizer JSON, 32-byte SHA-256 of the
 * text (80 bytes in all), then the ids as Uint16 (vocabularies up to 65,536) or Uint32.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readBytes, removeQuietly, writeFileAtomic } from './files.js';
import { defaultDataDir } from './resolve.js';

/** What the cache needs from a tokenizer (any TensorLM tokenizer fits). */
export interface TextEncoderLike {
  readonly vocabSize: number;
  encode(text: string): number[];
  /** Used instead of `encode` when present (TensorLM's tokenizers have it): no large JS array. */
  encodeToInt32Array?(text: string): Int32Array;
  toJSON(): object;
}

export type TokenArray = Uint16Array | Uint32Array;

export interface EncodeCorpusOptions {
  /** The tokenizer's file: the cache goes next to it and is named after it. */
  tokenizerPath?: string;
  /** Where to put the cache instead (overrides the tokenizer's directory). */
  cacheDir?: string;
  /** Data directory used when there is neither `cacheDir` nor `tokenizerPath`. */
  dataDir?: string;
  /** Set false to encode without reading or writing a cache. */
  cache?: boolean;
}

export interface EncodedCorpus {
  tokens: TokenArray;
  /** The cache file, or null when caching was off. */
  cachePath: string | null;
  /** Whether the tokens were read from the cache. */
  fromCache: boolean;
}

const MAGIC = 0x544d4c54; // "TLMT" read as a little-endian u32
const VERSION = 1;
export const CACHE_HEADER_BYTES = 80;

/** The smallest array type that holds every id of a vocabulary. */
export function tokenArrayFor(vocabSize: number, length: number): TokenArray {
  return vocabSize <= 65536 ? new Uint16Array(length) : new Uint32Array(length);
}

function sha256(data: string): Buffer {
  return createHash('sha256').update(data, 'utf8').digest();
}

/** Encodes `text`, reading the result from the cache when a valid one exists, else writing it. */
export function encodeCorpus(tokenizer: TextEncoderLike, text: string, options: EncodeCorpusOptions = {}): EncodedCorpus {
  if (options.cache === false) return { tokens: encodeToArray(tokenizer, text), cachePath: null, fromCache: false };

  const tokHash = sha256(JSON.stringify(tokenizer.toJSON()));
  const textHash = sha256(text);
  const stem = options.tokenizerPath !== undefined ? basename(options.tokenizerPath).replace(/\.json$/i, '') : 'tokenizer';
  const dir = options.cacheDir ?? (options.tokenizerPath !== undefined ? dirname(options.tokenizerPath) : join(options.dataDir ?? defaultDataDir(), 'tokens'));
  const tokTag = tokHash.toString('hex').slice(0, 16);
  const path = join(dir, `${stem}.${tokTag}.${textHash.toString('hex').slice(0, 16)}.tokens`);

  const cached = readCache(path, tokHash, textHash);
  if (cached !== null) return { tokens: cached, cachePath: path, fromCache: true };

  const tokens = encodeToArray(tokenizer, text);
  mkdirSync(dir, { recursive: true });
  writeCache(path, tokens, tokHash, textHash);
  // Caches made by an earlier version of this tokenizer file can never be read again.
  if (options.tokenizerPath !== undefined) removeStale(dir, stem, tokTag);
  return { tokens, cachePath: path, fromCache: false };
}

function encodeToArray(tokenizer: TextEncoderLike, text: string): TokenArray {
  const ids = tokenizer.encodeToInt32Array !== undefined ? tokenizer.encodeToInt32Array(text) : tokenizer.encode(text);
  const out = tokenArrayFor(tokenizer.vocabSize, ids.length);
  out.set(ids);
  return out;
}

/** Writes a cache file atomically (temporary file + rename). */
function writeCache(path: string, tokens: TokenArray, tokHash: Uint8Array, textHash: Uint8Array): void {
  const header = new Uint8Array(CACHE_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setUint16(6, tokens.BYTES_PER_ELEMENT, true);
  view.setUint32(8, tokens.length % 4294967296, true);
  view.setUint32(12, Math.floor(tokens.length / 4294967296), true);
  header.set(tokHash, 16);
  header.set(textHash, 48);
  const body = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  if (!littleEndian()) throw new Error('token cache: big-endian machines are not supported');
  writeFileAtomic(path, [header, body]);
}

function littleEndian(): boolean {
  return new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
}

/** The cached tokens, or null when the file is missing, truncated, or made from other inputs. */
function readCache(path: string, tokHash: Uint8Array, textHash: Uint8Array): TokenArray | null {
  if (!existsSync(path)) return null;
  let bytes: Uint8Array;
  try {
    bytes = readBytes(path, 'token cache');
  } catch {
    return null;
  }
  if (bytes.length < CACHE_HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC || view.getUint16(4, true) !== VERSION) return null;
  const width = view.getUint16(6, true);
  const count = view.getUint32(8, true) + view.getUint32(12, true) * 4294967296;
  if ((width !== 2 && width !== 4) || bytes.length !== CACHE_HEADER_BYTES + count * width) return null;
  if (!sameBytes(bytes.subarray(16, 48), tokHash) || !sameBytes(bytes.subarray(48, 80), textHash)) return null;
  // Copy into a fresh buffer: the read buffer (a Buffer, maybe pooled) need not start at an
  // offset aligned for the element size. (Buffer#slice would share memory, hence the constructor.)
  const body = new Uint8Array(bytes.subarray(CACHE_HEADER_BYTES));
  return width === 2 ? new Uint16Array(body.buffer, 0, count) : new Uint32Array(body.buffer, 0, count);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function removeStale(dir: string, stem: string, tokTag: string): void {
  const prefix = `${stem}.`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix) || !name.endsWith('.tokens')) continue;
    const tags = name.slice(prefix.length, -'.tokens'.length).split('.');
    if (tags.length === 2 && /^[0-9a-f]{16}$/.test(tags[0]) && /^[0-9a-f]{16}$/.test(tags[1]) && tags[0] !== tokTag) {
      removeQuietly(join(dir, name));
    }
  }
}
