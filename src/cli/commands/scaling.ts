/** `tensorlm scaling fit`: Chinchilla approaches 3 and 2 on a CSV of runs (docs/scaling.md). */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { nonNegativeInt, positiveNumber } from '../args.js';
import Table from 'cli-table3';
import { writeFileAtomic } from '../../data/files.js';
import type { Interval } from '../../scaling/chinchilla.js';
import { writeScalingPlots } from '../../scaling/plot.js';
import { runScalingFit, type Approach, type ScalingReport } from '../../scaling/report.js';
import { runSweepWorker, sweepCsv, sweepRows, sweepStudies, type SweepInput } from '../../scaling/sweep.js';
import { openStorage } from '../../tune/storage/index.js';
import type { TrainConfig } from '../../train/config.js';
import { readFileSync } from 'node:fs';
import { dataDirEnv } from '../../env.js';

function startsOption(value: string): 'full' | number {
  if (value === 'full') return 'full';
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`--bootstrap-starts must be 'full' or a non-negative integer, got '${value}'`);
  return n;
}
function budgetList(value: string): number[] {
  const budgets = value.split(',').map((s) => s.trim());
  return budgets.map((s) => {
    const n = Number(s);
    if (s === '' || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`--budgets must be comma-separated positive FLOP counts, got '${s}' in '${value}'`);
    return n;
  });
}
function level(value: string): number {
  const n = Number(value);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`--level must be in (0, 1), got '${value}'`);
  return n;
}

interface FitFlags {
  csv: string;
  nCol?: string;
  dCol?: string;
  cCol?: string;
  lossCol?: string;
  dropHighest: number;
  bootstrap: number;
  bootstrapStarts: 'full' | number;
  level: number;
  seed: number;
  compute?: number;
  approach: Approach;
  budgets?: number[];
  budgetTolerance: number;
  out?: string;
  json?: boolean;
}

const sci = (v: number, digits = 3) => v.toPrecision(digits).replace(/e\+?/, 'e');
/** Fixed-point for moderate magnitudes, scientific otherwise. */
function num(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return '–';
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e6 || a < 1e-3) ? sci(v, digits) : String(Number(v.toPrecision(digits)));
}
function range(i: Interval | null | undefined, digits = 4): string {
  return i ? `[${num(i.lower, digits)}, ${num(i.upper, digits)}]` : '–';
}

function plainTable(head: string[]): Table.Table {
  // No colour codes: the output is read by people and by tests alike.
  return new Table({ head, style: { head: [], border: [], compact: true } });
}

function formatReport(r: ScalingReport): string {
  const lines: string[] = [];
  const cols = r.columns;
  const colText = [`N='${cols.N}'`, cols.D !== null ? `D='${cols.D}'` : 'D = C/(6N)', cols.C !== null ? `C='${cols.C}'` : 'C = 6ND', `loss='${cols.loss}'`].join(', ');
  lines.push(`${r.runs} runs from ${r.source}${r.format === 'tensorlm-sweep' ? ' (tensorlm sweep format)' : ''}; columns ${colText}`);
  if (r.dropped.length > 0) lines.push(`dropped the ${r.dropped.length} highest-loss runs (loss ${r.dropped.map((d) => num(d.loss)).join(', ')})`);

  const a3 = r.approach3;
  if (a3 !== null) {
    const bs = a3.bootstrap;
    lines.push('', `Approach 3: L(N, D) = E + A/N^α + B/D^β  (Huber δ=${a3.delta}, L-BFGS from ${a3.starts} starts, ${a3.startsAtBest} reached the best objective ${sci(a3.objective, 6)}; ${a3.seconds.toFixed(1)} s)`);
    const t = plainTable(['', 'estimate', bs ? `${Math.round(bs.level * 100)}% interval` : 'interval']);
    const rows: [string, number, Interval | undefined][] = [
      ['E', a3.E, bs?.E],
      ['A', a3.A, bs?.A],
      ['B', a3.B, bs?.B],
      ['α (alpha)', a3.alpha, bs?.alpha],
      ['β (beta)', a3.beta, bs?.beta],
    ];
    for (const [name, v, i] of rows) t.push([name, num(v), range(i)]);
    lines.push(t.toString());
    for (const warning of a3.warnings) lines.push(`warning: ${warning}`);
    if (bs) lines.push(`bootstrap: ${bs.resamples} resamples of the runs (seed ${bs.seed}), percentile intervals; starts per resample: ${bs.startSet}; ${bs.seconds.toFixed(1)} s`);
    else lines.push('no intervals (--bootstrap 0)');
    if (a3.computeOptimal !== null) {
      const o = a3.computeOptimal;
      const ci = bs?.compute[0];
      lines.push('', `Compute-optimal allocation at C = ${sci(o.C)} FLOPs (C = 6ND; N ∝ C^${num(o.a, 3)}, D ∝ C^${num(o.b, 3)}; predicted loss ${num(o.loss)})`);
      const c = plainTable(['', 'estimate', bs ? `${Math.round(bs.level * 100)}% interval` : 'interval']);
      c.push(['N_opt (parameters)', sci(o.N), range(ci?.N, 3)], ['D_opt (tokens)', sci(o.D), range(ci?.D, 3)], ['tokens per parameter', num(o.tokensPerParameter, 3), range(ci?.tokensPerParameter, 3)]);
      lines.push(c.toString());
      if (ci && ci.excluded > 0) lines.push(`(${ci.excluded} resamples had α or β ≤ 0 and no allocation; left out of these intervals)`);
    } else if (a3.computeOptimalError !== null) lines.push(`no compute-optimal allocation: ${a3.computeOptimalError}`);
    else lines.push('(give --compute <FLOPs> for the compute-optimal N, D and tokens per parameter)');
  }

  const a2 = r.approach2;
  if (a2 !== null) {
    const kept = a2.budgets.filter((b) => b.skipped === null).length;
    lines.push('', `Approach 2: IsoFLOP parabolas in ln N (${a2.grouping}); ${a2.budgets.length} budgets, ${kept} with a minimum${a2.unassigned > 0 ? `, ${a2.unassigned} runs matched no budget` : ''}`);
    const t = plainTable(['budget C', 'runs', 'N_opt', 'D_opt', 'note']);
    for (const b of a2.budgets) {
      t.push([sci(b.C), b.runs, b.Nopt === null ? '–' : sci(b.Nopt), b.Dopt === null ? '–' : sci(b.Dopt), b.skipped !== null ? `skipped: ${b.skipped}` : b.extrapolated ? 'minimum outside the sampled N (extrapolated)' : '']);
    }
    lines.push(t.toString());
    if (a2.N !== null && a2.D !== null) {
      const e = plainTable(['', 'exponent', 'std. error', 'k', 'R²', 'budgets']);
      e.push(['N_opt = k·C^a', num(a2.N.exponent), num(a2.N.exponentStdErr, 2), sci(a2.N.k), num(a2.N.r2, 3), a2.N.budgets]);
      e.push(['D_opt = k·C^b', num(a2.D.exponent), num(a2.D.exponentStdErr, 2), sci(a2.D.k), num(a2.D.r2, 3), a2.D.budgets]);
      lines.push(e.toString());
    } else lines.push(`no approach 2 exponents: ${a2.reason}`);
  }
  return lines.join('\n');
}

