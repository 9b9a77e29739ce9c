/**
 * Finding training text: a named dataset (downloaded once, verified, cached) or local files.
 *
 * A name is looked up in the data directory (`dataDir` option, else the TENSORLM_DATA_DIR
 * environment variable, else ~/.cache/tensorlm) and is otherwise downloaded into it. A copy kept
 * elsewhere is used by pointing TENSORLM_DATA_DIR (or `dataDir`) at its directory. Every copy
 * found or fetched must match the published SHA-256 and size, so a wrong file is reported
 * instead of trained on.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { dataDirEnv } from '../env.js';
import { readBytes, readTextFile, removeQuietly, tempPathFor } from './files.js';

export interface DatasetInfo {
  name: string;
  url: string;
  /** File name inside the data directory. */
  fileName: string;
  sha256: string;
  bytes: number;
}

/** Datasets known by name. */
export const DATASETS: Readonly<Record<string, DatasetInfo>> = Object.freeze({
  tinyshakespeare: {
    name: 'tinyshakespeare',
    url: 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt',
    fileName: 'tinyshakespeare.txt',
    sha256: '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed',
    bytes: 1_115_394,
  },
});

/** The part of a fetch Response that downloading needs; a test can pass a fake. */
export interface DownloadResponse {
  ok: boolean;
  status: number;
  statusText?: string;
  /** The body, chunk by chunk. */
  body: AsyncIterable<Uint8Array> | null;
}

export type FetchFunction = (url: string) => Promise<DownloadResponse>;

export interface ResolveOptions {
  /** Where named datasets are cached; default TENSORLM_DATA_DIR, else ~/.cache/tensorlm. */
  dataDir?: string;
  /** Directory that relative paths (and a relative data directory) start from; default process.cwd(). */
  cwd?: string;
  /** Set false to fail instead of downloading. */
  download?: boolean;
  /** The downloader; default the global fetch. */
  fetch?: FetchFunction;
  /** Progress messages (e.g. "downloading …"); default silent. */
  log?: (message: string) => void;
}

export interface ResolvedDataset {
  /** The dataset's name, or the path as given. */
  name: string;
  /** The files that make up the text, in the order they are concatenated. */
  files: string[];
  /** How it was found. */
  source: 'path' | 'directory' | 'data-dir' | 'download';
}

/** TENSORLM_DATA_DIR (resolved against the working directory), else ~/.cache/tensorlm. */
export function defaultDataDir(): string {
  const fromEnv = dataDirEnv();
  return fromEnv !== undefined ? resolve(fromEnv) : join(homedir(), '.cache', 'tensorlm');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function howToProvide(info: DatasetInfo, dataDir: string): string {
  return (
    `To provide it by hand, download ${info.url} on a machine with network access and save it as ` +
    `${join(dataDir, info.fileName)} (or put it in another directory and set TENSORLM_DATA_DIR to that directory), ` +
    `or pass the file's path instead of the name (--data <path>).`
  );
}

/** Throws unless the bytes are exactly the published file. */
function verify(info: DatasetInfo, bytes: Uint8Array, where: string): void {
  const actual = sha256Hex(bytes);
  if (actual !== info.sha256 || bytes.length !== info.bytes) {
    throw new Error(
      `checksum mismatch for ${info.name} (${where}): expected SHA-256 ${info.sha256} (${info.bytes} bytes), ` +
        `got ${actual} (${bytes.length} bytes)`,
    );
  }
}

/** Resolves a dataset name or a path to the files holding its text; downloads a named dataset if needed. */
export async function resolveDataset(nameOrPath: string, options: ResolveOptions = {}): Promise<ResolvedDataset> {
  const cwd = options.cwd ?? process.cwd();
  const asPath = resolve(cwd, nameOrPath);
  const info = Object.hasOwn(DATASETS, nameOrPath) ? DATASETS[nameOrPath] : undefined;
  if (existsSync(asPath) && (info === undefined || statSync(asPath).isFile())) return resolvePath(nameOrPath, asPath);
  if (info === undefined) {
    throw new Error(
      `no file or directory at ${asPath}, and ${JSON.stringify(nameOrPath)} is not a known dataset name ` +
        `(known: ${Object.keys(DATASETS).join(', ')})`,
    );
  }

  const dataDir = resolve(cwd, options.dataDir ?? defaultDataDir());
  const cached = join(dataDir, info.fileName);
  if (existsSync(cached)) {
    verify(info, readBytes(cached, 'dataset file'), `cached file ${cached}; delete it to download again`);
    return { name: info.name, files: [cached], source: 'data-dir' };
  }
  if (options.download === false) {
    throw new Error(`${info.name} is not in ${dataDir} and downloading is turned off. ${howToProvide(info, dataDir)}`);
  }
  await downloadDataset(info, dataDir, options);
  return { name: info.name, files: [cached], source: 'download' };
}

function resolvePath(given: string, path: string): ResolvedDataset {
  const stat = statSync(path);
  if (stat.isFile()) return { name: given, files: [path], source: 'path' };
  if (!stat.isDirectory()) throw new Error(`${path} is neither a file nor a directory`);
  const files = listTextFiles(path);
  if (files.length === 0) throw new Error(`directory ${path} has no .txt files (searched recursively; hidden files are skipped)`);
  return { name: given, files, source: 'directory' };
}

/** `.txt` files under `dir`, recursively, skipping hidden entries, sorted by relative path. */
function listTextFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.txt')) found.push(full);
    }
  };
  walk(dir);
  // Code-unit order of the relative paths: the same on every platform and locale.
  return found.sort((a, b) => {
    const ra = relative(dir, a);
    const rb = relative(dir, b);
    return ra < rb ? -1 : ra > rb ? 1 : 0;
  });
}

