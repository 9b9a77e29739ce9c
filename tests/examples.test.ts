import { describe, expect, it } from 'vitest';
import { trainRegression } from '../examples/regression/main.js';
import { trainXor } from '../examples/xor/main.js';

const quiet = () => undefined;

describe('examples', () => {
  it('xor: the MLP separates the quadrants (100% training accuracy)', () => {
    const r = trainXor({ log: quiet });
    expect(r.trainAccuracy).toBe(1);
    expect(r.testAccuracy).toBeGreaterThan(0.95);
    expect(r.finalLoss).toBeLessThan(0.01);
  });
  it('regression: the MLP fits the function down to the noise level', () => {
    const r = trainRegression({ steps: 1000, log: quiet });
    expect(r.trainMse).toBeLessThan(r.noiseVariance * 1.5);
    expect(r.cleanMse).toBeLessThan(0.01);
  });
});
