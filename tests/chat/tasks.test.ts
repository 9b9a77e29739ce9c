import { describe, expect, it } from 'vitest';
import {
  accuracyDifference,
  exactMatch,
  exampleSplit,
  generateTaskExamples,
  parseTaskList,
  scoreAnswers,
  TASK_NAMES,
  taskConversation,
  taskSplitSize,
  TEST_FRACTION,
  WORDS,
  wilsonInterval,
  Z_95,
  type TaskExample,
  type TaskName,
  type TaskSplit,
} from '../../src/chat/tasks.js';
import { Generator } from '../../src/tensor/random.js';

const prompts = (examples: TaskExample[]): Set<string> => new Set(examples.map((e) => e.prompt));
const WORD_TASKS = ['reverse', 'sort', 'count'] as const;

describe('task formats', () => {
  it('writes addition as a+b= with the decimal sum, operands of 1 to 3 digits', () => {
    for (const e of generateTaskExamples('addition', 'train', 2000, 1)) {
      const m = /^(0|[1-9]\d{0,2})\+(0|[1-9]\d{0,2})=$/.exec(e.prompt);
      expect(m, e.prompt).not.toBeNull();
      expect(e.answer).toBe(String(Number(m![1]) + Number(m![2])));
    }
  });

  it('reverses, sorts and counts words of the built-in list, checked by independent code', () => {
    const words = new Set(WORDS);
    for (const e of generateTaskExamples('reverse', 'train', 200, 2)) {
      const word = e.prompt.replace(/^reverse: /, '');
      expect(words.has(word)).toBe(true);
      expect(e.answer).toBe(word.split('').reverse().join(''));
    }
    for (const e of generateTaskExamples('sort', 'train', 200, 2)) {
      const word = e.prompt.replace(/^sort: /, '');
      expect(words.has(word)).toBe(true);
      expect(e.answer).toBe(word.split('').sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0)).join(''));
    }
    const allSorts = ['train', 'test'].flatMap((split) => generateTaskExamples('sort', split as TaskSplit, taskSplitSize('sort', split as TaskSplit), 0));
    expect(allSorts.find((e) => e.prompt === 'sort: zebra')?.answer).toBe('aberz');
    for (const e of generateTaskExamples('count', 'train', 1000, 2)) {
      const m = /^count ([a-z]) in ([a-z]+)$/.exec(e.prompt);
      expect(m, e.prompt).not.toBeNull();
      expect(words.has(m![2])).toBe(true);
      expect(e.answer).toBe(String(m![2].split(m![1]).length - 1));
    }
  });

  it('keeps prompts and answers short enough for a tiny character-level model', () => {
    for (const task of TASK_NAMES) {
      for (const e of generateTaskExamples(task, 'train', Math.min(3000, taskSplitSize(task, 'train')), 5)) {
        expect(e.task).toBe(task);
        expect(e.prompt.length).toBeLessThanOrEqual(20);
        expect(e.answer.length).toBeGreaterThan(0);
        expect(e.answer.length).toBeLessThanOrEqual(6);
      }
    }
  });

  it('has a clean word list: distinct, sorted, 3 to 6 lowercase letters, a few hundred', () => {
    expect(new Set(WORDS).size).toBe(WORDS.length);
    expect([...WORDS].sort()).toEqual(WORDS);
    for (const w of WORDS) expect(w).toMatch(/^[a-z]{3,6}$/);
    expect(WORDS.length).toBeGreaterThanOrEqual(300);
    const set = new Set(WORDS);
    const reversible = WORDS.filter((w) => {
      const r = [...w].reverse().join('');
      return r !== w && set.has(r);
    });
    expect(reversible).toEqual([]);
  });

  it('asks count about absent letters too, about a fifth of the time (answer 0)', () => {
    const all = generateTaskExamples('count', 'train', taskSplitSize('count', 'train'), 0);
    const zeros = all.filter((e) => e.answer === '0').length / all.length;
    expect(zeros).toBeGreaterThan(0.12);
    expect(zeros).toBeLessThan(0.3);
    const test = generateTaskExamples('count', 'test', taskSplitSize('count', 'test'), 0);
    expect(new Set([...all, ...test].map((e) => e.answer))).toEqual(new Set(['0', '1', '2', '3']));
  });
});

