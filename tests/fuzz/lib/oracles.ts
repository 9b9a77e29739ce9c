/**
 * Independent readings of a mutated file that loaded *differently* from the seed, for the formats
 * where such a load can be right: a standalone tokenizer file (no reference to compare with), a
 * format-/1 checkpoint's metadata (no checksum covers it), a training config file (a user's own
 * settings). Each oracle says whether the file is valid by its own rules — written here, not
 * taken from the library — and whether the load is exactly what the file states. A valid file
 * loaded as written is `load-as-written`; anything else that loaded differently is a silent change.
 *
 * The rules are those TensorLM's writers keep, so a loader that accepts a file breaking one of
 * them has a defect:
 * - char tokenizer: at least one character, each one code point and no lone surrogate, none twice;
 *   unk non-empty, without NUL, not a character; special tokens are markers (two or more
 *   characters, one not a letter/digit/space; no NUL or lone surrogate); the ids are contiguous
 *   and id 0 is a character;
 * - BPE tokenizer: contiguous ids; merges "a b" of vocabulary tokens whose concatenation is a
 *   token, none listed twice; every token longer than one byte is some merge's result; special
 *   tokens are markers and not spelled like a vocabulary token;
 * - checkpoint /1 metadata and config files: the bounds of every training and optimizer setting.
 */
import { canon } from './snapshot.js';

export type Verdict = { ok: true } | { ok: false; reason: string };

