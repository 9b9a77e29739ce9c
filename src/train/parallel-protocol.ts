/**
 * What the main thread and the data-parallel workers (parallel.ts, parallel-worker.ts) say to each
 * other. Kept in its own module so that the worker does not load the main-thread side, and so the
 * two sides cannot disagree about a message's shape.
 *
 * Bulk data never goes through messages: parameters, gradients and the token ids travel through
 * SharedArrayBuffers, and a message only says "a step is ready" or "my part is done". Before
 * posting, the sender stores the step number into the shared control words with Atomics, and the
 * receiver checks it with Atomics: a sequentially consistent store/load pair on the same memory
 * orders the plain writes to the shared buffers before the reads, whatever the message channel's
 * own ordering guarantees.
 */
import type { ModelConfig } from '../models/config.js';

/** Control words (Int32Array over a SharedArrayBuffer), one block per worker. */
export const CTRL_POSTED = 0; // step number whose inputs and parameters the main thread has written
export const CTRL_DONE = 1; // step number whose gradients the worker has written
export const CTRL_WORDS = 2;

/** Where one parameter lives in the flat shared buffers (offsets in floats). */
export interface ParamSlot {
  name: string;
  offset: number;
  size: number;
  shape: readonly number[];
}

/** `workerData` of a worker. */
export interface WorkerInit {
  /** Replica index, 1..replicas−1 (the main thread is replica 0). */
  rank: number;
  config: ModelConfig;
  /** Parameters in the main model's `namedParameters()` order. */
  layout: ParamSlot[];
  /** Names of the main model's modules in `namedModules()` order (the replica must match). */
  moduleNames: string[];
  /** Parameter values, written by the main thread before each step (read-only for workers). */
  params: SharedArrayBuffer;
  /** This worker's gradients, written by the worker, summed into the main model by the main thread. */
  grads: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
  backend: string;
  threads: number;
  /** Seed of this replica's dropout generator. */
  dropoutSeed: number;
}

/** Main → worker: run forward + backward on the token ids now in `inputs`. */
export interface StepRequest {
  type: 'step';
  seq: number;
  /** Present when the input buffer was (re)allocated: x then y, each rows × cols int32. */
  inputs?: SharedArrayBuffer;
  rows: number;
  cols: number;
  /** This shard's share of the batch's non-ignored targets: the loss is scaled by it before backward. */
  weight: number;
  /** `training` of every module, in `namedModules()` order (dropout on or off). */
  training: boolean[];
  /** `requiresGrad` of every parameter, in layout order (frozen parameters get no gradient). */
  requiresGrad: boolean[];
}

export type MainMessage = StepRequest;

export type WorkerMessage =
  | { type: 'ready'; backend: string; threads: number; warning: string | null }
  | { type: 'init-error'; message: string; stack?: string }
  /**
   * `loss` is the shard's unweighted mean loss; `missing` lists layout indices that got no
   * gradient; `ms` is the worker's time from receiving the request to posting this reply.
   */
  | { type: 'done'; seq: number; loss: number; missing: number[]; ms: number }
  | { type: 'error'; seq: number; message: string; stack?: string };
