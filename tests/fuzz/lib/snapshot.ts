/**
 * What the fuzzer compares: each format loaded through the library's own loader and reduced to
 * a canonical "snapshot" (stable JSON; tensors as shape + dtype + SHA-256 of every byte), and the
 * rule that tells a clear error from an unclear one.
 *
 * - checkpoint / config: `loadRun(dir)` (config, meta, every model tensor, the tokenizer) and
 *   `readCheckpoint` (model state with aliases, optimizer state: what a resume loads);
 * - tokenizers, twice: in a run directory through `loadRun` (the product's path: the checkpoint's
 *   tokenizer binding must refuse any change), and alone through `loadTokenizer` — type,
 *   vocabSize, special tokens, `toJSON()` (vocabulary, merges, pattern) and the ids of a probe
 *   text (with and without special tokens);
 * - config-file: `readTrainConfigFile` + `resolveTrainConfig` + `buildModelConfig` (what
 *   `tensorlm train --config` does before training);
 * - csv: `loadRunsCsv` — every run's N, D, C and loss, in order, and what was derived/dropped.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Format } from './mutators.js';

export type Snapshot = Record<string, string>;

/** Stable JSON: sorted keys, non-finite numbers and -0 spelled out; throws when nested too deep. */
export function canon(v: unknown, depth = 0): string {
  if (depth > 200) throw new Error('nested too deep to compare');
  if (v === undefined) return '#undefined';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isFinite(v) ? (Object.is(v, -0) ? '#-0' : JSON.stringify(v)) : `#${v}`;
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'bigint') return `#${v}n`;
  if (ArrayBuffer.isView(v)) return `#${v.constructor.name}:${digest(v as unknown as ArrayBufferView)}`;
  if (Array.isArray(v)) return `[${v.map((x) => canon(x, depth + 1)).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k], depth + 1)}`).join(',')}}`;
  }
  return `#${typeof v}`;
}

function digest(view: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)).digest('hex').slice(0, 24);
}

interface TensorLike {
  shape: readonly number[];
  dtype: string;
  contiguous(): { storage: ArrayBufferView & { BYTES_PER_ELEMENT: number }; offset: number; size: number };
}

/** name → "dtype shape sha256" of every element's bytes. */
function tensorsDigest(tensors: Record<string, TensorLike | undefined>): string {
  const out: Record<string, string> = {};
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    if (t === undefined || t === null || typeof (t as TensorLike).contiguous !== 'function') {
      out[name] = `#not a tensor: ${String(t)}`;
      continue;
    }
    const c = t.contiguous();
    const bpe = c.storage.BYTES_PER_ELEMENT;
    const bytes = new Uint8Array(c.storage.buffer, c.storage.byteOffset + c.offset * bpe, c.size * bpe);
    out[name] = `${t.dtype} [${t.shape.join(',')}] ${digest(bytes)}`;
  }
  return canon(out);
}

/** A field of the snapshot; a value that cannot be canonicalised is its own (unequal) marker. */
function field(f: () => unknown): string {
  try {
    return canon(f());
  } catch (error) {
    return `#uncomparable: ${(error as Error).message}`;
  }
}

// ---- loaders -------------------------------------------------------------------------------------

type Lib = {
  loadRun: (dir: string, which?: 'best' | 'latest') => { model: { stateDict(): Record<string, TensorLike> }; tokenizer: unknown; config: unknown; meta: unknown };
  readCheckpoint: (path: string) => { meta: unknown; modelState: Record<string, TensorLike>; optimizerState: { state: Record<string, Record<string, unknown>>; paramGroups: unknown } };
  loadTokenizer: (path: string) => {
    type: string;
    vocabSize: number;
    specialTokens: Record<string, number>;
    toJSON(): object;
    encode(text: string, options?: { allowSpecial?: boolean }): number[];
    decode(ids: ArrayLike<number>): string;
  };
  loadRunsCsv: (path: string) => { runs: { N: number; D: number; C: number; loss: number }[]; dropped: unknown[]; derived: unknown };
  readTrainConfigFile: (path: string) => Record<string, unknown>;
  resolveTrainConfig: (...layers: Record<string, unknown>[]) => Record<string, unknown>;
  buildModelConfig: (config: Record<string, unknown>, vocabSize: number) => Record<string, unknown>;
};

