/**
 * TinyLlama-1.1B-shaped decode against llama.cpp (issue 18): one model with random weights,
 * exported as GGUF (F32 and Q8_0) for llama.cpp through node-llama-cpp, and decoded by TensorLM's
 * engine (f32, and quantizeModel's q8_0) from the same 128-token prompt, 64 greedy tokens each side,
 * the same thread count. Prints tokens/s of both, their ratio, the weight bytes read per token
 * against a STREAM-like copy bandwidth measured in the same run, and the peak RSS.
 *
 *   node --import tsx bench/llama.ts [--layers 22] [--threads 2] [--dir /tmp/tensorlm-llama] [--rounds 2] [--weights F32|Q8_0]
 *   npm run bench -- --llama        (the same, as a section of the bench; opt-in: ~10 GB, ~10 minutes)
 *
 * The shape is the `tinyllama-1.1b` preset (d 2048, 22 layers, 32 heads / 4 kv heads, SwiGLU 5632,
 * RoPE, RMSNorm, untied) with GPT-2's vocabulary (50,257 instead of 32,000: a real BPE tokenizer
 * the GGUF file can carry; tiny-shakespeare cannot train 32,000 merges) — 1.18 B parameters.
 * `--layers 2` is a smoke test of the whole pipeline in seconds. Needs ~2 × 4.7 GB of free memory
 * and disk at full size; run it on a quiet machine (it is a measurement).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { installNodeBackends, setNumThreads } from '../src/backends/node.js';
import { setBackendInstaller } from '../src/backends/registry.js';
import { writeGguf } from '../src/interop/gguf.js';
import { countParameters } from '../src/models/params.js';
import { presetConfig } from '../src/models/presets.js';
import { quantizeModel } from '../src/models/quantize.js';
import { TransformerLM } from '../src/models/transformer.js';
import { tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { tiktokenTokenizer } from '../src/tokenizers/tiktoken.js';
import { flag } from './args.js';

export interface LlamaBenchOptions {
  /** Layers of the TinyLlama shape (22; fewer for a smoke test). */
  layers?: number;
  threads?: number;
  rounds?: number;
  /** Only these weight types (both by default). */
  weights?: readonly ('F32' | 'Q8_0')[];
  /** Where the GGUF files go (removed afterwards unless keep). */
  dir?: string;
  keep?: boolean;
  print?: (line: string) => void;
}

/** One row of the result: tokens/s of both sides (best round), and how long their greedy tokens agree. */
export interface LlamaFigures {
  parameters: number;
  threads: number;
  copyBandwidth: number;
  peakRss: number;
  rows: { weights: 'F32' | 'Q8_0'; tensorlm: number; llamaCpp: number; ratio: number; bytesPerToken: number; equalTokens: number }[];
}

const PROMPT = 128;
const NEW = 64;

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** STREAM-like copy: bytes read + written per second over a 512 MiB Float32Array, best of 5. */
function copyBandwidth(): number {
  const n = 2 ** 27;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  let best = 0;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    b.set(a);
    best = Math.max(best, (2 * 4 * n) / ((performance.now() - t) / 1000));
  }
  return best;
}

/** Greedy decode of NEW tokens after the prompt on TensorLM's engine; tokens/s of the decode steps (prefill excluded). */
function decodeTensorLM(model: TransformerLM, prompt: Int32Array): { tokensPerSecond: number; prefillSeconds: number; tokens: number[] } {
  const tokens: number[] = [];
  let t0 = 0;
  let prefill = 0;
  const start = performance.now();
  for (const next of model.generateStream(tensor(prompt, { shape: [1, prompt.length] }), { maxNewTokens: NEW, temperature: 0 })) {
    tokens.push(next[0]);
    if (tokens.length === 1) {
      t0 = performance.now();
      prefill = (t0 - start) / 1000;
    }
  }
  return { tokensPerSecond: (NEW - 1) / ((performance.now() - t0) / 1000), prefillSeconds: prefill, tokens };
}

