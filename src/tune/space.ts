/**
 * Search spaces for `tensorlm tune`: one distribution per train-config option, written as JSON.
 *
 *   { "lr": { "type": "logUniform", "low": 1e-4, "high": 1e-2 },
 *     "warmupSteps": { "type": "int", "low": 0, "high": 200, "step": 20 },
 *     "model.dModel": { "type": "choice", "values": [64, 96, 128] } }
 *
 * Keys are TrainConfig keys, or `model.<field>` for a field of the model config (an override of
 * the preset). Parsing checks each key and its distribution against what the option accepts, so a
 * typo or a float for an integer option fails when the study is created, not in trial 17.
 */
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from '../train/config.js';
import { presetConfig } from '../models/presets.js';

export type ParamValue = number | string | boolean | null;
export type Params = Record<string, ParamValue>;

export interface LogUniform {
  type: 'logUniform';
  low: number;
  high: number;
}
export interface Uniform {
  type: 'uniform';
  low: number;
  high: number;
  /** Values are low + k·step (k = 0, 1, …) up to high. */
  step?: number;
}
export interface IntRange {
  type: 'int';
  low: number;
  high: number;
  /** Sample log-uniformly (low ≥ 1), e.g. widths or batch sizes. */
  log?: boolean;
  step?: number;
}
export interface Choice {
  type: 'choice';
  values: ParamValue[];
}
export type Distribution = LogUniform | Uniform | IntRange | Choice;
export type SearchSpace = Readonly<Record<string, Distribution>>;

/** What kind of value an option takes, which decides the distributions it may have. */
type ValueKind = 'int' | 'number' | 'nullableNumber' | 'string' | 'boolean';

/**
 * Options that make no sense to search: where a run lives, what data it reads, and the budget
 * (the study sets maxSteps from --budget-steps/--budget-tokens and runs without a time limit).
 */
const NOT_TUNABLE: Readonly<Record<string, string>> = {
  name: 'each trial gets its own run name',
  outDir: 'trial runs live under the study folder',
  data: 'every trial must train on the same data',
  dataDir: 'it only says where data is cached',
  maxSteps: 'the budget sets it (--budget-steps or --budget-tokens)',
  maxTime: 'trials train for a fixed budget of steps or tokens',
  'model.vocabSize': 'it comes from the tokenizer',
};

// Integer-valued options: validateTrainConfig and resolveConfig reject fractions, so a float
// distribution for them would only fail at trial time.
const INT_TRAIN_KEYS = new Set(['batchSize', 'blockSize', 'warmupSteps', 'evalInterval', 'evalIters', 'logInterval', 'sampleTokens', 'seed']);
const INT_MODEL_KEYS = new Set(['dModel', 'nLayers', 'nHeads', 'nKvHeads', 'dFF', 'maxSeqLen']);
// Numeric options whose default is null (null means "the preset's").
const NULLABLE_NUMBER_KEYS = new Set(['dropout']);

function kindOfDefault(value: unknown, isInt: boolean, nullableNumber: boolean): ValueKind | null {
  if (nullableNumber) return 'nullableNumber';
  if (typeof value === 'number') return isInt ? 'int' : 'number';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  return null;
}

/** The kind of value `key` takes, or an error message saying why it cannot be tuned. */
export function optionKind(key: string): { kind: ValueKind } | { error: string } {
  if (key in NOT_TUNABLE) return { error: `'${key}' cannot be tuned: ${NOT_TUNABLE[key]}` };
  if (key.startsWith('model.')) {
    const field = key.slice('model.'.length);
    // The resolved preset lists every model field with a default of the right type, so new
    // fields become tunable without a list here going stale.
    const defaults = presetConfig(DEFAULT_TRAIN_CONFIG.preset) as unknown as Record<string, unknown>;
    if (!(field in defaults)) {
      throw new Error(`unknown model field '${field}' in '${key}' (known: ${Object.keys(defaults).filter((k) => k !== 'vocabSize').join(', ')})`);
    }
    const kind = kindOfDefault(defaults[field], INT_MODEL_KEYS.has(field), false);
    return kind ? { kind } : { error: `'${key}' is not a number, string or boolean option; set it in the base config (--config) instead` };
  }
  const defaults = DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>;
  if (key === 'model') return { error: "'model' cannot be tuned as a whole: use 'model.<field>' keys, e.g. 'model.dModel'" };
  if (!(key in defaults)) {
    throw new Error(`unknown train config key '${key}' (known: ${Object.keys(defaults).filter((k) => !(k in NOT_TUNABLE) && k !== 'model').join(', ')}, or model.<field>)`);
  }
  const kind = kindOfDefault(defaults[key], INT_TRAIN_KEYS.has(key), NULLABLE_NUMBER_KEYS.has(key));
  return kind ? { kind } : { error: `'${key}' is not a number, string or boolean option` };
}

