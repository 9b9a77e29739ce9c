/**
 * Training throughput of the browser playground next to Node, on the same loop and config: the
 * tiny preset, batch 16 × block 128, char tokens of the playground's built-in text.
 *
 *   npx tsx bench/browser.ts [--steps 8] [--rounds 2]
 *
 * Browser: the built playground (vite build first) opened as a file:// URL in Debian's Chromium
 * (playwright-core, nothing downloaded); TensorLM runs in its Web Worker on the wasm backend, one
 * thread. Node: the same TextTrainer (src/train/browser-loop.ts) with setBackend('wasm') on one
 * thread (like for like), wasm with its default GEMM threads, and 'blas' when a CBLAS is installed.
 * Each figure is tokens per step / the median step time over `steps` steps after one warm-up
 * step, best of `rounds` rounds (the rounds interleave browser and Node, so a busy machine hurts
 * all of them alike).
 */
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Table from 'cli-table3';
import { build } from 'vite';
import { getBackend, listBackends, setBackend } from '../src/index.js';
import { getWasmThreads, setWasmThreads, warmUpWasmThreads } from '../src/backends/wasm/index.js';
import { TextTrainer } from '../src/train/browser-loop.js';
import { SAMPLE_TEXT } from '../web/playground/sample-text.js';
import { chromiumPath, launchChromium } from '../tests/browser/chromium.js';
import { flag } from './args.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const STEPS = Number(flag('steps', '8'));
const ROUNDS = Number(flag('rounds', '2'));
const BATCH = 16;
const BLOCK = 128;
const TOKENS_PER_STEP = BATCH * BLOCK;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Measured {
  label: string;
  detail: string;
  tokensPerSecond: number[];
}

/** Node: one warm-up step, then STEPS timed steps of the playground's loop on the current backend. */
function nodeRound(): number {
  const trainer = new TextTrainer(SAMPLE_TEXT, { preset: 'tiny', batchSize: BATCH, blockSize: BLOCK, maxSteps: 1000, evalInterval: 0, sampleTokens: 0 });
  trainer.trainStep();
  const seconds: number[] = [];
  for (let i = 0; i < STEPS; i++) seconds.push(trainer.trainStep().stepSeconds);
  return TOKENS_PER_STEP / median(seconds);
}

type PageLike = Awaited<ReturnType<Awaited<ReturnType<typeof launchChromium>>['newPage']>>;

/** Browser: trains the tiny preset in the page's worker until STEPS + 1 steps are done, then stops. */
async function browserRound(page: PageLike): Promise<number> {
  await page.selectOption('[data-testid="preset-select"]', 'tiny');
  await page.fill('[data-testid="steps-input"]', '1000');
  await page.fill('[data-testid="batch-input"]', String(BATCH));
  await page.fill('[data-testid="block-input"]', String(BLOCK));
  await page.fill('[data-testid="eval-input"]', '0');
  const run = (await page.evaluate('window.tensorlmPlayground.run')) as number;
  await page.click('[data-testid="train-button"]');
  await page.waitForFunction(`window.tensorlmPlayground.run > ${run} && window.tensorlmPlayground.steps.length >= ${STEPS + 1}`, undefined, { timeout: 600_000, polling: 100 });
  await page.click('[data-testid="stop-button"]');
  await page.waitForFunction(`document.querySelector('[data-testid="train-state"]').textContent === 'stopped'`, undefined, { timeout: 60_000 });
  const steps = (await page.evaluate('window.tensorlmPlayground.steps')) as { step: number; stepSeconds: number }[];
  return TOKENS_PER_STEP / median(steps.slice(1, STEPS + 1).map((s) => s.stepSeconds));
}

async function main(): Promise<void> {
  const executable = chromiumPath();
  if (!executable) throw new Error('no Chromium found (apt-get install -y chromium, or set CHROMIUM_PATH)');
  console.log(`building the playground (vite build -c web/playground/vite.config.ts)…`);
  await build({ configFile: join(REPO, 'web/playground/vite.config.ts'), logLevel: 'warn' });
  const browser = await launchChromium();
  const page = await browser.newPage();
  await page.goto(pathToFileURL(join(REPO, 'dist-web/playground/index.html')).href);
  await page.waitForFunction(`document.querySelector('[data-testid="engine-status"]').dataset.backend !== undefined`, undefined, { timeout: 30_000 });
  const engine = await page.textContent('[data-testid="engine-status"]');

  const defaultThreads = getWasmThreads();
  const nodeConfigs: { label: string; detail: string; backend: string; threads: number }[] = [
    { label: 'Node wasm', detail: '1 thread (like the browser)', backend: 'wasm', threads: 1 },
  ];
  if (defaultThreads > 1) nodeConfigs.push({ label: 'Node wasm', detail: `${defaultThreads} GEMM threads (its default here)`, backend: 'wasm', threads: defaultThreads });
  if (listBackends().includes('blas')) nodeConfigs.push({ label: 'Node blas', detail: '1 BLAS thread (its default), wasm for the rest', backend: 'blas', threads: 1 });

  const browserFigures: Measured = { label: 'Chromium (playground)', detail: 'Web Worker, wasm, 1 thread', tokensPerSecond: [] };
  const nodeFigures: Measured[] = nodeConfigs.map((c) => ({ label: c.label, detail: c.detail, tokensPerSecond: [] }));
  const initialBackend = getBackend();
  for (let round = 0; round < ROUNDS; round++) {
    browserFigures.tokensPerSecond.push(await browserRound(page));
    nodeConfigs.forEach((c, i) => {
      setBackend(c.backend);
      setWasmThreads(c.backend === 'wasm' ? c.threads : 1);
      if (c.threads > 1) warmUpWasmThreads();
      nodeFigures[i].tokensPerSecond.push(nodeRound());
    });
    setBackend(initialBackend);
    setWasmThreads(defaultThreads);
    console.log(`round ${round + 1}/${ROUNDS} done`);
  }
  await browser.close();

  const chromiumVersion = browser.version();
  const parameters = new TextTrainer(SAMPLE_TEXT, { preset: 'tiny', batchSize: BATCH, blockSize: BLOCK }).model.numParameters();
  console.log(
    `\nTraining throughput: tiny preset (${parameters.toLocaleString('en-US')} parameters with this text's ${new Set(SAMPLE_TEXT).size}-character vocabulary), ` +
      `batch ${BATCH} × block ${BLOCK}; median step of ${STEPS} after 1 warm-up, best of ${ROUNDS} rounds`,
  );
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores; Node ${process.version}; Chromium ${chromiumVersion}`);
  console.log(`browser: ${engine}`);
  const table = new Table({ head: ['where', 'how', 'tokens/s', 'vs browser'] });
  const best = (m: Measured) => Math.max(...m.tokensPerSecond);
  const b = best(browserFigures);
  for (const m of [browserFigures, ...nodeFigures]) table.push([m.label, m.detail, Math.round(best(m)).toLocaleString('en-US'), `${(best(m) / b).toFixed(2)}×`]);
  console.log(table.toString());
}

await main();
