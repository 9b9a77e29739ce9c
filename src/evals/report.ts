/**
 * `tensorlm report`: a report card for one run directory, like nanochat's report.md — the
 * machine, the model and training settings, the data, throughput and losses from metrics.jsonl,
 * the loss curves, task evaluations (`<run>/eval-tasks.json`), loss by position
 * (`<run>/loss-by-position-*.json`) and samples. Written as report.md + report.json (the same
 * figures) + report-loss.svg beside it, each atomically.
 *
 * Cheap by default: everything comes from the run's files, no model is loaded. `evaluate` adds
 * the whole-validation-split loss of the best checkpoint (what `tensorlm eval` computes) and
 * `samples` fresh seeded samples; only then is the checkpoint read.
 *
 * The markdown helpers (tables, percentages, times, the machine) are the pipeline's report card's
 * (posttrain/pipeline.ts): one path for report writing.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { getBackend } from '../backends/registry.js';
import type { TokenSequence } from '../data/dataset.js';
import { readJsonFile, writeFileAtomic } from '../data/files.js';
import { isJsonObject } from '../io/json.js';
import { isRecurrentConfig, type ModelConfig } from '../models/config.js';
import { generateText } from '../models/generate.js';
import { countParameters } from '../models/params.js';
import { formatPercent, formatWallTime, machineSummary, markdownCell, markdownTable, type ColumnAlign, type MachineSummary } from '../posttrain/pipeline.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { evaluateStream } from '../train/evaluate.js';
import { readMetrics, type EvalRecord, type MetricRecord, type TrainRecord } from '../train/metrics.js';
import { lossCurveSpec, renderSvg } from '../train/plot.js';
import { loadRun, openRunData, SAMPLE_TEMPERATURE, VALIDATION_MAX_TOKENS, type LoadedRun, type RunConfig } from '../train/trainer.js';
// Types only: the file's schema is the task evaluation's (evaluate.ts writes it).
import type { EvalTasksReport } from './evaluate.js';

// ---------------------------------------------------------------------------------------------
// eval-tasks.json (written by `tensorlm eval --tasks`)

/** Reads and checks `<run>/eval-tasks.json` (written by `tensorlm eval --tasks`, evaluate.ts); errors are one line naming the file and the field. */
export function readEvalTasks(path: string): EvalTasksReport {
  const json = readJsonFile(path, 'task evaluation');
  const fail = (what: string): never => {
    throw new Error(`task evaluation ${path}: ${what}`);
  };
  if (!isJsonObject(json)) fail('expected a JSON object');
  const o = json as Record<string, unknown>;
  if (o.version !== 1) fail(`version must be 1, got ${JSON.stringify(o.version)}`);
  if (o.checkpoint !== 'best' && o.checkpoint !== 'latest') fail(`checkpoint must be 'best' or 'latest'`);
  const numberOrNull = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));
  if (!numberOrNull(o.bitsPerByte)) fail('bitsPerByte must be a number or null');
  if (!Array.isArray(o.tasks)) fail('tasks must be an array');
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  (o.tasks as unknown[]).forEach((t, i) => {
    if (!isJsonObject(t)) fail(`tasks[${i}] must be an object`);
    const r = t as Record<string, unknown>;
    if (typeof r.name !== 'string') fail(`tasks[${i}].name must be a string`);
    if (r.kind !== 'multiple-choice' && r.kind !== 'generative') fail(`tasks[${i}].kind must be 'multiple-choice' or 'generative'`);
    for (const k of ['examples', 'correct', 'accuracy', 'low', 'high']) if (!isNum(r[k])) fail(`tasks[${i}].${k} must be a number`);
    if (!numberOrNull(r.chance)) fail(`tasks[${i}].chance must be a number or null`);
    if (r.norm !== null) {
      const n = r.norm as Record<string, unknown> | undefined;
      if (!isJsonObject(n) || !['correct', 'accuracy', 'low', 'high'].every((k) => isNum(n[k]))) fail(`tasks[${i}].norm must be null or {correct, accuracy, low, high}`);
    }
  });
  return json as EvalTasksReport;
}

