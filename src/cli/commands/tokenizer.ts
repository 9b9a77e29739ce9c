import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { loadText } from '../../data/resolve.js';
import { BPETokenizer } from '../../tokenizers/bpe.js';
import { CharTokenizer } from '../../tokenizers/char.js';
import { loadTokenizer } from '../../tokenizers/load.js';

function parseVocabSize(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** `--special-tokens a,b --special-tokens c` → [a, b, c]. */
function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').filter((s) => s.length > 0)];
}

/** Ids given as separate arguments, comma-separated, or as one JSON array. */
function parseIds(args: readonly string[]): number[] {
  const joined = args.join(' ').trim();
  let parts: string[];
  if (joined.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(joined);
    } catch {
      throw new Error(`decode: ${JSON.stringify(joined)} is not a JSON array of ids`);
    }
    if (!Array.isArray(parsed)) throw new Error(`decode: ${JSON.stringify(joined)} is not a JSON array of ids`);
    parts = parsed.map(String);
  } else {
    parts = joined.split(/[\s,]+/).filter((s) => s.length > 0);
  }
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) throw new Error(`decode: ${JSON.stringify(p)} is not a token id (a non-negative integer)`);
    return n;
  });
}

function readStdin(): string {
  return readFileSync(0, 'utf8');
}

interface TrainFlags {
  data: string;
  dataDir?: string;
  vocabSize?: number;
  out: string;
  specialTokens?: string[];
  type: string;
}

/** `tensorlm tokenizer train|encode|decode`. */
export function registerTokenizerCommands(program: Command): void {
  const tokenizer = program.command('tokenizer').description('train a tokenizer, or encode and decode with one');

  tokenizer
    .command('train')
    .description('train a tokenizer on a text file, a directory of .txt files, or a named dataset (tinyshakespeare)')
    .requiredOption('--data <file|dir|name>', 'training text: a path or a dataset name')
    .requiredOption('--out <path>', 'where to write the tokenizer JSON')
    .option('--vocab-size <n>', 'vocabulary size for BPE (256 bytes + merges + special tokens)', parseVocabSize)
    .option('--special-tokens <list>', 'comma-separated special tokens, e.g. "<|endoftext|>" (repeatable)', collectList)
    .option('--type <bpe|char>', 'tokenizer kind', 'bpe')
    .option('--data-dir <dir>', 'where named datasets are cached (default: $TENSORLM_DATA_DIR or ~/.cache/tensorlm)')
    .action(async (flags: TrainFlags) => {
      const text = await loadText(flags.data, { dataDir: flags.dataDir, log: (m) => console.error(m) });
      const bytes = Buffer.byteLength(text, 'utf8');
      const start = performance.now();
      let summary: string;
      if (flags.type === 'bpe') {
        if (flags.vocabSize === undefined) throw new Error('tokenizer train: --vocab-size is required for BPE');
        const tok = BPETokenizer.train(text, { vocabSize: flags.vocabSize, specialTokens: flags.specialTokens ?? [] });
        const seconds = (performance.now() - start) / 1000;
        tok.save(flags.out);
        const specials = Object.keys(tok.specialTokens).length;
        summary =
          `trained BPE tokenizer: vocab ${tok.vocabSize} (256 bytes + ${tok.numMerges} merges + ${specials} special) ` +
          `on ${bytes.toLocaleString('en-US')} bytes in ${seconds.toFixed(2)} s`;
      } else if (flags.type === 'char') {
        const tok = CharTokenizer.fromText(text, { specialTokens: flags.specialTokens ?? [] });
        const seconds = (performance.now() - start) / 1000;
        tok.save(flags.out);
        const specials = Object.keys(tok.specialTokens).length;
        const parts = specials > 0 ? ` (${tok.chars.length} characters + ${specials} special)` : '';
        summary = `built character tokenizer: vocab ${tok.vocabSize}${parts} on ${bytes.toLocaleString('en-US')} bytes in ${seconds.toFixed(2)} s`;
      } else {
        throw new Error(`tokenizer train: unknown --type ${JSON.stringify(flags.type)} (expected bpe or char)`);
      }
      console.log(`${summary} → ${flags.out}`);
    });

  tokenizer
    .command('encode')
    .description('print the token ids of a text (read from stdin when no text is given)')
    .requiredOption('--tokenizer <path>', 'tokenizer JSON file')
    .option('--format <json|plain>', 'a JSON array, or ids separated by spaces', 'json')
    .argument('[text]', 'text to encode')
    .action((text: string | undefined, flags: { tokenizer: string; format: string }) => {
      if (flags.format !== 'json' && flags.format !== 'plain') throw new Error(`tokenizer encode: unknown --format ${JSON.stringify(flags.format)} (expected json or plain)`);
      const ids = loadTokenizer(flags.tokenizer).encode(text ?? readStdin());
      console.log(flags.format === 'json' ? JSON.stringify(ids) : ids.join(' '));
    });

  tokenizer
    .command('decode')
    .description('print the text of token ids (separate arguments, comma-separated, or a JSON array)')
    .requiredOption('--tokenizer <path>', 'tokenizer JSON file')
    .argument('<ids...>', 'token ids')
    .action((ids: string[], flags: { tokenizer: string }) => {
      process.stdout.write(`${loadTokenizer(flags.tokenizer).decode(parseIds(ids))}\n`);
    });
}
