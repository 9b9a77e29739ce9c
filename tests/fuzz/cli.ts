/**
 * `npm run fuzz -- --format checkpoint|tokenizer-char|tokenizer-bpe|config|csv|all --cases N
 *  --seed S [--cases-for tokenizer-bpe=3000,…] [--report docs/reliability.md] [--only 12,40] [--time-limit 5000] [--concurrency 2]`
 *
 * Prints a table of outcomes per format and, for every defect class (hang, crash, unclear error,
 * silent change), examples with their case index, mutation and message. Exits 1 when any case is
 * a defect.
 */
import { FORMATS, type Format } from './lib/mutators.js';
import { CLEAN_OUTCOMES } from './lib/protocol.js';
import { examplesText, outcomeTable, writeReport } from './lib/report.js';
import { runFuzz } from './lib/runner.js';

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a === '--help' || a === '--verbose') out[a.slice(2)] = 'true';
    else out[a.slice(2)] = argv[++i] ?? '';
  }
  return out;
}

function positiveInt(s: string | undefined, name: string, fallback: number): number {
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${s}'`);
  return n;
}

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  console.log('usage: npm run fuzz -- [--format all|' + FORMATS.join('|') + '] [--cases 300] [--cases-for format=N,…] [--seed 1] [--report docs/reliability.md] [--only i,j] [--time-limit 5000] [--concurrency 2] [--heap-mb 1024] [--rss-mb 2048] [--verbose]');
  process.exit(0);
}
const formatArg = args.format ?? 'all';
const formats: Format[] = formatArg === 'all' ? [...FORMATS] : formatArg.split(',').map((f) => {
  if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`--format: unknown format '${f}' (${FORMATS.join(', ')}, all)`);
  return f as Format;
});
const cases = positiveInt(args.cases, 'cases', 300);
const seed = positiveInt(args.seed, 'seed', 1);
const casesFor: Partial<Record<Format, number>> = {};
for (const item of (args['cases-for'] ?? '').split(',').filter(Boolean)) {
  const [f, n] = item.split('=');
  if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`--cases-for: unknown format '${f}'`);
  casesFor[f as Format] = positiveInt(n, 'cases-for', cases);
}
const only = args.only ? args.only.split(',').map((s) => positiveInt(s, 'only', 0)) : undefined;

let done = 0;
const t0 = Date.now();
const reports = await runFuzz({
  formats,
  cases,
  casesFor,
  seed,
  only,
  timeLimitMs: positiveInt(args['time-limit'], 'time-limit', 5000),
  concurrency: positiveInt(args.concurrency, 'concurrency', 2),
  heapMb: positiveInt(args['heap-mb'], 'heap-mb', 1024),
  rssMb: positiveInt(args['rss-mb'], 'rss-mb', 2048),
  onCase: (r) => {
    done++;
    if (args.verbose) console.log(`${r.format} #${r.index} ${r.outcome} [${r.kind}] ${r.desc}${r.message ? ` → ${r.message.slice(0, 300)}` : ''}${r.note ? ` (${r.note.slice(0, 300)})` : ''}`);
    else if (done % 100 === 0) process.stderr.write(`  ${done} cases (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  },
});

console.log(`\nTensorLM fuzz: seed ${seed}, ${only ? `cases ${only.join(',')}` : `${cases} cases per format`}\n`);
console.log(outcomeTable(reports, false));
const examples = examplesText(reports, 3);
if (examples) console.log(examples);
if (args.report) {
  const command = `npm run fuzz -- --format ${formatArg} --cases ${cases}${args['cases-for'] ? ` --cases-for ${args['cases-for']}` : ''} --seed ${seed}`;
  writeReport(args.report, reports, { seed, cases, command, date: new Date().toISOString().slice(0, 10) });
  console.log(`\nwrote ${args.report}`);
}
const defects = reports.reduce((s, r) => s + r.results.filter((c) => !CLEAN_OUTCOMES.includes(c.outcome)).length, 0);
process.exit(defects > 0 ? 1 : 0);