// ---------------------------------------------------------------------------------------------
// loss-by-position-*.json (written by `tensorlm eval --by-position`)

/** The mean loss of positions from..to (1-based, inclusive) of the windows. */
export interface PositionBucket {
  from: number;
  to: number;
  loss: number;
}

export interface PositionCurve {
  file: string;
  blockSize: number;
  windows: number | null;
  checkpoint: string | null;
  data: string | null;
  buckets: PositionBucket[];
}

/**
 * Bucket means of a loss-by-position curve, as docs/recurrent.md shows them: 1, 2–4, 5–16, 17–64
 * (the first tokens change fastest: powers of 4), then doublings 65–128, 129–256, …, the last
 * bucket ending at the window's end.
 */
export function bucketLossByPosition(losses: readonly number[]): PositionBucket[] {
  const out: PositionBucket[] = [];
  let from = 1;
  let to = 1;
  while (from <= losses.length) {
    const end = Math.min(to, losses.length);
    let sum = 0;
    for (let p = from; p <= end; p++) sum += losses[p - 1];
    out.push({ from, to: end, loss: sum / (end - from + 1) });
    from = to + 1;
    to = to < 64 ? to * 4 : to * 2;
  }
  return out;
}

function readPositionCurves(dir: string): PositionCurve[] {
  const files = readdirSync(dir)
    .map((name) => ({ name, m: /^loss-by-position-(\d+)\.json$/.exec(name) }))
    .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
    .sort((a, b) => Number(a.m[1]) - Number(b.m[1]));
  return files.map(({ name, m }) => {
    const path = join(dir, name);
    const json = readJsonFile(path, 'loss-by-position file') as Record<string, unknown>;
    const blockSize = Number(m[1]);
    const losses = isJsonObject(json) ? json.losses : undefined;
    if (!Array.isArray(losses) || losses.length !== blockSize || !losses.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new Error(`${path} must hold 'losses', ${blockSize} finite numbers`);
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    return { file: name, blockSize, windows: typeof json.windows === 'number' ? json.windows : null, checkpoint: str(json.checkpoint), data: str(json.data), buckets: bucketLossByPosition(losses as number[]) };
  });
}

// ---------------------------------------------------------------------------------------------
// The report

export interface RunReport {
  /** The run's directory name. */
  name: string;
  dir: string;
  /** 'pretrain', or the fine-tuning stage that made the run (sft, rl, dpo). */
  stage: string;
  date: string;
  tensorlm: string;
  /** The machine writing the report; `backend`: the kernels this process uses (the run may have trained elsewhere). */
  machine: MachineSummary & { backend: string };
  model: {
    arch: string;
    preset: string;
    layers: number;
    dModel: number | null;
    heads: number | null;
    kvHeads: number | null;
    hiddenSize: number | null;
    maxSeqLen: number | null;
    vocabSize: number;
    /** Whether the run's config changed the preset's model fields (the shape above is the result). */
    overridden: boolean;
    /** Of the model its config describes (LoRA adapters not counted). */
    parameters: number;
    lora: { rank: number } | null;
  };
  training: {
    batchSize: number;
    gradAccumSteps: number;
    blockSize: number;
    lrSchedule: string;
    lr: number;
    minLr: number;
    warmupSteps: number;
    maxSteps: number;
    maxTime: number | null;
    replicas: number;
    seed: number;
    weightDecay: number;
    gradClip: number;
  };
  data: {
    dataset: string;
    /** The shard directory the run trained on (`dataShards`), or null for a text. */
    dataShards: string | null;
    trainFraction: number;
    tokenizer: { type: string; vocabSize: number };
    /** Token counts of the splits: runs do not record them, so they are known only when `evaluate` loaded the text. */
    trainTokens: number | null;
    valTokens: number | null;
  };
  throughput: {
    steps: number;
    tokens: number;
    wallSeconds: number;
    /** tokens / wallSeconds: the whole run, evaluations included. */
    tokensPerSecond: number;
    /** The mean of the logged training intervals' speed (evaluations excluded), or null. */
    trainTokensPerSecond: number | null;
    bestValLoss: number | null;
    bestValStep: number | null;
    finalTrainLoss: number | null;
    finalValLoss: number | null;
    /** The last logged batch loss. */
    lastBatchLoss: number | null;
    evaluations: number;
  };
  /** The loss-curve SVG, relative to the markdown. */
  lossCurve: string;
  lossByPosition: PositionCurve[];
  tasks: EvalTasksReport | null;
  validation: {
    /** 'fresh': the whole validation split now; 'metrics': the run's last evaluation (a random-batch estimate). */
    source: 'fresh' | 'metrics';
    checkpoint: string | null;
    step: number | null;
    loss: number;
    perplexity: number;
    bitsPerToken: number;
    unit: 'char' | 'token';
    tokens: number | null;
  } | null;
  samples: {
    last: { step: number; text: string } | null;
    fresh: { seed: number; prompt: string; text: string }[];
    temperature: number;
    checkpoint: string | null;
  };
}

export interface RunReportOptions {
  /** Where report.md goes (default `<run>/report.md`); the JSON and the SVG are written beside it, named after it. */
  out?: string;
  /** Fresh validation figures of the best checkpoint on the run's validation split (loads the text). */
  evaluate?: boolean;
  /** Where named datasets are cached (default: the run's, else TENSORLM_DATA_DIR, else ~/.cache/tensorlm). */
  dataDir?: string | null;
  /** Fresh samples from the best checkpoint (seeds 1..N). */
  samples?: number;
  /** Tokens of each fresh sample. */
  sampleTokens?: number;
  /** The prompt of the fresh samples ('' starts from a newline). */
  samplePrompt?: string;
  /** The date written in the header (default now). */
  date?: Date;
}

export interface RunReportPaths {
  markdown: string;
  json: string;
  svg: string;
}

/** report.md, report.json and report-loss.svg for `out` (or `<dir>/report.md`). */
export function runReportPaths(dir: string, out?: string): RunReportPaths {
  const markdown = out ?? join(dir, 'report.md');
  const base = join(dirname(markdown), basename(markdown, extname(markdown)));
  return { markdown, json: `${base}.json`, svg: `${base}-loss.svg` };
}

let version: string | null = null;

/** TensorLM's version from its package.json (two folders up from src/evals and from dist/evals). */
export function tensorlmVersion(): string {
  if (version === null) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      version = pkg.name === 'tensorlm' && typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** A run's config.json, checked enough to describe it; errors are one line. */
function readRunConfig(dir: string): RunConfig {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`run directory ${dir} does not exist`);
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir} is not a run directory (no config.json)`);
  const json = readJsonFile(path, 'run config');
  if (!isJsonObject(json) || !isJsonObject((json as Record<string, unknown>).train) || !isJsonObject((json as Record<string, unknown>).model)) {
    throw new Error(`run config ${path} must hold 'train' and 'model' objects`);
  }
  return json as unknown as RunConfig;
}

function modelSection(config: RunConfig): RunReport['model'] {
  const m: ModelConfig = config.model;
  const parameters = countParameters(m).total;
  const lora = config.lora ? { rank: config.lora.rank } : null;
  const overridden = isJsonObject(config.train.model) && Object.keys(config.train.model).length > 0;
  if (isRecurrentConfig(m)) {
    return { arch: m.arch, preset: config.train.preset, layers: m.nLayers, dModel: null, heads: null, kvHeads: null, hiddenSize: m.hiddenSize, maxSeqLen: null, vocabSize: m.vocabSize, overridden, parameters, lora };
  }
  return { arch: 'transformer', preset: config.train.preset, layers: m.nLayers, dModel: m.dModel, heads: m.nHeads, kvHeads: m.nKvHeads, hiddenSize: null, maxSeqLen: m.maxSeqLen, vocabSize: m.vocabSize, overridden, parameters, lora };
}

function trainingSection(config: RunConfig): RunReport['training'] {
  const t = config.train;
  return {
    batchSize: t.batchSize,
    gradAccumSteps: t.gradAccumSteps,
    blockSize: t.blockSize,
    lrSchedule: t.lrSchedule,
    lr: t.lr,
    minLr: t.minLr,
    warmupSteps: t.warmupSteps,
    maxSteps: t.maxSteps,
    maxTime: t.maxTime,
    replicas: t.replicas,
    seed: t.seed,
    weightDecay: t.weightDecay,
    gradClip: t.gradClip,
  };
}

/** Throughput and losses from the metrics records (what the report's figures must match). */
export function throughputFromMetrics(records: readonly MetricRecord[]): RunReport['throughput'] {
  const last = records[records.length - 1];
  const trains = records.filter((r): r is TrainRecord => r.kind === 'train');
  const evals = records.filter((r): r is EvalRecord => r.kind === 'eval');
  let best: EvalRecord | null = null;
  for (const e of evals) if (best === null || e.valLoss < best.valLoss) best = e;
  const lastEval = evals[evals.length - 1] ?? null;
  const steps = records.reduce((n, r) => Math.max(n, r.step), 0);
  return {
    steps,
    tokens: last.tokens,
    wallSeconds: last.elapsedSeconds,
    tokensPerSecond: last.elapsedSeconds > 0 ? last.tokens / last.elapsedSeconds : 0,
    trainTokensPerSecond: trains.length > 0 ? trains.reduce((s, r) => s + r.tokensPerSecond, 0) / trains.length : null,
    bestValLoss: best?.valLoss ?? null,
    bestValStep: best?.step ?? null,
    finalTrainLoss: lastEval?.trainLoss ?? null,
    finalValLoss: lastEval?.valLoss ?? null,
    lastBatchLoss: trains[trains.length - 1]?.loss ?? null,
    evaluations: evals.length,
  };
}

/**
 * The run's validation tokens and both splits' sizes, from the data it trained on (its text split
 * as training split it, or its shard set) through train/trainer.ts's `openRunData`, the one path
 * that training and `tensorlm eval` use too. A fine-tuning stage has no such data.
 */
export async function runValidationData(config: RunConfig, tokenizer: Tokenizer, dataDir?: string | null): Promise<{ val: TokenSequence; trainTokens: number; valTokens: number; what: string }> {
  const stage = config.stage ?? 'pretrain';
  if (stage !== 'pretrain') throw new Error(`the validation loss needs a pretraining run's data; this run is a '${stage}' stage trained on ${config.train.data}`);
  const data = await openRunData(config.train, tokenizer, { dataDir: dataDir ?? undefined });
  const what = config.train.dataShards ? `shards ${config.train.dataShards} (validation split)` : `${config.train.data} (validation split)`;
  return { val: data.readSplit('val', VALIDATION_MAX_TOKENS), trainTokens: data.trainTokens, valTokens: data.valTokens, what };
}

