import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCorpus, tokenArrayFor, type TextEncoderLike } from '../../src/data/index.js';
import { CACHE_HEADER_BYTES } from '../../src/data/cache.js';
import { BPETokenizer, CharTokenizer } from '../../src/tokenizers/index.js';
import { makeTempDir } from '../tokenizers/helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);
const freshDir = tmp.fresh;

const text = 'to be, or not to be, that is the question\n'.repeat(50);

/** Counts encode calls, to see whether the cache was used. */
function counting<T extends TextEncoderLike>(tok: T): { tok: T; calls: () => number } {
  let calls = 0;
  const wrapped = Object.create(tok) as T;
  wrapped.encode = (t: string) => {
    calls++;
    return tok.encode(t);
  };
  if (tok.encodeToInt32Array !== undefined) {
    const typed = tok.encodeToInt32Array.bind(tok);
    wrapped.encodeToInt32Array = (t: string) => {
      calls++;
      return typed(t);
    };
  }
  return { tok: wrapped, calls: () => calls };
}

describe('encoded-corpus cache', () => {
  it('stores Uint16 tokens next to the tokenizer file and reads them back', () => {
    const dir = freshDir();
    const tokPath = join(dir, 'tok.json');
    const bpe = BPETokenizer.train(text, { vocabSize: 300 });
    bpe.save(tokPath);
    const { tok, calls } = counting(bpe);

    const first = encodeCorpus(tok, text, { tokenizerPath: tokPath });
    expect(first.fromCache).toBe(false);
    expect(first.tokens).toBeInstanceOf(Uint16Array);
    expect(Array.from(first.tokens)).toEqual(bpe.encode(text));
    expect(first.cachePath).toMatch(/[/\\]tok\.[0-9a-f]{16}\.[0-9a-f]{16}\.tokens$/);
    expect(statSync(first.cachePath as string).size).toBe(CACHE_HEADER_BYTES + 2 * first.tokens.length);

    const second = encodeCorpus(tok, text, { tokenizerPath: tokPath });
    expect(second.fromCache).toBe(true);
    expect(second.cachePath).toBe(first.cachePath);
    expect(Array.from(second.tokens)).toEqual(Array.from(first.tokens));
    expect(calls()).toBe(1);
    // Only the tokenizer and one cache file: no temporary files left behind.
    expect(readdirSync(dir).sort()).toEqual([first.cachePath?.split(/[/\\]/).pop(), 'tok.json'].sort());
  });

  it('is invalidated by a change of text or tokenizer, and drops caches of an older tokenizer file', () => {
    const dir = freshDir();
    const tokPath = join(dir, 'tok.json');
    const v1 = BPETokenizer.train(text, { vocabSize: 260 });
    v1.save(tokPath);
    const a = encodeCorpus(v1, text, { tokenizerPath: tokPath });
    const b = encodeCorpus(v1, text + 'more text', { tokenizerPath: tokPath });
    expect(b.fromCache).toBe(false);
    expect(b.cachePath).not.toBe(a.cachePath);
    // Same tokenizer, other text: both caches stay valid.
    expect(readdirSync(dir).filter((n) => n.endsWith('.tokens'))).toHaveLength(2);

    const v2 = BPETokenizer.train(text, { vocabSize: 265 });
    expect(v2.vocabSize).toBe(265);
    v2.save(tokPath);
    const c = encodeCorpus(v2, text, { tokenizerPath: tokPath });
    expect(c.fromCache).toBe(false);
    expect(Array.from(c.tokens)).toEqual(v2.encode(text));
    // The retrained tokenizer's file replaced v1, so v1's caches are gone.
    expect(readdirSync(dir).filter((n) => n.endsWith('.tokens'))).toEqual([c.cachePath?.split(/[/\\]/).pop()]);
  });

  it('rebuilds a truncated or foreign cache file instead of trusting it', () => {
    const dir = freshDir();
    const tok = CharTokenizer.fromText(text);
    const first = encodeCorpus(tok, text, { cacheDir: dir });
    const path = first.cachePath as string;
    truncateSync(path, statSync(path).size - 2);
    const again = encodeCorpus(tok, text, { cacheDir: dir });
    expect(again.fromCache).toBe(false);
    expect(Array.from(again.tokens)).toEqual(tok.encode(text));
    expect(statSync(path).size).toBe(CACHE_HEADER_BYTES + 2 * again.tokens.length);
    writeFileSync(path, Buffer.alloc(CACHE_HEADER_BYTES + 2 * again.tokens.length)); // right size, wrong header
    expect(encodeCorpus(tok, text, { cacheDir: dir }).fromCache).toBe(false);
    expect(encodeCorpus(tok, text, { cacheDir: dir }).fromCache).toBe(true);
    expect(readFileSync(path).subarray(0, 4).toString('latin1')).toBe('TLMT');
  });

  it('uses Uint32 for vocabularies above 65,536 and can be turned off', () => {
    const big: TextEncoderLike = {
      vocabSize: 70_000,
      encode: (t: string) => Array.from(t, (ch) => 65_536 + (ch.codePointAt(0) as number)),
      toJSON: () => ({ type: 'fake' }),
    };
    const dir = freshDir();
    const r = encodeCorpus(big, 'abc', { cacheDir: dir });
    expect(r.tokens).toBeInstanceOf(Uint32Array);
    expect(Array.from(encodeCorpus(big, 'abc', { cacheDir: dir }).tokens)).toEqual([65_633, 65_634, 65_635]);
    expect(tokenArrayFor(65_536, 1)).toBeInstanceOf(Uint16Array);
    expect(tokenArrayFor(65_537, 1)).toBeInstanceOf(Uint32Array);
    const off = encodeCorpus(big, 'abc', { cache: false });
    expect(off.cachePath).toBeNull();
  });
});
