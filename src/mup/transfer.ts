/**
 * The μTransfer experiment (Yang et al. 2022, "Tensor Programs V", Fig. 1; reproduced small by
 * EleutherAI's nanoGPT-mup on tiny-shakespeare): for each width × learning rate × seed ×
 * parametrization, a short constant-LR AdamW run of a 2-layer char-level model, recording the
 * final training loss. Under SP the best LR moves as the width grows; under μP it stays put, so an
 * LR tuned on the small model transfers.
 *
 * Each run goes through the normal training loop (src/train/trainer.ts, `lrSchedule: 'constant'`,
 * μP param groups). Results are appended to `<outDir>/results.jsonl` as each run finishes (and
 * `results.csv` is rewritten), so an interrupted sweep resumes by skipping the runs already there.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../data/files.js';
import type { MupConfigInput } from '../models/config.js';
import { NonFiniteLossError, train } from '../train/trainer.js';
import type { Parametrization } from './coord-check.js';

export interface TransferOptions {
  /** Where results.jsonl, results.csv and the run directories go. */
  outDir: string;
  /** dModel of each model; default 64, 128, 256, 512. */
  widths?: readonly number[];
  /** Peak (constant) LRs; default 2^-14 … 2^-4 on powers of 2. Under μP, the LR at the base width. */
  lrs?: readonly number[];
  /** Seeds per point (0 … seeds−1; init and batch order). Default 2. */
  seeds?: number;
  /** Optimizer steps per run. Default 80. */
  steps?: number;
  batchSize?: number;
  blockSize?: number;
  parametrizations?: readonly Parametrization[];
  /** μP's base width; default the smallest width (where SP and μP are the same model). */
  baseWidth?: number;
  nLayers?: number;
  /** Fixed as the width grows (the head dim grows), as in the coordinate check. Default 4. */
  nHeads?: number;
  /** Other μP options (multipliers, zero init, weight-decay rule). */
  mup?: Omit<Partial<MupConfigInput>, 'baseWidth'>;
  /** Dataset name or path; default 'tinyshakespeare'. */
  data?: string;
  dataDir?: string | null;
  /** The final train loss is the mean of the last `lossWindow` training-batch losses. Default 10. */
  lossWindow?: number;
  /** Default 0, so that only the LR differs between runs. */
  weightDecay?: number;
  /** Linear warmup steps before the constant LR. Default 0. */
  warmupSteps?: number;
  /** Global gradient-norm clip; default 0 (off: clipping's threshold is not width-independent). */
  gradClip?: number;
  /** Batches per split in the one evaluation at the end. Default 4. */
  evalIters?: number;
  /** Keep each run's checkpoints (default: only its config, tokenizer and metrics stay). */
  keepRuns?: boolean;
  /**
   * Called after each run that was not skipped: `done` runs made so far by this call, `total` runs
   * in the grid, `skipped` found saved so far, and the widths of the runs still to make (for ETAs).
   */
  onResult?: (record: TransferRecord, progress: { done: number; total: number; skipped: number; remainingWidths: number[] }) => void;
}

export interface TransferRecord {
  parametrization: Parametrization;
  width: number;
  lr: number;
  log2Lr: number;
  seed: number;
  /** Mean of the last `lossWindow` training-batch losses; null when the run diverged. */
  finalTrainLoss: number | null;
  /** Validation loss of the final evaluation (evalIters batches); null when diverged. */
  valLoss: number | null;
  /** Loss of the first training batch (at initialisation). */
  initialLoss: number | null;
  /**
   * The loss became NaN or infinite (the run stopped there), or the final train loss is above
   * the initial one: training made the model worse than at initialisation.
   */
  diverged: boolean;
  divergedAtStep: number | null;
  seconds: number;
  /** Every setting that affects the result but the varied ones: runs are only reused when it matches. */
  settings: string;
}

export const DEFAULT_TRANSFER_LRS: readonly number[] = Array.from({ length: 11 }, (_, i) => 2 ** (-14 + i));

