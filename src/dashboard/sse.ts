/**
 * Server-sent events over a raw Node response, and the follower of a run directory that turns
 * appends to metrics.jsonl and changes of config.json into events.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { MetricRecord } from '../train/metrics.js';
import { readRunConfig, runFile, type RunEntry } from './runs.js';

/** A slow or stalled client is dropped once this much output waits for it. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** One event stream; `end()` is idempotent and runs the close callbacks once. */
export class SseStream {
  #closed = false;
  readonly #onClose: (() => void)[] = [];

  constructor(readonly res: ServerResponse) {
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

  send(event: string, data: unknown): void {
    // JSON never contains a raw newline, so each event's data is one `data:` line.
    this.#write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  comment(text: string): void {
    this.#write(`: ${text.replace(/[\r\n]/g, ' ')}\n\n`);
  }

  end(): void {
    if (!this.#closed && !this.res.writableEnded) this.res.end();
    this.#finish();
  }

  #write(chunk: string): void {
    if (this.#closed) return;
    if (this.res.writableLength > MAX_BUFFERED_BYTES) {
      this.res.destroy();
      this.#finish();
      return;
    }
    this.res.write(chunk);
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const callback of this.#onClose.splice(0)) callback();
  }
}

export interface RunFollowerEvents {
  /** The whole metrics log and config: first, and again whenever the log was rewritten. */
  snapshot(data: { metrics: MetricRecord[]; config: unknown }): void;
  /** Records appended since the last event. */
  metrics(data: { records: MetricRecord[] }): void;
  config(data: { config: unknown }): void;
}

/** Bytes before the read position that must be unchanged for the log to count as appended to. */
const TAIL_CHECK_BYTES = 256;

export interface RunFollowerOptions {
  /** Polling period (ms), the fallback for file systems where fs.watch misses changes. */
  pollMs?: number;
}

/**
 * Follows metrics.jsonl and config.json of a run. Reads only complete lines (a torn last line
 * waits until its newline arrives). The log counts as rewritten, and a new snapshot is sent, when
 * the file was replaced (another inode), shrank, or the bytes just before the read position
 * changed — a resumed run truncates the records after its checkpoint and then appends again,
 * possibly past the old size before we look.
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
  #checkQueued = false;

  constructor(
    readonly run: RunEntry,
    readonly events: RunFollowerEvents,
    readonly options: RunFollowerOptions = {},
  ) {}

  start(): void {
    this.#snapshot();
    try {
      // The directory, not the files: config.json is replaced by rename, which a file watch misses.
      this.#watcher = watch(this.run.dir, { persistent: false }, () => this.#queueCheck());
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

  /** Looks for changes now and sends what changed. */
  check(): void {
    if (this.#stopped) return;
    this.#checkMetrics();
    if (this.#configChanged()) this.events.config({ config: this.#parsedConfig() });
  }

  #closeWatcher(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }

  /** Watch events come in bursts (one per write); one check per event-loop turn is enough. */
  #queueCheck(): void {
    if (this.#checkQueued || this.#stopped) return;
    this.#checkQueued = true;
    setImmediate(() => {
      this.#checkQueued = false;
      this.check();
    });
  }

  #parsedConfig(): unknown {
    if (this.#configText === '') return null;
    try {
      return JSON.parse(this.#configText) as unknown;
    } catch {
      return null;
    }
  }

  /** Whether config.json's content differs from the last seen; remembers the new content. */
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
    const config = key === 'missing' ? null : readRunConfig(this.run);
    const text = config === null ? '' : JSON.stringify(config);
    if (text === this.#configText) return false;
    this.#configText = text;
    return true;
  }

  #snapshot(): void {
    const { records } = this.#readFrom(0, true);
    this.#configChanged();
    this.events.snapshot({ metrics: records, config: this.#parsedConfig() });
  }

  #checkMetrics(): void {
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
    const { records, rewritten } = this.#readFrom(this.#offset, false);
    if (rewritten) return this.#snapshot();
    if (records.length > 0) this.events.metrics({ records });
  }

  /**
   * Reads complete lines from `from` to the end and advances past them. With `reset`, starts over
   * at 0; otherwise first checks the bytes before `from` are still the ones read last time.
   */
  #readFrom(from: number, reset: boolean): { records: MetricRecord[]; rewritten: boolean } {
    if (reset) {
      this.#offset = 0;
      this.#ino = -1;
      this.#tail = Buffer.alloc(0);
      from = 0;
    }
    const path = runFile(this.run, 'metrics.jsonl');
    if (path === null) return { records: [], rewritten: false };
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return { records: [], rewritten: false };
    }
    try {
      const st = fstatSync(fd);
      const back = Math.min(from, this.#tail.length);
      const start = from - back;
      const buf = Buffer.alloc(Math.max(0, st.size - start));
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, start + got);
        if (n === 0) break;
        got += n;
      }
      const data = buf.subarray(0, got);
      if (!reset && (data.length < back || !data.subarray(0, back).equals(this.#tail.subarray(this.#tail.length - back)))) return { records: [], rewritten: true };
      const fresh = data.subarray(back);
      const end = fresh.lastIndexOf(0x0a) + 1; // past the last complete line
      const records = parseLines(fresh.subarray(0, end).toString('utf8'));
      this.#ino = st.ino;
      this.#offset = from + end;
      const consumed = data.subarray(0, back + end);
      this.#tail = Buffer.from(consumed.subarray(Math.max(0, consumed.length - TAIL_CHECK_BYTES)));
      return { records, rewritten: false };
    } finally {
      closeSync(fd);
    }
  }
}

function parseLines(text: string): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) out.push(value as MetricRecord);
    } catch {
      // a corrupt line: the trainer's reader skips it too
    }
  }
  return out;
}
