/**
 * Checkpoints: one `.safetensors` file holding the model weights (under their state-dict names,
 * so any safetensors reader can load them), the optimizer's buffers (`optimizer.<param>.<buffer>`),
 * and in its metadata (all strings, as safetensors requires):
 *
 *   format      'tensorlm-checkpoint/2'
 *   meta        JSON CheckpointMeta: step, tokensSeen, elapsedSeconds, bestValLoss, rng (generator
 *               states), config (the run's config: train, model, …), plannedSteps
 *   optimizer   JSON: the optimizer state dict without its Float32Array buffers (those are tensors)
 *   aliases     JSON {"alias": "name"}: tied weights, stored once under their first name
 *   tokenizer   JSON {"sha256", "vocabSize"} of the run's tokenizer (tokenizer.json beside the
 *               checkpoint, or the one given to saveCheckpoint), or null: loadRun and resume refuse
 *               a tokenizer.json that is not the one the weights were trained with
 *   fileSha256  SHA-256 of the whole file — length prefix, header, every metadata field, tensor
 *               bytes — with these 64 hex digits read as '0' (io/safetensors.ts, selfDigestKey)
 *
 * One file written to a temporary name and renamed: a killed run never leaves a torn checkpoint;
 * the checksum is computed in memory before that single write.
 *
 * Reading (`readCheckpoint`) checks, before anything is built from the file: the safetensors
 * structure (io/), the checksum, every metadata field against a schema with bounds (known keys,
 * integers ≥ 0, finite numbers, generator states, aliases that name stored model tensors of the
 * right kind, a model config within MODEL_CONFIG_LIMITS), and the size of the model the config
 * describes — its parameter count (models/params.ts) must match the weights in the file and fit
 * MAX_MODEL_PARAMETERS and the machine's free memory. Every error is one line naming the file.
 *
 * Files of the previous format, 'tensorlm-checkpoint/1', still load: their checksum (`dataSha256`)
 * covers only the tensor names and bytes, so for them the metadata is protected by the schema
 * checks alone, and they carry no tokenizer binding. The next checkpoint a resumed run writes is /2.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { freemem } from 'node:os';
import { dirname, join } from 'node:path';
import { describeValue, isJsonObject, parseJsonText, quoteText, truncateList, truncateMessage } from '../io/json.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors, type LoadedSafetensorsFile, type SafetensorsHeader, type TensorSink } from '../io/safetensors.js';
import { isRecurrentConfig, resolveModelConfig, type ModelConfig } from '../models/config.js';
import { countParameters } from '../models/params.js';
import { loraConfig } from '../nn/lora.js';
import type { AnyModule } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict, StateValue } from '../optim/optimizer.js';
import type { GeneratorState } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { resolveTrainConfig } from './config.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

const CHECKPOINT_FORMAT = 'tensorlm-checkpoint/2';
/** The previous format: readable, checked by dataSha256 (tensor names and bytes only). */
const CHECKPOINT_FORMAT_V1 = 'tensorlm-checkpoint/1';
/** The metadata field holding the whole-file SHA-256. */
const FILE_DIGEST_KEY = 'fileSha256';
/** What a run directory calls its tokenizer (run-loop.ts, runFiles). */
const RUN_TOKENIZER_FILE = 'tokenizer.json';

/** Largest model a checkpoint may describe, in parameters (32 GB of float32 weights). */
export const MAX_MODEL_PARAMETERS = 8_000_000_000;

/** Upper bounds of a checkpoint's model config fields (resolveConfig checks they are positive integers). */
export const MODEL_CONFIG_LIMITS: Readonly<Record<'vocabSize' | 'dModel' | 'nLayers' | 'nHeads' | 'dFF' | 'maxSeqLen' | 'embedDim' | 'hiddenSize', number>> = Object.freeze({
  vocabSize: 16_777_216,
  dModel: 65_536,
  nLayers: 1_024,
  nHeads: 4_096,
  dFF: 1_048_576,
  maxSeqLen: 16_777_216,
  // a recurrent model's widths
  embedDim: 65_536,
  hiddenSize: 65_536,
});

export interface CheckpointMeta {
  step: number;
  tokensSeen: number;
  elapsedSeconds: number;
  bestValLoss: number | null;
  /** Generator states by purpose (data, dropout), for exact resume. */
  rng: Record<string, GeneratorState>;
  /** The run's resolved training + model config; a resume must match it. */
  config: unknown;
  /** Steps the schedule was planned for (after time-budget calibration). */
  plannedSteps: number;
}