interface LlamaSequence {
  evaluate(tokens: number[], options: { temperature: number }): AsyncGenerator<number>;
}
interface LlamaModel {
  createContext(options: { contextSize: number; threads?: number }): Promise<{ getSequence(): LlamaSequence; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}

/** The same decode through llama.cpp (node-llama-cpp's sequence.evaluate, greedy). */
async function decodeLlamaCpp(path: string, prompt: Int32Array, threads: number): Promise<{ tokensPerSecond: number; prefillSeconds: number; tokens: number[] }> {
  const mod = (await import('node-llama-cpp')) as unknown as { getLlama(o: object): Promise<{ loadModel(o: { modelPath: string }): Promise<LlamaModel> }> };
  const llama = await mod.getLlama({ gpu: false, logLevel: 'error', build: 'never' });
  const lm = await llama.loadModel({ modelPath: path });
  try {
    const context = await lm.createContext({ contextSize: PROMPT + NEW + 8, threads });
    const tokens: number[] = [];
    let t0 = 0;
    let prefill = 0;
    const start = performance.now();
    for await (const t of context.getSequence().evaluate(Array.from(prompt), { temperature: 0 })) {
      tokens.push(t);
      if (tokens.length === 1) {
        t0 = performance.now();
        prefill = (t0 - start) / 1000;
      }
      if (tokens.length === NEW) break;
    }
    const tokensPerSecond = (NEW - 1) / ((performance.now() - t0) / 1000);
    await context.dispose();
    return { tokensPerSecond, prefillSeconds: prefill, tokens };
  } finally {
    await lm.dispose();
  }
}

export async function runLlamaBench(options: LlamaBenchOptions = {}): Promise<LlamaFigures> {
  // A program of its own, or a section of bench/main.ts: either way Node's backends.
  setBackendInstaller(installNodeBackends);
  const layers = options.layers ?? 22;
  const threads = options.threads ?? 2;
  const rounds = options.rounds ?? 2;
  const dir = options.dir ?? '/tmp/tensorlm-llama';
  const print = options.print ?? ((line: string) => console.log(line));
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
  setNumThreads(threads);
  mkdirSync(dir, { recursive: true });
  const tokenizer = tiktokenTokenizer('gpt2');
  const config = presetConfig('tinyllama-1.1b', { vocabSize: tokenizer.vocabSize, nLayers: layers });
  const params = countParameters(config).total;
  print(`TinyLlama-1.1B shape, ${layers} layers, vocab ${tokenizer.vocabSize}: ${params.toLocaleString('en-US')} parameters, ${threads} threads`);
  let t = performance.now();
  const model = new TransformerLM(config, { generator: new Generator(1) });
  model.eval();
  print(`random weights in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const g = new Generator(2);
  const prompt = Int32Array.from({ length: PROMPT }, () => g.randint(0, tokenizer.vocabSize));
  const files = { F32: join(dir, 'model-F32.gguf'), Q8_0: join(dir, 'model-Q8_0.gguf') };
  const types = options.weights ?? (['F32', 'Q8_0'] as const);
  for (const type of types) {
    t = performance.now();
    const { bytes } = writeGguf(files[type], model.stateDict(), config, tokenizer, { type });
    print(`GGUF ${type}: ${gib(bytes)} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const bandwidth = copyBandwidth();
  print(`copy bandwidth (read + write, best of 5 over 512 MiB): ${(bandwidth / 1e9).toFixed(1)} GB/s`);

  // Bytes one decoded token reads: every matrix once (a token reads one embedding row, not the
  // table); Q8_0 is 34 bytes per block of 32 (norms, a few KB, are left out).
  const perToken = params - config.vocabSize * config.dModel;
  const weightBytes = { f32: 4 * perToken, q8_0: (34 / 32) * perToken };
  const rows: string[] = [];
  const figures: LlamaFigures['rows'] = [];
  const report = (label: 'F32' | 'Q8_0', ours: number, theirs: number, bytesPerToken: number, agree: number) =>
    figures.push({ weights: label, tensorlm: ours, llamaCpp: theirs, ratio: ours / theirs, bytesPerToken, equalTokens: agree }) &&
    rows.push(`| ${label} | ${ours.toFixed(2)} | ${theirs.toFixed(2)} | ${(ours / theirs).toFixed(2)}× | ${((ours * bytesPerToken) / 1e9).toFixed(1)} / ${((theirs * bytesPerToken) / 1e9).toFixed(1)} GB/s | ${agree}/${NEW} |`);
  for (const [label, path, bytes] of [['F32', files.F32, weightBytes.f32], ['Q8_0', files.Q8_0, weightBytes.q8_0]] as const) {
    if (!types.includes(label)) continue;
    if (label === 'Q8_0') quantizeModel(model, 'q8_0');
    const ours: number[] = [];
    const theirs: number[] = [];
    let agree = 0;
    for (let r = 0; r < rounds; r++) {
      const a = decodeTensorLM(model, prompt);
      const b = await decodeLlamaCpp(path, prompt, threads);
      ours.push(a.tokensPerSecond);
      theirs.push(b.tokensPerSecond);
      agree = a.tokens.findIndex((tok, i) => tok !== b.tokens[i]);
      agree = agree < 0 ? NEW : agree;
      print(`${label} round ${r + 1}: TensorLM ${a.tokensPerSecond.toFixed(2)} tokens/s (prefill ${a.prefillSeconds.toFixed(1)} s), llama.cpp ${b.tokensPerSecond.toFixed(2)} (prefill ${b.prefillSeconds.toFixed(1)} s); greedy tokens equal for the first ${agree}`);
    }
    report(label, Math.max(...ours), Math.max(...theirs), bytes, agree);
  }
  clearInterval(sampler);
  print(`\n| weights | TensorLM tokens/s | llama.cpp tokens/s | ratio | weight bytes read per second (ours / theirs) | equal greedy tokens |`);
  print('|---|---:|---:|---:|---|---:|');
  for (const row of rows) print(row);
  print(`\nmachine copy bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s; peak RSS of this process ${gib(peakRss)} (f32 weights ${gib(4 * params)}; it also held the GGUF writer's buffers and llama.cpp's mapped model)`);
  if (!options.keep) rmSync(dir, { recursive: true, force: true });
  return { parameters: params, threads, copyBandwidth: bandwidth, peakRss, rows: figures };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const weights = flag('weights', 'F32,Q8_0').split(',');
  const bad = weights.find((w) => w !== 'F32' && w !== 'Q8_0');
  if (bad !== undefined) {
    console.error(`bench/llama.ts: --weights takes F32, Q8_0 or F32,Q8_0, got '${bad}'`);
    process.exit(2);
  }
  await runLlamaBench({ layers: Number(flag('layers', '22')), threads: Number(flag('threads', '2')), rounds: Number(flag('rounds', '2')), weights: weights as ('F32' | 'Q8_0')[], dir: flag('dir', '/tmp/tensorlm-llama'), keep: process.argv.includes('--keep') });
}
