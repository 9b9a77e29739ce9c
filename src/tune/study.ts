/**
 * Studies and the worker loop behind `tensorlm tune`.
 *
 * A study's settings are written to the storage when it is created; every worker — the first, a
 * second one started next to it, one on another machine, a resumed one — runs from the stored
 * settings, and options it was given that disagree with them are an error rather than a silently
 * different experiment. A worker repeatedly claims a trial (a waiting one, else a freshly sampled
 * one while the study is short of its target), runs the objective with a heartbeat, and records
 * the outcome, until the study has its trials and none is running anywhere.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { TrainConfig } from '../train/config.js';
import { resolveTrainConfig } from '../train/config.js';
import { budgetResource, type Objective, type ReportDecision } from './objective.js';
import { createPruner } from './pruners.js';
import { createSampler, GridSampler } from './samplers.js';
import { baseValue, canonicalJson, contains, formatParams, type Params, type SearchSpace } from './space.js';
import { StudyExistsError, type ClaimOptions, type Requeued, type TuneStorage } from './storage/common.js';
import type { PrunerSettings, SamplerSettings, StudyRecord, StudySettings, TrialRecord, WorkerIdentity } from './types.js';

/** What a worker was asked for; undefined means "not given" (use the stored study's, or the default). */
export interface StudyInput {
  space?: SearchSpace;
  sampler?: SamplerSettings['type'];
  /** tpe: random trials before the model is used. */
  startupTrials?: number;
  /** tpe: candidates per option. */
  eiCandidates?: number;
  /** grid: points per continuous option. */
  gridPoints?: number;
  pruner?: PrunerSettings['type'];
  /** median: complete trials before pruning starts. */
  pruneStartupTrials?: number;
  /** median: no pruning before this resource (steps, or tokens for a token budget). */
  pruneWarmup?: number;
  /** asha: resource of the first rung. */
  minResource?: number;
  /** asha: η; the top 1/η of each rung continues. */
  reductionFactor?: number;
  budgetSteps?: number;
  budgetTokens?: number;
  base?: Partial<TrainConfig>;
  seed?: number;
  staleAfterSeconds?: number;
  /** Trials that end with a result (complete, pruned, or failed by the objective). */
  trials?: number;
  /** Enqueue the base config's own values as trial 0. */
  baseline?: boolean;
}

/** The command-line flag of each input, for messages. */
export const INPUT_FLAGS: Readonly<Record<keyof StudyInput, string>> = {
  space: '--space',
  sampler: '--sampler',
  startupTrials: '--startup-trials',
  eiCandidates: '--ei-candidates',
  gridPoints: '--grid-points',
  pruner: '--pruner',
  pruneStartupTrials: '--prune-startup-trials',
  pruneWarmup: '--prune-warmup',
  minResource: '--min-resource',
  reductionFactor: '--reduction-factor',
  budgetSteps: '--budget-steps',
  budgetTokens: '--budget-tokens',
  base: '--config',
  seed: '--seed',
  staleAfterSeconds: '--stale-after',
  trials: '--trials',
  baseline: '--baseline',
};

export const DEFAULTS = {
  sampler: 'tpe' as const,
  startupTrials: 10,
  eiCandidates: 24,
  gridPoints: 3,
  pruner: 'median' as const,
  pruneStartupTrials: 5,
  /** median: no pruning in the first quarter of the budget, where curves cross most. */
  pruneWarmupFraction: 0.25,
  reductionFactor: 3,
  seed: 0,
  staleAfterSeconds: 120,
  trials: 20,
};

function positiveInteger(value: number | undefined, key: keyof StudyInput, allowZero = false): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) throw new Error(`${INPUT_FLAGS[key]} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`);
}

