/**
 * `tensorlm mup coord-check` and `tensorlm mup transfer`: thin wrappers over src/mup (the μP
 * coordinate check and the μTransfer sweep), printing tables and writing JSON, CSV and SVG plots.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Table from 'cli-table3';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { positiveInt, nonNegativeInt, positiveNumber, nonNegativeNumber } from '../args.js';
import { loadText } from '../../data/resolve.js';
import { coordCheck, COORD_CHECK_TEXT, type CoordCheckResult, type Parametrization } from '../../mup/coord-check.js';
import { coordCheckSpec, transferSpec } from '../../mup/plots.js';
import { DEFAULT_TRANSFER_LRS, muTransfer, transferMeans, transferOptima, type TransferRecord } from '../../mup/transfer.js';
import { renderSvg } from '../../train/plot.js';
import { dataDirEnv } from '../../env.js';

const LABEL: Record<Parametrization, string> = { sp: 'SP', mup: 'μP' };


/** '64,128,256' → [64, 128, 256] (distinct positive integers). */
export function parseWidths(value: string): number[] {
  const widths = value.split(',').map((s) => s.trim());
  const out = widths.map((s) => Number(s));
  if (widths.some((s) => s === '') || out.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`--widths must be a comma-separated list of positive integers, got '${value}'`);
  if (new Set(out).size !== out.length) throw new InvalidArgumentError(`--widths has a repeated width: '${value}'`);
  return out;
}

function parseLrValue(s: string): number {
  const pow = /^2\^(-?\d+(?:\.\d+)?)$/.exec(s.trim());
  const n = pow ? 2 ** Number(pow[1]) : Number(s.trim());
  if (!(n > 0) || !Number.isFinite(n) || s.trim() === '') throw new InvalidArgumentError(`--lrs: '${s}' is not a positive number or 2^k`);
  return n;
}

/**
 * Learning-rate grids: '2^-14..2^-4' (every power of 2 between, inclusive), '2^-14..2^-4:0.5'
 * (exponent step 0.5), or a comma list of numbers and powers, e.g. '1e-3,3e-3,2^-6'.
 */
