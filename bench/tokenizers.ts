/**
 * Tokenizer benchmark (not a test): BPE training time for vocabularies of 512, 2048 and 8192 on
 * tiny-shakespeare, and encode/decode throughput.
 *
 *   npx tsx bench/tokenizers.ts [--runs 3]
 *
 * Single-threaded except the GPT-2 pool row (bench/encode.ts, also in `npm run bench`). Each figure is the median of the runs (best in brackets). "cold" encoding
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
  const { measureGpt2Encoding } = await import('./encode.js');
  const e = await measureGpt2Encoding(text, Math.min(RUNS, 5));
  console.log(`\nGPT-2 (r50k) encoding of the corpus (building the tokenizer from the ranks: ${e.build.toFixed(2)} s):`);
  for (const r of e.rows) {
    console.log(`  ${r.label.padEnd(22)} ${r.median.toFixed(1)} MB/s [best ${r.best.toFixed(1)}]  ${r.vsTiktoken === null ? '' : `TensorLM/tiktoken ${r.vsTiktoken.toFixed(2)}×`}`);
  }
  console.log(`  (×2 workers: a warm EncoderPool encoding ${e.documents} documents of ~16 kB; starting it took ${e.poolStartup.toFixed(2)} s, its first pass (cold piece caches) ${e.poolFirstPass.toFixed(2)} s)`);
}
