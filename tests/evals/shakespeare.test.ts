/** The built-in Shakespeare tasks: deterministic, well-formed, built from held-out text only. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDataDir } from '../../src/data/resolve.js';
import { heldOutStart, shakespeareContinuationTask, shakespeareSpeakerTask } from '../../src/evals/shakespeare.js';
import { expectOneLineError } from '../helpers/errors.js';

const dataDir = defaultDataDir();
const text = readFileSync(join(dataDir, 'tinyshakespeare.txt'), 'utf8');
const start = heldOutStart(text);
const trained = text.slice(0, start);
const N = 120;

describe.each([
  ['shakespeare-speaker', shakespeareSpeakerTask],
  ['shakespeare-continuation', shakespeareContinuationTask],
] as const)('%s', (name, build) => {
  const examples = build(text, { count: N, seed: 5 });

  it('is deterministic in the seed; a smaller count is a prefix', () => {
    expect(examples).toHaveLength(N);
    expect(build(text, { count: N, seed: 5 })).toEqual(examples);
    expect(build(text, { count: 30, seed: 5 })).toEqual(examples.slice(0, 30));
    expect(build(text, { count: 30, seed: 6 })).not.toEqual(examples.slice(0, 30));
  });

  it('has 4 distinct choices per example and the answer spread over the 4 places', () => {
    const places = [0, 0, 0, 0];
    for (const e of examples) {
      expect(e.choices).toHaveLength(4);
      expect(new Set(e.choices).size).toBe(4);
      expect(e.context.length).toBeGreaterThan(0);
      places[e.answer]++;
    }
    // Uniform: each place 30 ± about 3 standard deviations (√(120·¼·¾) ≈ 4.7).
    for (const n of places) {
      expect(n).toBeGreaterThan(15);
      expect(n).toBeLessThan(45);
    }
  });

  it('takes its text from after the 90% character only: no context occurs in the training part', () => {
    for (const e of examples) {
      const at = text.indexOf(e.context + e.choices[e.answer], start);
      expect(at, `${name}: the context + answer is the real text`).toBeGreaterThanOrEqual(start);
      expect(trained.includes(e.context)).toBe(false);
    }
  });
});

describe('Shakespeare tasks', () => {
  it('speaker: the choices are speaker tags; the context is whole speeches, at least two, not the previous speaker', () => {
    for (const e of shakespeareSpeakerTask(text, { count: 50, seed: 1 })) {
      expect(e.context.endsWith('\n\n')).toBe(true);
      const tags = [...e.context.matchAll(/(?:^|\n\n)([^\n]+:)\n/g)].map((m) => `${m[1]}\n`);
      expect(tags.length).toBeGreaterThanOrEqual(2);
      expect(e.context.startsWith(tags[0])).toBe(true);
      for (const c of e.choices) expect(c).toMatch(/^[A-Za-z][A-Za-z' .,-]*:\n$/);
      // A speech never follows one by the same speaker: the previous speaker is never a choice.
      expect(e.choices).not.toContain(tags[tags.length - 1]);
    }
  });

  it('continuation: the choices are lines of similar length; the context ends at a line break', () => {
    for (const e of shakespeareContinuationTask(text, { count: 50, seed: 1 })) {
      expect(e.context.endsWith('\n')).toBe(true);
      expect(e.context.length).toBeLessThanOrEqual(200);
      const real = e.choices[e.answer].length;
      for (const c of e.choices) {
        expect(c).toMatch(/^[^\n]+\n$/);
        expect(Math.abs(c.length - real)).toBeLessThanOrEqual(Math.max(3, 0.2 * (real - 1)));
      }
    }
  });

  it('the held-out start is floor(0.9 × characters); bad options are one-line errors', () => {
    expect(start).toBe(1_003_854);
    expectOneLineError(() => shakespeareSpeakerTask(text, { count: 0 }), /count must be a positive integer, got 0/);
    expectOneLineError(() => shakespeareContinuationTask(text, { start: text.length }), /start must be an integer in \[1, 1115394\)/);
    expectOneLineError(() => heldOutStart(text, 1), /trainFraction must be in \(0, 1\), got 1/);
  });
});
