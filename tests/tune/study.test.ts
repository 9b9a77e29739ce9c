/**
 * Studies and the worker loop: opening/joining/resuming, two workers sharing a study, pruning
 * through reports, stop and take-over; then the train objective on a tiny model.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainObjective, trialTrainConfig, tunedTrainConfig, type Objective, type TrialContext } from '../../src/tune/objective.js';
import { parseSearchSpace } from '../../src/tune/space.js';
import { openStorage, type TuneStorage } from '../../src/tune/storage/index.js';
import { buildSettings, claimOptions, openStudy, processAlive, runWorker, type StudyInput } from '../../src/tune/study.js';
import type { StudySettings } from '../../src/tune/types.js';
import { makeTempDir } from '../tokenizers/helpers.js';
import { curve } from './helpers/trials.js';

const tmp = makeTempDir('tensorlm-tune-study-');
const storages: TuneStorage[] = [];
afterAll(async () => {
  await Promise.all(storages.map((s) => s.close()));
  tmp.cleanup();
});
function sqlite(): TuneStorage {
  const s = openStorage(join(tmp.fresh(), 'study.sqlite'));
  storages.push(s);
  return s;
}

const space = parseSearchSpace({ lr: { type: 'logUniform', low: 1e-4, high: 1e-1 }, warmupSteps: { type: 'int', low: 0, high: 10 } });
const input: StudyInput = { space, budgetSteps: 90, sampler: 'random', pruner: 'none', trials: 6 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fake training run: reports a curve whose floor depends on lr (best at 1e-2), honouring prune decisions. */
function syntheticObjective(delayMs = 0): Objective {
  return async (ctx) => {
    const floor = 1 + Math.abs(Math.log10(ctx.params.lr as number) + 2);
    for (const point of curve([30, 60, 90], floor)) {
      await sleep(delayMs);
      if (ctx.stopRequested()) return { state: 'interrupted' };
      const decision = await ctx.report(point.step, point.value);
      if (decision === 'lost') return { state: 'lost' };
      if (decision === 'prune' && point.step < 90) return { state: 'pruned', value: point.value };
    }
    return { state: 'complete', value: curve([90], floor)[0].value };
  };
}

describe('opening studies', () => {
  it('creates once, joins with matching options, refuses conflicting ones', async () => {
    const s = sqlite();
    const first = await openStudy(s, 'demo', input);
    expect(first.created).toBe(true);
    expect(first.study.nTrials).toBe(6);
    const joined = await openStudy(s, 'demo', { sampler: 'random' });
    expect(joined.created).toBe(false);
    expect(joined.study.id).toBe(first.study.id);
    await expect(openStudy(s, 'demo', { ...input, sampler: 'tpe', budgetSteps: 50 })).rejects.toThrow(
      /study 'demo' in .* was created with other settings:\n {2}--budget-steps: the study has 90, this worker was given 50\n {2}--sampler: the study has "random", this worker was given "tpe"\n/,
    );
    await expect(openStudy(s, 'demo', { trials: 9 })).rejects.toThrow(/--trials: the study has 6.*\n.*with --resume, --trials changes the target/s);
    const resumed = await openStudy(s, 'demo', { trials: 9 }, { resume: true });
    expect(resumed.study.nTrials).toBe(9);
    expect((await s.loadStudy('demo'))?.nTrials).toBe(9);
    await expect(openStudy(s, 'nope', input, { resume: true })).rejects.toThrow(/--resume: there is no study 'nope' in .*drop --resume to create it/);
    await expect(openStudy(s, 'bad name', input)).rejects.toThrow(/--study 'bad name' may only contain/);
  });

  it('two workers opening a new study at the same moment end up in one study', async () => {
    const file = join(tmp.fresh(), 'race.sqlite');
    const [a, b] = [openStorage(file), openStorage(file)];
    storages.push(a, b);
    const [x, y] = await Promise.all([openStudy(a, 'race', input), openStudy(b, 'race', input)]);
    expect(x.study.id).toBe(y.study.id);
    expect([x.created, y.created].filter(Boolean)).toHaveLength(1);
  });

  it('--baseline enqueues the base values as trial 0', async () => {
    const s = sqlite();
    const { study } = await openStudy(s, 'base', { ...input, baseline: true, base: { lr: 3e-3, warmupSteps: 5 } });
    const [t] = await s.listTrials(study.id);
    expect([t.number, t.origin, t.state, t.params]).toEqual([0, 'baseline', 'waiting', { lr: 3e-3, warmupSteps: 5 }]);
  });
});

