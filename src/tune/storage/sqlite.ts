/**
 * Studies in a SQLite file (better-sqlite3): the default, for workers on one machine.
 *
 * WAL mode lets readers (`tune show`, heartbeats of other workers) run while one process writes;
 * every change to the queue happens in a `BEGIN IMMEDIATE` transaction, which takes the write
 * lock before reading, so two workers can never both see trial 7 waiting and both take it.
 * busy_timeout makes a worker wait for that lock instead of failing. The file must live on a
 * local disk: SQLite's locking is unreliable on network filesystems (use PostgreSQL there).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { StudyRecord, StudySettings, TrialOutcome, TrialRecord, WorkerIdentity } from '../types.js';
import {
  clipError,
  findStale,
  finiteOrNull,
  nextNumber,
  outcomeColumns,
  planClaim,
  schemaSql,
  studyFromRow,
  trialsFromRows,
  StudyExistsError,
  type ClaimOptions,
  type ClaimResult,
  type InitialTrial,
  type IntermediateRow,
  type Requeued,
  type SampleFn,
  type StudyRow,
  type TrialRow,
  type TuneStorage,
} from './common.js';

const SCHEMA = schemaSql({ id: 'INTEGER PRIMARY KEY', integer: 'INTEGER', real: 'REAL', text: 'TEXT' });

/** Runs `fn`, retrying with a growing pause while SQLite reports SQLITE_BUSY, for up to `limitMs`. */
function retryWhileBusy<T>(fn: () => T, limitMs: number): T {
  const deadline = Date.now() + limitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let wait = 5; ; wait = Math.min(wait * 2, 250)) {
    try {
      return fn();
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw e;
      Atomics.wait(pause, 0, 0, wait); // a synchronous sleep: the constructor cannot await
    }
  }
}

export class SqliteStorage implements TuneStorage {
  readonly location: string;
  private readonly db: Database.Database;