/** The tokenizer a checkpoint's weights were trained with. */
export interface TokenizerBinding {
  /** SHA-256 (hex) of the tokenizer's canonical JSON (tokenizerDigest). */
  sha256: string;
  vocabSize: number;
}

const META_KEYS: readonly (keyof CheckpointMeta)[] = ['step', 'tokensSeen', 'elapsedSeconds', 'bestValLoss', 'rng', 'config', 'plannedSteps'];
const RNG_KEYS = ['data', 'dropout'] as const;
const METADATA_KEYS: Readonly<Record<string, readonly string[]>> = {
  [CHECKPOINT_FORMAT]: ['format', 'meta', 'optimizer', 'aliases', 'tokenizer', FILE_DIGEST_KEY],
  [CHECKPOINT_FORMAT_V1]: ['format', 'meta', 'optimizer', 'aliases', 'dataSha256'],
};

function dataHash(tensors: Record<string, Tensor>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name].contiguous();
    hash.update(name);
    hash.update(new Uint8Array(t.storage.buffer, t.storage.byteOffset + t.offset * t.storage.BYTES_PER_ELEMENT, t.size * t.storage.BYTES_PER_ELEMENT));
  }
  return hash.digest('hex');
}

/** SHA-256 (hex) of a tokenizer's canonical JSON: what a checkpoint records and loadRun compares. */
export function tokenizerDigest(tokenizer: Tokenizer): string {
  return createHash('sha256').update(JSON.stringify(tokenizer.toJSON())).digest('hex');
}

/** The binding of a tokenizer file, cached by path, size and mtime (checkpoints are saved often). */
const bindingCache = new Map<string, { size: number; mtimeMs: number; binding: TokenizerBinding | null }>();

/** The tokenizer.json beside a checkpoint, as a binding; null when there is none or it cannot be read. */
function bindingBeside(checkpointPath: string): TokenizerBinding | null {
  const path = join(dirname(checkpointPath), RUN_TOKENIZER_FILE);
  if (!existsSync(path)) return null;
  const { size, mtimeMs } = statSync(path);
  const cached = bindingCache.get(path);
  if (cached && cached.size === size && cached.mtimeMs === mtimeMs) return cached.binding;
  let binding: TokenizerBinding | null = null;
  try {
    const tokenizer = loadTokenizer(path);
    binding = { sha256: tokenizerDigest(tokenizer), vocabSize: tokenizer.vocabSize };
  } catch {
    binding = null; // loadRun reports the unreadable tokenizer itself
  }
  bindingCache.set(path, { size, mtimeMs, binding });
  return binding;
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
    const m = OPTIMIZER_TENSOR.exec(name);
    if (!m) continue;
    const index = Number(m[1]);
    state[index] ??= {};
    state[index][m[2]] = t.toTypedArray() as Float32Array;
  }
  return { state, paramGroups: json.paramGroups };
}

const OPTIMIZER_TENSOR = /^optimizer\.(\d{1,9})\.([A-Za-z_][A-Za-z0-9_]*)$/;

export interface SaveCheckpointOptions {
  /**
   * The tokenizer the model was trained with, recorded in the checkpoint. Default: the
   * tokenizer.json in the checkpoint's directory (a run directory), or none.
   */
  tokenizer?: Tokenizer | null;
}

export function saveCheckpoint(path: string, model: AnyModule, optimizer: Optimizer, meta: CheckpointMeta, options: SaveCheckpointOptions = {}): void {
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
  const tokenizer = options.tokenizer === undefined ? bindingBeside(path) : options.tokenizer === null ? null : { sha256: tokenizerDigest(options.tokenizer), vocabSize: options.tokenizer.vocabSize };
  saveSafetensors(
    path,
    tensors,
    {
      format: CHECKPOINT_FORMAT,
      meta: JSON.stringify(meta),
      optimizer: JSON.stringify(opt.json),
      aliases: JSON.stringify(aliases),
      tokenizer: JSON.stringify(tokenizer),
    },
    { selfDigestKey: FILE_DIGEST_KEY },
  );
}

export interface LoadedCheckpoint {
  meta: CheckpointMeta;
  /** Model tensors by state-dict name, aliases (tied weights) included. */
  modelState: Record<string, Tensor>;
  optimizerState: OptimizerStateDict;
  /** Tied weights: alias → the stored name it shares data with. */
  aliases: Record<string, string>;
  /** The tokenizer the weights were trained with; null for /1 files and checkpoints saved without one. */
  tokenizer: TokenizerBinding | null;
  /** The checkpoint's format version (1 or 2). */
  version: 1 | 2;
}

