/** GRPO on the verifiable tasks (posttrain/rl.ts): rollouts, rewards, the update's direction, the run. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../../src/chat/template.js';
import { groupAdvantages, tokenLogProbs } from '../../src/posttrain/losses.js';
import { DYNAMIC_SAMPLING_DRAWS, replyReward, rl, rolloutLoss, sampleGroup, type RolloutBatch } from '../../src/posttrain/rl.js';
import { sft } from '../../src/posttrain/sft.js';
import { presetConfig } from '../../src/models/presets.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { AdamW } from '../../src/optim/adam.js';
import { LrSchedule, TrainingCore } from '../../src/train/loop.js';
import { loadRun, train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

const tokenizer = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz :0123456789').withSpecialTokens(CHAT_SPECIAL_TOKENS);
const template = new ChatTemplate(tokenizer);
const end = template.assistantEnd;
const tinyModel = () => new TransformerLM(presetConfig('tiny', { vocabSize: tokenizer.vocabSize, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 64, maxSeqLen: 64 }), { generator: new Generator(4) });

describe('rollouts and rewards', () => {
  it('samples a group of replies in one batch, each ending at <|assistant_end|> or at the limit, reproducibly', () => {
    const model = tinyModel();
    const prompt = template.renderForGeneration([{ role: 'user', content: 'reverse: cat' }]);
    const a = sampleGroup(model, prompt, 6, { maxNewTokens: 10, temperature: 1, end, generator: new Generator(9) });
    const b = sampleGroup(model, prompt, 6, { maxNewTokens: 10, temperature: 1, end, generator: new Generator(9) });
    expect(a).toEqual(b);
    expect(a).toHaveLength(6);
    for (const reply of a) {
      expect(reply.length).toBeGreaterThan(0);
      expect(reply.length).toBeLessThanOrEqual(10);
      // Nothing after the end token; an unfinished reply has exactly the limit.
      const at = reply.indexOf(end);
      if (at >= 0) expect(at).toBe(reply.length - 1);
      else expect(reply.length).toBe(10);
    }
  });

  it('rewards the exact answer only when the reply ends properly', () => {
    const ids = (s: string) => tokenizer.encode(s, { allowSpecial: false });
    expect(replyReward(tokenizer, [...ids('tac'), end], end, 'tac')).toBe(1);
    expect(replyReward(tokenizer, [...ids(' tac '), end], end, 'tac')).toBe(1);
    expect(replyReward(tokenizer, [...ids('tca'), end], end, 'tac')).toBe(0);
    expect(replyReward(tokenizer, ids('tac'), end, 'tac')).toBe(0);
  });
});

describe('the GRPO update', () => {
  /** Four replies to one prompt, the first rewarded: a batch as rl() builds it. */
  function batch(model: TransformerLM, klBeta: number): RolloutBatch {
    const prompt = template.renderForGeneration([{ role: 'user', content: 'reverse: cat' }]);
    const replies = ['tac', 'cat', 'act', 'cta'].map((r) => [...tokenizer.encode(r, { allowSpecial: false }), end]);
    const width = prompt.length + 3;
    const x = new Int32Array(4 * width);
    const y = new Int32Array(4 * width);
    const mask = new Float32Array(4 * width);
    replies.forEach((r, i) => {
      const ids = [...prompt, ...r];
      for (let t = 0; t + 1 < ids.length; t++) {
        x[i * width + t] = ids[t];
        y[i * width + t] = ids[t + 1];
        if (t + 1 >= prompt.length) mask[i * width + t] = 1;
      }
    });
    const b = { x: tensor(x, { shape: [4, width] }), y: tensor(y, { shape: [4, width] }), mask: new Tensor(mask, [4, width]) };
    const rewards = [1, 0, 0, 0];
    const referenceLogProbs = klBeta > 0 ? noGrad(() => tokenLogProbs(model.forward(b.x).logits, b.y, b.mask)) : null;
    return { ...b, advantages: groupAdvantages(rewards, 4), referenceLogProbs, rewards };
  }

  const replyLogProbs = (model: TransformerLM, b: RolloutBatch) => noGrad(() => tokenLogProbs(model.forward(b.x).logits, b.y, b.mask).sum(-1).toArray() as number[]);

  for (const klBeta of [0, 0.04]) {
    it(`raises the rewarded reply's log-probability and lowers the others' (KL β ${klBeta})`, () => {
      const model = tinyModel();
      const b = batch(model, klBeta);
      const before = replyLogProbs(model, b);
      const core = new TrainingCore({ model, optimizer: new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 }), schedule: new LrSchedule({ kind: 'constant', lr: 1e-2, warmupSteps: 0, maxSteps: 1 }), loss: rolloutLoss({ clipEps: 0.2, klBeta }), gradClip: 1 });
      for (let i = 0; i < 3; i++) core.trainStep(b);
      const after = replyLogProbs(model, b);
      expect(after[0]).toBeGreaterThan(before[0]);
      for (let i = 1; i < 4; i++) expect(after[i] - after[0]).toBeLessThan(before[i] - before[0]);
    });
  }

  it('learns nothing from a group whose replies are all equally rewarded', () => {
    const model = tinyModel();
    const b = { ...batch(model, 0.04), advantages: groupAdvantages([0, 0, 0, 0], 4) };
    const before = model.parameters().map((p) => Array.from(p.toTypedArray()));
    const core = new TrainingCore({ model, optimizer: new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 }), schedule: new LrSchedule({ kind: 'constant', lr: 1e-2, warmupSteps: 0, maxSteps: 1 }), loss: rolloutLoss({ clipEps: 0.2, klBeta: 0.04 }), gradClip: 1 });
    core.trainStep(b);
    expect(model.parameters().map((p) => Array.from(p.toTypedArray()))).toEqual(before);
  });
});

