/**
 * Training-step and generation throughput of the preset models, next to PyTorch running the same
 * network (tools/bench/torch_bench.py) at the same thread count, plus a kernel-time profile of a
 * training step.
 */
import Table from 'cli-table3';
import { setNumThreads } from '../src/backends/node.js';
import type { Kernels } from '../src/backends/kernels.js';
import { getBackend, registerBackend, resolveKernels, setBackend } from '../src/backends/registry.js';
import { createLanguageModel, type LanguageModel } from '../src/models/language-model.js';
import { presetModelConfig } from '../src/models/presets.js';
import { AdamW } from '../src/optim/adam.js';
import { clipGradNorm } from '../src/optim/clip-grad.js';
import { randint } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { DataParallel } from '../src/train/parallel.js';
import { languageModelLoss, LrSchedule, TrainingCore } from '../src/train/loop.js';
import type { Batch } from '../src/data/dataset.js';
import { runTorch, type TorchResult } from './torch.js';

export interface ModelFigures {
  name: string;
  threads: number;
  /** How the threads are used: BLAS threads inside one step, or whole-step data parallelism (src/train/parallel.ts). */
  mode: 'blas threads' | 'data parallel';
  trainTokensPerSecond: number;
  torchTrainTokensPerSecond: number | null;
  generateTokensPerSecond: number | null;
  torchGenerateTokensPerSecond: number | null;
  peakRssMiB: number;
}

interface Workload {
  name: string;
  batch: number;
  seq: number;
  generateTokens?: number;
}

const WORKLOADS: Workload[] = [
  { name: 'tiny', batch: 16, seq: 128, generateTokens: 120 },
  { name: 'nano-trickster', batch: 4, seq: 512 },
  // The recurrent model at tiny's parameter budget next to torch.nn.LSTM (docs/recurrent.md).
  { name: 'char-lstm', batch: 16, seq: 128, generateTokens: 120 },
];

/** The training core's step, as `tensorlm train` runs it (train/loop.ts), at a constant LR. */
function makeCore(model: LanguageModel, opt: AdamW): TrainingCore<LanguageModel, Batch> {
  const schedule = new LrSchedule({ kind: 'constant', lr: 1e-3, warmupSteps: 0, maxSteps: 1 });
  return new TrainingCore({ model, optimizer: opt, schedule, loss: languageModelLoss, gradClip: 1.0 });
}

/** The README's loop through the public API (with or without the fast backward option). */
function readmeStep(model: LanguageModel, opt: AdamW, x: Tensor, y: Tensor, recycleIntermediates: boolean): void {
  const { loss } = model.forward(x, y);
  opt.zeroGrad();
  (loss as Tensor).backward({ recycleIntermediates });
  clipGradNorm(model.parameters(), 1.0);
  opt.step();
}

function setupModel(w: Workload): { model: LanguageModel; opt: AdamW; x: Tensor; y: Tensor } {
  const config = presetModelConfig(w.name);
  const gen = new Generator(0);
  const model = createLanguageModel(config, { generator: gen });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 });
  const x = randint(0, config.vocabSize, [w.batch, w.seq], { generator: gen });
  const y = randint(0, config.vocabSize, [w.batch, w.seq], { generator: gen });
  return { model, opt, x, y };
}

const median = (times: number[]) => times.slice().sort((a, b) => a - b)[Math.floor(times.length / 2)];

/**
 * Median step time over a time budget (after two warm-up steps), as tokens per second. With
 * `compareReadme`, the README's public-API loop (with the fast backward option, and with plain
 * `loss.backward()`) runs on its own copy of the model in blocks that alternate with the core's:
 * each block's first step is not timed, since it pays for the garbage the previous block left
 * (plain backward leaves much more), so each variant is timed on its own steady state while all
 * three see the same machine load.
 */
