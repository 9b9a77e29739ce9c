/**
 * Tokenizer benchmark (not a test): BPE training time for vocabularies of 512, 2048 and 8192 on
 * tiny-shakespeare, and encode/decode throughput.
 *
 *   npx tsx bench/tokenizers.ts [--runs 3]
 *
 * Single-threaded. Each figure is the median of the runs (best in brackets). "cold" encoding
 * starts with an empty pre-token cache (a freshly loaded tokenizer); "warm" encodes the same
 * text again; "typed" is the warm `encodeToInt32Array`, which skips building a JS array.
 */
import { cpus } from 'node:os';
import { loadText } from '../src/data/resolve.js';
import { BPETokenizer } from '../src/tokenizers/bpe.js';
import { countPretokens } from '../src/tokenizers/bpe-train.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { GPT2_PATTERN } from '../src/tokenizers/pretokenize.js';

const runsFlag = process.argv.indexOf('--runs');
const RUNS = runsFlag >= 0 ? Number(process.argv[runsFlag + 1]) : 5;

function time<T>(fn: () => T): [T, number] {
  const start = performance.now();
  const result = fn();
  return [result, (performance.now() - start) / 1000];
}

function summarize(seconds: number[]): { median: number; min: number } {
  const sorted = [...seconds].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0] };
}

function fmtSeconds(s: number[]): string {
  const { median, min } = summarize(s);
  return `${median.toFixed(3)} s [min ${min.toFixed(3)}]`;
}

function fmtRate(mb: number, s: number[]): string {
  const { median, min } = summarize(s);
  return `${(mb / median).toFixed(1)} MB/s [best ${(mb / min).toFixed(1)}]`;
}

const text = await loadText('tinyshakespeare', { log: (m) => console.error(m) });
const mb = Buffer.byteLength(text, 'utf8') / 1e6;
console.log(`tiny-shakespeare: ${Buffer.byteLength(text, 'utf8').toLocaleString('en-US')} bytes; node ${process.version}; ${cpus()[0]?.model ?? 'unknown CPU'}; ${RUNS} runs each`);

// Warm up the JIT so the first measured run is not mostly compilation.
BPETokenizer.train(text.slice(0, 200_000), { vocabSize: 512 });

const pre: number[] = [];
let distinct = 0;
for (let r = 0; r < RUNS; r++) {
  const [counts, s] = time(() => countPretokens([text], GPT2_PATTERN, []));
  distinct = counts.size;
  pre.push(s);
}
console.log(`\npre-tokenise + count: ${fmtSeconds(pre)} (${distinct.toLocaleString('en-US')} distinct pre-tokens)`);

console.log('\nBPE training (pre-tokenisation included):');
const trained = new Map<number, BPETokenizer>();
for (const vocabSize of [512, 2048, 8192]) {
  const seconds: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const [tok, s] = time(() => BPETokenizer.train(text, { vocabSize }));
    trained.set(vocabSize, tok);
    seconds.push(s);
  }
  const tok = trained.get(vocabSize) as BPETokenizer;
  console.log(`  vocab ${String(vocabSize).padStart(5)}: ${fmtSeconds(seconds)} (${tok.numMerges} merges)`);
}

console.log('\nencoding and decoding the whole corpus:');
for (const [vocabSize, tok] of trained) {
  const cold: number[] = [];
  const warm: number[] = [];
  const typed: number[] = [];
  const dec: number[] = [];
  let ids: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const fresh = BPETokenizer.fromJSON(tok.toJSON());
    cold.push(time(() => fresh.encode(text))[1]);
    const [again, s] = time(() => fresh.encode(text));
    ids = again;
    warm.push(s);
    typed.push(time(() => fresh.encodeToInt32Array(text))[1]);
    const [decoded, d] = time(() => fresh.decode(ids));
    if (decoded !== text) throw new Error('round trip failed');
    dec.push(d);
  }
  console.log(
    `  BPE vocab ${String(vocabSize).padStart(5)}: ${ids.length.toLocaleString('en-US')} tokens (${(Buffer.byteLength(text) / ids.length).toFixed(2)} bytes/token); ` +
      `encode cold ${fmtRate(mb, cold)}, warm ${fmtRate(mb, warm)}, typed ${fmtRate(mb, typed)}; decode ${fmtRate(mb, dec)}`,
  );
}
const charTok = CharTokenizer.fromText(text);
const charEnc: number[] = [];
const charTyped: number[] = [];
const charDec: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const [ids, s] = time(() => charTok.encode(text));
  charEnc.push(s);
  charTyped.push(time(() => charTok.encodeToInt32Array(text))[1]);
  charDec.push(time(() => charTok.decode(ids))[1]);
}
console.log(`  char (vocab ${charTok.vocabSize}): encode ${fmtRate(mb, charEnc)}, typed ${fmtRate(mb, charTyped)}; decode ${fmtRate(mb, charDec)}`);

