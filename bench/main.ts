/**
 * `npm run bench`: one table of figures, each next to a reference measured in the same run
 * (the machine is shared and noisy, so only same-run ratios mean anything).
 *
 *   npm run bench               # the full table
 *   npm run bench -- --json     # also write the figures as JSON to stdout (table to stderr)
 *   npm run bench -- --quick    # shorter timings
 *   npm run bench -- --llama    # also TinyLlama-1.1B-shaped decode against llama.cpp (bench/llama.ts; ~10 GB, ~10 minutes)
 *                               # and the peak RSS of `tensorlm sample` on that shape (bench/generation-memory.ts; ~2 minutes)
 */
import Table from 'cli-table3';
import { loadBlas } from '../src/backends/blas/index.js';
import { installNodeBackends } from '../src/backends/node.js';
import { setWasmThreads } from '../src/backends/wasm/index.js';
import { backendUnavailableReason, resolveKernels, setBackendInstaller } from '../src/backends/registry.js';
import { measureGemm, type GemmShape } from './gemm.js';
import { detectMachine } from './machine.js';
import { runModelBench, type ModelFigures } from './models.js';
import { runTorch, torchUnavailable, type TorchResult } from './torch.js';
import { measureGpt2Encoding, type EncodeFigures } from './encode.js';
import { loadText } from '../src/data/resolve.js';
import { runFlashAttentionBench, type FlashFigures } from './flash-attention.js';
import { runLlamaBench, type LlamaFigures } from './llama.js';
import { runGenerationMemoryBench, type GenerationMemoryFigures } from './generation-memory.js';

// A program of its own that imports library modules directly: it names Node's backends.
setBackendInstaller(installNodeBackends);

const args = new Set(process.argv.slice(2));
const json = args.has('--json');
const budget = args.has('--quick') ? 0.15 : 0.5;
const print = (line = '') => (json ? process.stderr : process.stdout).write(line + '\n');

const machine = detectMachine();
print(`machine: ${machine.cpu}, ${machine.cores} cores @ ${machine.ghz.toFixed(2)} GHz (reported), ${machine.simd}: ` + `peak ${machine.peakGflopsPerCore.toFixed(0)} GFLOPS/core fp32 (cores × clock × ${machine.flopsPerCycle} FLOP/cycle)`);

const square: GemmShape[] = [64, 128, 256, 512, 1024].map((n) => [n, n, n]);
const modelShapes: [string, GemmShape][] = [
  ['tiny qkv/proj 2048×128×128', [2048, 128, 128]],
  ['tiny mlp up 2048×512×128', [2048, 512, 128]],
  ['tiny mlp down 2048×128×512', [2048, 128, 512]],
  ['tiny head 2048×65×128', [2048, 65, 128]],
  ['nano attn 2048×256×256', [2048, 256, 256]],
  ['nano swiglu up 2048×768×256', [2048, 768, 256]],
  ['nano swiglu down 2048×256×768', [2048, 256, 768]],
];
const shapes: [string, GemmShape][] = [...square.map((s): [string, GemmShape] => [`n = ${s[0]}`, s]), ...modelShapes];

const blas = loadBlas().library;
const torchReason = torchUnavailable();
const torch: Record<number, TorchResult | null> = { 1: null, 2: null };
const threadCounts = [1, 2].filter((t) => t <= Math.max(machine.cores, 1));

if (!torchReason) {
  for (const threads of threadCounts) torch[threads] = runTorch({ threads, gemm: shapes.map(([, s]) => s), seconds: budget });
} else print(`PyTorch columns missing: ${torchReason}`);

interface GemmRow {
  shape: string;
  mnk: GemmShape;
  gflops: Record<string, number | null>;
}
const rows: GemmRow[] = [];
const columns: string[] = [];
const available = (name: string) => backendUnavailableReason(name) === null;
if (available('js')) columns.push('js');
if (available('wasm')) columns.push('wasm');
if (available('blas') && blas) for (const t of threadCounts) columns.push(`blas×${t}`);
// The native GEMM runs on one thread (with setNumThreads > 1 big products go to BLAS): one column.
if (available('native')) columns.push('native×1');