function resolved(options: TransferOptions) {
  const o = {
    outDir: options.outDir,
    widths: [...(options.widths ?? [64, 128, 256, 512])],
    lrs: [...(options.lrs ?? DEFAULT_TRANSFER_LRS)],
    seeds: options.seeds ?? 2,
    steps: options.steps ?? 80,
    batchSize: options.batchSize ?? 8,
    blockSize: options.blockSize ?? 64,
    parametrizations: [...(options.parametrizations ?? (['sp', 'mup'] as const))],
    baseWidth: options.baseWidth ?? Math.min(...(options.widths ?? [64])),
    nLayers: options.nLayers ?? 2,
    nHeads: options.nHeads ?? 4,
    mup: options.mup ?? {},
    data: options.data ?? 'tinyshakespeare',
    dataDir: options.dataDir ?? null,
    lossWindow: options.lossWindow ?? 10,
    weightDecay: options.weightDecay ?? 0,
    warmupSteps: options.warmupSteps ?? 0,
    gradClip: options.gradClip ?? 0,
    evalIters: options.evalIters ?? 4,
    keepRuns: options.keepRuns ?? false,
  };
  const problems: string[] = [];
  const posInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} must be a positive integer, got ${v}`);
  };
  if (typeof o.outDir !== 'string' || o.outDir === '') problems.push('outDir is required');
  if (o.widths.length === 0) problems.push('widths is empty');
  for (const w of o.widths) {
    posInt('each width', w);
    if (Number.isInteger(w) && w % o.nHeads !== 0) problems.push(`width ${w} is not divisible by nHeads ${o.nHeads}`);
  }
  if (o.lrs.length === 0) problems.push('lrs is empty');
  for (const lr of o.lrs) if (!(lr > 0 && Number.isFinite(lr))) problems.push(`each lr must be a positive number, got ${lr}`);
  for (const [name, v] of [['seeds', o.seeds], ['steps', o.steps], ['batchSize', o.batchSize], ['blockSize', o.blockSize], ['baseWidth', o.baseWidth], ['nLayers', o.nLayers], ['nHeads', o.nHeads], ['lossWindow', o.lossWindow], ['evalIters', o.evalIters]] as const) posInt(name, v);
  if (o.lossWindow > o.steps) problems.push(`lossWindow ${o.lossWindow} is larger than steps ${o.steps}`);
  for (const p of o.parametrizations) if (p !== 'sp' && p !== 'mup') problems.push(`parametrization must be 'sp' or 'mup', got '${String(p)}'`);
  if (o.parametrizations.length === 0) problems.push('parametrizations is empty');
  for (const [name, v] of [['weightDecay', o.weightDecay], ['gradClip', o.gradClip]] as const) if (!(v >= 0 && Number.isFinite(v))) problems.push(`${name} must be a non-negative number, got ${v}`);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) problems.push(`warmupSteps must be a non-negative integer, got ${o.warmupSteps}`);
  if (problems.length) throw new Error(`muTransfer: ${problems.join('; ')}`);
  return o;
}

/** The results saved so far in a sweep directory (results.jsonl), oldest first; [] when none. */
export function readTransferResults(outDir: string): TransferRecord[] {
  const path = join(outDir, 'results.jsonl');
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: TransferRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as TransferRecord);
    } catch {
      // Only the last line can be cut short by an interruption; that run is simply done again.
      if (lines.slice(i + 1).some((l) => l.trim() !== '')) throw new Error(`${path}: line ${i + 1} is not valid JSON`);
    }
  });
  return out;
}

const CSV_COLUMNS: readonly (keyof TransferRecord)[] = ['parametrization', 'width', 'lr', 'log2Lr', 'seed', 'initialLoss', 'finalTrainLoss', 'valLoss', 'diverged', 'divergedAtStep', 'seconds'];

export function transferCsv(records: readonly TransferRecord[]): string {
  const rows = records.map((r) => CSV_COLUMNS.map((k) => (r[k] === null ? '' : String(r[k]))).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

function runName(p: Parametrization, width: number, log2Lr: number, seed: number): string {
  return `${p}-w${width}-lr${Number.isInteger(log2Lr) ? log2Lr : log2Lr.toFixed(3)}-s${seed}`;
}

/**
 * Runs (or resumes) the sweep and returns every record for these settings, saved ones included.
 * Order: seed by seed, then width, parametrization and LR, so an interrupted sweep has whole
 * curves of the first seed first.
 */
export async function muTransfer(options: TransferOptions): Promise<TransferRecord[]> {
  const o = resolved(options);
  const settings = JSON.stringify({
    steps: o.steps,
    batchSize: o.batchSize,
    blockSize: o.blockSize,
    baseWidth: o.baseWidth,
    nLayers: o.nLayers,
    nHeads: o.nHeads,
    mup: o.mup,
    data: o.data,
    lossWindow: o.lossWindow,
    weightDecay: o.weightDecay,
    warmupSteps: o.warmupSteps,
    gradClip: o.gradClip,
    evalIters: o.evalIters,
  });
  mkdirSync(o.outDir, { recursive: true });
  const runsDir = join(o.outDir, 'runs');
  const all = readTransferResults(o.outDir);
  const key = (p: string, width: number, lr: number, seed: number) => `${p}|${width}|${lr}|${seed}`;
  const have = new Map(all.filter((r) => r.settings === settings).map((r) => [key(r.parametrization, r.width, r.lr, r.seed), r]));
  const grid: { seed: number; width: number; parametrization: Parametrization; lr: number }[] = [];
  for (let seed = 0; seed < o.seeds; seed++) for (const width of o.widths) for (const parametrization of o.parametrizations) for (const lr of o.lrs) grid.push({ seed, width, parametrization, lr });
  const remainingWidths = grid.filter((g) => !have.has(key(g.parametrization, g.width, g.lr, g.seed))).map((g) => g.width);
  let done = 0;
  let skipped = 0;
  const results: TransferRecord[] = [];
  for (const { seed, width, parametrization, lr } of grid) {
    const saved = have.get(key(parametrization, width, lr, seed));
    if (saved) {
      results.push(saved);
      skipped++;
      continue;
    }
    const record = await runOne(o, settings, runsDir, parametrization, width, lr, seed);
    results.push(record);
    all.push(record);
    appendFileSync(join(o.outDir, 'results.jsonl'), JSON.stringify(record) + '\n');
    writeFileAtomic(join(o.outDir, 'results.csv'), transferCsv(all));
    done++;
    remainingWidths.shift();
    options.onResult?.(record, { done, total: grid.length, skipped, remainingWidths: remainingWidths.slice() });
  }
  if (!existsSync(join(o.outDir, 'results.csv'))) writeFileAtomic(join(o.outDir, 'results.csv'), transferCsv(all));
  return results;
}

async function runOne(o: ReturnType<typeof resolved>, settings: string, runsDir: string, parametrization: Parametrization, width: number, lr: number, seed: number): Promise<TransferRecord> {
  const log2Lr = Math.log2(lr);
  const name = runName(parametrization, width, log2Lr, seed);
  // A directory without a recorded result is from an interrupted attempt: start it again.
  rmSync(join(runsDir, name), { recursive: true, force: true });
  const started = performance.now();
  const base = { parametrization, width, lr, log2Lr, seed, settings };
  try {
    const r = await train({
      name,
      outDir: runsDir,
      data: o.data,
      dataDir: o.dataDir,
      tokenizer: 'char',
      preset: 'tiny',
      model: {
        dModel: width,
        nLayers: o.nLayers,
        nHeads: o.nHeads,
        nKvHeads: o.nHeads,
        dFF: 4 * width,
        maxSeqLen: o.blockSize,
        mup: parametrization === 'mup' ? { ...o.mup, baseWidth: o.baseWidth } : null,
      },
      dropout: 0,
      batchSize: o.batchSize,
      blockSize: o.blockSize,
      maxSteps: o.steps,
      maxTime: null,
      lr,
      lrSchedule: 'constant',
      warmupSteps: o.warmupSteps,
      weightDecay: o.weightDecay,
      gradClip: o.gradClip,
      // One evaluation, at the end; no samples.
      evalInterval: o.steps,
      evalIters: o.evalIters,
      logInterval: o.steps,
      sampleTokens: 0,
      seed,
    });
    const tail = r.trainLosses.slice(-o.lossWindow).map((s) => s.loss);
    const finalTrainLoss = tail.reduce((a, b) => a + b, 0) / tail.length;
    const initialLoss = r.trainLosses[0].loss;
    const valLoss = r.finalValLoss;
    const finite = Number.isFinite(finalTrainLoss) && valLoss !== null && Number.isFinite(valLoss);
    // Kept as measured, but flagged: a finite loss above the initial one is a blown-up run too.
    return { ...base, initialLoss, finalTrainLoss: finite ? finalTrainLoss : null, valLoss: finite ? valLoss : null, diverged: !finite || finalTrainLoss > initialLoss, divergedAtStep: finite ? null : o.steps, seconds: (performance.now() - started) / 1000 };
  } catch (e) {
    if (!(e instanceof NonFiniteLossError)) throw e;
    const at = /at step (\d+)/.exec(e.message);
    return { ...base, initialLoss: null, finalTrainLoss: null, valLoss: null, diverged: true, divergedAtStep: at ? Number(at[1]) : null, seconds: (performance.now() - started) / 1000 };
  } finally {
    if (!o.keepRuns) {
      const dir = join(runsDir, name);
      if (existsSync(dir)) for (const f of readdirSync(dir)) if (f.endsWith('.safetensors')) rmSync(join(dir, f), { force: true });
    }
  }
}

export interface TransferOptimum {
  parametrization: Parametrization;
  width: number;
  /** log2 of the grid LR with the lowest seed-mean final train loss (a diverged seed excludes the LR). */
  bestLog2Lr: number | null;
  bestLoss: number | null;
  /** The vertex of a parabola through the best grid point and its two neighbours (log2 LR), when both exist. */
  interpolatedLog2Lr: number | null;
}

/** Seed-mean final train loss per (parametrization, width, lr); null where any seed diverged. */
export function transferMeans(records: readonly TransferRecord[]): { parametrization: Parametrization; width: number; lr: number; log2Lr: number; loss: number | null; seeds: number }[] {
  const groups = new Map<string, TransferRecord[]>();
  for (const r of records) {
    const k = `${r.parametrization}|${r.width}|${r.lr}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => {
    const ok = g.every((r) => !r.diverged && r.finalTrainLoss !== null);
    const loss = ok ? g.reduce((s, r) => s + (r.finalTrainLoss as number), 0) / g.length : null;
    return { parametrization: g[0].parametrization, width: g[0].width, lr: g[0].lr, log2Lr: g[0].log2Lr, loss, seeds: g.length };
  });
}

