/**
 * The storage contract, run against SQLite and against a real PostgreSQL server started on
 * loopback for this file: studies, atomic claims (also from several processes at once),
 * ownership of held trials, stale-heartbeat and dead-worker re-queueing, resume.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage, StudyExistsError, type ClaimOptions, type ClaimResult, type TuneStorage } from '../../src/tune/storage/index.js';
import type { StudySettings, TrialRecord, WorkerIdentity } from '../../src/tune/types.js';
import { makeTempDir } from '../tokenizers/helpers.js';
import { NO_PG_REASON, PG_BIN, startPgServer, type PgServer } from './helpers/pg-server.js';

const run = promisify(execFile);
const tmp = makeTempDir('tensorlm-tune-storage-');
afterAll(() => tmp.cleanup());

const SETTINGS: StudySettings = {
  space: { lr: { type: 'logUniform', low: 1e-4, high: 1e-2 } },
  sampler: { type: 'random' },
  pruner: { type: 'none' },
  budget: { steps: 10 },
  base: { batchSize: 4 },
  seed: 0,
  staleAfterSeconds: 60,
  baseline: false,
};
const NEVER_STALE: ClaimOptions = { staleAfterMs: 1e9 };
const worker = (name: string, pid = 1): WorkerIdentity => ({ id: `${name}:${pid}`, host: 'test-host', pid });
const byNumber = (_history: readonly TrialRecord[], n: number) => ({ x: n });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let studyCounter = 0;
const studyName = () => `s${process.pid}-${studyCounter++}`;

function expectTrial(r: ClaimResult): TrialRecord {
  if (r.kind !== 'trial') throw new Error(`expected a trial, got ${r.kind}`);
  return r.trial;
}

interface Backend {
  name: string;
  skip: string | null;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A storage spec every connection of one test shares. */
  spec(): string;
}

let pg: PgServer | null = null;
let sqliteFile = '';
const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: null,
    setup: async () => {
      sqliteFile = join(tmp.dir, 'contract.sqlite');
    },
    teardown: async () => undefined,
    spec: () => sqliteFile,
  },
  {
    name: 'postgresql',
    skip: PG_BIN ? null : NO_PG_REASON,
    setup: async () => {
      pg = await startPgServer();
    },
    teardown: async () => {
      await pg?.stop();
    },
    spec: () => (pg as PgServer).url,
  },
];

