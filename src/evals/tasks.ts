/**
 * Evaluation tasks by name: the built-in Shakespeare multiple-choice tasks, the built-in generative
 * chat tasks, and multiple-choice tasks from JSONL files.
 *
 * The JSONL format: one object per line (blank lines skipped),
 *
 *   {"context": "The capital of France is", "choices": [" Paris", " Rome", " Oslo"], "answer": 0}
 *
 * `context` a non-empty string; `choices` two or more distinct non-empty strings, each scored as
 * a continuation of the context (so a choice usually starts with the space or newline that
 * separates it); `answer` the index of the right choice; an optional `id` (string or number) for
 * the user's reference. Other fields are errors, so that a misspelt field is not silently ignored.
 */
import { describeValue } from '../io/json.js';
import { readTextFile } from '../data/files.js';
import { TASK_NAMES, type TaskName } from '../chat/tasks.js';
import { isGenerativeTaskName } from './generative.js';
import type { MultipleChoiceExample } from './multiple-choice.js';
import { isShakespeareTaskName, SHAKESPEARE_TASK_NAMES, type ShakespeareTaskName } from './shakespeare.js';

const FIELDS = ['context', 'choices', 'answer', 'id'];

/** Multiple-choice examples from JSONL text; `name` (the file) starts every error, with the line. */
export function parseMultipleChoiceJsonl(text: string, name = '<tasks>'): MultipleChoiceExample[] {
  const out: MultipleChoiceExample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (i === 0 && line.startsWith('\uFEFF')) line = line.slice(1);
    if (line.trim() === '') continue;
    const where = `${name}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line) as unknown;
    } catch (error) {
      throw new Error(`${where}: expected one JSON object per line, got invalid JSON (${(error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ')})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where}: expected a JSON object, got ${describeValue(value)}`);
    const o = value as Record<string, unknown>;
    const unknown = Object.keys(o).find((k) => !FIELDS.includes(k));
    if (unknown !== undefined) throw new Error(`${where}: unknown field "${unknown}" (expected "context", "choices", "answer" and optionally "id")`);
    if (typeof o.context !== 'string' || o.context.length === 0) throw new Error(`${where}: expected "context" to be a non-empty string, got ${describeValue(o.context)}`);
    if (!Array.isArray(o.choices) || o.choices.length < 2) throw new Error(`${where}: expected "choices" to be an array of at least 2 strings, got ${describeValue(o.choices)}`);
    const choices = o.choices as unknown[];
    choices.forEach((c, k) => {
      if (typeof c !== 'string' || c.length === 0) throw new Error(`${where}: expected "choices"[${k}] to be a non-empty string, got ${describeValue(c)}`);
      if (choices.indexOf(c) !== k) throw new Error(`${where}: "choices"[${k}] repeats "choices"[${choices.indexOf(c)}]`);
    });
    if (typeof o.answer !== 'number' || !Number.isInteger(o.answer) || o.answer < 0 || o.answer >= choices.length) {
      throw new Error(`${where}: expected "answer" to be an index of "choices" (an integer in [0, ${choices.length - 1}]), got ${describeValue(o.answer)}`);
    }
    if (o.id !== undefined && typeof o.id !== 'string' && typeof o.id !== 'number') throw new Error(`${where}: expected "id" to be a string or a number, got ${describeValue(o.id)}`);
    const example: MultipleChoiceExample = { context: o.context, choices: choices as string[], answer: o.answer };
    if (o.id !== undefined) example.id = String(o.id);
    out.push(example);
  }
  if (out.length === 0) throw new Error(`${name}: expected at least one example, found only blank lines`);
  return out;
}

/** Reads a multiple-choice JSONL file (see parseMultipleChoiceJsonl). */
export function readMultipleChoiceFile(path: string): MultipleChoiceExample[] {
  return parseMultipleChoiceJsonl(readTextFile(path, 'task file'), path);
}

/** A task named on the command line. */
export type EvalTaskSpec =
  | { kind: 'shakespeare'; name: ShakespeareTaskName }
  | { kind: 'generative'; name: TaskName }
  | { kind: 'file'; name: string; path: string };

/** Every built-in task name. */
export const BUILTIN_EVAL_TASKS: readonly string[] = [...SHAKESPEARE_TASK_NAMES, ...TASK_NAMES];

/**
 * A task list (`'shakespeare-speaker,addition,data/qa.jsonl'`, spaces around names allowed):
 * built-in names, or paths of JSONL files (anything ending in `.jsonl`). Empty, unknown and
 * repeated entries throw.
 */
export function parseEvalTaskList(list: string): EvalTaskSpec[] {
  const specs: EvalTaskSpec[] = [];
  for (const raw of list.split(',')) {
    const name = raw.trim();
    const known = `built-in tasks: ${BUILTIN_EVAL_TASKS.join(', ')}, or a path/to/task.jsonl`;
    if (name === '') throw new Error(`--tasks: empty task name in '${list}'; ${known}`);
    if (specs.some((s) => s.name === name)) throw new Error(`--tasks: task '${name}' is listed twice`);
    if (isShakespeareTaskName(name)) specs.push({ kind: 'shakespeare', name });
    else if (isGenerativeTaskName(name)) specs.push({ kind: 'generative', name });
    else if (name.endsWith('.jsonl')) specs.push({ kind: 'file', name, path: name });
    else throw new Error(`--tasks: unknown task '${name}'; ${known}`);
  }
  return specs;
}
