/**
 * metrics.jsonl read in chunks: the log of a long run can be tens of megabytes, so it is never
 * read whole per request or per client. LineCutter cuts bytes into complete lines (a torn last line
 * waits for its newline; an absurdly long line is skipped), parseMetricLine parses one line with a
 * bounded depth, and metricsJsonChunks streams the records as JSON array elements.
 */
import { open } from 'node:fs/promises';
import type { MetricRecord } from '../train/metrics.js';
import { scanJson } from '../io/json.js';

/** Bytes read from metrics.jsonl at a time. */
export const METRICS_CHUNK_BYTES = 64 * 1024;
/** A metrics line longer than this is skipped (a record, with its sample text, is a few KiB). */
export const MAX_METRIC_LINE_BYTES = 64 * 1024;
/** Records are written to a client in pieces of about this size (and at most one record more). */
export const PIECE_BYTES = 16 * 1024;
/** Bytes before a read position remembered to tell an append from a rewrite. */
export const TAIL_CHECK_BYTES = 256;

const EMPTY = Buffer.alloc(0);

function lastBytes(buf: Buffer, n: number): Buffer {
  return buf.length <= n ? buf : buf.subarray(buf.length - n);
}

/** The last `n` bytes of `a` followed by `b`, copied (so the chunks behind them can be freed). */
export function joinTail(a: Buffer, b: Buffer, n = TAIL_CHECK_BYTES): Buffer {
  if (b.length >= n) return Buffer.from(lastBytes(b, n));
  return Buffer.from(lastBytes(Buffer.concat([a, b]), n));
}

export interface CutLines {
  /** The complete lines of this step, newline-separated ('' when none ended). */
  text: string;
  /** Bytes moved past (through the last newline), skipped bytes included; 0 when no line ended. */
  consumed: number;
  /** Up to TAIL_CHECK_BYTES bytes ending where the consumed bytes end (valid when consumed > 0). */
  tail: Buffer;
}

/** Cuts a byte stream into complete lines; a line longer than `maxLineBytes` is skipped whole. */
export class LineCutter {
  #carry: Buffer = EMPTY;
  #skipping = false;
  #dropped = 0;
  #droppedTail: Buffer = EMPTY;

  constructor(readonly maxLineBytes = MAX_METRIC_LINE_BYTES) {}

  push(chunk: Buffer): CutLines {
    const data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    const end = data.lastIndexOf(0x0a) + 1;
    let out: CutLines = { text: '', consumed: 0, tail: EMPTY };
    if (end > 0) {
      // The rest of a skipped long line runs to the first newline.
      const start = this.#skipping ? data.indexOf(0x0a) + 1 : 0;
      this.#skipping = false;
      out = { text: data.toString('utf8', start, end), consumed: this.#dropped + end, tail: joinTail(this.#droppedTail, data.subarray(0, end)) };
      this.#dropped = 0;
      this.#droppedTail = EMPTY;
    }
    const rest = data.subarray(end);
    if (this.#skipping || rest.length > this.maxLineBytes) {
      this.#skipping = true;
      this.#dropped += rest.length;
      this.#droppedTail = joinTail(this.#droppedTail, rest);
      this.#carry = EMPTY;
    } else {
      this.#carry = Buffer.from(rest);
    }
    return out;
  }
}

/** One metrics line as a record: null for a blank, corrupt, too deeply nested or non-object line. */
export function parseMetricLine(line: string): MetricRecord | null {
  if (line.trim() === '' || scanJson(line, { rejectDuplicateKeys: false }) !== null) return null;
  try {
    const value = JSON.parse(line) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as MetricRecord) : null;
  } catch {
    return null; // a corrupt line: the trainer's reader skips it too
  }
}

/**
 * The records of `text` (complete lines) as JSON, comma-joined, in pieces of about PIECE_BYTES
 * (a piece ends after the record that reaches the size): pieces of a JSON array's elements.
 */
export function recordPieces(text: string): string[] {
  const pieces: string[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const line of text.split('\n')) {
    const record = parseMetricLine(line);
    if (record === null) continue;
    const json = JSON.stringify(record);
    parts.push(json);
    size += json.length + 1;
    if (size >= PIECE_BYTES) {
      pieces.push(parts.join(','));
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) pieces.push(parts.join(','));
  return pieces;
}

/**
 * The records of the metrics log at `path` as comma-joined JSON pieces (recordPieces; every piece after the first starts with its comma), read in chunks with the event
 * loop free between them; nothing when the file is missing.
 */
export async function* metricsJsonChunks(path: string | null): AsyncGenerator<string> {
  if (path === null) return;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return;
  }
  try {
    const cutter = new LineCutter();
    let position = 0;
    let any = false;
    for (;;) {
      const buf = Buffer.allocUnsafe(METRICS_CHUNK_BYTES);
      const { bytesRead } = await handle.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      for (const piece of recordPieces(cutter.push(buf.subarray(0, bytesRead)).text)) {
        yield any ? `,${piece}` : piece;
        any = true;
      }
    }
  } finally {
    await handle.close();
  }
}