/** Builds the report's figures from the run's files (and, when asked, its best checkpoint). */
export async function buildRunReport(dir: string, options: RunReportOptions = {}): Promise<RunReport> {
  const config = readRunConfig(dir);
  const records = readMetrics(join(dir, 'metrics.jsonl'));
  if (records.length === 0) throw new Error(`${dir} has no metrics (metrics.jsonl is missing or empty)`);
  const samples = options.samples ?? 0;
  if (!Number.isInteger(samples) || samples < 0) throw new Error(`samples must be a non-negative integer, got ${samples}`);
  const sampleTokens = options.sampleTokens ?? 200;
  if (!Number.isInteger(sampleTokens) || sampleTokens < 1) throw new Error(`sampleTokens must be a positive integer, got ${sampleTokens}`);

  const tokenizerPath = join(dir, 'tokenizer.json');
  // The model is read only when something needs it: the report of a run is cheap by default.
  const run: LoadedRun | null = options.evaluate || samples > 0 ? loadRun(dir, 'best') : null;
  const tokenizer = run?.tokenizer ?? (existsSync(tokenizerPath) ? loadTokenizer(tokenizerPath) : null);
  const tokenizerType = tokenizer === null ? 'unknown' : tokenizer instanceof CharTokenizer ? 'char' : 'bpe';
  const unit = tokenizerType === 'char' ? 'char' : 'token';
  const throughput = throughputFromMetrics(records);
  const checkpointName = run ? basename(run.checkpoint, '.safetensors') : null;

  let splits: Awaited<ReturnType<typeof runValidationData>> | null = null;
  let validation: RunReport['validation'] = null;
  if (options.evaluate && run) {
    splits = await runValidationData(config, run.tokenizer, options.dataDir);
    if (splits.val.length < 2) throw new Error(`${splits.what} has fewer than 2 tokens`);
    const f = evaluateStream(run.model, splits.val, config.train.blockSize, config.train.batchSize);
    validation = { source: 'fresh', checkpoint: checkpointName, step: run.meta.step, loss: f.loss, perplexity: f.perplexity, bitsPerToken: f.bitsPerToken, unit, tokens: f.tokens };
  } else {
    const lastEval = records.filter((r): r is EvalRecord => r.kind === 'eval').pop();
    if (lastEval) validation = { source: 'metrics', checkpoint: null, step: lastEval.step, loss: lastEval.valLoss, perplexity: Math.exp(lastEval.valLoss), bitsPerToken: lastEval.valLoss / Math.LN2, unit, tokens: null };
  }

  const lastSample = records.filter((r): r is EvalRecord => r.kind === 'eval' && typeof r.sample === 'string').pop();
  const prompt = options.samplePrompt ?? '';
  const fresh = run
    ? Array.from({ length: samples }, (_, i) => ({ seed: i + 1, prompt, text: generateText(run.model, run.tokenizer, prompt, { maxNewTokens: sampleTokens, temperature: SAMPLE_TEMPERATURE, seed: i + 1 }).text }))
    : [];

  const evalTasksPath = join(dir, 'eval-tasks.json');
  const t = config.train;
  return {
    name: basename(dir),
    dir,
    stage: config.stage ?? 'pretrain',
    date: (options.date ?? new Date()).toISOString(),
    tensorlm: tensorlmVersion(),
    machine: { ...machineSummary(), backend: getBackend() },
    model: modelSection(config),
    training: trainingSection(config),
    data: {
      dataset: t.data,
      // Runs from before shards existed have no such key.
      dataShards: t.dataShards ?? null,
      trainFraction: t.trainFraction,
      tokenizer: { type: tokenizerType, vocabSize: tokenizer?.vocabSize ?? config.model.vocabSize },
      trainTokens: splits?.trainTokens ?? null,
      valTokens: splits?.valTokens ?? null,
    },
    throughput,
    lossCurve: basename(runReportPaths(dir, options.out).svg),
    lossByPosition: readPositionCurves(dir),
    tasks: existsSync(evalTasksPath) ? readEvalTasks(evalTasksPath) : null,
    validation,
    samples: { last: lastSample ? { step: lastSample.step, text: lastSample.sample ?? '' } : null, fresh, temperature: SAMPLE_TEMPERATURE, checkpoint: fresh.length > 0 ? checkpointName : null },
  };
}

