/** The training core (train/loop.ts): one step, one evaluation, one schedule, the loss as a parameter. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { TokenDataset, type Batch } from '../../src/data/dataset.js';
import { buildModelConfig } from '../../src/models/presets.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { accumulateGradients, estimateLoss, languageModelLoss, LrSchedule, NonFiniteLossError, TrainingCore } from '../../src/train/loop.js';
import { buildTrainingSetup } from '../../src/train/setup.js';
import { warmupConstantLr, warmupCosineLr } from '../../src/optim/lr-scheduler.js';

/** Tokens with structure to learn (a repeating pattern with noise), from a fixed generator. */
function tokens(n: number, vocab: number): Int32Array {
  const g = new T.Generator(11);
  return Int32Array.from({ length: n }, (_, i) => (g.random() < 0.8 ? (i * 7) % vocab : g.randint(0, vocab)));
}

const VOCAB = 40;
const dataset = new TokenDataset(tokens(6000, VOCAB), { trainFraction: 0.9 });
/** The CLI's settings for the tiny preset (its full size: 4 layers, dModel 128), with short batches for a test. */
const config = resolveTrainConfig({ preset: 'tiny', batchSize: 4, blockSize: 32, maxSteps: 8, warmupSteps: 3, lr: 5e-3, minLr: 5e-4, maxTime: null });
const modelConfig = buildModelConfig(config, VOCAB) as T.models.TransformerConfig;

