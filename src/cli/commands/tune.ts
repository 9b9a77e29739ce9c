/**
 * `tensorlm tune` (a worker serving a hyperparameter study) and `tensorlm tune show` (its trials,
 * the best config, plots): thin wrappers over src/tune.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveNumber } from '../args.js';
import Table from 'cli-table3';
import { parseDuration, type TrainConfig } from '../../train/config.js';
import { trainObjective, tunedTrainConfig } from '../../tune/objective.js';
import { writeStudyPlots } from '../../tune/plots.js';
import { GridSampler } from '../../tune/samplers.js';
import { parseSearchSpace, type ParamValue, type SearchSpace } from '../../tune/space.js';
import { openStorage, type TuneStorage } from '../../tune/storage/index.js';
import { bestTrial, openStudy, runWorker, workerIdentity, type StudyInput } from '../../tune/study.js';
import type { StudyRecord, TrialRecord } from '../../tune/types.js';
import { dataDirEnv } from '../../env.js';

function integer(flag: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer ≥ ${min}, got '${value}'`);
    return n;
  };
}
function seconds(flag: string) {
  return (value: string): number => {
    try {
      const s = parseDuration(value);
      if (s === null) throw new Error('a duration is required here');
      return s;
    } catch (e) {
      throw new InvalidArgumentError(`${flag}: ${(e as Error).message}`);
    }
  };
}

function readJson(path: string, flag: string): unknown {
  if (!existsSync(path)) throw new Error(`${flag}: file ${path} does not exist`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new Error(`${flag} ${path}: ${(e as Error).message}`);
  }
}

function readSpace(path: string): SearchSpace {
  try {
    return parseSearchSpace(readJson(path, '--space'));
  } catch (e) {
    throw new Error(`--space ${path}: ${(e as Error).message}`);
  }
}

function readBaseConfig(path: string): Partial<TrainConfig> {
  const json = readJson(path, '--config');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`--config ${path}: expected a JSON object of train settings`);
  return json as Partial<TrainConfig>;
}

const defaultStorage = (study: string) => join('runs', 'tune', `${study}.sqlite`);

function requireStudy(opts: Record<string, unknown>): string {
  const study = opts.study as string | undefined;
  if (!study) throw new Error("required option '--study <name>' not specified");
  return study;
}

/** Only what was typed on the command line counts as "given" (and so can conflict with the stored study). */
function studyInput(command: Command, opts: Record<string, unknown>): StudyInput {
  const given = (key: string) => command.getOptionValueSource(key) === 'cli';
  const input: StudyInput = {};
  if (opts.space) input.space = readSpace(opts.space as string);
  if (opts.config) input.base = readBaseConfig(opts.config as string);
  const direct: [string, keyof StudyInput][] = [
    ['sampler', 'sampler'],
    ['startupTrials', 'startupTrials'],
    ['eiCandidates', 'eiCandidates'],
    ['gridPoints', 'gridPoints'],
    ['pruner', 'pruner'],
    ['pruneStartupTrials', 'pruneStartupTrials'],
    ['pruneWarmup', 'pruneWarmup'],
    ['minResource', 'minResource'],
    ['reductionFactor', 'reductionFactor'],
    ['budgetSteps', 'budgetSteps'],
    ['budgetTokens', 'budgetTokens'],
    ['seed', 'seed'],
    ['staleAfter', 'staleAfterSeconds'],
    ['trials', 'trials'],
    ['baseline', 'baseline'],
  ];
  for (const [flag, key] of direct) if (given(flag)) (input as Record<string, unknown>)[key] = opts[flag];
  return input;
}

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