describe('generateTaskExamples', () => {
  it('is deterministic for a seed, differs across seeds, and a smaller count is a prefix', () => {
    for (const task of TASK_NAMES) {
      const a = generateTaskExamples(task, 'train', 50, 7);
      expect(generateTaskExamples(task, 'train', 50, 7)).toEqual(a);
      expect(generateTaskExamples(task, 'train', 20, 7)).toEqual(a.slice(0, 20));
      expect(generateTaskExamples(task, 'train', 50, 8)).not.toEqual(a);
    }
    // A pinned draw: changing the generator, the hash or the word list shows up here.
    expect(generateTaskExamples('addition', 'train', 2, 3).map((e) => `${e.prompt}${e.answer}`)).toEqual(['760+845=1605', '676+837=1513']);
    expect(generateTaskExamples('reverse', 'train', 1, 3)[0]).toEqual({ task: 'reverse', prompt: 'reverse: bed', answer: 'deb' });
  });

  it('returns distinct problems, and a whole split when asked for all of it', () => {
    for (const task of WORD_TASKS) {
      for (const split of ['train', 'test'] as const) {
        const n = taskSplitSize(task, split);
        expect(prompts(generateTaskExamples(task, split, n, 11)).size).toBe(n);
      }
    }
    expect(prompts(generateTaskExamples('addition', 'train', 50_000, 11)).size).toBe(50_000);
    expect(generateTaskExamples('sort', 'test', 0, 1)).toEqual([]);
  });

  it('throws a one-line error when the split has fewer distinct problems than asked', () => {
    const n = taskSplitSize('reverse', 'test');
    expect(() => generateTaskExamples('reverse', 'test', n + 1, 0)).toThrow(
      `generateTaskExamples: ${n + 1} reverse test examples requested but the split has only ${n} distinct problems`,
    );
    expect(() => generateTaskExamples('addition', 'train', 1_000_001, 0)).toThrow(/only 799614 distinct problems$/);
  });

  it('rejects bad arguments from untyped callers', () => {
    expect(() => generateTaskExamples('multiply' as TaskName, 'train', 1, 0)).toThrow(
      "generateTaskExamples: unknown task 'multiply'; known tasks: addition, reverse, sort, count",
    );
    expect(() => generateTaskExamples('sort', 'valid' as TaskSplit, 1, 0)).toThrow("split must be 'train' or 'test', got 'valid'");
    expect(() => generateTaskExamples('sort', 'train', 1.5, 0)).toThrow('count must be a non-negative integer, got 1.5');
    expect(() => generateTaskExamples('sort', 'train', -1, 0)).toThrow('count must be a non-negative integer');
    expect(() => generateTaskExamples('sort', 'train', 1, Number.NaN)).toThrow('seed must be a finite number');
  });
});

