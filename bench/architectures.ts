/**
 * The architecture ablation at equal compute (docs/architectures.md): every attention / FFN /
 * mixer variant of TransformerLM trained on tiny-shakespeare with one BPE tokenizer, the same
 * token budget, the same recipe and seed, one replica each (so tokens/s compare), then evaluated
 * on the whole validation split. Prints a markdown table (validation loss, tokens/s, parameters
 * total and active, KV-cache or state bytes per token) and writes it with the loss curves.
 *
 *   TENSORLM_DATA_DIR=../shared/data node --import tsx bench/architectures.ts [--steps 300] [--only dense,moe] [--dir /tmp/tensorlm-ablation]
 *   node --import tsx bench/architectures.ts --throughput [--rounds 5] [--only dense,moe]
 *   node --import tsx bench/architectures.ts --plot-only --dir /tmp/tensorlm-ablation [--write-docs]
 *
 * --throughput measures training speed alone, the way every bench here does on a shared machine:
 * each variant's model takes the same training steps (AdamW, clipping, the run's batch) in turns,
 * round after round, and the median tokens/s of the rounds is reported — a figure the sequential
 * runs cannot give when anything else runs beside them.
 *
 * Output: <dir>/ablation.json, <dir>/ablation.md and docs/images/architectures-loss.{svg,png}
 * (with --write-docs). The base model is nano-trickster's shape at a quarter of the width
 * (dModel 128, 4 layers, 4 heads, SwiGLU, RMSNorm, RoPE, context 256) so that each run takes
 * minutes on 2 CPU cores; each variant changes only what it is about.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installNodeBackends } from '../src/backends/node.js';
import { setBackendInstaller } from '../src/backends/registry.js';
import { loadText } from '../src/data/resolve.js';
import type { TransformerConfigOverrides } from '../src/models/config.js';
import { countParameters, kvCacheBytes } from '../src/models/params.js';
import type { TransformerLM } from '../src/models/transformer.js';
import { evaluateStream } from '../src/train/evaluate.js';
import type { MetricRecord } from '../src/train/metrics.js';
import { lossCurveSpec, writeLossCurve } from '../src/train/plot.js';
import { TransformerLM as Model } from '../src/models/transformer.js';
import { AdamW } from '../src/optim/adam.js';
import { tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { languageModelLoss, LrSchedule, TrainingCore } from '../src/train/loop.js';
import { train, VALIDATION_MAX_TOKENS } from '../src/train/trainer.js';
import { BPETokenizer } from '../src/tokenizers/bpe.js';
import { flag } from './args.js';

// The Node backends (WASM SIMD, BLAS), as the CLI and src/index.ts install them.
setBackendInstaller(installNodeBackends);

const steps = Number(flag('steps', '300'));
const dir = flag('dir', '/tmp/tensorlm-ablation');
const only = flag('only', '');
const writeDocs = process.argv.includes('--write-docs');
const BATCH = 16;
const BLOCK = 128;
const VOCAB = 1024;

/** The common base: nano-trickster's recipe at a quarter of its width. */
const BASE: TransformerConfigOverrides = { dModel: 128, nLayers: 4, nHeads: 4, nKvHeads: 4, dFF: 384, maxSeqLen: 256, norm: 'rms', mlp: 'swiglu', pos: 'rope', tieWeights: true, bias: false, dropout: 0 };

interface Variant {
  name: string;
  what: string;
  model: TransformerConfigOverrides;
}

const VARIANTS: Variant[] = [
  { name: 'dense', what: 'softmax attention, SwiGLU (the base)', model: {} },
  { name: 'swa', what: 'sliding-window attention, W = 32', model: { slidingWindow: 32 } },
  { name: 'linear', what: 'causal linear attention (elu + 1), learned positions', model: { attention: 'linear', pos: 'learned' } },
  { name: 'moe', what: '8 experts of width 192, top-2 (active FFN width 384)', model: { moe: { nExperts: 8, topK: 2 } } },
  { name: 'mla', what: 'multi-head latent attention, DeepSeek-V2 proportions (r = 4·headDim)', model: { mla: {} } },
  { name: 'mamba', what: 'Mamba (S6) blocks only, 8 layers (no attention, no MLP)', model: { mamba: { dState: 16, dConv: 4, expand: 2 }, nLayers: 8 } as TransformerConfigOverrides },
  { name: 'hybrid', what: 'Mamba and attention layers alternating (M, A, M, A)', model: { mamba: { dState: 16, dConv: 4, expand: 2 }, layerTypes: ['mamba', 'attention', 'mamba', 'attention'] } as TransformerConfigOverrides },
];

