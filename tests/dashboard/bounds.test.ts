/**
 * The dashboard server's resource bounds (issue #20): event streams of clients that do not read
 * hold little memory (the snapshot is streamed from the file with backpressure), slow-header and
 * slow-body sockets are closed by the header / request timeouts, a deeply nested config.json gives
 * a short error, and a checkpoint declaring a huge model is refused quickly with a short body.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import type { TrainResult } from '../../src/train/trainer.js';
import { httpSend, openEvents, postJson, tempRoot, trainSmall, type RawResponse } from './helpers.js';

const MB = 1024 * 1024;

/** Writes about `bytes` of valid metric lines (train records, an eval record every 50 steps). */
function writeBigMetrics(path: string, bytes: number): number {
  const fd = openSync(path, 'w');
  let written = 0;
  let step = 0;
  try {
    while (written < bytes) {
      const lines: string[] = [];
      for (let i = 0; i < 1000; i++) {
        step++;
        lines.push(JSON.stringify({ kind: 'train', step, tokens: step * 4096, loss: 4 / Math.log(step + 2), lr: 3e-4 * Math.min(1, step / 100), tokensPerSecond: 12345.678 + (step % 97), elapsedSeconds: step * 0.123 }));
        if (step % 50 === 0) lines.push(JSON.stringify({ kind: 'eval', step, tokens: step * 4096, trainLoss: 4 / Math.log(step + 2), valLoss: 4.1 / Math.log(step + 2), elapsedSeconds: step * 0.123, sample: 'ROMEO: sweet love, the night is fair' }));
      }
      const text = lines.join('\n') + '\n';
      writeSync(fd, text);
      written += Buffer.byteLength(text);
    }
  } finally {
    closeSync(fd);
  }
  return step;
}

