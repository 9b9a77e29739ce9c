/** acc / acc_norm on hand-made log-likelihoods (no model), the Wilson interval, and the JSONL format. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wilsonInterval } from '../../src/chat/tasks.js';
import { formatEvalTasksReport, formatTaskTable } from '../../src/evals/evaluate.js';
import { scoreMultipleChoice, type MultipleChoiceExample } from '../../src/evals/multiple-choice.js';
import { parseEvalTaskList, parseMultipleChoiceJsonl, readMultipleChoiceFile } from '../../src/evals/tasks.js';
import { expectOneLineError } from '../helpers/errors.js';

/** A scorer that looks the log-likelihood up by continuation text. */
function stub(table: Record<string, number>) {
  return (requests: readonly { context: string; continuation: string }[]) => requests.map((r) => table[r.continuation]);
}

describe('scoreMultipleChoice', () => {
  const examples: MultipleChoiceExample[] = [
    // Sum picks the short 'a' (−2 > −3); per byte the long one (−3/6 = −0.5 > −2).
    { context: 'q1', choices: ['a', 'bbbbbb'], answer: 1 },
    // Both pick the first.
    { context: 'q2', choices: ['cc', 'dd', 'ee'], answer: 0 },
    // Ties go to the first index.
    { context: 'q3', choices: ['ff', 'gg'], answer: 1 },
    // Sum picks 'hhhh' (−4 > −5); per byte: −1 vs −5 → still 'hhhh'; the answer is 'i'.
    { context: 'q4', choices: ['hhhh', 'i'], answer: 1 },
  ];
  const table = { a: -2, bbbbbb: -3, cc: -1, dd: -5, ee: -7, ff: -1, gg: -1, hhhh: -4, i: -5 };

  it('acc by the summed log-likelihood, acc_norm per byte, chance, Wilson intervals', () => {
    const r = scoreMultipleChoice('hand', examples, stub(table));
    expect(r.details.picks).toEqual([0, 0, 0, 0]);
    expect(r.details.normPicks).toEqual([1, 0, 0, 0]);
    expect(r.correct).toBe(1);
    expect(r.norm?.correct).toBe(2);
    expect(r.accuracy).toBe(0.25);
    expect(r.chance).toBeCloseTo((1 / 2 + 1 / 3 + 1 / 2 + 1 / 2) / 4, 12);
    // The interval is chat/tasks.ts's wilsonInterval, not a second copy.
    expect({ low: r.low, high: r.high }).toEqual(wilsonInterval(1, 4));
    expect({ low: r.norm?.low, high: r.norm?.high }).toEqual(wilsonInterval(2, 4));
    expect(r.kind).toBe('multiple-choice');
    expect(r.examples).toBe(4);
  });

  it('normalises by UTF-8 bytes, not UTF-16 units', () => {
    // Sum picks 'a' (−1 > −1.6); per byte 'é' (2 bytes: −0.8 > −1), where per character it would lose (−1.6).
    const s = scoreMultipleChoice('utf8', [{ context: 'x', choices: ['é', 'a'], answer: 0 }], stub({ é: -1.6, a: -1 }));
    expect(s.details.picks).toEqual([1]);
    expect(s.details.normPicks).toEqual([0]);
  });

  it('rejects scorers that return the wrong count and bad answers', () => {
    expectOneLineError(() => scoreMultipleChoice('x', examples, () => [1]), /returned 1 log-likelihoods for 9 requests/);
    expectOneLineError(() => scoreMultipleChoice('x', [{ context: 'c', choices: ['a', 'b'], answer: 2 }], stub(table)), /answer 2 is not an index/);
    expectOneLineError(() => scoreMultipleChoice('x', [], stub(table)), /no examples/);
  });

  it('formats the table and the eval-tasks.json schema', () => {
    const r = scoreMultipleChoice('hand', examples, stub(table));
    const { details: _d, ...result } = r;
    const table2 = formatTaskTable([result, { name: 'addition', kind: 'generative', examples: 10, correct: 3, accuracy: 0.3, ...wilsonInterval(3, 10), chance: null, norm: null }]);
    expect(table2.split('\n')[0]).toMatch(/^task\s+examples\s+acc \[95% CI\]\s+acc_norm \[95% CI\]\s+chance$/);
    expect(table2).toMatch(/hand\s+4\s+25\.0% \[\d+\.\d, \d+\.\d\]\s+50\.0% \[\d+\.\d, \d+\.\d\]\s+45\.8%/);
    expect(table2).toMatch(/addition\s+10\s+30\.0% \[\d+\.\d, \d+\.\d\]\s+-\s+-$/);
    const json = JSON.parse(formatEvalTasksReport({ version: 1, checkpoint: 'best', bitsPerByte: 1.23456789, tasks: [result] }));
    expect(Object.keys(json)).toEqual(['version', 'checkpoint', 'bitsPerByte', 'tasks']);
    expect(Object.keys(json.tasks[0])).toEqual(['name', 'kind', 'examples', 'correct', 'accuracy', 'low', 'high', 'chance', 'norm']);
    expect(Object.keys(json.tasks[0].norm)).toEqual(['correct', 'accuracy', 'low', 'high']);
    expect(json.bitsPerByte).toBe(1.234568);
  });
});