function measureTraining(w: Workload, budgetSeconds: number, compareReadme = false): { tokensPerSecond: number; readme: number | null; readmePlain: number | null; model: LanguageModel; opt: AdamW; x: Tensor; y: Tensor; core: TrainingCore<LanguageModel, Batch> } {
  const main = setupModel(w);
  const core = makeCore(main.model, main.opt);
  const batch = { x: main.x, y: main.y };
  const variants: { step: () => void; times: number[] }[] = [{ step: () => core.trainStep(batch), times: [] }];
  if (compareReadme) {
    const readme = setupModel(w);
    const plain = setupModel(w);
    variants.push({ step: () => readmeStep(readme.model, readme.opt, readme.x, readme.y, true), times: [] });
    variants.push({ step: () => readmeStep(plain.model, plain.opt, plain.x, plain.y, false), times: [] });
  }
  for (const v of variants) for (let i = 0; i < 2; i++) v.step();
  const block = compareReadme ? 4 : 1;
  const deadline = performance.now() + budgetSeconds * variants.length * 1000;
  while (variants[0].times.length < 3 || (performance.now() < deadline && variants[0].times.length < 50)) {
    for (const v of variants) {
      for (let i = 0; i < block; i++) {
        const t = performance.now();
        v.step();
        if (block === 1 || i > 0) v.times.push(performance.now() - t);
      }
    }
  }
  const tokens = w.batch * w.seq;
  const rate = (k: number) => (variants[k] ? tokens / (median(variants[k].times) / 1000) : null);
  return { tokensPerSecond: rate(0) as number, readme: rate(1), readmePlain: rate(2), ...main, core };
}

