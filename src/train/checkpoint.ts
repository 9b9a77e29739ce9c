/**
 * Checkpoints: one `.safetensors` file holding the model weights (under their state-dict names,
 * so any safetensors reader can load them), the optimizer's buffers (`optimizer.<param>.<buffer>`),
 * and in its metadata the step, optimizer hyperparameters, generator states and data position.
 * One file written to a temporary name and renamed: a killed run never leaves a torn checkpoint.
 * A SHA-256 of the tensor data in the metadata catches corruption on load.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { AnyModule } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict, StateValue } from '../optim/optimizer.js';
import type { GeneratorState } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

const CHECKPOINT_FORMAT = 'tensorlm-checkpoint/1';

export interface CheckpointMeta {
  step: number;
  tokensSeen: number;
  elapsedSeconds: number;
  bestValLoss: number | null;
  /** Generator states by purpose (data, dropout, eval), for exact resume. */
  rng: Record<string, GeneratorState>;
  /** The run's resolved training + model config; a resume must match it. */
  config: unknown;
  /** Steps the schedule was planned for (after time-budget calibration). */
  plannedSteps: number;
}

function dataHash(tensors: Record<string, Tensor>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name].contiguous();
    hash.update(name);
    hash.update(new Uint8Array(t.storage.buffer, t.storage.byteOffset + t.offset * t.storage.BYTES_PER_ELEMENT, t.size * t.storage.BYTES_PER_ELEMENT));
  }
  return hash.digest('hex');
}

/** Splits an optimizer state dict into tensors (its Float32Array buffers) and JSON (the rest). */
function optimizerToTensors(state: OptimizerStateDict): { tensors: Record<string, Tensor>; json: unknown } {
  const tensors: Record<string, Tensor> = {};
  const scalars: Record<string, Record<string, StateValue>> = {};
  for (const [index, entry] of Object.entries(state.state)) {
    scalars[index] = {};
    for (const [key, value] of Object.entries(entry)) {
      if (value instanceof Float32Array) tensors[`optimizer.${index}.${key}`] = new Tensor(value, [value.length]);
      else scalars[index][key] = value;
    }
  }
  return { tensors, json: { state: scalars, paramGroups: state.paramGroups } };
}

function optimizerFromTensors(json: { state: Record<string, Record<string, StateValue>>; paramGroups: OptimizerStateDict['paramGroups'] }, tensors: Record<string, Tensor>): OptimizerStateDict {
  const state: OptimizerStateDict['state'] = {};
  for (const [index, entry] of Object.entries(json.state)) state[Number(index)] = { ...entry };
  for (const [name, t] of Object.entries(tensors)) {
    const m = /^optimizer\.(\d+)\.(.+)$/.exec(name);
    if (!m) continue;
    const index = Number(m[1]);
    state[index] ??= {};
    state[index][m[2]] = t.toTypedArray() as Float32Array;
  }
  return { state, paramGroups: json.paramGroups };
}

export function saveCheckpoint(path: string, model: AnyModule, optimizer: Optimizer, meta: CheckpointMeta): void {
  const tensors: Record<string, Tensor> = {};
  const aliases: Record<string, string> = {};
  const firstName = new Map<Tensor['storage'], string>();
  for (const [name, t] of Object.entries(model.stateDict())) {
    // Tied weights appear under two names; store the data once and record the alias.
    const first = firstName.get(t.storage);
    if (first !== undefined) {
      aliases[name] = first;
      continue;
    }
    tensors[name] = t;
    firstName.set(t.storage, name);
  }
  const opt = optimizerToTensors(optimizer.stateDict());
  Object.assign(tensors, opt.tensors);
  saveSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    meta: JSON.stringify(meta),
    optimizer: JSON.stringify(opt.json),
    aliases: JSON.stringify(aliases),
    dataSha256: dataHash(tensors),
  });
}

export interface LoadedCheckpoint {
  meta: CheckpointMeta;
  modelState: Record<string, Tensor>;
  optimizerState: OptimizerStateDict;
}

/** Reads and verifies a checkpoint; throws a clear error for a missing, truncated or corrupted file. */
export function readCheckpoint(path: string): LoadedCheckpoint {
  if (!existsSync(path)) throw new Error(`checkpoint ${path} does not exist`);
  let loaded;
  try {
    loaded = loadSafetensors(path);
  } catch (error) {
    throw new Error(`checkpoint ${path} is unreadable or truncated: ${(error as Error).message}`);
  }
  const { tensors, metadata } = loaded;
  if (metadata.format !== CHECKPOINT_FORMAT) throw new Error(`checkpoint ${path} is not a TensorLM checkpoint (format '${metadata.format ?? 'missing'}')`);
  if (dataHash(tensors) !== metadata.dataSha256) throw new Error(`checkpoint ${path} is corrupted: its data does not match the checksum recorded when it was written`);
  const modelState: Record<string, Tensor> = {};
  const optimizerTensors: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) (name.startsWith('optimizer.') ? optimizerTensors : modelState)[name] = t;
  const aliases = JSON.parse(metadata.aliases ?? '{}') as Record<string, string>;
  for (const [alias, name] of Object.entries(aliases)) modelState[alias] = modelState[name];
  return {
    meta: JSON.parse(metadata.meta) as CheckpointMeta,
    modelState,
    optimizerState: optimizerFromTensors(JSON.parse(metadata.optimizer), optimizerTensors),
  };
}