export function parseLrs(value: string): number[] {
  const range = /^2\^(-?\d+(?:\.\d+)?)\.\.2\^(-?\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(value.trim());
  if (range) {
    const [from, to, step] = [Number(range[1]), Number(range[2]), range[3] === undefined ? 1 : Number(range[3])];
    if (!(step > 0) || to < from) throw new InvalidArgumentError(`--lrs: '${value}' needs from ≤ to and a positive step`);
    const n = Math.round((to - from) / step);
    if (Math.abs(from + n * step - to) > 1e-9) throw new InvalidArgumentError(`--lrs: ${to} − ${from} is not a multiple of the step ${step}`);
    return Array.from({ length: n + 1 }, (_, i) => 2 ** (from + i * step));
  }
  const lrs = value.split(',').map(parseLrValue);
  if (new Set(lrs).size !== lrs.length) throw new InvalidArgumentError(`--lrs has a repeated value: '${value}'`);
  return lrs.sort((a, b) => a - b);
}

export function parseParametrizations(value: string): Parametrization[] {
  const out = value.split(',').map((s) => s.trim().toLowerCase().replace('μ', 'mu'));
  const mapped = out.map((s) => (s === 'mu' || s === 'mup' ? 'mup' : s === 'sp' ? 'sp' : null));
  if (mapped.some((p) => p === null) || mapped.length === 0) throw new InvalidArgumentError(`--parametrizations must be a comma list of 'sp' and 'mup', got '${value}'`);
  return [...new Set(mapped as Parametrization[])];
}

function fmt(v: number | null, digits = 2): string {
  return v === null ? '–' : (v >= 0 ? ' ' : '') + v.toFixed(digits);
}

/** The slopes at the last step (rows: layers; columns: parametrizations; mean |x| and mean |x − x₀|). */
function slopeTable(result: CoordCheckResult): string {
  const ps = result.settings.parametrizations;
  const last = result.settings.steps;
  const table = new Table({ head: ['layer output', ...ps.map((p) => `${LABEL[p]} slope`), ...ps.map((p) => `${LABEL[p]} Δ slope`)], style: { head: [], border: [], compact: true } });
  for (const layer of result.layers) {
    const at = (p: Parametrization) => result.slopes.find((s) => s.parametrization === p && s.layer === layer && s.step === last);
    table.push([layer, ...ps.map((p) => fmt(at(p)?.slope ?? null)), ...ps.map((p) => fmt(at(p)?.deltaSlope ?? null))]);
  }
  return table.toString();
}

/** Slopes of mean |x| at every step (rows: parametrization × layer; columns: steps). */
function perStepTable(result: CoordCheckResult): string {
  const steps = Array.from({ length: result.settings.steps + 1 }, (_, i) => i);
  const table = new Table({ head: ['', 'layer output', ...steps.map((s) => `t=${s}`)], style: { head: [], border: [], compact: true } });
  for (const p of result.settings.parametrizations) {
    for (const layer of result.layers) {
      table.push([LABEL[p], layer, ...steps.map((t) => fmt(result.slopes.find((s) => s.parametrization === p && s.layer === layer && s.step === t)?.slope ?? null))]);
    }
  }
  return table.toString();
}

async function writeSvg(path: string, spec: Parameters<typeof renderSvg>[0]): Promise<string> {
  writeFileSync(path, await renderSvg(spec));
  return path;
}

async function runCoordCheck(opts: Record<string, unknown>): Promise<void> {
  let text = COORD_CHECK_TEXT;
  let source = 'the built-in sonnets (COORD_CHECK_TEXT)';
  const data = opts.data as string | undefined;
  const dataDir = (opts.dataDir as string | undefined) ?? dataDirEnv();
  if (data) {
    text = await loadText(data, { dataDir });
    source = data;
  } else {
    // Tiny-shakespeare when it is already here (no download for a coordinate check).
    try {
      text = await loadText('tinyshakespeare', { dataDir, download: false });
      source = 'tinyshakespeare';
    } catch {
      /* keep the built-in text */
    }
  }
  const json = opts.json === true;
  const log = (line: string) => {
    if (!json) console.log(line);
  };
  log(`coordinate check on ${source}: widths ${(opts.widths as number[]).join(', ')}, ${opts.layers} layers, ${opts.headDim ? `head size ${opts.headDim}` : `${opts.heads} heads`}, AdamW lr ${opts.lr}, ${opts.steps} steps on one ${opts.batchSize}×${opts.blockSize} batch, ${opts.seeds} seed(s)`);
  const result = coordCheck({
    widths: opts.widths as number[],
    steps: opts.steps as number,
    lr: opts.lr as number,
    nLayers: opts.layers as number,
    nHeads: opts.heads as number,
    headDim: (opts.headDim as number | undefined) ?? null,
    baseWidth: opts.baseWidth as number | undefined,
    tieWeights: opts.untied !== true,
    mup: { zeroInitQuery: opts.zeroInitQuery === true, zeroInitReadout: opts.zeroInitReadout === true },
    batchSize: opts.batchSize as number,
    blockSize: opts.blockSize as number,
    seeds: opts.seeds as number,
    seed: opts.seed as number,
    text,
    parametrizations: opts.parametrizations as Parametrization[],
    onProgress: ({ parametrization, width, seconds }) => log(`  ${LABEL[parametrization]} width ${width}: ${seconds.toFixed(1)}s`),
  });
  const out = opts.out as string;
  mkdirSync(out, { recursive: true });
  const jsonPath = join(out, 'coord-check.json');
  writeFileSync(jsonPath, JSON.stringify({ source, ...result }, null, 2) + '\n');
  const svgs = [
    await writeSvg(join(out, 'coord-check.svg'), coordCheckSpec(result)),
    await writeSvg(join(out, 'coord-check-steps.svg'), coordCheckSpec(result, { step: 'all' })),
    await writeSvg(join(out, 'coord-check-delta.svg'), coordCheckSpec(result, { delta: true })),
  ];
  if (json) {
    console.log(JSON.stringify({ source, ...result, files: [jsonPath, ...svgs] }, null, 2));
    return;
  }
  console.log(`\nlog-log slope of mean |x| (and of mean |x − x₀|, Δ) against width after ${result.settings.steps} steps (0 = flat, 1 = ∝ width):`);
  console.log(slopeTable(result));
  console.log('\nslope of mean |x| at each step (t = 0 is the initialisation):');
  console.log(perStepTable(result));
  console.log(`\nwrote ${[jsonPath, ...svgs].join(', ')}`);
}

function lrLabel(log2Lr: number | null): string {
  return log2Lr === null ? '–' : `2^${Number.isInteger(log2Lr) ? log2Lr : log2Lr.toFixed(2)}`;
}

/** Optimum LR per width: rows widths, columns per parametrization (grid best, interpolated, loss). */
function optimaTable(records: readonly TransferRecord[]): string {
  const optima = transferOptima(records);
  const ps = (['sp', 'mup'] as const).filter((p) => optima.some((o) => o.parametrization === p));
  const widths = [...new Set(optima.map((o) => o.width))].sort((a, b) => a - b);
  const table = new Table({ head: ['width', ...ps.flatMap((p) => [`${LABEL[p]} best lr`, `${LABEL[p]} interp.`, `${LABEL[p]} loss`])], style: { head: [], border: [], compact: true } });
  for (const w of widths) {
    table.push([
      String(w),
      ...ps.flatMap((p) => {
        const o = optima.find((x) => x.parametrization === p && x.width === w);
        return [lrLabel(o?.bestLog2Lr ?? null), lrLabel(o?.interpolatedLog2Lr === null || o?.interpolatedLog2Lr === undefined ? null : Math.round(o.interpolatedLog2Lr * 100) / 100), o?.bestLoss === null || o?.bestLoss === undefined ? '–' : o.bestLoss.toFixed(4)];
      }),
    ]);
  }
  return table.toString();
}

async function runTransfer(opts: Record<string, unknown>): Promise<void> {
  const out = opts.out as string;
  const widths = opts.widths as number[];
  const lrs = opts.lrs as number[];
  const ps = opts.parametrizations as Parametrization[];
  const seeds = opts.seeds as number;
  const total = widths.length * lrs.length * ps.length * seeds;
  console.log(
    `μTransfer sweep: widths ${widths.join(', ')} × ${lrs.length} LRs (${lrLabel(Math.log2(lrs[0]))} … ${lrLabel(Math.log2(lrs[lrs.length - 1]))}) × ${seeds} seed(s) × ${ps.map((p) => LABEL[p]).join(', ')} = ${total} runs of ${opts.steps} steps ` +
      `(batch ${opts.batchSize} × ${opts.blockSize}, constant LR, AdamW, weight decay ${opts.weightDecay}); results in ${out}/results.jsonl`,
  );
  const started = performance.now();
  let costDone = 0;
  const records = await muTransfer({
    outDir: out,
    widths,
    lrs,
    seeds,
    steps: opts.steps as number,
    batchSize: opts.batchSize as number,
    blockSize: opts.blockSize as number,
    parametrizations: ps,
    baseWidth: opts.baseWidth as number | undefined,
    nLayers: opts.layers as number,
    nHeads: opts.heads as number,
    data: opts.data as string,
    dataDir: (opts.dataDir as string | undefined) ?? dataDirEnv() ?? null,
    lossWindow: opts.lossWindow as number,
    weightDecay: opts.weightDecay as number,
    warmupSteps: opts.warmupSteps as number,
    gradClip: opts.gradClip as number,
    keepRuns: opts.keepRuns === true,
    onResult: (r, { done, skipped, remainingWidths }) => {
      const losses = r.finalTrainLoss === null ? '' : `train loss ${r.finalTrainLoss.toFixed(4)} (val ${(r.valLoss as number).toFixed(4)})`;
      const what = r.diverged ? `diverged${r.divergedAtStep === null ? ` (${losses}, above the initial ${(r.initialLoss as number).toFixed(4)})` : ` at step ${r.divergedAtStep}`}` : losses;
      // A run's time grows with its width: about 0.5 + (width/64)^1.5 units (measured on one core).
      const cost = (w: number) => 0.5 + (w / 64) ** 1.5;
      costDone += cost(r.width);
      const elapsed = (performance.now() - started) / 1000;
      const eta = (elapsed / costDone) * remainingWidths.reduce((a, w) => a + cost(w), 0);
      console.log(`[${done + skipped}/${total}] ${LABEL[r.parametrization]} width ${r.width} lr ${lrLabel(r.log2Lr)} seed ${r.seed}: ${what}, ${r.seconds.toFixed(1)}s (ETA ${Math.round(eta / 60)} min)`);
    },
  });
  const summaryPath = join(out, 'summary.json');
  writeFileSync(summaryPath, JSON.stringify({ lossDefinition: `mean of the last ${opts.lossWindow} training-batch losses`, optima: transferOptima(records), means: transferMeans(records) }, null, 2) + '\n');
  // Losses above ln 65 ≈ 4.17 (uniform prediction over the char vocabulary) are clipped to the frame.
  const svg = await writeSvg(join(out, 'transfer.svg'), transferSpec(records, { yMax: 4.2, title: `μTransfer on ${opts.data}: final train loss (mean of the last ${opts.lossWindow} steps) vs LR, ${opts.steps} steps` }));
  console.log(`\noptimum learning rate per width (seed-mean final train loss; 'interp.' = vertex of a parabola through the best grid point and its neighbours):`);
  console.log(optimaTable(records));
  console.log(`\nwrote ${join(out, 'results.jsonl')}, ${join(out, 'results.csv')}, ${summaryPath}, ${svg}`);
}

export function registerMupCommands(program: Command): void {
  const mup = program.command('mup').description('μP (maximal update parametrization): coordinate check and μTransfer experiment');
  mup
    .command('coord-check')
    .description('train a few AdamW steps on one batch at several widths, SP and μP, and fit the log-log slope of each layer output’s mean |x| against width (μP: flat)')
    .addOption(new Option('--widths <list>', 'model widths (dModel)').default([64, 128, 256, 512, 1024], '64,128,256,512,1024').argParser(parseWidths))
    .addOption(new Option('--steps <n>', 'AdamW steps (activations recorded at 0 … n)').default(5).argParser(positiveInt('--steps')))
    .addOption(new Option('--lr <x>', 'learning rate (μP: at the base width)').default(1e-3).argParser(positiveNumber('--lr')))
    .addOption(new Option('--layers <n>', 'transformer layers').default(2).argParser(positiveInt('--layers')))
    .addOption(new Option('--heads <n>', 'attention heads, fixed as the width grows').default(4).argParser(positiveInt('--heads')))
    .addOption(new Option('--head-dim <n>', 'fixed head size instead (heads = width / head size)').argParser(positiveInt('--head-dim')))
    .addOption(new Option('--base-width <n>', 'μP base width (default: the smallest width)').argParser(positiveInt('--base-width')))
    .addOption(new Option('--batch-size <n>', 'sequences in the fixed batch').default(8).argParser(positiveInt('--batch-size')))
    .addOption(new Option('--block-size <n>', 'tokens per sequence').default(32).argParser(positiveInt('--block-size')))
    .addOption(new Option('--seeds <n>', 'initialisations averaged per width').default(1).argParser(positiveInt('--seeds')))
    .addOption(new Option('--seed <n>', 'seed of the batch and the first initialisation').default(0).argParser(nonNegativeInt('--seed')))
    .addOption(new Option('--parametrizations <list>', "'sp', 'mup' or both").default(['sp', 'mup'], 'sp,mup').argParser(parseParametrizations))
    .option('--untied', 'separate readout instead of the tied embedding')
    .option('--zero-init-query', 'μP: start the query projections at zero')
    .option('--zero-init-readout', 'μP: start the (untied) readout at zero')
    .option('--data <name|path>', 'text for the vocabulary and the batch (default: tinyshakespeare when present, else built-in sonnets)')
    .option('--data-dir <dir>', 'cache directory for named datasets')
    .option('--out <dir>', 'where coord-check.json and the SVG plots go', 'runs/mup-coord-check')
    .option('--json', 'print the result as JSON instead of tables')
    .action(async (opts: Record<string, unknown>) => runCoordCheck(opts));

  mup
    .command('transfer')
    .description('μTransfer: final train loss vs learning rate for several widths, SP and μP (short constant-LR runs; resumable)')
    .addOption(new Option('--widths <list>', 'model widths (dModel)').default([64, 128, 256, 512], '64,128,256,512').argParser(parseWidths))
    .addOption(new Option('--lrs <grid>', "learning rates: '2^a..2^b[:step]' or a comma list").default([...DEFAULT_TRANSFER_LRS], '2^-14..2^-4').argParser(parseLrs))
    .addOption(new Option('--seeds <n>', 'seeds per point').default(2).argParser(positiveInt('--seeds')))
    .addOption(new Option('--steps <n>', 'optimizer steps per run').default(80).argParser(positiveInt('--steps')))
    .addOption(new Option('--batch-size <n>', 'sequences per step').default(8).argParser(positiveInt('--batch-size')))
    .addOption(new Option('--block-size <n>', 'tokens per sequence').default(64).argParser(positiveInt('--block-size')))
    .addOption(new Option('--parametrizations <list>', "'sp', 'mup' or both").default(['sp', 'mup'], 'sp,mup').argParser(parseParametrizations))
    .addOption(new Option('--base-width <n>', 'μP base width (default: the smallest width)').argParser(positiveInt('--base-width')))
    .addOption(new Option('--layers <n>', 'transformer layers').default(2).argParser(positiveInt('--layers')))
    .addOption(new Option('--heads <n>', 'attention heads, fixed as the width grows').default(4).argParser(positiveInt('--heads')))
    .addOption(new Option('--loss-window <n>', 'final train loss = mean of the last n training-batch losses').default(10).argParser(positiveInt('--loss-window')))
    .addOption(new Option('--weight-decay <x>', 'AdamW weight decay (μP: hidden matrices per mup.weightDecay, default with-lr)').default(0).argParser(nonNegativeNumber('--weight-decay')))
    .addOption(new Option('--warmup-steps <n>', 'linear warmup before the constant LR').default(0).argParser(nonNegativeInt('--warmup-steps')))
    .addOption(new Option('--grad-clip <x>', 'global gradient-norm clip (0 = off)').default(0).argParser(nonNegativeNumber('--grad-clip')))
    .option('--data <name|path>', 'training text', 'tinyshakespeare')
    .option('--data-dir <dir>', 'cache directory for named datasets')
    .option('--out <dir>', 'sweep directory (results.jsonl, results.csv, summary.json, transfer.svg, runs/)', 'runs/mup-transfer')
    .option('--keep-runs', "keep each run's checkpoints")
    .action(async (opts: Record<string, unknown>) => runTransfer(opts));
}