// ---------------------------------------------------------------------------------------------
// Markdown

const int = (n: number) => n.toLocaleString('en-US');
const loss = (x: number | null) => (x === null ? '–' : x.toFixed(4));

/** A fenced block that the text cannot close early (a fence longer than any run of backticks in it). */
function fenced(text: string): string {
  const longest = Math.max(2, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}text\n${text}\n${fence}`;
}

function keyValueTable(rows: [string, string][]): string {
  return markdownTable(['', 'value'], ['left', 'left'], rows);
}

function positionTable(curves: readonly PositionCurve[]): string {
  const widest = curves.reduce((a, c) => (c.buckets.length > a.length ? c.buckets : a), [] as PositionBucket[]);
  const label = (b: PositionBucket) => (b.from === b.to ? String(b.from) : `${b.from}–${b.to}`);
  return markdownTable(
    ['positions →', ...widest.map(label)],
    ['left', ...widest.map((): ColumnAlign => 'right')],
    curves.map((c) => [
      `windows of ${c.blockSize}${c.windows !== null ? `, ${int(c.windows)} windows` : ''}${c.checkpoint ? ` (${basename(c.checkpoint)})` : ''}`,
      ...widest.map((_, i) => (c.buckets[i] ? c.buckets[i].loss.toFixed(3) : '—')),
    ]),
  );
}

function tasksTable(tasks: EvalTasksReport): string {
  const interval = (a: number, low: number, high: number) => `${formatPercent(a)} [${formatPercent(low)}, ${formatPercent(high)}]`;
  return markdownTable(
    ['task', 'kind', 'n', 'accuracy [95% interval]', 'normalised accuracy', 'chance'],
    ['left', 'left', 'right', 'right', 'right', 'right'],
    tasks.tasks.map((t) => [
      markdownCell(t.name),
      t.kind,
      int(t.examples),
      `${t.correct}/${t.examples} = ${interval(t.accuracy, t.low, t.high)}`,
      t.norm ? interval(t.norm.accuracy, t.norm.low, t.norm.high) : '–',
      t.chance === null ? '–' : formatPercent(t.chance),
    ]),
  );
}

export function runReportMarkdown(report: RunReport): string {
  const { machine: m, model, training: t, data, throughput: th } = report;
  const unit = report.validation?.unit ?? (data.tokenizer.type === 'char' ? 'char' : 'token');
  const modelShape = model.arch === 'transformer' ? `${model.layers} layers, dModel ${model.dModel}, ${model.heads} heads${model.kvHeads !== model.heads ? ` (${model.kvHeads} KV heads)` : ''}, context ${model.maxSeqLen}` : `${model.layers} ${model.arch.toUpperCase()} layers, hidden ${model.hiddenSize}`;
  const schedule = t.lrSchedule === 'cosine' ? `cosine, ${t.lr} → ${t.minLr} after ${t.warmupSteps} warmup steps` : `constant ${t.lr} after ${t.warmupSteps} warmup steps`;
  const out: string[] = [
    `# Report card: ${report.name}`,
    '',
    `Stage ${report.stage} · written ${report.date} · TensorLM ${report.tensorlm}`,
    '',
    `${m.cores} cores (${m.cpu}) · ${m.platform} · Node ${m.node} · backend ${m.backend} (this process's kernels; the run may have trained with others)`,
    '',
    '## Config',
    '',
    keyValueTable([
      ['model', `${model.arch} (preset ${model.preset}${model.overridden ? ', resized by the config' : ''}): ${modelShape}, vocab ${int(model.vocabSize)}`],
      ['parameters', `${int(model.parameters)}${model.lora ? ` (+ LoRA adapters, rank ${model.lora.rank})` : ''}`],
      ['batch', `${t.batchSize} × block ${t.blockSize}${t.gradAccumSteps > 1 ? ` × ${t.gradAccumSteps} accumulated micro-batches` : ''} = ${int(t.batchSize * t.blockSize * t.gradAccumSteps)} tokens/step`],
      ['learning rate', `AdamW, ${schedule}; weight decay ${t.weightDecay}, grad clip ${t.gradClip}`],
      ['steps', `${int(t.maxSteps)} planned${t.maxTime !== null ? `, time budget ${formatWallTime(t.maxTime)}` : ''}`],
      ['replicas', String(t.replicas)],
      ['seed', String(t.seed)],
    ]),
    '',
    '## Data',
    '',
    keyValueTable([
      // A shard-trained run's `data` is not what it read: the shard set is.
      data.dataShards !== null ? ['dataset', `token shards ${markdownCell(data.dataShards)}`] : ['dataset', markdownCell(data.dataset)],
      ['tokenizer', `${data.tokenizer.type}, vocab ${int(data.tokenizer.vocabSize)}`],
      ['split', `${formatPercent(data.trainFraction)} train / ${formatPercent(1 - data.trainFraction)} val`],
      [
        'tokens',
        data.trainTokens !== null && data.valTokens !== null ? `${int(data.trainTokens)} train / ${int(data.valTokens)} val` : 'not recorded by the run (`tensorlm report --eval` counts them)',
      ],
    ]),
    '',
    '## Throughput',
    '',
    keyValueTable([
      ['steps', int(th.steps)],
      ['tokens seen', int(th.tokens)],
      // Tenths under a minute: a short run's '1s' would hide its speed.
      ['wall time', `${th.wallSeconds < 60 ? `${th.wallSeconds.toFixed(1)}s` : formatWallTime(th.wallSeconds)} (evaluations included)`],
      ['tokens/s', `${int(Math.round(th.tokensPerSecond))} overall (evaluations included)${th.trainTokensPerSecond !== null ? `; ${int(Math.round(th.trainTokensPerSecond))} while training (mean of the logged intervals)` : ''}`],
      ['best val loss', th.bestValStep === null ? '–' : `${loss(th.bestValLoss)} at step ${int(th.bestValStep)}`],
      ['final losses', `train ${loss(th.finalTrainLoss)}, val ${loss(th.finalValLoss)} (last of ${th.evaluations} evaluations); last batch ${loss(th.lastBatchLoss)}`],
    ]),
    '',
    '## Loss curves',
    '',
    `![train and validation loss against steps and tokens](${report.lossCurve})`,
    '',
  ];
  if (report.lossByPosition.length > 0) {
    out.push(
      `**Loss by position** (nats/${unit}; \`tensorlm eval --by-position\`: the mean loss of the token at position p of consecutive validation windows, predicted from the p − 1 before it; bucket means):`,
      '',
      positionTable(report.lossByPosition),
      '',
    );
  }
  out.push('## Evaluation', '');
  const v = report.validation;
  if (v === null) out.push('No evaluation recorded yet.', '');
  else if (v.source === 'fresh') out.push(`Validation (${v.checkpoint} checkpoint, step ${int(v.step ?? 0)}, the whole split: ${int(v.tokens ?? 0)} ${unit}s): loss ${v.loss.toFixed(4)} nats/${unit}, perplexity ${v.perplexity.toFixed(2)}, ${v.bitsPerToken.toFixed(3)} bits/${unit}.`, '');
  else out.push(`Validation (the run's last evaluation, step ${int(v.step ?? 0)}, a random-batch estimate): loss ${v.loss.toFixed(4)} nats/${unit}, perplexity ${v.perplexity.toFixed(2)}, ${v.bitsPerToken.toFixed(3)} bits/${unit}. \`--eval\` measures the best checkpoint on the whole split.`, '');
  if (report.tasks) {
    out.push(`Tasks (${report.tasks.checkpoint} checkpoint${report.tasks.bitsPerByte !== null ? `; ${report.tasks.bitsPerByte.toFixed(3)} bits/byte` : ''}; 95% intervals):`, '', tasksTable(report.tasks), '');
  } else {
    out.push(`No task evaluation yet: \`tensorlm eval --run ${report.dir} --tasks shakespeare-speaker,shakespeare-continuation\` writes eval-tasks.json.`, '');
  }
  out.push('## Samples', '');
  const s = report.samples;
  if (s.last) out.push(`The last sample of training (step ${int(s.last.step)}):`, '', fenced(s.last.text), '');
  else out.push('The run recorded no sample.', '');
  for (const f of s.fresh) out.push(`Fresh sample, ${s.checkpoint} checkpoint, seed ${f.seed}, temperature ${s.temperature}${f.prompt ? `, prompt ${JSON.stringify(f.prompt)}` : ''}:`, '', fenced(f.prompt + f.text), '');
  return out.join('\n');
}

/** Builds the report and writes report.md, report.json and the loss-curve SVG (atomically); returns the paths. */
export async function writeRunReport(dir: string, options: RunReportOptions = {}): Promise<{ report: RunReport; paths: RunReportPaths }> {
  const report = await buildRunReport(dir, options);
  const paths = runReportPaths(dir, options.out);
  const records = readMetrics(join(dir, 'metrics.jsonl'));
  mkdirSync(dirname(paths.markdown), { recursive: true });
  // The uniform baseline ln V, as `tensorlm plot` draws it.
  writeFileAtomic(paths.svg, await renderSvg(lossCurveSpec([{ name: report.name, records }], `${report.name}: loss curves`, Math.log(report.model.vocabSize))));
  writeFileAtomic(paths.json, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(paths.markdown, runReportMarkdown(report));
  return { report, paths };
}