/** `tensorlm scaling fit ...` (a `scaling sweep` subcommand is added elsewhere). */
export function registerScalingCommands(program: Command): void {
  const scaling = program.commands.find((c) => c.name() === 'scaling') ?? program.command('scaling').description('scaling laws: fit Chinchilla-style laws to training runs');
  scaling
    .command('fit')
    .description('fit L(N, D) = E + A/N^α + B/D^β (Chinchilla approach 3, bootstrap intervals) and IsoFLOP parabolas (approach 2) to a CSV of runs')
    .requiredOption('--csv <path>', "runs CSV: columns for N, loss and D and/or C (or the sweep format 'N,N_with_embeddings,D,C,loss')")
    .option('--n-col <name>', "parameter-count column (default: auto-detect N, params, 'Model Size', ...)")
    .option('--d-col <name>', 'training-tokens column (default: auto-detect D, tokens, ...; else D = C/(6N))')
    .option('--c-col <name>', "training-FLOPs column (default: auto-detect C, FLOP, 'Training FLOP', ...; else C = 6ND)")
    .option('--loss-col <name>', 'final-loss column (default: auto-detect loss, ...)')
    .option('--drop-highest <k>', 'drop the k highest-loss runs first (Epoch AI drop 5 of Chinchilla\'s)', nonNegativeInt('--drop-highest'), 0)
    .option('--bootstrap <n>', 'bootstrap resamples for the approach 3 intervals (0 = none)', nonNegativeInt('--bootstrap'), 200)
    .option('--bootstrap-starts <k|full>', "L-BFGS starts per resample: the full fit's optimum plus its k best grid starts, or 'full' for all 4,500", startsOption, 20)
    .option('--level <p>', 'coverage of the percentile intervals', level, 0.95)
    .option('--seed <s>', 'seed of the bootstrap resampling', nonNegativeInt('--seed'), 0)
    .option('--compute <FLOPs>', 'training budget for the compute-optimal N, D and tokens per parameter (e.g. 5.9e23)', positiveNumber('--compute'))
    .addOption(new Option('--approach <which>', 'which method(s) to run').choices(['3', '2', 'both']).default('both'))
    .option('--budgets <list>', 'approach 2: comma-separated FLOP budgets to group runs by (default: bucket runs by near-equal C)', budgetList)
    .option('--budget-tolerance <decades>', 'approach 2: max |log10 C − log10 budget| for a run to join a budget', positiveNumber('--budget-tolerance'), 0.05)
    .option('--out <dir>', 'write fit.json and the plots (SVG) to this directory')
    .option('--json', 'print the report as JSON instead of tables')
    .action(async (flags: FitFlags) => {
      const progress = !flags.json && process.stderr.isTTY;
      const { report, table, fit, approach2 } = runScalingFit({
        csv: flags.csv,
        nColumn: flags.nCol,
        dColumn: flags.dCol,
        cColumn: flags.cCol,
        lossColumn: flags.lossCol,
        dropHighest: flags.dropHighest,
        approach: flags.approach,
        bootstrap: flags.bootstrap,
        bootstrapStarts: flags.bootstrapStarts,
        level: flags.level,
        seed: flags.seed,
        compute: flags.compute,
        budgets: flags.budgets,
        budgetTolerance: flags.budgetTolerance,
        onProgress: progress ? (done, total) => process.stderr.write(`\rbootstrap ${done}/${total}${done === total ? '\n' : ''}`) : undefined,
      });
      const written: string[] = [];
      if (flags.out !== undefined) {
        mkdirSync(flags.out, { recursive: true });
        written.push(...(await writeScalingPlots(flags.out, { points: table.runs, law: fit ?? undefined, approach2: approach2 ?? undefined, compute: flags.compute })));
        const jsonPath = join(flags.out, 'fit.json');
        writeFileAtomic(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
        written.push(jsonPath);
      }
      if (flags.json) {
        console.log(JSON.stringify(report, null, 2));
        for (const warning of report.approach3?.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
      }
      else {
        console.log(formatReport(report));
        if (written.length > 0) console.log(`\nwrote ${written.join(', ')}`);
      }
    });

  scaling
    .command('sweep')
    .description('train a grid of model sizes × token budgets (tuning studies with a grid sampler; start several to share the work) and write the runs as the CSV that `scaling fit` reads')
    .option('--name <name>', 'sweep name: the studies are <name>-d<tokens>', 'sweep')
    .option('--storage <path|url>', 'SQLite file or postgresql:// URL of the studies (default: runs/scaling/<name>.sqlite)')
    .option('--widths <list>', 'model widths (dModel); dFF keeps the preset ratio', intList('--widths'), [32, 64, 128])
    .option('--layers <list>', 'transformer layers', intList('--layers'), [1, 2])
    .option('--tokens <list>', 'training tokens per run, one study each (e.g. 5e4,1.5e5,4.5e5)', intList('--tokens'), [50_000, 150_000, 450_000])
    .option('--config <file>', 'base train config JSON of every run (preset, data, batch, block, lr, ...)')
    .option('--data-dir <dir>', 'cache directory for named datasets on this machine')
    .option('--out <dir>', 'runs and results directory (scaling.csv, sweep.json)')
    .option('--export', 'only collect the finished runs into the CSV; train nothing')
    .action(async (flags: SweepFlags) => {
      const base: Partial<TrainConfig> = flags.config ? (JSON.parse(readFileSync(flags.config, 'utf8')) as Partial<TrainConfig>) : {};
      const input: SweepInput = { name: flags.name, widths: flags.widths, layers: flags.layers, tokens: flags.tokens, base };
      const studies = sweepStudies(input);
      const out = flags.out ?? join('runs', 'scaling', flags.name);
      const storage = openStorage(flags.storage ?? join('runs', 'scaling', `${flags.name}.sqlite`));
      const dataDir = flags.dataDir ?? dataDirEnv();
      try {
        if (!flags.export) {
          console.log(`sweep '${flags.name}': ${studies.length} token budgets × ${studies[0].trials} model sizes in ${storage.location}`);
          const stop = { requested: false };
          const onSignal = (signal: NodeJS.Signals) => {
            if (stop.requested) process.exit(signal === 'SIGTERM' ? 143 : 130);
            stop.requested = true;
            process.stderr.write('\nstopping after this step; the running run goes back to the queue (continue with the same command)\n');
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          try {
            await runSweepWorker(storage, input, { outDir: out, dataDir, stop, log: (line) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`) });
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
        }
        const rows = await sweepRows(storage, input, { dataDir });
        mkdirSync(out, { recursive: true });
        writeFileAtomic(join(out, 'scaling.csv'), sweepCsv(rows));
        writeFileAtomic(join(out, 'sweep.json'), `${JSON.stringify(rows, null, 2)}\n`);
        const t = plainTable(['dModel', 'layers', 'N (no emb.)', 'N (all)', 'D tokens', 'C = 6ND', 'val loss']);
        for (const r of rows) t.push([r.dModel, r.nLayers, r.N, r.N_with_embeddings, r.D, r.C.toExponential(2), r.loss.toFixed(4)]);
        console.log(t.toString());
        console.log(`${rows.length} finished runs → ${join(out, 'scaling.csv')}; fit with: tensorlm scaling fit --csv ${join(out, 'scaling.csv')}`);
      } finally {
        await storage.close();
      }
    });
}

interface SweepFlags {
  name: string;
  storage?: string;
  widths: number[];
  layers: number[];
  tokens: number[];
  config?: string;
  dataDir?: string;
  out?: string;
  export?: boolean;
}

function intList(flag: string) {
  return (value: string): number[] => {
    const list = value.split(',').map((v) => Number(v.trim()));
    if (list.length === 0 || list.some((v) => !Number.isInteger(v) || v <= 0)) throw new InvalidArgumentError(`${flag} takes comma-separated positive integers (e.g. 32,64,128 or 5e4,1.5e5), got '${value}'`);
    return list;
  };
}
