/**
 * Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
 * Alg. 2 and §3.4): the selective state-space mixer, the residual block a 'mamba' layer of
 * TransformerLM is made of, and its recurrent decoding state.
 *
 *   u [B, L, d] ─ inProj ─┬─ x ─ conv (causal, depthwise) ─ SiLU ─ xc ─┬─ xProj ─ Δ_low, B, C
 *                         │                                             │  Δ = softplus(dtProj(Δ_low))
 *                         │                                             └─ selectiveScan(xc, Δ, A, B, C, D) ─ y
 *                         └─ z ─ SiLU ──────────────────────────────────────────────────────── ⊙ ─ outProj ─ [B, L, d]
 *
 * with A = −exp(aLog) [Din, N] (negative, so every decay exp(Δ·A) is in (0, 1)). The block is the
 * paper's pre-norm residual x + mixer(norm(x)), with no feed-forward sublayer.
 *
 * Parameter names (state dict, under layers.{i}.):
 *   norm.{weight,bias}, mixer.inProj.{weight,bias}, mixer.conv.{weight [Din, dConv], bias [Din]},
 *   mixer.xProj.weight [dtRank + 2N, Din], mixer.dtProj.{weight [Din, dtRank], bias [Din]},
 *   mixer.aLog [Din, N], mixer.dSkip [Din] (the paper's D), mixer.outProj.{weight,bias}.
 * inProj/outProj (and the LayerNorm) have biases with the model's `bias`; conv and dtProj always
 * have one and xProj never does (the reference implementation's choices).
 */
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { causalConv1d, selectiveScan, softplus } from '../ops/selective-scan.js';
import { tensor, zeros } from '../tensor/creation.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { KVCacheLayer } from './attention.js';
import * as F from './functional.js';
import { uniform_ } from './init.js';
import { Dropout, Linear } from './layers.js';
import { Module, parameter } from './module.js';
import type { LayerNorm, RMSNorm } from './normalization.js';
import { makeNorm, type NormKind } from './transformer.js';

// ---- recurrent state -----------------------------------------------------------------------------

/**
 * One Mamba layer's decoding state: conv [batch, Din, dConv − 1] (the last dConv − 1 inputs of the
 * convolution, oldest first) and ssm [batch, Din, N] (h after the last token), both constant in
 * size whatever the length. A KVCacheLayer so that KVCache (length, reset, maxLen) holds attention
 * and Mamba layers alike; it keeps no keys or values (slots 0), and the attention methods refuse
 * it. `maxLen` still bounds the positions (learned position tables).
 */
export class MambaCache extends KVCacheLayer {
  readonly conv: Tensor;
  readonly ssm: Tensor;

  constructor(
    batch: number,
    maxLen: number,
    readonly dInner: number,
    readonly dConv: number,
    readonly dState: number,
  ) {
    // A one-element 'linear' base: slots 0, no key/value memory.
    super(batch, 1, maxLen, 1, null, 'linear');
    for (const [what, n] of [['dInner', dInner], ['dConv', dConv], ['dState', dState]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`MambaCache: ${what} must be a positive integer, got ${n}`);
    }
    this.conv = zeros([batch, dInner, dConv - 1]);
    this.ssm = zeros([batch, dInner, dState]);
  }

  /** Bytes of state per sequence (fp32): Din·(dConv − 1 + N)·4, whatever the length. */
  get bytesPerSequence(): number {
    return 4 * this.dInner * (this.dConv - 1 + this.dState);
  }

  override reset(): void {
    super.reset();
    this.conv.storage.fill(0);
    this.ssm.storage.fill(0);
  }

  override absorb(): void {
    throw new Error('MambaCache: a Mamba layer state absorbs no attention keys (use MambaMixer.forward with the cache)');
  }

  override append(): never {
    throw new Error('MambaCache: a Mamba layer state keeps no keys and values (use MambaMixer.forward with the cache)');
  }

  /** Stores the next state after t tokens and advances `length`. */
  advance(conv: Tensor, ssm: Tensor, t: number): void {
    if (this.length + t > this.maxLen) throw new RangeError(`MambaCache: ${t} new tokens after ${this.length} cached ones exceed the cache length ${this.maxLen}`);
    noGrad(() => {
      this.conv.copy_(conv);
      this.ssm.copy_(ssm);
    });
    this.length += t;
  }
}

// ---- the mixer -----------------------------------------------------------------------------------

export interface MambaMixerOptions {
  /** N, the state size per channel (default 16). */
  dState?: number;
  /** Kernel width of the causal depthwise convolution (default 4). */
  dConv?: number;
  /** Din = expand·dModel (default 2). */
  expand?: number;
  /** Rank of Δ's projection (default ⌈dModel/16⌉). */
  dtRank?: number;
  /** Biases on inProj and outProj (default false, as in the reference implementation). */
  bias?: boolean;
  /** Draws the initial weights. */
  generator?: Generator;
}