/** The best LR per (parametrization, width), on the grid and interpolated. */
export function transferOptima(records: readonly TransferRecord[]): TransferOptimum[] {
  const means = transferMeans(records);
  const keys = [...new Set(means.map((m) => `${m.parametrization}|${m.width}`))];
  return keys.map((k) => {
    const pts = means.filter((m) => `${m.parametrization}|${m.width}` === k).sort((a, b) => a.log2Lr - b.log2Lr);
    const { parametrization, width } = pts[0];
    let best = -1;
    pts.forEach((p, i) => {
      if (p.loss !== null && (best < 0 || p.loss < (pts[best].loss as number))) best = i;
    });
    if (best < 0) return { parametrization, width, bestLog2Lr: null, bestLoss: null, interpolatedLog2Lr: null };
    let interpolatedLog2Lr: number | null = null;
    const [a, b, c] = [pts[best - 1], pts[best], pts[best + 1]];
    if (a && c && a.loss !== null && c.loss !== null) {
      // Vertex of the parabola through the three points, with d1 = x_b − x_a, d2 = x_b − x_c:
      // x = x_b − ½·(d1²(y_b − y_c) − d2²(y_b − y_a)) / (d1(y_b − y_c) − d2(y_b − y_a)).
      const yb = b.loss as number;
      const d1 = b.log2Lr - a.log2Lr;
      const d2 = b.log2Lr - c.log2Lr;
      const num = d1 * d1 * (yb - c.loss) - d2 * d2 * (yb - a.loss);
      const den = d1 * (yb - c.loss) - d2 * (yb - a.loss);
      if (den !== 0) interpolatedLog2Lr = b.log2Lr - (0.5 * num) / den;
    }
    return { parametrization, width, bestLog2Lr: b.log2Lr, bestLoss: b.loss, interpolatedLog2Lr };
  });
}
