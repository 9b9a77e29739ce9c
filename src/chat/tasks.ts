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
 * | `reverse`  | `reverse: cat`      | `tac`     | each word of WORDS                             |
 * | `sort`     | `sort: cat`         | `act`     | each word of WORDS; letters in a–z order       |
 * | `count`    | `count a in banana` | `3`       | each word × each of its letters, plus one letter it lacks (answer `0`) |
 *
 * Held-out splits: a problem's split is a function of the problem alone (a hash of its canonical
 * form, TEST_FRACTION of the space goes to `test`), never of the seed or the count, so the train
 * and test splits of any two calls are disjoint. The canonical form folds problems that would leak
 * into each other's answers into one split: `a+b` and `b+a` (commutativity), a word and its
 * reversal when both are words, and anagrams for `sort` (they share the answer).
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

/**
 * Common short English words (3–6 lowercase letters, sorted, distinct) that `reverse`, `sort`
 * and `count` draw from. No two of them are reversals of each other, though the canonical form
 * would keep such a pair in one split anyway.
 */
export const WORDS: readonly string[] = Object.freeze([
  'able', 'about', 'above', 'act', 'add', 'age', 'ago', 'air', 'all', 'also', 'and', 'ant', 'any',
  'apple', 'area', 'arm', 'army', 'art', 'ask', 'away', 'baby', 'back', 'bad', 'bag', 'ball',
  'banana', 'band', 'bank', 'bar', 'base', 'bath', 'bear', 'beat', 'bed', 'bee', 'beef', 'bell',
  'belt', 'best', 'big', 'bike', 'bird', 'bit', 'black', 'blue', 'boat', 'body', 'bone', 'book',
  'born', 'both', 'bowl', 'box', 'boy', 'bread', 'break', 'brown', 'bus', 'busy', 'buy', 'cake',
  'call', 'calm', 'camp', 'can', 'cap', 'car', 'card', 'care', 'case', 'cash', 'cat', 'cause',
  'chair', 'cheap', 'child', 'city', 'class', 'clean', 'clear', 'clock', 'close', 'cloud', 'coat',
  'cold', 'come', 'cook', 'cool', 'copy', 'corn', 'cost', 'cow', 'cup', 'cut', 'dark', 'day',
  'dead', 'deal', 'dear', 'deep', 'desk', 'dig', 'dirt', 'dish', 'dog', 'door', 'down', 'draw',
  'dream', 'dress', 'drink', 'drive', 'drop', 'dry', 'duck', 'dust', 'each', 'ear', 'early',
  'earth', 'east', 'easy', 'eat', 'egg', 'eleven', 'end', 'enjoy', 'enter', 'even', 'event',
  'ever', 'eye', 'face', 'fact', 'fair', 'fall', 'farm', 'fast', 'fat', 'fear', 'feel', 'few',
  'field', 'fight', 'fill', 'find', 'fine', 'fire', 'fish', 'fit', 'five', 'flag', 'flat', 'floor',
  'fly', 'food', 'foot', 'form', 'four', 'free', 'fresh', 'frog', 'fruit', 'full', 'fun', 'game',
  'gate', 'gift', 'girl', 'give', 'glad', 'glass', 'goal', 'gold', 'good', 'grass', 'great',
  'green', 'group', 'grow', 'gun', 'hair', 'half', 'hall', 'hand', 'happy', 'hard', 'hat', 'have',
  'head', 'hear', 'heart', 'heat', 'help', 'hero', 'high', 'hill', 'hold', 'hole', 'home', 'hope',
  'horse', 'hot', 'hour', 'house', 'huge', 'idea', 'ink', 'iron', 'jam', 'job', 'join', 'joke',
  'juice', 'jump', 'just', 'keep', 'key', 'kid', 'kind', 'king', 'kiss', 'knee', 'know', 'lady',
  'lake', 'lamp', 'land', 'large', 'last', 'late', 'laugh', 'law', 'lazy', 'leaf', 'learn', 'left',
  'leg', 'lemon', 'light', 'like', 'line', 'lion', 'list', 'live', 'long', 'look', 'lose', 'loud',
  'love', 'low', 'lucky', 'lunch', 'made', 'magic', 'main', 'make', 'man', 'many', 'map', 'mark',
  'may', 'meat', 'meet', 'milk', 'mind', 'miss', 'money', 'month', 'moon', 'more', 'most', 'mouse',
  'mouth', 'move', 'much', 'music', 'name', 'near', 'neck', 'need', 'nest', 'never', 'new', 'nice',
  'night', 'nine', 'noise', 'north', 'nose', 'note', 'now', 'nut', 'ocean', 'offer', 'old', 'one',
  'open', 'orange', 'other', 'owl', 'own', 'page', 'paint', 'paper', 'park', 'party', 'past',
  'path', 'pay', 'peace', 'pen', 'pet', 'piano', 'pick', 'pig', 'pink', 'plan', 'plant', 'play',
  'pool', 'poor', 'price', 'prize', 'pull', 'push', 'queen', 'quick', 'quiet', 'rain', 'read',
  'real', 'red', 'rest', 'rice', 'rich', 'ride', 'right', 'ring', 'river', 'road', 'rock', 'roof',
  'room', 'rope', 'rose', 'round', 'rule', 'run', 'sad', 'safe', 'salt', 'sand', 'save', 'say',
  'school', 'sea', 'seat', 'seed', 'sell', 'send', 'seven', 'shape', 'sheep', 'shell', 'ship',
  'shoe', 'shop', 'short', 'show', 'shut', 'sick', 'side', 'sign', 'silly', 'sing', 'sit', 'six',
  'skin', 'sky', 'sleep', 'slow', 'small', 'smile', 'snake', 'snow', 'soap', 'sock', 'soft',
  'song', 'soon', 'sound', 'soup', 'south', 'space', 'speak', 'spoon', 'star', 'start', 'stay',
  'step', 'stick', 'stone', 'stop', 'store', 'storm', 'story', 'street', 'sugar', 'summer', 'sun',
  'sweet', 'swim', 'table', 'tail', 'take', 'talk', 'tall', 'tea', 'teach', 'team', 'tell', 'ten',
  'test', 'thank', 'thick', 'thin', 'thing', 'think', 'three', 'tiger', 'time', 'tiny', 'today',
  'tooth', 'top', 'town', 'toy', 'train', 'tree', 'true', 'try', 'turn', 'two', 'uncle', 'under',
  'until', 'use', 'very', 'visit', 'voice', 'wait', 'walk', 'wall', 'want', 'warm', 'wash',
  'watch', 'water', 'wave', 'way', 'weak', 'wear', 'week', 'well', 'west', 'wet', 'whale', 'wheel',
  'white', 'wide', 'wife', 'wild', 'win', 'wind', 'window', 'wing', 'winter', 'wise', 'wish',
  'wolf', 'woman', 'wood', 'word', 'work', 'world', 'write', 'yard', 'year', 'yellow', 'young',
  'zebra', 'zero', 'zoo',
]);

