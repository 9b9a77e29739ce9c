/**
 * `tensorlm pipeline`: nanochat's speedrun (base → SFT → RL) with its report card, at the scale of
 * a 2-core machine. Each stage is the library's own function (train, sft, rl, dpo: no loop of its
 * own here) in `<outDir>/<name>/<stage>/`, with its own time budget (or, for tests and exact
 * reruns, a step count). DPO, when given a budget, is an alternative arm from the same SFT run.
 *
 * Resumable: a stage whose latest checkpoint is finished (its step reached the planned steps, or
 * its time budget is spent) is skipped; one with an unfinished checkpoint is resumed; so rerunning
 * the same command continues where it stopped.
 *
 * Then every model is scored on the same held-out problems of each task (the tasks' test split,
 * drawn as the stages draw theirs): the chat models by `scoreTask` (greedy, chat template), the
 * base, which has no chat tokens, few-shot in plain text (`scoreFewShot`). Each consecutive pair
 * of stages gets the difference of accuracies with Newcombe's 95% interval. The report card is
 * report.md + report.json + accuracy.svg + curves.svg (each stage's loss and held-out accuracy
 * against steps) in `<outDir>/<name>/`, each written atomically.
 */
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { ChatTemplate } from '../chat/template.js';
import { accuracyDifference, parseTaskList, scoreAnswers, wilsonInterval, type AccuracyDifference, type TaskExample, type TaskScore } from '../chat/tasks.js';
import { writeFileAtomic } from '../data/files.js';
import { generateText } from '../models/generate.js';
import type { TransformerLM } from '../models/transformer.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { readCheckpoint } from '../train/checkpoint.js';
import type { TrainConfig } from '../train/config.js';
import { readMetrics, type MetricRecord } from '../train/metrics.js';
import { renderSvg } from '../train/plot.js';
import type { RunHooks, RunOutcome } from '../train/run-loop.js';
import { loadTransformerRun, runFiles, train, type RunConfig, type RunFiles } from '../train/trainer.js';
import { dpo, type DpoConfig } from './dpo.js';
import { rl, type RlConfig } from './rl.js';
import { DEFAULT_SFT_CONFIG, sft, type SftConfig } from './sft.js';
import { scoreTask, taskProblems } from './stage.js';