/** Δ's initial range: softplus(dtProj.bias) is log-uniform in [DT_MIN, DT_MAX] (the reference's dt_min/dt_max). */
export const DT_MIN = 1e-3;
export const DT_MAX = 1e-1;
/** The reference's dt_init_floor: Δ never starts below it. */
const DT_FLOOR = 1e-4;

/** Mamba's selective SSM mixer (Alg. 2); forward(u [B, L, dModel]) → [B, L, dModel]. */
export class MambaMixer extends Module<[Tensor, MambaCache?], Tensor> {
  readonly dModel: number;
  readonly dInner: number;
  readonly dState: number;
  readonly dConv: number;
  readonly dtRank: number;
  inProj: Linear;
  conv: CausalConv1d;
  xProj: Linear;
  dtProj: Linear;
  /** log(−A) [Din, N]: A = −exp(aLog) stays negative whatever the optimiser does. */
  aLog: Tensor;
  /** The paper's D [Din]: the skip connection y += D ⊙ x. */
  dSkip: Tensor;
  outProj: Linear;

  constructor(dModel: number, options: MambaMixerOptions = {}) {
    super();
    const dState = options.dState ?? 16;
    const dConv = options.dConv ?? 4;
    const expand = options.expand ?? 2;
    const dtRank = options.dtRank ?? Math.ceil(dModel / 16);
    for (const [what, n] of [['dModel', dModel], ['dState', dState], ['dConv', dConv], ['expand', expand], ['dtRank', dtRank]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`MambaMixer: ${what} must be a positive integer, got ${n}`);
    }
    const gen = options.generator ?? defaultGenerator;
    const bias = options.bias ?? false;
    this.dModel = dModel;
    this.dInner = expand * dModel;
    this.dState = dState;
    this.dConv = dConv;
    this.dtRank = dtRank;
    const din = this.dInner;
    this.inProj = new Linear(dModel, 2 * din, { bias, generator: gen });
    this.conv = new CausalConv1d(din, dConv, { generator: gen });
    this.xProj = new Linear(din, dtRank + 2 * dState, { bias: false, generator: gen });
    this.dtProj = new Linear(dtRank, din, { bias: true, generator: gen });
    this.aLog = parameter(zeros([din, dState]));
    this.dSkip = parameter(zeros([din]));
    this.outProj = new Linear(din, dModel, { bias, generator: gen });
    this.resetSsmParameters(gen);
  }

  /**
   * The paper's SSM initialisation (the reference's dt_init 'random', A 'S4D-real'):
   * dtProj.weight ~ U(±dtRank^−½); dtProj.bias = softplus⁻¹(Δ₀) with Δ₀ log-uniform in
   * [1e−3, 1e−1] (floored at 1e−4), so that Δ starts at time scales from 10 to 1000 steps;
   * aLog[d, n] = log(n + 1), so A_d,n = −(n + 1); D = 1. TransformerLM draws its Linear weights
   * after construction and then calls this again, so these survive its GPT-2 init.
   */
  resetSsmParameters(generator: Generator = defaultGenerator): void {
    const din = this.dInner;
    const bound = this.dtRank ** -0.5;
    uniform_(this.dtProj.weight, -bound, bound, generator);
    const bias = this.dtProj.bias as Tensor;
    uniform_(bias, 0, 1, generator);
    const b = bias.storage as Float32Array;
    for (let i = 0; i < din; i++) {
      const dt = Math.max(DT_FLOOR, Math.exp(b[i] * (Math.log(DT_MAX) - Math.log(DT_MIN)) + Math.log(DT_MIN)));
      // softplus⁻¹(dt) = dt + log(1 − e^−dt) = log(e^dt − 1).
      b[i] = dt + Math.log(-Math.expm1(-dt));
    }
    const a = this.aLog.storage as Float32Array;
    for (let d = 0; d < din; d++) for (let n = 0; n < this.dState; n++) a[d * this.dState + n] = Math.log(n + 1);
    (this.dSkip.storage as Float32Array).fill(1);
  }

  /** An empty decoding state for `batch` sequences of up to `maxLen` tokens. */
  createCache(batch: number, maxLen: number): MambaCache {
    return new MambaCache(batch, maxLen, this.dInner, this.dConv, this.dState);
  }

