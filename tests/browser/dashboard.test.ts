/**
 * `tensorlm dashboard` in a real browser: a small run is trained here, the page is built with
 * Vite and served by startDashboard, and Chromium checks that the loss chart shows the run's
 * curve, grows when a record is appended to metrics.jsonl, streams a generation and draws one
 * attention heatmap per layer × head. Screenshots go to test-artifacts/.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard } from '../../src/dashboard/server.js';
import type { MetricRecord, TrainRecord } from '../../src/train/metrics.js';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';
import { artifactPath, chromiumSkipReason, launchChromium } from './chromium.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A corpus with structure to learn: short dialogue lines. */
function corpus(): string {
  const names = ['ROMEO', 'JULIET', 'NURSE'];
  const words = ['love', 'night', 'light', 'death', 'sweet', 'fair', 'moon', 'sun'];
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    const line = Array.from({ length: 6 }, (_, j) => words[(i * 7 + j * 3 + (i >> 2)) % words.length]).join(' ');
    lines.push(`${names[i % names.length]}:\n${line}.\n`);
  }
  return lines.join('\n');
}

const N_LAYERS = 2;
const N_HEADS = 2;

/** Points the loss chart draws for these records: train losses plus validation losses. */
const lossPoints = (records: MetricRecord[]): number => records.filter((r) => r.kind === 'train' || r.kind === 'eval').length;

const pointsOf = (page: Page, testid: string): Promise<number> =>
  page.getAttribute(`[data-testid="${testid}"]`, 'data-points').then((v) => Number(v ?? 0));

/** Waits (up to 10 s) until the loss chart draws exactly n points. */
const waitForLossPoints = (page: Page, n: number) =>
  page.waitForFunction(`Number(document.querySelector('[data-testid="loss-chart"]')?.getAttribute('data-points')) === ${n}`, undefined, { timeout: 10_000 });

/** A second run, as a tuning study's trial would sit next to it: metrics and config, no checkpoint. */
function writeTrial(dir: string): MetricRecord[] {
  mkdirSync(dir, { recursive: true });
  const records: MetricRecord[] = [];
  for (let step = 2; step <= 10; step += 2) {
    records.push({ kind: 'train', step, tokens: step * 128, loss: 4 - step / 10, lr: 1e-3, tokensPerSecond: 900 + step, elapsedSeconds: step / 10 });
  }
  records.push({ kind: 'eval', step: 10, tokens: 1280, trainLoss: 3.05, valLoss: 3.1, elapsedSeconds: 1.1, sample: 'a trial sample' });
  writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r) + '\n').join(''));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ train: { name: 'trial-2', lr: 1e-3 }, model: { dModel: 16, nLayers: 1 } }));
  // Finished ten minutes ago.
  const then = new Date(Date.now() - 600_000);
  for (const f of ['metrics.jsonl', 'config.json']) utimesSync(join(dir, f), then, then);
  return records;
}

