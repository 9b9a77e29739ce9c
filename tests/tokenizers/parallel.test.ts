/**
 * Encoding documents on worker threads: the ids of single-thread encoding, in order; failures
 * reject in one line; a persistent pool reuses its threads, never keeps the process alive while
 * idle, and ends its threads when garbage-collected.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BPETokenizer } from '../../src/tokenizers/bpe.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { EncoderPool, encodeBatch, encodeDocuments, workerSpecOf } from '../../src/tokenizers/parallel.js';
import { tiktokenTokenizer } from '../../src/tokenizers/tiktoken.js';

const SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. It's 2024 — naïve café 日本語 \u{1F44D}\u{1F3FD}<|endoftext|>\n";
const docs = Array.from({ length: 300 }, (_, i) => `${i}: ${SAMPLE.slice(i % 40)}${'word '.repeat(i % 17)}`);
const tok = BPETokenizer.train(SAMPLE.repeat(20), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });

describe('encodeDocuments', () => {
  it('1, 2 and 3 workers give the single-thread ids, in document order', async () => {
    const expected = docs.map((d) => Array.from(tok.encodeToInt32Array(d)));
    for (const workers of [1, 2, 3]) {
      // Small batches, so every worker gets several and replies can arrive out of order.
      const got = await encodeBatch(tok, docs, { workers, batchChars: 500 });
      expect(got.map((a) => Array.from(a))).toEqual(expected);
    }
  });

  it('GPT-2 by name, from an async source, with backpressure', async () => {
    const gpt2 = tiktokenTokenizer('gpt2');
    expect(workerSpecOf(gpt2)).toEqual({ name: 'gpt2' });
    let pulled = 0;
    async function* source(): AsyncGenerator<string> {
      for (const d of docs) {
        pulled++;
        yield d;
      }
    }
    const it = encodeDocuments(gpt2, source(), { workers: 2, batchChars: 100, maxInFlight: 2 });
    const first = await it.next();
    expect(Array.from(first.value as Int32Array)).toEqual(gpt2.encode(docs[0]));
    // Two batches of about 100 characters in flight, not the whole source.
    expect(pulled).toBeLessThan(20);
    const rest: number[][] = [];
    for await (const ids of { [Symbol.asyncIterator]: () => it }) rest.push(Array.from(ids));
    expect(rest).toEqual(docs.slice(1).map((d) => gpt2.encode(d)));
  });

  it('special tokens off, and an early break terminates the workers', async () => {
    const got = await encodeBatch(tok, docs.slice(0, 5), { workers: 2, allowSpecial: false });
    expect(got.map((a) => Array.from(a))).toEqual(docs.slice(0, 5).map((d) => tok.encode(d, { allowSpecial: false })));
    let n = 0;
    for await (const ids of encodeDocuments(tok, docs, { workers: 2, batchChars: 100 })) {
      expect(ids.length).toBeGreaterThan(0);
      if (++n === 3) break;
    }
    expect(n).toBe(3);
  });

  it('a document the tokenizer refuses rejects with one line naming it', async () => {
    const char = CharTokenizer.fromText('abc ');
    await expect(encodeBatch(char, ['abc', 'cab', 'a?c'], { workers: 2, batchChars: 1 })).rejects.toThrow(/^encodeDocuments: document 2 could not be encoded: CharTokenizer\.encode: character "\?" \(U\+003F\) at index 1 is not in the vocabulary/);
    await expect(encodeBatch('/nonexistent/tok.json', ['abc'], { workers: 1 })).rejects.toThrow(/^encodeDocuments: worker 0 failed: could not build the tokenizer: .*nonexistent/);
    await expect(encodeBatch(tok, ['a', 7 as unknown as string], { workers: 1 })).rejects.toThrow('encodeDocuments: document 1 must be a string, got number');
    await expect(encodeBatch(tok, ['a'], { workers: 0 })).rejects.toThrow('encodeDocuments: "workers" must be a positive integer, got 0');
  });
});

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PARALLEL_TS = join(REPO_ROOT, 'src/tokenizers/parallel.ts');

/** A child Node process (TypeScript through tsx, the GC exposed): run to its natural end, or killed after 20 s. */
function runChild(source: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-pool-'));
  const file = join(dir, 'child.mts');
  writeFileSync(file, source);
  const start = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', file, PARALLEL_TS], { cwd: REPO_ROOT, timeout: 20_000 }, (error, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr, ms: performance.now() - start });
    });
  });
}

