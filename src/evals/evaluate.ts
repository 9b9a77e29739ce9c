/**
 * Evaluating a model on a list of tasks, and the `<run>/eval-tasks.json` file that records it
 * (read by other tools, e.g. the report card; its schema is EvalTasksReport, version 1).
 */
import { writeFileAtomic } from '../data/files.js';
import type { LanguageModel } from '../models/language-model.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { scoreGenerativeTask } from './generative.js';
import { scoreContinuations } from './likelihood.js';
import { scoreMultipleChoice, type MultipleChoiceExample, type TaskResult } from './multiple-choice.js';
import { shakespeareTask } from './shakespeare.js';
import { readMultipleChoiceFile, type EvalTaskSpec } from './tasks.js';

/** Examples per built-in task unless a limit says otherwise. */
export const DEFAULT_TASK_EXAMPLES = 500;

/** `<run>/eval-tasks.json`. */
export interface EvalTasksReport {
  version: 1;
  /** The checkpoint evaluated. */
  checkpoint: 'best' | 'latest';
  /** Bits per byte on the run's validation text, or null when not computed. */
  bitsPerByte: number | null;
  tasks: TaskResult[];
}

export interface EvaluateTaskOptions {
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** The tiny-shakespeare text (needed by the Shakespeare tasks only). */
  shakespeareText?: () => string;
  /** The first held-out character of that text (default: its 90% point). */
  shakespeareStart?: number;
  /** Most examples per task: DEFAULT_TASK_EXAMPLES for built-in tasks, a file's all when absent. */
  limit?: number;
  seed: number;
  /** Names the model in errors (e.g. the run directory). */
  what?: string;
  /** Sequences per forward pass of the likelihood scoring. */
  batchSize?: number;
}

/** A multiple-choice task's examples, with choices that the tokenizer cannot encode reported as one line. */
function scoreChoices(name: string, examples: readonly MultipleChoiceExample[], o: EvaluateTaskOptions): TaskResult {
  const result = scoreMultipleChoice(name, examples, (requests) => {
    try {
      return scoreContinuations(o.model, o.tokenizer, requests, { batchSize: o.batchSize }).map((s) => s.logLikelihood);
    } catch (error) {
      throw new Error(`task '${name}': ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  // Only the figures travel on (the per-example details are for callers of scoreMultipleChoice).
  const { details: _details, ...figures } = result;
  return figures;
}

/** One task's result. */
export function evaluateTask(spec: EvalTaskSpec, o: EvaluateTaskOptions): TaskResult {
  const limit = o.limit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new Error(`evaluateTask: limit must be a positive integer, got ${limit}`);
  if (spec.kind === 'generative') return scoreGenerativeTask(o.model, o.tokenizer, spec.name, { count: limit ?? DEFAULT_TASK_EXAMPLES, seed: o.seed, what: o.what });
  let examples: MultipleChoiceExample[];
  if (spec.kind === 'shakespeare') {
    if (!o.shakespeareText) throw new Error(`evaluateTask: task '${spec.name}' needs the tiny-shakespeare text (shakespeareText)`);
    examples = shakespeareTask(spec.name, o.shakespeareText(), { count: limit ?? DEFAULT_TASK_EXAMPLES, seed: o.seed, start: o.shakespeareStart });
  } else {
    examples = readMultipleChoiceFile(spec.path);
    if (limit !== undefined) examples = examples.slice(0, limit);
  }
  return scoreChoices(spec.name, examples, o);
}

/** Rounds figures for the file (6 decimals: far below any interval's width). */
function rounded(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** The report as the file's JSON text (fields in the schema's order). */
export function formatEvalTasksReport(report: EvalTasksReport): string {
  const figures = (f: { correct: number; accuracy: number; low: number; high: number }) => ({ correct: f.correct, accuracy: rounded(f.accuracy), low: rounded(f.low), high: rounded(f.high) });
  const json = {
    version: 1,
    checkpoint: report.checkpoint,
    bitsPerByte: report.bitsPerByte === null ? null : rounded(report.bitsPerByte),
    tasks: report.tasks.map((t) => {
      const f = figures(t);
      return { name: t.name, kind: t.kind, examples: t.examples, correct: f.correct, accuracy: f.accuracy, low: f.low, high: f.high, chance: t.chance === null ? null : rounded(t.chance), norm: t.norm === null ? null : figures(t.norm) };
    }),
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** Writes the report atomically (a reader never sees half a file). */
export function writeEvalTasksReport(path: string, report: EvalTasksReport): void {
  writeFileAtomic(path, formatEvalTasksReport(report));
}

/** The results as a plain-text table: task, examples, acc [95% interval], acc_norm [interval], chance. */
export function formatTaskTable(results: readonly TaskResult[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}`;
  const acc = (f: { accuracy: number; low: number; high: number }) => `${pct(f.accuracy)}% [${pct(f.low)}, ${pct(f.high)}]`;
  const rows = [['task', 'examples', 'acc [95% CI]', 'acc_norm [95% CI]', 'chance']];
  for (const t of results) rows.push([t.name, String(t.examples), acc(t), t.norm ? acc(t.norm) : '-', t.chance === null ? '-' : `${pct(t.chance)}%`]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}