describe.skipIf(chromiumSkipReason !== null)('dashboard in Chromium', () => {
  let dir: string;
  let metricsPath: string;
  let tinyRecords: MetricRecord[];
  let trialRecords: MetricRecord[];
  let server: Awaited<ReturnType<typeof startDashboard>>;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const lossDatasets = (): Promise<unknown> =>
    // Page code as a string: this file is type-checked without the DOM library.
    page.evaluate('__dashboard.charts.loss.chart.data.datasets.map((d) => [d.label, d.data.length])');

  beforeAll(async () => {
    // runs/ holds the trained run 'tiny' and a study's trial 'study/trial-2' (a name with a '/').
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-dashboard-'));
    const runsDir = join(dir, 'runs');
    const data = join(dir, 'corpus.txt');
    writeFileSync(data, corpus());
    trialRecords = writeTrial(join(runsDir, 'study', 'trial-2'));
    // Build the pages (a fraction of a second each) while the small run trains, into this test's
    // own assets folder: the playground test rebuilds dist-web/playground concurrently.
    const assetsDir = join(dir, 'dist-web');
    const built = Promise.all(
      (['dashboard', 'playground'] as const).map((page) =>
        build({ configFile: join(REPO, `web/${page}/vite.config.ts`), logLevel: 'warn', mode: 'production', build: { outDir: join(assetsDir, page), emptyOutDir: true } }),
      ),
    );
    const run = await train(
      smallTrainConfig(runsDir, data, {
        name: 'tiny',
        model: { dModel: 32, nLayers: N_LAYERS, nHeads: N_HEADS, dFF: 64, maxSeqLen: 32 },
        maxSteps: 12,
        evalInterval: 6,
        logInterval: 2,
      }),
    );
    await built;
    metricsPath = run.files.metrics;
    tinyRecords = readFileSync(metricsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
    server = await startDashboard({ runs: runsDir, host: '127.0.0.1', port: 0, assetsDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists the runs, overlays their loss curves and shows the focused run', async () => {
    await page.goto(server.url);
    const item = page.locator('[data-testid="run-item"]');
    await item.first().waitFor();
    expect(await item.evaluateAll((els) => els.map((e) => e.getAttribute('data-run')))).toEqual(['study/trial-2', 'tiny']);
    // Few runs: all are compared; the one updated last is focused.
    expect(await page.locator('[data-testid="run-checkbox"]').evaluateAll((els) => els.map((e) => (e as unknown as { checked: boolean }).checked))).toEqual([true, true]);
    expect(await page.textContent('[data-testid="focused-run"]')).toBe('tiny');

    expect(lossPoints(tinyRecords)).toBe(6 + 2); // train records at steps 2, 4, …, 12; evaluations at 6 and 12
    await waitForLossPoints(page, lossPoints(tinyRecords) + lossPoints(trialRecords));
    expect(await pointsOf(page, 'lr-chart')).toBe(6 + 5);
    expect(await pointsOf(page, 'tps-chart')).toBe(6 + 5);
    // The Chart.js instance itself holds the curves: train and val of each run.
    expect(await lossDatasets()).toEqual([
      ['study/trial-2 train', 5],
      ['study/trial-2 val', 1],
      ['tiny train', 6],
      ['tiny val', 2],
    ]);

    await expect.poll(() => page.locator('[data-testid="sample-item"]').count()).toBe(2);
    expect(await page.locator('[data-testid="sample-item"]').first().getAttribute('data-step')).toBe('12'); // newest first
    expect(await page.textContent('[data-testid="config"]')).toContain('dModel');
  });

  it('compares and focuses runs, and switches the x axis to tokens', async () => {
    const trial = page.locator('[data-testid="run-item"][data-run="study/trial-2"]');
    await trial.locator('[data-testid="run-checkbox"]').uncheck();
    expect(await lossDatasets()).toEqual([
      ['tiny train', 6],
      ['tiny val', 2],
    ]);
    await trial.locator('.run-name').click(); // focusing a run also selects it
    expect(await page.textContent('[data-testid="focused-run"]')).toBe('study/trial-2');
    expect(await lossDatasets()).toHaveLength(4);
    expect(await page.textContent('[data-testid="samples"]')).toContain('a trial sample');
    // No checkpoint in the trial: nothing to generate from.
    expect(await page.isDisabled('[data-testid="generate-button"]')).toBe(true);

    await page.click('[data-testid="x-tokens"]');
    expect(await page.evaluate("__dashboard.charts.loss.chart.data.datasets.find((d) => d.label === 'tiny train').data[0].x")).toBe(tinyRecords[0].tokens);
    await page.click('[data-testid="x-steps"]');
    expect(await page.evaluate("__dashboard.charts.loss.chart.data.datasets.find((d) => d.label === 'tiny train').data[0].x")).toBe(tinyRecords[0].step);

    await page.locator('[data-testid="run-item"][data-run="tiny"] .run-name').click();
    expect(await page.textContent('[data-testid="focused-run"]')).toBe('tiny');
    expect(await page.isDisabled('[data-testid="generate-button"]')).toBe(false);
    expect(await page.inputValue('[data-testid="checkpoint-select"]')).toBe('best');
  });

  it('grows the chart when a record is appended to metrics.jsonl', async () => {
    const before = await pointsOf(page, 'loss-chart');
    const record: TrainRecord = { kind: 'train', step: 14, tokens: 14 * 4 * 32, loss: 2.5, lr: 5e-4, tokensPerSecond: 1234, elapsedSeconds: 9 };
    appendFileSync(metricsPath, JSON.stringify(record) + '\n');
    await waitForLossPoints(page, before + 1);
    expect(await pointsOf(page, 'tps-chart')).toBe(6 + 5 + 1);
    await expect.poll(() => page.textContent('[data-testid="run-item"][data-run="tiny"]')).toContain('step 14');
    // A changed config.json is shown too (the server sends a config event).
    const configPath = join(dirname(metricsPath), 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { train: Record<string, unknown> };
    config.train.note = 'edited while running';
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    await expect.poll(() => page.textContent('[data-testid="config"]'), { timeout: 10_000 }).toContain('edited while running');
    // Just written: the run counts as running, and its live stream is open.
    await expect.poll(() => page.getAttribute('[data-testid="live-indicator"]', 'data-live')).toBe('true');
  });

  it('streams a generation token by token and reports tokens/s', async () => {
    await page.fill('[data-testid="prompt-input"]', 'ROMEO:');
    await page.fill('[data-testid="max-tokens-input"]', '40');
    await page.click('[data-testid="generate-button"]');
    await page.waitForSelector('[data-testid="generation-output"][data-state="done"]', { timeout: 20_000 });
    const text = await page.textContent('[data-testid="generated-text"]');
    expect(text?.length ?? 0).toBeGreaterThan(0);
    // It arrived token by token: one text node per token event.
    expect(await page.getAttribute('[data-testid="generated-text"]', 'data-tokens')).toBe('40');
    expect(await page.$eval('[data-testid="generated-text"]', (el) => el.childNodes.length)).toBe(40);
    expect(await page.textContent('[data-testid="generation-status"]')).toMatch(/done: 40 tokens at [\d.]+ tokens\/s/);
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: artifactPath('dashboard.png'), fullPage: true });
  });

  it('draws several samples in one batched run, one after another', async () => {
    await page.fill('[data-testid="max-tokens-input"]', '10');
    await page.fill('[data-testid="temperature-input"]', '0');
    await page.fill('[data-testid="samples-input"]', '3');
    try {
      await page.click('[data-testid="generate-button"]');
      await page.waitForSelector('[data-testid="generation-output"][data-state="done"]', { timeout: 20_000 });
      // Greedy rows are the same continuation, each after the prompt, with a separator line between.
      const rows = await Promise.all(['generated-text', 'generated-text-1', 'generated-text-2'].map((id) => page.textContent(`[data-testid="${id}"]`)));
      expect(rows[0]?.length ?? 0).toBeGreaterThan(0);
      expect(rows).toEqual([rows[0], rows[0], rows[0]]);
      expect(await page.textContent('[data-testid="generation-output"]')).toBe(Array(3).fill(`ROMEO:${rows[0]}`).join('\n---------------\n'));
      expect(await page.textContent('[data-testid="generation-status"]')).toMatch(/done: 30 tokens at [\d.]+ tokens\/s/);
    } finally {
      await page.fill('[data-testid="samples-input"]', '1');
      await page.fill('[data-testid="temperature-input"]', '0.8');
    }
  });

  it('stops a generation', async () => {
    const output = await page.textContent('[data-testid="generation-output"]');
    await page.fill('[data-testid="max-tokens-input"]', '1000');
    // The decode engine writes 1,000 tokens of this small model faster than a click, so the
    // stream is slowed to a trickle (Chromium's network emulation) to stop it half way.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 4000, uploadThroughput: -1 });
    try {
      await page.click('[data-testid="generate-button"]');
      await page.waitForSelector('[data-testid="generated-text"][data-tokens]');
      await page.click('[data-testid="stop-button"]');
      await page.waitForSelector('[data-testid="generation-output"][data-state="stopped"]', { timeout: 5_000 });
    } finally {
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await cdp.detach();
    }
    expect(await page.textContent('[data-testid="generation-status"]')).toMatch(/^stopped after \d+ tokens?$/);
    expect(await page.textContent('[data-testid="generation-output"]')).not.toBe(output);
    expect(await page.isDisabled('[data-testid="stop-button"]')).toBe(true);
    expect(await page.isDisabled('[data-testid="generate-button"]')).toBe(false);
  });

  it('shows one attention heatmap per layer and head, and a large one on click', async () => {
    await page.fill('[data-testid="attention-prompt"]', 'JULIET: sweet');
    await page.click('[data-testid="attention-button"]');
    const cells = page.locator('[data-testid="attention-cell"]');
    await expect.poll(() => cells.count(), { timeout: 15_000 }).toBe(N_LAYERS * N_HEADS);
    expect(await cells.allTextContents()).toEqual(['L0 H0', 'L0 H1', 'L1 H0', 'L1 H1']);
    await cells.nth(3).click();
    expect(await page.textContent('[data-testid="attention-detail-title"]')).toContain('Layer 1, head 1');
    // Hovering the large heatmap shows the weight under the pointer.
    const canvas = page.locator('[data-testid="attention-detail-canvas"]');
    const at = async (k: string) => Number(await canvas.getAttribute(`data-${k}`));
    const [left, top, cell, n] = [await at('left'), await at('top'), await at('cell'), await at('n')];
    expect(n).toBe(13);
    // The cell of the last query and the first key.
    await canvas.hover({ position: { x: left + cell / 2, y: top + (n - 1) * cell + cell / 2 } });
    await page.waitForSelector('[data-testid="attention-tooltip"]:not([hidden])', { timeout: 5_000 });
    expect(await page.textContent('[data-testid="attention-tooltip"]')).toMatch(/^query 12 “t” → key 0 “J”: [01]\.\d{4}$/);
    const section = page.locator('section.card', { has: page.locator('[data-testid="attention-grid"]') });
    await section.screenshot({ path: artifactPath('dashboard-attention.png') });

    expect(await page.locator('[data-testid="error-banner"] .banner').allTextContents()).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it("shows the server's error in a banner, which can be dismissed", async () => {
    // Longer than the model's context (32 tokens): the server answers 400 {error}.
    await page.fill('[data-testid="attention-prompt"]', 'ROMEO: love night light. JULIET: sweet moon');
    await page.click('[data-testid="attention-button"]');
    const banner = page.locator('[data-testid="error-banner"] .banner');
    await banner.first().waitFor({ timeout: 10_000 });
    expect(await banner.first().locator('span').textContent()).toMatch(/^Attention failed: prompt must encode to 1\.\.32 tokens/);
    expect(await page.locator('[data-testid="attention-cell"]').count()).toBe(0);
    await banner.first().locator('button').click();
    expect(await banner.count()).toBe(0);
  });

  it("links the focused run to the playground, which loads its best checkpoint from this server and samples it", async () => {
    const link = page.locator('[data-testid="playground-run-link"]');
    await link.waitFor({ state: 'visible', timeout: 10_000 });
    expect(await link.getAttribute('href')).toBe('/playground/?run=tiny');
    const playground = await browser.newPage();
    try {
      await playground.goto(new URL('/playground/?run=tiny', server.url).href);
      await playground.getByText(/Loaded tiny\/best\.safetensors: .*checksum verified/).waitFor({ timeout: 30_000 });
      await playground.fill('[data-testid="prompt-input"]', 'ROMEO:');
      await playground.click('[data-testid="sample-button"]');
      await playground.waitForFunction(`(document.querySelector('[data-testid="sample-output"]')?.textContent ?? '').startsWith('ROMEO:') && document.querySelector('[data-testid="sample-output"]').textContent.length > 20`, undefined, { timeout: 30_000 });
      expect(await playground.textContent('[data-testid="error"]')).toBeFalsy();
    } finally {
      await playground.close();
    }
  });
});