/** A shape for a message: [2, 3], or "a 40-dimensional shape" when long. */
function shapeText(shape: readonly number[]): string {
  return shape.length > 8 ? `a ${shape.length}-dimensional shape` : `[${shape.join(', ')}]`;
}

/** One-line errors `checkpoint <path>: <field> must be <what was expected>, got <what was there>`. */
function schema(path: string) {
  const fail = (what: string): never => {
    throw new Error(`checkpoint ${path}: ${what}`);
  };
  const expect = (ok: boolean, field: string, expected: string, value: unknown): void => {
    if (!ok) fail(`${field} must be ${expected}, got ${describeValue(value)}`);
  };
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (!isJsonObject(value)) fail(`${field} must be a JSON object, got ${describeValue(value)}`);
    return value as Record<string, unknown>;
  };
  /** Exactly these keys (all required unless in `optional`). */
  const keys = (o: Record<string, unknown>, field: string, known: readonly string[], optional: readonly string[] = []): void => {
    const unknown = Object.keys(o).filter((k) => !known.includes(k));
    if (unknown.length > 0) fail(`${field} has unknown key${unknown.length > 1 ? 's' : ''} ${truncateList(unknown.map((k) => quoteText(k, 30)), 3)} (known: ${known.join(', ')})`);
    const missing = known.filter((k) => !optional.includes(k) && !Object.prototype.hasOwnProperty.call(o, k));
    if (missing.length > 0) fail(`${field} is missing ${truncateList(missing.map((k) => `'${k}'`), 3)}`);
  };
  const count = (value: unknown, field: string): number => {
    expect(Number.isSafeInteger(value) && (value as number) >= 0, field, 'an integer ≥ 0', value);
    return value as number;
  };
  const finite = (value: unknown, field: string, min = -Infinity): number => {
    expect(typeof value === 'number' && Number.isFinite(value) && value >= min, field, min === -Infinity ? 'a finite number' : `a finite number ≥ ${min}`, value);
    return value as number;
  };
  const json = (text: unknown, field: string): unknown => {
    if (typeof text !== 'string') fail(`metadata '${field}' is missing`);
    return parseJsonText(text as string, `checkpoint ${path}: metadata '${field}'`);
  };
  return { fail, expect, object, keys, count, finite, json };
}

/** Validates a generator state ({ s: four uint32, spare: number | null }). */
function checkGenerator(value: unknown, field: string, s: ReturnType<typeof schema>): GeneratorState {
  const o = s.object(value, field);
  s.keys(o, field, ['s', 'spare']);
  const words = o.s;
  s.expect(Array.isArray(words) && words.length === 4 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff), `${field}.s`, 'four integers in [0, 2^32)', words);
  if (o.spare !== null) s.finite(o.spare, `${field}.spare`);
  return o as unknown as GeneratorState;
}

function checkMeta(value: unknown, s: ReturnType<typeof schema>): CheckpointMeta {
  const meta = s.object(value, 'meta');
  s.keys(meta, 'meta', META_KEYS);
  s.count(meta.step, 'meta.step');
  s.count(meta.tokensSeen, 'meta.tokensSeen');
  s.finite(meta.elapsedSeconds, 'meta.elapsedSeconds', 0);
  // A mean cross-entropy: never negative.
  if (meta.bestValLoss !== null) s.finite(meta.bestValLoss, 'meta.bestValLoss', 0);
  const plannedSteps = s.count(meta.plannedSteps, 'meta.plannedSteps');
  if ((meta.step as number) > plannedSteps) s.fail(`meta.step ${String(meta.step)} is past meta.plannedSteps ${plannedSteps}`);
  const rng = s.object(meta.rng, 'meta.rng');
  s.keys(rng, 'meta.rng', RNG_KEYS);
  for (const k of RNG_KEYS) checkGenerator(rng[k], `meta.rng.${k}`, s);
  const config = s.object(meta.config, 'meta.config');
  s.object(config.train, 'meta.config.train');
  // The training settings a resume continues with: the rules `tensorlm train` applies to a new run.
  try {
    resolveTrainConfig(config.train as Record<string, unknown>);
  } catch (error) {
    s.fail(`meta.config.train: ${truncateMessage((error as Error).message, 200)}`);
  }
  if (config.stage !== undefined && typeof config.stage !== 'string') s.fail(`meta.config.stage must be a string, got ${describeValue(config.stage)}`);
  if (config.lora !== undefined && config.lora !== null) {
    try {
      loraConfig(config.lora);
    } catch (error) {
      s.fail(`meta.config.lora: ${truncateMessage((error as Error).message)}`);
    }
  }
  return meta as unknown as CheckpointMeta;
}