/** The settings of a new study from a worker's input and the defaults; validates everything. */
export function buildSettings(input: StudyInput): StudySettings {
  if (!input.space) throw new Error('a new study needs a search space: pass --space <space.json>');
  if (input.budgetSteps !== undefined && input.budgetTokens !== undefined) throw new Error('give either --budget-steps or --budget-tokens, not both');
  if (input.budgetSteps === undefined && input.budgetTokens === undefined) throw new Error('a new study needs a budget per trial: pass --budget-steps <n> or --budget-tokens <n>');
  for (const key of ['startupTrials', 'pruneStartupTrials'] as const) positiveInteger(input[key], key, true);
  for (const key of ['eiCandidates', 'gridPoints', 'budgetSteps', 'budgetTokens', 'trials'] as const) positiveInteger(input[key], key);
  if (input.seed !== undefined && !Number.isInteger(input.seed)) throw new Error(`--seed must be an integer, got ${input.seed}`);
  if (input.staleAfterSeconds !== undefined && !(input.staleAfterSeconds > 0)) throw new Error(`--stale-after must be a positive duration, got ${input.staleAfterSeconds}`);
  const budget = input.budgetSteps !== undefined ? { steps: input.budgetSteps } : { tokens: input.budgetTokens as number };
  const resource = budgetResource(budget);

  const samplerType = input.sampler ?? DEFAULTS.sampler;
  const applies: Record<SamplerSettings['type'], (keyof StudyInput)[]> = { tpe: ['startupTrials', 'eiCandidates'], grid: ['gridPoints'], random: [] };
  for (const key of ['startupTrials', 'eiCandidates', 'gridPoints'] as const) {
    if (input[key] !== undefined && !applies[samplerType].includes(key)) throw new Error(`${INPUT_FLAGS[key]} does not apply to the ${samplerType} sampler`);
  }
  const sampler: SamplerSettings =
    samplerType === 'tpe'
      ? { type: 'tpe', nStartupTrials: input.startupTrials ?? DEFAULTS.startupTrials, nEiCandidates: input.eiCandidates ?? DEFAULTS.eiCandidates }
      : samplerType === 'grid'
        ? { type: 'grid', gridPoints: input.gridPoints ?? DEFAULTS.gridPoints }
        : { type: 'random' };

  const prunerType = input.pruner ?? DEFAULTS.pruner;
  const prunerApplies: Record<PrunerSettings['type'], (keyof StudyInput)[]> = { median: ['pruneStartupTrials', 'pruneWarmup'], asha: ['minResource', 'reductionFactor'], none: [] };
  for (const key of ['pruneStartupTrials', 'pruneWarmup', 'minResource', 'reductionFactor'] as const) {
    if (input[key] !== undefined && !prunerApplies[prunerType].includes(key)) throw new Error(`${INPUT_FLAGS[key]} does not apply to the '${prunerType}' pruner`);
  }
  if (input.pruneWarmup !== undefined && !(input.pruneWarmup >= 0)) throw new Error(`--prune-warmup must be ≥ 0, got ${input.pruneWarmup}`);
  if (input.minResource !== undefined && !(input.minResource > 0)) throw new Error(`--min-resource must be positive, got ${input.minResource}`);
  if (input.reductionFactor !== undefined && !(Number.isInteger(input.reductionFactor) && input.reductionFactor >= 2)) throw new Error(`--reduction-factor must be an integer ≥ 2, got ${input.reductionFactor}`);
  const eta = input.reductionFactor ?? DEFAULTS.reductionFactor;
  const pruner: PrunerSettings =
    prunerType === 'median'
      ? { type: 'median', nStartupTrials: input.pruneStartupTrials ?? DEFAULTS.pruneStartupTrials, nWarmupSteps: input.pruneWarmup ?? Math.floor(resource * DEFAULTS.pruneWarmupFraction) }
      : prunerType === 'asha'
        ? // Two rungs below the full budget by default: budget/η² and budget/η.
          { type: 'asha', minResource: input.minResource ?? Math.max(1, Math.floor(resource / eta ** 2)), reductionFactor: eta, minEarlyStoppingRate: 0 }
        : { type: 'none' };

  const base = input.base ?? {};
  try {
    // Checks keys and values now; the budget and run name are the study's to set.
    resolveTrainConfig(base);
  } catch (error) {
    throw new Error(`--config: ${(error as Error).message}`);
  }
  const settings: StudySettings = {
    space: input.space,
    sampler,
    pruner,
    budget,
    base,
    seed: input.seed ?? DEFAULTS.seed,
    staleAfterSeconds: input.staleAfterSeconds ?? DEFAULTS.staleAfterSeconds,
    baseline: input.baseline ?? false,
  };
  if (sampler.type === 'grid') new GridSampler(sampler.gridPoints).size(settings.space);
  if (settings.baseline) baselineParams(settings);
  return settings;
}

