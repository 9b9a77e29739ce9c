/**
 * The storage contract and the decisions every backend makes the same way inside its claim
 * transaction: which running trials are dead, and what a worker gets next.
 */
import type { Params } from '../space.js';
import type { StudyRecord, StudySettings, TrialOutcome, TrialRecord, TrialState, WorkerIdentity } from '../types.js';

export interface ClaimOptions {
  /** A running trial whose heartbeat is older than this is dead (its worker crashed or lost the network). */
  staleAfterMs: number;
  /**
   * Whether the process holding a trial is known to be gone; lets a worker on the same host
   * re-queue a killed sibling's trial at once instead of after staleAfterMs.
   */
  isWorkerDead?: (host: string, pid: number) => boolean;
}

/** Proposes params for trial `number` from the study's history; null when the sampler is used up. */
export type SampleFn = (history: readonly TrialRecord[], number: number) => Params | null;

export interface Requeued {
  /** The trial marked failed. */
  from: number;
  /** The fresh waiting trial with the same params. */
  to: number;
  reason: string;
}

export type ClaimResult =
  | { kind: 'trial'; trial: TrialRecord; requeued: Requeued[] }
  /** Every trial is handed out but some still run elsewhere: poll again (one may die and come back). */
  | { kind: 'wait'; requeued: Requeued[] }
  /** The study has its trials, all finished. */
  | { kind: 'done'; requeued: Requeued[] };

export interface InitialTrial {
  params: Params;
  origin: TrialRecord['origin'];
}

export class StudyExistsError extends Error {}

/**
 * Persistence of studies and trials. Every method that changes a trial a worker holds names the
 * worker and returns false when the trial is no longer its own (it was declared dead and
 * re-queued), so a late result is never written over the re-run's.
 */
export interface TuneStorage {
  /** Where the study lives, for messages (a file path, or a URL without the password). */
  readonly location: string;
  createStudy(name: string, settings: StudySettings, nTrials: number, initial?: readonly InitialTrial[]): Promise<StudyRecord>;
  loadStudy(name: string): Promise<StudyRecord | null>;
  listStudies(): Promise<StudyRecord[]>;
  setTargetTrials(studyId: number, nTrials: number): Promise<void>;
  /**
   * Atomically: re-queue dead trials, then hand the worker the oldest waiting trial, or create a
   * new one from `sample` while the study has fewer than its target.
   */
  claimTrial(studyId: number, worker: WorkerIdentity, sample: SampleFn, options: ClaimOptions): Promise<ClaimResult>;
  /** Re-queues dead running trials now (what --resume does first). */
  requeueStale(studyId: number, options: ClaimOptions): Promise<Requeued[]>;
  heartbeat(trialId: number, workerId: string): Promise<boolean>;
  reportIntermediate(trialId: number, workerId: string, step: number, value: number): Promise<boolean>;
  finishTrial(trialId: number, workerId: string, outcome: TrialOutcome): Promise<boolean>;
  /** Marks the worker's own trial failed and queues a copy (a worker stopping with Ctrl-C); returns the copy's number. */
  requeueTrial(trialId: number, workerId: string, reason: string): Promise<number | null>;
  listTrials(studyId: number): Promise<TrialRecord[]>;
  close(): Promise<void>;
}

/** A failed trial that was re-queued is replaced by its copy: it does not count towards the target. */
export function countsTowardTarget(t: TrialRecord): boolean {
  return !(t.state === 'failed' && t.requeuedAs !== null);
}

export interface StaleTrial {
  trial: TrialRecord;
  reason: string;
}

export function findStale(trials: readonly TrialRecord[], now: number, options: ClaimOptions): StaleTrial[] {
  const out: StaleTrial[] = [];
  for (const t of trials) {
    if (t.state !== 'running') continue;
    if (t.workerHost !== null && t.workerPid !== null && options.isWorkerDead?.(t.workerHost, t.workerPid)) {
      out.push({ trial: t, reason: `worker ${t.worker} is gone (process ${t.workerPid} on ${t.workerHost} no longer exists)` });
    } else if (t.heartbeatAt !== null && now - t.heartbeatAt > options.staleAfterMs) {
      out.push({ trial: t, reason: `worker ${t.worker} stopped sending heartbeats (last ${Math.round((now - t.heartbeatAt) / 1000)} s ago)` });
    }
  }
  return out;
}

export type ClaimDecision = { kind: 'claim'; trial: TrialRecord } | { kind: 'create'; number: number } | { kind: 'wait' } | { kind: 'done' };

/** What a worker gets, given the study's trials after dead ones were re-queued. */
export function decideClaim(trials: readonly TrialRecord[], nTrials: number): ClaimDecision {
  const waiting = trials.filter((t) => t.state === 'waiting').sort((a, b) => a.number - b.number);
  if (waiting.length > 0) return { kind: 'claim', trial: waiting[0] };
  const counted = trials.filter(countsTowardTarget).length;
  if (counted < nTrials) return { kind: 'create', number: nextNumber(trials) };
  return trials.some((t) => t.state === 'running') ? { kind: 'wait' } : { kind: 'done' };
}

export function nextNumber(trials: readonly TrialRecord[]): number {
  return trials.reduce((m, t) => Math.max(m, t.number + 1), 0);
}

export type ClaimPlan = { kind: 'claim'; trial: TrialRecord } | { kind: 'create'; number: number; params: Params } | { kind: 'wait' } | { kind: 'done' };

/**
 * `decideClaim` with the new trial's params already drawn from `sample`: all a backend's claim
 * transaction has left to do is write the plan, so both backends decide (and give up) alike.
 */
