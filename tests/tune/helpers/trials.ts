/** Trial records for sampler and pruner tests, without a storage. */
import type { Params } from '../../../src/tune/space.js';
import type { Intermediate, TrialRecord, TrialState } from '../../../src/tune/types.js';

export function fakeTrial(number: number, params: Params, value: number | null, state: TrialState = 'complete', intermediates: Intermediate[] = []): TrialRecord {
  return {
    id: number + 1,
    number,
    state,
    origin: 'sampled',
    params,
    value,
    intermediates,
    error: null,
    worker: null,
    workerHost: null,
    workerPid: null,
    createdAt: 0,
    startedAt: null,
    heartbeatAt: null,
    finishedAt: null,
    retryOf: null,
    requeuedAs: null,
  };
}

/** A learning curve: loss(step) = floor + (start - floor)·exp(-rate·step). */
export function curve(steps: readonly number[], floor: number, start = 4, rate = 0.01): Intermediate[] {
  return steps.map((step) => ({ step, value: floor + (start - floor) * Math.exp(-rate * step) }));
}
