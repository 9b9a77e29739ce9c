/**
 * `tensorlm data shard`: documents (the JSONL that `data prepare` writes, or any text, HTML and
 * JSONL inputs) → token shards that `tensorlm train --data-shards` streams from. Encoding runs on
 * worker threads; documents go to train or val whole (docs/data.md, "Token shards").
 */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError, type Command } from 'commander';
import { expandInputs, readDocuments } from '../../data/prepare/sources.js';
import { htmlToPlainText } from '../../data/prepare/html.js';
import { DEFAULT_SHARD_TOKENS, writeShardsFromDocuments } from '../../data/shards.js';
import { CharTokenizer } from '../../tokenizers/char.js';
import { loadTokenizer } from '../../tokenizers/load.js';
import { encodeDocuments } from '../../tokenizers/parallel.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { fraction, positiveInt } from '../args.js';
import { formatSeconds } from '../progress.js';

/** The separator documents end with: the end-of-text token when the tokenizer has one (GPT-2's convention). */
const END_OF_TEXT = '<|endoftext|>';

interface ShardFlags {
  out: string;
  tokenizer: string;
  valFraction: number;
  shardTokens: number;
  workers: number | 'auto';
  textField: string;
  overwrite: boolean;
}

async function* documentTexts(files: readonly string[], textField: string): AsyncGenerator<string> {
  for await (const doc of readDocuments(files, { textField })) yield doc.html ? htmlToPlainText(doc.text) : doc.text;
}

/** 'char' needs a vocabulary: the characters of every document (one pass before encoding). */
async function openTokenizer(spec: string, files: readonly string[], textField: string): Promise<Tokenizer> {
  if (spec !== 'char') return loadTokenizer(spec);
  const seen = new Set<string>();
  for await (const text of documentTexts(files, textField)) for (const ch of text) seen.add(ch);
  seen.add('\n');
  return CharTokenizer.fromText([...seen].join(''));
}

async function runShard(inputs: string[], flags: ShardFlags): Promise<void> {
  const started = performance.now();
  const files = await expandInputs(inputs);
  const tokenizer = await openTokenizer(flags.tokenizer, files, flags.textField);
  const eot = tokenizer.specialTokens[END_OF_TEXT];
  const separatorIds = eot !== undefined ? [eot] : Array.from(tokenizer.encode('\n\n', { allowSpecial: false }));
  const workers = flags.workers === 'auto' ? Math.min(8, availableParallelism()) : flags.workers;
  let documents = 0;
  let chars = 0;
  async function* counted(): AsyncGenerator<string> {
    for await (const text of documentTexts(files, flags.textField)) {
      documents++;
      chars += text.length;
      yield text;
    }
  }
  // Document text is data, not markup: special-token text inside it is encoded as plain text.
  const encoded = encodeDocuments(tokenizer, counted(), { workers, allowSpecial: false });
  const manifest = await writeShardsFromDocuments(flags.out, encoded, {
    vocabSize: tokenizer.vocabSize,
    tokenizerJson: JSON.stringify(tokenizer.toJSON()),
    separatorIds,
    separatorName: eot !== undefined ? END_OF_TEXT : '\\n\\n',
    valFraction: flags.valFraction,
    shardTokens: flags.shardTokens,
    overwrite: flags.overwrite,
    source: { inputs, tokenizer: flags.tokenizer, created: new Date().toISOString() },
  });
  const seconds = (performance.now() - started) / 1000;
  const n = (x: number) => x.toLocaleString('en-US');
  console.log(`${n(documents)} documents (${n(chars)} characters) → ${n(manifest.tokens.train)} train / ${n(manifest.tokens.val)} val tokens ` + `(${n(manifest.documents.train)} / ${n(manifest.documents.val)} documents) in ${manifest.files.train.length + manifest.files.val.length} shard files`);
  console.log(`tokenizer ${flags.tokenizer} (vocab ${n(tokenizer.vocabSize)}, ${manifest.dtype}), ${workers} worker${workers === 1 ? '' : 's'}, ${formatSeconds(seconds)} (${(chars / 1e6 / seconds).toFixed(2)} M chars/s)`);
  console.log(`wrote ${flags.out}; train on it with: tensorlm train --data-shards ${flags.out}`);
}

function workersArg(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  return positiveInt('--workers')(value) as number;
}

/** `data shard`, added to the `data` command. */
export function registerShardCommand(data: Command): void {
  data
    .command('shard')
    .description('tokenize documents into token shards for `tensorlm train --data-shards` (train/val split by document)')
    .argument('<inputs...>', 'files, directories or globs: .jsonl (e.g. documents.jsonl from `data prepare`), .txt/.md, .html')
    .requiredOption('--out <dir>', 'the shard directory to write (shards.json, tokenizer.json, train-*.bin, val-*.bin)')
    .option('--tokenizer <char|gpt2|file>', "'char' (vocabulary from the documents), a tiktoken encoding name ('gpt2') or a tokenizer JSON file", 'char')
    .option('--val-fraction <f>', 'fraction of documents for validation (the last of every round(1/f) documents)', fraction('--val-fraction'), 0.1)
    .option('--shard-tokens <n>', 'tokens per shard file', positiveInt('--shard-tokens'), DEFAULT_SHARD_TOKENS)
    .option('--workers <n|auto>', 'encoding worker threads (auto: one per core, at most 8)', workersArg, 'auto' as const)
    .option('--text-field <name>', 'JSONL field holding the text', 'text')
    .option('--overwrite', 'replace an existing shard directory (only once the new one is complete)', false)
    .action(async (inputs: string[], flags: ShardFlags) => {
      if (flags.workers !== 'auto' && !(flags.workers >= 1)) throw new InvalidArgumentError('--workers must be a positive integer or auto');
      await runShard(inputs, flags);
    });
}
