/**
 * The fuzzer's worker process (forked by runner.ts with a heap limit; the parent enforces the
 * time limit and watches RSS). For each case it makes the mutation from (format, seed, index),
 * writes it over a copy of the seed, loads it with the library's loader and classifies the
 * outcome against the seed's snapshot. It reports "started" (with the mutation's description)
 * before loading, so a hang or crash can still be named.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Corpus } from './corpus.js';
import { mutate, type Format } from './mutators.js';
import { hashSeed, Rng } from './rng.js';
import { checkpointV1Oracle, configFileOracle, tokenizerOracle } from './oracles.js';
import { csvOracle, describeDiff, loadLib, runSnapshot, snapshot, tokenizerSnapshot, unclearReason, type Snapshot } from './snapshot.js';
import type { CaseRequest, ChildMessage, Outcome } from './protocol.js';

const send = (msg: ChildMessage): void => {
  process.send?.(msg);
};

process.on('uncaughtException', (error) => {
  send({ type: 'fatal', message: `uncaught: ${error instanceof Error ? error.message : String(error)}` });
  process.exit(70);
});
process.on('unhandledRejection', (error) => {
  send({ type: 'fatal', message: `unhandled rejection: ${error instanceof Error ? error.message : String(error)}` });
  process.exit(70);
});

const lib = await loadLib();
const { DEFAULT_TRAIN_CONFIG } = await import('../../../src/train/config.js');
const baselines = new Map<string, Snapshot>();
const seeds = new Map<string, Uint8Array>();

const isTokenizer = (format: Format): boolean => format === 'tokenizer-char' || format === 'tokenizer-bpe';

/** The run directory a format's file lives in (null: a file on its own). */
function runOf(corpus: Corpus, format: Format): string | null {
  if (format === 'checkpoint' || format === 'config' || format === 'tokenizer-char') return corpus.runDir;
  if (format === 'tokenizer-bpe') return corpus.runBpeDir;
  return null;
}

const FILE_NAME: Record<Format, string> = {
  checkpoint: 'best.safetensors',
  config: 'config.json',
  'tokenizer-char': 'tokenizer.json',
  'tokenizer-bpe': 'tokenizer.json',
  'config-file': 'train-config.json',
  csv: 'runs.csv',
};

function seedFile(corpus: Corpus, format: Format): string {
  const run = runOf(corpus, format);
  if (run !== null) return join(run, FILE_NAME[format]);
  return format === 'csv' ? corpus.csv : corpus.configFile;
}

/** Lays out a case directory holding the seed files (a copy of the run), and returns where the mutated file goes. */
function prepare(corpus: Corpus, format: Format, dir: string): { dir: string; file: string } {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const run = runOf(corpus, format);
  if (run !== null) for (const f of ['config.json', 'tokenizer.json', 'best.safetensors']) copyFileSync(join(run, f), join(dir, f));
  return { dir, file: join(dir, FILE_NAME[format]) };
}

/**
 * The snapshot of a case. Tokenizer formats are loaded twice: in the run directory (`run.*`:
 * loadRun, the product's path) and alone (`file.*`: loadTokenizer).
 */
function load(format: Format, target: { dir: string; file: string }, pass: 'run' | 'file' | null): Snapshot {
  if (pass === 'run') return runSnapshot(lib, target.dir);
  if (pass === 'file') return tokenizerSnapshot(lib, target.file);
  return snapshot(lib, format, target);
}

function baseline(corpus: Corpus, format: Format, work: string, pass: 'run' | 'file' | null): Snapshot {
  const key = `${format}:${pass}`;
  let b = baselines.get(key);
  if (!b) {
    const target = prepare(corpus, format, join(work, `baseline-${format}`));
    if (runOf(corpus, format) === null) copyFileSync(seedFile(corpus, format), target.file);
    b = load(format, target, pass);
    baselines.set(key, b);
  }
  return b;
}

function seedBytes(corpus: Corpus, format: Format): Uint8Array {
  const path = seedFile(corpus, format);
  let s = seeds.get(path);
  if (!s) {
    s = new Uint8Array(readFileSync(path));
    seeds.set(path, s);
  }
  return s;
}

type Verdict = { outcome: Outcome; message?: string; note?: string };

