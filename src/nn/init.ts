/**
 * In-place initialisers, like `torch.nn.init`. They write through `noGrad`, so they work on
 * parameters that require grad, and return the tensor they filled.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { rand, randn } from '../tensor/creation.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Depth of skipInit calls in progress: the fills below leave tensors as they are while it is above 0. */
let skipping = 0;

/**
 * Builds something (a model) without running the initialisers — uniform_, normal_, the Kaiming and
 * Xavier fills, constant_ / zeros_ / ones_ — so its weights stay as allocated (zeros), as Hugging
 * Face's `no_init_weights()` does when a checkpoint will overwrite them anyway: a 1.1 B-parameter
 * model's random init takes about a minute on one core. Only for models whose every parameter and
 * persistent buffer is loaded afterwards (`loadRun` checks that the checkpoint names them all).
 */
export function skipInit<T>(build: () => T): T {
  skipping++;
  try {
    return build();
  } finally {
    skipping--;
  }
}

/**
 * t ← sample()·scale + shift, element by element in storage order, with the float32 roundings of
 * `rand(shape).mul(scale).add(shift)` (so the same values, bit for bit) but written straight into a
 * contiguous float32 tensor: the tensor expression allocates three temporaries the size of `t`,
 * which for a billion-parameter model's init left gigabytes of garbage behind (peak memory 1.29×
 * the weights when sampling from a checkpoint, 1.03× without). Other tensors take that expression.
 */
function fillAffine_(t: Tensor, sample: () => number, scale: number, shift: number, fallback: () => Tensor): Tensor {
  if (skipping > 0) return t;
  return noGrad(() => {
    if (t.dtype !== 'float32' || !t.isContiguous) return t.copy_(fallback().mul(scale).add(shift));
    const f = Math.fround;
    const s = f(scale);
    const b = f(shift);
    const data = t.storage as Float32Array;
    for (let i = t.offset, end = t.offset + t.size; i < end; i++) data[i] = f(f(f(sample()) * s) + b);
    return t;
  });
}

/** Fills `t` with samples from U(low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, generator: Generator = defaultGenerator): Tensor {
  if (!(high >= low)) throw new RangeError(`uniform_: expects low <= high, got low=${low}, high=${high}`);
  return fillAffine_(t, () => generator.random(), high - low, low, () => rand(t.shape, { generator }));
}

/** Fills `t` with samples from N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  if (!(std >= 0)) throw new RangeError(`normal_: std must be non-negative, got ${std}`);
  return fillAffine_(t, () => generator.normal(), std, mean, () => randn(t.shape, { generator }));
}

export function constant_(t: Tensor, value: number): Tensor {
  if (skipping > 0) return t;
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
