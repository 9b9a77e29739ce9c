/** The small model and short run the training-loop tests share (any field can be overridden). */
import type { TrainConfig } from '../../src/train/config.js';

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