export function planClaim(trials: readonly TrialRecord[], nTrials: number, sample: SampleFn): ClaimPlan {
  const decision = decideClaim(trials, nTrials);
  if (decision.kind !== 'create') return decision;
  const params = sample(trials, decision.number);
  // A used-up sampler ends the study as its target would: wait while trials still run elsewhere.
  if (params === null) return { kind: trials.some((t) => t.state === 'running') ? 'wait' : 'done' };
  return { kind: 'create', number: decision.number, params };
}

/** How one SQL dialect spells the column types of the schema both SQL backends keep. */
export interface SqlTypes {
  /** An auto-numbered integer primary key. */
  id: string;
  integer: string;
  real: string;
  text: string;
}

/**
 * The tables of both SQL backends (the columns of StudyRow and TrialRow), in one dialect's types:
 * one definition, so the two backends' tables cannot drift apart. Safe to run on every open.
 */
export function schemaSql({ id, integer, real, text }: SqlTypes): string {
  return `
CREATE TABLE IF NOT EXISTS tune_studies (
  id ${id},
  name ${text} NOT NULL UNIQUE,
  settings ${text} NOT NULL,
  n_trials ${integer} NOT NULL,
  created_at ${real} NOT NULL
);
CREATE TABLE IF NOT EXISTS tune_trials (
  id ${id},
  study_id ${integer} NOT NULL REFERENCES tune_studies(id) ON DELETE CASCADE,
  number ${integer} NOT NULL,
  state ${text} NOT NULL CHECK (state IN ('waiting', 'running', 'complete', 'pruned', 'failed')),
  origin ${text} NOT NULL,
  params ${text} NOT NULL,
  value ${real},
  error ${text},
  worker ${text},
  worker_host ${text},
  worker_pid ${integer},
  created_at ${real} NOT NULL,
  started_at ${real},
  heartbeat_at ${real},
  finished_at ${real},
  retry_of ${integer},
  requeued_as ${integer},
  UNIQUE (study_id, number)
);
CREATE INDEX IF NOT EXISTS tune_trials_study_state ON tune_trials (study_id, state);
CREATE TABLE IF NOT EXISTS tune_intermediates (
  trial_id ${integer} NOT NULL REFERENCES tune_trials(id) ON DELETE CASCADE,
  step ${real} NOT NULL,
  value ${real},
  PRIMARY KEY (trial_id, step)
);
`;
}

/** Row shape shared by both SQL backends (snake_case columns). */
export interface TrialRow {
  id: number;
  number: number;
  state: string;
  origin: string;
  params: string;
  value: number | null;
  error: string | null;
  worker: string | null;
  worker_host: string | null;
  worker_pid: number | null;
  created_at: number;
  started_at: number | null;
  heartbeat_at: number | null;
  finished_at: number | null;
  retry_of: number | null;
  requeued_as: number | null;
}

export interface StudyRow {
  id: number;
  name: string;
  settings: string;
  n_trials: number;
  created_at: number;
}

export function studyFromRow(row: StudyRow): StudyRecord {
  return { id: row.id, name: row.name, settings: JSON.parse(row.settings) as StudySettings, nTrials: row.n_trials, createdAt: row.created_at };
}

export function trialFromRow(row: TrialRow, intermediates: TrialRecord['intermediates']): TrialRecord {
  return {
    id: row.id,
    number: row.number,
    state: row.state as TrialState,
    origin: row.origin as TrialRecord['origin'],
    params: JSON.parse(row.params) as Params,
    value: row.value,
    intermediates,
    error: row.error,
    worker: row.worker,
    workerHost: row.worker_host,
    workerPid: row.worker_pid,
    createdAt: row.created_at,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    finishedAt: row.finished_at,
    retryOf: row.retry_of,
    requeuedAs: row.requeued_as,
  };
}

export interface IntermediateRow {
  trial_id: number;
  step: number;
  value: number | null;
}

/** Groups intermediate rows by trial id, each list in step order. */
export function groupIntermediates(rows: readonly IntermediateRow[]): Map<number, TrialRecord['intermediates']> {
  const out = new Map<number, TrialRecord['intermediates']>();
  for (const r of rows) {
    let list = out.get(r.trial_id);
    if (!list) out.set(r.trial_id, (list = []));
    // Non-finite values are stored as NULL (SQLite has no NaN); they read back as NaN.
    list.push({ step: r.step, value: r.value ?? Number.NaN });
  }
  for (const list of out.values()) list.sort((a, b) => a.step - b.step);
  return out;
}

/** Trial rows as records, each with its intermediate values (from rows of any trials). */
export function trialsFromRows(rows: readonly TrialRow[], intermediates: readonly IntermediateRow[]): TrialRecord[] {
  const grouped = groupIntermediates(intermediates);
  return rows.map((r) => trialFromRow(r, grouped.get(r.id) ?? []));
}

export function finiteOrNull(x: number | null): number | null {
  return x !== null && Number.isFinite(x) ? x : null;
}

/** Trial values are JSON numbers: keep error text bounded so a huge stack cannot bloat the table. */
export function clipError(message: string): string {
  return message.length > 2000 ? `${message.slice(0, 2000)}…` : message;
}

/** The value and error columns of a finished trial: a failed one keeps its (clipped) message and no value. */
export function outcomeColumns(outcome: TrialOutcome): { value: number | null; error: string | null } {
  return outcome.state === 'failed' ? { value: null, error: clipError(outcome.error) } : { value: finiteOrNull(outcome.value), error: null };
}