const OK: Verdict = { ok: true };
const bad = (reason: string): Verdict => ({ ok: false, reason });

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parse(text: string): unknown {
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function specialTextProblem(text: string): string | null {
  if (text.includes('\u0000') || LONE_SURROGATE.test(text)) return `special token ${JSON.stringify(text)} holds NUL or a lone surrogate`;
  if ([...text].length < 2) return `special token ${JSON.stringify(text)} is a single character (ordinary text)`;
  if (!/[^\p{L}\p{N}\s]/u.test(text)) return `special token ${JSON.stringify(text)} is only letters, digits or spaces (ordinary text)`;
  return null;
}

/** Whether the ids are exactly 0..n-1. */
function contiguous(ids: readonly number[]): string | null {
  const set = new Set(ids);
  if (set.size !== ids.length) return 'two tokens share an id';
  for (let i = 0; i < ids.length; i++) if (!set.has(i)) return `id ${i} is unused (largest ${Math.max(...ids)})`;
  return null;
}

function charVerdict(doc: Obj): Verdict {
  const chars = doc.chars;
  if (!Array.isArray(chars) || chars.length === 0) return bad('no characters');
  const seen = new Set<string>();
  for (const c of chars) {
    if (typeof c !== 'string' || [...c].length !== 1) return bad(`entry ${JSON.stringify(c)} is not one character`);
    if (LONE_SURROGATE.test(c)) return bad('a lone surrogate among the characters');
    if (seen.has(c)) return bad(`character ${JSON.stringify(c)} twice`);
    seen.add(c);
  }
  const reserved: number[] = [];
  if (doc.unk !== undefined) {
    if (typeof doc.unk !== 'string' || doc.unk === '' || doc.unk.includes('\u0000') || LONE_SURROGATE.test(doc.unk)) return bad('unk is not ordinary non-empty text');
    if (seen.has(doc.unk)) return bad('unk is also a character');
    const unkId = doc.unkId ?? chars.length;
    if (!isInt(unkId)) return bad('unkId is not an integer');
    reserved.push(unkId);
  } else if (doc.unkId !== undefined) return bad('unkId without unk');
  if (doc.specialTokens !== undefined) {
    if (!isObj(doc.specialTokens)) return bad('specialTokens is not an object');
    for (const [text, id] of Object.entries(doc.specialTokens)) {
      const p = specialTextProblem(text);
      if (p) return bad(p);
      if (!isInt(id)) return bad(`special token id ${String(id)} is not an integer`);
      reserved.push(id);
    }
  }
  if (reserved.includes(0)) return bad('a reserved token takes id 0, before the first character');
  const total = chars.length + reserved.length;
  if (new Set(reserved).size !== reserved.length) return bad('two reserved tokens share an id');
  const over = reserved.find((id) => id < 0 || id >= total);
  if (over !== undefined) return bad(`reserved id ${over} leaves unused ids (vocabulary of ${total})`);
  return OK;
}

function bpeVerdict(doc: Obj): Verdict {
  const vocab = doc.vocab;
  const merges = doc.merges;
  if (!isObj(vocab) || !Array.isArray(merges)) return bad('vocab or merges missing');
  const specials = isObj(doc.specialTokens) ? doc.specialTokens : {};
  const ids = [...Object.values(vocab), ...Object.values(specials)];
  if (!ids.every(isInt)) return bad('an id is not an integer');
  const gap = contiguous(ids as number[]);
  if (gap) return bad(`ids not contiguous: ${gap}`);
  const results = new Set<string>();
  const lines = new Set<string>();
  for (const line of merges) {
    if (typeof line !== 'string') return bad('a merge is not a string');
    if (lines.has(line)) return bad(`merge ${JSON.stringify(line)} listed twice`);
    lines.add(line);
    const parts = line.split(' ');
    if (parts.length !== 2 || !Object.hasOwn(vocab, parts[0]) || !Object.hasOwn(vocab, parts[1]) || !Object.hasOwn(vocab, parts[0] + parts[1])) return bad(`merge ${JSON.stringify(line)} is not two tokens forming a token`);
    results.add(parts[0] + parts[1]);
  }
  // GPT-2's spelling has one character per byte: a token longer than one character is several bytes.
  const unreachable = Object.keys(vocab).find((t) => [...t].length > 1 && !results.has(t));
  if (unreachable !== undefined) return bad(`token ${JSON.stringify(unreachable)} is no merge's result`);
  for (const text of Object.keys(specials)) {
    const p = specialTextProblem(text);
    if (p) return bad(p);
    if (Object.hasOwn(vocab, text)) return bad(`special token ${JSON.stringify(text)} is spelled like a vocabulary token`);
  }
  return OK;
}

/** The file's content in the form the loaded tokenizer's toJSON() has, for the "as written" test. */
function tokenizerAsWritten(doc: Obj, loaded: Obj): boolean {
  if (doc.type === 'char') {
    const chars = doc.chars as string[];
    const norm: Obj = { type: 'char', version: doc.version, chars };
    if (doc.unk !== undefined) norm.unk = doc.unk;
    if (doc.unkId !== undefined && doc.unkId !== chars.length) norm.unkId = doc.unkId;
    if (isObj(doc.specialTokens) && Object.keys(doc.specialTokens).length > 0) norm.specialTokens = doc.specialTokens;
    return canon(norm) === canon(loaded);
  }
  if (canon(doc.vocab) !== canon(loaded.vocab) || canon(doc.merges) !== canon(loaded.merges) || canon(doc.specialTokens ?? {}) !== canon(loaded.specialTokens)) return false;
  if (doc.pretokenizer !== undefined) return doc.pretokenizer === loaded.pretokenizer && (doc.pattern === undefined || doc.pattern === loaded.pattern);
  return doc.pattern === loaded.pattern;
}

/** A standalone tokenizer file that loaded differently from the seed: valid and loaded as written? */
export function tokenizerOracle(text: string, loadedJson: object): Verdict {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    return bad('the loader accepted text that is not JSON');
  }
  if (!isObj(doc)) return bad('not an object');
  const verdict = doc.type === 'char' ? charVerdict(doc) : doc.type === 'bpe' ? bpeVerdict(doc) : bad(`type ${String(doc.type)}`);
  if (!verdict.ok) return verdict;
  return tokenizerAsWritten(doc, loadedJson as Obj) ? OK : bad('the loaded tokenizer is not what the file states');
}

// ---- training settings (checkpoint /1 metadata, config files) ---------------------------------------

const POSITIVE_INTS = ['batchSize', 'gradAccumSteps', 'blockSize', 'maxSteps', 'evalInterval', 'evalIters', 'logInterval', 'replicas'];
const NON_NEGATIVE = ['minLr', 'weightDecay', 'gradClip', 'sampleTokens', 'warmupSteps'];
const STRINGS = ['name', 'outDir', 'data', 'tokenizer', 'preset'];

