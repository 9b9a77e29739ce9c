/**
 * The dashboard server's API on real runs trained here: run discovery and summaries, run details,
 * files, live metrics over server-sent events, streamed generation and attention maps.
 */
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import { tensor } from '../../src/tensor/creation.js';
import { readMetrics, type MetricRecord, type TrainRecord } from '../../src/train/metrics.js';
import { loadRun, type TrainResult } from '../../src/train/trainer.js';
import { httpSend, openEvents, postJson, tempRoot, trainSmall, type RawResponse } from './helpers.js';

const json = (r: RawResponse): Record<string, unknown> => JSON.parse(r.body) as Record<string, unknown>;

describe('dashboard server API', () => {
  let root: ReturnType<typeof tempRoot>;
  let alpha: TrainResult;
  let live: string;
  let server: Dashboard;

  beforeAll(async () => {
    root = tempRoot('dashboard-api');
    alpha = await trainSmall(root.runs, root.data, 'alpha');
    // A tuning study's trials two levels down: one finished long ago, one with no checkpoint.
    const trial1 = join(root.runs, 'study', 'trial-1');
    const trial2 = join(root.runs, 'study', 'trial-2');
    for (const dir of [trial1, trial2]) mkdirSync(dir, { recursive: true });
    copyFileSync(alpha.files.config, join(trial1, 'config.json'));
    copyFileSync(alpha.files.metrics, join(trial1, 'metrics.jsonl'));
    copyFileSync(alpha.files.latest, join(trial1, 'latest.safetensors'));
    copyFileSync(alpha.files.tokenizer, join(trial1, 'tokenizer.json'));
    writeFileSync(join(trial2, 'metrics.jsonl'), JSON.stringify({ kind: 'train', step: 2, tokens: 256, loss: 3.5, lr: 1e-3, tokensPerSecond: 100, elapsedSeconds: 1 }) + '\n');
    const old = new Date(Date.now() - 5 * 60_000);
    for (const f of ['config.json', 'metrics.jsonl', 'latest.safetensors']) utimesSync(join(trial1, f), old, old);
    utimesSync(join(trial2, 'metrics.jsonl'), old, old);
    // Not runs: a plain folder, and a hidden one.
    mkdirSync(join(root.runs, 'plots'));
    mkdirSync(join(root.runs, '.hidden'));
    writeFileSync(join(root.runs, '.hidden', 'metrics.jsonl'), '');
    // A run whose files the live-update tests rewrite.
    live = join(root.runs, 'live');
    mkdirSync(live);
    copyFileSync(alpha.files.config, join(live, 'config.json'));
    copyFileSync(alpha.files.metrics, join(live, 'metrics.jsonl'));
    server = await startDashboard({ runs: root.runs, port: 0 });
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    if (root) rmSync(root.dir, { recursive: true, force: true });
  });

  it('binds 127.0.0.1 on the port it was given (0: any free one)', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('GET /api/runs lists every run below the root with its summary', async () => {
    const r = await httpSend(server.url, 'GET', '/api/runs');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    const { runs } = json(r) as { runs: Record<string, unknown>[] };
    expect(runs.map((x) => x.name)).toEqual(['alpha', 'live', 'study/trial-1', 'study/trial-2']);
    const metrics = readMetrics(alpha.files.metrics);
    const evals = metrics.filter((m) => m.kind === 'eval');
    const trains = metrics.filter((m): m is TrainRecord => m.kind === 'train');
    const a = runs[0];
    expect(a).toMatchObject({ name: 'alpha', status: 'running', lastStep: 10, plannedSteps: 10, hasBest: true, hasLatest: true });
    expect(a.bestValLoss).toBe(Math.min(...evals.map((e) => e.valLoss)));
    expect(a.lastTrainLoss).toBe(trains[trains.length - 1].loss);
    expect(Date.parse(a.updatedAt as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(runs[2]).toMatchObject({ name: 'study/trial-1', status: 'finished', hasBest: false, hasLatest: true, lastStep: 10 });
    expect(runs[3]).toMatchObject({ name: 'study/trial-2', status: 'unknown', lastStep: 2, plannedSteps: null, bestValLoss: null, lastTrainLoss: 3.5, hasBest: false, hasLatest: false });
  });

  it('re-scans the root on each /api/runs: a run started later appears', async () => {
    const dir = join(root.runs, 'study', 'trial-3');
    mkdirSync(dir);
    writeFileSync(join(dir, 'metrics.jsonl'), '');
    try {
      const { runs } = json(await httpSend(server.url, 'GET', '/api/runs')) as { runs: { name: string; status: string }[] };
      expect(runs.find((x) => x.name === 'study/trial-3')?.status).toBe('running');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('GET /api/runs/:name gives the config and every metric record; names with / are one encoded segment', async () => {
    const r = await httpSend(server.url, 'GET', '/api/runs/alpha');
    expect(r.status).toBe(200);
    const body = json(r);
    expect(body.name).toBe('alpha');
    expect(body.config).toEqual(JSON.parse(readFileSync(alpha.files.config, 'utf8')));
    expect(body.metrics).toEqual(readMetrics(alpha.files.metrics));
    expect(body).toMatchObject({ hasBest: true, hasLatest: true });
    const trial = json(await httpSend(server.url, 'GET', `/api/runs/${encodeURIComponent('study/trial-1')}`));
    expect(trial).toMatchObject({ name: 'study/trial-1', hasBest: false, hasLatest: true });
    const missing = await httpSend(server.url, 'GET', '/api/runs/nope');
    expect(missing.status).toBe(404);
    expect(json(missing).error).toMatch(/unknown run 'nope'/);
  });

  it('GET /api/runs/:name/files/:file serves the run files byte for byte, and nothing else', async () => {
    for (const [file, path, type] of [
      ['config.json', alpha.files.config, /application\/json/],
      ['tokenizer.json', alpha.files.tokenizer, /application\/json/],
      ['metrics.jsonl', alpha.files.metrics, /application\/x-ndjson/],
    ] as const) {
      const r = await httpSend(server.url, 'GET', `/api/runs/alpha/files/${file}`);
      expect(r.status, file).toBe(200);
      expect(r.headers['content-type']).toMatch(type);
      expect(r.body).toBe(readFileSync(path, 'utf8'));
    }
    const best = await fetch(new URL('/api/runs/alpha/files/best.safetensors', server.url));
    expect(best.status).toBe(200);
    expect(best.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await best.arrayBuffer()).equals(readFileSync(alpha.files.best))).toBe(true);
    for (const file of ['corpus.txt', 'loss.svg', 'config.json.bak', '.hidden', 'latest.safetensors.tmp']) {
      const r = await httpSend(server.url, 'GET', `/api/runs/alpha/files/${file}`);
      expect(r.status, file).toBe(404);
      expect(json(r).error).toMatch(/not served/);
    }
    const absent = await httpSend(server.url, 'GET', `/api/runs/${encodeURIComponent('study/trial-2')}/files/best.safetensors`);
    expect(absent.status).toBe(404);
    expect(json(absent).error).toMatch(/has no best\.safetensors/);
  });

  it('events: a snapshot on connect, then appended records, torn lines held back, rewrites and config changes', async () => {
    const metricsPath = join(live, 'metrics.jsonl');
    const client = openEvents(server.url, '/api/runs/live/events');
    try {
      expect(await client.status).toBe(200);
      expect((await client.headers)['content-type']).toMatch(/^text\/event-stream/);
      const snapshot = (await client.next((e) => e.event === 'snapshot')).data as { metrics: MetricRecord[]; config: unknown };
      expect(snapshot.metrics).toEqual(readMetrics(metricsPath));
      expect(snapshot.config).toEqual(JSON.parse(readFileSync(join(live, 'config.json'), 'utf8')));

      // An appended line arrives as a `metrics` event.
      const rec: TrainRecord = { kind: 'train', step: 12, tokens: 1536, loss: 2.25, lr: 1e-3, tokensPerSecond: 4321, elapsedSeconds: 3 };
      appendFileSync(metricsPath, JSON.stringify(rec) + '\n');
      const appended = await client.next((e) => e.event === 'metrics', 2000);
      expect(appended.data).toEqual({ records: [rec] });

      // A torn line waits for its newline.
      const rec2 = { ...rec, step: 14, loss: 2.0 };
      const text = JSON.stringify(rec2);
      const count = client.events.length;
      appendFileSync(metricsPath, text.slice(0, 20));
      await new Promise((r) => setTimeout(r, 700));
      expect(client.events.length).toBe(count);
      appendFileSync(metricsPath, text.slice(20) + '\n');
      expect((await client.next((e) => e.event === 'metrics', 2000, count)).data).toEqual({ records: [rec2] });

      // A resume rewrites the file (records after the checkpoint dropped): a new snapshot.
      const kept = readMetrics(metricsPath).filter((r) => r.step <= 5);
      const after = client.events.length;
      writeFileSync(metricsPath, kept.map((r) => JSON.stringify(r) + '\n').join('') + JSON.stringify({ ...rec, step: 6, loss: 9 }) + '\n' + JSON.stringify({ ...rec, step: 8, loss: 9 }) + '\n');
      const again = (await client.next((e) => e.event === 'snapshot', 2000, after)).data as { metrics: MetricRecord[] };
      expect(again.metrics.map((r) => r.step)).toEqual([...kept.map((r) => r.step), 6, 8]);

      // config.json replaced (as the trainer does, by rename).
      const config = JSON.parse(readFileSync(join(live, 'config.json'), 'utf8')) as { train: { maxSteps: number } };
      config.train.maxSteps = 99;
      writeFileSync(join(live, 'config.json.tmp'), JSON.stringify(config));
      renameSync(join(live, 'config.json.tmp'), join(live, 'config.json'));
      const changed = await client.next((e) => e.event === 'config', 2000);
      expect((changed.data as { config: { train: { maxSteps: number } } }).config.train.maxSteps).toBe(99);
    } finally {
      client.close();
    }
  });

  it('generate streams one token event per token, then done; temperature 0 matches the library', async () => {
    const client = openEvents(server.url, '/api/runs/alpha/generate', { prompt: 'ROMEO:', maxNewTokens: 24, temperature: 0 });
    expect(await client.status).toBe(200);
    expect((await client.headers)['content-type']).toMatch(/^text\/event-stream/);
    await client.ended;
    const tokens = client.events.filter((e) => e.event === 'token').map((e) => e.data as { text: string; index: number });
    expect(tokens.map((t) => t.index)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    const done = client.events[client.events.length - 1];
    expect(done.event).toBe('done');
    expect(done.data).toMatchObject({ tokens: 24, checkpoint: 'best' });
    expect((done.data as { tokensPerSecond: number }).tokensPerSecond).toBeGreaterThan(0);

    const { model, tokenizer } = loadRun(alpha.files.dir, 'best');
    const prompt = tokenizer.encode('ROMEO:');
    const out = model.generate(tensor(Int32Array.from(prompt), { shape: [1, prompt.length] }), { maxNewTokens: 24, temperature: 0 });
    expect(tokens.map((t) => t.text).join('')).toBe(tokenizer.decode(out.toArray().slice(prompt.length)));
  });

  it('generate with a seed is reproducible, and uses the latest checkpoint when asked', async () => {
    const texts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const client = openEvents(server.url, '/api/runs/alpha/generate', { prompt: '', maxNewTokens: 20, temperature: 1, topK: 5, seed: 42, checkpoint: 'latest' });
      await client.ended;
      texts.push(client.events.filter((e) => e.event === 'token').map((e) => (e.data as { text: string }).text).join(''));
      expect(client.events[client.events.length - 1].data).toMatchObject({ tokens: 20, checkpoint: 'latest' });
    }
    expect(texts[0]).toBe(texts[1]);
    expect(texts[0].length).toBe(20);
    // A run with only a latest checkpoint falls back to it.
    const trial = openEvents(server.url, `/api/runs/${encodeURIComponent('study/trial-1')}/generate`, { prompt: 'J', maxNewTokens: 3 });
    await trial.ended;
    expect(trial.events[trial.events.length - 1].data).toMatchObject({ tokens: 3, checkpoint: 'latest' });
    // No checkpoint at all: a clear error before any streaming.
    const none = await postJson(server.url, `/api/runs/${encodeURIComponent('study/trial-2')}/generate`, { prompt: 'x' });
    expect(none.status).toBe(409);
    expect(json(none).error).toMatch(/no checkpoint yet/);
  });

  it('generate draws several samples in one batched run, each token tagged with its row', async () => {
    const rowsOf = (events: { event: string; data: unknown }[], n: number) => {
      const tokens = events.filter((e) => e.event === 'token').map((e) => e.data as { text: string; index: number; row: number });
      return Array.from({ length: n }, (_, r) => tokens.filter((t) => t.row === r));
    };
    const single = openEvents(server.url, '/api/runs/alpha/generate', { prompt: 'ROMEO:', maxNewTokens: 12, temperature: 0 });
    await single.ended;
    const greedyText = single.events.filter((e) => e.event === 'token').map((e) => (e.data as { text: string }).text).join('');
    const greedy = openEvents(server.url, '/api/runs/alpha/generate', { prompt: 'ROMEO:', maxNewTokens: 12, temperature: 0, samples: 3 });
    await greedy.ended;
    const rows = rowsOf(greedy.events, 3);
    // Greedy rows are the batch-1 greedy continuation; every row streams all its indices.
    for (const row of rows) {
      expect(row.map((t) => t.index)).toEqual(Array.from({ length: 12 }, (_, i) => i));
      expect(row.map((t) => t.text).join('')).toBe(greedyText);
    }
    expect(greedy.events[greedy.events.length - 1].data).toMatchObject({ tokens: 36, samples: 3, checkpoint: 'best' });
    const texts: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const client = openEvents(server.url, '/api/runs/alpha/generate', { prompt: '', maxNewTokens: 16, temperature: 1, seed: 9, samples: 4 });
      await client.ended;
      texts.push(rowsOf(client.events, 4).map((row) => row.map((t) => t.text).join('')));
    }
    expect(texts[1]).toEqual(texts[0]);
    expect(new Set(texts[0]).size).toBeGreaterThan(1);
    for (const [samples, got] of [[0, 'number 0'], [9, 'number 9'], [1.5, 'number 1.5'], ['2', 'the string "2"']] as const) {
      const r = await postJson(server.url, '/api/runs/alpha/generate', { prompt: 'x', samples });
      expect(r.status).toBe(400);
      expect(json(r).error).toBe(`samples must be an integer in 1..8, got ${got}`);
    }
  });

  it('generate stops when the client goes away, and the server keeps answering', async () => {
    const client = openEvents(server.url, '/api/runs/alpha/generate', { prompt: 'ROMEO:', maxNewTokens: 1000, temperature: 1 });
    await client.next((e) => e.event === 'token');
    client.close();
    const r = await httpSend(server.url, 'GET', '/api/runs');
    expect(r.status).toBe(200);
    expect(client.events.filter((e) => e.event === 'token').length).toBeLessThan(1000);
  });

  it('attention gives [layer][head][query][key] probabilities for each prompt token', async () => {
    const r = await postJson(server.url, '/api/runs/alpha/attention', { prompt: 'JULIET: sweet' });
    expect(r.status).toBe(200);
    const body = json(r) as { tokens: string[]; nLayers: number; nHeads: number; weights: number[][][][] };
    expect(body.tokens).toEqual([...'JULIET: sweet']);
    expect(body.nLayers).toBe(2);
    expect(body.nHeads).toBe(2);
    expect(body.weights.length).toBe(2);
    const t = body.tokens.length;
    for (const layer of body.weights) {
      expect(layer.length).toBe(2);
      for (const head of layer) {
        expect(head.length).toBe(t);
        head.forEach((row, i) => {
          expect(row.length).toBe(t);
          row.forEach((p, j) => (j > i ? expect(p).toBe(0) : expect(p).toBeGreaterThanOrEqual(0)));
          expect(Math.abs(row.reduce((s, p) => s + p, 0) - 1)).toBeLessThan(1e-4);
        });
      }
    }
    for (const [prompt, message] of [
      ['', /1\.\.32 tokens .* got 0/],
      ['o'.repeat(33), /1\.\.32 tokens .* got 33/],
      ['€', /cannot be encoded/],
    ] as const) {
      const bad = await postJson(server.url, '/api/runs/alpha/attention', { prompt });
      expect(bad.status, prompt).toBe(400);
      expect(json(bad).error).toMatch(message);
    }
  });
});
