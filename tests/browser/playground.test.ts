/**
 * The browser playground in a real Chromium, opened as a file:// URL (the built page is one HTML
 * file with its worker inside): a small model trains in the Web Worker while the page stays
 * responsive, the loss chart grows, stop/resume continues the same run, a sample appears; then a
 * model trained by the library in Node is loaded through the file inputs and its greedy
 * continuation in the page equals Node's `model.generate`, token for token. Also prints the
 * browser's training tokens/s for the tiny preset (16 × 128). Screenshot: test-artifacts/playground.png.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CharTokenizer, Generator, getBackend, io, listBackends, randn, setBackend, tensor, TransformerLM, type Tokenizer } from '../../src/index.js';
import type { TransformerConfig } from '../../src/models/config.js';
import { checkpointModelName, loadModuleFromSafetensors, parseSafetensors, serializeModuleSafetensors, serializeSafetensors } from '../../src/io/safetensors-bytes.js';
import { generateText } from '../../src/models/generate.js';
import { TextTrainer } from '../../src/train/browser-loop.js';
import { loadRun, train } from '../../src/train/trainer.js';
import { SAMPLE_TEXT } from '../../web/playground/sample-text.js';
import { smallTrainConfig } from '../train/helpers.js';
import { artifactPath, chromiumSkipReason, launchChromium } from './chromium.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const PAGE = pathToFileURL(join(REPO, 'dist-web/playground/index.html')).href;

const GREEDY_PROMPT = 'Alice was ';
const GREEDY_TOKENS = 60;

const q = (testid: string) => `document.querySelector('[data-testid="${testid}"]')`;
const text = (page: Page, testid: string) => page.textContent(`[data-testid="${testid}"]`).then((t) => t ?? '');
const attr = (page: Page, testid: string, name: string) => page.getAttribute(`[data-testid="${testid}"]`, name);
const stepOf = (page: Page) => text(page, 'step-count').then(Number);
const waitFor = (page: Page, expression: string, timeout = 20_000) => page.waitForFunction(expression, undefined, { timeout });

async function openPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(PAGE);
  // The worker says which backend it runs; the Train button is enabled then.
  await waitFor(page, `${q('engine-status')}.dataset.backend !== undefined`);
  return { page, errors };
}

async function startTraining(page: Page, settings: { preset: string; steps: number; batch: number; block: number; evalEvery: number }): Promise<void> {
  await page.selectOption('[data-testid="preset-select"]', settings.preset);
  await page.fill('[data-testid="steps-input"]', String(settings.steps));
  await page.fill('[data-testid="batch-input"]', String(settings.batch));
  await page.fill('[data-testid="block-input"]', String(settings.block));
  await page.fill('[data-testid="eval-input"]', String(settings.evalEvery));
  await page.click('[data-testid="train-button"]');
}

/** What the worker runs, checked in Node (no browser needed). */
describe('the playground library parts, in Node', () => {
  it('reads and writes safetensors bytes exactly as the file functions do', () => {
    const d = mkdtempSync(join(tmpdir(), 'tensorlm-st-bytes-'));
    try {
      const base = randn([3, 4], { generator: new Generator(1) });
      const tensors = { a: base, 't.view': base.transpose(0, 1), ids: tensor([[1, -2, 3]], { dtype: 'int32' }), mask: tensor([true, false, true]) };
      const path = join(d, 'x.safetensors');
      io.saveSafetensors(path, tensors, { note: 'hi' });
      const bytes = serializeSafetensors(tensors, { note: 'hi' });
      expect(Buffer.from(bytes).equals(readFileSync(path))).toBe(true);
      const back = parseSafetensors(bytes);
      expect(back.metadata).toEqual({ note: 'hi' });
      for (const [name, t] of Object.entries(tensors)) expect(back.tensors[name].toArray(), name).toEqual(t.toArray());
      // An unaligned view into a bigger buffer works too (tensor data is copied out).
      const padded = new Uint8Array(bytes.length + 3);
      padded.set(bytes, 3);
      expect(parseSafetensors(padded.subarray(3)).tensors.a.toArray()).toEqual(base.toArray());
      expect(() => parseSafetensors(new Uint8Array([1, 2, 3]), { label: 'tiny.safetensors' })).toThrow(/tiny\.safetensors is too short/);
      // A model with tied weights round-trips through bytes.
      const config = { vocabSize: 11, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: 8, tieWeights: true } as const;
      const m1 = new TransformerLM(config, { generator: new Generator(2) });
      const m2 = new TransformerLM(config, { generator: new Generator(3) });
      expect(loadModuleFromSafetensors(m2, parseSafetensors(serializeModuleSafetensors(m1)))).toEqual({ missingKeys: [], unexpectedKeys: [] });
      expect(m2.tokEmb.weight.toArray()).toEqual(m1.tokEmb.weight.toArray());
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('TextTrainer is deterministic, learns, and its models generate; CharTokenizer decodes without Buffer', () => {
    const config = { preset: 'tiny', model: { dModel: 32, nLayers: 1, nHeads: 2, dFF: 64 }, batchSize: 4, blockSize: 32, maxSteps: 30, warmupSteps: 3, evalInterval: 0, sampleTokens: 0 };
    const a = new TextTrainer(SAMPLE_TEXT, config);
    const b = new TextTrainer(SAMPLE_TEXT, config);
    const lossesA = Array.from({ length: 5 }, () => a.trainStep().loss);
    expect(Array.from({ length: 5 }, () => b.trainStep().loss)).toEqual(lossesA);
    while (!a.done) a.trainStep();
    expect(a.step).toBe(30);
    const e = a.evaluate();
    expect(e.valLoss).toBeLessThan(lossesA[0]);
    const greedy = generateText(a.model, a.tokenizer, 'Alice', { maxNewTokens: 20, temperature: 0 });
    expect(greedy.tokens).toHaveLength(20);
    const ids = a.tokenizer.encode('Alice');
    expect(greedy.tokens).toEqual(Array.from(a.model.generate(tensor(Int32Array.from(ids), { shape: [1, ids.length] }), { maxNewTokens: 20, temperature: 0 }).toTypedArray()).slice(ids.length));
    const tok = CharTokenizer.fromText('ab\uFEFF\u{1F600}');
    const g = globalThis as { Buffer?: unknown };
    const saved = g.Buffer;
    try {
      g.Buffer = undefined;
      expect(tok.decode(tok.encode('\uFEFFba\u{1F600}'))).toBe('\uFEFFba\u{1F600}');
    } finally {
      g.Buffer = saved;
    }
  });
});

describe.skipIf(chromiumSkipReason !== null)('browser playground', () => {
  let browser: Browser;
  let dir: string;
  let run: string;
  /** Node's greedy continuation of GREEDY_PROMPT by the CLI-trained model. */
  let greedyTokens: number[] = [];
  /** Generates with the CLI-trained model in Node, on the same WebAssembly kernels as the page. */
  let inNode: ((prompt: string, options: { maxNewTokens: number; temperature: number; generator?: Generator }) => number[]) & { tokenizer: Tokenizer };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-playground-'));
    const data = join(dir, 'alice.txt');
    writeFileSync(data, SAMPLE_TEXT);
    // A run made by the library, as `tensorlm train` makes it: config.json, tokenizer.json, best.safetensors.
    const [, result] = await Promise.all([
      build({ configFile: join(REPO, 'web/playground/vite.config.ts'), logLevel: 'warn' }),
      // Long enough (~3 s) that greedy decoding says more than one repeated character.
      train(smallTrainConfig(dir, data, { name: 'cli-run', batchSize: 16, maxSteps: 400, warmupSteps: 20, lr: 1e-2, minLr: 1e-3, evalInterval: 100 })),
    ]);
    run = result.files.dir;
    const { model, tokenizer } = loadRun(run);
    inNode = Object.assign(
      (prompt: string, options: { maxNewTokens: number; temperature: number; generator?: Generator }) => {
        const before = getBackend();
        if (listBackends().includes('wasm')) setBackend('wasm');
        try {
          const ids = tokenizer.encode(prompt);
          const out = model.generate(tensor(Int32Array.from(ids), { shape: [1, ids.length] }), options);
          return Array.from(out.toTypedArray()).slice(ids.length);
        } finally {
          setBackend(before);
        }
      },
      { tokenizer },
    );
    greedyTokens = inNode(GREEDY_PROMPT, { maxNewTokens: GREEDY_TOKENS, temperature: 0 });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains in a Web Worker from file://: the chart grows, the page stays responsive, stop/resume continue, a sample appears', async () => {
    const { page, errors } = await openPage(browser);
    expect(page.url()).toMatch(/^file:\/\//);
    expect(await attr(page, 'engine-status', 'data-backend')).toBe('wasm');
    const steps = 40;
    await startTraining(page, { preset: 'micro', steps, batch: 8, block: 64, evalEvery: 10 });

    await waitFor(page, `Number(${q('step-count')}.textContent) >= 3`);
    const points1 = Number(await attr(page, 'loss-chart', 'data-train-points'));
    // Responsive while the worker trains: a round trip to the page and a keystroke take milliseconds.
    const t0 = performance.now();
    await page.evaluate('1 + 1');
    const roundTrip = performance.now() - t0;
    await page.fill('[data-testid="prompt-input"]', 'Alice ');
    expect(await page.inputValue('[data-testid="prompt-input"]')).toBe('Alice ');
    expect(roundTrip).toBeLessThan(500);

    await waitFor(page, `Number(${q('step-count')}.textContent) >= 12`);
    const points2 = Number(await attr(page, 'loss-chart', 'data-train-points'));
    expect(points2).toBeGreaterThan(points1);
    expect(Number(await attr(page, 'loss-chart', 'data-val-points'))).toBeGreaterThanOrEqual(1);
    expect(Number(await attr(page, 'tokens-per-second', 'data-value'))).toBeGreaterThan(0);

    // Stop: the step counter holds; resume: it continues from there (not from 0) to the end.
    await page.click('[data-testid="stop-button"]');
    await waitFor(page, `${q('train-state')}.textContent === 'stopped'`);
    const stoppedAt = await stepOf(page);
    expect(stoppedAt).toBeGreaterThanOrEqual(12);
    expect(stoppedAt).toBeLessThan(steps);
    await page.waitForTimeout(300);
    expect(await stepOf(page)).toBe(stoppedAt);
    await page.click('[data-testid="resume-button"]');
    await waitFor(page, `${q('train-state')}.textContent === 'done'`, 30_000);
    expect(await stepOf(page)).toBe(steps);
    // One chart point per step of the one run: nothing restarted or repeated.
    await waitFor(page, `${q('loss-chart')}.dataset.trainPoints === '${steps}'`);
    expect(await attr(page, 'loss-chart', 'data-val-points')).toBe(String(steps / 10));
    const finalLoss = Number(await text(page, 'train-loss'));
    expect(finalLoss).toBeLessThan(Math.log(60)); // below the uniform guess over the text's characters

    await page.fill('[data-testid="length-input"]', '80');
    await page.click('[data-testid="sample-button"]');
    await waitFor(page, `${q('sample-output')}.dataset.done === 'true'`);
    const sample = await text(page, 'sample-output');
    expect(sample.startsWith('Alice ')).toBe(true);
    expect(sample.length).toBeGreaterThan('Alice '.length + 40);
    await page.screenshot({ path: artifactPath('playground.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('loads a model trained in Node (config.json, tokenizer.json, best.safetensors) and samples greedily exactly as Node does', async () => {
    const { page, errors } = await openPage(browser);
    await page.setInputFiles('[data-testid="model-files"]', ['config.json', 'tokenizer.json', 'best.safetensors'].map((f) => join(run, f)));
    await page.click('[data-testid="load-button"]');
    await waitFor(page, `${q('load-status')}.dataset.loaded === 'true'`);
    expect(await text(page, 'load-status')).toMatch(/checksum verified/);

    /** Samples in the page; returns the continuation's tokens, the output text and the seed the page used. */
    const sampleInPage = async (prompt: string, temperature: number, length: number) => {
      await page.fill('[data-testid="prompt-input"]', prompt);
      await page.fill('[data-testid="temperature-input"]', String(temperature));
      await page.fill('[data-testid="length-input"]', String(length));
      await page.click('[data-testid="sample-button"]');
      await waitFor(page, `${q('sample-output')}.dataset.done === 'true'`);
      return {
        tokens: JSON.parse((await attr(page, 'sample-output', 'data-tokens')) ?? '[]') as number[],
        text: await text(page, 'sample-output'),
        seed: Number(await attr(page, 'sample-output', 'data-seed')),
      };
    };
    // What the worker does with the bytes gives the weights loadRun reads from the file.
    const { model, config } = loadRun(run);
    const fromBytes = new TransformerLM(config.model as TransformerConfig);
    loadModuleFromSafetensors(fromBytes, parseSafetensors(readFileSync(join(run, 'best.safetensors'))), { rename: checkpointModelName });
    for (const [name, t] of Object.entries(model.stateDict())) expect(fromBytes.stateDict()[name].toArray(), name).toEqual(t.toArray());

    const greedy = await sampleInPage(GREEDY_PROMPT, 0, GREEDY_TOKENS);
    expect(new Set(greedyTokens).size).toBeGreaterThanOrEqual(4); // a real continuation, not one repeated character
    expect(greedy.tokens).toEqual(greedyTokens);
    expect(greedy.text).toBe(GREEDY_PROMPT + inNode.tokenizer.decode(greedyTokens));

    // Sampling at temperature 1 with the page's seed draws the same tokens in Node too.
    const sampled = await sampleInPage('The Hare ', 1, 80);
    expect(sampled.tokens).toEqual(inNode('The Hare ', { maxNewTokens: 80, temperature: 1, generator: new Generator(sampled.seed) }));
    await page.screenshot({ path: artifactPath('playground-loaded.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  it('opened by the dashboard as /playground/?run=<name>, fetches the run from ../api/runs/<name>/files/ and samples it', async () => {
    // A stand-in for the dashboard server: the built page under /playground/, the run's files under /api/runs/.
    const server: Server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const file = url.pathname === '/playground/' ? join(REPO, 'dist-web/playground/index.html') : /^\/api\/runs\/cli-run\/files\/(config\.json|tokenizer\.json|best\.safetensors)$/.exec(url.pathname)?.[1];
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': file.endsWith('.html') ? 'text/html' : 'application/octet-stream' }).end(readFileSync(file.startsWith('/') ? file : join(run, file)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/playground/?run=cli-run`);
      await waitFor(page, `${q('load-status')}.dataset.loaded === 'true'`);
      expect(await text(page, 'load-status')).toMatch(/cli-run\/best\.safetensors/);
      await page.fill('[data-testid="prompt-input"]', GREEDY_PROMPT);
      await page.fill('[data-testid="temperature-input"]', '0');
      await page.fill('[data-testid="length-input"]', String(GREEDY_TOKENS));
      await page.click('[data-testid="sample-button"]');
      await waitFor(page, `${q('sample-output')}.dataset.done === 'true'`);
      // Node's greedy continuation, as from the picked files.
      expect(JSON.parse((await attr(page, 'sample-output', 'data-tokens')) ?? '[]')).toEqual(greedyTokens);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);

  it('measures training tokens/s of the tiny preset (batch 16 × block 128) in the browser, the page responsive meanwhile', async () => {
    const { page, errors } = await openPage(browser);
    await startTraining(page, { preset: 'tiny', steps: 1000, batch: 16, block: 128, evalEvery: 0 });
    await waitFor(page, `Number(${q('step-count')}.textContent) >= 2`, 40_000);
    // Each tiny step computes for a few hundred ms in the worker; the page's event loop meanwhile
    // keeps ticking: its longest pause over a second is well under one step.
    const longestPauseMs = (await page.evaluate(`new Promise((resolve) => {
      let last = performance.now(), longest = 0;
      const end = last + 1000;
      const tick = () => { const now = performance.now(); longest = Math.max(longest, now - last); last = now; if (now < end) setTimeout(tick, 0); else resolve(longest); };
      setTimeout(tick, 0);
    })`)) as number;
    await waitFor(page, `Number(${q('step-count')}.textContent) >= 5`, 40_000);
    const stepMs = (await page.evaluate('window.tensorlmPlayground.steps.map((s) => s.stepSeconds * 1000)')) as number[];
    const medianStepMs = [...stepMs].sort((a, b) => a - b)[Math.floor(stepMs.length / 2)];
    expect(longestPauseMs).toBeLessThan(medianStepMs / 2);
    await page.click('[data-testid="stop-button"]');
    await waitFor(page, `${q('train-state')}.textContent === 'stopped'`);
    const steady = Number(await attr(page, 'tokens-per-second', 'data-steady'));
    const steps = await stepOf(page);
    console.log(
      `playground (Chromium, wasm, 1 thread): tiny preset, batch 16 x block 128: ${Math.round(steady)} tokens/s over steps 2-${steps}` +
        ` (median step ${Math.round(medianStepMs)} ms; the page's longest event-loop pause meanwhile ${Math.round(longestPauseMs)} ms)`,
    );
    expect(steady).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 50_000);
});