describe('multiple-choice JSONL', () => {
  it('parses the documented format with an optional id, skipping blank lines', () => {
    const text = '{"context": "2+2=", "choices": ["4", "5"], "answer": 0, "id": 7}\n\n{"context": "sky", "choices": [" blue", " green", " red"], "answer": 0}\r\n';
    expect(parseMultipleChoiceJsonl(text, 'qa.jsonl')).toEqual([
      { context: '2+2=', choices: ['4', '5'], answer: 0, id: '7' },
      { context: 'sky', choices: [' blue', ' green', ' red'], answer: 0 },
    ]);
  });

  it('errors name file:line and the field, in one line', () => {
    const bad: [string, RegExp][] = [
      ['{"context": "a", "choices": ["x", "y"], "answer": 0}\nnot json', /^qa\.jsonl:2: expected one JSON object per line, got invalid JSON/],
      ['[1]', /^qa\.jsonl:1: expected a JSON object, got an array of 1 item/],
      ['{"context": "", "choices": ["x", "y"], "answer": 0}', /^qa\.jsonl:1: expected "context" to be a non-empty string, got the string ""/],
      ['{"context": "a", "choices": ["x"], "answer": 0}', /^qa\.jsonl:1: expected "choices" to be an array of at least 2 strings/],
      ['{"context": "a", "choices": ["x", 3], "answer": 0}', /^qa\.jsonl:1: expected "choices"\[1\] to be a non-empty string, got 3/],
      ['{"context": "a", "choices": ["x", "x"], "answer": 0}', /^qa\.jsonl:1: "choices"\[1\] repeats "choices"\[0\]/],
      ['{"context": "a", "choices": ["x", "y"], "answer": 2}', /^qa\.jsonl:1: expected "answer" to be an index of "choices" \(an integer in \[0, 1\]\), got 2/],
      ['{"context": "a", "choices": ["x", "y"], "answer": "0"}', /^qa\.jsonl:1: expected "answer" .* got the string "0"/],
      ['{"context": "a", "choices": ["x", "y"], "gold": 0}', /^qa\.jsonl:1: unknown field "gold"/],
      ['{"context": "a", "choices": ["x", "y"], "answer": 0, "id": [1]}', /^qa\.jsonl:1: expected "id" to be a string or a number/],
      ['\n\n', /^qa\.jsonl: expected at least one example/],
    ];
    for (const [text, pattern] of bad) expectOneLineError(() => parseMultipleChoiceJsonl(text, 'qa.jsonl'), pattern);
  });

  it('reads a file; a missing file is a one-line error naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-mc-'));
    const path = join(dir, 'qa.jsonl');
    writeFileSync(path, '{"context": "a", "choices": ["x", "y"], "answer": 1}\n');
    expect(readMultipleChoiceFile(path)).toHaveLength(1);
    expectOneLineError(() => readMultipleChoiceFile(join(dir, 'none.jsonl')), /cannot read task file .*none\.jsonl/);
  });

  it('task lists: built-in names and .jsonl paths; unknown, empty and repeated entries throw', () => {
    expect(parseEvalTaskList('shakespeare-speaker, addition,data/qa.jsonl')).toEqual([
      { kind: 'shakespeare', name: 'shakespeare-speaker' },
      { kind: 'generative', name: 'addition' },
      { kind: 'file', name: 'data/qa.jsonl', path: 'data/qa.jsonl' },
    ]);
    expectOneLineError(() => parseEvalTaskList('hellaswag'), /unknown task 'hellaswag'; built-in tasks: shakespeare-speaker, shakespeare-continuation, addition/);
    expectOneLineError(() => parseEvalTaskList('addition,,sort'), /empty task name/);
    expectOneLineError(() => parseEvalTaskList('sort,sort'), /'sort' is listed twice/);
  });
});