function classifyPass(req: CaseRequest, target: { dir: string; file: string }, bytes: Uint8Array, pass: 'run' | 'file' | null): Verdict {
  const base = baseline(req.corpus, req.format, req.work, pass);
  let snap: Snapshot;
  try {
    snap = load(req.format, target, pass);
  } catch (error) {
    const reason = unclearReason(error, [target.file, target.dir]);
    const message = error instanceof Error ? error.message : String(error);
    return reason === null ? { outcome: 'error-clear', message } : { outcome: 'error-unclear', message, note: reason };
  }
  const changes = describeDiff(base, snap);
  if (changes === '') return { outcome: 'load-equivalent' };
  const changed = Object.keys({ ...base, ...snap }).filter((k) => base[k] !== snap[k]);
  const text = new TextDecoder().decode(bytes);
  if (req.format === 'csv') {
    // CSV carries no checksum: a load that reads exactly what the edited text says is right.
    const oracle = csvOracle(text);
    if (oracle && 'runs' in oracle && JSON.stringify(oracle.runs.map((r) => r.map(String))) === JSON.stringify((JSON.parse(snap.runs) as number[][]).map((r) => r.map(String)))) {
      return { outcome: 'load-as-written' };
    }
    const why = oracle === null ? 'oracle cannot judge this text' : 'invalid' in oracle ? `oracle: ${oracle.invalid}` : 'loaded runs differ from what the text states';
    return { outcome: 'load-changed', note: `${why}; ${changes}` };
  }
  try {
    const judged = (verdict: ReturnType<typeof tokenizerOracle>): Verdict => (verdict.ok ? { outcome: 'load-as-written' } : { outcome: 'load-changed', note: `oracle: ${verdict.reason}; ${changes}` });
    if (pass === 'file') {
      // A tokenizer file alone has no reference: a valid file loaded exactly as it reads is right.
      return judged(tokenizerOracle(text, lib.loadTokenizer(target.file).toJSON()));
    }
    if (req.format === 'config-file') {
      const config = lib.resolveTrainConfig(lib.readTrainConfigFile(target.file));
      const model = lib.buildModelConfig({ ...config, blockSize: 1 }, 65);
      return judged(configFileOracle(text, config, model, DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>));
    }
    if (req.format === 'checkpoint') {
      // Format /1: no checksum covers the metadata; valid values loaded as written are right.
      const state = lib.readCheckpoint(target.file).optimizerState.state as Record<string, Record<string, unknown>>;
      const verdict = checkpointV1Oracle(bytes, changed, snap, state);
      if (verdict !== null) return judged(verdict);
    }
  } catch (error) {
    return { outcome: 'harness-error', message: `oracle failed: ${(error as Error).message}` };
  }
  return { outcome: 'load-changed', note: changes };
}

const isDefect = (v: Verdict): boolean => v.outcome !== 'error-clear' && v.outcome !== 'load-equivalent' && v.outcome !== 'load-as-written';

function classify(req: CaseRequest, target: { dir: string; file: string }, bytes: Uint8Array): Verdict {
  if (!isTokenizer(req.format)) return classifyPass(req, target, bytes, null);
  // In a run (the checkpoint's tokenizer binding refuses any change), then alone (only an
  // invalid file, or one not loaded as written, is a defect). A defect of either is the case's.
  const run = classifyPass(req, target, bytes, 'run');
  const file = classifyPass(req, target, bytes, 'file');
  if (isDefect(run)) return { ...run, note: `in the run directory: ${run.note ?? ''}` };
  if (isDefect(file)) return { ...file, note: `alone: ${file.note ?? ''}` };
  if (file.outcome === 'load-as-written') return { ...file, message: run.message, note: `alone: loads as written; in the run: ${run.outcome}` };
  return { ...run, note: `alone: ${file.outcome}${file.message ? ` (${file.message.slice(0, 120)})` : ''}` };
}

process.on('message', (raw: unknown) => {
  const req = raw as CaseRequest;
  if (req.type !== 'case') return;
  const rng = new Rng(hashSeed(req.format, req.seed, req.index));
  let mutation: ReturnType<typeof mutate>;
  let target: { dir: string; file: string };
  try {
    for (const pass of isTokenizer(req.format) ? (['run', 'file'] as const) : [null]) baseline(req.corpus, req.format, req.work, pass);
    mutation = mutate(req.format, seedBytes(req.corpus, req.format), rng);
    target = prepare(req.corpus, req.format, join(req.work, 'case'));
    writeFileSync(target.file, mutation.bytes);
  } catch (error) {
    // The fuzzer's own failure (a mutator bug, or the seed no longer loading): not the loader's.
    send({ type: 'started', index: req.index, kind: 'harness', desc: 'mutation or baseline', size: 0 });
    const e = error as Error;
    send({ type: 'result', index: req.index, ms: 0, outcome: 'harness-error', message: `${e.message} ${(e.stack ?? '').split('\n').slice(1, 4).join(' ')}` });
    return;
  }
  send({ type: 'started', index: req.index, kind: mutation.kind, desc: mutation.desc, size: mutation.bytes.length });
  const t0 = performance.now();
  const result = classify(req, target, mutation.bytes);
  send({ type: 'result', index: req.index, ms: performance.now() - t0, ...result });
});

send({ type: 'ready' });