function trainVerdict(train: Obj): Verdict {
  for (const k of POSITIVE_INTS) if (k in train && !(isInt(train[k]) && (train[k] as number) >= 1)) return bad(`train.${k} ${String(train[k])} is not a positive integer`);
  for (const k of NON_NEGATIVE) if (k in train && !(finite(train[k]) && (train[k] as number) >= 0)) return bad(`train.${k} ${String(train[k])} is not a finite number ≥ 0`);
  for (const k of STRINGS) if (k in train && !(typeof train[k] === 'string' && train[k] !== '')) return bad(`train.${k} is not a non-empty string`);
  if ('lr' in train && !(finite(train.lr) && train.lr > 0)) return bad(`train.lr ${String(train.lr)} is not positive`);
  if ('lr' in train && 'minLr' in train && train.lrSchedule !== 'constant' && (train.minLr as number) > (train.lr as number)) return bad('train.minLr > lr');
  if ('seed' in train && !isInt(train.seed)) return bad('train.seed is not an integer');
  if ('name' in train && typeof train.name === 'string' && !/^[\w.-]+$/.test(train.name)) return bad('train.name is not a plain name');
  for (const k of ['beta1', 'beta2']) if (k in train && !(finite(train[k]) && (train[k] as number) >= 0 && (train[k] as number) < 1)) return bad(`train.${k} not in [0, 1)`);
  if ('dropout' in train && train.dropout !== null && !(finite(train.dropout) && train.dropout >= 0 && train.dropout < 1)) return bad('train.dropout not in [0, 1)');
  if ('trainFraction' in train && !(finite(train.trainFraction) && train.trainFraction > 0 && train.trainFraction < 1)) return bad('train.trainFraction not in (0, 1)');
  if ('lrSchedule' in train && train.lrSchedule !== 'cosine' && train.lrSchedule !== 'constant') return bad('train.lrSchedule unknown');
  if ('maxTime' in train && train.maxTime !== null && !(finite(train.maxTime) && train.maxTime > 0)) return bad('train.maxTime not positive');
  return OK;
}

const MODEL_POSITIVE_INTS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'dFF', 'maxSeqLen'];

function modelVerdict(model: Obj): Verdict {
  // null (like a missing key) means the field's default: resolveConfig reads fields with `??`.
  for (const k of MODEL_POSITIVE_INTS) if (k in model && model[k] !== undefined && model[k] !== null && !(isInt(model[k]) && (model[k] as number) >= 1)) return bad(`model.${k} ${String(model[k])} is not a positive integer`);
  if ('dropout' in model && model.dropout !== null && !(finite(model.dropout) && model.dropout >= 0 && model.dropout < 1)) return bad('model.dropout not in [0, 1)');
  if ('normEps' in model && model.normEps !== null && !(finite(model.normEps) && model.normEps >= 0)) return bad('model.normEps not ≥ 0');
  if ('initStd' in model && model.initStd !== null && !(finite(model.initStd) && model.initStd >= 0)) return bad('model.initStd not ≥ 0');
  if ('tieWeights' in model && typeof model.tieWeights !== 'boolean') return bad('model.tieWeights not a boolean');
  return OK;
}

function optimizerVerdict(opt: Obj): Verdict {
  const groups = opt.paramGroups;
  if (!Array.isArray(groups) || !isObj(opt.state)) return bad('optimizer state or groups missing');
  for (const g of groups) {
    if (!isObj(g)) return bad('a param group is not an object');
    if ('lr' in g && !(finite(g.lr) && g.lr >= 0)) return bad('group lr not ≥ 0');
    if ('eps' in g && !(finite(g.eps) && g.eps > 0)) return bad('group eps not positive');
    if ('lrScale' in g && !(finite(g.lrScale) && g.lrScale > 0)) return bad('group lrScale not positive');
    if ('weightDecay' in g && !(finite(g.weightDecay) && g.weightDecay >= 0)) return bad('group weightDecay not ≥ 0');
    if ('betas' in g && !(Array.isArray(g.betas) && g.betas.length === 2 && g.betas.every((b) => finite(b) && b >= 0 && b < 1))) return bad('group betas not two numbers in [0, 1)');
  }
  for (const entry of Object.values(opt.state)) {
    if (isObj(entry) && 'step' in entry && !(isInt(entry.step) && entry.step >= 0)) return bad(`optimizer step ${String(entry.step)} is not a whole number`);
  }
  return OK;
}

/**
 * A format-/1 checkpoint whose metadata was edited (its checksum covers the tensors only): the
 * load is right when every stated value is valid and the loader returned exactly those values.
 * `changedFields` are the snapshot fields that differ from the seed's.
 */