describe('held-out splits', () => {
  it('never puts a word problem in both splits: train and test partition the whole space', () => {
    for (const task of WORD_TASKS) {
      const train = prompts(generateTaskExamples(task, 'train', taskSplitSize(task, 'train'), 1));
      const test = prompts(generateTaskExamples(task, 'test', taskSplitSize(task, 'test'), 2));
      for (const p of test) expect(train.has(p), `${task}: ${p}`).toBe(false);
      const expected = task === 'count' ? train.size + test.size : WORDS.length;
      expect(train.size + test.size).toBe(expected);
    }
  });

  it('splits addition exhaustively: the full test split is exactly the hashed 20%, disjoint from train', () => {
    const test = generateTaskExamples('addition', 'test', taskSplitSize('addition', 'test'), 4);
    expect(taskSplitSize('addition', 'train') + test.length).toBe(1_000_000);
    const testPrompts = prompts(test);
    expect(testPrompts.size).toBe(test.length);
    for (const e of test) if (exampleSplit(e) !== 'test') throw new Error(`${e.prompt} generated as test but hashes to train`);
    // Every 1–2 digit addition, exhaustively: in the test split's output iff it hashes to test,
    // and a+b always shares its split with b+a.
    let small = 0;
    let smallTest = 0;
    for (let a = 0; a < 100; a++) {
      for (let b = 0; b < 100; b++) {
        const e: TaskExample = { task: 'addition', prompt: `${a}+${b}=`, answer: String(a + b) };
        const split = exampleSplit(e);
        expect(testPrompts.has(e.prompt)).toBe(split === 'test');
        expect(exampleSplit({ ...e, prompt: `${b}+${a}=` })).toBe(split);
        small++;
        if (split === 'test') smallTest++;
      }
    }
    expect(smallTest / small).toBeGreaterThan(TEST_FRACTION - 0.03);
    expect(smallTest / small).toBeLessThan(TEST_FRACTION + 0.03);
    // Any seed's training draw avoids all of it.
    for (const seed of [0, 1, 2, 12345]) {
      for (const e of generateTaskExamples('addition', 'train', 20_000, seed)) {
        if (testPrompts.has(e.prompt)) throw new Error(`seed ${seed}: ${e.prompt} in both splits`);
      }
    }
  });

  it('puts about TEST_FRACTION of each space in test', () => {
    for (const task of TASK_NAMES) {
      const test = taskSplitSize(task, 'test');
      const total = test + taskSplitSize(task, 'train');
      // Four binomial standard deviations (the folding of pairs makes it a little wider).
      const tolerance = 4 * Math.sqrt((TEST_FRACTION * (1 - TEST_FRACTION)) / (total / 2));
      expect(Math.abs(test / total - TEST_FRACTION), task).toBeLessThan(tolerance);
    }
  });

  it('keeps anagrams together for sort, so a test answer is never a training answer', () => {
    const trainAnswers = new Set(generateTaskExamples('sort', 'train', taskSplitSize('sort', 'train'), 0).map((e) => e.answer));
    const test = generateTaskExamples('sort', 'test', taskSplitSize('sort', 'test'), 0);
    for (const e of test) expect(trainAnswers.has(e.answer), e.prompt).toBe(false);
    // The list has anagram classes, so the rule is exercised.
    const classes = new Map<string, number>();
    for (const w of WORDS) classes.set([...w].sort().join(''), (classes.get([...w].sort().join('')) ?? 0) + 1);
    expect([...classes.values()].some((n) => n > 1)).toBe(true);
  });

  it('folds a word with its reversal for reverse', () => {
    // 'dog' is not in the list, but a caller's example may name it; its split matches 'god'.
    expect(exampleSplit({ task: 'reverse', prompt: 'reverse: dog', answer: 'god' })).toBe(
      exampleSplit({ task: 'reverse', prompt: 'reverse: god', answer: 'dog' }),
    );
    expect(() => exampleSplit({ task: 'reverse', prompt: 'reverse: Dog', answer: 'goD' })).toThrow(
      "exampleSplit: 'reverse: Dog' is not a reverse prompt",
    );
  });

  it('agrees with exampleSplit for every generated word problem', () => {
    for (const task of WORD_TASKS) {
      for (const split of ['train', 'test'] as const) {
        for (const e of generateTaskExamples(task, split, taskSplitSize(task, split), 3)) expect(exampleSplit(e)).toBe(split);
      }
    }
  });
});

describe('conversations and task lists', () => {
  it('makes the prompt the user turn and the answer the assistant turn', () => {
    expect(taskConversation({ task: 'addition', prompt: '12+345=', answer: '357' })).toEqual({
      messages: [
        { role: 'user', content: '12+345=' },
        { role: 'assistant', content: '357' },
      ],
    });
  });

  it('parses comma-separated task names in order, with one-line errors', () => {
    expect(parseTaskList('addition,reverse')).toEqual(['addition', 'reverse']);
    expect(parseTaskList(' count , sort ')).toEqual(['count', 'sort']);
    expect(() => parseTaskList('addition,spelling')).toThrow(
      "parseTaskList: unknown task 'spelling'; known tasks: addition, reverse, sort, count",
    );
    expect(() => parseTaskList('')).toThrow("parseTaskList: empty task name in ''");
    expect(() => parseTaskList('sort,,count')).toThrow('empty task name');
    expect(() => parseTaskList('sort,sort')).toThrow("parseTaskList: task 'sort' is listed twice in 'sort,sort'");
  });
});

