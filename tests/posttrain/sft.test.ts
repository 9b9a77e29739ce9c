/** Supervised fine-tuning (posttrain/sft.ts): padded batches, the run on disk, resume, LoRA. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAT_SPECIAL_TOKENS } from '../../src/chat/template.js';
import { paddedBatch, resolveSftConfig, sft } from '../../src/posttrain/sft.js';
import { Generator } from '../../src/tensor/random.js';
import { randint } from '../../src/tensor/creation.js';
import { loadRun } from '../../src/train/trainer.js';
import { baseRun } from './helpers.js';

describe('paddedBatch', () => {
  it('shifts ids into inputs and targets, trains only where the loss mask is 1, pads on the right', () => {
    const examples = [
      { ids: Int32Array.of(1, 2, 3, 4), lossMask: Uint8Array.of(0, 0, 1, 1) },
      { ids: Int32Array.of(5, 6), lossMask: Uint8Array.of(0, 1) },
    ];
    const { x, y } = paddedBatch(examples, [0, 1, 0]);
    expect(x.shape).toEqual([3, 3]);
    expect(Array.from(x.toTypedArray())).toEqual([1, 2, 3, 5, 0, 0, 1, 2, 3]);
    expect(Array.from(y.toTypedArray())).toEqual([-100, 3, 4, 6, -100, -100, -100, 3, 4]);
  });
});

describe('sft', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-sft-'));
  const base = baseRun(dir);
  const small = async (name: string, extra: Record<string, unknown> = {}) => ({
    base: await base,
    outDir: dir,
    name,
    tasks: ['reverse', 'count'],
    taskExamples: 60,
    evalExamples: 6,
    batchSize: 4,
    maxSteps: 8,
    warmupSteps: 2,
    evalInterval: 4,
    evalIters: 2,
    ...extra,
  });

  it('fine-tunes in the chat format: run directory, task metrics, extended tokenizer, loss goes down', async () => {
    const r = await sft(await small('full'));
    expect(r.step).toBe(8);
    const config = JSON.parse(readFileSync(join(r.files.dir, 'config.json'), 'utf8'));
    expect(config.stage).toBe('sft');
    expect(config.sft.tasks).toEqual(['reverse', 'count']);
    for (const t of CHAT_SPECIAL_TOKENS) expect(r.tokenizer.specialTokens[t]).toBeGreaterThanOrEqual(0);
    // The tasks' ':' and the count answers' digits were not in the base corpus: they were added as characters.
    const baseVocab = loadRun(await base, 'best').tokenizer.vocabSize;
    expect(r.tokenizer.vocabSize).toBeGreaterThan(baseVocab + CHAT_SPECIAL_TOKENS.length);
    expect(() => r.tokenizer.encode('reverse: cat')).not.toThrow();
    expect(r.model.config.vocabSize).toBe(r.tokenizer.vocabSize);
    const evals = readFileSync(r.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([4, 8]);
    for (const task of ['reverse', 'count']) {
      expect(evals[1].metrics[`${task}/accuracy`]).toBeGreaterThanOrEqual(0);
      expect(r.taskScores[task].total).toBe(6);
    }
    expect(r.trainLosses[r.trainLosses.length - 1].loss).toBeLessThan(r.trainLosses[0].loss);
    // The run loads like any other (tensorlm sample / chat).
    const loaded = loadRun(r.files.dir, 'latest');
    const ids = randint(0, r.tokenizer.vocabSize, [1, 8], { generator: new Generator(1) });
    r.model.eval();
    expect(loaded.model.forward(ids).logits.toArray()).toEqual(r.model.forward(ids).logits.toArray());
  }, 60_000);

  it('resumes exactly', async () => {
    const full = await sft(await small('r-full'));
    const half = await sft(await small('r-split'), { stopAfterSteps: 3 });
    const rest = await sft({ outDir: dir, name: 'r-split', base: await base, tasks: ['reverse'] }, { resume: true });
    expect([...half.trainLosses, ...rest.trainLosses].map((s) => s.loss)).toEqual(full.trainLosses.map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
  }, 60_000);

  it('with LoRA trains the adapters (and the grown embedding) and leaves the base matrices untouched', async () => {
    const r = await sft(await small('lora', { lora: { rank: 4, alpha: 8, dropout: 0, targetModules: 'all-linear' } }));
    const baseModel = loadRun(await base, 'best').model;
    const b = baseModel.stateDict();
    const state = r.model.stateDict();
    expect(Object.keys(state).some((k) => k.endsWith('.loraA'))).toBe(true);
    for (const [name, t] of Object.entries(b)) {
      if (name === 'tokEmb.weight') continue;
      expect(state[name].toArray(), name).toEqual(t.toArray());
    }
    const loaded = loadRun(r.files.dir, 'latest');
    const ids = randint(0, r.tokenizer.vocabSize, [1, 8], { generator: new Generator(2) });
    r.model.eval();
    expect(loaded.model.forward(ids).logits.toArray()).toEqual(r.model.forward(ids).logits.toArray());
  }, 60_000);

  it('says what is missing', async () => {
    await expect(sft({ name: 'x', outDir: dir, tasks: ['reverse'] })).rejects.toThrow(/--base .* is required/);
    await expect(sft({ name: 'x', outDir: dir, base: await base })).rejects.toThrow(/no training data/);
    await expect(sft({ name: 'x', outDir: dir, base: await base, tasks: ['sum'] })).rejects.toThrow(/unknown task/);
    // A conversations file alone is enough: no tasks is not an empty task name.
    expect(resolveSftConfig({ base: 'b', data: 'c.jsonl' }).tasks).toEqual([]);
  });
});