  constructor(path: string) {
    this.location = resolve(path);
    mkdirSync(dirname(this.location), { recursive: true });
    this.db = new Database(this.location);
    // busy_timeout first: switching to WAL and creating tables need the lock another worker may hold.
    this.db.pragma('busy_timeout = 60000');
    // Two workers creating the same new file at once: SQLite can answer the switch to WAL with
    // SQLITE_BUSY at once, without its busy handler, so that step is retried here.
    retryWhileBusy(() => this.db.pragma('journal_mode = WAL'), 60_000);
    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last commits).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    retryWhileBusy(() => this.db.transaction(() => this.db.exec(SCHEMA)).immediate(), 60_000);
  }

  private now(): number {
    return Date.now();
  }

  private trials(studyId: number): TrialRecord[] {
    const rows = this.db.prepare('SELECT * FROM tune_trials WHERE study_id = ? ORDER BY number').all(studyId) as TrialRow[];
    const inter = this.db
      .prepare('SELECT i.trial_id, i.step, i.value FROM tune_intermediates i JOIN tune_trials t ON t.id = i.trial_id WHERE t.study_id = ?')
      .all(studyId) as IntermediateRow[];
    return trialsFromRows(rows, inter);
  }

  private trialById(id: number): TrialRecord {
    const row = this.db.prepare('SELECT * FROM tune_trials WHERE id = ?').get(id) as TrialRow;
    const inter = this.db.prepare('SELECT trial_id, step, value FROM tune_intermediates WHERE trial_id = ?').all(id) as IntermediateRow[];
    return trialsFromRows([row], inter)[0];
  }

  private insertTrial(studyId: number, number: number, params: string, origin: string, retryOf: number | null): number {
    const info = this.db
      .prepare("INSERT INTO tune_trials (study_id, number, state, origin, params, created_at, retry_of) VALUES (?, ?, 'waiting', ?, ?, ?, ?)")
      .run(studyId, number, origin, params, this.now(), retryOf);
    return Number(info.lastInsertRowid);
  }

  /** Fails a running trial and queues a copy; only if it is still running under the same worker and heartbeat. */
  private failAndRequeue(studyId: number, trial: TrialRecord, reason: string, nextNumber: number): boolean {
    const changed = this.db
      .prepare("UPDATE tune_trials SET state = 'failed', error = ?, finished_at = ?, requeued_as = ? WHERE id = ? AND state = 'running' AND worker IS ? AND heartbeat_at IS ?")
      .run(clipError(reason), this.now(), nextNumber, trial.id, trial.worker, trial.heartbeatAt).changes;
    if (changed !== 1) return false;
    this.insertTrial(studyId, nextNumber, JSON.stringify(trial.params), trial.origin, trial.number);
    return true;
  }

  private requeueStaleSync(studyId: number, options: ClaimOptions): Requeued[] {
    const trials = this.trials(studyId);
    let next = nextNumber(trials);
    const out: Requeued[] = [];
    for (const { trial, reason } of findStale(trials, this.now(), options)) {
      if (this.failAndRequeue(studyId, trial, reason, next)) out.push({ from: trial.number, to: next++, reason });
    }
    return out;
  }

  async createStudy(name: string, settings: StudySettings, nTrials: number, initial: readonly InitialTrial[] = []): Promise<StudyRecord> {
    return this.db
      .transaction(() => {
        if (this.db.prepare('SELECT 1 FROM tune_studies WHERE name = ?').get(name)) throw new StudyExistsError(`study '${name}' already exists in ${this.location}`);
        const info = this.db.prepare('INSERT INTO tune_studies (name, settings, n_trials, created_at) VALUES (?, ?, ?, ?)').run(name, JSON.stringify(settings), nTrials, this.now());
        const id = Number(info.lastInsertRowid);
        initial.forEach((t, i) => this.insertTrial(id, i, JSON.stringify(t.params), t.origin, null));
        return studyFromRow(this.db.prepare('SELECT * FROM tune_studies WHERE id = ?').get(id) as StudyRow);
      })
      .immediate();
  }

  async loadStudy(name: string): Promise<StudyRecord | null> {
    const row = this.db.prepare('SELECT * FROM tune_studies WHERE name = ?').get(name) as StudyRow | undefined;
    return row ? studyFromRow(row) : null;
  }

  async listStudies(): Promise<StudyRecord[]> {
    return (this.db.prepare('SELECT * FROM tune_studies ORDER BY id').all() as StudyRow[]).map(studyFromRow);
  }

  async setTargetTrials(studyId: number, nTrials: number): Promise<void> {
    this.db.prepare('UPDATE tune_studies SET n_trials = ? WHERE id = ?').run(nTrials, studyId);
  }

  async claimTrial(studyId: number, worker: WorkerIdentity, sample: SampleFn, options: ClaimOptions): Promise<ClaimResult> {
    return this.db
      .transaction((): ClaimResult => {
        const study = this.db.prepare('SELECT n_trials FROM tune_studies WHERE id = ?').get(studyId) as { n_trials: number } | undefined;
        if (!study) throw new Error(`study ${studyId} no longer exists in ${this.location}`);
        const requeued = this.requeueStaleSync(studyId, options);
        const trials = this.trials(studyId);
        const plan = planClaim(trials, study.n_trials, sample);
        if (plan.kind === 'wait' || plan.kind === 'done') return { kind: plan.kind, requeued };
        const id = plan.kind === 'claim' ? plan.trial.id : this.insertTrial(studyId, plan.number, JSON.stringify(plan.params), 'sampled', null);
        const now = this.now();
        this.db
          .prepare("UPDATE tune_trials SET state = 'running', worker = ?, worker_host = ?, worker_pid = ?, started_at = ?, heartbeat_at = ? WHERE id = ?")
          .run(worker.id, worker.host, worker.pid, now, now, id);
        return { kind: 'trial', trial: this.trialById(id), requeued };
      })
      .immediate();
  }

  async requeueStale(studyId: number, options: ClaimOptions): Promise<Requeued[]> {
    return this.db.transaction(() => this.requeueStaleSync(studyId, options)).immediate();
  }

  async heartbeat(trialId: number, workerId: string): Promise<boolean> {
    return this.db.prepare("UPDATE tune_trials SET heartbeat_at = ? WHERE id = ? AND state = 'running' AND worker = ?").run(this.now(), trialId, workerId).changes === 1;
  }

  async reportIntermediate(trialId: number, workerId: string, step: number, value: number): Promise<boolean> {
    return this.db
      .transaction(() => {
        // Reporting is a sign of life too.
        const owned = this.db.prepare("UPDATE tune_trials SET heartbeat_at = ? WHERE id = ? AND state = 'running' AND worker = ?").run(this.now(), trialId, workerId).changes === 1;
        if (owned) this.db.prepare('INSERT OR REPLACE INTO tune_intermediates (trial_id, step, value) VALUES (?, ?, ?)').run(trialId, step, finiteOrNull(value));
        return owned;
      })
      .immediate();
  }

  async finishTrial(trialId: number, workerId: string, outcome: TrialOutcome): Promise<boolean> {
    const { value, error } = outcomeColumns(outcome);
    return (
      this.db
        .prepare("UPDATE tune_trials SET state = ?, value = ?, error = ?, finished_at = ? WHERE id = ? AND state = 'running' AND worker = ?")
        .run(outcome.state, value, error, this.now(), trialId, workerId).changes === 1
    );
  }

  async requeueTrial(trialId: number, workerId: string, reason: string): Promise<number | null> {
    return this.db
      .transaction(() => {
        const owner = this.db.prepare('SELECT study_id FROM tune_trials WHERE id = ?').get(trialId) as { study_id: number } | undefined;
        if (!owner) return null;
        const trials = this.trials(owner.study_id);
        const trial = trials.find((t) => t.id === trialId);
        if (!trial || trial.state !== 'running' || trial.worker !== workerId) return null;
        const next = nextNumber(trials);
        return this.failAndRequeue(owner.study_id, trial, reason, next) ? next : null;
      })
      .immediate();
  }

  async listTrials(studyId: number): Promise<TrialRecord[]> {
    // One read transaction, so trials and intermediates are one consistent snapshot.
    return this.db.transaction(() => this.trials(studyId))();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
