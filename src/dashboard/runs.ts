/**
 * Which run directories the dashboard serves, and what it reads from them.
 *
 * A run is a directory holding config.json or metrics.jsonl (the trainer's layout, see
 * src/train/trainer.ts). Runs come from `--run` directories (named by their basename) and from a
 * `--runs` root searched to depth 3 (a tuning study puts trials at runs/<study>/<trial>/), named by
 * their POSIX path relative to the root. The root is re-scanned on request, so runs started after
 * the server appear. Requests name runs; names are only ever looked up in the discovered map, never
 * joined to a path, and files are read only from the fixed list RUN_FILES after checking that their
 * real path (symlinks resolved) stays inside the run directory.
 */
import { closeSync, existsSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { CHAT_SPECIAL_TOKENS } from '../chat/template.js';
import { readSafetensorsHeader, type SafetensorsHeader } from '../io/safetensors.js';
import { MAX_JSON_DEPTH, parseJsonText, scanJson } from '../io/json.js';
import { joinTail, LineCutter, parseMetricLine } from './lines.js';
import { HttpError } from './requests.js';

/** The files of a run that may be served (the playground loads a CLI-trained model from them). */
export const RUN_FILES = ['config.json', 'tokenizer.json', 'metrics.jsonl', 'best.safetensors', 'latest.safetensors'] as const;
export type RunFileName = (typeof RUN_FILES)[number];

export function isRunFileName(name: string): name is RunFileName {
  return (RUN_FILES as readonly string[]).includes(name);
}

export interface RunEntry {
  name: string;
  /** Absolute real path (symlinks resolved). */
  dir: string;
}

export type RunStatus = 'running' | 'finished' | 'unknown';

/** One row of GET /api/runs. */
export interface RunSummary {
  name: string;
  status: RunStatus;
  lastStep: number;
  plannedSteps: number | null;
  bestValLoss: number | null;
  lastTrainLoss: number | null;
  updatedAt: string;
  hasBest: boolean;
  hasLatest: boolean;
  /** Its tokenizer has the chat template's special tokens (an sft / dpo run): the page offers a chat. */
  chat: boolean;
}

/** A run whose metrics.jsonl changed this recently is shown as running. */
const RUNNING_WINDOW_MS = 60_000;
/** How deep below a --runs root runs are searched (runs/<study>/<trial>/ is depth 2). */
const SCAN_DEPTH = 3;
/** Directories visited per scan at most, so a huge tree given by mistake cannot stall requests. */
const SCAN_MAX_DIRS = 20_000;

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isRunDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json')) || existsSync(join(dir, 'metrics.jsonl'));
}

export interface RunRegistryOptions {
  /** Run directories, each holding config.json or metrics.jsonl. */
  run?: readonly string[];
  /** A directory searched for runs; it may not exist yet (runs appear once training starts). */
  runs?: string;
}

export class RunRegistry {
  readonly #fixed: RunEntry[] = [];
  readonly #root: string | null;
  #byName = new Map<string, RunEntry>();