/** The base config's own values for every option of the space (the --baseline trial). */
export function baselineParams(settings: Pick<StudySettings, 'space' | 'base'>): Params {
  const out: Params = {};
  for (const [key, dist] of Object.entries(settings.space)) {
    const value = baseValue(settings.base, key);
    if (!contains(dist, value)) throw new Error(`--baseline: the base config's ${key} = ${JSON.stringify(value)} is not a value its search space can take (${canonicalJson(dist)})`);
    out[key] = value;
  }
  return out;
}

/** Stored settings, written back as the input that would create them (for comparing with a worker's input). */
export function settingsAsInput(settings: StudySettings, nTrials: number): StudyInput {
  const out: StudyInput = {
    space: settings.space,
    sampler: settings.sampler.type,
    pruner: settings.pruner.type,
    base: settings.base,
    seed: settings.seed,
    staleAfterSeconds: settings.staleAfterSeconds,
    trials: nTrials,
    baseline: settings.baseline,
  };
  if ('steps' in settings.budget) out.budgetSteps = settings.budget.steps;
  else out.budgetTokens = settings.budget.tokens;
  if (settings.sampler.type === 'tpe') Object.assign(out, { startupTrials: settings.sampler.nStartupTrials, eiCandidates: settings.sampler.nEiCandidates });
  if (settings.sampler.type === 'grid') out.gridPoints = settings.sampler.gridPoints;
  if (settings.pruner.type === 'median') Object.assign(out, { pruneStartupTrials: settings.pruner.nStartupTrials, pruneWarmup: settings.pruner.nWarmupSteps });
  if (settings.pruner.type === 'asha') Object.assign(out, { minResource: settings.pruner.minResource, reductionFactor: settings.pruner.reductionFactor });
  return out;
}

/** Options a worker was given that differ from the stored study, one line each. */
export function settingsConflicts(stored: StudyInput, given: StudyInput, ignore: readonly (keyof StudyInput)[] = []): string[] {
  const out: string[] = [];
  for (const key of Object.keys(given) as (keyof StudyInput)[]) {
    if (given[key] === undefined || ignore.includes(key)) continue;
    const a = stored[key];
    const b = given[key];
    if (a === undefined) {
      const why = key.startsWith('budget')
        ? `the study has a ${stored.budgetSteps !== undefined ? 'step' : 'token'} budget`
        : ['startupTrials', 'eiCandidates', 'gridPoints'].includes(key)
          ? `the study's sampler is ${stored.sampler ?? '?'}`
          : `the study's pruner is ${stored.pruner ?? '?'}`;
      out.push(`${INPUT_FLAGS[key]} does not apply: ${why}`);
    }
    else if (canonicalJson(a) !== canonicalJson(b)) {
      if (typeof a === 'object') out.push(`${INPUT_FLAGS[key]}: this worker's ${key === 'space' ? 'search space' : 'base config'} differs from the study's`);
      else out.push(`${INPUT_FLAGS[key]}: the study has ${JSON.stringify(a)}, this worker was given ${JSON.stringify(b)}`);
    }
  }
  return out;
}

export interface OpenedStudy {
  study: StudyRecord;
  created: boolean;
  /** Trials re-queued by --resume. */
  requeued: Requeued[];
}

/**
 * Creates the study, or joins the stored one. With `resume` the study must exist, trials left
 * running by dead workers are re-queued at once, and --trials may change the target.
 */
