/**
 * Verifiable tasks: small problems with one exact answer, for measuring fine-tuning stages (SFT,
 * RL) of tiny character-level models, in the spirit of nanochat's SpellingBee and arithmetic
 * tasks. Problems and answers are a few to about 20 characters so that a model trained for
 * minutes on two CPU cores can learn them.
 *
 * The tasks and their prompt formats (the prompt is the user turn, the answer the assistant turn):
 *
 * | task       | prompt              | answer    | problem space                                  |
 * |------------|---------------------|-----------|------------------------------------------------|
 * | `addition` | `12+345=`           | `357`     | a+b for a, b in 0..999 (1–3 digits, no padding) |
 * | `reverse`  | `reverse: qatm`     | `mtaq`    | strings of 3–6 letters a–z                      |
 * | `sort`     | `sort: qatm`        | `amqt`    | the same strings; letters in a–z order          |
 * | `count`    | `count a in banana` | `3`       | a string and a letter of it, or (one time in five) a letter it lacks (answer `0`) |
 *
 * The strings are random letters, not a list of English words: a few hundred words would be
 * memorised in minutes of fine-tuning, and held-out accuracy would then measure how far the
 * model generalises from the memorised words rather than how well it does the task; and RL,
 * whose rewards come from training problems, would only polish answers it already knows. Over
 * 321 million strings no problem is seen twice, so a training reward and a held-out accuracy
 * measure the same thing. English words are strings too: `reverse: stone` is a valid prompt.
 *
 * Problems are drawn at random: the operands uniformly; a string's length uniformly in 3–6, then
 * its letters. Held-out splits: a problem's split is a function of the problem alone (a hash of
 * its canonical form, TEST_FRACTION of the space goes to `test`), never of the seed or the count,
 * so the train and test splits of any two calls are disjoint. The canonical form folds problems
 * that would leak into each other's answers into one split: `a+b` and `b+a` (commutativity), a
 * string and its reversal for `reverse`, and anagrams for `sort` (they share the answer).
 *
 * Scoring is exact match after trimming, with Wilson intervals for one accuracy and Newcombe's
 * hybrid score interval for the difference of two.
 */
import { fmix32 } from '../math.js';
import { Generator } from '../tensor/random.js';
import type { Conversation } from './template.js';

/** The built-in tasks, in a fixed order. */
export const TASK_NAMES = ['addition', 'reverse', 'sort', 'count'] as const;
export type TaskName = (typeof TASK_NAMES)[number];
export type TaskSplit = 'train' | 'test';

/** One problem: the prompt a model sees and the exact answer it should produce. */
export interface TaskExample {
  task: TaskName;
  prompt: string;
  answer: string;
}

/** The share of every task's problem space that belongs to the `test` split. */
export const TEST_FRACTION = 0.2;

/** Addition operands run over 0..ADDITION_LIMIT-1, that is one to three digits. */
const ADDITION_LIMIT = 1000;
/** The strings of reverse, sort and count have MIN_LETTERS to MAX_LETTERS letters a–z. */
const MIN_LETTERS = 3;
const MAX_LETTERS = 6;
const ALPHABET = [...'abcdefghijklmnopqrstuvwxyz'];
/** One count problem in ABSENT_SHARE asks for a letter the string lacks (answer 0). */
const ABSENT_SHARE = 0.2;

/** The two-sided 95% normal quantile, Φ⁻¹(0.975), that the intervals default to. */
export const Z_95 = 1.959963984540054;

function isTaskName(name: string): name is TaskName {
  return (TASK_NAMES as readonly string[]).includes(name);
}

function checkTask(task: string, caller: string): asserts task is TaskName {
  if (!isTaskName(task)) throw new Error(`${caller}: unknown task '${task}'; known tasks: ${TASK_NAMES.join(', ')}`);
}

function checkSplit(split: string, caller: string): asserts split is TaskSplit {
  if (split !== 'train' && split !== 'test') throw new Error(`${caller}: split must be 'train' or 'test', got '${split}'`);
}

