/**
 * XOR-style 2-D classification: points in [-1, 1]², class 1 where x·y > 0 (the first and third
 * quadrants), else class 0. No straight line separates the classes, so a linear model is stuck
 * near 50%; a small MLP reaches 100%.
 *
 *   npm run example:xor
 */
import { Generator, manualSeed, nn, optim, rand, tensor, type Tensor } from '../../src/index.js';

export interface XorResult {
  finalLoss: number;
  /** On the 400 training points. */
  trainAccuracy: number;
  /** On 400 fresh points; points right next to an axis are the only ones it can miss. */
  testAccuracy: number;
}

function makeData(n: number, generator: Generator): { x: Tensor; y: Tensor } {
  const x = rand([n, 2], { generator }).mul(2).sub(1);
  const points = x.toArray();
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = points[2 * i] * points[2 * i + 1] > 0 ? 1 : 0;
  return { x, y: tensor(labels) };
}

function accuracy(model: nn.Module, x: Tensor, y: Tensor): number {
  const predicted = model.forward(x).argmax(1);
  return predicted.eq(y).float().mean().item();
}

export function trainXor(options: { steps?: number; log?: (line: string) => void } = {}): XorResult {
  const { steps = 500, log = console.log } = options;
  manualSeed(0);
  const generator = new Generator(1);
  const train = makeData(400, generator);
  const test = makeData(400, generator);
  const model = new nn.MLP([2, 16, 16, 2], { activation: 'tanh' });
  const optimizer = new optim.Adam(model.parameters(), { lr: 0.03 });
  let loss = Infinity;
  for (let step = 1; step <= steps; step++) {
    const l = nn.functional.crossEntropy(model.forward(train.x), train.y);
    optimizer.zeroGrad();
    l.backward();
    optimizer.step();
    loss = l.item();
    if (step % 50 === 0 || step === 1) log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  train accuracy ${(100 * accuracy(model, train.x, train.y)).toFixed(1)}%`);
  }
  model.eval();
  const trainAccuracy = accuracy(model, train.x, train.y);
  const testAccuracy = accuracy(model, test.x, test.y);
  log(`final loss ${loss.toFixed(4)}, training accuracy ${(100 * trainAccuracy).toFixed(1)}%, held-out accuracy ${(100 * testAccuracy).toFixed(1)}%`);
  return { finalLoss: loss, trainAccuracy, testAccuracy };
}

if (import.meta.url === `file://${process.argv[1]}`) trainXor();