let lib: Lib | null = null;

/** The loaders, imported once (deep imports after src/index.ts, which names the backends). */
export async function loadLib(): Promise<Lib> {
  if (lib) return lib;
  await import('../../../src/index.js');
  const trainer = (await import('../../../src/train/trainer.js')) as unknown as Partial<Lib>;
  const checkpoint = (await import('../../../src/train/checkpoint.js')) as unknown as Partial<Lib>;
  const tokenizers = (await import('../../../src/tokenizers/load.js')) as unknown as Partial<Lib>;
  const scaling = (await import('../../../src/scaling/data.js')) as unknown as Partial<Lib>;
  const config = (await import('../../../src/train/config.js')) as unknown as Partial<Lib>;
  const presets = (await import('../../../src/models/presets.js')) as unknown as Partial<Lib>;
  const found = {
    loadRun: trainer.loadRun,
    readCheckpoint: checkpoint.readCheckpoint,
    loadTokenizer: tokenizers.loadTokenizer,
    loadRunsCsv: scaling.loadRunsCsv,
    readTrainConfigFile: config.readTrainConfigFile,
    resolveTrainConfig: config.resolveTrainConfig,
    buildModelConfig: presets.buildModelConfig,
  };
  for (const [name, f] of Object.entries(found)) if (typeof f !== 'function') throw new Error(`fuzz harness: the library no longer exports ${name}`);
  lib = found as Lib;
  return lib;
}

/** Probe texts: ordinary text, text outside the char vocabulary, a special token, a long run (catastrophic patterns). */
export const PROBE =
  'First Citizen: Before we proceed, hear me speak. 1234 ünïcödé 😀 \u00a0\t\r\n<|eot|><|endoftext|> ' + 'a'.repeat(40) + '!';

type LoadedTokenizer = ReturnType<Lib['loadTokenizer']>;

export function tokenizerSnapshot(l: Lib, path: string): Snapshot {
  return loadedTokenizerSnapshot(l.loadTokenizer(path));
}

function loadedTokenizerSnapshot(tok: LoadedTokenizer): Snapshot {
  const probe = (allowSpecial: boolean) => {
    try {
      return tok.encode(PROBE, { allowSpecial });
    } catch (error) {
      return `#throws: ${(error as Error).message}`;
    }
  };
  const ids = probe(true);
  return {
    type: field(() => tok.type),
    vocabSize: field(() => tok.vocabSize),
    specialTokens: field(() => tok.specialTokens),
    json: field(() => tok.toJSON()),
    probe: field(() => ids),
    probeOrdinary: field(() => probe(false)),
    decoded: field(() => (Array.isArray(ids) ? tok.decode(ids) : ids)),
  };
}

export function runSnapshot(l: Lib, dir: string): Snapshot {
  const run = l.loadRun(dir, 'best');
  const ck = l.readCheckpoint(join(dir, 'best.safetensors'));
  const opt = ck.optimizerState;
  const optTensors: Record<string, string> = {};
  const optScalars: Record<string, Record<string, unknown>> = {};
  for (const [index, entry] of Object.entries(opt?.state ?? {})) {
    optScalars[index] = {};
    for (const [k, v] of Object.entries(entry ?? {})) {
      if (ArrayBuffer.isView(v)) optTensors[`${index}.${k}`] = `#${v.constructor.name}:${digest(v as ArrayBufferView)}`;
      else optScalars[index][k] = v;
    }
  }
  const tokenizer = run.tokenizer as LoadedTokenizer;
  return {
    config: field(() => run.config),
    meta: field(() => run.meta),
    model: field(() => tensorsDigest(run.model.stateDict())),
    checkpointMeta: field(() => ck.meta),
    checkpointModel: field(() => tensorsDigest(ck.modelState)),
    optimizerGroups: field(() => opt?.paramGroups),
    optimizerScalars: field(() => optScalars),
    optimizerTensors: field(() => optTensors),
    ...Object.fromEntries(Object.entries(loadedTokenizerSnapshot(tokenizer)).map(([k, v]) => [`tokenizer.${k}`, v])),
  };
}

