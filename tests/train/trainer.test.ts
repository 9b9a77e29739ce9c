import { mkdtempSync, readFileSync, writeFileSync, statSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { loadRun, train, type TrainResult } from '../../src/train/trainer.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { smallTrainConfig } from './helpers.js';

/** A small corpus with structure to learn: repeated dialogue lines. */
function corpus(): string {
  const lines: string[] = [];
  const names = ['ROMEO', 'JULIET', 'NURSE'];
  const words = ['love', 'night', 'light', 'death', 'sweet', 'fair', 'moon', 'sun'];
  const g = new T.Generator(3);
  for (let i = 0; i < 400; i++) {
    lines.push(`${names[g.randint(0, 3)]}:\n${Array.from({ length: 6 }, () => words[g.randint(0, words.length)]).join(' ')}.\n`);
  }
  return lines.join('\n');
}

function setup(): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-train-'));
  const data = join(dir, 'corpus.txt');
  writeFileSync(data, corpus());
  return { dir, data };
}

const small = smallTrainConfig;

describe('training', () => {
  it('with 2 data-parallel replicas follows the single-thread run (same batches, gradients summed across threads)', async () => {
    const { dir, data } = setup();
    const one = await train(small(dir, data, { name: 'one', maxSteps: 8, evalInterval: 8 }));
    const two = await train(small(dir, data, { name: 'two', maxSteps: 8, evalInterval: 8, replicas: 2 }));
    expect(two.config.train.replicas).toBe(2);
    expect(two.trainLosses).toHaveLength(8);
    // Float32 sums in another order: the trajectories agree to rounding, not bit for bit.
    for (let i = 0; i < 8; i++) expect(Math.abs(two.trainLosses[i].loss - one.trainLosses[i].loss)).toBeLessThan(2e-4);
    expect(Math.abs((two.finalValLoss as number) - (one.finalValLoss as number))).toBeLessThan(2e-4);
  }, 60_000);

  it('loss decreases on a tiny corpus and the run directory is complete', async () => {
    const { dir, data } = setup();
    const r = await train(small(dir, data, { name: 'learn', maxSteps: 60 }));
    const first = r.trainLosses.slice(0, 5).reduce((s, x) => s + x.loss, 0) / 5;
    const last = r.trainLosses.slice(-5).reduce((s, x) => s + x.loss, 0) / 5;
    expect(last).toBeLessThan(first * 0.75);
    for (const f of [r.files.config, r.files.tokenizer, r.files.metrics, r.files.latest, r.files.best]) expect(statSync(f).size).toBeGreaterThan(0);
    const lines = readFileSync(r.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.some((l) => l.kind === 'eval' && typeof l.valLoss === 'number')).toBe(true);
  });

  it('resume continues exactly: N steps = N/2, stop, resume, N/2', async () => {
    const { dir, data } = setup();
    const full: TrainResult = await train(small(dir, data, { name: 'full', dropout: 0.1 }));
    const half = await train(small(dir, data, { name: 'split', dropout: 0.1 }), { stopAfterSteps: 17 });
    expect(half.step).toBe(17);
    const rest = await train({ outDir: dir, name: 'split' }, { resume: true });
    const resumed = [...half.trainLosses, ...rest.trainLosses];
    expect(resumed.map((s) => s.step)).toEqual(full.trainLosses.map((s) => s.step));
    expect(resumed.map((s) => s.loss)).toEqual(full.trainLosses.map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
  });

  it('gradient accumulation: each step sees gradAccumSteps micro-batches, counts their tokens, and resumes exactly', async () => {
    const { dir, data } = setup();
    const cfg = { maxSteps: 12, evalInterval: 6, gradAccumSteps: 3 };
    const full = await train(small(dir, data, { name: 'accum', ...cfg }));
    const metrics = readFileSync(full.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const lastTrain = metrics.filter((r) => r.kind === 'train').at(-1);
    expect(lastTrain).toMatchObject({ step: 12, tokens: 12 * 3 * 4 * 32 });
    const plain = await train(small(dir, data, { name: 'no-accum', maxSteps: 12, evalInterval: 6 }));
    expect(full.trainLosses[0].loss).not.toBe(plain.trainLosses[0].loss);
    await train(small(dir, data, { name: 'accum-split', ...cfg }), { stopAfterSteps: 5 });
    const rest = await train({ outDir: dir, name: 'accum-split' }, { resume: true });
    expect(rest.trainLosses.map((s) => s.loss)).toEqual(full.trainLosses.slice(5).map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
  });

  it('resume at an evaluation boundary keeps every evaluation and the best checkpoint', async () => {
    const { dir, data } = setup();
    const evals = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.kind === 'eval').map((r) => [r.step, r.valLoss, r.trainLoss]);
    const full = await train(small(dir, data, { name: 'full2' }));
    await train(small(dir, data, { name: 'split2' }), { stopAfterSteps: 20 });
    const rest = await train({ outDir: dir, name: 'split2' }, { resume: true });
    expect(evals(rest.files.metrics)).toEqual(evals(full.files.metrics));
    expect(rest.bestValLoss).toBe(full.bestValLoss);
  });

  it('save → load gives identical logits', async () => {
    const { dir, data } = setup();
    const r = await train(small(dir, data, { name: 'saved', maxSteps: 10 }));
    const loaded = loadRun(r.files.dir, 'latest');
    const ids = T.randint(0, r.tokenizer.vocabSize, [2, 16], { generator: new T.Generator(9) });
    r.model.eval();
    const a = T.noGrad(() => r.model.forward(ids).logits.toArray());
    const b = T.noGrad(() => loaded.model.forward(ids).logits.toArray());
    expect(b).toEqual(a);
  });

  it('a truncated or corrupted checkpoint is rejected with a clear error, and nothing is overwritten', async () => {
    const { dir, data } = setup();
    const r = await train(small(dir, data, { name: 'corrupt', maxSteps: 10 }));
    const original = readFileSync(r.files.latest);
    const truncated = join(dir, 'truncated.safetensors');
    writeFileSync(truncated, original.subarray(0, original.length - 100));
    expect(() => readCheckpoint(truncated)).toThrow(/unreadable or truncated/);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 10] ^= 0xff;
    writeFileSync(r.files.latest, flipped);
    await expect(train({ outDir: dir, name: 'corrupt' }, { resume: true })).rejects.toThrow(/is corrupted/);
    expect(readFileSync(r.files.latest).equals(flipped)).toBe(true); // untouched by the failed resume
    copyFileSync(truncated, r.files.latest);
    await expect(train({ outDir: dir, name: 'corrupt' }, { resume: true })).rejects.toThrow(/truncated/);
  });

  it('a time budget plans the step count from the measured speed and is respected', async () => {
    const { dir, data } = setup();
    const t = performance.now();
    const r = await train(small(dir, data, { name: 'timed', maxSteps: 100_000, maxTime: 3, evalInterval: 1000 }));
    expect(r.plannedSteps).toBeLessThan(100_000);
    expect(r.step).toBeGreaterThan(13);
    expect((performance.now() - t) / 1000).toBeLessThan(3 + 5); // the budget plus set-up and the final evaluation
    expect(r.finalValLoss).not.toBeNull();
    expect(readCheckpoint(r.files.latest).meta.plannedSteps).toBe(r.plannedSteps);
  });

  it('refuses to overwrite an existing run and validates the config', async () => {
    const { dir, data } = setup();
    await train(small(dir, data, { name: 'once', maxSteps: 5 }));
    await expect(train(small(dir, data, { name: 'once', maxSteps: 5 }))).rejects.toThrow(/already holds a run; pass --resume/);
    await expect(train(small(dir, data, { name: 'bad', lr: -0.1 }))).rejects.toThrow(/lr must be a positive number, got -0.1/);
    await expect(train(small(dir, data, { name: 'bad2', blockSize: 64 }))).rejects.toThrow(/blockSize 64 is larger than the model's maxSeqLen 32/);
    await expect(train(small(dir, join(dir, 'missing.txt'), { name: 'bad3' }))).rejects.toThrow(/missing\.txt/);
  });
});