/** The model config, resolved and within MODEL_CONFIG_LIMITS. */
function checkModelConfig(value: unknown, s: ReturnType<typeof schema>): ModelConfig {
  const input = s.object(value, 'meta.config.model');
  let config: ModelConfig;
  try {
    config = resolveModelConfig(input as unknown as ModelConfig);
  } catch (error) {
    return s.fail(`meta.config.model: ${truncateMessage((error as Error).message.replace(/^(Transformer|RecurrentLM)Config: /, ''), 200)}`);
  }
  for (const [key, limit] of Object.entries(MODEL_CONFIG_LIMITS)) {
    const v = (config as unknown as Record<string, number | undefined>)[key];
    if (v !== undefined && v > limit) s.fail(`meta.config.model.${key} must be at most ${limit.toLocaleString('en-US')} (MODEL_CONFIG_LIMITS), got ${v}`);
  }
  return config;
}

function checkOptimizer(value: unknown, s: ReturnType<typeof schema>): { state: Record<string, Record<string, StateValue>>; paramGroups: OptimizerStateDict['paramGroups'] } {
  const o = s.object(value, 'optimizer');
  s.keys(o, 'optimizer', ['state', 'paramGroups']);
  const state = s.object(o.state, 'optimizer.state');
  for (const [index, entry] of Object.entries(state)) {
    if (!/^\d{1,9}$/.test(index)) s.fail(`optimizer.state has key ${quoteText(index, 30)}, expected a parameter index`);
    const e = s.object(entry, `optimizer.state.${index}`);
    for (const [k, v] of Object.entries(e)) {
      const field = `optimizer.state.${index}.${quoteText(k, 30)}`;
      if (!(v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)))) s.fail(`${field} must be a finite number, a boolean or null, got ${describeValue(v)}`);
      // Adam's step count (bias correction): a whole number of steps.
      if (k === 'step') s.count(v, field);
    }
  }
  const groups = o.paramGroups;
  if (!Array.isArray(groups)) return s.fail(`optimizer.paramGroups must be an array, got ${describeValue(groups)}`);
  groups.forEach((g: unknown, gi) => {
    const group = s.object(g, `optimizer.paramGroups[${gi}]`);
    const params = group.params;
    s.expect(Array.isArray(params) && params.every((p) => Number.isSafeInteger(p) && p >= 0), `optimizer.paramGroups[${gi}].params`, 'an array of parameter indices', params);
    for (const [k, v] of Object.entries(group)) {
      if (k === 'params') continue;
      const field = `optimizer.paramGroups[${gi}].${quoteText(k, 30)}`;
      const ok = v === null || typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x)));
      if (!ok) s.fail(`${field} must be a finite number, a boolean, a string, null or an array of numbers, got ${describeValue(v)}`);
      if (k === 'lr' && !(typeof v === 'number' && v >= 0)) s.fail(`${field} must be a finite number ≥ 0, got ${describeValue(v)}`);
      // The optimizers' own hyperparameters, bounded as their constructors bound them.
      if ((k === 'weightDecay' || k === 'momentum') && !(typeof v === 'number' && v >= 0)) s.fail(`${field} must be a finite number ≥ 0, got ${describeValue(v)}`);
      if ((k === 'eps' || k === 'lrScale') && !(typeof v === 'number' && v > 0)) s.fail(`${field} must be a finite number > 0, got ${describeValue(v)}`);
      if (k === 'betas' && !(Array.isArray(v) && v.length === 2 && v.every((b) => typeof b === 'number' && b >= 0 && b < 1))) s.fail(`${field} must be two numbers in [0, 1), got ${describeValue(v)}`);
    }
  });
  return o as unknown as ReturnType<typeof checkOptimizer>;
}

function checkAliases(value: unknown, modelNames: ReadonlySet<string>, s: ReturnType<typeof schema>): Record<string, string> {
  const aliases = s.object(value, 'aliases');
  for (const [alias, target] of Object.entries(aliases)) {
    const field = `aliases[${quoteText(alias, 40)}]`;
    if (typeof target !== 'string') s.fail(`${field} must name a stored model tensor, got ${describeValue(target)}`);
    if (alias === '__proto__' || alias.startsWith('optimizer.')) s.fail(`${field}: ${quoteText(alias, 40)} cannot be a model tensor name`);
    if (modelNames.has(alias)) s.fail(`${field}: the file also stores a tensor ${quoteText(alias, 40)}; an alias names a tied weight stored under another name`);
    if (!modelNames.has(target as string)) s.fail(`${field} names ${quoteText(target as string, 40)}, which is not a model tensor in the file`);
  }
  return aliases as Record<string, string>;
}