const reverseWord = (word: string): string => [...word].reverse().join('');
const sortLetters = (word: string): string => [...word].sort().join('');
const lesser = (a: string, b: string): string => (a < b ? a : b);

function countLetter(word: string, letter: string): number {
  let n = 0;
  for (const c of word) if (c === letter) n++;
  return n;
}

const FNV_OFFSET = 0x811c9dc5;

/** 32-bit FNV-1a of `text`. */
function fnv1a(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/**
 * The split of a problem, from its canonical form alone (salted by task so tasks split
 * independently). The murmur3 finaliser follows FNV-1a, which alone mixes the last characters
 * weakly into the high bits that the threshold compares.
 */
function splitOfCanonical(task: TaskName, canonical: string): TaskSplit {
  return fmix32(fnv1a(`${task}:${canonical}`)) < TEST_FRACTION * 4294967296 ? 'test' : 'train';
}

/** The canonical form of a problem, from the parts of its prompt (see exampleSplit). */
const CANONICAL: Record<TaskName, (parts: string[]) => string> = {
  addition: ([a, b]) => `${Math.min(Number(a), Number(b))}+${Math.max(Number(a), Number(b))}`,
  reverse: ([word]) => lesser(word, reverseWord(word)),
  sort: ([word]) => sortLetters(word),
  count: ([letter, word]) => `${letter} in ${word}`,
};

/** The number of strings of MIN_LETTERS to MAX_LETTERS letters. */
const STRINGS = Array.from({ length: MAX_LETTERS - MIN_LETTERS + 1 }, (_, k) => ALPHABET.length ** (MIN_LETTERS + k)).reduce((a, b) => a + b, 0);

function drawString(generator: Generator): string {
  const length = generator.randint(MIN_LETTERS, MAX_LETTERS + 1);
  let word = '';
  for (let i = 0; i < length; i++) word += ALPHABET[generator.randint(0, ALPHABET.length)];
  return word;
}

/** A task's problems: how many distinct ones exist, and one drawn at random with its prompt's parts. */
interface TaskSpace {
  size: number;
  draw(generator: Generator): { prompt: string; answer: string; parts: string[] };
}

const SPACES: Record<TaskName, TaskSpace> = {
  addition: {
    size: ADDITION_LIMIT * ADDITION_LIMIT,
    draw: (g) => {
      const a = g.randint(0, ADDITION_LIMIT);
      const b = g.randint(0, ADDITION_LIMIT);
      return { prompt: `${a}+${b}=`, answer: String(a + b), parts: [String(a), String(b)] };
    },
  },
  reverse: {
    size: STRINGS,
    draw: (g) => {
      const word = drawString(g);
      return { prompt: `reverse: ${word}`, answer: reverseWord(word), parts: [word] };
    },
  },
  sort: {
    size: STRINGS,
    draw: (g) => {
      const word = drawString(g);
      return { prompt: `sort: ${word}`, answer: sortLetters(word), parts: [word] };
    },
  },
  count: {
    // Every (letter, string) pair is a possible problem.
    size: STRINGS * ALPHABET.length,
    draw: (g) => {
      const word = drawString(g);
      // A letter at a random position (so a repeated letter is asked in proportion), or one the
      // string lacks, so that 0 is a possible answer without dominating as it would if all 26
      // letters were equally likely.
      let letter: string;
      if (g.random() < ABSENT_SHARE) {
        const absent = ALPHABET.filter((l) => !word.includes(l));
        letter = absent[g.randint(0, absent.length)];
      } else letter = word[g.randint(0, word.length)];
      return { prompt: `count ${letter} in ${word}`, answer: String(countLetter(word, letter)), parts: [letter, word] };
    },
  },
};

const SPLIT_SHARE: Record<TaskSplit, number> = { train: 1 - TEST_FRACTION, test: TEST_FRACTION };

/**
 * The most distinct problems `generateTaskExamples` returns for a task's split: half the split's
 * expected size (TEST_FRACTION of the space, or the rest), so that drawing them without repeats
 * stays fast (a draw that is in the other split or already taken is drawn again).
 */
export function taskCapacity(task: TaskName, split: TaskSplit): number {
  checkTask(task, 'taskCapacity');
  checkSplit(split, 'taskCapacity');
  return Math.floor((SPACES[task].size * SPLIT_SHARE[split]) / 2);
}

/**
 * `count` distinct problems of one task's split, drawn in a seeded random order: the same
 * arguments always give the same examples, and a smaller count gives a prefix of a larger one
 * (same seed). Throws when `count` exceeds taskCapacity rather than slowing down or repeating
 * problems, so that an accuracy is never inflated by duplicates.
 */
export function generateTaskExamples(task: TaskName, split: TaskSplit, count: number, seed: number): TaskExample[] {
  checkTask(task, 'generateTaskExamples');
  checkSplit(split, 'generateTaskExamples');
  if (!Number.isInteger(count) || count < 0) throw new Error(`generateTaskExamples: count must be a non-negative integer, got ${count}`);
  if (!Number.isFinite(seed)) throw new Error(`generateTaskExamples: seed must be a finite number, got ${seed}`);
  const capacity = taskCapacity(task, split);
  if (count > capacity) {
    throw new Error(`generateTaskExamples: ${count} ${task} ${split} examples requested; at most ${capacity} (half the split's distinct problems, so that drawing without repeats stays fast)`);
  }
  const generator = new Generator(seed);
  const space = SPACES[task];
  const seen = new Set<string>();
  const examples: TaskExample[] = [];
  while (examples.length < count) {
    const { prompt, answer, parts } = space.draw(generator);
    if (seen.has(prompt) || splitOfCanonical(task, CANONICAL[task](parts)) !== split) continue;
    seen.add(prompt);
    examples.push({ task, prompt, answer });
  }
  return examples;
}

const PROMPT_PATTERNS: Record<TaskName, RegExp> = {
  addition: /^(\d{1,3})\+(\d{1,3})=$/,
  reverse: /^reverse: ([a-z]+)$/,
  sort: /^sort: ([a-z]+)$/,
  count: /^count ([a-z]) in ([a-z]+)$/,
};

/**
 * The split an example's problem belongs to, recomputed from its prompt (its answer plays no
 * part, so a wrong answer cannot move it): for checking that evaluation data is held out.
 */
export function exampleSplit(example: TaskExample): TaskSplit {
  checkTask(example.task, 'exampleSplit');
  const match = PROMPT_PATTERNS[example.task].exec(example.prompt);
  if (match === null) throw new Error(`exampleSplit: '${example.prompt}' is not a ${example.task} prompt`);
  const canonical = CANONICAL[example.task](match.slice(1));
  return splitOfCanonical(example.task, canonical);
}

/** The example as a two-turn chat: the prompt as the user turn, the answer as the assistant's. */
export function taskConversation(example: TaskExample): Conversation {
  return {
    messages: [
      { role: 'user', content: example.prompt },
      { role: 'assistant', content: example.answer },
    ],
  };
}

/**
 * Task names from a comma-separated list (`'addition,reverse'`; spaces around names allowed),
 * in the order given. Unknown, empty and repeated names throw.
 */
export function parseTaskList(list: string): TaskName[] {
  const names: TaskName[] = [];
  for (const raw of list.split(',')) {
    const name = raw.trim();
    if (name === '') throw new Error(`parseTaskList: empty task name in '${list}'; known tasks: ${TASK_NAMES.join(', ')}`);
    if (!isTaskName(name)) throw new Error(`parseTaskList: unknown task '${name}'; known tasks: ${TASK_NAMES.join(', ')}`);
    if (names.includes(name)) throw new Error(`parseTaskList: task '${name}' is listed twice in '${list}'`);
    names.push(name);
  }
  return names;
}

/**
 * Whether a model's output is the answer. Leading and trailing whitespace is ignored on both
 * sides, because generation often ends with a newline or space before its stop string; nothing
 * else is normalised (case, inner spaces, leading zeros: `0357` is not `357`).
 */
export function exactMatch(output: string, answer: string): boolean {
  return output.trim() === answer.trim();
}

/** A proportion's confidence interval. */
export interface Interval {
  low: number;
  high: number;
}

/** Accuracy over a set of examples with its Wilson score interval. */
export interface TaskScore extends Interval {
  correct: number;
  total: number;
  accuracy: number;
}

/** A difference of two accuracies with its confidence interval. */
export interface AccuracyDifference extends Interval {
  difference: number;
}

function checkCounts(caller: string, correct: number, total: number): void {
  if (!Number.isInteger(total) || total <= 0) throw new Error(`${caller}: total must be a positive integer, got ${total}`);
  if (!Number.isInteger(correct) || correct < 0 || correct > total) {
    throw new Error(`${caller}: correct must be an integer in [0, ${total}], got ${correct}`);
  }
}

function checkZ(caller: string, z: number): void {
  if (!Number.isFinite(z) || z <= 0) throw new Error(`${caller}: z must be a positive number, got ${z}`);
}

/**
 * The Wilson score interval for correct/total (Wilson 1927; Newcombe 1998 method 3), at the
 * normal quantile `z` (95% by default). Unlike the Wald interval it stays inside [0, 1] and keeps
 * its coverage near 0% and 100% accuracy, which is where tiny models' scores sit. The ends at
 * 0 and `total` correct are exactly 0 and 1 (the formula gives them up to rounding).
 */
export function wilsonInterval(correct: number, total: number, z = Z_95): Interval {
  checkCounts('wilsonInterval', correct, total);
  checkZ('wilsonInterval', z);
  const p = correct / total;
  const z2 = z * z;
  const denominator = 1 + z2 / total;
  const centre = (p + z2 / (2 * total)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total));
  return { low: correct === 0 ? 0 : centre - half, high: correct === total ? 1 : centre + half };
}