interface Row {
  name: string;
  what: string;
  valLoss: number;
  tokensPerSecond: number;
  seconds: number;
  parameters: number;
  active: number;
  cacheBytesPerToken: number;
  /** Positions the KV cache keeps per sequence at the full context (a sliding window's ring caps it). */
  cachePositions: number;
  stateBytes: number;
}

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const text = await loadText('tinyshakespeare');
  const tokenizerPath = join(dir, 'bpe-1024.json');
  // One tokenizer for every variant, trained on the training part only (the first 90%).
  BPETokenizer.train(text.slice(0, Math.floor(text.length * 0.9)), { vocabSize: VOCAB }).save(tokenizerPath);
  const rows: Row[] = [];
  const curves: { name: string; records: MetricRecord[] }[] = [];
  for (const v of VARIANTS) {
    if (only && !only.split(',').includes(v.name)) continue;
    const model = { ...BASE, ...v.model };
    const started = performance.now();
    const result = await train({
      name: v.name,
      outDir: dir,
      data: 'tinyshakespeare',
      tokenizer: tokenizerPath,
      preset: 'nano-trickster',
      model,
      batchSize: BATCH,
      blockSize: BLOCK,
      maxSteps: steps,
      maxTime: null,
      lr: 3e-3,
      warmupSteps: Math.round(steps / 10),
      evalInterval: Math.max(1, Math.round(steps / 6)),
      evalIters: 10,
      sampleTokens: 0,
      replicas: 1,
      seed: 1,
    });
    const seconds = (performance.now() - started) / 1000;
    const lm = result.model as TransformerLM;
    const val = evaluateStream(lm, result.dataset.readSplit('val', VALIDATION_MAX_TOKENS), BLOCK);
    const params = countParameters(lm.config);
    const cache = kvCacheBytes(lm.config);
    const row: Row = {
      name: v.name,
      what: v.what,
      valLoss: val.loss,
      tokensPerSecond: result.tokensPerSecond,
      seconds,
      parameters: params.total,
      active: params.active,
      cacheBytesPerToken: cache.bytesPerToken,
      cachePositions: cache.positions,
      stateBytes: cache.stateBytes,
    };
    rows.push(row);
    curves.push({ name: v.name, records: readMetrics(join(dir, v.name, 'metrics.jsonl')).filter((r) => r.kind === 'eval') });
    console.log(`${v.name}: val ${val.loss.toFixed(4)}, ${Math.round(row.tokensPerSecond)} tokens/s, ${seconds.toFixed(0)} s`);
  }
  const table = markdownTable(rows);
  console.log(`\n${steps} steps × ${BATCH} × ${BLOCK} = ${(steps * BATCH * BLOCK).toLocaleString('en-US')} tokens each, BPE ${VOCAB}\n\n${table}`);
  writeFileSync(join(dir, 'ablation.json'), JSON.stringify({ steps, batch: BATCH, block: BLOCK, vocab: VOCAB, base: BASE, rows }, null, 2) + '\n');
  writeFileSync(join(dir, 'ablation.md'), table + '\n');
  await plot(curves, steps);
}

