/**
 * The seed corpus: one valid file of every format, made at start by the library itself — a tiny
 * model trained for a few steps (its run directory gives the checkpoint, config.json and a char
 * tokenizer), a char tokenizer with unk and a special token, a small trained byte-level BPE, and
 * a scaling sweep CSV in the `tensorlm-sweep` layout.
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Corpus {
  dir: string;
  /** A complete run directory (config.json, tokenizer.json: the char tokenizer, best.safetensors). */
  runDir: string;
  /** The same for a run trained with the byte-level BPE tokenizer. */
  runBpeDir: string;
  /** A training config file, as `tensorlm train --config` reads it. */
  configFile: string;
  charTokenizer: string;
  bpeTokenizer: string;
  csv: string;
}

const TEXT =
  'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n' +
  'First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n' +
  'To be, or not to be: that is the question. 1234 5678!\n';

export function corpusPaths(dir: string): Corpus {
  return {
    dir,
    runDir: join(dir, 'run'),
    runBpeDir: join(dir, 'run-bpe'),
    configFile: join(dir, 'train-config.json'),
    charTokenizer: join(dir, 'char-tokenizer.json'),
    bpeTokenizer: join(dir, 'bpe-tokenizer.json'),
    csv: join(dir, 'sweep.csv'),
  };
}

/** The sweep CSV: N,N_with_embeddings,D,C,loss with C = 6ND and a Chinchilla-like loss. */
export function sweepCsv(): string {
  const lines = ['N,N_with_embeddings,D,C,loss'];
  for (const N of [1e5, 3e5, 1e6, 3e6]) {
    for (const D of [2e6, 2e7, 2e8]) {
      const loss = 1.69 + 406.4 / N ** 0.34 + 410.7 / D ** 0.28;
      lines.push([N, N + 4096, D, 6 * N * D, loss.toFixed(5)].map(String).join(','));
    }
  }
  return lines.join('\n') + '\n';
}

/** The seed of the config-file format: what a user writes for `tensorlm train --config`. */
export const TRAIN_CONFIG_FILE = {
  name: 'shakespeare-tiny',
  data: 'text.txt',
  tokenizer: 'char',
  preset: 'tiny',
  batchSize: 2,
  blockSize: 8,
  maxSteps: 300,
  maxTime: '10m',
  lr: 0.003,
  warmupSteps: 10,
  model: { dModel: 16, nLayers: 1, nHeads: 2 },
};

/** Builds the corpus in `dir` (created if needed); idempotent. */
export async function buildCorpus(dir: string): Promise<Corpus> {
  const c = corpusPaths(dir);
  if (existsSync(join(dir, 'done'))) return c;
  mkdirSync(dir, { recursive: true });
  await import('../../../src/index.js');
  const { train } = await import('../../../src/train/trainer.js');
  const { CharTokenizer } = await import('../../../src/tokenizers/char.js');
  const { BPETokenizer } = await import('../../../src/tokenizers/bpe.js');

  const textFile = join(dir, 'text.txt');
  writeFileSync(textFile, TEXT.repeat(8));
  // The tokenizers first: the runs are trained with them, so each run's tokenizer.json is one of
  // them (the tokenizer formats are fuzzed where the product reads them, in a run directory).
  CharTokenizer.fromText(TEXT, { unk: '\u2047', specialTokens: ['<|eot|>'] }).save(c.charTokenizer);
  BPETokenizer.train(TEXT.repeat(4), { vocabSize: 256 + 48 + 1, specialTokens: ['<|endoftext|>'] }).save(c.bpeTokenizer);
  for (const [name, tokenizer] of [
    ['run', c.charTokenizer],
    ['run-bpe', c.bpeTokenizer],
  ] as const) {
    await train(
      {
        name,
        outDir: dir,
        data: textFile,
        tokenizer,
        preset: 'tiny',
        // Small and with tied weights (an alias in the checkpoint) and two heads.
        model: { dModel: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 32, maxSeqLen: 16 },
        batchSize: 2,
        blockSize: 8,
        maxSteps: 3,
        maxTime: null,
        evalInterval: 2,
        evalIters: 1,
        logInterval: 1,
        sampleTokens: 0,
        warmupSteps: 1,
      },
      {},
    );
    const runDir = join(dir, name);
    if (!existsSync(join(runDir, 'best.safetensors'))) copyFileSync(join(runDir, 'latest.safetensors'), join(runDir, 'best.safetensors'));
  }
  writeFileSync(c.configFile, `${JSON.stringify(TRAIN_CONFIG_FILE, null, 2)}\n`);
  writeFileSync(c.csv, sweepCsv());
  writeFileSync(join(dir, 'done'), '');
  return c;
}
