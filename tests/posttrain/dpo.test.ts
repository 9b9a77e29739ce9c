/** Direct Preference Optimization (posttrain/dpo.ts): task pairs, batches, the run against a frozen reference, resume, LoRA. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../../src/chat/template.js';
import { generateTaskExamples, TASK_NAMES } from '../../src/chat/tasks.js';
import { dpo, preferenceBatch, renderPair, taskPreferencePairs, wrongAnswer } from '../../src/posttrain/dpo.js';
import { sft } from '../../src/posttrain/sft.js';
import { randint } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { loadRun } from '../../src/train/trainer.js';
import { baseRun } from './helpers.js';

const sorted = (s: string) => [...s].sort().join('');

describe('preference pairs from the tasks', () => {
  it('rejects a plausible wrong answer, never the answer, reproducibly', () => {
    for (const task of TASK_NAMES) {
      const examples = generateTaskExamples(task, 'train', 300, 3);
      const pairs = taskPreferencePairs(examples, 11);
      expect(taskPreferencePairs(examples, 11)).toEqual(pairs);
      pairs.forEach((p, i) => {
        const { prompt, answer } = examples[i];
        expect(p.prompt).toEqual([{ role: 'user', content: prompt }]);
        expect(p.chosen).toBe(answer);
        expect(p.rejected).not.toBe(answer);
        if (task === 'addition') expect([1, 2, 10, 100]).toContain(Math.abs(Number(p.rejected) - Number(answer)));
        if (task === 'addition') expect(Number(p.rejected)).toBeGreaterThanOrEqual(0);
        if (task === 'count') expect(Math.abs(Number(p.rejected) - Number(answer))).toBe(1);
        // The same letters, in the wrong order (the input copied, or shuffled); one letter more
        // where all are the same ('jjj'), since no order of them is wrong.
        if ((task === 'reverse' || task === 'sort') && new Set(answer).size === 1) expect(p.rejected).toBe(answer + answer[0]);
        else if (task === 'reverse' || task === 'sort') expect(sorted(p.rejected)).toBe(sorted(answer));
      });
    }
  });

  it('handles answers no shuffle can change', () => {
    const rng = new Generator(1);
    // A palindrome: copying the input would be right, so the letters are shuffled.
    for (let i = 0; i < 20; i++) expect(wrongAnswer({ task: 'reverse', prompt: 'reverse: eye', answer: 'eye' }, rng)).not.toBe('eye');
    expect(wrongAnswer({ task: 'sort', prompt: 'sort: aaa', answer: 'aaa' }, rng)).toBe('aaaa');
    expect(wrongAnswer({ task: 'count', prompt: 'count z in cat', answer: '0' }, rng)).toBe('1');
  });
});

describe('preferenceBatch', () => {
  it('puts the chosen replies in the first B rows and the rejected in the next B, the mask on the reply', () => {
    const template = new ChatTemplate(CharTokenizer.fromText('abc0123456789+=').withSpecialTokens(CHAT_SPECIAL_TOKENS));
    const pairs = [
      renderPair(template, { prompt: [{ role: 'user', content: '1+2=' }], chosen: '3', rejected: '13' }),
      renderPair(template, { prompt: [{ role: 'user', content: 'ab' }], chosen: 'ba', rejected: 'a' }),
    ];
    // <|bos|> <|user_start|> 1 + 2 = <|user_end|> <|assistant_start|>: 8 prompt tokens, then the reply and <|assistant_end|>.
    expect(Array.from(pairs[0].chosen.lossMask)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    const b = preferenceBatch(pairs, [1, 0]);
    expect(b.pairs).toBe(2);
    expect(b.x.shape).toEqual([4, 10]);
    const mask = b.mask.toTypedArray();
    const rowSums = [0, 1, 2, 3].map((r) => Array.from(mask.slice(r * 10, r * 10 + 10)).reduce((s, v) => s + v, 0));
    // Rows: chosen 'ba', chosen '3', rejected 'a', rejected '13' (each + <|assistant_end|>).
    expect(rowSums).toEqual([3, 2, 2, 3]);
    const y = b.y.toTypedArray();
    for (let i = 0; i < y.length; i++) expect(mask[i]).toBe(y[i] === -100 ? 0 : 1);
  });
});

describe('dpo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-dpo-'));
  const runs = (async () => {
    const base = await baseRun(dir);
    const chat = await sft({ base, outDir: dir, name: 'sft', tasks: ['reverse'], taskExamples: 60, evalExamples: 6, batchSize: 4, maxSteps: 6, warmupSteps: 2, evalInterval: 6, evalIters: 1 });
    return { base, sft: chat.files.dir };
  })();
  const small = async (name: string, extra: Record<string, unknown> = {}) => ({
    base: (await runs).sft,
    outDir: dir,
    name,
    tasks: ['reverse'],
    taskExamples: 40,
    evalExamples: 8,
    batchSize: 4,
    maxSteps: 8,
    warmupSteps: 0,
    lr: 3e-3,
    evalInterval: 4,
    evalIters: 2,
    ...extra,
  });

  it('trains the policy against a frozen reference: log 2 at the start, the training margin up, a run loadRun reads', async () => {
    const r = await dpo(await small('run'));
    expect(r.step).toBe(8);
    // Policy = reference before the first update: Δ = 0 exactly, the loss is log 2.
    expect(r.trainLosses[0].loss).toBeCloseTo(Math.LN2, 6);
    const config = JSON.parse(readFileSync(join(r.files.dir, 'config.json'), 'utf8'));
    expect(config.stage).toBe('dpo');
    expect(config.dpo).toMatchObject({ beta: 0.1, labelSmoothing: 0, tasks: ['reverse'] });

    // The reference is the SFT model, unchanged; the policy moved.
    const start = loadRun((await runs).sft, 'best').model.stateDict();
    const reference = r.reference.stateDict();
    const policy = r.model.stateDict();
    for (const [name, t] of Object.entries(start)) expect(reference[name].toArray(), name).toEqual(t.toArray());
    expect(Object.entries(start).some(([name, t]) => JSON.stringify(policy[name].toArray()) !== JSON.stringify(t.toArray()))).toBe(true);

    // On the training pairs the chosen replies gained on the rejected ones (both start at 0 and 0.5 → 0 margin, 0 accuracy).
    const evals = readFileSync(r.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([4, 8]);
    const endMetrics = evals[1].metrics;
    expect(endMetrics['preference/train-margin']).toBeGreaterThan(evals[0].metrics['preference/train-margin']);
    expect(evals[0].metrics['preference/train-margin']).toBeGreaterThan(0);
    expect(endMetrics['preference/train-accuracy']).toBeGreaterThan(0.5);
    expect(evals[1].trainLoss).toBeLessThan(Math.LN2);
    for (const k of ['preference/val-accuracy', 'reverse/accuracy']) expect(endMetrics[k]).toBeGreaterThanOrEqual(0);
    expect(r.heldOut.loss).toBe(evals[1].valLoss);
    expect(r.taskScores.reverse.total).toBe(8);

    // The run loads like any other (tensorlm chat / sample).
    const loaded = loadRun(r.files.dir, 'latest');
    expect(loaded.config.stage).toBe('dpo');
    const ids = randint(0, r.tokenizer.vocabSize, [1, 8], { generator: new Generator(1) });
    expect(loaded.model.forward(ids).logits.toArray()).toEqual(r.model.forward(ids).logits.toArray());
  }, 120_000);

  it('resumes exactly', async () => {
    const full = await dpo(await small('r-full'));
    const half = await dpo(await small('r-split'), { stopAfterSteps: 3 });
    const rest = await dpo({ outDir: dir, name: 'r-split', base: (await runs).sft, tasks: ['reverse'] }, { resume: true });
    expect([...half.trainLosses, ...rest.trainLosses].map((s) => s.loss)).toEqual(full.trainLosses.map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
    expect(rest.heldOut).toEqual(full.heldOut);
  }, 120_000);

  it('learns from a preferences file, with LoRA adapters added to a full model', async () => {
    const prefs = join(dir, 'prefs.jsonl');
    const words = ['cat', 'dog', 'bird', 'fish', 'milk', 'tree'];
    writeFileSync(prefs, words.map((w) => JSON.stringify({ prompt: `reverse: ${w}`, chosen: [...w].reverse().join(''), rejected: w })).join('\n') + '\n');
    const r = await dpo(await small('lora', { data: prefs, tasks: [], maxSteps: 3, evalInterval: 3, lora: { rank: 2, alpha: 4, dropout: 0, targetModules: 'all-linear' } }));
    expect(r.trainLosses[0].loss).toBeCloseTo(Math.LN2, 6);
    const state = r.model.stateDict();
    expect(Object.keys(state).some((k) => k.endsWith('.loraA'))).toBe(true);
    for (const [name, t] of Object.entries(loadRun((await runs).sft, 'best').model.stateDict())) expect(state[name].toArray(), name).toEqual(t.toArray());
    const loaded = loadRun(r.files.dir, 'latest');
    expect(loaded.config.lora).toMatchObject({ rank: 2 });
    const ids = randint(0, r.tokenizer.vocabSize, [1, 8], { generator: new Generator(2) });
    expect(loaded.model.forward(ids).logits.toArray()).toEqual(r.model.forward(ids).logits.toArray());
    // That run has adapters already: DPO on it trains them, and refuses to add more.
    await expect(dpo({ ...(await small('lora-twice')), base: r.files.dir, lora: { rank: 2, alpha: 4, dropout: 0, targetModules: 'all-linear' } })).rejects.toThrow(/already has LoRA adapters/);
  }, 120_000);

  it('says what is wrong', async () => {
    const { base, sft: chat } = await runs;
    await expect(dpo({ name: 'x', outDir: dir, tasks: ['reverse'] })).rejects.toThrow(/^dpo: --base .* is required/);
    await expect(dpo({ name: 'x', outDir: dir, base: chat })).rejects.toThrow(/^dpo: no training data/);
    await expect(dpo({ name: 'x', outDir: dir, base, tasks: ['reverse'] })).rejects.toThrow(/^dpo: .* is not a chat model .*run sft first/);
    await expect(dpo({ name: 'x', outDir: dir, base: chat, tasks: ['reverse'], beta: 0 })).rejects.toThrow(/^dpo: beta must be/);
    const prefs = join(dir, 'bad.jsonl');
    writeFileSync(prefs, '{"prompt": "reverse: cat", "chosen": "tac", "rejected": "TAC"}\n{"prompt": "reverse: dog", "chosen": "god", "rejected": "dog"}\n');
    await expect(dpo({ name: 'x', outDir: dir, base: chat, data: prefs })).rejects.toThrow(/^dpo: .*bad\.jsonl pair 1: .*not in the vocabulary/);
  }, 60_000);
});
