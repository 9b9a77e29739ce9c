import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TextDataset, TokenDataset } from '../../src/data/index.js';
import { Generator } from '../../src/tensor/random.js';
import { BPETokenizer, CharTokenizer } from '../../src/tokenizers/index.js';
import { HAVE_SHAKESPEARE, makeTempDir, NO_SHAKESPEARE_REASON, SHAKESPEARE_PATH } from '../tokenizers/helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);

/** Tokens equal to their positions, so every value says where it came from. */
function positions(n: number): TokenDataset {
  return new TokenDataset(Int32Array.from({ length: n }, (_, i) => i));
}

describe('TokenDataset', () => {
  it('splits by position, 90/10 by default (floor, like nanoGPT)', () => {
    const ds = positions(1005);
    expect(ds.train.length).toBe(904);
    expect(ds.val.length).toBe(101);
    expect(ds.val[0]).toBe(904);
    const custom = new TokenDataset([1, 2, 3, 4], { trainFraction: 0.5 });
    expect(Array.from(custom.train)).toEqual([1, 2]);
    expect(Array.from(custom.val)).toEqual([3, 4]);
    expect(() => new TokenDataset([1], { trainFraction: 0 })).toThrow(/trainFraction must be in \(0, 1\]/);
    expect(() => new TokenDataset([1], { trainFraction: 1.5 })).toThrow(/trainFraction/);
  });

  it('returns int32 [B, T] batches where y is x shifted by one', () => {
    const ds = positions(1000);
    const { x, y } = ds.getBatch('train', 8, 16, new Generator(1));
    expect(x.shape).toEqual([8, 16]);
    expect(y.shape).toEqual([8, 16]);
    expect(x.dtype).toBe('int32');
    expect(y.dtype).toBe('int32');
    const xs = x.tolist() as number[][];
    const ys = y.tolist() as number[][];
    for (let b = 0; b < 8; b++) {
      for (let t = 0; t < 16; t++) {
        expect(xs[b][t]).toBe(xs[b][0] + t); // contiguous window
        expect(ys[b][t]).toBe(xs[b][t] + 1); // next token
      }
    }
  });

  it('keeps every window, targets included, inside its split', () => {
    const ds = positions(300); // train 0..269, val 270..299
    const rng = new Generator(7);
    const seenStarts = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const train = ds.getBatch('train', 4, 20, rng);
      for (const row of train.y.tolist() as number[][]) expect(row[row.length - 1]).toBeLessThanOrEqual(269);
      for (const row of train.x.tolist() as number[][]) seenStarts.add(row[0]);
      const val = ds.getBatch('val', 4, 20, rng);
      for (const row of val.x.tolist() as number[][]) expect(row[0]).toBeGreaterThanOrEqual(270);
      for (const row of val.y.tolist() as number[][]) expect(row[row.length - 1]).toBeLessThanOrEqual(299);
    }
    // Both extreme starts are reachable: 0 and 269 - 20 = 249.
    expect(seenStarts.has(0)).toBe(true);
    expect(seenStarts.has(249)).toBe(true);
    expect(Math.max(...seenStarts)).toBe(249);
  });

  it('is deterministic for a seed', () => {
    const ds = positions(5000);
    const a = ds.getBatch('train', 4, 32, new Generator(42));
    const b = ds.getBatch('train', 4, 32, new Generator(42));
    const c = ds.getBatch('train', 4, 32, new Generator(43));
    expect(a.x.toArray()).toEqual(b.x.toArray());
    expect(a.y.toArray()).toEqual(b.y.toArray());
    expect(c.x.toArray()).not.toEqual(a.x.toArray());
    // Consecutive batches from one generator differ, and the generator state reproduces them.
    const rng = new Generator(5);
    ds.getBatch('train', 2, 8, rng);
    const state = rng.getState();
    const next = ds.getBatch('train', 2, 8, rng);
    expect(ds.getBatch('train', 2, 8, new Generator().setState(state)).x.toArray()).toEqual(next.x.toArray());
  });

  it('explains a block size that does not fit the split', () => {
    const ds = positions(100); // val has 10 tokens
    expect(() => ds.getBatch('val', 2, 10, new Generator(0))).toThrow(
      /blockSize 10 needs at least 11 tokens, but the val split has 10 \(100 tokens in all, trainFraction 0\.9\)/,
    );
    expect(ds.getBatch('val', 2, 9, new Generator(0)).x.shape).toEqual([2, 9]);
    expect(() => ds.getBatch('train', 0, 4, new Generator(0))).toThrow(/batchSize must be a positive integer/);
    expect(() => ds.getBatch('test' as 'val', 1, 4, new Generator(0))).toThrow(/unknown split "test"/);
    const all = new TokenDataset([1, 2, 3], { trainFraction: 1 });
    expect(() => all.getBatch('val', 1, 1, new Generator(0))).toThrow(/the val split has 0/);
  });
});

describe('TextDataset', () => {
  it('encodes text with a tokenizer and keeps it for decoding', () => {
    const text = 'hello world, hello tokens. '.repeat(40);
    const tok = CharTokenizer.fromText(text);
    const ds = TextDataset.fromText(text, tok);
    expect(ds.length).toBe(text.length);
    expect(ds.tokenizer.decode(Array.from(ds.tokens))).toBe(text);
    const { x } = ds.getBatch('train', 1, 12, new Generator(3));
    expect(text).toContain(tok.decode(x.toArray()));
  });

  it('loads a file by path through the token cache next to the tokenizer', async () => {
    const textPath = join(tmp.dir, 'corpus.txt');
    const text = 'the cat sat on the mat; the dog sat on the log.\n'.repeat(30);
    writeFileSync(textPath, text);
    const tokPath = join(tmp.dir, 'bpe.json');
    const tok = BPETokenizer.train(text, { vocabSize: 280 });
    tok.save(tokPath);
    const ds = await TextDataset.load(textPath, tok, { tokenizerPath: tokPath, trainFraction: 0.8 });
    expect(Array.from(ds.tokens)).toEqual(tok.encode(text));
    expect(ds.train.length).toBe(Math.floor(0.8 * ds.length));
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tokens'))).toHaveLength(1);
    const again = await TextDataset.load(textPath, tok, { tokenizerPath: tokPath });
    expect(Array.from(again.tokens)).toEqual(Array.from(ds.tokens));
  });

  it.skipIf(!HAVE_SHAKESPEARE)(`gives nanoGPT's shakespeare-char split sizes (${HAVE_SHAKESPEARE ? 'file present' : NO_SHAKESPEARE_REASON})`, () => {
    const text = readFileSync(SHAKESPEARE_PATH, 'utf8');
    const ds = TextDataset.fromText(text, CharTokenizer.fromText(text));
    // nanoGPT's data/shakespeare_char/prepare.py: "train has 1,003,854 tokens, val has 111,540 tokens".
    expect(ds.train.length).toBe(1_003_854);
    expect(ds.val.length).toBe(111_540);
    expect(ds.tokens).toBeInstanceOf(Uint16Array);
  });
});
