import { describe, expect, it } from 'vitest';
import { perceptron, runPerceptronExamples } from '../examples/perceptron/main.js';
import { tensor } from '../src/index.js';
import { trainRegression } from '../examples/regression/main.js';
import { trainXor } from '../examples/xor/main.js';

const quiet = () => undefined;

describe('examples', () => {
  it('perceptron: converges on separable data within Novikoff\'s bound, and never on XOR', () => {
    const { separable, xor } = runPerceptronExamples(quiet);
    expect(separable.converged).toBe(true);
    expect(separable.accuracy).toBe(1);
    expect(separable.updates).toBeGreaterThan(0);
    expect(separable.updates).toBeLessThanOrEqual(separable.bound);
    expect(xor.converged).toBe(false);
    // No line gets all four XOR points right; three of four is the most.
    expect(xor.bestAccuracy).toBeLessThanOrEqual(0.75);
    expect(xor.updates).toBeGreaterThanOrEqual(xor.epochs);
    // The rule itself: one wrong point, one update of +y·x (bias folded in).
    const one = perceptron({ x: tensor([[0, 1]]), y: Int32Array.from([1]) }, { maxEpochs: 1 });
    expect(one.weights).toEqual([0, 1, 1]);
  });

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