for (const backend of backends) {
  if (backend.skip) console.warn(`tune storage contract on ${backend.name}: ${backend.skip}`);
  describe.skipIf(backend.skip !== null)(`tune storage contract: ${backend.name}`, () => {
    const open: TuneStorage[] = [];
    const connect = () => {
      const s = openStorage(backend.spec());
      open.push(s);
      return s;
    };
    beforeAll(backend.setup, 90_000);
    afterAll(async () => {
      await Promise.all(open.map((s) => s.close().catch(() => undefined)));
      await backend.teardown();
    }, 30_000);

    it('creates, loads and lists studies; a second create of the same name fails', async () => {
      const s = connect();
      const name = studyName();
      const study = await s.createStudy(name, SETTINGS, 5, [{ params: { lr: 3e-3 }, origin: 'baseline' }]);
      expect(study.name).toBe(name);
      expect(study.nTrials).toBe(5);
      expect(await s.loadStudy(name)).toEqual(study);
      expect((await s.loadStudy(name))?.settings).toEqual(SETTINGS);
      expect(await s.loadStudy('no-such-study')).toBeNull();
      expect((await s.listStudies()).map((x) => x.name)).toContain(name);
      await expect(connect().createStudy(name, SETTINGS, 5)).rejects.toBeInstanceOf(StudyExistsError);
      const trials = await s.listTrials(study.id);
      expect(trials.map((t) => [t.number, t.state, t.origin, t.params])).toEqual([[0, 'waiting', 'baseline', { lr: 3e-3 }]]);
    });

    it('hands out waiting trials first, samples new ones up to the target, then waits and ends', async () => {
      const s = connect();
      const study = await s.createStudy(studyName(), SETTINGS, 3, [{ params: { x: 'queued' }, origin: 'baseline' }]);
      const seen: number[] = [];
      const sample = (history: readonly TrialRecord[], number: number) => {
        seen.push(history.length);
        return { x: number };
      };
      const a = expectTrial(await s.claimTrial(study.id, worker('a'), sample, NEVER_STALE));
      expect([a.number, a.params, a.state, a.worker, a.workerHost, a.workerPid]).toEqual([0, { x: 'queued' }, 'running', 'a:1', 'test-host', 1]);
      expect(seen).toEqual([]);
      const b = expectTrial(await s.claimTrial(study.id, worker('b'), sample, NEVER_STALE));
      const c = expectTrial(await s.claimTrial(study.id, worker('a'), sample, NEVER_STALE));
      expect([b.number, b.params, c.number, c.params]).toEqual([1, { x: 1 }, 2, { x: 2 }]);
      expect(seen).toEqual([1, 2]);
      expect((await s.claimTrial(study.id, worker('c'), sample, NEVER_STALE)).kind).toBe('wait');
      expect(await s.finishTrial(a.id, 'a:1', { state: 'complete', value: 1.5 })).toBe(true);
      expect(await s.finishTrial(b.id, 'b:1', { state: 'pruned', value: 2.5 })).toBe(true);
      expect((await s.claimTrial(study.id, worker('c'), sample, NEVER_STALE)).kind).toBe('wait');
      expect(await s.finishTrial(c.id, 'a:1', { state: 'failed', error: 'loss became NaN' })).toBe(true);
      expect((await s.claimTrial(study.id, worker('c'), sample, NEVER_STALE)).kind).toBe('done');
      const trials = await s.listTrials(study.id);
      expect(trials.map((t) => [t.state, t.value, t.error])).toEqual([
        ['complete', 1.5, null],
        ['pruned', 2.5, null],
        ['failed', null, 'loss became NaN'],
      ]);
      expect(trials.every((t) => t.finishedAt !== null && t.startedAt !== null && t.finishedAt >= t.startedAt)).toBe(true);
      // A used-up sampler ends the study early.
      const grid = await s.createStudy(studyName(), SETTINGS, 10);
      expect((await s.claimTrial(grid.id, worker('a'), () => null, NEVER_STALE)).kind).toBe('done');
    });

    it('only the holder may heartbeat, report or finish a trial, and only once', async () => {
      const s = connect();
      const study = await s.createStudy(studyName(), SETTINGS, 1);
      const t = expectTrial(await s.claimTrial(study.id, worker('a'), byNumber, NEVER_STALE));
      expect(await s.heartbeat(t.id, 'a:1')).toBe(true);
      expect(await s.heartbeat(t.id, 'intruder')).toBe(false);
      expect(await s.reportIntermediate(t.id, 'intruder', 5, 1)).toBe(false);
      expect(await s.finishTrial(t.id, 'intruder', { state: 'complete', value: 1 })).toBe(false);
      expect(await s.reportIntermediate(t.id, 'a:1', 5, 3.25)).toBe(true);
      expect(await s.reportIntermediate(t.id, 'a:1', 10, 2.5)).toBe(true);
      // Reporting the same step again replaces the value; non-finite values read back as NaN.
      expect(await s.reportIntermediate(t.id, 'a:1', 10, 2.25)).toBe(true);
      expect(await s.reportIntermediate(t.id, 'a:1', 15, Number.POSITIVE_INFINITY)).toBe(true);
      expect(await s.finishTrial(t.id, 'a:1', { state: 'complete', value: 2.25 })).toBe(true);
      expect(await s.finishTrial(t.id, 'a:1', { state: 'failed', error: 'again' })).toBe(false);
      expect(await s.reportIntermediate(t.id, 'a:1', 20, 2)).toBe(false);
      expect(await s.requeueTrial(t.id, 'a:1', 'late')).toBeNull();
      const [done] = await s.listTrials(study.id);
      expect(done.state).toBe('complete');
      expect(done.intermediates.slice(0, 2)).toEqual([
        { step: 5, value: 3.25 },
        { step: 10, value: 2.25 },
      ]);
      expect(done.intermediates[2].step).toBe(15);
      expect(done.intermediates[2].value).toBeNaN();
    });

    it('re-queues a trial whose heartbeat went stale: failed, plus a fresh waiting copy; the late worker loses it', async () => {
      const s = connect();
      const study = await s.createStudy(studyName(), SETTINGS, 2);
      const a = expectTrial(await s.claimTrial(study.id, worker('a'), byNumber, NEVER_STALE));
      const b = expectTrial(await s.claimTrial(study.id, worker('b'), byNumber, NEVER_STALE));
      await sleep(400);
      // b is alive: its heartbeat is fresh.
      expect(await s.heartbeat(b.id, 'b:1')).toBe(true);
      const claim = await s.claimTrial(study.id, worker('c'), byNumber, { staleAfterMs: 250 });
      expect(claim.requeued).toEqual([{ from: 0, to: 2, reason: expect.stringMatching(/a:1 stopped sending heartbeats/) as unknown as string }]);
      const copy = expectTrial(claim);
      expect([copy.number, copy.params, copy.retryOf, copy.worker]).toEqual([2, a.params, 0, 'c:1']);
      expect(await s.heartbeat(a.id, 'a:1')).toBe(false);
      expect(await s.finishTrial(a.id, 'a:1', { state: 'complete', value: 1 })).toBe(false);
      const trials = await s.listTrials(study.id);
      expect(trials.map((t) => [t.number, t.state, t.requeuedAs, t.retryOf])).toEqual([
        [0, 'failed', 2, null],
        [1, 'running', null, null],
        [2, 'running', null, 0],
      ]);
      expect(trials[0].error).toMatch(/stopped sending heartbeats/);
      // The failed original does not count: two trials finish and the study is done.
      await s.finishTrial(b.id, 'b:1', { state: 'complete', value: 2 });
      await s.finishTrial(copy.id, 'c:1', { state: 'complete', value: 3 });
      expect((await s.claimTrial(study.id, worker('c'), byNumber, NEVER_STALE)).kind).toBe('done');
    });

    it('re-queues at once a trial whose worker process is known to be dead', async () => {
      const s = connect();
      const study = await s.createStudy(studyName(), SETTINGS, 1);
      const a = expectTrial(await s.claimTrial(study.id, worker('a', 4242), byNumber, NEVER_STALE));
      const deadPids = new Set([4242]);
      const options: ClaimOptions = { staleAfterMs: 1e9, isWorkerDead: (host, pid) => host === 'test-host' && deadPids.has(pid) };
      const claim = await s.claimTrial(study.id, worker('b'), byNumber, options);
      expect(claim.requeued.map((r) => [r.from, r.to])).toEqual([[0, 1]]);
      expect(claim.requeued[0].reason).toMatch(/process 4242 on test-host no longer exists/);
      expect(expectTrial(claim).params).toEqual(a.params);
    });

    it('a stopping worker hands its trial back (requeueTrial); resume re-queues what dead workers left running', async () => {
      const s = connect();
      const study = await s.createStudy(studyName(), SETTINGS, 3);
      const a = expectTrial(await s.claimTrial(study.id, worker('a'), byNumber, NEVER_STALE));
      expect(await s.requeueTrial(a.id, 'b:1', 'not mine')).toBeNull();
      expect(await s.requeueTrial(a.id, 'a:1', 'interrupted')).toBe(1);
      const again = expectTrial(await s.claimTrial(study.id, worker('b'), byNumber, NEVER_STALE));
      expect([again.number, again.params, again.retryOf]).toEqual([1, { x: 0 }, 0]);
      // Both workers die; the study is resumed later.
      const c = expectTrial(await s.claimTrial(study.id, worker('c', 7), byNumber, NEVER_STALE));
      const options: ClaimOptions = { staleAfterMs: 1e9, isWorkerDead: () => true };
      const requeued = await s.requeueStale(study.id, options);
      expect(requeued.map((r) => [r.from, r.to]).sort()).toEqual([
        [1, 3],
        [2, 4],
      ]);
      expect(await s.finishTrial(c.id, 'c:7', { state: 'complete', value: 1 })).toBe(false);
      const resumed = connect();
      const numbers: number[] = [];
      for (;;) {
        const r = await resumed.claimTrial(study.id, worker('d'), byNumber, NEVER_STALE);
        if (r.kind !== 'trial') {
          expect(r.kind).toBe('done');
          break;
        }
        numbers.push(r.trial.number);
        await resumed.finishTrial(r.trial.id, 'd:1', { state: 'complete', value: r.trial.number });
      }
      expect(numbers).toEqual([3, 4, 5]);
      const trials = await resumed.listTrials(study.id);
      expect(trials.filter((t) => t.state === 'complete').map((t) => t.params)).toEqual([{ x: 0 }, { x: 2 }, { x: 5 }]);
      // The target can be raised later.
      await resumed.setTargetTrials(study.id, 4);
      expect(expectTrial(await resumed.claimTrial(study.id, worker('d'), byNumber, NEVER_STALE)).number).toBe(6);
    });

    it('concurrent claimers on separate connections never get the same trial', async () => {
      const s = connect();
      const n = 30;
      const study = await s.createStudy(studyName(), SETTINGS, n);
      const claimers = Array.from({ length: 6 }, () => connect());
      const deadline = Date.now() + 30_000;
      const got = await Promise.all(
        claimers.map(async (c, i) => {
          const mine: number[] = [];
          for (;;) {
            // A claimer that failed leaves its trial running: the others must not wait for it forever.
            if (Date.now() > deadline) throw new Error('claimers did not finish in 30 s');
            const r = await c.claimTrial(study.id, worker(`w${i}`), byNumber, NEVER_STALE);
            if (r.kind === 'done') return mine;
            if (r.kind === 'wait') {
              await sleep(1);
              continue;
            }
            mine.push(r.trial.number);
            await c.reportIntermediate(r.trial.id, `w${i}:1`, 1, 1);
            expect(await c.finishTrial(r.trial.id, `w${i}:1`, { state: 'complete', value: r.trial.number })).toBe(true);
          }
        }),
      );
      const all = got.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
    });

    it('concurrent claimers in separate processes never get the same trial', async () => {
      const s = connect();
      const n = 40;
      const study = await s.createStudy(studyName(), SETTINGS, n);
      const script = join(import.meta.dirname, 'helpers', 'claimer.ts');
      const startAt = Date.now() + 5000;
      const outputs = await Promise.all(
        Array.from({ length: 4 }, () => run(process.execPath, ['--import', 'tsx', script, backend.spec(), study.name, String(startAt), '10'], { cwd: join(import.meta.dirname, '../..') })),
      );
      const lists = outputs.map((o) => JSON.parse(o.stdout.trim().split('\n').pop() as string) as number[]);
      const all = lists.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
      // Contention really happened: more than one process got trials.
      expect(lists.filter((l) => l.length > 0).length).toBeGreaterThan(1);
      const trials = await s.listTrials(study.id);
      expect(trials.every((t) => t.state === 'complete' && t.value === t.number)).toBe(true);
    }, 60_000);
  });
}