describe('scoring', () => {
  it('matches exactly after trimming whitespace, and nothing else', () => {
    expect(exactMatch(' 357\n', '357')).toBe(true);
    expect(exactMatch('357', '357')).toBe(true);
    expect(exactMatch('0357', '357')).toBe(false);
    expect(exactMatch('3 57', '357')).toBe(false);
    expect(exactMatch('Tac', 'tac')).toBe(false);
    expect(exactMatch('', '0')).toBe(false);
  });

  it('scores outputs with the Wilson interval', () => {
    const examples = generateTaskExamples('addition', 'test', 4, 0);
    const outputs = [examples[0].answer + '\n', 'nope', ` ${examples[2].answer}`, ''];
    const score = scoreAnswers(outputs, examples);
    expect(score).toEqual({ correct: 2, total: 4, accuracy: 0.5, ...wilsonInterval(2, 4) });
    expect(() => scoreAnswers(['1'], examples)).toThrow('scoreAnswers: 1 outputs for 4 examples');
    expect(() => scoreAnswers([], [])).toThrow('scoreAnswers: no examples to score');
  });

  it('gives Newcombe (1998a) Table I Wilson intervals', () => {
    // R. G. Newcombe, Two-sided confidence intervals for the single proportion, Stat Med 17
    // (1998) 857–872, Table I, method 3 (score, no continuity correction); the same values come
    // from the closed form in Python (statistics.NormalDist for z).
    const cases: Array<[number, number, number, number]> = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
      [29, 29, 0.883, 1],
    ];
    for (const [x, n, low, high] of cases) {
      const w = wilsonInterval(x, n);
      expect(w.low, `${x}/${n}`).toBeCloseTo(low, 4);
      expect(w.high, `${x}/${n}`).toBeCloseTo(high, 4);
    }
    expect(wilsonInterval(0, 20).low).toBe(0);
    expect(wilsonInterval(29, 29).high).toBe(1);
    // A wider z gives a wider interval that contains the 95% one.
    const w99 = wilsonInterval(81, 263, 2.5758293035489);
    expect(w99.low).toBeLessThan(wilsonInterval(81, 263).low);
    expect(w99.high).toBeGreaterThan(wilsonInterval(81, 263).high);
    expect(Z_95).toBeCloseTo(1.959963984540054, 15);
  });

  it('gives Newcombe (1998b) Table II hybrid score intervals for differences', () => {
    // R. G. Newcombe, Interval estimation for the difference between independent proportions:
    // comparison of eleven methods, Stat Med 17 (1998) 873–890, Table II, method 10; checked
    // against a closed-form Python computation too.
    const cases: Array<[number, number, number, number, number, number, number]> = [
      [56, 70, 48, 80, 0.2, 0.0524, 0.3339],
      [9, 10, 3, 10, 0.6, 0.1705, 0.809],
      [5, 56, 0, 29, 0.0893, -0.0381, 0.1926],
      [0, 10, 0, 20, 0, -0.1611, 0.2775],
      [0, 10, 0, 10, 0, -0.2775, 0.2775],
      [10, 10, 0, 20, 1, 0.6791, 1],
      [10, 10, 0, 10, 1, 0.6075, 1],
    ];
    for (const [x1, n1, x2, n2, difference, low, high] of cases) {
      const d = accuracyDifference({ correct: x1, total: n1 }, { correct: x2, total: n2 });
      const label = `${x1}/${n1} vs ${x2}/${n2}`;
      expect(d.difference, label).toBeCloseTo(difference, 4);
      expect(d.low, label).toBeCloseTo(low, 4);
      expect(d.high, label).toBeCloseTo(high, 4);
      // Swapping the arms negates the difference and swaps the bounds.
      const swapped = accuracyDifference({ correct: x2, total: n2 }, { correct: x1, total: n1 });
      expect(swapped.difference).toBeCloseTo(-d.difference, 12);
      expect(swapped.low).toBeCloseTo(-d.high, 12);
      expect(swapped.high).toBeCloseTo(-d.low, 12);
    }
  });

  it('covers the true proportion and difference about 95% of the time (seeded simulation)', () => {
    const gen = new Generator(2024);
    const binomial = (n: number, p: number): number => {
      let k = 0;
      for (let i = 0; i < n; i++) if (gen.random() < p) k++;
      return k;
    };
    const reps = 2000;
    let wilsonHits = 0;
    let newcombeHits = 0;
    for (let r = 0; r < reps; r++) {
      // p = 0.1 with n = 50 is where the Wald interval falls to about 88%.
      const w = wilsonInterval(binomial(50, 0.1), 50);
      if (w.low <= 0.1 && 0.1 <= w.high) wilsonHits++;
      const d = accuracyDifference({ correct: binomial(40, 0.3), total: 40 }, { correct: binomial(60, 0.15), total: 60 });
      if (d.low <= 0.15 && 0.15 <= d.high) newcombeHits++;
    }
    expect(wilsonHits / reps).toBeGreaterThan(0.92);
    expect(wilsonHits / reps).toBeLessThan(0.98);
    expect(newcombeHits / reps).toBeGreaterThan(0.92);
    expect(newcombeHits / reps).toBeLessThan(0.98);
  });

  it('rejects impossible counts with one-line errors', () => {
    expect(() => wilsonInterval(3, 0)).toThrow('wilsonInterval: total must be a positive integer, got 0');
    expect(() => wilsonInterval(5, 4)).toThrow('wilsonInterval: correct must be an integer in [0, 4], got 5');
    expect(() => wilsonInterval(1, 4, 0)).toThrow('wilsonInterval: z must be a positive number, got 0');
    expect(() => accuracyDifference({ correct: 1, total: 2 }, { correct: 1.5, total: 2 })).toThrow(
      'accuracyDifference (b): correct must be an integer in [0, 2], got 1.5',
    );
  });
});
