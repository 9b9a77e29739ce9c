import { existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TokenDataset } from '../../src/data/dataset.js';
import { readShardHeader, ShardDataset, ShardSetWriter, SHARD_HEADER_BYTES, writeShardSet } from '../../src/data/shards.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tensorlm-shards-'));
}

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const g = new Generator(seed);
  return Int32Array.from({ length: n }, () => g.randint(0, vocab));
}

describe('token shards', () => {
  it('writes files of shardTokens with a checked 16-byte header and reads any range back, across file boundaries', () => {
    const dir = join(tmp(), 'set');
    const train = randomIds(103, 300, 1);
    const val = randomIds(20, 300, 2);
    const writer = new ShardSetWriter(dir, { vocabSize: 300, tokenizerJson: '{}', shardTokens: 16 });
    // Documents of uneven sizes, so files fill from several appends.
    for (let at = 0; at < train.length; ) {
      const n = Math.min(train.length - at, 1 + (at % 23));
      writer.appendDocument('train', train.subarray(at, at + n));
      at += n;
    }
    writer.appendDocument('val', val);
    const manifest = writer.finish({ separator: 'none', split: 'test' });
    expect(manifest.dtype).toBe('uint16');
    expect(manifest.tokens).toEqual({ train: 103, val: 20 });
    expect(manifest.files.train.map((f) => f.tokens)).toEqual([16, 16, 16, 16, 16, 16, 7]);
    expect(readShardHeader(join(dir, 'train-00000.bin'))).toEqual({ version: 1, dtype: 'uint16', count: 16 });
    const bytes = readFileSync(join(dir, 'train-00006.bin'));
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('TLMS');
    expect(bytes.length).toBe(SHARD_HEADER_BYTES + 7 * 2);

    const shards = new ShardDataset(dir);
    expect(shards.trainTokens).toBe(103);
    expect(Array.from(shards.readSplit('train'))).toEqual(Array.from(train));
    expect(Array.from(shards.read('train', 14, 40))).toEqual(Array.from(train.subarray(14, 54)));
    expect(Array.from(shards.read('val', 5, 15))).toEqual(Array.from(val.subarray(5)));
    expect(() => shards.read('train', 100, 4)).toThrow(/outside the train split of 103 tokens/);
  });

  it('uses uint32 ids above 65,536 tokens of vocabulary', () => {
    const dir = join(tmp(), 'wide');
    const ids = Int32Array.from([0, 70_000, 99_999, 65_536]);
    writeShardSet(dir, { train: ids, val: ids }, { vocabSize: 100_000, tokenizerJson: '{}' });
    const shards = new ShardDataset(dir);
    expect(shards.manifest.dtype).toBe('uint32');
    expect(Array.from(shards.readSplit('train'))).toEqual(Array.from(ids));
  });

  it('getBatch draws exactly the windows of an in-memory TokenDataset with the same splits and generator', () => {
    const dir = join(tmp(), 'same');
    const tokens = randomIds(5000, 65, 3);
    const memory = new TokenDataset(tokens, { trainFraction: 0.9 });
    writeShardSet(dir, { train: memory.train, val: memory.val }, { vocabSize: 65, tokenizerJson: '{}', shardTokens: 777 });
    const shards = new ShardDataset(dir);
    const a = new Generator(9);
    const b = new Generator(9);
    for (let i = 0; i < 5; i++) {
      for (const split of ['train', 'val'] as const) {
        const m = memory.getBatch(split, 8, 64, a);
        const s = shards.getBatch(split, 8, 64, b);
        expect(Array.from(s.x.toTypedArray())).toEqual(Array.from(m.x.toTypedArray()));
        expect(Array.from(s.y.toTypedArray())).toEqual(Array.from(m.y.toTypedArray()));
      }
    }
    expect(() => shards.getBatch('val', 2, 500, a)).toThrow(/needs at least 501 tokens, but the val split of shards .* has 500/);
  });

  it('is atomic: an existing set is refused, an aborted write leaves nothing, overwrite replaces the whole set', () => {
    const root = tmp();
    const dir = join(root, 'set');
    writeShardSet(dir, { train: randomIds(10, 5, 1), val: randomIds(5, 5, 2) }, { vocabSize: 5, tokenizerJson: '{}' });
    expect(() => new ShardSetWriter(dir, { vocabSize: 5, tokenizerJson: '{}' })).toThrow(/already exists/);
    const writer = new ShardSetWriter(join(root, 'other'), { vocabSize: 5, tokenizerJson: '{}', shardTokens: 4 });
    writer.appendDocument('train', [1, 2, 3, 4, 1]);
    expect(() => writer.appendDocument('train', [7])).toThrow(/id 7 is outside the vocabulary \[0, 5\)/);
    writer.abort();
    expect(readdirSync(root).sort()).toEqual(['set']);
    writeShardSet(dir, { train: Int32Array.from([4, 4, 4]), val: Int32Array.from([1, 1]) }, { vocabSize: 5, tokenizerJson: '{}', overwrite: true });
    expect(Array.from(new ShardDataset(dir).readSplit('train'))).toEqual([4, 4, 4]);
    expect(readdirSync(root).sort()).toEqual(['set']);
  });

  it('refuses a truncated shard, a wrong magic and a directory without a manifest, in one line each', () => {
    const root = tmp();
    const dir = join(root, 'set');
    writeShardSet(dir, { train: randomIds(10, 5, 1), val: randomIds(5, 5, 2) }, { vocabSize: 5, tokenizerJson: '{}' });
    truncateSync(join(dir, 'train-00000.bin'), SHARD_HEADER_BYTES + 6);
    expect(() => new ShardDataset(dir)).toThrow(/says it holds 10 tokens \(36 bytes\) but is 22 bytes: truncated or corrupt/);
    writeFileSync(join(dir, 'train-00000.bin'), 'not a shard at all');
    expect(() => new ShardDataset(dir)).toThrow(/is not a TensorLM token shard/);
    expect(() => new ShardDataset(root)).toThrow(/is not a shard directory: shards\.json is missing/);
  });

  it('training on shards takes the same steps as training on the same tokens in memory, and resumes exactly', async () => {
    const dir = tmp();
    const lines: string[] = [];
    const g = new Generator(5);
    const words = ['love', 'night', 'light', 'sweet', 'moon'];
    for (let i = 0; i < 300; i++) lines.push(Array.from({ length: 6 }, () => words[g.randint(0, words.length)]).join(' ') + '.');
    const text = lines.join('\n');
    const data = join(dir, 'corpus.txt');
    writeFileSync(data, text);
    const tokenizer = CharTokenizer.fromText(text);
    const memory = new TokenDataset(tokenizer.encodeToInt32Array(text), { trainFraction: 0.9 });
    const shardDir = join(dir, 'shards');
    writeShardSet(shardDir, { train: memory.train, val: memory.val }, { vocabSize: tokenizer.vocabSize, tokenizerJson: JSON.stringify(tokenizer.toJSON()), shardTokens: 1000 });

    const inMemory = await train(smallTrainConfig(dir, data, { name: 'memory', maxSteps: 12, evalInterval: 6 }));
    const sharded = await train(smallTrainConfig(dir, 'unused', { name: 'sharded', maxSteps: 12, evalInterval: 6, dataShards: shardDir }));
    expect(sharded.trainLosses.map((s) => s.loss)).toEqual(inMemory.trainLosses.map((s) => s.loss));
    expect(sharded.finalValLoss).toBe(inMemory.finalValLoss);
    expect(sharded.dataset.trainTokens).toBe(memory.train.length);
    expect(existsSync(sharded.files.tokenizer)).toBe(true);

    await train(smallTrainConfig(dir, 'unused', { name: 'split', maxSteps: 12, evalInterval: 6, dataShards: shardDir }), { stopAfterSteps: 5 });
    const rest = await train({ outDir: dir, name: 'split' }, { resume: true });
    expect(rest.trainLosses.map((s) => s.loss)).toEqual(sharded.trainLosses.slice(5).map((s) => s.loss));
  }, 60_000);
});