for (const [label, mnk] of shapes) {
  const gflops: Record<string, number | null> = {};
  for (const col of columns) {
    const [name, threads] = col.split('×');
    if (name === 'js' && mnk[0] * mnk[1] * mnk[2] > 256 ** 3) {
      gflops[col] = null; // the reference kernel would take minutes at these sizes
      continue;
    }
    if (threads && blas?.setNumThreads) blas.setNumThreads(Number(threads));
    // The wasm column is one thread, the reference the wasm target is stated against.
    if (name === 'wasm') setWasmThreads(1);
    gflops[col] = measureGemm(resolveKernels(name), mnk, budget);
  }
  for (const t of threadCounts) gflops[`torch×${t}`] = torch[t]?.gemm.find((g) => g.shape.join() === mnk.join())?.gflops ?? null;
  rows.push({ shape: label, mnk, gflops });
}
if (blas?.setNumThreads) blas.setNumThreads(1);

const fmt = (v: number | null | undefined, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : '–');

const gemmTable = new Table({
  style: { head: [], border: [] },
  head: ['sgemm GFLOPS', ...columns, ...threadCounts.map((t) => `torch×${t}`), '% peak (blas×1)', ...threadCounts.map((t) => `blas/torch ×${t}`), ...(columns.includes('native×1') ? ['native/torch ×1'] : []), 'wasm/blas×1'],
});
for (const r of rows) {
  const g = r.gflops;
  gemmTable.push([
    r.shape,
    ...columns.map((c) => fmt(g[c])),
    ...threadCounts.map((t) => fmt(g[`torch×${t}`])),
    g['blas×1'] ? `${((100 * g['blas×1']) / machine.peakGflopsPerCore).toFixed(0)}%` : '–',
    ...threadCounts.map((t) => ratio(g[`blas×${t}`], g[`torch×${t}`])),
    ...(columns.includes('native×1') ? [ratio(g['native×1'], g['torch×1'])] : []),
    ratio(g.wasm, g['blas×1']),
  ]);
}
print(gemmTable.toString());

const models: ModelFigures[] = await runModelBench({ budgetSeconds: budget, threadCounts, torchAvailable: !torchReason, print });

// Flash vs materialised attention (forward + backward), its crossover and the memory at T = 4096.
print('flash vs materialised attention, causal, B 1, H 4, D 64, forward + backward:');
const flash: FlashFigures = await runFlashAttentionBench({ quick: args.has('--quick'), print });

// GPT-2 encoding next to tiktoken, on tiny-shakespeare (from TENSORLM_DATA_DIR or the cache; never downloaded here).
let encoding: EncodeFigures | null = null;
try {
  const text = await loadText('tinyshakespeare', { fetch: () => Promise.reject(new Error('not downloaded by the bench')) });
  encoding = await measureGpt2Encoding(text, args.has('--quick') ? 3 : 5);
  const encodeTable = new Table({ style: { head: [], border: [] }, head: ['GPT-2 encode, tiny-shakespeare', 'MB/s (median)', 'best', 'vs tiktoken'] });
  for (const r of encoding.rows) encodeTable.push([r.label, r.median.toFixed(1), r.best.toFixed(1), r.vsTiktoken === null ? '–' : `${r.vsTiktoken.toFixed(2)}×`]);
  print(encodeTable.toString());
  print(`(×2 workers: a warm EncoderPool over ${encoding.documents} documents of ~16 kB; its start-up ${encoding.poolStartup.toFixed(2)} s and cold first pass ${encoding.poolFirstPass.toFixed(2)} s are not in the row)`);
} catch (error) {
  print(`GPT-2 encoding rows skipped: ${(error as Error).message}`);
}

// TinyLlama-1.1B-shaped decode against llama.cpp: opt-in (it builds a 4.4 GiB model and two GGUF files).
let llama: LlamaFigures | null = null;
if (args.has('--llama')) {
  try {
    llama = await runLlamaBench({ print });
  } catch (error) {
    print(`TinyLlama-shape rows skipped: ${(error as Error).message.split('\n')[0]}`);
  }
}
// Generation's peak RSS against the weights (issue 18: ≤ 1.2×), in a child process: with --llama too.
let generationMemory: GenerationMemoryFigures | null = null;
if (args.has('--llama')) {
  try {
    generationMemory = await runGenerationMemoryBench({ print });
  } catch (error) {
    print(`generation memory row skipped: ${(error as Error).message.split('\n')[0]}`);
  }
}

if (json) process.stdout.write(JSON.stringify({ machine, gemm: rows, models, flash, encoding, llama, generationMemory, torch: torchReason ? null : torch[1]?.torch }, null, 2) + '\n');
