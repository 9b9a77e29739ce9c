/**
 * Training throughput of the `tiny` preset (batch 16 × 128, AdamW + clipGradNorm) three ways:
 * one thread; data parallel over 2 replicas (main thread + 1 worker thread) with 1 BLAS thread
 * each; and one replica with 2 BLAS threads. `npx tsx bench/parallel.ts [steps] [rounds]`.
 *
 * The machine may be shared, so the configurations are measured in interleaved rounds (A B C A B C
 * …): a slow patch of time then hurts all of them instead of one. Each step time is wall-clock of
 * the whole step; tokens/s use the median (and, for reference, the fastest) step. CPU times per
 * thread are printed too, because on a busy machine they say more than wall time.
 *
 * V8's garbage collector runs helper threads (~100 ms of CPU per tiny step here, mostly the
 * mark-compacts that external ArrayBuffer memory triggers) that compete with a data-parallel
 * worker for the second core; `node --import tsx --single-threaded-gc bench/parallel.ts` runs the
 * same comparison with the collector on the JS threads themselves.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Table from 'cli-table3';
import { loadBlas } from '../src/backends/blas/index.js';
import { installNodeBackends, setNumThreads } from '../src/backends/node.js';
import { getBackend, setBackendInstaller } from '../src/backends/registry.js';
import { presetConfig } from '../src/models/presets.js';
import { TransformerLM } from '../src/models/transformer.js';
import { AdamW } from '../src/optim/adam.js';
import type { Batch } from '../src/data/dataset.js';
import { randint } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { DataParallel, type StepTimings } from '../src/train/parallel.js';
import { languageModelLoss, LrSchedule, TrainingCore } from '../src/train/loop.js';

const BATCH = 16;
const SEQ = 128;
// A program of its own that imports library modules directly: it names Node's backends.
setBackendInstaller(installNodeBackends);

const steps = Number(process.argv[2] ?? 8);
const rounds = Number(process.argv[3] ?? 4);
const WARMUP = 3;

interface Config {
  name: string;
  threads: number;
  model: TransformerLM;
  opt: AdamW;
  core: TrainingCore<TransformerLM, Batch>;
  dp: DataParallel | null;
  times: number[];
  /** Process CPU time (all threads, user + system) of each timed step, ms. */
  cpu: number[];
  /** CPU time of the main thread alone over all timed steps, ms (null where /proc is missing). */
  mainCpu: number | null;
  timings: StepTimings[];
}

function makeConfig(name: string, threads: number, replicas: number): Config {
  const model = new TransformerLM(presetConfig('tiny'), { generator: new Generator(0) });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 });
  const dp = replicas > 1 ? new DataParallel(model, { replicas, threads }) : null;
  const core = new TrainingCore({ model, optimizer: opt, schedule: new LrSchedule({ kind: 'constant', lr: 1e-3, warmupSteps: 0, maxSteps: 1 }), loss: languageModelLoss, gradClip: 1 });
  return { name, threads, model, opt, core, dp, times: [], cpu: [], mainCpu: 0, timings: [] };
}

/** The training core's step (train/loop.ts), its gradients from the replicas when there are several. */
async function step(c: Config, x: Tensor, y: Tensor): Promise<void> {
  const dp = c.dp;
  if (dp) await c.core.trainStepWith(() => dp.step(x, y));
  else c.core.trainStep({ x, y });
}

/**
 * CPU time of the calling thread (Linux: /proc/thread-self/stat, utime + stime in 10 ms ticks), or
 * null elsewhere. Summed over many steps the tick granularity averages out; it separates the
 * main thread's work from the worker's, which wall time on a busy machine cannot.
 */
function threadCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // fields 14 and 15 of stat(5)
  } catch {
    return null;
  }
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

/**
 * Do two threads calling cblas_sgemm at once (1 BLAS thread each) run in parallel? The worker loads
 * koffi and the same library itself (as a data-parallel worker does) and both threads run the same
 * loop of n³ products; "together" is the wall time until both are done.
 */