/** The validation curves of every variant, against steps and tokens (docs/images with --write-docs). */
async function plot(curves: { name: string; records: MetricRecord[] }[], steps: number): Promise<void> {
  const spec = lossCurveSpec(curves, `Architecture ablation: validation loss, ${(steps * BATCH * BLOCK).toLocaleString('en-US')} tokens each (tiny-shakespeare, BPE ${VOCAB})`);
  // Validation curves only: with train curves too, seven variants make fourteen lines.
  const data = spec.data as { values: { series: string }[] };
  data.values = data.values.filter((v) => v.series.endsWith(' val'));
  const base = writeDocs ? join(import.meta.dirname, '../docs/images/architectures-loss') : join(dir, 'architectures-loss');
  const written = await writeLossCurve(base, spec);
  console.log(`wrote ${written.join(', ')}`);
}

/** --plot-only: redraws the curves of the runs an earlier call left in --dir. */
async function plotOnly(): Promise<void> {
  const saved = JSON.parse(readFileSync(join(dir, 'ablation.json'), 'utf8')) as { steps: number; rows: Row[] };
  await plot(saved.rows.map((r) => ({ name: r.name, records: readMetrics(join(dir, r.name, 'metrics.jsonl')).filter((m) => m.kind === 'eval') })), saved.steps);
}

function readMetrics(path: string): MetricRecord[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as MetricRecord);
}

function markdownTable(rows: readonly Row[]): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const ring = (r: Row) => (r.cachePositions < (BASE.maxSeqLen as number) ? ` (a ring of ${r.cachePositions})` : '');
  const cache = (r: Row) => (r.stateBytes > 0 && r.cacheBytesPerToken === 0 ? `${n(r.stateBytes)} B state (any length)` : `${n(r.cacheBytesPerToken)} B/token${ring(r)}${r.stateBytes > 0 ? ` + ${n(r.stateBytes)} B state` : ''}`);
  const lines = [
    '| variant | what changes | val loss | tokens/s | parameters | active / token | KV cache or state |',
    '|---|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.what} | ${r.valLoss.toFixed(4)} | ${n(r.tokensPerSecond)} | ${n(r.parameters)} | ${n(r.active)} | ${cache(r)} |`),
  ];
  return lines.join('\n');
}

/** Interleaved, repeated training-step timing of every variant (see the header); prints median tokens/s. */
function throughput(rounds: number, stepsPerRound: number): void {
  const variants = VARIANTS.filter((v) => !only || only.split(',').includes(v.name));
  const g = new Generator(1);
  const ids = () => tensor(Int32Array.from({ length: BATCH * BLOCK }, () => g.randint(0, VOCAB)), { shape: [BATCH, BLOCK] });
  const batch = { x: ids(), y: ids() };
  const cores = variants.map((v) => {
    const model = new Model({ vocabSize: VOCAB, ...BASE, ...v.model } as ConstructorParameters<typeof Model>[0], { generator: new Generator(1) });
    const core = new TrainingCore({ model, optimizer: new AdamW(model.parameters(), { lr: 1e-3 }), schedule: new LrSchedule({ lr: 1e-3, warmupSteps: 0, maxSteps: 1_000_000 }), loss: languageModelLoss, gradClip: 1 });
    core.trainStep(batch); // warm-up: JIT, buffer pools
    return { name: v.name, core, samples: [] as number[] };
  });
  for (let r = 0; r < rounds; r++) {
    for (const c of cores) {
      const start = performance.now();
      for (let s = 0; s < stepsPerRound; s++) c.core.trainStep(batch);
      c.samples.push((stepsPerRound * BATCH * BLOCK) / ((performance.now() - start) / 1000));
    }
  }
  console.log(`training tokens/s, batch ${BATCH} × ${BLOCK}, one replica (library defaults), median of ${rounds} interleaved rounds of ${stepsPerRound} steps (range):`);
  for (const c of cores) {
    const sorted = c.samples.slice().sort((a, b) => a - b);
    console.log(`  ${c.name.padEnd(8)} ${Math.round(sorted[Math.floor(sorted.length / 2)]).toLocaleString('en-US').padStart(7)}  (${Math.round(sorted[0])}–${Math.round(sorted[sorted.length - 1])})`);
  }
}

if (process.argv.includes('--throughput')) throughput(Number(flag('rounds', '5')), Number(flag('round-steps', '3')));
else if (process.argv.includes('--plot-only')) await plotOnly();
else await main();
