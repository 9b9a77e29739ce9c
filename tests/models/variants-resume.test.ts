/**
 * Every architecture preset resumes exactly: N steps in one run equal N/2, stop, resume, N/2 —
 * the same losses at every step and the same final weights (the router statistics of an MoE, the
 * latent cache of MLA and the recurrent state of Mamba are not training state; parameters,
 * AdamW moments, data and dropout generators are).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

/** Each preset and the config key that makes it what it is. */
const PRESETS: [string, string][] = [
  ['nano-swa', 'slidingWindow'],
  ['nano-linear', 'attention'],
  ['nano-moe', 'moe'],
  ['nano-mla', 'mla'],
  ['nano-mamba', 'mamba'],
];

describe('exact resume of the architecture presets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-variants-'));
  const data = join(dir, 'text.txt');
  writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET:\nO Romeo, Romeo!\n\n'.repeat(30));
  for (const [preset, key] of PRESETS) {
    it(`${preset}: 6 steps = 3, stop, resume, 3`, async () => {
      const config = (name: string) => smallTrainConfig(dir, data, { name, preset, model: { dModel: 16, nLayers: 2, nHeads: 2, maxSeqLen: 32 }, blockSize: 16, maxSteps: 6, evalInterval: 3, sampleTokens: 0, dropout: 0.1 });
      const full = await train(config(`${preset}-full`));
      const variant = (full.config.model as unknown as Record<string, unknown>)[key];
      expect(variant !== null && variant !== 'softmax').toBe(true);
      const half = await train(config(`${preset}-split`), { stopAfterSteps: 3 });
      expect(half.step).toBe(3);
      const rest = await train({ outDir: dir, name: `${preset}-split` }, { resume: true });
      expect([...half.trainLosses, ...rest.trainLosses]).toEqual(full.trainLosses);
      expect(rest.finalValLoss).toBe(full.finalValLoss);
      const a = full.model.stateDict();
      const b = rest.model.stateDict();
      for (const name of Object.keys(a)) expect(b[name].toTypedArray(), name).toEqual(a[name].toTypedArray());
    }, 60_000);
  }
});
