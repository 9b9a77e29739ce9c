/**
 * μP through the training loop: per-group LR multipliers survive the schedule, m = 1 trains
 * exactly like SP, μP runs resume exactly, and the constant LR schedule.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { warmupConstantLr } from '../../src/optim/lr-scheduler.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

function setup(): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-mup-train-'));
  const data = join(dir, 'corpus.txt');
  const words = ['love', 'night', 'light', 'death', 'sweet', 'fair', 'moon', 'sun'];
  const lines = Array.from({ length: 300 }, (_, i) => `${['ROMEO', 'JULIET'][i % 2]}:\n${Array.from({ length: 6 }, (_, j) => words[(i * 7 + j * 3) % 8]).join(' ')}.\n`);
  writeFileSync(data, lines.join('\n'));
  return { dir, data };
}

/** The training-loop tests' small run, 30 steps and no sample text. */
const small = (dir: string, data: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> => smallTrainConfig(dir, data, { maxSteps: 30, sampleTokens: 0, ...extra });

describe('μP in the training loop', () => {
  it('μP at m = 1 trains exactly like SP', async () => {
    const { dir, data } = setup();
    const sp = await train(small(dir, data, { name: 'sp' }));
    const mup = await train(small(dir, data, { name: 'mup', model: { dModel: 32, nLayers: 2, nHeads: 2, dFF: 64, maxSeqLen: 32, mup: { baseWidth: 32 } } }));
    expect(mup.trainLosses).toEqual(sp.trainLosses);
    expect(mup.finalValLoss).toBe(sp.finalValLoss);
  });

  it('the schedule scales each group: hidden groups keep lr/m through warmup and cosine decay', async () => {
    const { dir, data } = setup();
    const model = { dModel: 64, nLayers: 2, nHeads: 2, dFF: 128, maxSeqLen: 32, mup: { baseWidth: 16 } };
    for (const stop of [3, 18]) {
      const r = await train(small(dir, data, { name: `ratio${stop}`, model }), { stopAfterSteps: stop });
      const groups = readCheckpoint(r.files.latest).optimizerState.paramGroups;
      const metrics = readFileSync(r.files.metrics, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(groups.map((g) => g.lrScale)).toEqual([0.25, 1, 1]);
      // the lr of the last step taken, per group: schedule × lrScale
      const lr = groups[1].lr as number;
      expect(groups[0].lr).toBe(lr * 0.25);
      expect(groups[2].lr).toBe(lr);
      expect(lr).toBeLessThan(5e-3);
      if (stop === 18) expect(metrics.filter((m) => m.kind === 'train').pop().lr).toBeGreaterThan(lr); // still decaying
    }
  });

  it('a μP run resumes exactly', async () => {
    const { dir, data } = setup();
    const model = { dModel: 48, nLayers: 2, nHeads: 2, dFF: 96, maxSeqLen: 32, tieWeights: false, mup: { baseWidth: 16, zeroInitReadout: true, outputMultiplier: 2, weightDecay: 'independent' as const } };
    const full = await train(small(dir, data, { name: 'full', model, dropout: 0.1 }));
    const half = await train(small(dir, data, { name: 'split', model, dropout: 0.1 }), { stopAfterSteps: 13 });
    const rest = await train({ outDir: dir, name: 'split' }, { resume: true });
    expect([...half.trainLosses, ...rest.trainLosses]).toEqual(full.trainLosses);
    expect(rest.finalValLoss).toBe(full.finalValLoss);
  });

  it("lrSchedule 'constant': warmup then lr, minLr unused", async () => {
    expect(warmupConstantLr(0, { baseLr: 1, warmupSteps: 3 })).toBe(0.25);
    expect(warmupConstantLr(3, { baseLr: 1, warmupSteps: 3 })).toBe(1);
    expect(warmupConstantLr(1000, { baseLr: 1, warmupSteps: 0 })).toBe(1);
    expect(() => resolveTrainConfig({ lrSchedule: 'linear' as never })).toThrow(/lrSchedule must be 'cosine' or 'constant', got the string "linear"/);
    expect(() => resolveTrainConfig({ lr: 1e-4, minLr: 1e-3 })).toThrow(/minLr/);
    expect(resolveTrainConfig({ lr: 1e-4, minLr: 1e-3, lrSchedule: 'constant' }).lrSchedule).toBe('constant');
    expect(resolveTrainConfig({}).lrSchedule).toBe('cosine');
    const { dir, data } = setup();
    const r = await train(small(dir, data, { name: 'const', lrSchedule: 'constant', warmupSteps: 0, logInterval: 1, lr: 2e-3, model: { dModel: 32, nLayers: 2, nHeads: 2, dFF: 64, maxSeqLen: 32, mup: { baseWidth: 16 } } }));
    const lrs = readFileSync(r.files.metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'train').map((m) => m.lr);
    expect(lrs.length).toBe(30);
    expect(new Set(lrs)).toEqual(new Set([2e-3]));
    expect(readCheckpoint(r.files.latest).optimizerState.paramGroups.map((g) => g.lr)).toEqual([1e-3, 2e-3, 2e-3]);
  });
});