/** Addition operands run over 0..ADDITION_LIMIT-1, that is one to three digits. */
const ADDITION_LIMIT = 1000;
const ALPHABET = [...'abcdefghijklmnopqrstuvwxyz'];

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

/** 32-bit FNV-1a, continued from state `h`, so that a shared prefix is hashed once. */
function fnv1a(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/**
 * The murmur3 finaliser: FNV-1a alone mixes the last characters weakly into the high bits, and
 * the split compares the high bits against a threshold.
 */
const finish = fmix32;

const hash32 = (text: string): number => finish(fnv1a(FNV_OFFSET, text));
const splitOfHash = (hash: number): TaskSplit => (hash < TEST_FRACTION * 4294967296 ? 'test' : 'train');

/** The split of a problem, from its canonical form alone (salted by task so tasks split independently). */
function splitOfCanonical(task: TaskName, canonical: string): TaskSplit {
  return splitOfHash(hash32(`${task}:${canonical}`));
}

/** A task's problem space: `size` problems in a fixed order, each with its split. */
interface TaskSpace {
  size: number;
  problem(index: number): { prompt: string; answer: string };
  split(index: number): TaskSplit;
}

/** Addition's split hashes `addition:min+max` without building the string: a million of them. */
const ADDITION_PREFIX = fnv1a(FNV_OFFSET, 'addition:');
const OPERANDS = Array.from({ length: ADDITION_LIMIT }, (_, i) => String(i));

/**
 * The `count` problems of one word: each distinct letter it has, then one letter it lacks, so
 * that `0` is a possible answer (about one problem in five) without dominating as it would if
 * all 26 letters were asked. The lacking letter is picked by hash, so it is fixed, not seeded.
 */
let countPairs: Array<readonly [word: string, letter: string]> | undefined;
function getCountPairs(): Array<readonly [string, string]> {
  if (countPairs === undefined) {
    countPairs = [];
    for (const word of WORDS) {
      for (const letter of [...new Set(word)].sort()) countPairs.push([word, letter]);
      const absent = ALPHABET.filter((letter) => !word.includes(letter));
      countPairs.push([word, absent[hash32(`count-absent:${word}`) % absent.length]]);
    }
  }
  return countPairs;
}

const SPACES: Record<TaskName, () => TaskSpace> = {
  addition: () => ({
    size: ADDITION_LIMIT * ADDITION_LIMIT,
    problem: (i) => {
      const a = Math.floor(i / ADDITION_LIMIT);
      const b = i % ADDITION_LIMIT;
      return { prompt: `${a}+${b}=`, answer: String(a + b) };
    },
    split: (i) => {
      const a = Math.floor(i / ADDITION_LIMIT);
      const b = i % ADDITION_LIMIT;
      return splitOfHash(finish(fnv1a(fnv1a(fnv1a(ADDITION_PREFIX, OPERANDS[Math.min(a, b)]), '+'), OPERANDS[Math.max(a, b)])));
    },
  }),
  reverse: () => ({
    size: WORDS.length,
    problem: (i) => ({ prompt: `reverse: ${WORDS[i]}`, answer: reverseWord(WORDS[i]) }),
    split: (i) => splitOfCanonical('reverse', lesser(WORDS[i], reverseWord(WORDS[i]))),
  }),
  sort: () => ({
    size: WORDS.length,
    problem: (i) => ({ prompt: `sort: ${WORDS[i]}`, answer: sortLetters(WORDS[i]) }),
    split: (i) => splitOfCanonical('sort', sortLetters(WORDS[i])),
  }),
  count: () => {
    const pairs = getCountPairs();
    return {
      size: pairs.length,
      problem: (i) => {
        const [word, letter] = pairs[i];
        return { prompt: `count ${letter} in ${word}`, answer: String(countLetter(word, letter)) };
      },
      split: (i) => splitOfCanonical('count', `${pairs[i][1]} in ${pairs[i][0]}`),
    };
  },
};

interface SplitPools {
  space: TaskSpace;
  train: Int32Array;
  test: Int32Array;
}

/** Each task's problem indices by split, computed on first use (addition's million: tens of ms). */
const pools = new Map<TaskName, SplitPools>();
function getPools(task: TaskName): SplitPools {
  let entry = pools.get(task);
  if (entry === undefined) {
    const space = SPACES[task]();
    const train = new Int32Array(space.size);
    const test = new Int32Array(space.size);
    let nTrain = 0;
    let nTest = 0;
    for (let i = 0; i < space.size; i++) {
      if (space.split(i) === 'test') test[nTest++] = i;
      else train[nTrain++] = i;
    }
    entry = { space, train: train.slice(0, nTrain), test: test.slice(0, nTest) };
    pools.set(task, entry);
  }
  return entry;
}

/** How many distinct problems a task's split holds: the most `generateTaskExamples` can return. */
export function taskSplitSize(task: TaskName, split: TaskSplit): number {
  checkTask(task, 'taskSplitSize');
  checkSplit(split, 'taskSplitSize');
  return getPools(task)[split].length;
}

/**
 * `count` distinct problems of one task's split, in a seeded random order: the same arguments
 * always give the same examples, and a smaller count gives a prefix of a larger one (same seed).
 * Throws when `count` exceeds the split's distinct problems (see taskSplitSize) rather than
 * repeating problems, so that an accuracy is never inflated by duplicates.
 */
export function generateTaskExamples(task: TaskName, split: TaskSplit, count: number, seed: number): TaskExample[] {
  checkTask(task, 'generateTaskExamples');
  checkSplit(split, 'generateTaskExamples');
  if (!Number.isInteger(count) || count < 0) throw new Error(`generateTaskExamples: count must be a non-negative integer, got ${count}`);
  if (!Number.isFinite(seed)) throw new Error(`generateTaskExamples: seed must be a finite number, got ${seed}`);
  const { space, [split]: pool } = getPools(task);
  if (count > pool.length) {
    throw new Error(`generateTaskExamples: ${count} ${task} ${split} examples requested but the split has only ${pool.length} distinct problems`);
  }
  const generator = new Generator(seed);
  // A partial Fisher–Yates shuffle with its swaps in a map: drawing a few examples from
  // addition's 800,000 training problems neither copies nor touches the whole pool.
  const swapped = new Map<number, number>();
  const at = (i: number): number => swapped.get(i) ?? pool[i];
  const examples: TaskExample[] = [];
  for (let i = 0; i < count; i++) {
    const j = generator.randint(i, pool.length);
    const picked = at(j);
    swapped.set(j, at(i));
    examples.push({ task, ...space.problem(picked) });
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
  let canonical: string;
  switch (example.task) {
    case 'addition': {
      const [a, b] = [Number(match[1]), Number(match[2])];
      canonical = a <= b ? `${a}+${b}` : `${b}+${a}`;
      break;
    }
    case 'reverse':
      canonical = lesser(match[1], reverseWord(match[1]));
      break;
    case 'sort':
      canonical = sortLetters(match[1]);
      break;
    case 'count':
      canonical = `${match[1]} in ${match[2]}`;
      break;
  }
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