export const PIPELINE_STAGES = ['base', 'sft', 'rl', 'dpo'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** Which stage each one starts from (the base starts from the text). */
const PARENT: Record<Exclude<PipelineStage, 'base'>, PipelineStage> = { sft: 'base', rl: 'sft', dpo: 'sft' };

/** Step ceiling of a time-budgeted stage: the budget decides (the stages' own defaults, e.g. SFT's 500, would cut it short). */
const TIME_BUDGET_MAX_STEPS = 1_000_000;

/**
 * Steps between a stage's evaluations: each one answers every held-out problem greedily
 * (4 tasks × 250 take a few seconds), so they are spaced to cost a few percent of the stage.
 */
const EVAL_INTERVAL: Record<Exclude<PipelineStage, 'base'>, number> = { sft: 250, rl: 100, dpo: 100 };

export interface PipelineConfig {
  /** The pipeline lives in `<outDir>/<name>/`. */
  name: string;
  outDir: string;
  /** The built-in tasks that SFT, RL and DPO train on and that every model is scored on. */
  tasks: string[];
  /** The base's text: a dataset name ('tinyshakespeare') or a path. */
  baseData: string;
  /** Where named datasets are cached (null: the default). */
  dataDir: string | null;
  /** Data-parallel replicas of the base's pretraining (the post-training stages run on one thread). */
  replicas: number;
  /** Seconds of training per stage; 0 skips the stage (RL and DPO only). */
  time: Record<PipelineStage, number>;
  /** Step counts that replace a stage's time budget (tests, exact reruns); absent: the time budget. */
  steps: Partial<Record<PipelineStage, number>>;
  /**
   * Worked examples per task that SFT learns from (its taskExamples). Few on purpose: in real
   * post-training, demonstrations are the scarce, expensive data, while problems with a checker
   * are cheap — RL draws fresh training problems (RlConfig.taskExamples) and needs no answers
   * written out. With thousands of demonstrations SFT alone saturates the tasks it can learn.
   */
  demonstrations: number;
  /** Held-out problems per task that every model is scored on (fewer where a task's test split is smaller). */
  evalExamples: number;
  /** Solved examples in the base's few-shot prompt (fewer where the model's context is short). */
  fewShot: number;
  seed: number;
  /** Further settings of each stage (e.g. a tiny model for the base); the pipeline's own keys win. */
  overrides: { base?: Partial<TrainConfig>; sft?: Partial<SftConfig>; rl?: Partial<RlConfig>; dpo?: Partial<DpoConfig> };
}

export const DEFAULT_PIPELINE_CONFIG: Readonly<PipelineConfig> = Object.freeze({
  name: 'chat',
  outDir: 'runs',
  tasks: ['reverse', 'sort', 'count', 'addition'],
  baseData: 'tinyshakespeare',
  dataDir: null,
  replicas: 1,
  time: { base: 480, sft: 180, rl: 720, dpo: 0 },
  steps: {},
  demonstrations: 500,
  evalExamples: 250,
  fewShot: 3,
  seed: 1337,
  overrides: {},
});

/** `defaults` with `input` over it, checked: known tasks, a budget for the base and SFT, valid counts. */
export function resolvePipelineConfig(input: Partial<PipelineConfig>): PipelineConfig {
  const c: PipelineConfig = { ...DEFAULT_PIPELINE_CONFIG, ...input, time: { ...DEFAULT_PIPELINE_CONFIG.time, ...input.time }, steps: { ...input.steps }, overrides: { ...input.overrides } };
  c.tasks = parseTaskList(c.tasks.join(','));
  for (const stage of PIPELINE_STAGES) {
    const t = c.time[stage];
    if (!(t >= 0 && Number.isFinite(t))) throw new Error(`pipeline: the ${stage} time must be a non-negative number of seconds, got ${t}`);
    const s = c.steps[stage];
    if (s !== undefined && !(Number.isInteger(s) && s >= 1)) throw new Error(`pipeline: the ${stage} steps must be a positive integer, got ${s}`);
  }
  // Everything after the base starts from it, and RL and DPO from SFT: those two cannot be skipped.
  for (const stage of ['base', 'sft'] as const) if (!stageRuns(c, stage)) throw new Error(`pipeline: no ${stage} stage time: give --${stage}-time (e.g. 8m); only rl and dpo may be skipped with 0`);
  for (const k of ['evalExamples', 'replicas', 'demonstrations'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`pipeline: ${k} must be a positive integer, got ${c[k]}`);
  if (!Number.isInteger(c.fewShot) || c.fewShot < 0) throw new Error(`pipeline: fewShot must be a non-negative integer, got ${c.fewShot}`);
  if (!/^[\w.-]+$/.test(c.name)) throw new Error(`pipeline: name '${c.name}' may only contain letters, digits, '.', '_' and '-'`);
  return c;
}

function stageRuns(c: PipelineConfig, stage: PipelineStage): boolean {
  return c.steps[stage] !== undefined || c.time[stage] > 0;
}

/** maxSteps/maxTime of a stage: its step count exactly, or its time budget with a ceiling that never binds. */
function budget(c: PipelineConfig, stage: PipelineStage): { maxSteps: number; maxTime: number | null } {
  const steps = c.steps[stage];
  return steps !== undefined ? { maxSteps: steps, maxTime: null } : { maxSteps: TIME_BUDGET_MAX_STEPS, maxTime: c.time[stage] };
}

/**
 * Whether a run directory holds a finished run: its latest checkpoint reached the planned steps,
 * or (a time-budgeted run stops by the clock, maybe short of its plan) spent its time budget.
 * Null where there is no checkpoint yet.
 */
export function runFinished(files: RunFiles): boolean | null {
  if (!existsSync(files.latest)) return null;
  const { meta } = readCheckpoint(files.latest);
  const maxTime = (meta.config as RunConfig).train.maxTime;
  return meta.step >= meta.plannedSteps || (maxTime !== null && meta.elapsedSeconds >= maxTime);
}

/** Most characters of a base model's answer (the built-in answers are a few). */
const MAX_FEW_SHOT_TOKENS = 24;

/**
 * The base model's plain-text few-shot prompt: each solved example as `prompt\nanswer\n`, then the
 * problem's `prompt\n`; the answer is what follows, up to the next newline. Solved examples are
 * dropped (from the first) while the prompt and an answer would overflow `maxLength` tokens.
 * Null when the tokenizer cannot encode the problem (a character the base's text never had).
 */
export function fewShotPrompt(tokenizer: Tokenizer, shots: readonly TaskExample[], problem: TaskExample, maxLength: number): number[] | null {
  const encode = (text: string): number[] | null => {
    try {
      return tokenizer.encode(text, { allowSpecial: false });
    } catch {
      // A character-level tokenizer rejects characters outside its text: the base cannot read them.
      return null;
    }
  };
  const question = encode(`${problem.prompt}\n`);
  if (question === null) return null;
  const solved = shots.map((s) => encode(`${s.prompt}\n${s.answer}\n`)).filter((ids): ids is number[] => ids !== null);
  while (solved.length > 0 && solved.reduce((n, ids) => n + ids.length, question.length) + MAX_FEW_SHOT_TOKENS > maxLength) solved.shift();
  return [...solved.flat(), ...question];
}

/**
 * A model without chat tokens (the pretrained base) scored by exact match, few-shot: greedy
 * decoding of `fewShotPrompt` until a newline. A problem it cannot encode counts as wrong.
 */
export function scoreFewShot(model: TransformerLM, tokenizer: Tokenizer, shots: readonly TaskExample[], examples: readonly TaskExample[]): TaskScore {
  const outputs = examples.map((ex) => {
    const prompt = fewShotPrompt(tokenizer, shots, ex, model.config.maxSeqLen);
    if (prompt === null) return '';
    return generateText(model, tokenizer, prompt, { maxNewTokens: MAX_FEW_SHOT_TOKENS, temperature: 0, stop: ['\n'] }).text;
  });
  return scoreAnswers(outputs, examples);
}

/** One stage's line of the report card. */
export interface StageCard {
  stage: PipelineStage;
  dir: string;
  /** Seconds of training (all sessions of a resumed run), from its latest checkpoint. */
  wallSeconds: number;
  steps: number;
  /** The last evaluation's validation loss (RL's is 1 − its mean held-out accuracy), or null. */
  finalValLoss: number | null;
  /** Held-out exact match per task, and `all` (the tasks pooled). */
  scores: Record<string, TaskScore>;
  /** Its learning curves (curves.svg). */
  curves: CurvePoint[];
}

/** One point of a stage's learning curves (curves.svg): a loss or a held-out accuracy at a step. */
export interface CurvePoint {
  stage: PipelineStage;
  step: number;
  /** 'loss' (the stage's own: LM, masked SFT, 1 − RL reward/accuracy, DPO) or 'held-out exact match'. */
  panel: 'loss' | 'held-out exact match';
  /** 'train (batch)', 'train', 'val', or a task's name. */
  series: string;
  value: number;
}

/**
 * A stage's learning curves from its metrics.jsonl: the logged batch losses, the train and
 * validation losses at each evaluation, and each task's held-out exact match where the stage
 * logs it (`TASK/accuracy`: SFT, RL and DPO on built-in tasks).
 */
export function stageCurves(stage: PipelineStage, records: readonly MetricRecord[], tasks: readonly string[]): CurvePoint[] {
  const out: CurvePoint[] = [];
  for (const r of records) {
    if (r.kind === 'train') {
      out.push({ stage, step: r.step, panel: 'loss', series: 'train (batch)', value: r.loss });
      continue;
    }
    out.push({ stage, step: r.step, panel: 'loss', series: 'train', value: r.trainLoss }, { stage, step: r.step, panel: 'loss', series: 'val', value: r.valLoss });
    for (const task of tasks) {
      const accuracy = r.metrics?.[`${task}/accuracy`];
      if (accuracy !== undefined) out.push({ stage, step: r.step, panel: 'held-out exact match', series: task, value: accuracy });
    }
  }
  return out;
}

/** The difference of one task's accuracy (or `all`) between two stages, `to` − `from`. */
export interface StageGain extends AccuracyDifference {
  from: PipelineStage;
  to: PipelineStage;
  task: string;
  /** Whether the interval's lower bound is above 0: the gain is supported at 95%. */
  significant: boolean;
}

export interface PipelineReport {
  name: string;
  date: string;
  machine: MachineSummary;
  commands: string[];
  tasks: string[];
  /** Held-out problems per task that every model answered. */
  problems: Record<string, number>;
  stages: StageCard[];
  gains: StageGain[];
}

export interface PipelineHooks {
  /** A stage is about to train (`resumed`: from its checkpoint); the run hooks it returns watch it. */
  onStageStart?(stage: PipelineStage, info: { dir: string; resumed: boolean }): RunHooks | void;
  /** A stage trained (maybe stopped early). */
  onStageEnd?(stage: PipelineStage, outcome: RunOutcome): void;
  /** A stage whose run had already finished (not trained again). */
  onStageSkip?(stage: PipelineStage, dir: string): void;
  /** Each model before it is scored. */
  onScoring?(stage: PipelineStage): void;
}

export interface PipelineOptions {
  /** Checked after every step of the current stage: when it returns true the stage saves a checkpoint and the pipeline stops. */
  shouldStop?: () => boolean;
  hooks?: PipelineHooks;
  /** Command lines to record in the report (the CLI's own). */
  commands?: string[];
}

export interface PipelineResult {
  dir: string;
  /** The stage that was interrupted (its checkpoint saved; rerun to continue), or null. */
  interrupted: PipelineStage | null;
  /** Null when interrupted. */
  report: PipelineReport | null;
  /** report.md, report.json, accuracy.svg and curves.svg (empty when interrupted). */
  written: string[];
}

export async function pipeline(input: Partial<PipelineConfig>, options: PipelineOptions = {}): Promise<PipelineResult> {
  const c = resolvePipelineConfig(input);
  const dir = join(c.outDir, c.name);
  const hooks = options.hooks ?? {};
  const stages = PIPELINE_STAGES.filter((s) => stageRuns(c, s));
  const files = (stage: PipelineStage) => runFiles(dir, stage);
  // The models chain from their latest checkpoints, which are also the ones scored: the report
  // describes exactly the model each next stage started from, never one picked on the held-out set.
  const chatStage = { outDir: dir, tasks: c.tasks, evalExamples: c.evalExamples, seed: c.seed, baseCheckpoint: 'latest' as const };

  for (const stage of stages) {
    const f = files(stage);
    const finished = runFinished(f);
    if (finished === true) {
      hooks.onStageSkip?.(stage, f.dir);
      continue;
    }
    const resume = finished === false;
    const runHooks = hooks.onStageStart?.(stage, { dir: f.dir, resumed: resume }) ?? undefined;
    const control = { resume, shouldStop: options.shouldStop, hooks: runHooks };
    const b = budget(c, stage);
    let outcome: RunOutcome;
    if (stage === 'base') {
      outcome = await train({ ...c.overrides.base, ...b, name: 'base', outDir: dir, data: c.baseData, dataDir: c.dataDir, replicas: c.replicas, seed: c.seed }, control);
    } else {
      const from = { ...chatStage, ...b, name: stage, base: files(PARENT[stage]).dir };
      const evalInterval = EVAL_INTERVAL[stage];
      if (stage === 'sft') outcome = await sft({ evalInterval, ...c.overrides.sft, ...from, taskExamples: c.demonstrations }, control);
      else if (stage === 'rl') outcome = await rl({ evalInterval, ...c.overrides.rl, ...from }, control);
      else outcome = await dpo({ evalInterval, ...c.overrides.dpo, ...from }, control);
    }
    hooks.onStageEnd?.(stage, outcome);
    if (outcome.stoppedEarly === 'interrupted') return { dir, interrupted: stage, report: null, written: [] };
  }

  // The held-out problems, drawn exactly as the stages draw theirs (same tasks, seed and count).
  const problems = taskProblems({ ...DEFAULT_SFT_CONFIG, tasks: c.tasks, seed: c.seed, taskExamples: c.fewShot, evalExamples: c.evalExamples });
  const cards = stages.map((stage) => {
    hooks.onScoring?.(stage);
    return stageCard(stage, files(stage), problems, c);
  });
  const report: PipelineReport = {
    name: c.name,
    date: new Date().toISOString(),
    machine: machineSummary(),
    commands: options.commands ?? [],
    tasks: c.tasks,
    problems: Object.fromEntries(problems.map((p) => [p.task, p.test.length])),
    stages: cards,
    gains: stageGains(cards),
  };
  return { dir, interrupted: null, report, written: await writeReport(dir, report) };
}

function stageCard(stage: PipelineStage, f: RunFiles, problems: ReturnType<typeof taskProblems>, c: PipelineConfig): StageCard {
  const run = loadTransformerRun(f.dir, 'latest', 'the pipeline report card');
  const scores: Record<string, TaskScore> = {};
  for (const { task, train: shots, test } of problems) {
    // The few-shot examples come from the train split: never one of the problems scored.
    scores[task] = stage === 'base' ? scoreFewShot(run.model, run.tokenizer, shots.slice(0, c.fewShot), test) : scoreTask(run.model, new ChatTemplate(run.tokenizer), test);
  }
  const correct = Object.values(scores).reduce((n, s) => n + s.correct, 0);
  const total = Object.values(scores).reduce((n, s) => n + s.total, 0);
  scores.all = { correct, total, accuracy: correct / total, ...wilsonInterval(correct, total) };
  const records = readMetrics(f.metrics);
  const evals = records.filter((r) => r.kind === 'eval');
  return { stage, dir: f.dir, wallSeconds: run.meta.elapsedSeconds, steps: run.meta.step, finalValLoss: evals.length > 0 ? evals[evals.length - 1].valLoss : null, scores, curves: stageCurves(stage, records, c.tasks) };
}

/** base→SFT, SFT→RL and SFT→DPO for each task and all of them, where both stages ran. */
export function stageGains(cards: readonly StageCard[]): StageGain[] {
  const byStage = new Map(cards.map((card) => [card.stage, card]));
  const gains: StageGain[] = [];
  for (const to of ['sft', 'rl', 'dpo'] as const) {
    const from = PARENT[to];
    const a = byStage.get(to);
    const b = byStage.get(from);
    if (!a || !b) continue;
    for (const task of Object.keys(a.scores)) {
      const d = accuracyDifference(a.scores[task], b.scores[task]);
      gains.push({ from, to, task, ...d, significant: d.low > 0 });
    }
  }
  return gains;
}

// The report-card helpers below are shared with evals/report.ts (`tensorlm report`), which sits
// above this layer: one path for report writing, so both cards format tables, percentages, times
// and the machine the same way.

/** The machine a report card was written on (no git, nothing slow: os and process only). */
export interface MachineSummary {
  cores: number;
  cpu: string;
  platform: string;
  node: string;
}

export function machineSummary(): MachineSummary {
  const list = cpus();
  return { cores: list.length, cpu: list[0]?.model.trim() ?? 'unknown', platform: `${process.platform} ${process.arch}`, node: process.version };
}

/** A fraction as a percentage with one decimal: 0.375 → '37.5%'. */
export function formatPercent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** A duration for a report card: '45s' under a minute, else '1m 15s'. */
export function formatWallTime(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(0)}s` : `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
}

export type ColumnAlign = 'left' | 'right' | 'center';

const ALIGN_RULE: Record<ColumnAlign, string> = { left: '---', right: '---:', center: ':---:' };

/**
 * A GitHub-flavoured markdown table. Cells are written as given: a caller whose text may hold
 * '|' or a newline escapes it (`markdownCell`), since only it knows which cells are free text.
 */
export function markdownTable(header: readonly string[], align: readonly ColumnAlign[], rows: readonly (readonly string[])[]): string {
  if (align.length !== header.length) throw new Error(`markdownTable: ${header.length} columns but ${align.length} alignments`);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), `|${align.map((a) => ALIGN_RULE[a]).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Free text made safe for one table cell: pipes escaped, line breaks as spaces. */
export function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function scoreCell(s: TaskScore): string {
  return `${s.correct}/${s.total} = ${formatPercent(s.accuracy)} [${formatPercent(s.low)}, ${formatPercent(s.high)}]`;
}

/** The stages' table: time, steps, loss and held-out exact match per task (what the CLI prints too). */
export function stageTable(report: PipelineReport): string {
  const columns = [...report.tasks, 'all'];
  return markdownTable(
    ['stage', 'wall time', 'steps', 'final val loss', ...columns],
    ['left', 'right', 'right', 'right', ...columns.map((): ColumnAlign => 'right')],
    report.stages.map((s) => [s.stage, formatWallTime(s.wallSeconds), String(s.steps), s.finalValLoss?.toFixed(4) ?? '–', ...columns.map((t) => scoreCell(s.scores[t]))]),
  );
}

export function reportMarkdown(report: PipelineReport): string {
  const pct = formatPercent;
  const gains = markdownTable(
    ['stages', 'task', 'difference', '95% interval', 'lower bound > 0'],
    ['left', 'left', 'right', 'left', 'center'],
    report.gains.map((g) => [`${g.from} → ${g.to}`, g.task, `${g.difference >= 0 ? '+' : ''}${pct(g.difference)}`, `[${pct(g.low)}, ${pct(g.high)}]`, g.significant ? '✓' : '✗']),
  );
  const m = report.machine;
  return [
    `# Report card: ${report.name}`,
    '',
    `${report.date} · ${m.cores} cores (${m.cpu}) · ${m.platform} · Node ${m.node}`,
    '',
    '## Stages',
    '',
    `Held-out exact match on the same problems for every model (${Object.entries(report.problems).map(([t, n]) => `${t}: ${n}`).join(', ')}), with 95% Wilson intervals. ` +
      'The base is scored few-shot in plain text (solved examples, then the problem; its answer is the line it writes); the chat models in the chat template. ' +
      "Wall time is the stage's training time; RL's val loss is 1 − its mean held-out accuracy.",
    '',
    stageTable(report),
    '',
    '## Gains',
    '',
    "Each stage minus the one it started from, with Newcombe's 95% interval (conservative: the samples are paired). ✓: the lower bound is above 0.",
    '',
    gains,
    '',
    '![held-out exact match per task and stage](accuracy.svg)',
    '',
    '## Learning curves',
    '',
    "Each stage's own loss (the LM loss for the base, the masked loss for SFT, 1 − mean reward (train) and 1 − held-out accuracy (val) for RL, the DPO loss) and, where the stage measures it, held-out exact match per task at each evaluation.",
    '',
    '![each stage: loss and held-out exact match against steps](curves.svg)',
    '',
    '## Commands',
    '',
    '```sh',
    ...(report.commands.length > 0 ? report.commands : ['(called from the library)']),
    '```',
    '',
  ].join('\n');
}

