/**
 * `tensorlm data …`: preparing training data at scale. `prepare` cleans and deduplicates documents
 * (src/data/prepare/, docs/data.md); further subcommands hang off the same `data` command.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Table from 'cli-table3';
import { InvalidArgumentError, type Command } from 'commander';
import { writeFileAtomic } from '../../data/files.js';
import { checkRuleNames, defaultQualityRules, loadQualityRules, setRulesEnabled } from '../../data/prepare/filters.js';
import { parseLanguageList } from '../../data/prepare/language.js';
import { prepare, type DedupMode, type PrepareReport } from '../../data/prepare/prepare.js';
import { positiveInt } from '../args.js';
import { registerShardCommand } from './data-shard.js';

interface PrepareFlags {
  out: string;
  textField: string;
  html?: boolean;
  lang?: string;
  skipRules?: string;
  enableRules?: string;
  rules?: string;
  dedup: string;
  jaccard: number;
  numPerm: number;
  shingleSize: number;
  seed: number;
}

function openInterval(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !(n > 0 && n < 1)) throw new InvalidArgumentError(`${flag} must be a number in (0, 1), got '${value}'`);
    return n;
  };
}

function integer(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} must be an integer, got '${value}'`);
    return n;
  };
}

function ruleList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

const bytesFormat = new Intl.NumberFormat('en-US');

function percent(part: number, whole: number): string {
  return whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** The report as a table: one row per stage, then the line removals and the totals. */
export function formatPrepareReport(report: PrepareReport): string {
  // No colour codes: the output is read by people and by tests alike.
  const table = new Table({ head: ['stage', 'documents', '% of input', 'bytes'], style: { head: [], border: [], compact: true } });
  table.push(['input', bytesFormat.format(report.input.documents), '', bytesFormat.format(report.input.bytes)]);
  for (const [stage, count] of Object.entries(report.removed)) {
    if (!count) continue;
    table.push([`− ${stage}`, bytesFormat.format(count.documents), percent(count.documents, report.input.documents), bytesFormat.format(count.bytes)]);
  }
  table.push(['kept', bytesFormat.format(report.kept.documents), percent(report.kept.documents, report.input.documents), bytesFormat.format(report.kept.bytes)]);
  const lines = [table.toString()];
  for (const [rule, removed] of Object.entries(report.linesRemoved)) {
    if (removed) lines.push(`lines removed by ${rule}: ${bytesFormat.format(removed.lines)} (${bytesFormat.format(removed.bytes)} bytes)`);
  }
  const d = report.dedup;
  if (d.mode === 'near') lines.push(`near dedup: Jaccard ≥ ${d.jaccard}, ${d.numPerm} permutations as ${d.bands} bands × ${d.rows} rows, word ${d.shingleSize}-grams, seed ${d.seed}`);
  lines.push(`${report.files} files read in ${report.seconds.toFixed(2)} s`);
  return lines.join('\n');
}

function registerPrepareCommand(data: Command): void {
  data
    .command('prepare')
    .description('clean and deduplicate documents: normalise, HTML to text, language and quality filters, exact and near (MinHash) dedup')
    .argument('<inputs...>', 'files (.txt .md .html .htm .jsonl), directories (recursive) or globs')
    .requiredOption('--out <dir>', 'output directory: documents.jsonl and report.json are written there')
    .option('--text-field <name>', 'JSONL field holding the text', 'text')
    .option('--html', 'treat the text of JSONL documents as HTML (.html/.htm files always are)')
    .option('--lang <codes>', 'keep only these languages (ISO 639-3, comma-separated, e.g. eng,fra); undetermined never passes')
    .option('--skip-rules <names>', 'comma-separated quality rules to switch off (docs/data.md lists them)')
    .option('--enable-rules <names>', 'comma-separated quality rules to switch on (e.g. terminal-punctuation)')
    .option('--rules <file>', 'JSON file of rule settings over the defaults, e.g. {"word-count": {"min": 20}}')
    .option('--dedup <mode>', "deduplication: 'near' (exact, then MinHash), 'exact' or 'none'", 'near')
    .option('--jaccard <t>', 'near dedup: drop a document whose estimated Jaccard similarity with a kept one is at least t', openInterval('--jaccard'), 0.8)
    .option('--num-perm <n>', 'near dedup: MinHash permutations (signature length)', positiveInt('--num-perm'), 128)
    .option('--shingle-size <n>', 'near dedup: words per shingle', positiveInt('--shingle-size'), 5)
    .option('--seed <n>', 'near dedup: seed of the MinHash functions', integer('--seed'), 1)
    .action(async (inputs: string[], flags: PrepareFlags) => {
      if (flags.dedup !== 'near' && flags.dedup !== 'exact' && flags.dedup !== 'none') throw new Error(`--dedup must be 'near', 'exact' or 'none', got '${flags.dedup}'`);
      let rules = flags.rules ? loadQualityRules(flags.rules) : defaultQualityRules();
      rules = setRulesEnabled(rules, checkRuleNames(ruleList(flags.enableRules), '--enable-rules'), true);
      rules = setRulesEnabled(rules, checkRuleNames(ruleList(flags.skipRules), '--skip-rules'), false);
      const languages = flags.lang === undefined ? undefined : parseLanguageList(flags.lang);
      mkdirSync(flags.out, { recursive: true });
      const output = join(flags.out, 'documents.jsonl');
      const report = await prepare({
        inputs,
        output,
        textField: flags.textField,
        jsonlHtml: flags.html ?? false,
        languages,
        rules,
        dedup: flags.dedup as DedupMode,
        jaccard: flags.jaccard,
        numPerm: flags.numPerm,
        shingleSize: flags.shingleSize,
        seed: flags.seed,
        onProgress: process.stderr.isTTY ? (r) => process.stderr.write(`\r${r.input.documents} documents read, ${r.kept.documents} kept`) : undefined,
      });
      if (process.stderr.isTTY && report.input.documents >= 10_000) process.stderr.write('\n');
      const reportPath = join(flags.out, 'report.json');
      writeFileAtomic(reportPath, JSON.stringify(report, null, 2) + '\n');
      console.log(formatPrepareReport(report));
      console.log(`wrote ${output} and ${reportPath}`);
    });
}

/** `tensorlm data prepare` (and the data subcommands to come). */
export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('prepare training data: clean and deduplicate documents, tokenize them into shards');
  registerPrepareCommand(data);
  registerShardCommand(data);
}
