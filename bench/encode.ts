/**
 * GPT-2 encoding throughput: TensorLM's byte-level BPE with GPT-2's ranks (one thread with a cold
 * and with a warm piece cache, and a warm EncoderPool of 2 workers) against tiktoken (WASM) and
 * js-tiktoken on the same text, interleaved and repeated. `npm run bench` prints it as a table;
 * bench/tokenizers.ts prints it with the other tokenizer figures.
 */
import { createRequire } from 'node:module';
import { getEncoding } from 'js-tiktoken';
import { EncoderPool } from '../src/tokenizers/parallel.js';
import { tiktokenTokenizer, tokenizerFromTiktoken, type TiktokenRanks } from '../src/tokenizers/tiktoken.js';

export interface EncodeRow {
  label: string;
  /** MB/s of UTF-8 text: median and best of the runs. */
  median: number;
  best: number;
  /** TensorLM rows: median throughput over tiktoken's median; null for the references. */
  vsTiktoken: number | null;
}

export interface EncodeFigures {
  rows: EncodeRow[];
  /** Building GPT-2 from the ranks, seconds. */
  build: number;
  /** The pool's start-up (workers built) and its first pass (cold piece caches), seconds. */
  poolStartup: number;
  poolFirstPass: number;
  documents: number;
}

function seconds<T>(fn: () => T): number {
  const start = performance.now();
  fn();
  return (performance.now() - start) / 1000;
}

async function secondsAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

export async function measureGpt2Encoding(text: string, runs: number): Promise<EncodeFigures> {
  const require = createRequire(import.meta.url);
  // tiktoken's CommonJS build (its ESM build imports a .wasm module, which Node does not load).
  const { get_encoding } = require('tiktoken') as typeof import('tiktoken');
  const ranks = require('js-tiktoken/ranks/gpt2') as TiktokenRanks;
  const mb = Buffer.byteLength(text, 'utf8') / 1e6;
  let gpt2 = tiktokenTokenizer('gpt2');
  const build = seconds(() => (gpt2 = tokenizerFromTiktoken(ranks)));
  const wasm = get_encoding('gpt2');
  const js = getEncoding('gpt2');
  // Documents for the worker row: the text cut at blank lines into pieces of about 16 kB.
  const docs: string[] = [];
  for (let at = 0; at < text.length; ) {
    const next = text.indexOf('\n\n', at + 16_000);
    const end = next < 0 ? text.length : next + 2;
    docs.push(text.slice(at, end));
    at = end;
  }
  gpt2.encodeToInt32Array(text); // warms the piece cache and the JIT, as tiktoken's own cache is warm after one call
  wasm.encode(text);
  js.encode(text);
  // A persistent pool, started and warmed before the timed runs (its start-up and first pass are reported apart).
  const pool = new EncoderPool(gpt2, { workers: 2 });
  const poolStartup = await secondsAsync(() => pool.start());
  let pooled: Int32Array[] = [];
  const poolFirstPass = await secondsAsync(async () => {
    pooled = await pool.encode(docs);
  });
  // (Not the ids of the whole text: a cut after "\n\n" makes it one piece, not two.)
  pooled.forEach((a, i) => {
    const b = gpt2.encodeToInt32Array(docs[i]);
    if (a.length !== b.length || a.some((id, j) => id !== b[j])) throw new Error(`the pool's ids differ on document ${i}`);
  });
  // Two more passes, so that the workers' JIT is as warm as the main thread's.
  for (let i = 0; i < 2; i++) await pool.encode(docs);
  const times: Record<string, number[]> = { 'TensorLM ×1, cold': [], 'TensorLM ×1, warm': [], 'TensorLM ×2 workers': [], 'tiktoken (WASM)': [], 'js-tiktoken': [] };
  // Interleaved, so that a busy neighbour on the shared machine slows every row alike.
  for (let r = 0; r < Math.max(3, runs); r++) {
    // A fresh instance (built outside the timed part): its first pass starts with an empty piece cache.
    const fresh = tokenizerFromTiktoken(ranks);
    times['TensorLM ×1, cold'].push(seconds(() => fresh.encodeToInt32Array(text)));
    times['TensorLM ×1, warm'].push(seconds(() => gpt2.encodeToInt32Array(text)));
    times['TensorLM ×2 workers'].push(await secondsAsync(() => pool.encode(docs)));
    times['tiktoken (WASM)'].push(seconds(() => wasm.encode(text)));
    times['js-tiktoken'].push(seconds(() => js.encode(text)));
  }
  await pool.close();
  wasm.free();
  const median = (s: number[]) => [...s].sort((a, b) => a - b)[Math.floor(s.length / 2)];
  const reference = mb / median(times['tiktoken (WASM)']);
  const rows = Object.entries(times).map(([label, s]): EncodeRow => {
    const m = mb / median(s);
    return { label, median: m, best: mb / Math.min(...s), vsTiktoken: label.startsWith('TensorLM') ? m / reference : null };
  });
  return { rows, build, poolStartup, poolFirstPass, documents: docs.length };
}