/** Like measureTraining, but each step's batch is split over `replicas` worker-thread replicas (1 BLAS thread each). */
async function measureDataParallel(w: Workload, replicas: number, budgetSeconds: number): Promise<number> {
  const { model, opt, x, y } = setupModel(w);
  const core = makeCore(model, opt);
  const dp = new DataParallel(model, { replicas, threads: 1 });
  try {
    const step = () => core.trainStepWith(() => dp.step(x, y));
    await step();
    await step();
    const times: number[] = [];
    const deadline = performance.now() + budgetSeconds * 1000;
    while (times.length < 3 || (performance.now() < deadline && times.length < 50)) {
      const t = performance.now();
      await step();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return (w.batch * w.seq) / (times[Math.floor(times.length / 2)] / 1000);
  } finally {
    await dp.close();
  }
}

function measureGeneration(w: Workload, budgetSeconds: number): number {
  const config = presetModelConfig(w.name);
  const model = createLanguageModel(config, { generator: new Generator(0) });
  model.eval();
  const prompt = randint(0, config.vocabSize, [1, 1], { generator: new Generator(1) });
  const n = w.generateTokens ?? 100;
  const run = () => model.generate(prompt, { maxNewTokens: n, temperature: 0 });
  run();
  let best = Infinity;
  const deadline = performance.now() + budgetSeconds * 1000;
  do {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  } while (performance.now() < deadline);
  return n / (best / 1000);
}

/** Time spent in each kernel during `fn`, by wrapping the active kernel table. */
export function profileKernels(fn: () => void): { byKernel: Record<string, number>; totalMs: number } {
  const active = getBackend();
  const base = resolveKernels(active);
  const byKernel: Record<string, number> = {};
  const wrapped: Partial<Kernels> = {};
  for (const [name, kernel] of Object.entries(base) as [keyof Kernels, (...a: unknown[]) => unknown][]) {
    (wrapped as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const t = performance.now();
      const r = kernel(...args);
      byKernel[name] = (byKernel[name] ?? 0) + performance.now() - t;
      return r;
    };
  }
  registerBackend({ name: 'profile', kernels: wrapped, base: active, priority: -1, unavailable: null });
  setBackend('profile');
  const t = performance.now();
  try {
    fn();
  } finally {
    setBackend(active);
  }
  return { byKernel, totalMs: performance.now() - t };
}

const CATEGORY: Record<string, string> = {
  gemm: 'matmul (incl. attention products)',
  scaledSoftmax: 'attention softmax',
  softmax: 'attention softmax',
  softmaxBackward: 'attention softmax',
  layerNorm: 'norms',
  layerNormBackward: 'norms',
  rmsNorm: 'norms',
  rmsNormBackward: 'norms',
  adamStep: 'optimizer',
  sgdStep: 'optimizer',
  flashAttentionForward: 'flash attention (scores, softmax and products in one kernel)',
  flashAttentionBackward: 'flash attention (scores, softmax and products in one kernel)',
  crossEntropy: 'cross-entropy',
  crossEntropyBackward: 'cross-entropy',
};

export async function runModelBench(options: { budgetSeconds: number; threadCounts: number[]; torchAvailable: boolean; print: (line: string) => void }): Promise<ModelFigures[]> {
  const { print } = options;
  const budget = options.budgetSeconds * 6;
  const torch: Record<number, TorchResult | null> = {};
  for (const threads of options.threadCounts) {
    torch[threads] = options.torchAvailable
      ? runTorch({ threads, seconds: budget / 3, models: WORKLOADS.map((w) => ({ name: w.name, config: presetModelConfig(w.name) as unknown as Record<string, unknown>, batch: w.batch, seq: w.seq, generateTokens: w.generateTokens })) })
      : null;
  }
  const figures: ModelFigures[] = [];
  let profiled: { byKernel: Record<string, number>; totalMs: number } | null = null;
  let readmeLoop: { core: number; readme: number; plain: number } | null = null;
  for (const w of WORKLOADS) {
    for (const threads of options.threadCounts) {
      setNumThreads(threads);
      const t = measureTraining(w, budget, w.name === 'tiny' && threads === 1);
      if (t.readme !== null) readmeLoop = { core: t.tokensPerSecond, readme: t.readme, plain: t.readmePlain as number };
      if (w.name === 'tiny' && threads === 1) profiled = profileKernels(() => t.core.trainStep({ x: t.x, y: t.y }));
      const gen = w.generateTokens ? measureGeneration(w, budget / 2) : null;
      const tm = torch[threads]?.models.find((m) => m.name === w.name);
      figures.push({
        name: w.name,
        threads,
        mode: 'blas threads',
        trainTokensPerSecond: t.tokensPerSecond,
        torchTrainTokensPerSecond: tm?.trainTokensPerSecond ?? null,
        generateTokensPerSecond: gen,
        torchGenerateTokensPerSecond: tm?.generateTokensPerSecond ?? null,
        peakRssMiB: process.resourceUsage().maxRSS / 1024,
      });
      if (threads > 1) {
        setNumThreads(1);
        const dpTokens = await measureDataParallel(w, threads, budget);
        figures.push({
          name: w.name,
          threads,
          mode: 'data parallel',
          trainTokensPerSecond: dpTokens,
          torchTrainTokensPerSecond: tm?.trainTokensPerSecond ?? null,
          generateTokensPerSecond: null,
          torchGenerateTokensPerSecond: null,
          peakRssMiB: process.resourceUsage().maxRSS / 1024,
        });
      }
    }
  }
  setNumThreads(1);
  const fmt = (v: number | null) => (v === null ? '–' : Math.round(v).toLocaleString('en-US'));
  const ratio = (a: number | null, b: number | null) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
  const table = new Table({
    style: { head: [], border: [] },
    head: ['model (batch × seq)', 'threads', 'how', 'train tok/s', 'torch train tok/s', 'train vs torch', 'generate tok/s (batch 1; KV cache or recurrent state)', 'torch generate tok/s', 'generate vs torch'],
  });
  for (const f of figures) {
    const w = WORKLOADS.find((x) => x.name === f.name) as Workload;
    table.push([`${f.name} (${w.batch} × ${w.seq})`, f.threads, f.threads === 1 ? '–' : f.mode === 'data parallel' ? `data parallel ${f.threads}×1` : `${f.threads} BLAS threads`, fmt(f.trainTokensPerSecond), fmt(f.torchTrainTokensPerSecond), ratio(f.trainTokensPerSecond, f.torchTrainTokensPerSecond), fmt(f.generateTokensPerSecond), fmt(f.torchGenerateTokensPerSecond), ratio(f.generateTokensPerSecond, f.torchGenerateTokensPerSecond)]);
  }
  print(table.toString());
  print(`peak RSS of the bench process: ${Math.round(Math.max(...figures.map((f) => f.peakRssMiB)))} MiB`);
  if (readmeLoop) {
    const r = readmeLoop;
    print(
      `tiny, 1 thread, interleaved: training core (tensorlm train's step) ${fmt(r.core)} tok/s; the README's public-API loop with ` +
        `loss.backward({ recycleIntermediates: true }) ${fmt(r.readme)} tok/s (${ratio(r.readme, r.core)}), with plain loss.backward() ${fmt(r.plain)} tok/s (${ratio(r.plain, r.core)})`,
    );
  }
  if (profiled) {
    const shares: Record<string, number> = {};
    let kernelTotal = 0;
    for (const [k, ms] of Object.entries(profiled.byKernel)) {
      const c = CATEGORY[k] ?? 'other kernels (elementwise, reductions, copies, gather)';
      shares[c] = (shares[c] ?? 0) + ms;
      kernelTotal += ms;
    }
    shares['bookkeeping (graph, allocation, JS outside kernels)'] = profiled.totalMs - kernelTotal;
    const p = new Table({ style: { head: [], border: [] }, head: [`profile of one tiny training step (${profiled.totalMs.toFixed(0)} ms, 1 thread)`, 'ms', 'share'] });
    for (const [c, ms] of Object.entries(shares).sort((a, b) => b[1] - a[1])) p.push([c, ms.toFixed(1), `${((100 * ms) / profiled.totalMs).toFixed(0)}%`]);
    print(p.toString());
  }
  return figures;
}
