/**
 * `tensorlm eval --run <dir> --tasks a,b,path.jsonl [--limit N] [--seed S]`: bits per byte on the
 * run's validation split, then each task (src/evals), a table on stdout, and `<run>/eval-tasks.json`.
 */
import { basename, join } from 'node:path';
import { loadText } from '../../data/resolve.js';
import { dataDirEnv } from '../../env.js';
import { bitsPerByte } from '../../evals/bits-per-byte.js';
import { DEFAULT_TASK_EXAMPLES, evaluateTask, formatTaskTable, writeEvalTasksReport, type EvalTasksReport } from '../../evals/evaluate.js';
import { checkChatModel } from '../../evals/generative.js';
import type { TaskResult } from '../../evals/multiple-choice.js';
import { heldOutStart, SHAKESPEARE_DATASET } from '../../evals/shakespeare.js';
import { parseEvalTaskList } from '../../evals/tasks.js';
import { isRecurrentConfig } from '../../models/config.js';
import { loadRun, openRunData, VALIDATION_MAX_TOKENS } from '../../train/trainer.js';

/** The seed of the built-in tasks' examples unless --seed says otherwise. */
export const DEFAULT_EVAL_SEED = 1337;

export interface EvalTasksOptions {
  run: string;
  tasks: string;
  checkpoint?: 'best' | 'latest';
  limit?: number;
  seed?: number;
  dataDir?: string;
  /** Window length of the bits-per-byte evaluation (default: the run's block size). */
  blockSize?: number;
  /** Where lines go (console.log by default). */
  print?: (line: string) => void;
}

/** Whether a run's data names the tiny-shakespeare dataset (by name or as its file). */
function trainedOnShakespeare(data: string): boolean {
  return data === SHAKESPEARE_DATASET || basename(data) === `${SHAKESPEARE_DATASET}.txt`;
}

/** Runs the tasks, prints the table and writes `<run>/eval-tasks.json`; returns what it wrote. */
export async function runEvalTasks(o: EvalTasksOptions): Promise<EvalTasksReport> {
  const print = o.print ?? ((line: string) => console.log(line));
  const specs = parseEvalTaskList(o.tasks);
  const seed = o.seed ?? DEFAULT_EVAL_SEED;
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${seed}`);
  const { model, tokenizer, config, checkpoint } = loadRun(o.run, o.checkpoint ?? 'best');
  // loadRun falls back to latest when there is no best checkpoint: record the one evaluated.
  const which: 'best' | 'latest' = basename(checkpoint) === 'best.safetensors' ? 'best' : 'latest';
  // Fail before any long evaluation when a generative task cannot run on this model.
  for (const s of specs) if (s.kind === 'generative') checkChatModel(model, tokenizer, s.name, `run ${o.run}`);
  const dataDir = o.dataDir ?? config.train.dataDir ?? dataDirEnv();

  // Bits per byte on the run's validation split (what training held out).
  let bpb: number | null = null;
  let trainedChars: number | null = null;
  // A fine-tuning stage's run trained on tasks or conversations (its data is e.g. 'tasks:addition'): no text to measure.
  const onText = config.train.dataShards || !(config.train.data.startsWith('tasks:') || config.train.data.endsWith('.jsonl'));
  // The data training used (its text split, or its shard set), through the one path training and `eval` use.
  const data = onText ? await openRunData(config.train, tokenizer, { dataDir }) : null;
  const what = config.train.dataShards ? `shards ${config.train.dataShards}` : config.train.data;
  const val = data?.readSplit('val', VALIDATION_MAX_TOKENS) ?? null;
  if (val === null) {
    print(`${which} checkpoint: the run trained on ${config.train.data}, not a text; no bits per byte`);
  } else if (val.length >= 2) {
    const blockSize = o.blockSize ?? config.train.blockSize;
    if (!isRecurrentConfig(config.model) && blockSize > config.model.maxSeqLen) throw new Error(`--block-size ${blockSize} is longer than the model's context (maxSeqLen ${config.model.maxSeqLen})`);
    const b = bitsPerByte(model, tokenizer, val, blockSize, config.train.batchSize);
    bpb = b.bitsPerByte;
    print(`${which} checkpoint on ${what} (validation split): loss ${b.figures.loss.toFixed(4)} nats/token over ${b.tokens.toLocaleString('en-US')} tokens, ${b.bitsPerByte.toFixed(4)} bits/byte over ${b.bytes.toLocaleString('en-US')} bytes`);
  } else {
    print(`${which} checkpoint: ${what} has no validation split (trainFraction ${config.train.trainFraction}); no bits per byte`);
  }
  const onShakespeare = data !== null && !config.train.dataShards && trainedOnShakespeare(config.train.data);
  if (onShakespeare) trainedChars = tokenizer.decode(data.readSplit('train')).length;

  // The Shakespeare tasks take text after everything the run trained on (src/evals/shakespeare.ts).
  let shakespeare: { text: string; start: number } | null = null;
  const shakespeareText = async (): Promise<{ text: string; start: number }> => {
    if (shakespeare) return shakespeare;
    // The run's own copy when it trained on one (a path), else the named dataset.
    const text = await loadText(onShakespeare ? config.train.data : SHAKESPEARE_DATASET, { dataDir });
    let start = heldOutStart(text);
    if (trainedChars !== null) {
      if (trainedChars >= text.length - 1) throw new Error(`run ${o.run} trained on all of ${SHAKESPEARE_DATASET} (trainFraction ${config.train.trainFraction}): there is no held-out text for the Shakespeare tasks`);
      start = Math.max(start, trainedChars);
    }
    shakespeare = { text, start };
    return shakespeare;
  };

  const results: TaskResult[] = [];
  for (const spec of specs) {
    const t0 = performance.now();
    const text = spec.kind === 'shakespeare' ? await shakespeareText() : null;
    const result = evaluateTask(spec, {
      model,
      tokenizer,
      shakespeareText: text ? () => text.text : undefined,
      shakespeareStart: text?.start,
      limit: o.limit ?? (spec.kind === 'file' ? undefined : DEFAULT_TASK_EXAMPLES),
      seed,
      what: `run ${o.run}`,
      batchSize: config.train.batchSize,
    });
    results.push(result);
    print(`${spec.name}: ${result.examples} examples in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  }
  print('');
  print(formatTaskTable(results));
  const report: EvalTasksReport = { version: 1, checkpoint: which, bitsPerByte: bpb, tasks: results };
  const path = join(o.run, 'eval-tasks.json');
  writeEvalTasksReport(path, report);
  print(`wrote ${path}`);
  return report;
}
