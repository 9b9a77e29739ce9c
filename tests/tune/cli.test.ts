/**
 * `tensorlm tune` end to end with real worker processes on a tiny model and text: two workers
 * sharing one study (SQLite, and PostgreSQL when its server binaries are present), a worker
 * killed with SIGKILL mid-trial, Ctrl-C and --resume, `tune show` with plots, option errors.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrialRecord } from '../../src/tune/types.js';
import { makeTempDir } from '../tokenizers/helpers.js';
import { NO_PG_REASON, PG_BIN, startPgServer, type PgServer } from './helpers/pg-server.js';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const CLI = ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
const tmp = makeTempDir('tensorlm-tune-cli-');
afterAll(() => tmp.cleanup());

const corpus = join(tmp.dir, 'plays.txt');
writeFileSync(corpus, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.repeat(60));
const spaceFile = join(tmp.dir, 'space.json');
writeFileSync(
  spaceFile,
  JSON.stringify({ lr: { type: 'logUniform', low: 1e-3, high: 3e-2 }, warmupSteps: { type: 'int', low: 0, high: 4 }, 'model.dModel': { type: 'choice', values: [16, 24] } }),
);
const baseFile = join(tmp.dir, 'base.json');
writeFileSync(baseFile, JSON.stringify({ data: corpus, model: { dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16 }, batchSize: 2, blockSize: 16, evalIters: 1, warmupSteps: 2 }));

async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [...CLI, ...args], { cwd: ROOT, maxBuffer: 1 << 24 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

interface Worker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startWorker(args: string[]): Worker {
  const child = spawn(process.execPath, [...CLI, 'tune', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(worker: Worker, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!pattern.test(worker.output())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${pattern}; output so far:\n${worker.output()}`);
    if (worker.child.exitCode !== null) throw new Error(`worker exited (${worker.child.exitCode}) before ${pattern}:\n${worker.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface ShowJson {
  study: { nTrials: number };
  trials: TrialRecord[];
  best: TrialRecord | null;
  bestConfig: Record<string, unknown> | null;
}

async function show(study: string, storage: string): Promise<ShowJson> {
  const r = await cli(['tune', 'show', '--study', study, '--storage', storage, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ShowJson;
}

/** Every trial is accounted for: the target reached by finished trials, nothing running or waiting, each re-queued one replaced. */
function expectAccounted(s: ShowJson): void {
  const counted = s.trials.filter((t) => !(t.state === 'failed' && t.requeuedAs !== null));
  expect(counted).toHaveLength(s.study.nTrials);
  expect(counted.every((t) => t.state === 'complete' || t.state === 'pruned' || t.state === 'failed')).toBe(true);
  expect(s.trials.map((t) => t.number)).toEqual([...Array(s.trials.length).keys()]);
  for (const t of s.trials.filter((x) => x.requeuedAs !== null)) {
    const copy = s.trials.find((x) => x.number === t.requeuedAs);
    expect(copy?.retryOf).toBe(t.number);
    expect(copy?.params).toEqual(t.params);
  }
}

const studyArgs = (study: string, storage: string, extra: string[] = []) => [
  '--study',
  study,
  '--storage',
  storage,
  '--space',
  spaceFile,
  '--config',
  baseFile,
  '--sampler',
  'random',
  '--out-dir',
  join(tmp.dir, study),
  ...extra,
];

async function twoWorkers(study: string, storage: string): Promise<ShowJson> {
  // Each worker stops after half the trials, so both serve the study however their start-ups
  // (seconds on a busy machine) compare with the trials' length.
  const args = studyArgs(study, storage, ['--trials', '8', '--budget-steps', '40', '--pruner', 'median', '--prune-startup-trials', '2', '--max-trials', '4']);
  const [a, b] = [startWorker(args), startWorker(args)];
  const codes = await Promise.all([a.exited, b.exited]);
  expect(codes, `${a.output()}\n----\n${b.output()}`).toEqual([0, 0]);
  for (const w of [a, b]) expect(w.output()).toMatch(/this worker ran 4 trials/);
  const result = await show(study, storage);
  expectAccounted(result);
  expect(result.trials).toHaveLength(8);
  // Both processes ran trials.
  expect(new Set(result.trials.map((t) => t.workerPid)).size).toBe(2);
  expect(result.trials.some((t) => t.state === 'complete')).toBe(true);
  return result;
}

