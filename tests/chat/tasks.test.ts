import { describe, expect, it } from 'vitest';
import {
  accuracyDifference,
  exactMatch,
  exampleSplit,
  generateTaskExamples,
  parseTaskList,
  scoreAnswers,
  TASK_NAMES,
  taskCapacity,
  taskConversation,
  TEST_FRACTION,
  wilsonInterval,
  Z_95,
  type TaskExample,
  type TaskName,
  type TaskSplit,
} from '../../src/chat/tasks.js';
import { Generator } from '../../src/tensor/random.js';

const prompts = (examples: TaskExample[]): Set<string> => new Set(examples.map((e) => e.prompt));
const SPLITS = ['train', 'test'] as const;

describe('task formats', () => {
  it('writes addition as a+b= with the decimal sum, operands of 1 to 3 digits', () => {
    for (const e of generateTaskExamples('addition', 'train', 2000, 1)) {
      const m = /^(0|[1-9]\d{0,2})\+(0|[1-9]\d{0,2})=$/.exec(e.prompt);
      expect(m, e.prompt).not.toBeNull();
      expect(e.answer).toBe(String(Number(m![1]) + Number(m![2])));
    }
  });

  it('reverses, sorts and counts strings of 3 to 6 letters, checked by independent code', () => {
    for (const e of generateTaskExamples('reverse', 'train', 500, 2)) {
      const word = e.prompt.replace(/^reverse: /, '');
      expect(word).toMatch(/^[a-z]{3,6}$/);
      expect(e.answer).toBe(word.split('').reverse().join(''));
    }
    for (const e of generateTaskExamples('sort', 'train', 500, 2)) {
      const word = e.prompt.replace(/^sort: /, '');
      expect(word).toMatch(/^[a-z]{3,6}$/);
      expect(e.answer).toBe(word.split('').sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0)).join(''));
    }
    for (const e of generateTaskExamples('count', 'train', 1000, 2)) {
      const m = /^count ([a-z]) in ([a-z]{3,6})$/.exec(e.prompt);
      expect(m, e.prompt).not.toBeNull();
      expect(e.answer).toBe(String(m![2].split(m![1]).length - 1));
    }
  });

  it('draws string lengths and letters evenly', () => {
    const words = generateTaskExamples('reverse', 'train', 8000, 3).map((e) => e.prompt.slice('reverse: '.length));
    for (let length = 3; length <= 6; length++) {
      const share = words.filter((w) => w.length === length).length / words.length;
      expect(Math.abs(share - 0.25), `length ${length}`).toBeLessThan(0.03);
    }
    const letters = words.join('');
    for (const letter of 'aqz') expect(Math.abs(letters.split(letter).length - 1 - letters.length / 26)).toBeLessThan(5 * Math.sqrt(letters.length / 26));
  });

  it('keeps prompts and answers short enough for a tiny character-level model', () => {
    for (const task of TASK_NAMES) {
      for (const e of generateTaskExamples(task, 'train', 3000, 5)) {
        expect(e.task).toBe(task);
        expect(e.prompt.length).toBeLessThanOrEqual(20);
        expect(e.answer.length).toBeGreaterThan(0);
        expect(e.answer.length).toBeLessThanOrEqual(6);
      }
    }
  });

  it('asks count about absent letters about a fifth of the time (answer 0), and repeated letters in proportion', () => {
    const all = generateTaskExamples('count', 'train', 10_000, 0);
    const zeros = all.filter((e) => e.answer === '0').length / all.length;
    expect(zeros).toBeGreaterThan(0.17);
    expect(zeros).toBeLessThan(0.23);
    const twos = all.filter((e) => e.answer === '2').length / all.length;
    expect(twos).toBeGreaterThan(0.05);
    const answers = new Set(all.map((e) => e.answer));
    for (const a of answers) expect(['0', '1', '2', '3', '4', '5', '6']).toContain(a);
    for (const a of ['0', '1', '2', '3']) expect(answers.has(a), a).toBe(true);
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
    // A pinned draw: changing the generator, the hash or the draw shows up here.
    expect(generateTaskExamples('addition', 'train', 2, 3).map((e) => `${e.prompt}${e.answer}`)).toEqual(['543+889=1432', '685+835=1520']);
    expect(generateTaskExamples('reverse', 'train', 1, 3)[0]).toEqual({ task: 'reverse', prompt: 'reverse: ree', answer: 'eer' });
  });

  it('returns distinct problems, up to its capacity', () => {
    expect(prompts(generateTaskExamples('addition', 'train', 50_000, 11)).size).toBe(50_000);
    expect(prompts(generateTaskExamples('count', 'test', 20_000, 11)).size).toBe(20_000);
    expect(generateTaskExamples('sort', 'test', 0, 1)).toEqual([]);
    // Addition's test split (the hashed fifth of a million sums) can give half of itself, fast.
    const n = taskCapacity('addition', 'test');
    expect(n).toBe(100_000);
    expect(prompts(generateTaskExamples('addition', 'test', n, 4)).size).toBe(n);
  });

  it('throws a one-line error beyond the capacity', () => {
    expect(() => generateTaskExamples('addition', 'test', 100_001, 0)).toThrow(
      "generateTaskExamples: 100001 addition test examples requested; at most 100000 (half the split's distinct problems, so that drawing without repeats stays fast)",
    );
    expect(taskCapacity('reverse', 'train')).toBeGreaterThan(100_000_000);
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
  it('never puts a problem in both splits, for any seeds', () => {
    for (const task of TASK_NAMES) {
      const test = prompts(generateTaskExamples(task, 'test', 5000, 2));
      for (const seed of [0, 1, 12345]) {
        for (const e of generateTaskExamples(task, 'train', 20_000, seed)) if (test.has(e.prompt)) throw new Error(`${task}, seed ${seed}: ${e.prompt} in both splits`);
      }
    }
  });

  it('splits addition by the sum: a+b always shares its split with b+a, and about a fifth is test', () => {
    const test = prompts(generateTaskExamples('addition', 'test', 100_000, 4));
    let small = 0;
    let smallTest = 0;
    for (let a = 0; a < 100; a++) {
      for (let b = 0; b < 100; b++) {
        const e: TaskExample = { task: 'addition', prompt: `${a}+${b}=`, answer: String(a + b) };
        const split = exampleSplit(e);
        if (test.has(e.prompt)) expect(split).toBe('test');
        expect(exampleSplit({ ...e, prompt: `${b}+${a}=` })).toBe(split);
        // Leading zeros do not move a problem to the other split.
        expect(exampleSplit({ ...e, prompt: `0${a}+${b}=` })).toBe(split);
        small++;
        if (split === 'test') smallTest++;
      }
    }
    expect(smallTest / small).toBeGreaterThan(TEST_FRACTION - 0.03);
    expect(smallTest / small).toBeLessThan(TEST_FRACTION + 0.03);
  });

  it('puts about TEST_FRACTION of each space in test', () => {
    for (const task of TASK_NAMES) {
      // Uniform draws of the space, split by exampleSplit: about TEST_FRACTION land in test.
      const g = new Generator(9);
      const n = 20_000;
      let test = 0;
      for (let i = 0; i < n; i++) {
        const word = Array.from({ length: 3 + g.randint(0, 4) }, () => 'abcdefghijklmnopqrstuvwxyz'[g.randint(0, 26)]).join('');
        const prompt = { addition: `${g.randint(0, 1000)}+${g.randint(0, 1000)}=`, reverse: `reverse: ${word}`, sort: `sort: ${word}`, count: `count ${word[0]} in ${word}` }[task];
        if (exampleSplit({ task, prompt, answer: '' }) === 'test') test++;
      }
      // Four binomial standard deviations (the folding of pairs makes it a little wider).
      const tolerance = 4 * Math.sqrt((TEST_FRACTION * (1 - TEST_FRACTION)) / (n / 2));
      expect(Math.abs(test / n - TEST_FRACTION), task).toBeLessThan(tolerance);
    }
  });

  it('keeps anagrams together for sort, so a test answer is never a training answer', () => {
    const trainAnswers = new Set(generateTaskExamples('sort', 'train', 40_000, 0).map((e) => e.answer));
    const test = generateTaskExamples('sort', 'test', 10_000, 0);
    for (const e of test) expect(trainAnswers.has(e.answer), e.prompt).toBe(false);
    // Three-letter strings share sorted forms often, so the rule is exercised.
    expect(exampleSplit({ task: 'sort', prompt: 'sort: cat', answer: '' })).toBe(exampleSplit({ task: 'sort', prompt: 'sort: act', answer: '' }));
  });

  it('folds a string with its reversal for reverse', () => {
    expect(exampleSplit({ task: 'reverse', prompt: 'reverse: dog', answer: 'god' })).toBe(
      exampleSplit({ task: 'reverse', prompt: 'reverse: god', answer: 'dog' }),
    );
    expect(() => exampleSplit({ task: 'reverse', prompt: 'reverse: Dog', answer: 'goD' })).toThrow(
      "exampleSplit: 'reverse: Dog' is not a reverse prompt",
    );
  });

  it('agrees with exampleSplit for every generated problem', () => {
    for (const task of TASK_NAMES) {
      for (const split of SPLITS) {
        for (const e of generateTaskExamples(task, split, 2000, 3)) expect(exampleSplit(e)).toBe(split);
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