function coreSetup(): { core: TrainingCore<T.TransformerLM, Batch>; data: T.Generator; model: T.TransformerLM } {
  const { model: built, optimizer, generators } = buildTrainingSetup(config, modelConfig);
  const model = built as T.TransformerLM;
  const schedule = new LrSchedule({ lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  return { core: new TrainingCore({ model, optimizer, schedule, loss: languageModelLoss, gradClip: config.gradClip }), data: generators.data, model };
}

function paramValues(model: T.TransformerLM): number[][] {
  return model.parameters().map((p) => Array.from(p.toTypedArray()));
}

describe('TrainingCore', () => {
  it("gives the same losses as the README's loop through the public API (bit for bit)", () => {
    const { core, data } = coreSetup();
    const coreLosses: number[] = [];
    while (core.step < config.maxSteps) coreLosses.push(core.trainStep(dataset.getBatch('train', config.batchSize, config.blockSize, data)).loss);

    // The README's loop: the public API only, with the fast backward option.
    const init = new T.Generator(config.seed);
    const batches = new T.Generator(config.seed + 1);
    const model = new T.TransformerLM(modelConfig, { generator: init, dropoutGenerator: new T.Generator(config.seed + 2) });
    const opt = new T.optim.AdamW(T.models.muParamGroups(model, { lr: config.lr, weightDecay: config.weightDecay }), { lr: config.lr, betas: [config.beta1, config.beta2], weightDecay: config.weightDecay });
    const scheduler = new T.optim.WarmupCosineLR(opt, { warmupSteps: config.warmupSteps, maxSteps: config.maxSteps, minLr: config.minLr });
    const readmeLosses: number[] = [];
    for (let step = 0; step < config.maxSteps; step++) {
      const { x, y } = dataset.getBatch('train', config.batchSize, config.blockSize, batches);
      const { loss } = model.forward(x, y);
      opt.zeroGrad();
      (loss as T.Tensor).backward({ recycleIntermediates: true });
      T.optim.clipGradNorm(model.parameters(), config.gradClip);
      opt.step();
      scheduler.step();
      readmeLosses.push((loss as T.Tensor).item());
    }
    expect(readmeLosses).toEqual(coreLosses);
    expect(coreLosses[coreLosses.length - 1]).toBeLessThan(coreLosses[0]);
    expect(paramValues(model)).toEqual(paramValues(core.model));
  });

  it('backward with and without recycling the graph gives identical gradients', () => {
    const a = coreSetup().model;
    const b = coreSetup().model;
    const { x, y } = dataset.getBatch('train', 4, 32, new T.Generator(3));
    (a.forward(x, y).loss as T.Tensor).backward();
    (b.forward(x, y).loss as T.Tensor).backward({ recycleIntermediates: true });
    expect(b.parameters().map((p) => Array.from(p.grad!.toTypedArray()))).toEqual(a.parameters().map((p) => Array.from(p.grad!.toTypedArray())));
  });

  it('accumulates gradients over micro-batches: two halves make the step of the whole batch', () => {
    const rng = new T.Generator(9);
    const whole = dataset.getBatch('train', 8, 32, rng);
    const halves = [0, 4].map((start) => ({ x: whole.x.narrow(0, start, 4), y: whole.y.narrow(0, start, 4) }));
    const a = coreSetup();
    const b = coreSetup();
    const ra = a.core.trainStep(whole);
    const rb = b.core.trainStep(halves);
    expect(rb.lr).toBe(ra.lr);
    expect(Math.abs(rb.loss - ra.loss)).toBeLessThan(1e-6);
    const pa = paramValues(a.model).flat();
    const pb = paramValues(b.model).flat();
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    // The same update up to float32 summation order (Adam's first step moves each weight by ~lr).
    expect(worst).toBeLessThan(1e-5);
    expect(() => a.core.trainStep([])).toThrow(/no batches/);
  });

  it('takes its loss as a parameter: a masked loss plugs in without a new loop', () => {
    const rng = new T.Generator(4);
    const batch = dataset.getBatch('train', 4, 32, rng);
    // Loss only on the second half of each window (as a fine-tuning loss masks the prompt).
    const masked = (model: T.TransformerLM, b: Batch) => {
      const mask = T.arange(32).ge(16).unsqueeze(0).expand([4, 32]);
      return model.forward(b.x, T.where(mask, b.y, T.full([4, 32], -100, { dtype: 'int32' }))).loss as T.Tensor;
    };
    const a = coreSetup();
    const core = new TrainingCore({ model: a.model, optimizer: a.core.optimizer, schedule: a.core.schedule, loss: masked, gradClip: 0 });
    const r = core.trainStep(batch);
    const reference = coreSetup().model;
    expect(r.loss).toBe(masked(reference, batch).item());
    expect(r.loss).not.toBe(languageModelLoss(reference, batch).item());
  });

  it('stops on a non-finite loss without touching the parameters', () => {
    const { core, model } = coreSetup();
    const before = paramValues(model);
    const nan = new TrainingCore({ model, optimizer: core.optimizer, schedule: core.schedule, loss: (m: T.TransformerLM) => m.tokEmb.weight.sum().mul(NaN), gradClip: 1 });
    expect(() => nan.trainStep({})).toThrow(NonFiniteLossError);
    expect(() => nan.trainStep({})).toThrow(/loss became NaN at step 0/);
    expect(nan.step).toBe(0);
    expect(paramValues(model)).toEqual(before);
    const notScalar = new TrainingCore({ model, optimizer: core.optimizer, schedule: core.schedule, loss: (m: T.TransformerLM) => m.tokEmb.weight, gradClip: 1 });
    expect(() => notScalar.trainStep({})).toThrow(/the loss function must return a scalar tensor, got shape \[40, 128\]/);
  });

  it('trainStepWith applies gradients computed elsewhere, as trainStep does', async () => {
    const batch = dataset.getBatch('train', 4, 32, new T.Generator(5));
    const a = coreSetup();
    const b = coreSetup();
    const ra = a.core.trainStep(batch);
    const rb = await b.core.trainStepWith(async () => accumulateGradients(b.model, languageModelLoss, batch));
    expect(rb).toEqual(ra);
    expect(paramValues(b.model)).toEqual(paramValues(a.model));
  });
});

describe('LrSchedule', () => {
  it("is nanoGPT's get_lr: warmup then cosine (or constant), with a horizon that can be re-planned", () => {
    const s = new LrSchedule({ lr: 1e-3, minLr: 1e-4, warmupSteps: 10, maxSteps: 100 });
    for (const it of [0, 5, 9, 10, 50, 99, 100, 150]) expect(s.lrAt(it)).toBe(warmupCosineLr(it, { baseLr: 1e-3, warmupSteps: 10, maxSteps: 100, minLr: 1e-4 }));
    s.maxSteps = 50;
    expect(s.lrAt(50)).toBe(1e-4);
    const c = new LrSchedule({ kind: 'constant', lr: 1e-3, warmupSteps: 10, maxSteps: 100 });
    for (const it of [0, 9, 10, 1000]) expect(c.lrAt(it)).toBe(warmupConstantLr(it, { baseLr: 1e-3, warmupSteps: 10 }));
    expect(new LrSchedule({ lr: 1, warmupSteps: 0, maxSteps: 10 }).minLr).toBe(0.1);
    expect(() => new LrSchedule({ lr: -1, warmupSteps: 0, maxSteps: 10 })).toThrow(/lr must be a positive number, got -1/);
    expect(() => new LrSchedule({ lr: 1, warmupSteps: 1.5, maxSteps: 10 })).toThrow(/warmupSteps must be a non-negative integer/);
    expect(() => new LrSchedule({ kind: 'linear' as 'cosine', lr: 1, warmupSteps: 1, maxSteps: 10 })).toThrow(/kind must be 'cosine' or 'constant'/);
  });
});

describe('estimateLoss', () => {
  it('is seeded, runs in eval mode without a graph, and restores the mode', () => {
    const { model } = coreSetup();
    model.train();
    let sawTraining = true;
    const next = (rng: T.Generator) => dataset.getBatch('val', 4, 32, rng);
    const spy = (m: T.TransformerLM, b: Batch) => {
      sawTraining = m.training;
      const loss = languageModelLoss(m, b);
      expect(loss.requiresGrad).toBe(false);
      return loss;
    };
    const a = estimateLoss(model, spy, next, 3, 42);
    expect(sawTraining).toBe(false);
    expect(model.training).toBe(true);
    expect(estimateLoss(model, languageModelLoss, next, 3, 42)).toBe(a);
    expect(estimateLoss(model, languageModelLoss, next, 3, 43)).not.toBe(a);
    expect(() => estimateLoss(model, languageModelLoss, next, 0, 1)).toThrow(/iters must be a positive integer/);
  });
});