describe('EncoderPool', () => {
  it('reuses its threads across calls, with the single-thread ids every time', async () => {
    const pool = new EncoderPool(tok, { workers: 2, batchChars: 500 });
    try {
      expect(pool.threadIds).toEqual([]); // nothing starts before the first use
      const expected = docs.map((d) => Array.from(tok.encodeToInt32Array(d)));
      const first = await pool.encode(docs);
      expect(first.map((a) => Array.from(a))).toEqual(expected);
      const threads = pool.threadIds;
      expect(threads).toHaveLength(2);
      for (let call = 0; call < 3; call++) {
        const subset = docs.slice(call * 50, call * 50 + 120);
        const got = await pool.encode(subset);
        expect(got.map((a) => Array.from(a))).toEqual(expected.slice(call * 50, call * 50 + 120));
      }
      // A stream from a generator, and two calls at once on the same threads.
      const streamed: number[][] = [];
      for await (const ids of pool.encodeStream(docs.values())) streamed.push(Array.from(ids));
      expect(streamed).toEqual(expected);
      const [a, b] = await Promise.all([pool.encode(docs.slice(0, 100)), pool.encode(docs.slice(100))]);
      expect([...a, ...b].map((x) => Array.from(x))).toEqual(expected);
      // An abandoned stream leaves the pool usable.
      for await (const ids of pool.encodeStream(docs)) {
        expect(ids.length).toBeGreaterThan(0);
        break;
      }
      expect((await pool.encode(docs.slice(7, 9))).map((x) => Array.from(x))).toEqual(expected.slice(7, 9));
      expect(pool.threadIds).toEqual(threads);
    } finally {
      await pool.close();
    }
    await expect(pool.encode(['a'])).rejects.toThrow('EncoderPool: the pool is closed');
    await pool.close(); // idempotent
  });

  it('a refused document rejects that call only; a worker failure makes the pool unusable', async () => {
    const pool = new EncoderPool(CharTokenizer.fromText('abc '), { workers: 2, batchChars: 1 });
    try {
      await expect(pool.encode(['abc', 'cab', 'a?c'])).rejects.toThrow(/^EncoderPool: document 2 could not be encoded: CharTokenizer\.encode: character "\?"/);
      expect((await pool.encode(['cab'])).map((a) => Array.from(a))).toEqual([Array.from(CharTokenizer.fromText('abc ').encodeToInt32Array('cab'))]);
    } finally {
      await pool.close();
    }
    const broken = new EncoderPool('/nonexistent/tok.json', { workers: 1 });
    await expect(broken.start()).rejects.toThrow(/^EncoderPool: worker 0 failed: could not build the tokenizer: .*nonexistent/);
    await expect(broken.encode(['abc'])).rejects.toThrow(/^EncoderPool: the pool is unusable after a worker failure \(EncoderPool: worker 0 failed: could not build the tokenizer: .*\); make a new pool$/);
    await broken.close();
    expect(() => new EncoderPool(tok, { workers: 1.5 })).toThrow('EncoderPool: "workers" must be a positive integer, got 1.5');
  });

  it.skipIf(!existsSync('/proc/self/task'))('an idle pool never keeps the process alive; a dropped one is collected and its threads end', async () => {
    // Threads are counted in /proc/self/task (Linux): a worker thread adds its own threads.
    const child = await runChild(`
import { readdirSync } from 'node:fs';
const { EncoderPool } = await import(process.argv[2]);
const threads = () => readdirSync('/proc/self/task').length;
const gc = (globalThis as { gc?: () => void }).gc as () => void;
const before = threads();
let collected = false;
const seen = new FinalizationRegistry<string>(() => { collected = true; });
await (async () => {
  const dropped = new EncoderPool('gpt2', { workers: 2 });
  await dropped.encode(['a', 'b', 'c']);
  await dropped.encode(['hello world']);
  seen.register(dropped, 'pool');
})();
const started = threads();
for (let i = 0; i < 40 && !collected; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
for (let i = 0; i < 40 && threads() > before; i++) await new Promise((r) => setTimeout(r, 25));
const after = threads();
// Kept, used, never closed: the process must still end on its own.
const kept = new EncoderPool('gpt2', { workers: 2 });
const ids = await kept.encode(['hello world']);
console.log(JSON.stringify({ collected, before, started, after, ids: Array.from(ids[0]) }));
`);
    expect(child.stderr).toBe('');
    expect(child.code).toBe(0);
    const result = JSON.parse(child.stdout) as { collected: boolean; before: number; started: number; after: number; ids: number[] };
    expect(result.ids).toEqual(tiktokenTokenizer('gpt2').encode('hello world'));
    expect(result.collected).toBe(true);
    expect(result.started).toBeGreaterThan(result.before);
    expect(result.after).toBe(result.before);
    expect(child.ms).toBeLessThan(15_000);
  }, 25_000);
});