/**
 * Scores outputs against the examples they answer (same order): exact matches (see exactMatch),
 * accuracy and its Wilson interval (95% by default).
 */
export function scoreAnswers(outputs: readonly string[], examples: readonly TaskExample[], z = Z_95): TaskScore {
  if (outputs.length !== examples.length) {
    throw new Error(`scoreAnswers: ${outputs.length} outputs for ${examples.length} examples`);
  }
  if (examples.length === 0) throw new Error('scoreAnswers: no examples to score');
  let correct = 0;
  for (let i = 0; i < examples.length; i++) if (exactMatch(outputs[i], examples[i].answer)) correct++;
  const total = examples.length;
  return { correct, total, accuracy: correct / total, ...wilsonInterval(correct, total, z) };
}

/**
 * The difference of two accuracies, a − b, with Newcombe's hybrid score interval (Newcombe 1998,
 * "Interval estimation for the difference between independent proportions", method 10): each
 * proportion's Wilson interval, combined in quadrature on each side. "a beats b" is supported
 * when `low > 0`.
 *
 * The method assumes independent samples. Evaluating two models on the same examples makes the
 * samples paired; their correctness is then usually positively correlated, which narrows the true
 * interval, so this one errs on the wide (conservative) side rather than claiming too much.
 */
export function accuracyDifference(
  a: { correct: number; total: number },
  b: { correct: number; total: number },
  z = Z_95,
): AccuracyDifference {
  checkCounts('accuracyDifference (a)', a.correct, a.total);
  checkCounts('accuracyDifference (b)', b.correct, b.total);
  checkZ('accuracyDifference', z);
  const p1 = a.correct / a.total;
  const p2 = b.correct / b.total;
  const w1 = wilsonInterval(a.correct, a.total, z);
  const w2 = wilsonInterval(b.correct, b.total, z);
  const difference = p1 - p2;
  const low = difference - Math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2);
  const high = difference + Math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2);
  // The bounds lie in [−1, 1] in exact arithmetic; clamp away the rounding at the extremes.
  return { difference, low: Math.max(-1, low), high: Math.min(1, high) };
}