describe('writeShardsFromDocuments', () => {
  it('appends the separator to every document and sends the last of every round(1/f) documents to val', async () => {
    const dir = join(tmp(), 'docs');
    async function* docs() {
      for (let d = 0; d < 10; d++) yield Int32Array.from({ length: d + 1 }, () => d);
    }
    const { writeShardsFromDocuments } = await import('../../src/data/shards.js');
    const manifest = await writeShardsFromDocuments(dir, docs(), { vocabSize: 20, tokenizerJson: '{}', separatorIds: [19], separatorName: 'eot', valFraction: 0.2, shardTokens: 8 });
    expect(manifest.documents).toEqual({ train: 8, val: 2 });
    const shards = new ShardDataset(dir);
    const expected = (ds: number[]) => ds.flatMap((d) => [...Array.from({ length: d + 1 }, () => d), 19]);
    expect(Array.from(shards.readSplit('val'))).toEqual(expected([4, 9]));
    expect(Array.from(shards.readSplit('train'))).toEqual(expected([0, 1, 2, 3, 5, 6, 7, 8]));
    await expect(writeShardsFromDocuments(join(tmp(), 'few'), [[1], [2]], { vocabSize: 20, tokenizerJson: '{}', separatorIds: [], separatorName: 'none', valFraction: 0.1 })).rejects.toThrow(
      /the corpus has 2 documents; .* the val split would be empty/,
    );
  });
});

describe('memory', () => {
  it('reads windows from a 2 GB shard without loading it: resident memory stays flat', async () => {
    const { openSync, writeSync, ftruncateSync, closeSync } = await import('node:fs');
    const { encodeShardHeader } = await import('../../src/data/shards.js');
    const dir = join(tmp(), 'big');
    // A sparse file (the header, then 10⁹ zero ids) costs no disk and no time, yet is a valid 2 GB shard.
    writeShardSet(dir, { train: Int32Array.from([1, 2]), val: Int32Array.from([1, 2]) }, { vocabSize: 65, tokenizerJson: '{}' });
    const count = 1_000_000_000;
    const fd = openSync(join(dir, 'train-00000.bin'), 'r+');
    writeSync(fd, encodeShardHeader('uint16', count), 0, 16, 0);
    ftruncateSync(fd, SHARD_HEADER_BYTES + 2 * count);
    closeSync(fd);
    const manifestPath = join(dir, 'shards.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    manifest.files.train[0].tokens = count;
    manifest.tokens.train = count;
    writeFileSync(manifestPath, JSON.stringify(manifest));

    const shards = new ShardDataset(dir);
    expect(shards.trainTokens).toBe(count);
    const rng = new Generator(1);
    for (let i = 0; i < 20; i++) shards.getBatch('train', 16, 256, rng);
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 300; i++) shards.getBatch('train', 16, 256, rng);
    const grown = process.memoryUsage().rss - before;
    expect(grown).toBeLessThan(64 * 1024 * 1024);
  });
});