function configFileSnapshot(l: Lib, path: string): Snapshot {
  const config = l.resolveTrainConfig(l.readTrainConfigFile(path));
  // The model the run would build (65: any vocabulary size; the file does not choose it; blockSize
  // against maxSeqLen is train's check, once flags are applied).
  const model = l.buildModelConfig({ ...config, blockSize: 1 }, 65);
  return { config: field(() => config), model: field(() => model) };
}

function csvSnapshot(l: Lib, path: string): Snapshot {
  const t = l.loadRunsCsv(path);
  return {
    runs: field(() => t.runs.map((r) => [r.N, r.D, r.C, r.loss])),
    dropped: field(() => t.dropped.length),
    derived: field(() => t.derived),
  };
}

/** Loads the case's file(s) and returns the snapshot. */
export function snapshot(l: Lib, format: Format, target: { dir: string; file: string }): Snapshot {
  switch (format) {
    case 'checkpoint':
    case 'config':
      return runSnapshot(l, target.dir);
    case 'tokenizer-char':
    case 'tokenizer-bpe':
      return tokenizerSnapshot(l, target.file);
    case 'config-file':
      return configFileSnapshot(l, target.file);
    case 'csv':
      return csvSnapshot(l, target.file);
  }
}

/** The fields that differ (with both values, shortened), or [] when equal. */
export function diff(a: Snapshot, b: Snapshot): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k}: ${shorten(a[k])} → ${shorten(b[k])}`);
}

function shorten(s: string | undefined, max = 80): string {
  if (s === undefined) return '(none)';
  if (s.length <= max) return s;
  // Show the first difference region rather than the common prefix.
  return `${s.slice(0, max)}…`;
}

/** The first differing position of two strings, to point at in a diff. */
export function firstDifference(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** A diff of two snapshots that shows where each differing field first differs. */
export function describeDiff(a: Snapshot, b: Snapshot): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
  return keys
    .map((k) => {
      const x = a[k] ?? '(none)';
      const y = b[k] ?? '(none)';
      const at = Math.max(0, firstDifference(x, y) - 20);
      return `${k}: …${x.slice(at, at + 60)} → …${y.slice(at, at + 60)}`;
    })
    .join('; ');
}

// ---- error clarity ---------------------------------------------------------------------------------

/** Raw engine / library-internal messages that tell a user nothing about their file. */
const RAW_MESSAGES: readonly RegExp[] = [
  /Cannot read propert/i,
  /Cannot set propert/i,
  /Cannot convert/i,
  /is not a function/,
  /is not iterable/,
  /is not defined/,
  /is not a constructor/,
  /Invalid typed array length/,
  /Invalid array length/,
  /Invalid string length/,
  /Maximum call stack/,
  /Array buffer allocation failed/,
  /out of memory/i,
  /\[object Object\]/,
  /^Unexpected (token|end|non-whitespace)/,
  /^(Expected|Bad control character|Bad escaped character|Unterminated string) .* in JSON/,
  /offset is out of bounds/,
  /should be a multiple of/,
  /Start offset .* is outside the bounds/,
  /^Invalid regular expression/,
  /^[A-Za-z]+ is not a valid/,
];

export const MAX_MESSAGE_LENGTH = 300;

/** Why an error is not a clear one-line error naming the file, or null when it is. */
export function unclearReason(error: unknown, paths: readonly string[]): string | null {
  if (!(error instanceof Error)) return `threw a non-Error (${typeof error})`;
  const msg = error.message;
  if (msg.length === 0) return 'empty message';
  if (/[\r\n]/.test(msg)) return 'message spans several lines';
  if (msg.length > MAX_MESSAGE_LENGTH) return `message is ${msg.length} characters (max ${MAX_MESSAGE_LENGTH})`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/.test(msg)) return 'message contains control characters or U+FFFD (raw file bytes?)';
  const raw = RAW_MESSAGES.find((r) => r.test(msg));
  if (raw) return `raw engine message (${raw.source})`;
  if (!paths.some((p) => msg.includes(p))) return 'message does not name the file';
  return null;
}

// ---- the CSV oracle ------------------------------------------------------------------------------------

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** Column names by role, compared lowercase with only letters and digits (docs/scaling.md); any other column is ignored. */
const ALIASES: Record<'N' | 'D' | 'C' | 'loss', readonly string[]> = {
  N: ['n', 'params', 'parameters', 'modelsize', 'nparams', 'numparams', 'parametercount'],
  D: ['d', 'tokens', 'trainingtokens', 'ntokens', 'numtokens', 'datasetsize'],
  C: ['c', 'flop', 'flops', 'trainingflop', 'trainingflops', 'compute'],
  loss: ['loss', 'finalloss', 'valloss', 'validationloss', 'evalloss'],
};
const roleOf = (h: string): string => {
  const n = h.toLowerCase().replace(/[^a-z0-9]/g, '');
  return (Object.keys(ALIASES) as (keyof typeof ALIASES)[]).find((r) => ALIASES[r].includes(n)) ?? 'ignored';
};

/**
 * An independent reading of a mutated CSV, for the loads that differ from the seed: CSV has no
 * checksum, so a file whose numbers were edited loads differently by right. Returns the runs the
 * text plainly states, `{ invalid }` when the text is not an acceptable sweep (a loader that
 * accepts it has a defect), or null when the oracle cannot judge (quotes, unusual layout).
 */
export function csvOracle(text: string): { runs: number[][] } | { invalid: string } | null {
  if (text.startsWith('\ufeff')) text = text.slice(1);
  const lines = text.split(/\r\n|\n|\r/).filter((l) => l.length > 0);
  if (lines.some((l) => l.trim() === '')) return null;
  // Quotes only as whole simple cells ("123"); anything else (quoted commas, newlines) is not judged.
  const unquote = (c: string): string | null => (/^"[^"]*"$/.test(c) ? c.slice(1, -1) : c.includes('"') ? null : c);
  const rows = lines.map((l) => l.split(',').map((c) => unquote(c.trim())));
  if (rows.some((r) => r.some((c) => c === null))) return null;
  return judgeRows(rows as string[][]);
}

function judgeRows(rows: string[][]): { runs: number[][] } | { invalid: string } | null {
  if (rows.length < 2) return { invalid: 'no runs' };
  const header = rows[0];
  if (header.some((h) => h === '') || new Set(header).size !== header.length) return null;
  const roles = header.map(roleOf);
  // Two columns for one role: the loader must refuse (it cannot choose).
  if (['N', 'D', 'C', 'loss'].some((r) => roles.filter((x) => x === r).length > 1)) return { invalid: 'two columns for one role' };
  const col = (role: string) => roles.indexOf(role);
  const [iN, iD, iC, iLoss] = ['N', 'D', 'C', 'loss'].map(col);
  if (iN < 0 || iLoss < 0 || (iD < 0 && iC < 0)) return { invalid: 'missing a required column' };
  // A row repeated exactly is a repeated run (the same point measured twice), which a fit takes
  // as it is: not invalid, as long as the loader reads every row as written.
  const runs: number[][] = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== header.length) return { invalid: `row ${r} has ${row.length} cells, the header ${header.length}` };
    const value = (i: number): number | null => {
      if (!NUMBER.test(row[i])) return null;
      const v = Number(row[i]);
      return v > 0 && Number.isFinite(v) ? v : null;
    };
    const N = value(iN);
    const loss = value(iLoss);
    const Dv = iD >= 0 ? value(iD) : null;
    const Cv = iC >= 0 ? value(iC) : null;
    if (N === null || loss === null || (iD >= 0 && Dv === null) || (iC >= 0 && Cv === null)) return { invalid: `row ${r} has a cell that is not a finite positive number` };
    const D = Dv ?? (Cv as number) / (6 * N);
    const C = Cv ?? 6 * N * D;
    runs.push([N, D, C, loss]);
  }
  return { runs };
}
