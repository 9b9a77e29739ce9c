/** The records a study is made of, shared by the samplers, pruners, storages and the worker loop. */
import type { TrainConfig } from '../train/config.js';
import type { Params, SearchSpace } from './space.js';

export type TrialState = 'waiting' | 'running' | 'complete' | 'pruned' | 'failed';
export const TRIAL_STATES: readonly TrialState[] = ['waiting', 'running', 'complete', 'pruned', 'failed'];

/** A validation loss reported during a trial, at a resource (steps, or tokens for a token budget). */
export interface Intermediate {
  step: number;
  value: number;
}

export interface TrialRecord {
  /** Database id (unique across studies). */
  id: number;
  /** 0, 1, 2, … within the study, in creation order. */
  number: number;
  state: TrialState;
  /** 'sampled' by the sampler, or 'baseline' (the base config's own values, --baseline). */
  origin: 'sampled' | 'baseline';
  params: Params;
  /**
   * complete: the objective; pruned: the last intermediate value (what TPE ranks pruned trials
   * by); failed / waiting / running: null.
   */
  value: number | null;
  intermediates: Intermediate[];
  error: string | null;
  /** The worker that holds or held the trial: "host:pid:random". */
  worker: string | null;
  workerHost: string | null;
  workerPid: number | null;
  createdAt: number;
  startedAt: number | null;
  heartbeatAt: number | null;
  finishedAt: number | null;
  /** This trial re-runs trial `retryOf`, whose worker died or was interrupted. */
  retryOf: number | null;
  /** This failed trial was put back in the queue as trial `requeuedAs`. */
  requeuedAs: number | null;
}

export type SamplerSettings =
  | { type: 'random' }
  | { type: 'grid'; gridPoints: number }
  | { type: 'tpe'; nStartupTrials: number; nEiCandidates: number };

export type PrunerSettings =
  | { type: 'none' }
  /** Prune when the trial's best so far is worse than the median of completed trials at that point. */
  | { type: 'median'; nStartupTrials: number; nWarmupSteps: number }
  /** Asynchronous successive halving: rungs at minResource·η^k, keep the top 1/η at each. */
  | { type: 'asha'; minResource: number; reductionFactor: number; minEarlyStoppingRate: number };

/** The budget of each trial; a token budget becomes ceil(tokens / (batchSize·blockSize)) steps. */
export type Budget = { steps: number } | { tokens: number };

/** Everything that defines a study; stored with it, so every worker runs the same experiment. */
export interface StudySettings {
  space: SearchSpace;
  sampler: SamplerSettings;
  pruner: PrunerSettings;
  budget: Budget;
  /** Base train config every trial starts from (trial params override it). */
  base: Partial<TrainConfig>;
  /** Seeds the sampler: trial n's random draws depend only on (seed, n). */
  seed: number;
  /** A running trial whose heartbeat is older than this is taken to be dead and re-queued. */
  staleAfterSeconds: number;
  /** Trial 0 ran the base config's own values (--baseline), the reference the best trial is compared with. */
  baseline: boolean;
}

export interface StudyRecord {
  id: number;
  name: string;
  settings: StudySettings;
  /** Target number of trials that end with a result (complete, pruned or failed by the objective). */
  nTrials: number;
  createdAt: number;
}

/** The worker process behind a claim: host and pid let a worker on the same host see a dead one at once. */
export interface WorkerIdentity {
  id: string;
  host: string;
  pid: number;
}

export type TrialOutcome = { state: 'complete'; value: number } | { state: 'pruned'; value: number | null } | { state: 'failed'; error: string };