/** The text of the files, concatenated; a newline is put between files when one lacks a final newline. */
export function readDatasetText(dataset: ResolvedDataset): string {
  let text = '';
  for (const file of dataset.files) {
    if (text.length > 0 && !text.endsWith('\n')) text += '\n';
    text += readTextFile(file, 'data file');
  }
  return text;
}

/** `resolveDataset` then `readDatasetText`. */
export async function loadText(nameOrPath: string, options: ResolveOptions = {}): Promise<string> {
  return readDatasetText(await resolveDataset(nameOrPath, options));
}

async function defaultFetch(url: string): Promise<DownloadResponse> {
  const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  const body = response.body;
  return {
    ok: response.ok,
    status: response.status,
    statusText: response.statusText,
    body: body === null ? null : readStream(body),
  };
}

async function* readStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Streams the file into a temporary file in the data directory, verifies it, then renames it
 * into place: an interrupted or corrupted download never leaves a file under the final name.
 */
async function downloadDataset(info: DatasetInfo, dataDir: string, options: ResolveOptions): Promise<void> {
  const finalPath = join(dataDir, info.fileName);
  const fetchFn = options.fetch ?? defaultFetch;
  options.log?.(`downloading ${info.name} from ${info.url} to ${finalPath}`);
  mkdirSync(dataDir, { recursive: true });
  const tmp = tempPathFor(finalPath);
  const hash = createHash('sha256');
  let size = 0;
  let fd: number | null = null;
  try {
    let response: DownloadResponse;
    try {
      response = await fetchFn(info.url);
      if (!response.ok) throw new Error(`HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
      if (response.body === null) throw new Error('the response has no body');
      fd = openSync(tmp, 'wx');
      for await (const chunk of response.body) {
        hash.update(chunk);
        size += chunk.length;
        let written = 0;
        while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written);
      }
    } catch (error) {
      const reason = describeNetworkError(error);
      throw new Error(`could not download ${info.name} from ${info.url}: ${reason}. ${howToProvide(info, dataDir)}`);
    }
    closeSync(fd);
    fd = null;
    const actual = hash.digest('hex');
    if (actual !== info.sha256 || size !== info.bytes) {
      throw new Error(
        `checksum mismatch for ${info.name} downloaded from ${info.url}: expected SHA-256 ${info.sha256} (${info.bytes} bytes), ` +
          `got ${actual} (${size} bytes); nothing was saved. ${howToProvide(info, dataDir)}`,
      );
    }
    renameSync(tmp, finalPath);
  } finally {
    if (fd !== null) closeSync(fd);
    removeQuietly(tmp);
  }
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch wraps the real reason (ENOTFOUND, ECONNREFUSED, …) in `cause`.
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message && cause.message !== error.message) return `${error.message} (${cause.message})`;
  return error.message;
}
