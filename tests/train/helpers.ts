/** The small model and short run the training-loop tests share (any field can be overridden). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

export function smallTrainConfig(dir: string, data: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return {
    outDir: dir,
    data,
    model: { dModel: 32, nLayers: 2, nHeads: 2, dFF: 64, maxSeqLen: 32 },
    batchSize: 4,
    blockSize: 32,
    maxSteps: 40,
    maxTime: null,
    warmupSteps: 5,
    lr: 5e-3,
    minLr: 5e-4,
    evalInterval: 10,
    evalIters: 2,
    logInterval: 5,
    sampleTokens: 20,
    ...extra,
  };
}

/** A finished 10-step run of the small model on a tiny corpus under `root`; returns its directory. */
export async function trainSmallRun(root: string): Promise<string> {
  const dir = join(root, 'source');
  const data = join(root, 'corpus.txt');
  writeFileSync(data, 'ROMEO:\nlove night light, sweet moon.\nJULIET:\nfair sun, death and night.\n'.repeat(60));
  await train(smallTrainConfig(dir, data, { name: 'run', maxSteps: 10, evalInterval: 5, sampleTokens: 0 }));
  return join(dir, 'run');
}
