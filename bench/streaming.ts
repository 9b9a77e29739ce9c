/**
 * Training from token shards at scale: generates a JSONL corpus of the given size (seeded random
 * "sentences" over a fixed vocabulary of words, so it costs no download), shards it with
 * `tensorlm data shard`, trains from the shards with `tensorlm train --data-shards`, and reports
 * each command's wall time and peak resident memory (GNU time's maximum RSS).
 *
 *   node --import tsx bench/streaming.ts --gb 2 --dir /tmp/tensorlm-streaming [--steps 200] [--tokenizer char]
 *
 * The figure that matters: the training process's peak RSS does not grow with the corpus (it
 * reads windows from the files), against the corpus's size on disk.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Generator } from '../src/tensor/random.js';
import { flag } from './args.js';

const gb = Number(flag('gb', '2'));
const dir = flag('dir', '/tmp/tensorlm-streaming');
const steps = Number(flag('steps', '200'));
const tokenizer = flag('tokenizer', 'char');
const cli = join(import.meta.dirname, '../dist/cli/main.js');
if (!existsSync(cli)) throw new Error(`${cli} is missing: run 'npm run build' first`);

const WORDS = 'the and to of a my in that is not with me it for be his your this but he have thou as so will what thy all by her no do shall if are we thee our on lord now good love king come sir well more how let o would they was then did heart'.split(' ');

/** Writes ~`bytes` of JSONL documents (each 20–400 sentences) without holding the corpus in memory. */
function generateCorpus(path: string, bytes: number): { documents: number; bytes: number } {
  const g = new Generator(1);
  const fd = openSync(path, 'w');
  let written = 0;
  let documents = 0;
  try {
    while (written < bytes) {
      const sentences: string[] = [];
      const n = 20 + g.randint(0, 380);
      for (let s = 0; s < n; s++) {
        const len = 4 + g.randint(0, 12);
        const words: string[] = [];
        for (let w = 0; w < len; w++) words.push(WORDS[g.randint(0, WORDS.length)]);
        sentences.push(words.join(' ') + '.');
      }
      const line = Buffer.from(JSON.stringify({ text: sentences.join(' ') }) + '\n');
      writeSync(fd, line);
      written += line.length;
      documents++;
    }
  } finally {
    closeSync(fd);
  }
  return { documents, bytes: written };
}

/** Runs the CLI under GNU time; returns wall seconds, peak RSS in MiB and the output. */
function timedWithRss(args: string[]): { seconds: number; peakMiB: number; output: string } {
  try {
    const started = performance.now();
    const result = execFileSync('/bin/sh', ['-c', `/usr/bin/time -f PEAK_RSS_KB=%M ${[process.execPath, cli, ...args].map((a) => `'${a}'`).join(' ')} 2>&1`], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const seconds = (performance.now() - started) / 1000;
    const kb = Number(/PEAK_RSS_KB=(\d+)/.exec(result)?.[1] ?? NaN);
    return { seconds, peakMiB: kb / 1024, output: result };
  } catch (error) {
    throw new Error(`${args.slice(0, 2).join(' ')} failed: ${(error as { stdout?: string }).stdout ?? (error as Error).message}`);
  }
}

mkdirSync(dir, { recursive: true });
const corpus = join(dir, 'corpus.jsonl');
const shards = join(dir, 'shards');
let t = performance.now();
const made = existsSync(corpus) && statSync(corpus).size >= gb * 1e9 ? { documents: NaN, bytes: statSync(corpus).size } : generateCorpus(corpus, gb * 1e9);
console.log(`corpus ${corpus}: ${(made.bytes / 1e9).toFixed(2)} GB${Number.isNaN(made.documents) ? ' (reused)' : `, ${made.documents.toLocaleString('en-US')} documents, generated in ${((performance.now() - t) / 1000).toFixed(0)} s`}`);

rmSync(shards, { recursive: true, force: true });
const shard = timedWithRss(['data', 'shard', corpus, '--out', shards, '--tokenizer', tokenizer, '--workers', 'auto']);
console.log(shard.output.trim().split('\n').filter((l) => !l.startsWith('PEAK_RSS')).join('\n'));
console.log(`data shard: ${shard.seconds.toFixed(0)} s, peak RSS ${shard.peakMiB.toFixed(0)} MiB`);

rmSync(join(dir, 'streaming'), { recursive: true, force: true });
const train = timedWithRss(['train', '--data-shards', shards, '--name', 'streaming', '--out-dir', dir, '--max-steps', String(steps), '--max-time', 'none', '--eval-interval', String(Math.max(1, Math.floor(steps / 2))), '--sample-tokens', '0']);
const lines = train.output.trim().split('\n');
console.log(lines.filter((l) => /^(training|batch|finished|validation|step \d+:)/.test(l)).join('\n'));
console.log(`train --data-shards: ${train.seconds.toFixed(0)} s, peak RSS ${train.peakMiB.toFixed(0)} MiB (shards on disk: ${(dirBytes(shards) / 1e9).toFixed(2)} GB)`);

function dirBytes(path: string): number {
  return execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t').map(Number)[0];
}