export async function openStudy(storage: TuneStorage, name: string, input: StudyInput, options: { resume?: boolean; claim?: ClaimOptions } = {}): Promise<OpenedStudy> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`--study '${name}' may only contain letters, digits, '.', '_' and '-'`);
  let study = await storage.loadStudy(name);
  let created = false;
  if (!study) {
    if (options.resume) throw new Error(`--resume: there is no study '${name}' in ${storage.location} (drop --resume to create it)`);
    const settings = buildSettings(input);
    const initial = settings.baseline ? [{ params: baselineParams(settings), origin: 'baseline' as const }] : [];
    try {
      study = await storage.createStudy(name, settings, input.trials ?? DEFAULTS.trials, initial);
      created = true;
    } catch (error) {
      // Another worker created it between our look and our insert: join theirs.
      if (!(error instanceof StudyExistsError)) throw error;
      study = await storage.loadStudy(name);
      if (!study) throw error;
    }
  }
  if (!created) {
    const conflicts = settingsConflicts(settingsAsInput(study.settings, study.nTrials), input, options.resume ? ['trials'] : []);
    if (conflicts.length) {
      throw new Error(
        `study '${name}' in ${storage.location} was created with other settings:\n  ${conflicts.join('\n  ')}\n` +
          `Leave these options out to serve the study as it is${input.trials !== undefined ? ' (with --resume, --trials changes the target)' : ''}, or use another --study.`,
      );
    }
    if (options.resume && input.trials !== undefined && input.trials !== study.nTrials) {
      await storage.setTargetTrials(study.id, input.trials);
      study = { ...study, nTrials: input.trials };
    }
  }
  const requeued = options.resume ? await storage.requeueStale(study.id, options.claim ?? claimOptions(study.settings)) : [];
  return { study, created, requeued };
}

/** Whether process `pid` exists on this machine (a zombie — killed, not yet reaped — does not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // Linux: the state after the parenthesised command name; 'Z' is a zombie.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export function claimOptions(settings: StudySettings): ClaimOptions {
  const host = hostname();
  return {
    staleAfterMs: settings.staleAfterSeconds * 1000,
    isWorkerDead: (workerHost, pid) => workerHost === host && pid !== process.pid && !processAlive(pid),
  };
}

export function workerIdentity(): WorkerIdentity {
  const host = hostname();
  return { id: `${host}:${process.pid}:${randomBytes(3).toString('hex')}`, host, pid: process.pid };
}

export interface WorkerOptions {
  objective: Objective;
  /** Folder of the trials' run directories. */
  outDir: string;
  heartbeatMs?: number;
  /** How long to wait before asking again while the last trials run elsewhere. */
  pollMs?: number;
  /** Stop after running this many trials (default: until the study is done). */
  maxTrials?: number;
  /** Set `requested` to stop: the running trial ends at its next step and is re-queued. */
  stop?: { requested: boolean };
  log?: (line: string) => void;
  identity?: WorkerIdentity;
  /** Overrides how dead workers are recognised (tests). */
  claim?: ClaimOptions;
}

export interface WorkerSummary {
  ran: number;
  complete: number;
  pruned: number;
  failed: number;
  /** Trials this worker held that another worker declared dead and re-queued. */
  lost: number;
  /** The worker was stopped; its running trial (if any) was re-queued. */
  interrupted: boolean;
  /** The study has all its trials and none is running. */
  studyDone: boolean;
}

export function trialRunName(number: number): string {
  return `trial-${String(number).padStart(4, '0')}`;
}

function formatValue(v: number | null): string {
  return v === null ? '–' : v.toFixed(4);
}