// ---- GPT-2's vocabulary: TensorLM (1 thread cold and warm, a warm pool of 2 workers) against tiktoken (WASM) and js-tiktoken ----
{
  const { createRequire } = await import('node:module');
  const { getEncoding } = await import('js-tiktoken');
  const { tiktokenTokenizer, tokenizerFromTiktoken } = await import('../src/tokenizers/tiktoken.js');
  const { EncoderPool } = await import('../src/tokenizers/parallel.js');
  const require = createRequire(import.meta.url);
  // tiktoken's CommonJS build (its ESM build imports a .wasm module, which Node does not load).
  const { get_encoding } = require('tiktoken') as typeof import('tiktoken');
  const ranks = require('js-tiktoken/ranks/gpt2') as import('../src/tokenizers/tiktoken.js').TiktokenRanks;
  const [gpt2, build] = time(() => tiktokenTokenizer('gpt2'));
  const wasm = get_encoding('gpt2');
  const js = getEncoding('gpt2');
  // Documents for the worker row: the corpus cut at blank lines into pieces of about 16 kB.
  const docs: string[] = [];
  for (let at = 0; at < text.length; ) {
    const next = text.indexOf('\n\n', at + 16_000);
    const end = next < 0 ? text.length : next + 2;
    docs.push(text.slice(at, end));
    at = end;
  }
  const timeAsync = async (fn: () => Promise<unknown>): Promise<number> => {
    const start = performance.now();
    await fn();
    return (performance.now() - start) / 1000;
  };
  gpt2.encodeToInt32Array(text); // warms the piece cache and the JIT, as tiktoken's own cache is warm after one call
  wasm.encode(text);
  js.encode(text);
  // A persistent pool, started and warmed before the timed runs (its start-up and first pass are reported apart).
  const pool = new EncoderPool(gpt2, { workers: 2 });
  const startup = await timeAsync(() => pool.start());
  let pooled: Int32Array[] = [];
  const firstPass = await timeAsync(async () => {
    pooled = await pool.encode(docs);
  });
  // (Not the ids of the whole text: a cut after "\n\n" makes it one piece, not two.)
  pooled.forEach((a, i) => {
    const b = gpt2.encodeToInt32Array(docs[i]);
    if (a.length !== b.length || a.some((id, j) => id !== b[j])) throw new Error(`the pool's ids differ on document ${i}`);
  });
  // Two more passes, so that the workers' JIT is as warm as the main thread's.
  for (let i = 0; i < 2; i++) await pool.encode(docs);
  const rows: Record<string, number[]> = {
    'TensorLM ×1, cold': [],
    'TensorLM ×1, warm': [],
    'TensorLM ×2 workers': [],
    'tiktoken (WASM)': [],
    'js-tiktoken': [],
  };
  // Interleaved, so that a busy neighbour on the shared machine slows every row alike.
  for (let r = 0; r < Math.max(3, Math.min(RUNS, 5)); r++) {
    // A fresh instance (built outside the timed part; tiktokenTokenizer would return the cached
    // one): its first pass over the corpus starts with an empty piece cache.
    const fresh = tokenizerFromTiktoken(ranks);
    rows['TensorLM ×1, cold'].push(time(() => fresh.encodeToInt32Array(text))[1]);
    rows['TensorLM ×1, warm'].push(time(() => gpt2.encodeToInt32Array(text))[1]);
    rows['TensorLM ×2 workers'].push(await timeAsync(() => pool.encode(docs)));
    rows['tiktoken (WASM)'].push(time(() => wasm.encode(text))[1]);
    rows['js-tiktoken'].push(time(() => js.encode(text))[1]);
  }
  await pool.close();
  wasm.free();
  console.log(`\nGPT-2 (r50k) encoding of the corpus (building the tokenizer from the ranks: ${build.toFixed(2)} s):`);
  const median = (k: string) => summarize(rows[k]).median;
  for (const [label, seconds] of Object.entries(rows)) {
    const ratio = label.startsWith('TensorLM') ? `TensorLM/tiktoken ${(median('tiktoken (WASM)') / median(label)).toFixed(2)}×` : '';
    console.log(`  ${label.padEnd(22)} ${fmtRate(mb, seconds)}  ${ratio}`);
  }
  console.log(
    `  (×2 workers: a warm EncoderPool encoding ${docs.length} documents of ~16 kB; starting it took ${startup.toFixed(2)} s, ` +
      `its first pass (cold piece caches) ${firstPass.toFixed(2)} s = ${(mb / firstPass).toFixed(1)} MB/s)`,
  );
}