  /**
   * u [B, L, dModel] → [B, L, dModel]. With a cache the tokens continue its sequence (the conv and
   * SSM states take the place of the zero history) and the cache advances; inference only.
   */
  forward(u: Tensor, cache?: MambaCache): Tensor {
    if (u.ndim !== 3 || u.shape[2] !== this.dModel) throw new Error(`MambaMixer: input must be [B, L, ${this.dModel}], got ${formatShape(u.shape)}`);
    const [b, l] = u.shape;
    const { dInner: din, dState: n, dtRank: r, dConv: k } = this;
    if (cache) {
      if (isGradEnabled() && (u.requiresGrad || this.inProj.weight.requiresGrad)) throw new Error('MambaMixer: decoding with a cache is inference only; run it inside noGrad()');
      if (cache.batch !== b || cache.dInner !== din || cache.dConv !== k || cache.dState !== n) {
        throw new Error(`MambaMixer: cache [batch ${cache.batch}, Din ${cache.dInner}, dConv ${cache.dConv}, N ${cache.dState}] does not fit input batch ${b} with Din ${din}, dConv ${k}, N ${n}`);
      }
    }
    const xz = this.inProj.forward(u);
    const x = xz.narrow(2, 0, din);
    const z = xz.narrow(2, din, din);
    const xc = F.silu(this.conv.forward(x, cache ? cache.conv : null));
    const dbc = this.xProj.forward(xc);
    const delta = softplus(this.dtProj.forward(dbc.narrow(2, 0, r)));
    const A = this.aLog.exp().neg();
    const { y, finalState } = selectiveScan(xc, delta, A, dbc.narrow(2, r, n).contiguous(), dbc.narrow(2, r + n, n).contiguous(), this.dSkip, { initialState: cache ? cache.ssm : null });
    if (cache) cache.advance(nextConvState(cache.conv, x), finalState, l);
    return this.outProj.forward(y.mul(F.silu(z)));
  }

  override extraRepr(): string {
    return `dModel=${this.dModel}, dInner=${this.dInner}, dState=${this.dState}, dConv=${this.dConv}, dtRank=${this.dtRank}`;
  }
}

/** The last dConv − 1 conv inputs after x [B, L, Din]: the tail of [state, x] over time, as [B, Din, dConv − 1]. */
function nextConvState(state: Tensor, x: Tensor): Tensor {
  const keep = state.shape[2];
  if (keep === 0) return state;
  const [b, l, din] = x.shape;
  const past = state.toTypedArray() as Float32Array;
  const xs = x.contiguous().toTypedArray() as Float32Array;
  const next = new Float32Array(b * din * keep);
  for (let r = 0; r < b; r++) {
    for (let d = 0; d < din; d++) {
      for (let j = 0; j < keep; j++) {
        // Slot j holds time l − keep + j (negative: still the old state's slot keep + that).
        const s = l - keep + j;
        next[(r * din + d) * keep + j] = s >= 0 ? xs[(r * l + s) * din + d] : past[(r * din + d) * keep + keep + s];
      }
    }
  }
  return tensor(next, { shape: [b, din, keep] });
}

// ---- the convolution module ------------------------------------------------------------------------

/** Causal depthwise Conv1d over [B, L, channels] (ops/selective-scan.ts causalConv1d); weight [channels, kernel], bias [channels]. */
export class CausalConv1d extends Module<[Tensor, (Tensor | null)?], Tensor> {
  weight: Tensor;
  bias: Tensor;

  constructor(
    readonly channels: number,
    readonly kernelSize: number,
    options: { generator?: Generator } = {},
  ) {
    super();
    this.weight = parameter(zeros([channels, kernelSize]));
    this.bias = parameter(zeros([channels]));
    // torch's Conv1d default: U(±1/√fan_in) with fan_in = kernelSize (one input channel per group).
    const bound = 1 / Math.sqrt(kernelSize);
    uniform_(this.weight, -bound, bound, options.generator);
    uniform_(this.bias, -bound, bound, options.generator);
  }

  /** x [B, L, channels]; `state` [B, channels, kernelSize − 1]: the inputs before x (decoding). */
  forward(x: Tensor, state: Tensor | null = null): Tensor {
    return causalConv1d(x, this.weight, this.bias, { state });
  }

  override extraRepr(): string {
    return `channels=${this.channels}, kernelSize=${this.kernelSize}`;
  }
}

// ---- the block -----------------------------------------------------------------------------------

export interface MambaBlockOptions extends MambaMixerOptions {
  /** Default 'layer'. */
  norm?: NormKind;
  /** Norm eps; default 1e-5 for LayerNorm, 1e-6 for RMSNorm. */
  normEps?: number;
  /** Dropout on the residual branch (training only) — default 0. */
  dropout?: number;
  dropoutGenerator?: Generator;
}

/** The paper's residual block: x + drop(mixer(norm(x))) (pre-norm, no feed-forward sublayer). */
export class MambaBlock extends Module<[Tensor, MambaCache?], Tensor> {
  norm: LayerNorm | RMSNorm;
  mixer: MambaMixer;
  dropout: Dropout;

  constructor(dModel: number, options: MambaBlockOptions = {}) {
    super();
    this.norm = makeNorm(options.norm ?? 'layer', dModel, { bias: options.bias ?? false, eps: options.normEps });
    this.mixer = new MambaMixer(dModel, options);
    this.dropout = new Dropout(options.dropout ?? 0, { generator: options.dropoutGenerator });
  }

  forward(x: Tensor, cache?: MambaCache): Tensor {
    return x.add(this.dropout.forward(this.mixer.forward(this.norm.forward(x), cache)));
  }
}