  constructor(options: RunRegistryOptions) {
    const taken = new Set<string>();
    for (const dir of options.run ?? []) {
      if (typeof dir !== 'string' || dir === '') throw new Error(`--run: expected a run directory, got '${String(dir)}'`);
      if (!isDirectory(dir)) throw new Error(`--run ${dir}: no such directory`);
      const real = realpathSync(dir);
      if (!isRunDir(real)) throw new Error(`--run ${dir}: not a run directory (it holds neither config.json nor metrics.jsonl)`);
      if (this.#fixed.some((r) => r.dir === real)) continue;
      this.#fixed.push({ name: unique(basename(real) || 'run', taken), dir: real });
    }
    if (options.runs !== undefined) {
      if (typeof options.runs !== 'string' || options.runs === '') throw new Error(`--runs: expected a directory, got '${String(options.runs)}'`);
      if (existsSync(options.runs) && !isDirectory(options.runs)) throw new Error(`--runs ${options.runs}: not a directory`);
    }
    this.#root = options.runs ?? null;
    this.rescan();
  }

  /** Re-reads the --runs root and returns every run, sorted by name. */
  rescan(): RunEntry[] {
    const byName = new Map<string, RunEntry>();
    const taken = new Set<string>();
    for (const r of this.#fixed) {
      byName.set(r.name, r);
      taken.add(r.name);
    }
    const fixedDirs = new Set(this.#fixed.map((r) => r.dir));
    if (this.#root !== null && isDirectory(this.#root)) {
      const root = realpathSync(this.#root);
      for (const found of scanRuns(root)) {
        if (fixedDirs.has(found.dir)) continue;
        const name = unique(found.name, taken);
        byName.set(name, { name, dir: found.dir });
      }
    }
    this.#byName = byName;
    return this.list();
  }

  /** The runs as of the last scan, sorted by name. */
  list(): RunEntry[] {
    return [...this.#byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The run called `name`, re-scanning once if it is not known yet (a run that just started). */
  get(name: string): RunEntry | undefined {
    const known = this.#byName.get(name);
    if (known || this.#root === null) return known;
    this.rescan();
    return this.#byName.get(name);
  }
}

function unique(name: string, taken: Set<string>): string {
  let out = name;
  for (let i = 2; taken.has(out); i++) out = `${name}-${i}`;
  taken.add(out);
  return out;
}

/**
 * Runs at or below `root` (a real path), depth-first in name order. Symbolic links to directories
 * are not followed (they could lead outside the root) and hidden directories are skipped; the
 * search stops descending at a run.
 */
function scanRuns(root: string): RunEntry[] {
  const out: RunEntry[] = [];
  if (isRunDir(root)) return [{ name: basename(root) || 'run', dir: root }];
  let visited = 0;
  const walk = (dir: string, rel: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // unreadable or removed meanwhile
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.') || e.name === 'node_modules') continue;
      if (++visited > SCAN_MAX_DIRS) return;
      const child = join(dir, e.name);
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      if (isRunDir(child)) out.push({ name: childRel, dir: child });
      else if (depth < SCAN_DEPTH) walk(child, childRel, depth + 1);
    }
  };
  walk(root, '', 1);
  return out;
}

// ---- files of a run ----------------------------------------------------------------------------

/**
 * The path of `file` in the run if it is a regular file whose real path lies inside the run
 * directory; null otherwise (missing, a directory, or a symlink leading out of the run).
 */
export function runFile(run: RunEntry, file: RunFileName): string | null {
  if (!isRunFileName(file)) return null;
  const path = join(run.dir, file);
  try {
    lstatSync(path);
    const real = realpathSync(path);
    if (!real.startsWith(run.dir + sep)) return null;
    return statSync(real).isFile() ? real : null;
  } catch {
    return null;
  }
}

function statOrNull(path: string | null): Stats | null {
  if (path === null) return null;
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** config.json larger than this is not read (a run's config is a few KiB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * config.json parsed, or null when it is missing or not valid JSON (e.g. caught mid-write). A file
 * too large or nested too deeply to serve is an HttpError (500) with a short message.
 */
export function readRunConfig(run: RunEntry): unknown {
  const path = runFile(run, 'config.json');
  if (path === null) return null;
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_CONFIG_BYTES) throw new HttpError(500, `run '${run.name.slice(0, 100)}': config.json is ${size} bytes, more than the ${MAX_CONFIG_BYTES} the dashboard reads`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof HttpError) throw error;
    return null;
  }
  // Depth only (a config that JSON.parse reads otherwise is served as it is).
  if (scanJson(text, { rejectDuplicateKeys: false }) !== null) {
    throw new HttpError(500, `run '${run.name.slice(0, 100)}': config.json is nested deeper than ${MAX_JSON_DEPTH} levels; it was not written by 'tensorlm train'`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** readRunConfig, with a config that cannot be served as null (the run list stays usable). */
function configOrNull(run: RunEntry): unknown {
  try {
    return readRunConfig(run);
  } catch {
    return null;
  }
}

interface MetricsScan {
  ino: number;
  /** Bytes scanned: through the last complete line. */
  offset: number;
  tail: Buffer;
  lastStep: number;
  bestValLoss: number | null;
  lastTrainLoss: number | null;
}

/**
 * What the run list shows of metrics.jsonl, by path. An append is scanned from where the last scan
 * stopped (the bytes before it unchanged); a replaced, shrunk or rewritten log from the start.
 */
const scanCache = new Map<string, MetricsScan>();
const SCAN_CHUNK_BYTES = 1024 * 1024;

function scanMetrics(path: string): MetricsScan {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { ino: -1, offset: 0, tail: Buffer.alloc(0), lastStep: 0, bestValLoss: null, lastTrainLoss: null };
  }
  try {
    const st = fstatSync(fd);
    let scan = scanCache.get(path);
    if (scan && scan.ino === st.ino && st.size >= scan.offset) {
      const back = Math.min(scan.offset, scan.tail.length);
      const before = Buffer.alloc(back);
      if (readSync(fd, before, 0, back, scan.offset - back) !== back || !before.equals(scan.tail.subarray(scan.tail.length - back))) scan = undefined;
    } else scan = undefined;
    scan ??= { ino: st.ino, offset: 0, tail: Buffer.alloc(0), lastStep: 0, bestValLoss: null, lastTrainLoss: null };
    if (st.size === scan.offset) return scan;
    scan = { ...scan };
    const cutter = new LineCutter();
    const buf = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
    for (let position = scan.offset; ; ) {
      const n = readSync(fd, buf, 0, buf.length, position);
      if (n === 0) break;
      position += n;
      const cut = cutter.push(buf.subarray(0, n));
      if (cut.consumed === 0) continue;
      scan.offset += cut.consumed;
      scan.tail = joinTail(scan.tail, cut.tail);
      for (const line of cut.text.split('\n')) {
        const r = parseMetricLine(line);
        if (r === null) continue;
        if (typeof r.step === 'number' && r.step > scan.lastStep) scan.lastStep = r.step;
        if (r.kind === 'eval' && typeof r.valLoss === 'number' && (scan.bestValLoss === null || r.valLoss < scan.bestValLoss)) scan.bestValLoss = r.valLoss;
        if (r.kind === 'train' && typeof r.loss === 'number') scan.lastTrainLoss = r.loss;
      }
    }
    scanCache.set(path, scan);
    return scan;
  } finally {
    closeSync(fd);
  }
}

/** A checkpoint's header (names, shapes, metadata) larger than this is not read; real ones are KiBs. */
export const MAX_CHECKPOINT_HEADER_BYTES = 16 * 1024 * 1024;

/** The safetensors header of a checkpoint, refusing (Error) one whose declared header is over the cap. */
export function readCheckpointHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    const prefix = Buffer.alloc(8);
    if (readSync(fd, prefix, 0, 8, 0) === 8) {
      const n = prefix.readBigUInt64LE(0);
      if (n > BigInt(MAX_CHECKPOINT_HEADER_BYTES)) throw new Error(`its safetensors header is ${n} bytes, more than the ${MAX_CHECKPOINT_HEADER_BYTES} the dashboard reads`);
    }
  } finally {
    closeSync(fd);
  }
  return readSafetensorsHeader(path);
}

/** plannedSteps from a checkpoint's metadata (time-budget runs plan their length as they go). */
const plannedCache = new Map<string, { key: string; planned: number | null }>();

function checkpointPlannedSteps(path: string, st: Stats): number | null {
  const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
  const cached = plannedCache.get(path);
  if (cached && cached.key === key) return cached.planned;
  let planned: number | null = null;
  try {
    const meta = parseJsonText(readCheckpointHeader(path).metadata.meta ?? 'null', `checkpoint ${path}: metadata 'meta'`) as { plannedSteps?: unknown } | null;
    if (meta && typeof meta.plannedSteps === 'number') planned = meta.plannedSteps;
  } catch {
    planned = null;
  }
  plannedCache.set(path, { key, planned });
  return planned;
}

interface TrainConfigLike {
  train?: { maxSteps?: unknown; maxTime?: unknown };
}

export function runSummary(run: RunEntry, now = Date.now()): RunSummary {
  const config = configOrNull(run) as TrainConfigLike | null;
  const paths = { metrics: runFile(run, 'metrics.jsonl'), config: runFile(run, 'config.json'), best: runFile(run, 'best.safetensors'), latest: runFile(run, 'latest.safetensors') };
  const stats = { metrics: statOrNull(paths.metrics), config: statOrNull(paths.config), best: statOrNull(paths.best), latest: statOrNull(paths.latest) };
  const { lastStep, bestValLoss, lastTrainLoss } = paths.metrics ? scanMetrics(paths.metrics) : { lastStep: 0, bestValLoss: null, lastTrainLoss: null };
  // A step-budget run plans exactly maxSteps; a time-budget run's plan is in its checkpoints.
  let plannedSteps: number | null = null;
  const train = config?.train;
  if (train && train.maxTime === null && typeof train.maxSteps === 'number') plannedSteps = train.maxSteps;
  else if (paths.latest && stats.latest) plannedSteps = checkpointPlannedSteps(paths.latest, stats.latest);
  const mtimes = Object.values(stats).flatMap((s) => (s ? [s.mtimeMs] : []));
  const updated = mtimes.length > 0 ? Math.max(...mtimes) : (statOrNull(run.dir)?.mtimeMs ?? now);
  const hasBest = stats.best !== null;
  const hasLatest = stats.latest !== null;
  const status: RunStatus = stats.metrics && now - stats.metrics.mtimeMs < RUNNING_WINDOW_MS ? 'running' : hasBest || hasLatest ? 'finished' : 'unknown';
  return { name: run.name, status, lastStep, plannedSteps, bestValLoss, lastTrainLoss, updatedAt: new Date(updated).toISOString(), hasBest, hasLatest, chat: isChatRun(run) };
}

/** isChatRun's answers by tokenizer.json path: a BPE vocabulary is megabytes, and the list is polled every 3 s. */
const chatCache = new Map<string, { key: string; chat: boolean }>();

/**
 * Whether the run's tokenizer.json lists every chat special token — the same test ChatTemplate's
 * constructor makes, read from the file so that listing runs loads no model. A missing or
 * unreadable file (caught mid-write) is `false`; the chat endpoint makes the authoritative check.
 */
export function isChatRun(run: RunEntry): boolean {
  const path = runFile(run, 'tokenizer.json');
  const st = statOrNull(path);
  if (path === null || st === null) return false;
  const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
  const cached = chatCache.get(path);
  if (cached && cached.key === key) return cached.chat;
  let chat = false;
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as { specialTokens?: unknown } | null;
    const specials = json?.specialTokens;
    chat = specials !== null && typeof specials === 'object' && CHAT_SPECIAL_TOKENS.every((t) => Object.hasOwn(specials, t));
  } catch {
    chat = false;
  }
  chatCache.set(path, { key, chat });
  return chat;
}