describe('workers', () => {
  it('a worker on the same host is dead when its process is gone; other hosts wait for the heartbeat limit', () => {
    const child = spawnSync(process.execPath, ['-e', '0']);
    expect(child.status).toBe(0);
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(child.pid as number)).toBe(false);
    const options = claimOptions(buildSettings({ ...input, staleAfterSeconds: 30 }));
    expect(options.staleAfterMs).toBe(30_000);
    const dead = options.isWorkerDead as (host: string, pid: number) => boolean;
    expect(dead(hostname(), child.pid as number)).toBe(true);
    expect(dead(hostname(), process.pid)).toBe(false);
    expect(dead(`not-${hostname()}`, child.pid as number)).toBe(false);
  });

  it('two workers share a study: every trial runs once and the study completes', async () => {
    const file = join(tmp.fresh(), 'shared.sqlite');
    const [a, b] = [openStorage(file), openStorage(file)];
    storages.push(a, b);
    const { study } = await openStudy(a, 'shared', { ...input, trials: 10 });
    const opts = { objective: syntheticObjective(5), outDir: tmp.dir, pollMs: 20, heartbeatMs: 50 };
    const [sa, sb] = await Promise.all([runWorker(a, study, opts), runWorker(b, study, opts)]);
    expect(sa.ran + sb.ran).toBe(10);
    expect(sa.ran).toBeGreaterThan(0);
    expect(sb.ran).toBeGreaterThan(0);
    expect(sa.studyDone && sb.studyDone).toBe(true);
    const trials = await a.listTrials(study.id);
    expect(trials.map((t) => t.number)).toEqual([...Array(10).keys()]);
    expect(trials.every((t) => t.state === 'complete' && t.intermediates.length === 3)).toBe(true);
    expect(new Set(trials.map((t) => t.worker?.split(':').pop())).size).toBe(2);
  });

  it('prunes through reports: pruned trials keep their last value and stop early', async () => {
    const s = sqlite();
    const { study } = await openStudy(s, 'pruning', { ...input, trials: 16, pruner: 'median', pruneStartupTrials: 3, pruneWarmup: 0, seed: 3 });
    const summary = await runWorker(s, study, { objective: syntheticObjective(), outDir: tmp.dir });
    expect(summary.complete + summary.pruned).toBe(16);
    expect(summary.pruned).toBeGreaterThan(0);
    const trials = await s.listTrials(study.id);
    for (const t of trials.filter((x) => x.state === 'pruned')) {
      expect(t.intermediates.length).toBeLessThan(3);
      expect(t.value).toBe(t.intermediates[t.intermediates.length - 1].value);
    }
    const best = trials.filter((t) => t.state === 'complete').sort((x, y) => (x.value as number) - (y.value as number))[0];
    expect(trials.every((t) => t.state !== 'pruned' || (t.value as number) > (best.value as number))).toBe(true);
  });

  it('ASHA prunes through the same reports', async () => {
    const s = sqlite();
    const { study } = await openStudy(s, 'asha', { ...input, trials: 12, pruner: 'asha', minResource: 30, reductionFactor: 3, seed: 5 });
    expect(study.settings.pruner).toEqual({ type: 'asha', minResource: 30, reductionFactor: 3, minEarlyStoppingRate: 0 });
    const summary = await runWorker(s, study, { objective: syntheticObjective(), outDir: tmp.dir });
    expect(summary.complete + summary.pruned).toBe(12);
    // Rungs at 30 and 90: a third survive the first rung, and the last report is never pruned.
    expect(summary.pruned).toBeGreaterThanOrEqual(4);
    const trials = await s.listTrials(study.id);
    expect(trials.filter((t) => t.state === 'pruned').every((t) => t.intermediates.length === 1 && t.intermediates[0].step === 30)).toBe(true);
  });

  it('a grid study ends when its grid is used up, even short of --trials', async () => {
    const s = sqlite();
    const grid = parseSearchSpace({ warmupSteps: { type: 'int', low: 0, high: 2 }, lr: { type: 'choice', values: [1e-3, 1e-2] } });
    const { study } = await openStudy(s, 'grid', { space: grid, budgetSteps: 90, sampler: 'grid', pruner: 'none', trials: 50 });
    const summary = await runWorker(s, study, { objective: syntheticObjective(), outDir: tmp.dir });
    expect(summary).toMatchObject({ ran: 6, complete: 6, studyDone: true });
    const points = (await s.listTrials(study.id)).map((t) => `${t.params.warmupSteps}/${t.params.lr}`);
    expect(points).toEqual(['0/0.001', '0/0.01', '1/0.001', '1/0.01', '2/0.001', '2/0.01']);
  });

  it('a stopped worker hands its trial back; another worker finishes the study', async () => {
    const s = sqlite();
    const { study } = await openStudy(s, 'stopping', { ...input, trials: 3 });
    const stop = { requested: false };
    const lines: string[] = [];
    setTimeout(() => (stop.requested = true), 60);
    const first = await runWorker(s, study, { objective: syntheticObjective(30), outDir: tmp.dir, stop, log: (l) => lines.push(l) });
    expect(first.interrupted).toBe(true);
    expect(lines.join('\n')).toMatch(/trial #0 interrupted after .* re-queued as #1/);
    const second = await runWorker(s, study, { objective: syntheticObjective(), outDir: tmp.dir });
    expect(second.studyDone).toBe(true);
    const trials = await s.listTrials(study.id);
    expect(trials.map((t) => [t.number, t.state, t.retryOf, t.requeuedAs])).toEqual([
      [0, 'failed', null, 1],
      [1, 'complete', 0, null],
      [2, 'complete', null, null],
      [3, 'complete', null, null],
    ]);
    expect(trials[1].params).toEqual(trials[0].params);
  });

  it('a worker whose heartbeats stop loses its trial to another and discards its result', async () => {
    const file = join(tmp.fresh(), 'lost.sqlite');
    const [a, b] = [openStorage(file), openStorage(file)];
    storages.push(a, b);
    const { study } = await openStudy(a, 'lost', { ...input, trials: 1, staleAfterSeconds: 0.2 });
    // Worker a is slow and sends no heartbeats of its own (its reports still count as signs of
    // life); b treats any running trial as stale (staleAfterMs 0), as it would a's after a
    // network partition, so b re-queues a's trial and runs the copy.
    const slow = runWorker(a, study, { objective: syntheticObjective(150), outDir: tmp.dir, heartbeatMs: 1e6 });
    await sleep(100);
    const takeOver = runWorker(b, study, { objective: syntheticObjective(), outDir: tmp.dir, claim: { staleAfterMs: 0 }, pollMs: 10 });
    const [sa, sb] = await Promise.all([slow, takeOver]);
    expect(sa.lost).toBe(1);
    expect(sb.complete).toBe(1);
    const trials = await a.listTrials(study.id);
    expect(trials.map((t) => [t.state, t.requeuedAs, t.retryOf])).toEqual([
      ['failed', 1, null],
      ['complete', null, 0],
    ]);
  });
});

