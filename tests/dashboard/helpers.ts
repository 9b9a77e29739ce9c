/** Small real runs and raw HTTP clients for the dashboard server tests. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator } from '../../src/tensor/random.js';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

/** A small corpus with structure to learn: repeated dialogue lines. */
export function corpus(): string {
  const lines: string[] = [];
  const names = ['ROMEO', 'JULIET', 'NURSE'];
  const words = ['love', 'night', 'light', 'death', 'sweet', 'fair', 'moon', 'sun'];
  const g = new Generator(3);
  for (let i = 0; i < 300; i++) lines.push(`${names[g.randint(0, 3)]}:\n${Array.from({ length: 6 }, () => words[g.randint(0, words.length)]).join(' ')}.\n`);
  return lines.join('\n');
}

/** A temp folder holding corpus.txt and `runs/`. */
export function tempRoot(prefix: string): { dir: string; runs: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), `tensorlm-${prefix}-`));
  const runs = join(dir, 'runs');
  mkdirSync(runs);
  const data = join(dir, 'corpus.txt');
  writeFileSync(data, corpus());
  return { dir, runs, data };
}

/** A 10-step run of a 2-layer, 2-head char model (well under a second). */
export function trainSmall(outDir: string, data: string, name: string): Promise<TrainResult> {
  return train(smallTrainConfig(outDir, data, { name, maxSteps: 10, evalInterval: 5, logInterval: 2, sampleTokens: 16 }));
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Parses a raw HTTP/1.1 response (Connection: close, so the body runs to the end). */
function parseRaw(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  let body = split === -1 ? '' : text.slice(split + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '';
    let rest = body;
    for (;;) {
      const eol = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, eol), 16);
      if (!(size > 0)) break;
      out += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
    body = out;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * Sends `target` exactly as written (no client-side normalisation of '..', '%2e', '\\'), over a
 * raw socket.
 */
export function rawGet(url: string, target: string, options: { host?: string } = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: ${options.host ?? `${hostname}:${port}`}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(parseRaw(Buffer.concat(chunks).toString('latin1'))));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer to GET ${target}`)));
  });
}

/** A request through node:http (which sends the path as given). */
export function httpSend(url: string, method: string, path: string, options: { headers?: Record<string, string | number>; body?: string | Buffer } = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port: Number(port), method, path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function postJson(url: string, path: string, body: unknown): Promise<RawResponse> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return httpSend(url, 'POST', path, { headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }, body: text });
}

export interface SseEvent {
  event: string;
  data: unknown;
}

export interface EventClient {
  status: Promise<number>;
  headers: Promise<IncomingHttpHeaders>;
  events: SseEvent[];
  /** Raw text received, comments included. */
  text(): string;
  /** Resolves with the first event (at index ≥ from) matching `test`, or rejects after timeoutMs. */
  next(test: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** An event-stream client over node:http (GET, or POST with a JSON body). */
export function openEvents(url: string, path: string, post?: unknown): EventClient {
  const { hostname, port } = new URL(url);
  const events: SseEvent[] = [];
  let raw = '';
  let buffer = '';
  const waiters: (() => void)[] = [];
  let resolveStatus!: (s: number) => void;
  let resolveHeaders!: (h: IncomingHttpHeaders) => void;
  let resolveEnded!: () => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const headers = new Promise<IncomingHttpHeaders>((r) => (resolveHeaders = r));
  const ended = new Promise<void>((r) => (resolveEnded = r));
  const body = post === undefined ? undefined : JSON.stringify(post);
  const req = httpRequest(
    {
      host: hostname,
      port: Number(port),
      method: post === undefined ? 'GET' : 'POST',
      path,
      headers: body === undefined ? { Accept: 'text/event-stream' } : { Accept: 'text/event-stream', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    },
    (res) => {
      resolveStatus(res.statusCode ?? 0);
      resolveHeaders(res.headers);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) events.push({ event, data: JSON.parse(data.join('\n')) as unknown });
        }
        for (const w of waiters.splice(0)) w();
      });
      res.on('end', () => resolveEnded());
      res.on('close', () => resolveEnded());
    },
  );
  req.on('error', () => resolveEnded());
  req.end(body);
  const next = (test: (e: SseEvent) => boolean, timeoutMs = 3000, from = 0): Promise<SseEvent> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ')}`)), timeoutMs);
      const look = () => {
        const found = events.slice(from).find(test);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        } else waiters.push(look);
      };
      look();
    });
  return { status, headers, events, text: () => raw, next, ended, close: () => req.destroy() };
}