/** Accuracy per task per stage as grouped bars, with the Wilson intervals as error bars. */
export function accuracySpec(report: PipelineReport): TopLevelSpec {
  const values = report.stages.flatMap((s) => [...report.tasks, 'all'].map((task) => ({ task, stage: s.stage, accuracy: s.scores[task].accuracy, low: s.scores[task].low, high: s.scores[task].high })));
  const stageOrder = report.stages.map((s) => s.stage);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${report.name}: held-out exact match (95% Wilson intervals)`,
    data: { values },
    facet: { column: { field: 'task', type: 'nominal', title: null, sort: [...report.tasks, 'all'] } },
    spec: {
      width: 110,
      height: 220,
      layer: [
        {
          mark: 'bar',
          encoding: {
            x: { field: 'stage', type: 'nominal', sort: stageOrder, title: null },
            y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%' }, title: 'held-out exact match' },
            color: { field: 'stage', type: 'nominal', sort: stageOrder },
          },
        },
        { mark: 'rule', encoding: { x: { field: 'stage', type: 'nominal', sort: stageOrder }, y: { field: 'low', type: 'quantitative', title: null }, y2: { field: 'high' } } },
      ],
    },
  } as TopLevelSpec;
}

/**
 * Each stage's learning curves, a column per stage (its own step axis and loss scale: the stages'
 * losses measure different things), the loss above and held-out exact match below.
 */
export function curvesSpec(report: PipelineReport): TopLevelSpec {
  // Explicit columns rather than a facet: the base has no accuracy panel, and Vega lays out a
  // facet with an empty cell and independent scales wrongly.
  const chart = (stage: PipelineStage, panel: CurvePoint['panel']) => ({
    title: panel === 'loss' ? stage : '',
    width: 200,
    height: 150,
    transform: [{ filter: { and: [{ field: 'stage', equal: stage }, { field: 'panel', equal: panel }] } }],
    mark: { type: 'line' as const, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative' as const, title: 'step' },
      y: { field: 'value', type: 'quantitative' as const, title: panel, scale: panel === 'loss' ? { zero: false } : { domain: [0, 1] } },
      color: { field: 'series', type: 'nominal' as const, title: null },
      opacity: { condition: { test: "datum.series === 'train (batch)'", value: 0.35 }, value: 1 },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${report.name}: learning curves per stage`,
    data: { values: report.stages.flatMap((s) => s.curves) },
    hconcat: report.stages.map((s) => ({
      vconcat: [chart(s.stage, 'loss'), ...(s.curves.some((p) => p.panel === 'held-out exact match') ? [chart(s.stage, 'held-out exact match')] : [])],
    })),
    resolve: { scale: { x: 'independent', y: 'independent' } },
  } as TopLevelSpec;
}

async function writeReport(dir: string, report: PipelineReport): Promise<string[]> {
  const paths = { md: join(dir, 'report.md'), json: join(dir, 'report.json'), svg: join(dir, 'accuracy.svg'), curves: join(dir, 'curves.svg') };
  writeFileAtomic(paths.svg, await renderSvg(accuracySpec(report)));
  writeFileAtomic(paths.curves, await renderSvg(curvesSpec(report)));
  writeFileAtomic(paths.json, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(paths.md, reportMarkdown(report));
  return [paths.md, paths.json, paths.svg, paths.curves];
}

