/**
 * Server-sent events over a raw Node response, and the follower of a run directory that turns
 * appends to metrics.jsonl and changes of config.json into events.
 *
 * Memory is bounded per client and in total: every write counts against the client's buffered
 * bytes (what Node holds for a client that does not read) and against the server's total; the
 * follower streams the first snapshot from the file in chunks and waits for 'drain' whenever a
 * write reports backpressure, so a client that stops reading holds at most about one chunk, and
 * one that does not drain for `stallMs` is dropped.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { clipMessage } from './json.js';
import { joinTail, LineCutter, METRICS_CHUNK_BYTES, recordPieces, TAIL_CHECK_BYTES } from './lines.js';
import { readRunConfig, runFile, type RunEntry } from './runs.js';

/** A stream is dropped once this much output waits for its client. */
export const DEFAULT_STREAM_BUFFER_BYTES = 1024 * 1024;
/**
 * The least a stream's cap may be: one piece of a snapshot (PIECE_BYTES plus a record of at most
 * MAX_METRIC_LINE_BYTES) on top of what Node buffers before it reports backpressure (16 KiB).
 */
export const MIN_STREAM_BUFFER_BYTES = 128 * 1024;
/** All streams together: a write that would buffer more than this drops its stream. */
export const DEFAULT_TOTAL_STREAM_BUFFER_BYTES = 32 * 1024 * 1024;
/** A stream whose buffered output does not drain for this long is dropped. */
export const DEFAULT_STREAM_STALL_MS = 30_000;

/** What the open streams buffer together, checked against a cap on every write. */
export class SseBudget {
  readonly streams = new Set<SseStream>();

  constructor(readonly maxTotalBytes = DEFAULT_TOTAL_STREAM_BUFFER_BYTES) {}

  /** Bytes buffered by all open streams. */
  total(): number {
    let sum = 0;
    for (const s of this.streams) sum += s.res.writableLength;
    return sum;
  }
}

export interface SseStreamOptions {
  /** Default DEFAULT_STREAM_BUFFER_BYTES. */
  maxBufferedBytes?: number;
  /** Default DEFAULT_STREAM_STALL_MS. */
  stallMs?: number;
  /** Shared by the server's streams; none: no total cap. */
  budget?: SseBudget;
}

/** One event stream; `end()` is idempotent and runs the close callbacks once. */
export class SseStream {
  #closed = false;
  readonly #onClose: (() => void)[] = [];
  readonly #maxBuffered: number;
  readonly #stallMs: number;
  readonly #budget: SseBudget | null;

  constructor(
    readonly res: ServerResponse,
    options: SseStreamOptions = {},
  ) {
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_STREAM_BUFFER_BYTES;
    this.#stallMs = options.stallMs ?? DEFAULT_STREAM_STALL_MS;
    this.#budget = options.budget ?? null;
    this.#budget?.streams.add(this);
    res.on('close', () => this.#finish());
    res.on('error', () => this.#finish());
  }

  /** Sends the 200 header. */
  open(): void {
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold events back.
      'X-Accel-Buffering': 'no',
      'X-Content-Type-Options': 'nosniff',
    });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.#closed;
  }

