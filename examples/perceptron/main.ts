/**
 * Rosenblatt's perceptron (1958), the first learning rule of the tutorial TensorLM follows: a
 * linear classifier sign(w·x + b) and the update "when a point is wrong, add it (times its label)
 * to the weights". On linearly separable data it stops after a finite number of updates — at most
 * (R/γ)², where R bounds the points' norm and γ is the margin of a separating line (Novikoff 1962;
 * the bias is folded into w by a constant input of 1, so R counts it) — and on XOR it never stops:
 * no line puts (0,0), (1,1) on one side and (0,1), (1,0) on the other, so some point is always
 * wrong. That is the motivation for the hidden layer of examples/xor.
 *
 *   npm run example:perceptron
 */
import { Generator, tensor, type Tensor } from '../../src/index.js';

export interface PerceptronResult {
  /** Whether an epoch went by without a mistake. */
  converged: boolean;
  /** Updates (mistakes) made in all. */
  updates: number;
  /** Epochs run (the last one without a mistake when converged). */
  epochs: number;
  /** Training accuracy of the final weights. */
  accuracy: number;
  /** The best training accuracy any epoch's weights reached. */
  bestAccuracy: number;
  /** [w1, w2, b]. */
  weights: number[];
}

/** Labels are ±1; `x` is [n, 2]. */
export interface Dataset {
  x: Tensor;
  y: Int32Array;
}

/** The points with a constant 1 appended: [n, 3], so the bias is the third weight. */
function withBias(x: Tensor): Tensor {
  const n = x.shape[0];
  const values = x.toArray();
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) out.set([values[2 * i], values[2 * i + 1], 1], 3 * i);
  return tensor(out, { shape: [n, 3] });
}

function accuracyOf(points: Tensor, y: Int32Array, w: Float32Array): number {
  // One matrix-vector product for all the points' scores.
  const scores = points.matmul(tensor(w, { shape: [3, 1] })).toArray();
  let right = 0;
  for (let i = 0; i < y.length; i++) if ((scores[i] > 0 ? 1 : -1) === y[i]) right++;
  return right / y.length;
}

/** Rosenblatt's rule: sweep the points in order, w ← w + lr·y·x for each misclassified one (a score of 0 counts as wrong). */
export function perceptron(data: Dataset, options: { maxEpochs?: number; lr?: number } = {}): PerceptronResult {
  const { maxEpochs = 100, lr = 1 } = options;
  const points = withBias(data.x);
  const rows = points.toArray();
  const w = new Float32Array(3);
  let updates = 0;
  let bestAccuracy = 0;
  for (let epoch = 1; epoch <= maxEpochs; epoch++) {
    let mistakes = 0;
    for (let i = 0; i < data.y.length; i++) {
      const score = w[0] * rows[3 * i] + w[1] * rows[3 * i + 1] + w[2] * rows[3 * i + 2];
      if (data.y[i] * score > 0) continue;
      for (let k = 0; k < 3; k++) w[k] += lr * data.y[i] * rows[3 * i + k];
      mistakes++;
      updates++;
    }
    bestAccuracy = Math.max(bestAccuracy, accuracyOf(points, data.y, w));
    if (mistakes === 0) return { converged: true, updates, epochs: epoch, accuracy: accuracyOf(points, data.y, w), bestAccuracy, weights: [...w] };
  }
  return { converged: false, updates, epochs: maxEpochs, accuracy: accuracyOf(points, data.y, w), bestAccuracy, weights: [...w] };
}

/**
 * `n` points in [-1, 1]² labelled by the side of the line x₁ + 2x₂ = 0.3 they are on, keeping
 * only those at distance ≥ `margin` from it: separable with margin γ ≥ `margin` (in the
 * bias-augmented space the margin is measured for the unit vector of (1, 2, −0.3)).
 */
export function separableData(n: number, margin: number, generator: Generator): Dataset & { gamma: number; radius: number } {
  const normal = [1, 2, -0.3];
  const norm = Math.hypot(...normal);
  const xs: number[] = [];
  const y = new Int32Array(n);
  let gamma = Infinity;
  let radius = 0;
  for (let i = 0; i < n; ) {
    const p = [2 * generator.random() - 1, 2 * generator.random() - 1];
    const distance = (normal[0] * p[0] + normal[1] * p[1] + normal[2]) / norm;
    if (Math.abs(distance) < margin) continue;
    xs.push(p[0], p[1]);
    y[i] = distance > 0 ? 1 : -1;
    gamma = Math.min(gamma, Math.abs(distance));
    radius = Math.max(radius, Math.hypot(p[0], p[1], 1));
    i++;
  }
  return { x: tensor(Float32Array.from(xs), { shape: [n, 2] }), y, gamma, radius };
}

/** The four XOR points: (0,0) and (1,1) are −1, (0,1) and (1,0) are +1. */
export function xorData(): Dataset {
  return { x: tensor([[0, 0], [0, 1], [1, 0], [1, 1]]), y: Int32Array.from([-1, 1, 1, -1]) };
}

export function runPerceptronExamples(log: (line: string) => void = console.log): { separable: PerceptronResult & { bound: number }; xor: PerceptronResult } {
  const data = separableData(200, 0.05, new Generator(0));
  const bound = (data.radius / data.gamma) ** 2;
  const separable = { ...perceptron(data, { maxEpochs: 1000 }), bound };
  log(`separable (200 points, margin γ = ${data.gamma.toFixed(3)}, R = ${data.radius.toFixed(3)}): ${separable.converged ? 'converged' : 'did not converge'} after ${separable.updates} updates in ${separable.epochs} epochs (Novikoff's bound (R/γ)² = ${bound.toFixed(0)}), training accuracy ${(100 * separable.accuracy).toFixed(1)}%`);
  const xor = perceptron(xorData(), { maxEpochs: 1000 });
  log(`XOR (4 points): ${xor.converged ? 'converged' : 'no epoch without a mistake'} in ${xor.epochs} epochs, ${xor.updates} updates; best accuracy of any epoch ${(100 * xor.bestAccuracy).toFixed(0)}% — no line separates XOR (see examples/xor for the MLP that does)`);
  return { separable, xor };
}

if (import.meta.url === `file://${process.argv[1]}`) runPerceptronExamples();
