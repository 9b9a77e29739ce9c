/**
 * Regression: an MLP fits y = sin(3x) + 0.3·x² + noise on [-2, 2] with the mean squared error,
 * then reports the final MSE on the training points and against the noise-free function.
 *
 *   npm run example:regression
 */
import { Generator, linspace, manualSeed, nn, optim, randn, type Tensor } from '../../src/index.js';

export interface RegressionResult {
  trainMse: number;
  /** MSE against the noise-free function on a dense grid: how well the function was learned. */
  cleanMse: number;
  noiseVariance: number;
}

const NOISE_STD = 0.1;

function target(x: Tensor): Tensor {
  return x.mul(3).sin().add(x.square().mul(0.3));
}

export function trainRegression(options: { steps?: number; log?: (line: string) => void } = {}): RegressionResult {
  const { steps = 2000, log = console.log } = options;
  manualSeed(0);
  const generator = new Generator(2);
  const x = linspace(-2, 2, 200).unsqueeze(1);
  const y = target(x).add(randn([200, 1], { generator }).mul(NOISE_STD));
  const model = new nn.MLP([1, 64, 64, 1], { activation: 'tanh' });
  const optimizer = new optim.Adam(model.parameters(), { lr: 0.01 });
  const schedule = new optim.CosineAnnealingLR(optimizer, { tMax: steps, etaMin: 1e-4 });
  let mse = Infinity;
  for (let step = 1; step <= steps; step++) {
    const loss = nn.functional.mseLoss(model.forward(x), y);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    schedule.step();
    mse = loss.item();
    if (step % 200 === 0 || step === 1) log(`step ${String(step).padStart(5)}  mse ${mse.toFixed(5)}`);
  }
  const grid = linspace(-2, 2, 1000).unsqueeze(1);
  const cleanMse = nn.functional.mseLoss(model.forward(grid), target(grid)).item();
  log(`final training MSE ${mse.toFixed(5)} (noise variance ${(NOISE_STD ** 2).toFixed(5)}); MSE vs the noise-free function ${cleanMse.toFixed(5)}`);
  return { trainMse: mse, cleanMse, noiseVariance: NOISE_STD ** 2 };
}

if (import.meta.url === `file://${process.argv[1]}`) trainRegression();