async function gemmConcurrency(n: number, reps: number): Promise<void> {
  const blas = loadBlas().library;
  if (!blas) {
    console.log(`sgemm in two threads: skipped (${loadBlas().reason})`);
    return;
  }
  const signature =
    'void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)';
  const loop = `(sgemm, n, reps) => {
    const a = new Float32Array(n * n).fill(1), b = new Float32Array(n * n).fill(0.5), c = new Float32Array(n * n);
    const t = performance.now();
    for (let i = 0; i < reps; i++) sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n);
    if (c[0] !== 0.5 * n) throw new Error('wrong sgemm result ' + c[0]);
    return performance.now() - t;
  }`;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const lib = require(workerData.koffi).load(workerData.path);
    const sgemm = lib.func(workerData.signature);
    const loop = ${loop};
    parentPort.on('message', (reps) => parentPort.postMessage(loop(sgemm, workerData.n, reps)));
    parentPort.postMessage('ready');`;
  const koffi = createRequire(import.meta.url).resolve('koffi');
  const worker = new Worker(source, { eval: true, workerData: { koffi, path: blas.path, signature, n } });
  const replies: ((v: unknown) => void)[] = [];
  worker.on('message', (m) => replies.shift()?.(m));
  const next = () => new Promise((r) => replies.push(r));
  await next();
  type Sgemm = NonNullable<ReturnType<typeof loadBlas>['library']>['sgemm'];
  const mainLoop = new Function(`return ${loop}`)() as (s: Sgemm, n: number, reps: number) => number;
  setNumThreads(1);
  const gflops = (ms: number) => ((2 * n ** 3 * reps) / ms / 1e6).toFixed(0);
  const alone: number[] = [];
  const together: number[] = [];
  let busy = 0;
  for (let trial = 0; trial < 3; trial++) {
    alone.push(mainLoop(blas.sgemm, n, reps));
    const cpu = process.cpuUsage();
    const start = performance.now();
    const theirs = next();
    worker.postMessage(reps);
    mainLoop(blas.sgemm, n, reps);
    await theirs;
    const wall = performance.now() - start;
    together.push(wall);
    const used = process.cpuUsage(cpu);
    busy = Math.max(busy, (used.user + used.system) / 1000 / wall);
  }
  await worker.terminate();
  const a = Math.min(...alone);
  const t = Math.min(...together);
  console.log(
    `sgemm ${n}³ × ${reps}, 1 BLAS thread per caller (best of 3): one thread ${a.toFixed(0)} ms (${gflops(a)} GFLOPS); ` +
      `main + worker at once ${t.toFixed(0)} ms for twice the work (${gflops(t / 2)} GFLOPS combined) → ${((2 * a) / t).toFixed(2)}× one thread; ` +
      `cores busy meanwhile (CPU/wall, best trial) ${busy.toFixed(2)}`,
  );
}

async function main(): Promise<void> {
  const vocab = presetConfig('tiny').vocabSize;
  const gen = new Generator(1);
  const x = randint(0, vocab, [BATCH, SEQ], { generator: gen });
  const y = randint(0, vocab, [BATCH, SEQ], { generator: gen });

  await gemmConcurrency(256, 200);
  setNumThreads(1);
  const configs = [makeConfig('1 thread', 1, 1), makeConfig('data parallel: 2 replicas × 1 thread', 1, 2), makeConfig('2 BLAS threads', 2, 1)];
  const started = performance.now();
  await configs[1].dp?.ready();
  const gc = process.execArgv.includes('--single-threaded-gc') ? 'single-threaded GC' : "V8's default (parallel, concurrent) GC";
  console.log(`${gc}; backend ${getBackend()}; worker backends ${JSON.stringify(configs[1].dp?.info().workerBackends)}; workers ready after ${(performance.now() - started).toFixed(0)} ms`);

  for (const c of configs) {
    setNumThreads(c.threads);
    for (let i = 0; i < WARMUP; i++) await step(c, x, y);
  }
  for (let r = 0; r < rounds; r++) {
    for (const c of configs) {
      // OpenBLAS's thread count is process-wide: the worker's BLAS follows whatever is set here.
      setNumThreads(c.threads);
      for (let i = 0; i < steps; i++) {
        const cpu = process.cpuUsage();
        const mainCpu = threadCpuMs();
        const t = performance.now();
        await step(c, x, y);
        c.times.push(performance.now() - t);
        const used = process.cpuUsage(cpu);
        c.cpu.push((used.user + used.system) / 1000);
        const mainAfter = threadCpuMs();
        c.mainCpu = c.mainCpu === null || mainCpu === null || mainAfter === null ? null : c.mainCpu + mainAfter - mainCpu;
        const last = c.dp?.info().lastStep;
        if (last) c.timings.push(last);
      }
    }
    process.stdout.write(`round ${r + 1}/${rounds}: ${configs.map((c) => `${median(c.times.slice(-steps)).toFixed(0)} ms`).join(' / ')}\n`);
  }

  const base = median(configs[0].times);
  // CPU time over wall time says how many cores a configuration actually got: on a busy machine
  // data parallelism cannot beat one thread when that ratio stays near 1.
  // The main thread's CPU time vs the rest (worker, BLAS threads, V8's helpers) shows each
  // thread's share of the work: for data parallelism, the larger of the two is roughly the step
  // time on an otherwise idle 2-core machine.
  const table = new Table({
    head: [
      'tiny, 16 × 128, AdamW + clip',
      'median step ms',
      'fastest step ms',
      'tokens/s (median)',
      'vs 1 thread',
      'CPU ms/step (all threads)',
      'CPU ms/step: main thread / other threads',
      'cores busy (CPU/wall)',
    ],
  });
  for (const c of configs) {
    const m = median(c.times);
    const cpuTotal = c.cpu.reduce((a, v) => a + v, 0);
    const busy = cpuTotal / c.times.reduce((a, v) => a + v, 0);
    const main = c.mainCpu === null ? null : c.mainCpu / c.times.length;
    const split = main === null ? '–' : `${main.toFixed(0)} / ${(cpuTotal / c.times.length - main).toFixed(0)}`;
    table.push([c.name, m.toFixed(1), Math.min(...c.times).toFixed(1), Math.round((BATCH * SEQ) / (m / 1000)).toLocaleString('en-US'), `${(base / m).toFixed(2)}×`, (cpuTotal / c.times.length).toFixed(0), split, busy.toFixed(2)]);
  }
  console.log(table.toString());

  const t = configs[1].timings;
  if (t.length > 0) {
    const parts = new Table({ head: ['data-parallel step, main thread (median ms)', 'dispatch', 'main shard', 'wait for worker', 'reduce grads', "worker's shard"] });
    parts.push(['', ...(['dispatch', 'main', 'wait', 'reduce', 'worker'] as const).map((k) => median(t.map((s) => s[k])).toFixed(2))]);
    console.log(parts.toString());
  }
  await Promise.all(configs.map((c) => c.dp?.close()));
}

await main();