export function checkpointV1Oracle(file: Uint8Array, changedFields: readonly string[], snap: Record<string, string>, loadedOptimizerState: Record<string, Obj>): Verdict | null {
  const allowed = new Set(['config', 'meta', 'checkpointMeta', 'optimizerGroups', 'optimizerScalars']);
  if (!changedFields.every((f) => allowed.has(f))) return null;
  let md: Obj;
  try {
    const n = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
    md = (JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Obj).__metadata__ as Obj;
  } catch {
    return null;
  }
  if (!isObj(md) || md.format !== 'tensorlm-checkpoint/1') return null;
  let meta: Obj;
  let opt: Obj;
  try {
    meta = JSON.parse(md.meta as string) as Obj;
    opt = JSON.parse(md.optimizer as string) as Obj;
  } catch {
    return bad('the loader accepted metadata that is not JSON');
  }
  for (const k of ['step', 'tokensSeen', 'plannedSteps']) if (!(isInt(meta[k]) && (meta[k] as number) >= 0)) return bad(`meta.${k} ${String(meta[k])} is not a whole number`);
  if ((meta.step as number) > (meta.plannedSteps as number)) return bad('meta.step past plannedSteps');
  if (!(finite(meta.elapsedSeconds) && meta.elapsedSeconds >= 0)) return bad('meta.elapsedSeconds not ≥ 0');
  if (meta.bestValLoss !== null && !(finite(meta.bestValLoss) && meta.bestValLoss >= 0)) return bad('meta.bestValLoss is not a loss');
  const config = meta.config as Obj;
  for (const v of [trainVerdict(config.train as Obj), modelVerdict(config.model as Obj), optimizerVerdict(opt)]) if (!v.ok) return v;
  // Loaded as stated: the metadata, the config and the optimizer's settings and scalars.
  if (snap.checkpointMeta !== canon(meta) || snap.meta !== canon(meta) || snap.config !== canon(config)) return bad('the loaded metadata is not what the file states');
  if (snap.optimizerGroups !== canon(opt.paramGroups)) return bad('the loaded optimizer groups are not what the file states');
  for (const [index, entry] of Object.entries(opt.state as Record<string, Obj>)) {
    const loaded = loadedOptimizerState[index] ?? {};
    for (const [k, v] of Object.entries(entry)) if (!ArrayBuffer.isView(loaded[k]) && canon(loaded[k]) !== canon(v)) return bad(`optimizer state ${index}.${k} is not what the file states`);
  }
  return OK;
}

/** Seconds of a duration as `tensorlm train` reads it, for the plain forms; undefined when not judged here. */
function durationSeconds(v: string): number | null | undefined {
  const t = v.trim();
  if (t === 'none' || t === 'off') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/.exec(t);
  if (!m) return undefined;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2] ?? 's'];
}

/** A training config file that loaded (differently from the seed): valid, and read as written? */
export function configFileOracle(text: string, loadedConfig: Obj, builtModel: Obj, defaults: Obj): Verdict {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    return bad('the loader accepted text that is not JSON');
  }
  if (isObj(doc) && isObj(doc.train)) doc = doc.train;
  if (!isObj(doc)) return bad('not an object');
  const stated: Obj = { ...doc };
  if (typeof stated.maxTime === 'string') {
    const s = durationSeconds(stated.maxTime);
    // A duration the plain forms do not cover (ms's "1.5 hours"): judged by its result alone.
    stated.maxTime = s === undefined ? loadedConfig.maxTime : s;
  }
  const v = trainVerdict(stated);
  if (!v.ok) return v;
  const loaded = loadedConfig;
  for (const [k, value] of Object.entries(stated)) {
    if (k === 'model') continue;
    if (canon(loaded[k]) !== canon(value)) return bad(`${k} loaded as ${canon(loaded[k]).slice(0, 40)}, the file states ${canon(value).slice(0, 40)}`);
  }
  for (const [k, value] of Object.entries(defaults)) if (!(k in stated) && k !== 'model' && canon(loaded[k]) !== canon(value)) return bad(`${k} is not the default although the file does not set it`);
  if (stated.model !== undefined) {
    if (!isObj(stated.model)) return bad('model is not an object');
    const mv = modelVerdict(stated.model);
    if (!mv.ok) return mv;
    const model = builtModel;
    // null for a model field means its default (resolveConfig's `??`).
    for (const [k, value] of Object.entries(stated.model)) if (k !== 'vocabSize' && value !== null && canon(model[k]) !== canon(value)) return bad(`model.${k} built as ${canon(model[k]).slice(0, 40)}, the file states ${canon(value).slice(0, 40)}`);
  }
  return OK;
}