/** Serves one study until it is done (or maxTrials, or a stop request). */
export async function runWorker(storage: TuneStorage, study: StudyRecord, options: WorkerOptions): Promise<WorkerSummary> {
  const { settings } = study;
  const sampler = createSampler(settings.sampler);
  const pruner = createPruner(settings.pruner);
  const identity = options.identity ?? workerIdentity();
  const claim = options.claim ?? claimOptions(settings);
  const log = options.log ?? (() => undefined);
  const stop = options.stop ?? { requested: false };
  const heartbeatMs = options.heartbeatMs ?? Math.min(5000, (settings.staleAfterSeconds * 1000) / 6);
  const pollMs = options.pollMs ?? 2000;
  const summary: WorkerSummary = { ran: 0, complete: 0, pruned: 0, failed: 0, lost: 0, interrupted: false, studyDone: false };

  while (!stop.requested && summary.ran < (options.maxTrials ?? Infinity)) {
    const result = await storage.claimTrial(study.id, identity, (history, number) => sampler.sample({ space: settings.space, history, number, seed: settings.seed }), claim);
    for (const r of result.requeued) log(`trial #${r.from} re-queued as #${r.to}: ${r.reason}`);
    if (result.kind === 'done') {
      summary.studyDone = true;
      break;
    }
    if (result.kind === 'wait') {
      await sleepUnless(pollMs, stop);
      continue;
    }
    const trial = result.trial;
    summary.ran++;
    const started = performance.now();
    log(`trial #${trial.number}${trial.retryOf !== null ? ` (re-run of #${trial.retryOf})` : trial.origin === 'baseline' ? ' (baseline)' : ''}: ${formatParams(trial.params)}`);
    let lost = false;
    let heartbeatError: unknown = null;
    // One heartbeat at a time: on a busy machine they would otherwise pile up and take every
    // pooled connection, starving the trial's own reports (seen: PostgreSQL connect timeouts).
    let beating = false;
    let lastBeat = performance.now();
    const timer = setInterval(() => {
      if (beating) return;
      beating = true;
      storage
        .heartbeat(trial.id, identity.id)
        .then(
          (ok) => {
            lastBeat = performance.now();
            if (!ok) lost = true;
          },
          (error: unknown) => {
            // A transient failure (a slow connect, a restarting server) is retried at the next
            // tick; the trial is given up only when heartbeats have failed for half the stale
            // timeout, before another worker may take it over.
            if (performance.now() - lastBeat > settings.staleAfterSeconds * 500) heartbeatError = error;
          },
        )
        .finally(() => {
          beating = false;
        });
    }, heartbeatMs);
    const report = async (step: number, value: number): Promise<ReportDecision> => {
      if (!(await storage.reportIntermediate(trial.id, identity.id, step, value))) {
        lost = true;
        return 'lost';
      }
      if (settings.pruner.type === 'none' || !Number.isFinite(value)) return 'continue';
      const all = await storage.listTrials(study.id);
      const me = all.find((t) => t.id === trial.id);
      const others = all.filter((t) => t.id !== trial.id);
      return me && pruner.shouldPrune({ trial: { number: trial.number, intermediates: me.intermediates }, others }) ? 'prune' : 'continue';
    };
    let outcome;
    try {
      outcome = await options.objective({
        number: trial.number,
        params: trial.params,
        settings,
        outDir: options.outDir,
        runName: trialRunName(trial.number),
        report,
        stopRequested: () => stop.requested || heartbeatError !== null,
        lost: () => lost,
      });
      if (heartbeatError !== null) throw heartbeatError;
    } catch (error) {
      clearInterval(timer);
      // The storage failed under us: hand the trial back so it is not lost, then give up.
      await storage.requeueTrial(trial.id, identity.id, `worker ${identity.id} failed: ${(error as Error).message}`).catch(() => null);
      throw error;
    }
    clearInterval(timer);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (outcome.state === 'interrupted') {
      const copy = await storage.requeueTrial(trial.id, identity.id, `interrupted: worker ${identity.id} was stopped`);
      log(`trial #${trial.number} interrupted after ${seconds} s${copy !== null ? `; re-queued as #${copy}` : ''}`);
      summary.interrupted = true;
      break;
    }
    if (outcome.state !== 'lost' && (await storage.finishTrial(trial.id, identity.id, outcome))) {
      summary[outcome.state]++;
      const detail = outcome.state === 'failed' ? outcome.error : `val loss ${formatValue(outcome.value)}`;
      log(`trial #${trial.number} ${outcome.state} in ${seconds} s: ${detail}`);
    } else {
      summary.lost++;
      log(`trial #${trial.number}: another worker declared this worker dead and re-queued the trial; this result (${seconds} s) is discarded`);
    }
  }
  if (stop.requested) summary.interrupted = true;
  return summary;
}

function sleepUnless(ms: number, stop: { requested: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    const tick = () => (stop.requested || Date.now() - started >= ms ? resolve() : setTimeout(tick, Math.min(200, ms)));
    tick();
  });
}

/** The best complete trial (lowest objective), or null. */
export function bestTrial(trials: readonly TrialRecord[]): TrialRecord | null {
  let best: TrialRecord | null = null;
  for (const t of trials) if (t.state === 'complete' && t.value !== null && (best === null || t.value < (best.value as number))) best = t;
  return best;
}
