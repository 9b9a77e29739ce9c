/**
 * In-place initialisers, like `torch.nn.init`. They write through `noGrad`, so they work on
 * parameters that require grad, and return the tensor they filled.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { rand, randn } from '../tensor/creation.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Fills `t` with samples from U(low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, generator: Generator = defaultGenerator): Tensor {
  if (!(high >= low)) throw new RangeError(`uniform_: expects low <= high, got low=${low}, high=${high}`);
  return noGrad(() => t.copy_(rand(t.shape, { generator }).mul(high - low).add(low)));
}

/** Fills `t` with samples from N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  if (!(std >= 0)) throw new RangeError(`normal_: std must be non-negative, got ${std}`);
  return noGrad(() => t.copy_(randn(t.shape, { generator }).mul(std).add(mean)));
}

export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/**
 * fanIn and fanOut of a weight, PyTorch's rule: [out, in, ...kernel] has
 * fanIn = in·kernel and fanOut = out·kernel.
 */
export function calculateFanInAndFanOut(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new Error(`calculateFanInAndFanOut: needs a tensor with at least 2 dimensions, got shape ${formatShape(t.shape)}`);
  const receptive = t.shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: t.shape[1] * receptive, fanOut: t.shape[0] * receptive };
}

/**
 * Kaiming (He) uniform for leaky-ReLU slope `a` over fan-in: U(−b, b) with
 * b = √(6 / ((1 + a²)·fanIn)). With a = √5 (nn.Linear's default) this is b = 1/√fanIn.
 */
export function kaimingUniform_(t: Tensor, a = 0, generator: Generator = defaultGenerator): Tensor {
  const { fanIn } = calculateFanInAndFanOut(t);
  const bound = fanIn === 0 ? 0 : Math.sqrt(6 / ((1 + a * a) * fanIn));
  return uniform_(t, -bound, bound, generator);
}

/** Xavier (Glorot) uniform: U(−b, b) with b = gain·√(6 / (fanIn + fanOut)). */
export function xavierUniform_(t: Tensor, gain = 1, generator: Generator = defaultGenerator): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const bound = fanIn + fanOut === 0 ? 0 : gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, generator);
}