describe('the train objective', () => {
  const dir = tmp.fresh();
  const data = join(dir, 'corpus.txt');
  writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.repeat(40));
  const base = { data, model: { dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16 }, batchSize: 2, blockSize: 16, evalIters: 1, logInterval: 5 };
  const settings = (extra: Partial<StudySettings> = {}): StudySettings => ({ ...buildSettings({ space, budgetSteps: 12, base, pruner: 'none' }), ...extra });

  function context(s: StudySettings, params: Record<string, number>, decide: (step: number) => 'continue' | 'prune', reports: [number, number][]): TrialContext {
    return {
      number: 0,
      params,
      settings: s,
      outDir: dir,
      runName: `t${Math.random().toString(36).slice(2)}`,
      report: async (step, value) => {
        reports.push([step, value]);
        return decide(step);
      },
      stopRequested: () => false,
      lost: () => false,
    };
  }

  it('builds the trial config: budget, minLr following lr, ~8 evaluations, no sample text', () => {
    const c = trialTrainConfig(settings(), { lr: 1e-2, warmupSteps: 2 }, dir, 'x');
    expect([c.maxSteps, c.maxTime, c.lr, c.minLr, c.warmupSteps, c.evalInterval, c.sampleTokens, c.name, c.outDir]).toEqual([12, null, 1e-2, 1e-3, 2, 2, 0, 'x', dir]);
    const tokens = trialTrainConfig({ ...settings(), budget: { tokens: 1000 } }, { lr: 1e-2 }, dir, 'x');
    expect(tokens.maxSteps).toBe(Math.ceil(1000 / (2 * 16)));
    const fixed = trialTrainConfig({ ...settings(), base: { ...base, minLr: 1e-5, evalInterval: 5 } }, { lr: 1e-2 }, dir, 'x');
    expect([fixed.minLr, fixed.evalInterval]).toEqual([1e-5, 5]);
    expect(tunedTrainConfig(settings(), { lr: 1e-2, warmupSteps: 2 }, 'best')).toMatchObject({ name: 'best', lr: 1e-2, minLr: 1e-3, warmupSteps: 2, maxSteps: 12, maxTime: null, data });
  });

  it('completes with the final val loss, reporting each evaluation', async () => {
    const reports: [number, number][] = [];
    const result = await trainObjective()(context(settings(), { lr: 1e-2, warmupSteps: 2 }, () => 'continue', reports));
    expect(result.state).toBe('complete');
    expect(reports.map(([step]) => step)).toEqual([2, 4, 6, 8, 10, 12]);
    if (result.state === 'complete') expect(result.value).toBe(reports[reports.length - 1][1]);
  });

  it('stops training when the pruner says so (before the budget), and drops its checkpoints', async () => {
    const reports: [number, number][] = [];
    const ctx = context(settings(), { lr: 1e-2, warmupSteps: 2 }, (step) => (step >= 4 ? 'prune' : 'continue'), reports);
    const result = await trainObjective()(ctx);
    expect(result.state).toBe('pruned');
    // The decision lands a step or so after the evaluation: far from the 12-step budget.
    expect(reports.length).toBeLessThanOrEqual(3);
    if (result.state === 'pruned') expect(result.value).toBe(reports[1][1]);
    expect(existsSync(join(dir, ctx.runName, 'metrics.jsonl'))).toBe(true);
    expect(existsSync(join(dir, ctx.runName, 'latest.safetensors'))).toBe(false);
    expect(existsSync(join(dir, ctx.runName, 'best.safetensors'))).toBe(false);
  });

  it('fails a trial (without throwing) when the loss diverges or the config is invalid', async () => {
    const diverged = await trainObjective()(context(settings(), { lr: 1e6, warmupSteps: 0 }, () => 'continue', []));
    expect(diverged.state).toBe('failed');
    if (diverged.state === 'failed') expect(diverged.error).toMatch(/loss became|validation loss/);
    const s = settings({ base: { ...base, blockSize: 64 } });
    const invalid = await trainObjective()(context(s, { lr: 1e-2, warmupSteps: 0 }, () => 'continue', []));
    expect(invalid.state).toBe('failed');
    if (invalid.state === 'failed') expect(invalid.error).toMatch(/blockSize 64 is larger than the model's maxSeqLen 16/);
  });
});