async function runTune(command: Command): Promise<void> {
  const opts = command.opts();
  const name = requireStudy(opts);
  const input = studyInput(command, opts);
  const storage = openStorage((opts.storage as string | undefined) ?? defaultStorage(name));
  try {
    const { study, created, requeued } = await openStudy(storage, name, input, { resume: opts.resume === true });
    const identity = workerIdentity();
    const log = (line: string) => console.log(`${stamp()} [${identity.host}:${identity.pid}] ${line}`);
    const s = study.settings;
    log(
      `${created ? 'created' : 'joined'} study '${name}' in ${storage.location}: ${study.nTrials} trials, sampler ${s.sampler.type}, pruner ${s.pruner.type}, ` +
        `budget ${'steps' in s.budget ? `${s.budget.steps} steps` : `${s.budget.tokens} tokens`} per trial`,
    );
    if (s.sampler.type === 'grid') {
      const points = new GridSampler(s.sampler.gridPoints).size(s.space);
      log(`the grid has ${points} points${points < study.nTrials ? `, fewer than the ${study.nTrials} trials: the study ends when they are used up` : ''}`);
    }
    for (const r of requeued) log(`trial #${r.from} re-queued as #${r.to}: ${r.reason}`);
    const stop = { requested: false };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.requested) process.exit(130);
      stop.requested = true;
      process.stderr.write(`\n${signal}: stopping after this step; the running trial goes back to the queue (${signal === 'SIGINT' ? 'Ctrl-C' : 'signal'} again to quit at once)\n`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const outDir = (opts.outDir as string | undefined) ?? join('runs', 'tune', name);
    try {
      const summary = await runWorker(storage, study, {
        identity,
        outDir,
        stop,
        log,
        maxTrials: opts.maxTrials as number | undefined,
        objective: trainObjective({
          dataDir: (opts.dataDir as string | undefined) ?? dataDirEnv(),
          keepCheckpoints: opts.keepCheckpoints === true,
          onEval: opts.verbose ? (n, r) => log(`trial #${n} step ${r.step}: val loss ${r.valLoss.toFixed(4)}`) : undefined,
        }),
      });
      log(`this worker ran ${summary.ran} trials: ${summary.complete} complete, ${summary.pruned} pruned, ${summary.failed} failed${summary.lost ? `, ${summary.lost} taken over` : ''}`);
      if (summary.interrupted) log(`stopped; continue with: tensorlm tune --study ${name} --storage ${storage.location} --resume`);
      else if (summary.studyDone) {
        const best = bestTrial(await storage.listTrials(study.id));
        log(`study '${name}' is complete${best ? `; best trial #${best.number}: val loss ${(best.value as number).toFixed(4)}` : ''}. See: tensorlm tune show --study ${name} --storage ${storage.location}`);
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } finally {
    await storage.close();
  }
}

function formatParam(v: ParamValue | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'number' && !Number.isInteger(v)) return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  return String(v);
}

function describeTrial(t: TrialRecord): string {
  if (t.state === 'failed') return t.requeuedAs !== null ? `re-queued as #${t.requeuedAs}: ${t.error ?? ''}` : (t.error ?? '');
  const notes: string[] = [];
  if (t.origin === 'baseline') notes.push('baseline');
  if (t.retryOf !== null) notes.push(`re-run of #${t.retryOf}`);
  if (t.state === 'running' && t.worker) notes.push(`on ${t.worker}`);
  return notes.join(', ');
}

function trialsTable(study: StudyRecord, trials: readonly TrialRecord[]): string {
  const keys = Object.keys(study.settings.space);
  const unit = 'steps' in study.settings.budget ? 'step' : 'tokens';
  const table = new Table({ head: ['#', 'state', 'val loss', unit, ...keys, 'time', 'note'], style: { head: [], border: [] } });
  for (const t of trials) {
    const last = t.intermediates.length ? t.intermediates[t.intermediates.length - 1].step : null;
    const time = t.startedAt !== null && t.finishedAt !== null ? `${((t.finishedAt - t.startedAt) / 1000).toFixed(0)}s` : '';
    const note = describeTrial(t);
    table.push([String(t.number), t.state, t.value === null ? '' : t.value.toFixed(4), last === null ? '' : String(last), ...keys.map((k) => formatParam(t.params[k])), time, note.length > 60 ? `${note.slice(0, 57)}…` : note]);
  }
  return table.toString();
}

async function loadStudyOrExplain(storage: TuneStorage, name: string): Promise<StudyRecord> {
  const study = await storage.loadStudy(name);
  if (study) return study;
  const names = (await storage.listStudies()).map((s) => s.name);
  throw new Error(`there is no study '${name}' in ${storage.location}${names.length ? ` (it has: ${names.join(', ')})` : ''}`);
}

async function runShow(command: Command): Promise<void> {
  const opts = command.optsWithGlobals();
  const name = requireStudy(opts);
  const storage = openStorage((opts.storage as string | undefined) ?? defaultStorage(name));
  try {
    const study = await loadStudyOrExplain(storage, name);
    const trials = await storage.listTrials(study.id);
    const best = bestTrial(trials);
    const baseline = trials.find((t) => t.origin === 'baseline' && t.state === 'complete' && t.value !== null) ?? null;
    const bestConfig = best ? tunedTrainConfig(study.settings, best.params, `${name}-best`) : null;
    if (opts.json) {
      console.log(JSON.stringify({ study, trials, best, baseline, bestConfig }, null, 2));
    } else {
      const count = (state: TrialRecord['state']) => trials.filter((t) => t.state === state).length;
      const s = study.settings;
      console.log(`study '${name}' in ${storage.location}`);
      console.log(
        `sampler ${s.sampler.type}, pruner ${s.pruner.type}, budget ${'steps' in s.budget ? `${s.budget.steps} steps` : `${s.budget.tokens} tokens`} per trial, seed ${s.seed}; ` +
          `target ${study.nTrials} trials: ${count('complete')} complete, ${count('pruned')} pruned, ${count('failed')} failed, ${count('running')} running, ${count('waiting')} waiting`,
      );
      console.log(trialsTable(study, trials));
      if (best && bestConfig) {
        const vs = baseline && baseline.id !== best.id ? ` (baseline trial #${baseline.number}: ${(baseline.value as number).toFixed(4)}, ${(100 * (1 - (best.value as number) / (baseline.value as number))).toFixed(1)}% lower)` : '';
        console.log(`best trial #${best.number}: val loss ${(best.value as number).toFixed(4)}${vs}`);
        console.log(`best config (for tensorlm train --config):\n${JSON.stringify(bestConfig, null, 2)}`);
      } else console.log('no trial has completed yet');
    }
    if (opts.bestConfig) {
      if (!bestConfig) throw new Error('--best-config: no trial has completed yet');
      writeFileSync(opts.bestConfig as string, JSON.stringify(bestConfig, null, 2) + '\n');
      if (!opts.json) console.log(`wrote ${opts.bestConfig as string}`);
    }
    if (opts.plot) {
      const written = await writeStudyPlots(opts.plot as string, study, trials);
      if (!opts.json) console.log(`wrote ${written.join(', ')}`);
    }
  } finally {
    await storage.close();
  }
}

export function registerTuneCommands(program: Command): void {
  const tune = program
    .command('tune')
    .description(
      'hyperparameter search: a worker that runs trials of a study (created on first use) until it has --trials results; ' +
        'start several with the same --study and --storage to share the work. `tensorlm tune show` prints the results.',
    )
    // Not requiredOption: commander would then demand it before `tune show` too (checked in the action).
    .option('--study <name>', 'study name (required)')
    .option('--storage <path|url>', 'SQLite file, or postgresql://user@host:port/db for workers on many machines (default: runs/tune/<study>.sqlite)')
    .option('--space <file>', 'search space JSON: {"lr": {"type": "logUniform", "low": 1e-4, "high": 1e-2}, "model.dModel": {"type": "choice", "values": [64, 128]}, …}')
    .option('--config <file>', 'base train config JSON every trial starts from (camelCase keys, as for tensorlm train)')
    .addOption(new Option('--trials <n>', 'trials with a result (complete, pruned or failed) the study runs (default 20)').argParser(integer('--trials', 1)))
    .addOption(new Option('--budget-steps <n>', 'optimizer steps per trial').argParser(integer('--budget-steps', 1)))
    .addOption(new Option('--budget-tokens <n>', 'training tokens per trial (steps = tokens / (batchSize·blockSize))').argParser(integer('--budget-tokens', 1)))
    .addOption(new Option('--sampler <name>', 'how params are proposed (default tpe)').choices(['tpe', 'random', 'grid']))
    .addOption(new Option('--startup-trials <n>', 'tpe: random trials before the model is used (default 10)').argParser(integer('--startup-trials', 0)))
    .addOption(new Option('--ei-candidates <n>', 'tpe: candidates drawn per option (default 24)').argParser(integer('--ei-candidates', 1)))
    .addOption(new Option('--grid-points <n>', 'grid: points per continuous range (default 3)').argParser(integer('--grid-points', 1)))
    .addOption(new Option('--pruner <name>', 'early stopping of poor trials from intermediate val losses (default median)').choices(['median', 'asha', 'none']))
    .addOption(new Option('--prune-startup-trials <n>', 'median: complete trials before pruning starts (default 5)').argParser(integer('--prune-startup-trials', 0)))
    .addOption(new Option('--prune-warmup <n>', 'median: no pruning before this many steps (tokens for a token budget; default a quarter of the budget)').argParser(integer('--prune-warmup', 0)))
    .addOption(new Option('--min-resource <n>', 'asha: steps (or tokens) of the first rung (default budget/η²)').argParser(positiveNumber('--min-resource')))
    .addOption(new Option('--reduction-factor <n>', 'asha: η, the top 1/η of each rung continues (default 3)').argParser(integer('--reduction-factor', 2)))
    .addOption(new Option('--seed <n>', 'sampler seed (default 0); the training seed comes from the base config').argParser(integer('--seed', 0)))
    .addOption(new Option('--stale-after <duration>', 'a running trial without a heartbeat for this long is re-queued (default 120s)').argParser(seconds('--stale-after')))
    .option('--baseline', "run the base config's own values as trial 0, to compare the best trial with")
    .option('--resume', 'continue an existing study: re-queue trials its dead workers left running; --trials may raise the target')
    .option('--out-dir <dir>', "where this worker writes the trials' run directories (default: runs/tune/<study>)")
    .option('--data-dir <dir>', 'cache directory for named datasets on this machine (default: $TENSORLM_DATA_DIR or ~/.cache/tensorlm)')
    .addOption(new Option('--max-trials <n>', 'this worker stops after running this many trials').argParser(integer('--max-trials', 1)))
    .option('--keep-checkpoints', "keep every trial's checkpoints (default: only complete trials keep best.safetensors)")
    .option('--verbose', "print every trial's evaluations")
    .action(async (_opts, command: Command) => runTune(command));

  tune
    .command('show')
    .description("a study's trials, its best trial and config, and plots (pass --study and --storage as for tune)")
    .option('--plot <dir>', 'write objective.svg, params.svg and intermediate.svg into this directory')
    .option('--best-config <file>', "write the best trial's train config as JSON (for tensorlm train --config)")
    .option('--json', 'print the study, trials and best config as JSON')
    .action(async (_opts, command: Command) => runShow(command));
}
