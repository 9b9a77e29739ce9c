/**
 * File helpers shared by the tokenizers and the data pipeline: atomic writes (a crash or a
 * failed download never leaves a half-written file under the final name) and text reads that
 * say which file failed and why.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A temporary path in the same directory as `path`, so the final rename never crosses devices. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * The writing process's id in the name of an atomic write's temporary file, or null for any other
 * name. Two writers make them: tempPathFor / writeFileAtomic (`.<name>.<pid>.<8 hex>.tmp`) and
 * io/safetensors.ts saveSafetensors (`.<name>.tmp-<pid>-<base36 time>-<base36 random>`).
 */
export function tempFileWriterPid(fileName: string): number | null {
  const m = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(fileName) ?? /^\..+\.tmp-(\d+)-[0-9a-z]+-[0-9a-z]*$/.exec(fileName);
  return m ? Number(m[1]) : null;
}

/** Whether a process with this id is running (one we may not signal counts as running). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === 'EPERM';
  }
}

/**
 * Removes the temporary files of atomic writes in `dir` whose writing process is gone (killed
 * mid-write, they were never renamed into place nor removed). A live writer's files are kept, so
 * a second process writing into the same directory is never disturbed. Returns the removed paths;
 * a missing directory has none.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = tempFileWriterPid(name);
    if (pid === null || processAlive(pid)) continue;
    const path = join(dir, name);
    removeQuietly(path);
    removed.push(path);
  }
  return removed;
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or never created.
  }
}

/** Writes `data` to a temporary file next to `path`, then renames it into place. */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const tmp = tempPathFor(path);
  const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  try {
    const fd = openSync(tmp, 'wx');
    try {
      for (const part of parts) {
        let written = 0;
        while (written < part.length) written += writeSync(fd, part, written, part.length - written);
      }
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    removeQuietly(tmp);
    throw error;
  }
}

function describeFsError(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error) {
    const code = String((error as { code: unknown }).code);
    const reasons: Record<string, string> = {
      ENOENT: 'no such file',
      EACCES: 'permission denied',
      EPERM: 'permission denied',
      EISDIR: 'it is a directory',
    };
    return reasons[code] ?? (error instanceof Error ? error.message : code);
  }
  return error instanceof Error ? error.message : String(error);
}

/** Reads a file's bytes; the error names the file and the reason. */
export function readBytes(path: string, what = 'file'): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${describeFsError(error)}`);
  }
}

/** Reads a UTF-8 text file, rejecting invalid UTF-8 instead of silently replacing it. */
export function readTextFile(path: string, what = 'file'): string {
  const bytes = readBytes(path, what);
  try {
    // A leading BOM is kept: it is part of the text, and dropping it would break exact round trips.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error(`cannot read ${what} ${path}: it is not valid UTF-8 text (first bad byte at offset ${firstInvalidUtf8(bytes)})`);
  }
}

/** Offset of the first byte that makes `bytes` invalid UTF-8 (for error messages). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  // Binary search on the longest valid prefix; decoding prefixes is cheap next to the read.
  let lo = 0;
  let hi = bytes.length;
  const valid = (n: number): boolean => {
    try {
      // Streaming mode accepts a prefix that ends inside a character; a fresh decoder per call
      // keeps no state between probes.
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (valid(mid)) lo = mid;
    else hi = mid - 1;
  }
  // The valid prefix may end inside a multi-byte character that the next byte breaks: report
  // where that character starts.
  for (let k = lo - 1; k >= Math.max(0, lo - 3); k--) {
    const byte = bytes[k];
    if (byte < 0x80) break;
    if (byte >= 0xc0) {
      const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return k + length > lo ? k : lo;
    }
  }
  return lo;
}

/** Parses a JSON file; errors name the file. */
export function readJsonFile(path: string, what = 'file'): unknown {
  const text = readTextFile(path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: invalid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}
