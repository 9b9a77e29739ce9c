/**
 * Gradient clipping, torch.nn.utils.clip_grad_norm_ / clip_grad_value_: both scale or clamp the
 * `.grad` of the given parameters in place, between `backward()` and `optimizer.step()`.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { kernels } from '../backends/registry.js';
import { Tensor } from '../tensor/tensor.js';

export type NormType = number | 'inf';

export interface ClipGradNormOptions {
  /** Throw when the total norm is NaN or ±Infinity instead of scaling by it (torch's default: false). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales all gradients together so that their joint norm is at most `maxNorm`, and returns the
 * joint norm measured before clipping (the norm of the per-gradient norms, as in torch).
 * Parameters without a gradient are ignored; with none at all the norm is 0.
 */
export function clipGradNorm(
  parameters: Iterable<Tensor> | Tensor,
  maxNorm: number,
  normType: NormType = 2,
  options: ClipGradNormOptions = {},
): number {
  const p = normType === 'inf' ? Infinity : normType;
  if (typeof p !== 'number' || Number.isNaN(p) || p <= 0) {
    throw new Error(`clipGradNorm: invalid normType ${String(normType)} (expected a positive number, Infinity or 'inf')`);
  }
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm)) throw new Error(`clipGradNorm: invalid maxNorm ${maxNorm}`);
  const grads = gradsOf(parameters, 'clipGradNorm');
  if (grads.length === 0) return 0;

  // Norms accumulate in float64, then round to float32 where torch holds a float32 tensor, so the
  // returned norm and the scale factor are the ones PyTorch computes.
  let total: number;
  if (p === Infinity) {
    total = 0;
    for (const g of grads) {
      const { data, start, end } = elements(g);
      for (let i = start; i < end; i++) {
        const a = Math.abs(data[i]);
        // NaN must win, as in torch, so that errorIfNonfinite sees it.
        if (a > total || Number.isNaN(a)) total = a;
      }
    }
  } else {
    let sum = 0;
    for (const g of grads) {
      const { data, start, end } = elements(g);
      let s = 0;
      if (p === 2) s = sumOfSquares(data, start, end);
      else for (let i = start; i < end; i++) s += Math.abs(data[i]) ** p;
      sum += Math.fround(s ** (1 / p)) ** p;
    }
    total = sum ** (1 / p);
  }
  total = Math.fround(total);

  if (options.errorIfNonfinite && !Number.isFinite(total)) {
    throw new Error(
      `clipGradNorm: the total norm of order ${String(normType)} for gradients is non-finite (${total}), so it cannot be clipped. ` +
        'To scale the gradients by the non-finite norm anyway, leave errorIfNonfinite false.',
    );
  }
  // torch multiplies even when the factor clamps to 1, and lets NaN through (Math.min keeps NaN).
  const coef = Math.min(Math.fround(maxNorm / Math.fround(total + 1e-6)), 1);
  noGrad(() => {
    for (const g of grads) scaleInPlace(g, coef);
  });
  return total;
}

/**
 * Σ x² in float64 with four running sums: one sum is a chain of dependent additions (about 4
 * cycles each), which made this pass ~1 ms of a tiny training step; four chains run in parallel.
 * The order changes only the last bits of the double, which the float32 rounding of each norm
 * (as torch holds it) almost always absorbs; torch's own reduction order differs from both.
 */
function sumOfSquares(data: Float32Array, start: number, end: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const a = data[i];
    const b = data[i + 1];
    const c = data[i + 2];
    const d = data[i + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < end; i++) s0 += data[i] * data[i];
  return s0 + s1 + (s2 + s3);
}

/** Clamps every gradient element to [-clipValue, clipValue] in place. */
export function clipGradValue(parameters: Iterable<Tensor> | Tensor, clipValue: number): void {
  if (typeof clipValue !== 'number' || !(clipValue >= 0)) throw new Error(`clipGradValue: invalid clipValue ${clipValue} (expected a number >= 0)`);
  noGrad(() => {
    for (const g of gradsOf(parameters, 'clipGradValue')) {
      if (g.isContiguous) {
        const { data, start, end } = elements(g);
        for (let i = start; i < end; i++) data[i] = clamp(data[i], clipValue);
      } else {
        g.copy_(g.clamp(-clipValue, clipValue));
      }
    }
  });
}

function clamp(x: number, c: number): number {
  return x < -c ? -c : x > c ? c : x; // NaN falls through unchanged, as in torch.clamp
}

function gradsOf(parameters: Iterable<Tensor> | Tensor, op: string): Tensor[] {
  const params = parameters instanceof Tensor ? [parameters] : [...parameters];
  const grads: Tensor[] = [];
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new TypeError(`${op}: parameter ${i} is not a Tensor`);
    if (p.grad === null) return;
    if (p.grad.dtype !== 'float32') throw new TypeError(`${op}: gradient of parameter ${i} has dtype ${p.grad.dtype}, expected float32`);
    grads.push(p.grad);
  });
  return grads;
}

/** The elements of a gradient as a range of an array: its own storage when contiguous, else a copy. */
function elements(g: Tensor): { data: Float32Array; start: number; end: number } {
  const c = g.isContiguous ? g : g.contiguous();
  return { data: c.storage as Float32Array, start: c.offset, end: c.offset + c.size };
}

function scaleInPlace(g: Tensor, coef: number): void {
  if (g.isContiguous) {
    // Through the multiply kernel (a training step runs this over every gradient): coef is a
    // float32, so each product rounds once to the same float32 as the JS loop `data[i] *= coef`.
    const { data, start, end } = elements(g);
    const view = data.subarray(start, end);
    kernels.binary('mul', [view.length], { data: view, offset: 0, strides: [1] }, { data: Float32Array.of(coef), offset: 0, strides: [0] }, view);
  } else {
    g.mul_(coef);
  }
}