function checkTokenizerRecord(value: unknown, s: ReturnType<typeof schema>): TokenizerBinding | null {
  if (value === null) return null;
  const o = s.object(value, 'tokenizer');
  s.keys(o, 'tokenizer', ['sha256', 'vocabSize']);
  s.expect(typeof o.sha256 === 'string' && /^[0-9a-f]{64}$/.test(o.sha256), 'tokenizer.sha256', '64 lowercase hex digits', o.sha256);
  s.expect(Number.isSafeInteger(o.vocabSize) && (o.vocabSize as number) >= 1, 'tokenizer.vocabSize', 'a positive integer', o.vocabSize);
  return o as unknown as TokenizerBinding;
}

function gigabytes(bytes: number): string {
  return `${(bytes / 1e9).toFixed(bytes < 1e10 ? 2 : 0)} GB`;
}

/**
 * The model the config describes must be the one stored, and must fit: its parameter count
 * (countParameters) equals the model weights in the file (at least, with LoRA adapters, which
 * add their own), is at most MAX_MODEL_PARAMETERS, and its float32 weights and position tables
 * fit the machine's free memory. Checked before any model is allocated from the config.
 */
function checkModelSize(config: ModelConfig, hasLoRA: boolean, stored: number, s: ReturnType<typeof schema>): void {
  const parameters = countParameters(config).total;
  const count = parameters.toLocaleString('en-US');
  if (parameters > MAX_MODEL_PARAMETERS) s.fail(`meta.config.model describes ${count} parameters, more than the limit of ${MAX_MODEL_PARAMETERS.toLocaleString('en-US')} (MAX_MODEL_PARAMETERS)`);
  // Position tables that are buffers, not parameters: sinusoidal [maxSeqLen, dModel], RoPE cos/sin [maxSeqLen, headDim/2] each.
  const tables = isRecurrentConfig(config) ? 0 : config.pos === 'sinusoidal' ? config.maxSeqLen * config.dModel : config.pos === 'rope' ? config.maxSeqLen * (config.dModel / config.nHeads) : 0;
  const bytes = 4 * (parameters + tables);
  const free = freemem();
  if (bytes > free) s.fail(`meta.config.model describes ${count} parameters (${gigabytes(bytes)} of float32), more than the ${gigabytes(free)} of free memory on this machine`);
  if (hasLoRA ? stored < parameters : stored !== parameters) {
    s.fail(`meta.config.model describes ${count} parameters but the file holds ${stored.toLocaleString('en-US')} model weights${hasLoRA ? ' (LoRA adapters included)' : ''}`);
  }
}

/** What a checkpoint holds besides tensors, validated: what a model is built from before its weights are read. */
export type CheckpointInfo = Pick<LoadedCheckpoint, 'meta' | 'aliases' | 'tokenizer' | 'version'>;

export interface ReadCheckpointOptions<M extends AnyModule = AnyModule> {
  /**
   * Builds the model the weights are read into, from the validated checkpoint (its config, its
   * tokenizer record), before any tensor is read; an error it throws is the load's error. The
   * checkpoint must then fit the model (checkCheckpointFitsModel), and each weight is read from the
   * file straight into the model's own tensor: the weights are in memory once, not twice.
   * `modelState` then holds the model's tensors. Files of format /1 are read whole, then copied.
   */
  model?: (checkpoint: CheckpointInfo) => M;
  /**
   * Read the optimizer's buffers (default true). false (generation, evaluation: nothing steps)
   * streams them through the checksum and drops them; `optimizerState` then holds no buffers.
   */
  optimizer?: boolean;
  /**
   * With `model`: called with each weight's stored name once it is in the model (in file order),
   * the reader keeping no reference to it afterwards — so a caller may replace the module that
   * holds it (quantizeProgressively, through loadRun). /1 files call it for every weight after the whole copy.
   */
  onWeightRead?: (name: string) => void;
  /**
   * With `model` (format /2): where to read stateDict entry `name` instead of the model's own
   * tensor `own` (same shape) — a sink that quantizes the rows as they arrive (quantizeProgressively).
   */
  destination?: (name: string, own: Tensor) => Tensor | TensorSink;
}