interface Memory {
  rss: number;
  peakRss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** startDashboard in a child process (tests/dashboard/bounds-server.ts), to measure its memory alone. */
async function startChild(options: { runs: string; limits?: Record<string, number>; server?: string }): Promise<{ url: string; memory(): Promise<Memory>; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'bounds-server.ts'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start; stderr: ${stderr}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const m = /URL (http:\/\/\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code}); stderr: ${stderr}`)));
  });
  return {
    url,
    memory: () =>
      new Promise<Memory>((resolve) => {
        child.once('message', (m) => resolve(m as Memory));
        child.send('memory');
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send('close');
      }),
  };
}

/** A GET of an event stream over a socket that never reads what the server sends. */
function stalledEventStream(url: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (n: number) => `${(n / MB).toFixed(0)} MB`;

describe('dashboard resource bounds', () => {
  let root: ReturnType<typeof tempRoot>;
  let small: TrainResult;

  beforeAll(async () => {
    root = tempRoot('dashboard-bounds');
    small = await trainSmall(root.runs, root.data, 'small');
  }, 60_000);

  afterAll(() => {
    if (root) rmSync(root.dir, { recursive: true, force: true });
  });

  it('30 event-stream clients that never read, on a 30 MB metrics log, keep the server under 400 MB', async () => {
    const big = join(root.dir, 'big-runs', 'big');
    mkdirSync(big, { recursive: true });
    copyFileSync(small.files.config, join(big, 'config.json'));
    const steps = writeBigMetrics(join(big, 'metrics.jsonl'), 30 * MB);
    // TENSORLM_BOUNDS_SERVER=<path of another server.ts> measures that one instead (e.g. a copy of the code before the bounds).
    const server = await startChild({ runs: join(root.dir, 'big-runs'), server: process.env.TENSORLM_BOUNDS_SERVER });
    const sockets: Socket[] = [];
    try {
      const before = await server.memory();
      for (let i = 0; i < 30; i++) sockets.push(await stalledEventStream(server.url, '/api/runs/big/events'));
      // Every stream has sent what its client's socket takes and is waiting for 'drain'.
      let after = await server.memory();
      for (let i = 0; i < 8; i++) {
        await sleep(1000);
        after = await server.memory();
      }
      // The server still answers others meanwhile, and its run summary covers the whole log.
      const started = Date.now();
      const list = await httpSend(server.url, 'GET', '/api/runs');
      const listMs = Date.now() - started;
      expect(list.status).toBe(200);
      expect((JSON.parse(list.body) as { runs: { lastStep: number }[] }).runs[0].lastStep).toBe(steps);
      console.log(
        `30 non-reading event streams on a 30 MB metrics.jsonl: server RSS ${mb(before.rss)} before, ${mb(after.rss)} with the streams open, peak ${mb(after.peakRss)}; ` +
          `heap ${mb(after.heapUsed)}, external ${mb(after.external)}; GET /api/runs meanwhile took ${listMs} ms`,
      );
      expect(after.rss).toBeLessThan(400 * MB);
      expect(after.peakRss).toBeLessThan(400 * MB);
    } finally {
      for (const s of sockets) s.destroy();
      await server.stop();
    }
  }, 120_000);

  it('streams the same snapshot and run detail as before, from a log larger than a chunk', async () => {
    const dir = join(root.dir, 'mid-runs', 'mid');
    mkdirSync(dir, { recursive: true });
    copyFileSync(small.files.config, join(dir, 'config.json'));
    writeBigMetrics(join(dir, 'metrics.jsonl'), 1 * MB);
    // A torn last line is held back; corrupt and too deeply nested lines are skipped.
    const deepLine = '{"a":'.repeat(1000) + '1' + '}'.repeat(1000);
    writeFileSync(join(dir, 'metrics.jsonl'), readFileSync(join(dir, 'metrics.jsonl'), 'utf8') + 'not json\n' + deepLine + '\n' + '{"kind":"train","st');
    const expected = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.startsWith('{"kind"'))
      .map((l) => JSON.parse(l) as unknown);
    const server = await startDashboard({ runs: join(root.dir, 'mid-runs'), port: 0 });
    try {
      const events = openEvents(server.url, '/api/runs/mid/events');
      const snapshot = (await events.next((e) => e.event === 'snapshot', 10_000)).data as { metrics: unknown[]; config: unknown };
      events.close();
      expect(snapshot.metrics.length).toBe(expected.length);
      expect(snapshot.metrics).toEqual(expected);
      expect(snapshot.config).toEqual(JSON.parse(readFileSync(small.files.config, 'utf8')));
      const detail = await httpSend(server.url, 'GET', '/api/runs/mid');
      expect(detail.status).toBe(200);
      const body = JSON.parse(detail.body) as { name: string; metrics: unknown[]; config: unknown; hasBest: boolean };
      expect(body).toMatchObject({ name: 'mid', hasBest: false });
      expect(body.metrics).toEqual(expected);
    } finally {
      await server.close();
    }
  }, 60_000);

  describe('timeouts', () => {
    let server: Dashboard;
    beforeAll(async () => {
      server = await startDashboard({ run: [small.files.dir], port: 0, limits: { headersTimeoutMs: 1000, requestTimeoutMs: 1500 } });
    });
    afterAll(async () => server?.close());

    /** Connects and calls `drip` until the server closes the socket; resolves with the ms it stayed open. */
    function openUntilClosed(drip: (socket: Socket, i: number) => void): Promise<{ ms: number; received: string }> {
      const { hostname, port } = new URL(server.url);
      return new Promise((resolve, reject) => {
        const started = Date.now();
        let received = '';
        let i = 0;
        let timer: NodeJS.Timeout | null = null;
        const socket = connect(Number(port), hostname, () => {
          timer = setInterval(() => {
            if (!socket.destroyed) drip(socket, i++);
          }, 100);
        });
        const guard = setTimeout(() => socket.destroy(new Error('still open after 8 s')), 8000);
        socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
        socket.on('close', () => {
          if (timer) clearInterval(timer);
          clearTimeout(guard);
          resolve({ ms: Date.now() - started, received });
        });
        socket.on('error', (e) => (e.message.includes('still open') ? reject(e) : undefined));
      });
    }

    it('closes a socket that sends its headers a byte at a time, within the header timeout', async () => {
      const request = `GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'x'.repeat(200)}\r\n\r\n`;
      const { ms, received } = await openUntilClosed((socket, i) => socket.write(request[i % (request.length - 4)]));
      console.log(`slow-header socket closed after ${ms} ms (headersTimeout 1000 ms): ${JSON.stringify(received.split('\r\n')[0])}`);
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(2500);
      expect(received).not.toMatch(/200 OK/);
    });

    it('closes a socket that sends its body a byte at a time, within the request timeout', async () => {
      const head = 'POST /api/runs/small/attention HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';
      const { ms } = await openUntilClosed((socket, i) => socket.write(i === 0 ? head : ' '));
      console.log(`slow-body socket closed after ${ms} ms (requestTimeout 1500 ms)`);
      expect(ms).toBeGreaterThanOrEqual(1300);
      expect(ms).toBeLessThan(3000);
    });

    it('keeps event streams open past the request timeout (responses are not limited)', async () => {
      const events = openEvents(server.url, '/api/runs/small/events');
      try {
        await events.next((e) => e.event === 'snapshot');
        const ended = await Promise.race([events.ended.then(() => true), sleep(2500).then(() => false)]);
        expect(ended).toBe(false);
        expect((await httpSend(server.url, 'GET', '/api/runs')).status).toBe(200);
      } finally {
        events.close();
      }
    });

    it('refuses limits that are not positive integers', async () => {
      await expect(startDashboard({ run: [small.files.dir], port: 0, limits: { headersTimeoutMs: 0 } })).rejects.toThrow(/limits\.headersTimeoutMs must be a positive integer/);
      await expect(startDashboard({ run: [small.files.dir], port: 0, limits: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } })).rejects.toThrow(/at most limits\.requestTimeoutMs/);
    });
  });

  it('a deeply nested config.json gives a short error (JSON 500, an error event), and the server answers others', async () => {
    const runs = join(root.dir, 'deep-runs');
    const deep = join(runs, 'deep');
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'config.json'), '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000));
    writeFileSync(join(deep, 'metrics.jsonl'), JSON.stringify({ kind: 'train', step: 1, tokens: 8, loss: 3, lr: 1e-3, tokensPerSecond: 1, elapsedSeconds: 1 }) + '\n');
    mkdirSync(join(runs, 'fine'));
    copyFileSync(small.files.config, join(runs, 'fine', 'config.json'));
    copyFileSync(small.files.metrics, join(runs, 'fine', 'metrics.jsonl'));
    const server = await startDashboard({ runs, port: 0 });
    try {
      const detail = await httpSend(server.url, 'GET', '/api/runs/deep');
      expect(detail.status).toBe(500);
      expect(detail.body.length).toBeLessThan(400);
      expect((JSON.parse(detail.body) as { error: string }).error).toMatch(/config\.json is nested deeper than 64 levels/);

      const events = openEvents(server.url, '/api/runs/deep/events');
      try {
        const error = await events.next((e) => e.event === 'error', 3000);
        expect(JSON.stringify(error.data).length).toBeLessThan(400);
        expect((error.data as { error: string }).error).toMatch(/nested deeper/);
        const snapshot = (await events.next((e) => e.event === 'snapshot', 3000)).data as { metrics: unknown[]; config: unknown };
        expect(snapshot.config).toBeNull();
        expect(snapshot.metrics.length).toBe(1);
      } finally {
        events.close();
      }

      const list = await httpSend(server.url, 'GET', '/api/runs');
      expect(list.status).toBe(200);
      expect((JSON.parse(list.body) as { runs: { name: string; lastStep: number }[] }).runs.map((r) => [r.name, r.lastStep])).toEqual([
        ['deep', 1],
        ['fine', 10],
      ]);
      expect((await httpSend(server.url, 'GET', '/api/runs/fine')).status).toBe(200);
    } finally {
      await server.close();
    }
  }, 30_000);

  it('a checkpoint declaring a huge model (nLayers 3000) is refused quickly with a short error', async () => {
    const runs = join(root.dir, 'huge-runs');
    const huge = join(runs, 'huge');
    mkdirSync(huge, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'metrics.jsonl'] as const) copyFileSync(small.files[f === 'config.json' ? 'config' : f === 'tokenizer.json' ? 'tokenizer' : 'metrics'], join(huge, f));
    // The checkpoint's metadata (its data checksum still matches) now asks for 3000 layers.
    for (const which of ['best', 'latest'] as const) {
      const bytes = readFileSync(join(small.files.dir, `${which}.safetensors`));
      const n = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__: { meta: string } };
      const meta = JSON.parse(header.__metadata__.meta) as { config: { model: { nLayers: number } } };
      meta.config.model.nLayers = 3000;
      header.__metadata__.meta = JSON.stringify(meta);
      let text = JSON.stringify(header);
      text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
      writeFileSync(join(huge, `${which}.safetensors`), Buffer.concat([prefix, Buffer.from(text), bytes.subarray(8 + n)]));
    }
    const server = await startDashboard({ runs, port: 0 });
    try {
      const check = (r: RawResponse, ms: number) => {
        expect(r.status, r.body).toBe(500);
        expect(r.body.length).toBeLessThan(1024);
        expect((JSON.parse(r.body) as { error: string }).error).toMatch(/declares a model of \d+ parameters \(nLayers 3000\) but holds only \d+ weights/);
        expect(ms).toBeLessThan(1000);
      };
      for (let i = 0; i < 2; i++) {
        let started = Date.now();
        const gen = await postJson(server.url, '/api/runs/huge/generate', { prompt: 'R', maxNewTokens: 2 });
        const genMs = Date.now() - started;
        check(gen, genMs);
        started = Date.now();
        const attention = await postJson(server.url, '/api/runs/huge/attention', { prompt: 'R' });
        check(attention, Date.now() - started);
        console.log(`huge-model checkpoint refused in ${genMs} ms with a ${gen.body.length}-byte body: ${gen.body}`);
      }
      expect((await httpSend(server.url, 'GET', '/api/runs')).status).toBe(200);
    } finally {
      await server.close();
    }
    // A model over maxModelParameters is refused the same way, before loading.
    const capped = await startDashboard({ run: [small.files.dir], port: 0, limits: { maxModelParameters: 1000 } });
    try {
      const r = await postJson(capped.url, '/api/runs/small/attention', { prompt: 'R' });
      expect(r.status).toBe(500);
      expect((JSON.parse(r.body) as { error: string }).error).toMatch(/more than the 1000 the dashboard loads/);
    } finally {
      await capped.close();
    }
  }, 30_000);

  it('drops an event stream whose client does not drain within the stall time, and streams over the total cap', async () => {
    const runs = join(root.dir, 'stall-runs');
    const dir = join(runs, 'stall');
    mkdirSync(dir, { recursive: true });
    writeBigMetrics(join(dir, 'metrics.jsonl'), 20 * MB);
    const server = await startDashboard({ runs, port: 0, limits: { streamStallMs: 1000 } });
    try {
      const socket = await stalledEventStream(server.url, '/api/runs/stall/events');
      await sleep(3000);
      // Read now: a dropped stream ends once what the kernel buffered is taken; a live one would
      // go on to send the whole 20 MB snapshot and stay open.
      let received = 0;
      let tail = '';
      socket.on('data', (c: Buffer) => {
        received += c.length;
        tail = (tail + c.toString('latin1')).slice(-100);
      });
      const closed = new Promise<boolean>((resolve) => socket.on('close', () => resolve(true)));
      socket.resume();
      expect(await Promise.race([closed, sleep(10_000).then(() => false)])).toBe(true);
      console.log(`a stalled event stream was dropped (streamStallMs 1000) after sending ${mb(received)} of the 20 MB log`);
      expect(received).toBeLessThan(20 * MB);
      expect(tail).not.toContain('"config":');
    } finally {
      await server.close();
    }
    // The total cap: stalled streams that together buffer more than it are dropped (long before their stall time).
    const capped = await startDashboard({ runs, port: 0, limits: { totalStreamBufferBytes: 128 * 1024, streamStallMs: 60_000 } });
    try {
      const sockets: Socket[] = [];
      for (let i = 0; i < 8; i++) sockets.push(await stalledEventStream(capped.url, '/api/runs/stall/events'));
      await sleep(3000);
      const ended = await Promise.all(
        sockets.map((socket) => {
          const closed = new Promise<boolean>((resolve) => socket.on('close', () => resolve(true)));
          socket.on('data', () => undefined);
          socket.resume();
          return Promise.race([closed, sleep(5000).then(() => false)]);
        }),
      );
      console.log(`total cap 128 KiB: ${ended.filter(Boolean).length} of 8 stalled streams dropped`);
      expect(ended.filter(Boolean).length).toBeGreaterThan(0);
      for (const s of sockets) s.destroy();
      expect((await httpSend(capped.url, 'GET', '/api/runs')).status).toBe(200);
    } finally {
      await capped.close();
    }
  }, 60_000);
});
