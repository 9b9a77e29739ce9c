/** `tensorlm data shard` then `tensorlm train --data-shards` and `eval`, end to end, plus errors. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShardDataset } from '../../src/data/shards.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { runCli as cli } from '../helpers/cli.js';

describe('tensorlm data shard → train --data-shards', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-shard-cli-'));
  const docs = join(dir, 'docs');
  mkdirSync(docs);
  const texts = Array.from({ length: 40 }, (_, i) => `Document ${i}: ${'the night is young and the moon is bright. '.repeat(3 + (i % 5))}`);
  writeFileSync(join(docs, 'documents.jsonl'), texts.map((text, i) => JSON.stringify({ text, source: `doc${i}` })).join('\n') + '\n');

  it('shards documents by document with 2 workers, trains on the shards and evaluates their val split', async () => {
    const out = join(dir, 'shards');
    const s = await cli(['data', 'shard', docs, '--out', out, '--tokenizer', 'char', '--workers', '2', '--shard-tokens', '2000']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/40 documents .* → [\d,]+ train \/ [\d,]+ val tokens \(36 \/ 4 documents\)/);
    const shards = new ShardDataset(out);
    const tokenizer = CharTokenizer.fromText(texts.join('') + '\n');
    // The val split is documents 10, 20, 30 and 40 (the last of every 10), each followed by "\n\n".
    const val = [9, 19, 29, 39].map((i) => texts[i] + '\n\n').join('');
    expect(tokenizer.decode(Array.from(shards.readSplit('val')))).toBe(val);
    expect(shards.manifest.files.train.length).toBeGreaterThan(1);

    const t = await cli(['train', '--data-shards', out, '--out-dir', dir, '--name', 'sharded', '--max-steps', '6', '--max-time', 'none', '--eval-interval', '3', '--eval-iters', '2', '--batch-size', '4', '--block-size', '32', '--d-model', '32', '--n-layers', '1', '--n-heads', '2', '--sample-tokens', '0', '--replicas', '1']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain(`on ${out}`);
    expect(t.stdout).toMatch(/finished 6 steps/);
    const config = JSON.parse(readFileSync(join(dir, 'sharded', 'config.json'), 'utf8'));
    expect(config.train.dataShards).toBe(out);
    const e = await cli(['eval', '--run', join(dir, 'sharded')]);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toContain(`shards ${out} (validation split)`);
    // Task evaluation measures bits per byte on the same shard val split, not on a text the run never saw.
    const tasks = join(dir, 'tasks.jsonl');
    writeFileSync(tasks, JSON.stringify({ context: 'the night is ', choices: ['young', 'bright'], answer: 0 }) + '\n');
    const k = await cli(['eval', '--run', join(dir, 'sharded'), '--tasks', tasks]);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toMatch(new RegExp(`checkpoint on shards ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(validation split\\): loss \\d`));
  }, 120_000);

  it('refuses an existing output and a corpus too small for a val split, in one line', async () => {
    const out = join(dir, 'taken');
    mkdirSync(out);
    const a = await cli(['data', 'shard', docs, '--out', out]);
    expect(a.code).toBe(1);
    expect(a.stderr.trim()).toMatch(/^tensorlm: shard directory .* already exists; choose another directory or overwrite it \(--overwrite\)$/);
    const few = join(dir, 'few.jsonl');
    writeFileSync(few, '{"text":"one"}\n{"text":"two"}\n');
    const b = await cli(['data', 'shard', few, '--out', join(dir, 'few')]);
    expect(b.code).toBe(1);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toMatch(/the corpus has 2 documents/);
    expect(existsSync(join(dir, 'few'))).toBe(false);
  }, 60_000);
});