describe('tensorlm tune', () => {
  it('two worker processes serve one SQLite study; show prints the table, best config and plots', async () => {
    const storage = join(tmp.dir, 'two.sqlite');
    const result = await twoWorkers('two', storage);
    const best = result.trials.filter((t) => t.state === 'complete').sort((x, y) => (x.value as number) - (y.value as number))[0];
    expect(result.best?.number).toBe(best.number);
    expect(result.bestConfig).toMatchObject({ lr: best.params.lr, maxSteps: 40 });
    const plots = join(tmp.dir, 'plots');
    const bestConfigFile = join(tmp.dir, 'best.json');
    const text = await cli(['tune', 'show', '--study', 'two', '--storage', storage, '--plot', plots, '--best-config', bestConfigFile]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/target 8 trials: \d+ complete, \d+ pruned, \d+ failed, 0 running, 0 waiting/);
    expect(text.stdout).toMatch(/│ # +│ state +│ val loss +│ step +│ lr +│ warmupSteps +│ model\.dModel/);
    expect(text.stdout).toContain(`best trial #${best.number}: val loss ${(best.value as number).toFixed(4)}`);
    for (const name of ['objective', 'params', 'intermediate']) expect(readFileSync(join(plots, `${name}.svg`), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>$/);
    expect(readFileSync(join(plots, 'params.svg'), 'utf8')).toContain('model.dModel');
    expect(JSON.parse(readFileSync(bestConfigFile, 'utf8'))).toEqual(result.bestConfig);
  }, 180_000);

  it('a worker killed with SIGKILL mid-trial loses no trial: another worker re-runs it and finishes the study', async () => {
    const storage = join(tmp.dir, 'kill.sqlite');
    const args = studyArgs('kill', storage, ['--trials', '3', '--budget-steps', '150', '--pruner', 'none']);
    const victim = startWorker(args);
    await waitFor(victim, /trial #0: lr=/);
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBeNull();
    const mid = await show('kill', storage);
    expect(mid.trials.map((t) => t.state)).toEqual(['running']);
    const survivor = startWorker(args);
    expect(await survivor.exited, survivor.output()).toBe(0);
    expect(survivor.output()).toMatch(/trial #0 re-queued as #1: worker .* is gone \(process \d+ on .* no longer exists\)/);
    expect(survivor.output()).toMatch(/study 'kill' is complete; best trial #\d+: val loss \d\.\d{4}/);
    const result = await show('kill', storage);
    expectAccounted(result);
    expect(result.trials.map((t) => [t.number, t.state, t.requeuedAs, t.retryOf])).toEqual([
      [0, 'failed', 1, null],
      [1, 'complete', null, 0],
      [2, 'complete', null, null],
      [3, 'complete', null, null],
    ]);
  }, 180_000);

  it('Ctrl-C hands the running trial back; --resume continues the study', async () => {
    const storage = join(tmp.dir, 'resume.sqlite');
    const worker = startWorker(studyArgs('resume', storage, ['--trials', '2', '--budget-steps', '300', '--pruner', 'none', '--verbose']));
    // Interrupt after the first of the trial's eight evaluations: most of it is still ahead.
    await waitFor(worker, /trial #0 step \d+: val loss/);
    worker.child.kill('SIGINT');
    expect(await worker.exited, worker.output()).toBe(0);
    expect(worker.output()).toMatch(/trial #0 interrupted after [\d.]+ s; re-queued as #1/);
    expect(worker.output()).toMatch(/continue with: tensorlm tune --study resume --storage .* --resume/);
    const mid = await show('resume', storage);
    expect(mid.trials.map((t) => [t.number, t.state])).toEqual([
      [0, 'failed'],
      [1, 'waiting'],
    ]);
    // The settings come from the study: --resume needs nothing else.
    const resumed = startWorker(['--study', 'resume', '--storage', storage, '--resume', '--out-dir', join(tmp.dir, 'resume')]);
    expect(await resumed.exited, resumed.output()).toBe(0);
    expect(resumed.output()).toMatch(/trial #1 \(re-run of #0\): lr=/);
    const result = await show('resume', storage);
    expectAccounted(result);
    expect(result.trials.map((t) => [t.number, t.state, t.requeuedAs, t.retryOf])).toEqual([
      [0, 'failed', 1, null],
      [1, 'complete', null, 0],
      [2, 'complete', null, null],
    ]);
  }, 120_000);

  it('explains bad input: conflicting settings, a missing study, a bad space, a missing budget', async () => {
    const storage = join(tmp.dir, 'errors.sqlite');
    const created = await cli(['tune', ...studyArgs('errs', storage, ['--trials', '1', '--budget-steps', '2', '--pruner', 'none', '--max-trials', '1'])]);
    expect(created.code, created.stderr).toBe(0);
    const badSpace = join(tmp.dir, 'bad-space.json');
    writeFileSync(badSpace, JSON.stringify({ lr: { type: 'logUniform', low: 0, high: 1 } }));
    const [conflict, missing, space, budget, noStudy] = await Promise.all([
      cli(['tune', ...studyArgs('errs', storage, ['--sampler', 'tpe', '--budget-steps', '3'])]),
      cli(['tune', '--study', 'nope', '--storage', storage, '--resume']),
      cli(['tune', '--study', 'other', '--storage', storage, '--space', badSpace, '--budget-steps', '2']),
      cli(['tune', '--study', 'other2', '--storage', storage, '--space', spaceFile]),
      cli(['tune', 'show', '--study', 'nope', '--storage', storage]),
    ]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/study 'errs' in .* was created with other settings:\n {2}--sampler: the study has "random", this worker was given "tpe"\n {2}--budget-steps: the study has 2, this worker was given 3/);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--resume: there is no study 'nope'/);
    expect(space.code).toBe(1);
    expect(space.stderr).toMatch(/--space .*bad-space.json: search space 'lr': logUniform needs low > 0, got 0/);
    expect(budget.code).toBe(1);
    expect(budget.stderr).toMatch(/pass --budget-steps <n> or --budget-tokens <n>/);
    expect(noStudy.code).toBe(1);
    expect(noStudy.stderr).toMatch(/there is no study 'nope' in .* \(it has: errs\)/);
  }, 120_000);
});

describe.skipIf(!PG_BIN)('tensorlm tune on PostgreSQL', () => {
  let pg: PgServer | null = null;
  beforeAll(async () => {
    pg = await startPgServer();
  }, 90_000);
  afterAll(async () => pg?.stop(), 30_000);

  it('two worker processes serve one PostgreSQL study', async () => {
    await twoWorkers('pg-two', (pg as PgServer).url);
  }, 180_000);
});
if (!PG_BIN) console.warn(`tensorlm tune on PostgreSQL: ${NO_PG_REASON}`);