/** The io error of an unreadable file, as one line naming the file once. */
function unreadable(path: string, error: unknown): Error {
  // The io message names the file too; say it once.
  let message = (error instanceof Error ? error.message : String(error)).replace(/^safetensors: /, '');
  if (message.startsWith(`${path}: `)) message = message.slice(path.length + 2);
  else if (message.startsWith(`${path} `)) message = `the file${message.slice(path.length)}`;
  return new Error(`checkpoint ${path} is unreadable or truncated: ${truncateMessage(message, 240)}`);
}

function corrupted(path: string): Error {
  return new Error(`checkpoint ${path} is corrupted: its content does not match the checksum (${FILE_DIGEST_KEY}) recorded when it was written`);
}

/** Everything readCheckpoint checks that the header alone tells (metadata, tensor names, dtypes, shapes). */
interface CheckedHeader extends CheckpointInfo {
  optimizerJson: ReturnType<typeof checkOptimizer>;
  /** The model tensors stored in the file (aliases not included). */
  modelNames: string[];
  optimizerNames: string[];
}

function checkHeader(header: SafetensorsHeader, version: 1 | 2, s: ReturnType<typeof schema>): CheckedHeader {
  const { metadata } = header;
  const known = METADATA_KEYS[version === 2 ? CHECKPOINT_FORMAT : CHECKPOINT_FORMAT_V1];
  const unknown = Object.keys(metadata).filter((k) => !known.includes(k));
  if (unknown.length > 0) s.fail(`unknown metadata key${unknown.length > 1 ? 's' : ''} ${truncateList(unknown.map((k) => quoteText(k, 30)), 3)} (known: ${known.join(', ')})`);

  // Tensors: the model's float32 weights and the optimizer's float32 buffers, nothing else.
  const modelNames: string[] = [];
  const optimizerNames: string[] = [];
  let stored = 0;
  for (const [name, e] of Object.entries(header.tensors)) {
    if (e.dtype !== 'F32') s.fail(`tensor ${quoteText(name, 40)} has dtype ${e.dtype}, expected F32 (a checkpoint stores float32 weights and optimizer buffers)`);
    if (name.startsWith('optimizer.')) {
      if (!OPTIMIZER_TENSOR.test(name) || e.shape.length !== 1) s.fail(`tensor ${quoteText(name, 40)} is not an optimizer buffer (expected optimizer.<index>.<name>, one-dimensional)`);
      optimizerNames.push(name);
    } else {
      modelNames.push(name);
      stored += e.shape.reduce((a, d) => a * d, 1);
    }
  }
  const meta = checkMeta(s.json(metadata.meta, 'meta'), s);
  const modelConfig = checkModelConfig((meta.config as Record<string, unknown>).model, s);
  const hasLoRA = (meta.config as { lora?: unknown }).lora != null;
  checkModelSize(modelConfig, hasLoRA, stored, s);
  const optimizerJson = checkOptimizer(s.json(metadata.optimizer, 'optimizer'), s);
  const aliases = checkAliases(metadata.aliases === undefined ? {} : s.json(metadata.aliases, 'aliases'), new Set(modelNames), s);
  const tokenizer = version === 2 ? checkTokenizerRecord(s.json(metadata.tokenizer, 'tokenizer'), s) : null;
  if (tokenizer !== null && tokenizer.vocabSize > modelConfig.vocabSize) {
    s.fail(`tokenizer.vocabSize ${tokenizer.vocabSize} is larger than meta.config.model.vocabSize ${modelConfig.vocabSize}`);
  }
  return { meta, aliases, tokenizer, version, optimizerJson, modelNames, optimizerNames };
}

/**
 * Reads and verifies a checkpoint; throws a clear one-line error for a missing, truncated,
 * corrupted or edited file (see the top of this file for everything that is checked). With
 * `model`, the weights are read straight into the model it builds (see ReadCheckpointOptions).
 */