const FIELDS: Readonly<Record<Distribution['type'], readonly string[]>> = {
  logUniform: ['type', 'low', 'high'],
  uniform: ['type', 'low', 'high', 'step'],
  int: ['type', 'low', 'high', 'log', 'step'],
  choice: ['type', 'values'],
};

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parseDistribution(key: string, raw: unknown): Distribution {
  const where = `search space '${key}'`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${where}: expected an object like {"type": "logUniform", "low": 1e-4, "high": 1e-2}, got ${JSON.stringify(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== 'string' || !(type in FIELDS)) {
    throw new Error(`${where}: "type" must be one of ${Object.keys(FIELDS).join(', ')}, got ${JSON.stringify(type)}`);
  }
  const allowed = FIELDS[type as Distribution['type']];
  for (const field of Object.keys(obj)) {
    if (!allowed.includes(field)) throw new Error(`${where}: unknown field "${field}" for type ${type} (expected ${allowed.join(', ')})`);
  }
  if (type === 'choice') {
    const values = obj.values;
    if (!Array.isArray(values) || values.length === 0) throw new Error(`${where}: "values" must be a non-empty array`);
    for (const v of values) {
      if (!(v === null || typeof v === 'string' || typeof v === 'boolean' || isFiniteNumber(v))) {
        throw new Error(`${where}: choice values must be numbers, strings, booleans or null, got ${JSON.stringify(v)}`);
      }
    }
    const seen = new Set(values.map((v) => JSON.stringify(v)));
    if (seen.size !== values.length) throw new Error(`${where}: choice values must be distinct, got ${JSON.stringify(values)}`);
    return { type: 'choice', values: values as ParamValue[] };
  }
  const { low, high } = obj;
  if (!isFiniteNumber(low) || !isFiniteNumber(high)) throw new Error(`${where}: "low" and "high" must be finite numbers, got ${JSON.stringify(low)} and ${JSON.stringify(high)}`);
  if (type === 'logUniform') {
    if (!(low > 0)) throw new Error(`${where}: logUniform needs low > 0, got ${low}`);
    if (!(low < high)) throw new Error(`${where}: needs low < high, got low ${low}, high ${high}`);
    return { type, low, high };
  }
  if (type === 'uniform') {
    if (!(low < high)) throw new Error(`${where}: needs low < high, got low ${low}, high ${high}`);
    if (obj.step !== undefined && !(isFiniteNumber(obj.step) && obj.step > 0)) throw new Error(`${where}: "step" must be a positive number, got ${JSON.stringify(obj.step)}`);
    return obj.step === undefined ? { type, low, high } : { type, low, high, step: obj.step as number };
  }
  // int
  if (!Number.isInteger(low) || !Number.isInteger(high)) throw new Error(`${where}: int needs integer "low" and "high", got ${low} and ${high}`);
  if (!(low <= high)) throw new Error(`${where}: needs low ≤ high, got low ${low}, high ${high}`);
  if (obj.log !== undefined && typeof obj.log !== 'boolean') throw new Error(`${where}: "log" must be true or false, got ${JSON.stringify(obj.log)}`);
  if (obj.step !== undefined && !(Number.isInteger(obj.step) && (obj.step as number) >= 1)) throw new Error(`${where}: "step" must be a positive integer, got ${JSON.stringify(obj.step)}`);
  if (obj.log === true && low < 1) throw new Error(`${where}: int with "log": true needs low ≥ 1, got ${low}`);
  if (obj.log === true && obj.step !== undefined && obj.step !== 1) throw new Error(`${where}: "step" cannot be combined with "log": true`);
  const out: IntRange = { type: 'int', low, high };
  if (obj.log === true) out.log = true;
  if (obj.step !== undefined && obj.step !== 1) out.step = obj.step as number;
  return out;
}

function checkKind(key: string, kind: ValueKind, dist: Distribution): void {
  const where = `search space '${key}'`;
  const numeric = kind === 'int' || kind === 'number' || kind === 'nullableNumber';
  if (dist.type === 'choice') {
    for (const v of dist.values) {
      const ok =
        kind === 'int' ? Number.isInteger(v) : kind === 'number' ? typeof v === 'number' : kind === 'nullableNumber' ? typeof v === 'number' || v === null : typeof v === kind;
      if (!ok) throw new Error(`${where}: choice value ${JSON.stringify(v)} is not ${kind === 'int' ? 'an integer' : kind === 'nullableNumber' ? 'a number or null' : `a ${kind}`}`);
    }
    return;
  }
  if (!numeric) throw new Error(`${where}: '${key}' takes a ${kind}; use {"type": "choice", "values": [...]}`);
  if (kind === 'int' && dist.type !== 'int') throw new Error(`${where}: '${key}' takes an integer; use {"type": "int", ...} or a choice of integers, not ${dist.type}`);
}

/** Validates a parsed JSON search space (an object of key → distribution). */
export function parseSearchSpace(raw: unknown): SearchSpace {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`search space: expected a JSON object of option → distribution, got ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}`);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) throw new Error('search space: no options to tune (the object is empty)');
  const out: Record<string, Distribution> = {};
  for (const [key, value] of entries) {
    const kind = optionKind(key);
    if ('error' in kind) throw new Error(`search space: ${kind.error}`);
    const dist = parseDistribution(key, value);
    checkKind(key, kind.kind, dist);
    out[key] = dist;
  }
  return out;
}

