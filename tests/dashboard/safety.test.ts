/**
 * The dashboard server's safety rules: only its own assets and the given runs' fixed files are
 * served (path traversal in every spelling, symlinks leading out, dotfiles and folder listings are
 * refused), malformed, mistyped and oversized requests get a 4xx with a JSON error, foreign Host
 * headers are refused, and close() ends open streams and frees the port.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import type { TrainResult } from '../../src/train/trainer.js';
import { httpSend, openEvents, postJson, rawGet, tempRoot, trainSmall, type RawResponse } from './helpers.js';

const SECRET = 'TOP-SECRET-CONTENT';

function expectJsonError(r: RawResponse, status: number, message?: RegExp): void {
  expect(r.status, r.body).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(r.body) as { error?: unknown };
  expect(typeof body.error).toBe('string');
  if (message) expect(body.error).toMatch(message);
  // No stack traces, no internals.
  expect(r.body).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

describe('dashboard server safety', () => {
  let root: ReturnType<typeof tempRoot>;
  let run: TrainResult;
  let assets: string;
  let server: Dashboard;

  beforeAll(async () => {
    root = tempRoot('dashboard-safety');
    run = await trainSmall(root.runs, root.data, 'alpha');
    // Files outside everything served.
    writeFileSync(join(root.dir, 'secret.txt'), SECRET);
    writeFileSync(join(root.dir, 'config.json'), JSON.stringify({ secret: SECRET }));
    // A run whose files are symlinks leading out of it.
    const linked = join(root.runs, 'linked');
    mkdirSync(linked);
    writeFileSync(join(linked, 'metrics.jsonl'), '');
    symlinkSync(join(root.dir, 'config.json'), join(linked, 'config.json'));
    symlinkSync(join(root.dir, 'secret.txt'), join(linked, 'tokenizer.json'));
    symlinkSync('../../secret.txt', join(linked, 'best.safetensors'));
    // A symlinked run directory pointing outside the root is not a run of this server.
    const outside = join(root.dir, 'outside-run');
    mkdirSync(outside);
    writeFileSync(join(outside, 'config.json'), JSON.stringify({ secret: SECRET }));
    symlinkSync(outside, join(root.runs, 'escape'));
    // A fake vite build, so these tests do not depend on `npm run build:web`.
    assets = join(root.dir, 'dist-web');
    mkdirSync(join(assets, 'dashboard', 'assets', 'sub'), { recursive: true });
    mkdirSync(join(assets, 'playground', 'assets'), { recursive: true });
    writeFileSync(join(assets, 'dashboard', 'index.html'), '<!doctype html><h1>dashboard</h1>');
    writeFileSync(join(assets, 'dashboard', 'assets', 'app-1234.js'), 'console.log("app")');
    writeFileSync(join(assets, 'dashboard', 'assets', 'sub', 'x.css'), 'body{}');
    writeFileSync(join(assets, 'dashboard', '.env'), SECRET);
    symlinkSync(join(root.dir, 'secret.txt'), join(assets, 'dashboard', 'assets', 'leak.js'));
    symlinkSync(root.dir, join(assets, 'dashboard', 'assets', 'up'));
    writeFileSync(join(assets, 'playground', 'index.html'), '<!doctype html><h1>playground</h1>');
    writeFileSync(join(assets, 'playground', 'assets', 'worker.wasm'), Buffer.from([0, 97, 115, 109]));
    server = await startDashboard({ runs: root.runs, port: 0, assetsDir: assets });
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    if (root) rmSync(root.dir, { recursive: true, force: true });
  });

  it('serves its own pages: the dashboard at /, its assets, the playground under /playground/', async () => {
    const index = await rawGet(server.url, '/');
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.body).toContain('<h1>dashboard</h1>');
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    const js = await rawGet(server.url, '/assets/app-1234.js?v=1');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.headers['cache-control']).toMatch(/immutable/);
    expect((await rawGet(server.url, '/assets/sub/x.css')).headers['content-type']).toMatch(/^text\/css/);
    const redirect = await rawGet(server.url, '/playground');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/playground/');
    expect((await rawGet(server.url, '/playground/')).body).toContain('<h1>playground</h1>');
    expect((await rawGet(server.url, '/playground/index.html')).body).toContain('<h1>playground</h1>');
    expect((await rawGet(server.url, '/playground/assets/worker.wasm')).headers['content-type']).toBe('application/wasm');
    expect((await rawGet(server.url, '/missing.js')).status).toBe(404);
  });

  it('refuses path traversal in every spelling, symlinks leading out, dotfiles and folder listings', async () => {
    const attempts = [
      '/assets/../../package.json',
      '/assets/../../secret.txt',
      '/../secret.txt',
      '/..',
      '/./index.html',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/%2e%2e/secret.txt',
      '/%2E%2E/secret.txt',
      '/.%2e/secret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/assets%2f..%2f..%2fsecret.txt',
      '/%252e%252e/%252e%252e/secret.txt',
      '/%25252e%25252e/secret.txt',
      '/playground/..%5c..%5cpackage.json',
      '/playground/..%5c..%5csecret.txt',
      '/playground/..\\..\\secret.txt',
      '/%5c..%5csecret.txt',
      '//etc/passwd',
      '/%2Fetc%2Fpasswd',
      '/%2fetc/passwd',
      '/C:%5cWindows%5cwin.ini',
      '/assets/leak.js',
      '/assets/up/secret.txt',
      '/assets/up/config.json',
      '/.env',
      '/%2eenv',
      '/assets/',
      '/assets',
      '/assets/sub/',
      '/index.html%00.js',
      '/%e0%a4%a',
      'http://127.0.0.1/etc/passwd',
      '/api/runs/..%2F..%2Fetc/files/config.json',
      '/api/runs/..%2F..%2Fsecret.txt/files/config.json',
      '/api/runs/%2e%2e/files/config.json',
      '/api/runs/..%2Fsecret.txt',
      '/api/runs/alpha/files/..%2F..%2F..%2Fsecret.txt',
      '/api/runs/alpha/files/..%2Fconfig.json',
      '/api/runs/alpha/files/%2e%2e',
      '/api/runs/alpha/../../secret.txt',
      '/api/runs/linked/files/config.json',
      '/api/runs/linked/files/tokenizer.json',
      '/api/runs/linked/files/best.safetensors',
      '/api/runs/escape',
      '/api/runs/escape/files/config.json',
      `/api/runs/${encodeURIComponent(join(root.dir, 'outside-run'))}/files/config.json`,
      `/api/runs/${encodeURIComponent(root.runs + '/alpha')}/files/config.json`,
    ];
    for (const target of attempts) {
      const r = await rawGet(server.url, target);
      expect([400, 403, 404], `${target} → ${r.status} ${r.body}`).toContain(r.status);
      expect(typeof (JSON.parse(r.body) as { error: unknown }).error, target).toBe('string');
      expect(r.body, target).not.toContain(SECRET);
      expect(r.body, target).not.toContain('"name": "tensorlm"');
      expect(r.body, target).not.toContain('root:');
    }
    // The symlinked directory is not listed as a run; the run with escaping links is, but its files are not served.
    const { runs } = JSON.parse((await rawGet(server.url, '/api/runs')).body) as { runs: { name: string; hasBest: boolean }[] };
    expect(runs.map((r) => r.name)).toEqual(['alpha', 'linked']);
    expect(runs[1].hasBest).toBe(false);
    const detail = JSON.parse((await rawGet(server.url, '/api/runs/linked')).body) as { config: unknown };
    expect(detail.config).toBeNull();
  });

  it('answers 503 with a build hint when the web pages are not built', async () => {
    const bare = await startDashboard({ run: [run.files.dir], port: 0, assetsDir: join(root.dir, 'no-such-dist-web') });
    try {
      const r = await rawGet(bare.url, '/');
      expect(r.status).toBe(503);
      expect(r.body).toContain('npm run build:web');
      expect((await rawGet(bare.url, '/playground/')).body).toContain('npm run build:web');
      // The API works without the pages.
      expect((await rawGet(bare.url, '/api/runs')).status).toBe(200);
    } finally {
      await bare.close();
    }
  });

  it('rejects malformed and mistyped requests with 400 naming the field', async () => {
    const gen = '/api/runs/alpha/generate';
    expectJsonError(await postJson(server.url, gen, '{"prompt": "a",'), 400, /not valid JSON/);
    expectJsonError(await postJson(server.url, gen, '"just a string"'), 400, /must be a JSON object, got string/);
    expectJsonError(await postJson(server.url, gen, '[1, 2]'), 400, /must be a JSON object, got an array/);
    expectJsonError(await postJson(server.url, gen, 'null'), 400, /must be a JSON object/);
    expectJsonError(await postJson(server.url, gen, '{"__proto__": {"x": 1}, "prompt": "a"}'), 400);
    const cases: [unknown, RegExp][] = [
      [{}, /prompt must be a string, got nothing/],
      [{ prompt: 5 }, /prompt must be a string, got number 5/],
      [{ prompt: 'a'.repeat(2001) }, /prompt must be at most 2000 characters, got 2001/],
      [{ prompt: 'a', maxNewTokens: 0 }, /maxNewTokens must be an integer in 1\.\.1000, got number 0/],
      [{ prompt: 'a', maxNewTokens: 1001 }, /maxNewTokens/],
      [{ prompt: 'a', maxNewTokens: 2.5 }, /maxNewTokens/],
      [{ prompt: 'a', maxNewTokens: '10' }, /maxNewTokens must be an integer in 1\.\.1000, got the string "10"/],
      [{ prompt: 'a', temperature: -1 }, /temperature must be a number ≥ 0/],
      [{ prompt: 'a', temperature: 'hot' }, /temperature/],
      [{ prompt: 'a', topK: 0 }, /topK must be an integer ≥ 1/],
      [{ prompt: 'a', checkpoint: 'worst' }, /checkpoint must be 'best' or 'latest'/],
      [{ prompt: 'a', seed: -3 }, /seed must be an integer/],
      [{ prompt: 'a', promt: 'typo' }, /unknown field 'promt'/],
    ];
    for (const [body, message] of cases) expectJsonError(await postJson(server.url, gen, body), 400, message);
    expectJsonError(await postJson(server.url, '/api/runs/alpha/attention', { prompt: ['a'] }), 400, /prompt must be a string, got an array/);
    expectJsonError(await postJson(server.url, '/api/runs/alpha/attention', { prompt: 'a', maxNewTokens: 3 }), 400, /unknown field 'maxNewTokens'/);
    expectJsonError(await postJson(server.url, '/api/runs/alpha/attention', { prompt: 'R', checkpoint: 1 }), 400, /checkpoint/);
  });

  it('accepts JSON bodies only (415), at most 64 KiB (413), for known runs and routes (404)', async () => {
    const gen = '/api/runs/alpha/generate';
    expectJsonError(await httpSend(server.url, 'POST', gen, { headers: { 'Content-Type': 'text/plain' }, body: '{"prompt":"a"}' }), 415, /application\/json/);
    expectJsonError(await httpSend(server.url, 'POST', gen, { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'prompt=a' }), 415);
    expectJsonError(await httpSend(server.url, 'POST', gen, { headers: { 'Content-Type': 'multipart/form-data; boundary=x' }, body: '--x--' }), 415);
    expectJsonError(await httpSend(server.url, 'POST', gen, {}), 415);
    expectJsonError(await httpSend(server.url, 'POST', gen, { headers: { 'Content-Type': 'application/json' } }), 400);
    const big = JSON.stringify({ prompt: 'a'.repeat(70 * 1024) });
    expectJsonError(await postJson(server.url, gen, big), 413, /65536 bytes/);
    expectJsonError(await postJson(server.url, '/api/runs/nope/generate', { prompt: 'a' }), 404, /unknown run 'nope'/);
    expectJsonError(await postJson(server.url, '/api/runs/nope/attention', { prompt: 'a' }), 404, /unknown run/);
    expectJsonError(await httpSend(server.url, 'GET', '/api/runs/nope/events'), 404, /unknown run/);
    expectJsonError(await httpSend(server.url, 'GET', '/api/nothing'), 404, /no such route/);
    expectJsonError(await httpSend(server.url, 'GET', '/api/runs/alpha/generate'), 404);
    expectJsonError(await httpSend(server.url, 'DELETE', '/api/runs/alpha'), 404, /no such route: DELETE/);
    expectJsonError(await httpSend(server.url, 'PUT', '/api/runs/alpha/files/config.json', { headers: { 'Content-Type': 'application/json' }, body: '{}' }), 404);
  });

  it('answers only requests addressed to localhost when bound to it (DNS rebinding)', async () => {
    expectJsonError(await rawGet(server.url, '/api/runs', { host: 'evil.example:80' }), 403, /Host 'evil\.example:80' refused/);
    expectJsonError(await rawGet(server.url, '/', { host: 'attacker.test' }), 403);
    expectJsonError(await rawGet(server.url, '/api/runs', { host: '127.0.0.1.evil.example' }), 403);
    for (const host of ['localhost:1234', '127.0.0.1', '[::1]:80', 'LOCALHOST']) expect((await rawGet(server.url, '/api/runs', { host })).status, host).toBe(200);
  });

  it('close() ends open event streams and generations, resolves, and frees the port', async () => {
    const s = await startDashboard({ run: [run.files.dir], port: 0, assetsDir: assets });
    const events = openEvents(s.url, '/api/runs/alpha/events');
    await events.next((e) => e.event === 'snapshot');
    const gen = openEvents(s.url, '/api/runs/alpha/generate', { prompt: 'ROMEO:', maxNewTokens: 1000, temperature: 1 });
    await gen.next((e) => e.event === 'token');
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThan(2000);
    await events.ended;
    await gen.ended;
    expect(gen.events.filter((e) => e.event === 'token').length).toBeLessThan(1000);
    await s.close(); // idempotent
    const port = Number(new URL(s.url).port);
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  });
});

describe('dashboard options', () => {
  it('names a --run directory that does not exist or is not a run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-dashboard-opts-'));
    try {
      await expect(startDashboard({ run: [join(dir, 'missing')], port: 0 })).rejects.toThrow(/--run .*missing: no such directory/);
      await expect(startDashboard({ run: [dir], port: 0 })).rejects.toThrow(/not a run directory \(it holds neither config\.json nor metrics\.jsonl\)/);
      writeFileSync(join(dir, 'file'), '');
      await expect(startDashboard({ runs: join(dir, 'file'), port: 0 })).rejects.toThrow(/--runs .*file: not a directory/);
      await expect(startDashboard({ runs: dir, port: 70000 })).rejects.toThrow(/port must be an integer in 0\.\.65535, got 70000/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