// The plain form last: ReturnType<typeof readCheckpoint> (run-loop.ts) is LoadedCheckpoint.
export function readCheckpoint<M extends AnyModule>(path: string, options: ReadCheckpointOptions<M> & { model: (checkpoint: CheckpointInfo) => M }): LoadedCheckpoint & { model: M };
export function readCheckpoint(path: string, options?: ReadCheckpointOptions & { model?: undefined }): LoadedCheckpoint;
export function readCheckpoint<M extends AnyModule>(path: string, options: ReadCheckpointOptions<M> = {}): LoadedCheckpoint & { model?: M } {
  if (!existsSync(path)) throw new Error(`checkpoint ${path} does not exist`);
  let header: SafetensorsHeader;
  try {
    header = readSafetensorsHeader(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  const s = schema(path);
  const format = header.metadata.format;
  if (format !== CHECKPOINT_FORMAT && format !== CHECKPOINT_FORMAT_V1) {
    s.fail(`not a TensorLM checkpoint (format ${format === undefined ? 'missing' : quoteText(format, 40)}, expected '${CHECKPOINT_FORMAT}' or '${CHECKPOINT_FORMAT_V1}')`);
  }
  const readOptimizer = options.optimizer ?? true;
  if (format === CHECKPOINT_FORMAT && (options.model !== undefined || !readOptimizer)) return readStreaming(path, header, options, readOptimizer, s);

  let loaded: LoadedSafetensorsFile;
  try {
    loaded = loadSafetensors(path, { selfDigestKey: FILE_DIGEST_KEY });
  } catch (error) {
    throw unreadable(path, error);
  }
  const { tensors, metadata } = loaded;
  if (format === CHECKPOINT_FORMAT) {
    if (loaded.selfDigest === null || loaded.selfDigest !== metadata[FILE_DIGEST_KEY]) throw corrupted(path);
  } else if (dataHash(tensors) !== metadata.dataSha256) {
    throw new Error(`checkpoint ${path} is corrupted: its data does not match the checksum recorded when it was written`);
  }
  const checked = checkHeader(loaded.header, format === CHECKPOINT_FORMAT ? 2 : 1, s);
  const modelState: Record<string, Tensor> = {};
  for (const name of checked.modelNames) modelState[name] = tensors[name];
  for (const [alias, name] of Object.entries(checked.aliases)) modelState[alias] = modelState[name];
  const optimizerTensors: Record<string, Tensor> = {};
  if (readOptimizer) for (const name of checked.optimizerNames) optimizerTensors[name] = tensors[name];
  const { meta, aliases, tokenizer, version } = checked;
  const result = { meta, modelState, optimizerState: optimizerFromTensors(checked.optimizerJson, optimizerTensors), aliases, tokenizer, version };
  if (options.model === undefined) return result;
  // Format /1 (its checksum needs every tensor by name): read whole, then copied into the model.
  const model = options.model({ meta, aliases, tokenizer, version });
  checkCheckpointFitsModel(model, result, path);
  model.loadStateDict(modelState);
  if (options.onWeightRead) for (const name of checked.modelNames) options.onWeightRead(name);
  return { ...result, model };
}

/**
 * A /2 checkpoint read tensor by tensor into `options.model`'s tensors (and the optimizer's
 * buffers, when wanted), the whole file through the checksum. Everything the header tells is
 * checked first; when a check fails, the checksum is computed before that error is reported, so a
 * corrupted file is reported as corrupted, as when the whole file was read first.
 */
function readStreaming<M extends AnyModule>(path: string, header: SafetensorsHeader, options: ReadCheckpointOptions<M>, readOptimizer: boolean, s: ReturnType<typeof schema>): LoadedCheckpoint & { model?: M } {
  let checked: CheckedHeader;
  let model: M | undefined;
  let intoNames: string[] = [];
  try {
    checked = checkHeader(header, 2, s);
    const { meta, aliases, tokenizer, version } = checked;
    model = options.model?.({ meta, aliases, tokenizer, version });
    if (model !== undefined) {
      const shapes: Record<string, readonly number[]> = {};
      for (const name of checked.modelNames) shapes[name] = header.tensors[name].shape;
      for (const [alias, name] of Object.entries(aliases)) shapes[alias] = shapes[name];
      checkFits(model, shapes, aliases, path);
      intoNames = checked.modelNames;
    }
  } catch (error) {
    let digest: string | null = null;
    try {
      digest = loadSafetensors(path, { selfDigestKey: FILE_DIGEST_KEY, into: {} }).selfDigest;
    } catch {
      // Unreadable now: the check's own error below says what was wrong with the file.
    }
    if (digest !== header.metadata[FILE_DIGEST_KEY]) throw corrupted(path);
    throw error;
  }
  let loaded: LoadedSafetensorsFile;
  try {
    loaded = loadSafetensors(path, {
      selfDigestKey: FILE_DIGEST_KEY,
      // The header read now must be the one checked above (the file could be replaced in between).
      into: (now) => {
        if (JSON.stringify(now) !== JSON.stringify(header)) throw new Error(`${path} changed while it was being read`);
        // Built here and handed over: readStreaming keeps no reference to the destinations.
        const own = model === undefined ? {} : model.stateDict();
        return Object.fromEntries(intoNames.map((name) => [name, options.destination?.(name, own[name]) ?? own[name]]));
      },
      onRead: options.onWeightRead,
      // Without a model, its weights are read into new tensors (the optimizer's buffers only when wanted).
      names: [...(model === undefined ? checked.modelNames : []), ...(readOptimizer ? checked.optimizerNames : [])],
    });
  } catch (error) {
    throw unreadable(path, error);
  }
  if (loaded.selfDigest === null || loaded.selfDigest !== header.metadata[FILE_DIGEST_KEY]) throw corrupted(path);
  const modelState: Record<string, Tensor> = {};
  if (model !== undefined) {
    const own = model.stateDict();
    for (const name of Object.keys(own)) modelState[name] = own[name];
  } else {
    for (const name of checked.modelNames) modelState[name] = loaded.tensors[name];
    for (const [alias, name] of Object.entries(checked.aliases)) modelState[alias] = modelState[name];
  }
  const optimizerTensors: Record<string, Tensor> = {};
  for (const name of readOptimizer ? checked.optimizerNames : []) optimizerTensors[name] = loaded.tensors[name];
  const { meta, aliases, tokenizer, version } = checked;
  return { meta, modelState, optimizerState: optimizerFromTensors(checked.optimizerJson, optimizerTensors), aliases, tokenizer, version, ...(model === undefined ? {} : { model }) };
}

/**
 * Checks that `tokenizer` (read from `tokenizerPath`) is the one the checkpoint at
 * `checkpointPath` was trained with; a mismatch (an edited or swapped tokenizer.json) is a
 * one-line error naming both files. Checkpoints without a record (format /1) pass.
 */
export function checkTokenizerBinding(checkpoint: Pick<LoadedCheckpoint, 'tokenizer'>, checkpointPath: string, tokenizer: Tokenizer, tokenizerPath: string): void {
  const expected = checkpoint.tokenizer;
  if (expected === null) return;
  if (tokenizer.vocabSize !== expected.vocabSize) {
    throw new Error(`tokenizer ${tokenizerPath} does not belong to checkpoint ${checkpointPath}: it has ${tokenizer.vocabSize} tokens, the checkpoint was trained with ${expected.vocabSize}`);
  }
  const digest = tokenizerDigest(tokenizer);
  if (digest !== expected.sha256) {
    throw new Error(`tokenizer ${tokenizerPath} does not belong to checkpoint ${checkpointPath}: its SHA-256 is ${digest.slice(0, 12)}…, the checkpoint was trained with ${expected.sha256.slice(0, 12)}… (was tokenizer.json edited or replaced?)`);
  }
}

/**
 * Checks a checkpoint's model state against the model it is about to be loaded into, with short
 * one-line errors (Module.loadStateDict lists every key): the same names, the same shapes, and
 * every alias a weight that the model really ties to its target (so an edited alias cannot point
 * the embedding at another tensor of the same shape).
 */
export function checkCheckpointFitsModel(model: AnyModule, checkpoint: Pick<LoadedCheckpoint, 'modelState' | 'aliases'>, path: string): void {
  const shapes: Record<string, readonly number[]> = {};
  for (const [name, t] of Object.entries(checkpoint.modelState)) shapes[name] = t.shape;
  checkFits(model, shapes, checkpoint.aliases, path);
}

/** checkCheckpointFitsModel on the stored shapes alone (what a header tells, before any tensor is read). */
function checkFits(model: AnyModule, stored: Readonly<Record<string, readonly number[]>>, aliases: Readonly<Record<string, string>>, path: string): void {
  const own = model.stateDict();
  const names = Object.keys(own);
  const missing = names.filter((n) => !Object.prototype.hasOwnProperty.call(stored, n));
  if (missing.length > 0) throw new Error(`checkpoint ${path} does not fit the model its config describes: missing ${truncateList(missing.map((n) => quoteText(n, 40)), 3)}`);
  const extra = Object.keys(stored).filter((n) => !Object.prototype.hasOwnProperty.call(own, n));
  if (extra.length > 0) throw new Error(`checkpoint ${path} does not fit the model its config describes: unexpected ${truncateList(extra.map((n) => quoteText(n, 40)), 3)}`);
  for (const name of names) {
    const a = own[name].shape;
    const b = stored[name];
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
      throw new Error(`checkpoint ${path}: tensor ${quoteText(name, 40)} has shape ${shapeText(b)}, the model's is ${shapeText(a)}`);
    }
  }
  for (const [alias, target] of Object.entries(aliases)) {
    if (own[alias].storage !== own[target].storage) throw new Error(`checkpoint ${path}: aliases[${quoteText(alias, 40)}] names ${quoteText(target, 40)}, but the model does not tie those weights`);
  }
}