  onClose(callback: () => void): void {
    if (this.#closed) callback();
    else this.#onClose.push(callback);
  }

  /** Sends one event; false when the client is behind (await drained() before sending more) or gone. */
  send(event: string, data: unknown): boolean {
    // JSON never contains a raw newline, so each event's data is one `data:` line.
    return this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  comment(text: string): boolean {
    return this.write(`: ${text.replace(/[\r\n]/g, ' ')}\n\n`);
  }

  /**
   * Writes raw event-stream text (an event may be written in pieces). Returns false when the
   * client is behind — the writer should await drained() — or gone. A write that would make the
   * client's buffered bytes exceed its cap, or all streams' the total cap, drops the client.
   */
  write(chunk: string): boolean {
    if (this.#closed) return false;
    const size = Buffer.byteLength(chunk);
    if (this.res.writableLength + size > this.#maxBuffered || (this.#budget !== null && this.#budget.total() + size > this.#budget.maxTotalBytes)) {
      this.#drop();
      return false;
    }
    return this.res.write(chunk);
  }

  /**
   * Resolves once the client has taken what was buffered (at once when nothing waits) or the stream
   * closed; a client that does not drain within the stall time is dropped.
   */
  drained(): Promise<void> {
    if (this.#closed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.res.off('drain', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#drop();
        done();
      }, this.#stallMs);
      this.res.once('drain', done);
      this.onClose(done);
    });
  }

  end(): void {
    if (!this.#closed && !this.res.writableEnded) this.res.end();
    this.#finish();
  }

  #drop(): void {
    this.res.destroy();
    this.#finish();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget?.streams.delete(this);
    for (const callback of this.#onClose.splice(0)) callback();
  }
}

export interface RunFollowerOptions {
  /** Polling period (ms), the fallback for file systems where fs.watch misses changes. */
  pollMs?: number;
}

/**
 * Follows metrics.jsonl and config.json of a run and sends, on its stream:
 *
 * - `snapshot` {metrics, config}: first, and again whenever the log was rewritten. It is written
 *   in pieces straight from the file, chunk by chunk, waiting for the client whenever a write
 *   reports backpressure — never built whole in memory.
 * - `metrics` {records}: records appended since the last event (several events for a big append,
 *   each about 16 KiB).
 * - `config` {config}: config.json changed.
 * - `error` {error}: config.json cannot be served (too large or nested too deeply); the snapshot
 *   that follows carries `config: null`.
 *
 * Reads only complete lines (a torn last line waits until its newline arrives). The log counts as
 * rewritten, and a new snapshot is sent, when the file was replaced (another inode), shrank, or
 * the bytes just before the read position changed — a resumed run truncates the records after its
 * checkpoint and then appends again, possibly past the old size before we look. Checks never
 * overlap: one that is asked for while another runs (or waits for the client) runs after it.
 */
export class RunFollower {
  #offset = 0;
  #ino = -1;
  #tail: Buffer = Buffer.alloc(0);
  #configKey = '';
  #configText = '';
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #started = false;
  #busy = false;
  #again = false;

  constructor(
    readonly run: RunEntry,
    readonly stream: SseStream,
    readonly options: RunFollowerOptions = {},
  ) {
    stream.onClose(() => this.stop());
  }

  start(): void {
    if (this.#stopped) return;
    this.check();
    try {
      // The directory, not the files: config.json is replaced by rename, which a file watch misses.
      this.#watcher = watch(this.run.dir, { persistent: false }, () => this.check());
      this.#watcher.on('error', () => this.#closeWatcher());
    } catch {
      this.#watcher = null; // polling alone still works
    }
    this.#timer = setInterval(() => this.check(), this.options.pollMs ?? 500);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#closeWatcher();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Looks for changes (after the check in progress, if any) and sends what changed. */
  check(): void {
    if (this.#stopped) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    this.#again = false;
    // Watch events come in bursts (one per write): the ones arriving during a check fold into one more.
    this.#work()
      .catch((error: unknown) => {
        this.stream.send('error', { error: clipMessage(`live updates failed: ${(error as Error).message}`) });
        this.stream.end();
      })
      .finally(() => {
        this.#busy = false;
        if (this.#again && !this.#stopped) setImmediate(() => this.check());
      });
  }

  #closeWatcher(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }

  get #live(): boolean {
    return !this.#stopped && !this.stream.closed;
  }

  /** Sends an event, then waits for the client if it is behind. */
  async #send(event: string, data: unknown): Promise<void> {
    if (!this.stream.send(event, data)) await this.stream.drained();
  }

  async #write(text: string): Promise<void> {
    if (!this.stream.write(text)) await this.stream.drained();
  }

  async #work(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      return this.#snapshot();
    }
    await this.#checkMetrics();
    if (this.#live && this.#configChanged()) await this.#send('config', { config: this.#configValue() });
  }

  #configValue(): unknown {
    return this.#configText === '' ? null : (JSON.parse(this.#configText) as unknown);
  }

  /**
   * Whether config.json's content differs from the last seen; remembers the new content. A config
   * that cannot be served counts as missing, and its error is sent.
   */
  #configChanged(): boolean {
    const path = runFile(this.run, 'config.json');
    let key = 'missing';
    if (path !== null) {
      try {
        const st = statSync(path);
        key = `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        key = 'missing';
      }
    }
    if (key === this.#configKey) return false;
    this.#configKey = key;
    let config: unknown = null;
    if (key !== 'missing') {
      try {
        config = readRunConfig(this.run);
      } catch (error) {
        this.stream.send('error', { error: clipMessage((error as Error).message) });
      }
    }
    const text = config === null ? '' : JSON.stringify(config);
    if (text === this.#configText) return false;
    this.#configText = text;
    return true;
  }

  /** The whole log, streamed from the file with backpressure, and the config: one `snapshot` event. */
  async #snapshot(): Promise<void> {
    this.#configChanged();
    this.#offset = 0;
    this.#ino = -1;
    this.#tail = Buffer.alloc(0);
    const handle = await openMetrics(this.run);
    try {
      if (handle !== null) this.#ino = (await handle.stat()).ino;
      await this.#write('event: snapshot\ndata: {"metrics":[');
      let any = false;
      await this.#readLines(handle, async (json) => {
        await this.#write(any ? `,${json}` : json);
        any = true;
      });
      if (this.#live) await this.#write(`],"config":${this.#configText === '' ? 'null' : this.#configText}}\n\n`);
    } finally {
      await handle?.close();
    }
  }

  async #checkMetrics(): Promise<void> {
    const path = runFile(this.run, 'metrics.jsonl');
    let size = 0;
    let ino = -1;
    if (path !== null) {
      try {
        const st = statSync(path);
        size = st.size;
        ino = st.ino;
      } catch {
        // removed: handled as an empty log below
      }
    }
    if (ino !== this.#ino || size < this.#offset) return this.#snapshot();
    if (size === this.#offset) return;
    const handle = await openMetrics(this.run);
    if (handle === null) return this.#snapshot();
    let rewritten = false;
    try {
      // The bytes before the read position must be the ones read last time, else the log was rewritten.
      const back = Math.min(this.#offset, this.#tail.length);
      const before = Buffer.alloc(back);
      const { bytesRead } = await handle.read(before, 0, back, this.#offset - back);
      rewritten = (await handle.stat()).ino !== this.#ino || bytesRead < back || !before.equals(this.#tail.subarray(this.#tail.length - back));
      if (!rewritten) await this.#readLines(handle, (json) => this.#write(`event: metrics\ndata: {"records":[${json}]}\n\n`));
    } finally {
      await handle.close();
    }
    if (rewritten) return this.#snapshot();
  }

  /**
   * Reads complete lines from the read position to the end of the file in chunks, advancing past
   * them, and hands the records in pieces (comma-joined JSON, recordPieces) to `emit`, which
   * waits for the client when it is behind.
   */
  async #readLines(handle: FileHandle | null, emit: (json: string) => Promise<void>): Promise<void> {
    if (handle === null) return;
    const cutter = new LineCutter();
    let position = this.#offset;
    while (this.#live) {
      const buf = Buffer.allocUnsafe(METRICS_CHUNK_BYTES);
      const { bytesRead } = await handle.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const cut = cutter.push(buf.subarray(0, bytesRead));
      if (cut.consumed === 0) continue;
      this.#offset += cut.consumed;
      this.#tail = joinTail(this.#tail, cut.tail, TAIL_CHECK_BYTES);
      for (const piece of recordPieces(cut.text)) {
        if (!this.#live) return;
        await emit(piece);
      }
    }
  }
}

async function openMetrics(run: RunEntry): Promise<FileHandle | null> {
  const path = runFile(run, 'metrics.jsonl');
  if (path === null) return null;
  try {
    return await open(path, 'r');
  } catch {
    return null;
  }
}
