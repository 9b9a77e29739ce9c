/**
 * Users never call dispose(): tensors are garbage-collected typed arrays. This runs a training
 * loop for many steps and checks that heap and off-heap (array buffer) memory stay flat after
 * warm-up, with explicit collections so the figures measure live memory, not GC timing.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('memory', () => {
  it('a long training loop keeps memory flat (no dispose needed)', () => {
    T.manualSeed(0);
    const model = new T.nn.MLP([32, 256, 256, 10], { activation: 'gelu' });
    const opt = new T.optim.AdamW(model.parameters(), { lr: 1e-3 });
    const x = T.randn([64, 32]);
    const y = T.randint(0, 10, [64]);
    const step = () => {
      const loss = T.F.crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      T.optim.clipGradNorm(model.parameters(), 1);
      opt.step();
    };
    for (let i = 0; i < 50; i++) step(); // warm-up: optimizer state, JIT, pools
    const samples: number[] = [];
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 100; i++) step();
      samples.push(liveBytes());
    }
    // One step allocates several MB of activations and gradients; 600 steps would retain
    // gigabytes if anything leaked. Allow 2 MB of drift for JIT code and V8 bookkeeping.
    const drift = Math.max(...samples.slice(1)) - samples[0];
    expect(drift).toBeLessThan(2 * 1024 * 1024);
  });
});
