/**
 * The worker side of DataParallel (parallel.ts): one replica of the model on its own thread.
 *
 * It builds a language model (createLanguageModel) from the main model's config, then for every step request copies the
 * main thread's parameter values in from shared memory, runs forward + backward on its shard of
 * the batch, writes the gradients to its shared gradient buffer and replies with the loss. The
 * replica's optimizer state does not exist: only the main thread's model is ever updated.
 *
 * Started either as compiled JS (dist/train/parallel-worker.js) or, from TypeScript sources, via
 * an eval'd bootstrap that registers tsx first (see startWorker in parallel.ts).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { getNumThreads, installNodeBackends, setNumThreads } from '../backends/node.js';
import { backendUnavailableReason, fastestBackend, getBackend, setBackend, setBackendInstaller } from '../backends/registry.js';
import { createLanguageModel, type LanguageModel } from '../models/language-model.js';
import type { AnyModule } from '../nn/module.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { accumulateGradients, languageModelLoss } from './loop.js';
import { CTRL_DONE, CTRL_POSTED, type MainMessage, type StepRequest, type WorkerInit, type WorkerMessage } from './parallel-protocol.js';

type Port = NonNullable<typeof parentPort>;

function errorFields(e: unknown): { message: string; stack?: string } {
  return e instanceof Error ? { message: e.message, stack: e.stack } : { message: String(e) };
}

/** Chooses the main thread's backend when this thread has it (koffi/BLAS might not load here). */
function chooseBackend(requested: string): string | null {
  const reason = backendUnavailableReason(requested);
  if (reason === null) {
    setBackend(requested);
    return null;
  }
  const fallback = fastestBackend();
  setBackend(fallback);
  return `backend '${requested}' is not available in the worker thread (${reason ?? 'not registered there'}); it uses '${fallback}'`;
}

class Replica {
  readonly model: LanguageModel;
  readonly params: Tensor[];
  readonly modules: AnyModule[];
  readonly shared: Float32Array;
  readonly grads: Float32Array;
  readonly ctrl: Int32Array;
  inputs: Int32Array | null = null;

  constructor(readonly init: WorkerInit) {
    // The replica's initial weights never matter (every step overwrites them); a fixed generator
    // only makes its construction deterministic.
    this.model = createLanguageModel(init.config, { generator: new Generator(0), dropoutGenerator: new Generator(init.dropoutSeed) });
    const byName = new Map(this.model.namedParameters());
    if (byName.size !== init.layout.length) {
      throw new Error(`the replica built from the config has ${byName.size} parameters, the main model ${init.layout.length}: was the main model changed after construction?`);
    }
    this.params = init.layout.map((slot) => {
      const p = byName.get(slot.name);
      if (!p) throw new Error(`the replica has no parameter '${slot.name}' (the main model does)`);
      if (p.shape.length !== slot.shape.length || p.shape.some((d, i) => d !== slot.shape[i])) {
        throw new Error(`parameter '${slot.name}' is [${p.shape.join(', ')}] in the replica but [${slot.shape.join(', ')}] in the main model`);
      }
      if (!p.isContiguous) throw new Error(`replica parameter '${slot.name}' is not contiguous`);
      return p;
    });
    const modules = this.model.namedModules();
    const names = modules.map(([name]) => name);
    if (names.length !== init.moduleNames.length || names.some((n, i) => n !== init.moduleNames[i])) {
      throw new Error('the replica built from the config has a different module tree from the main model');
    }
    this.modules = modules.map(([, m]) => m);
    this.shared = new Float32Array(init.params);
    this.grads = new Float32Array(init.grads);
    this.ctrl = new Int32Array(init.ctrl);
  }

  /** One shard's forward + backward; returns the unweighted loss and the parameters without a gradient. */
  step(req: StepRequest): { loss: number; missing: number[] } {
    // Pairs with the main thread's Atomics.store before it posted: its writes are visible now.
    const posted = Atomics.load(this.ctrl, CTRL_POSTED);
    if (posted !== req.seq) throw new Error(`step ${req.seq} was posted but the shared control word says ${posted}`);
    if (req.inputs) this.inputs = new Int32Array(req.inputs);
    if (!this.inputs || this.inputs.length < 2 * req.rows * req.cols) throw new Error('the shared input buffer is missing or too small');
    if (req.training.length !== this.modules.length || req.requiresGrad.length !== this.params.length) {
      throw new Error('step request does not match the replica (module or parameter count)');
    }
    for (let i = 0; i < this.modules.length; i++) this.modules[i].training = req.training[i];
    const { layout } = this.init;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      const slot = layout[i];
      p.storage.set(this.shared.subarray(slot.offset, slot.offset + slot.size), p.offset);
      if (p.requiresGrad !== req.requiresGrad[i]) p.requiresGrad = req.requiresGrad[i];
      p.grad = null;
    }
    const n = req.rows * req.cols;
    // Copies, not views: the shared buffer is rewritten by the next step while tensors of this
    // step's graph could still be referenced.
    const x = new Tensor(this.inputs.slice(0, n), [req.rows, req.cols]);
    const y = new Tensor(this.inputs.slice(n, 2 * n), [req.rows, req.cols]);
    // Scaling the seed gradient (not the summed gradients) keeps the main thread's reduction a
    // plain sum, and is exactly what the full-batch mean would have done to this shard's terms.
    const value = accumulateGradients(this.model, languageModelLoss, { x, y }, req.weight);
    const missing: number[] = [];
    for (let i = 0; i < this.params.length; i++) {
      const g = this.params[i].grad;
      const slot = layout[i];
      if (g === null) {
        missing.push(i);
        continue;
      }
      const dense = g.isContiguous ? g : g.contiguous();
      this.grads.set(dense.storage.subarray(dense.offset, dense.offset + slot.size) as Float32Array, slot.offset);
    }
    return { loss: value, missing };
  }
}

function serve(port: Port, init: WorkerInit): void {
  // A worker thread has its own module instances: it is an entry point and names Node's backends.
  setBackendInstaller(installNodeBackends);
  const post = (m: WorkerMessage) => port.postMessage(m);
  let replica: Replica;
  let warning: string | null;
  try {
    warning = chooseBackend(init.backend);
    setNumThreads(init.threads);
    replica = new Replica(init);
  } catch (e) {
    post({ type: 'init-error', ...errorFields(e) });
    return;
  }
  port.on('message', (m: MainMessage) => {
    if (m.type !== 'step') return;
    const start = performance.now();
    try {
      const { loss, missing } = replica.step(m);
      Atomics.store(replica.ctrl, CTRL_DONE, m.seq);
      post({ type: 'done', seq: m.seq, loss, missing, ms: performance.now() - start });
    } catch (e) {
      post({ type: 'error', seq: m.seq, ...errorFields(e) });
    }
  });
  post({ type: 'ready', backend: getBackend(), threads: getNumThreads(), warning });
}

// Importing this module on the main thread (e.g. by a test collecting files) does nothing.
if (!isMainThread && parentPort && workerData && (workerData as { kind?: string }).kind === 'tensorlm-data-parallel') {
  serve(parentPort, (workerData as { init: WorkerInit }).init);
}