/** The values a `uniform` with a step can take: low, low + step, … ≤ high (with a float tolerance). */
export function stepValues(low: number, high: number, step: number): number[] {
  const n = Math.floor((high - low) / step + 1e-9);
  return Array.from({ length: n + 1 }, (_, k) => roundToStep(low + k * step, step));
}

/** Rounds away float noise such as 0.30000000000000004 from low + k·step. */
function roundToStep(x: number, step: number): number {
  const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step)) + 3));
  return Number(x.toFixed(decimals));
}

/** Snaps a continuous value to a step lattice starting at low, inside [low, high]. */
export function snapToStep(x: number, low: number, high: number, step: number): number {
  const values = Math.floor((high - low) / step + 1e-9);
  const k = Math.min(values, Math.max(0, Math.round((x - low) / step)));
  return roundToStep(low + k * step, step);
}

/** Whether `value` is one the distribution can produce (used for --baseline and stored params). */
export function contains(dist: Distribution, value: ParamValue): boolean {
  switch (dist.type) {
    case 'choice':
      return dist.values.some((v) => v === value);
    case 'logUniform':
      return typeof value === 'number' && value >= dist.low && value <= dist.high;
    case 'uniform':
      if (typeof value !== 'number' || value < dist.low || value > dist.high) return false;
      return dist.step === undefined || Math.abs(snapToStep(value, dist.low, dist.high, dist.step) - value) <= 1e-9 * Math.max(1, Math.abs(value));
    case 'int':
      return Number.isInteger(value) && (value as number) >= dist.low && (value as number) <= dist.high && ((value as number) - dist.low) % (dist.step ?? 1) === 0;
  }
}

/**
 * The train config of a trial: `params` over the base config, `model.<field>` keys going into the
 * model overrides. The base is not mutated.
 */
export function applyParams(base: Partial<TrainConfig>, params: Params): Partial<TrainConfig> {
  const out: Record<string, unknown> = { ...base };
  const model: Record<string, unknown> = { ...(base.model ?? {}) };
  let touchedModel = base.model !== undefined;
  for (const [key, value] of Object.entries(params)) {
    if (key.startsWith('model.')) {
      model[key.slice('model.'.length)] = value;
      touchedModel = true;
    } else out[key] = value;
  }
  if (touchedModel) out.model = model;
  return out as Partial<TrainConfig>;
}

/** The value the base config (or the defaults / preset) gives an option: the baseline trial's params. */
export function baseValue(base: Partial<TrainConfig>, key: string): ParamValue {
  if (key.startsWith('model.')) {
    const field = key.slice('model.'.length);
    const overrides = (base.model ?? {}) as Record<string, unknown>;
    if (field in overrides) return overrides[field] as ParamValue;
    if (field === 'dropout' && base.dropout !== undefined && base.dropout !== null) return base.dropout;
    return (presetConfig(base.preset ?? DEFAULT_TRAIN_CONFIG.preset) as unknown as Record<string, ParamValue>)[field];
  }
  const value = (base as Record<string, unknown>)[key];
  return (value === undefined ? (DEFAULT_TRAIN_CONFIG as unknown as Record<string, ParamValue>)[key] : value) as ParamValue;
}

/** JSON with object keys sorted, so equal settings compare equal however they were written. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

/** Short human form of a parameter set, e.g. "lr=0.00123 model.dModel=96". */
export function formatParams(params: Params): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(3)) : String(v)}`)
    .join(' ');
}
