/**
 * Generative exact-match tasks: the built-in verifiable chat tasks (chat/tasks.ts: addition,
 * reverse, sort, count) on their held-out `test` split, answered greedily through the chat
 * template and scored by exact match — posttrain's `scoreTask`, the same function the SFT/RL
 * stages report, so a number here is the number there.
 *
 * They need a chat-tuned transformer: a run whose tokenizer has the chat template's special
 * tokens (an SFT, RL or DPO run). A pretrained base has none, and scoring it through the template
 * would measure nothing; `tensorlm pipeline` scores bases few-shot instead.
 */
import { TASK_NAMES, generateTaskExamples, taskCapacity, type TaskName } from '../chat/tasks.js';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../chat/template.js';
import type { LanguageModel } from '../models/language-model.js';
import { TransformerLM } from '../models/transformer.js';
import { scoreTask } from '../posttrain/stage.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { TaskResult } from './multiple-choice.js';

export function isGenerativeTaskName(name: string): name is TaskName {
  return (TASK_NAMES as readonly string[]).includes(name);
}

/**
 * The seed of a task's held-out problems: `seed` offset by the task's place in TASK_NAMES, so a
 * task gets the same problems whatever other tasks are listed with it.
 */
export function generativeTaskSeed(task: TaskName, seed: number): number {
  return seed + 101 * (TASK_NAMES.indexOf(task) + 1);
}

/**
 * Throws one line unless `model` is a chat-tuned transformer (its tokenizer has every chat
 * special token), as generative task `task` needs; `what` names the model (e.g. the run).
 */
export function checkChatModel(model: LanguageModel, tokenizer: Tokenizer, task: string, what = 'the model'): model is TransformerLM {
  const missing = CHAT_SPECIAL_TOKENS.filter((t) => !Object.hasOwn(tokenizer.specialTokens, t));
  if (!(model instanceof TransformerLM) || missing.length > 0) {
    const why = model instanceof TransformerLM ? `its tokenizer lacks the chat template's special tokens (${missing.join(' ')})` : 'it holds a recurrent model';
    throw new Error(`task '${task}' needs an SFT run (a chat-tuned transformer, e.g. from tensorlm sft); ${what} is not one: ${why}`);
  }
  return true;
}

/**
 * Up to `count` held-out problems of `task` (fewer when its test split is smaller), scored by
 * exact match of the greedy answer. `what` names the model in the error for a model that is not
 * a chat-tuned transformer (e.g. the run directory).
 */
export function scoreGenerativeTask(model: LanguageModel, tokenizer: Tokenizer, task: TaskName, options: { count: number; seed: number; what?: string }): TaskResult {
  if (!checkChatModel(model, tokenizer, task, options.what)) throw new Error('unreachable');
  if (!Number.isInteger(options.count) || options.count < 1) throw new Error(`scoreGenerativeTask: count must be a positive integer, got ${options.count}`);
  const examples = generateTaskExamples(task, 'test', Math.min(options.count, taskCapacity(task, 'test')), generativeTaskSeed(task, options.seed));
  const s = scoreTask(model, new ChatTemplate(tokenizer), examples);
  return { name: task, kind: 'generative', examples: s.total, correct: s.correct, accuracy: s.accuracy, low: s.low, high: s.high, chance: null, norm: null };
}
