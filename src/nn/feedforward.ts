/**
 * Position-wise feed-forward layers of a transformer block, and GLU.
 *
 *   FeedForward (GPT-2):   w2(act(w1 x))                 w1 [dFF, d], w2 [d, dFF]
 *   SwiGLU (Llama):        w2(silu(w1 x) ⊙ w3 x)         w1, w3 [dFF, d] (gate, up), w2 [d, dFF] (down)
 *
 * `w2` is the residual ("down") projection in both, which TransformerLM initialises with the
 * GPT-2 scaled std. Inputs [..., d] are flattened to 2-D before each projection (a view), so a
 * weight gradient is one matrix product over all tokens rather than one per batch element.
 */
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import * as F from './functional.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

/**
 * lin(x) for x [..., in]: kept as a public name, it is `lin.forward(x)`, which runs the one linear
 * op (ops/linear.ts) — one 2-D product [N, in]·Wᵀ with the bias fused into the GEMM, reshaped back
 * to [..., out], so the weight gradient is a single product over all tokens.
 */
export function project(lin: Linear, x: Tensor): Tensor {
  return lin.forward(x);
}

export type FeedForwardActivation = 'gelu' | 'gelu-tanh' | 'relu' | 'silu';

export interface FeedForwardOptions {
  /** Default 'gelu' (exact, as torch.nn.GELU and nanoGPT). */
  activation?: FeedForwardActivation;
  bias?: boolean;
  generator?: Generator;
}

/** The classic MLP block: w2(act(w1 x)). */
export class FeedForward extends Module {
  readonly activation: FeedForwardActivation;
  w1: Linear;
  w2: Linear;

  constructor(dModel: number, dFF: number, options: FeedForwardOptions = {}) {
    super();
    this.activation = options.activation ?? 'gelu';
    if (!['gelu', 'gelu-tanh', 'relu', 'silu'].includes(this.activation)) {
      throw new Error(`FeedForward: activation must be 'gelu', 'gelu-tanh', 'relu' or 'silu', got '${String(this.activation)}'`);
    }
    const lin = { bias: options.bias ?? true, generator: options.generator };
    this.w1 = new Linear(dModel, dFF, lin);
    this.w2 = new Linear(dFF, dModel, lin);
  }

  forward(x: Tensor): Tensor {
    const h = project(this.w1, x);
    let a: Tensor;
    switch (this.activation) {
      case 'gelu':
        a = F.gelu(h);
        break;
      case 'gelu-tanh':
        a = F.gelu(h, { approximate: 'tanh' });
        break;
      case 'relu':
        a = F.relu(h);
        break;
      case 'silu':
        a = F.silu(h);
        break;
    }
    return project(this.w2, a);
  }

  override extraRepr(): string {
    return `activation='${this.activation}'`;
  }
}

export interface SwiGLUOptions {
  bias?: boolean;
  generator?: Generator;
}

/** Llama's gated feed-forward: w2(silu(w1 x) ⊙ w3 x). */
export class SwiGLU extends Module {
  w1: Linear;
  w3: Linear;
  w2: Linear;

  constructor(dModel: number, dFF: number, options: SwiGLUOptions = {}) {
    super();
    const lin = { bias: options.bias ?? false, generator: options.generator };
    this.w1 = new Linear(dModel, dFF, lin);
    this.w3 = new Linear(dModel, dFF, lin);
    this.w2 = new Linear(dFF, dModel, lin);
  }

  forward(x: Tensor): Tensor {
    return project(this.w2, F.silu(project(this.w1, x)).mul(project(this.w3, x)));
  }
}

/** Gated linear unit (torch.nn.GLU): splits x in two halves a, b along `dim` and returns a ⊙ sigmoid(b). */
export class GLU extends Module {
  constructor(readonly dim = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    return glu(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

/** a ⊙ sigmoid(b) for the halves a, b of x along `dim` (torch.nn.functional.glu). */
export function glu(x: Tensor, dim = -1): Tensor {
  if (x.ndim === 0) throw new Error('glu: input must have at least one dimension');
  const d = dim < 0 ? dim + x.ndim : dim;
  if (d < 0 || d >= x.ndim) throw new RangeError(`glu: dim ${dim} is out of range for shape ${formatShape(x.shape)}`);
  const n = x.shape[d];
  if (n % 2 !== 0) throw new Error(`glu: halving dimension must be even, but dimension ${dim} of ${formatShape(x.shape)} is size ${n}`);
  return x.narrow(d, 0, n / 2).mul(x.narrow(d, n / 2, n / 2).sigmoid());
}