describe('rl', () => {
  it('runs GRPO from an SFT run: metrics, a run that loads, exact resume at an evaluation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-rl-'));
    const data = join(dir, 'words.txt');
    const g = new Generator(5);
    writeFileSync(data, Array.from({ length: 3000 }, () => Array.from({ length: 1 + g.randint(0, 6) }, () => 'abcdefghijklmnopqrstuvwxyz'[g.randint(0, 26)]).join('')).join(' '));
    await train(smallTrainConfig(dir, data, { name: 'base', maxSteps: 4, evalInterval: 4, sampleTokens: 0, model: { dModel: 32, nLayers: 1, nHeads: 2, dFF: 64, maxSeqLen: 48 } }));
    await sft({ base: join(dir, 'base'), outDir: dir, name: 'sft', tasks: ['reverse'], taskExamples: 40, evalExamples: 4, batchSize: 4, maxSteps: 4, warmupSteps: 1, evalInterval: 4, evalIters: 1 });
    const settings = { base: join(dir, 'sft'), outDir: dir, tasks: ['reverse'], taskExamples: 200, evalExamples: 4, batchSize: 2, groupSize: 3, maxNewTokens: 6, maxSteps: 4, warmupSteps: 1, evalInterval: 2 };
    const full = await rl({ ...settings, name: 'rl' });
    expect(full.step).toBe(4);
    const evals = readFileSync(full.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([2, 4]);
    expect(evals[1].metrics['reward/mean']).toBeGreaterThanOrEqual(0);
    expect(evals[1].valLoss).toBeCloseTo(1 - evals[1].metrics['reverse/accuracy'], 12);
    expect(JSON.parse(readFileSync(join(full.files.dir, 'config.json'), 'utf8')).stage).toBe('rl');
    expect(loadRun(full.files.dir, 'latest').model.config.vocabSize).toBe(full.model.config.vocabSize);
    await rl({ ...settings, name: 'rl-split' }, { stopAfterSteps: 2 });
    const rest = await rl({ ...settings, name: 'rl-split' }, { resume: true });
    expect(rest.trainLosses.map((s) => s.loss)).toEqual(full.trainLosses.slice(2).map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
    // Plain GRPO draws batchSize groups a step, whatever their rewards.
    expect(evals.map((e) => e.metrics['rollouts/groups'])).toEqual([2, 2]);

    // Dynamic sampling draws past groups whose rewards are all equal (an almost untrained model
    // gets nearly every reply wrong), up to DYNAMIC_SAMPLING_DRAWS × batchSize, and resumes exactly.
    const dynamic = { ...settings, dynamicSampling: true };
    const ds = await rl({ ...dynamic, name: 'rl-ds' });
    const dsEvals = readFileSync(ds.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'eval');
    for (const e of dsEvals) {
      const { 'rollouts/groups': groups, 'rollouts/informative': informative } = e.metrics;
      expect(groups).toBeGreaterThanOrEqual(2);
      expect(groups).toBeLessThanOrEqual(DYNAMIC_SAMPLING_DRAWS * 2);
      // A step stops drawing once it has 2 informative groups: fewer than that means it drew all it may.
      if (informative * groups < 2) expect(groups).toBe(DYNAMIC_SAMPLING_DRAWS * 2);
    }
    await rl({ ...dynamic, name: 'rl-ds-split' }, { stopAfterSteps: 2 });
    const dsRest = await rl({ ...dynamic, name: 'rl-ds-split' }, { resume: true });
    expect(dsRest.trainLosses.map((s) => s.loss)).toEqual(ds.trainLosses.slice(2).map((s) => s.loss));
  }, 120_000);

  it('says what is missing', async () => {
    await expect(rl({ name: 'x', tasks: ['reverse'] })).rejects.toThrow(/--base .* is required/);
    await expect(rl({ name: 'x', base: 'runs/none' })).rejects.toThrow(/no training data|give --task/);
    await expect(rl({ name: 'x', base: 'runs/none', tasks: ['reverse'], groupSize: 1 })).rejects.toThrow(/groupSize must be an integer ≥ 2/);
  });
});
