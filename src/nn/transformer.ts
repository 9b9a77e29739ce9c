/**
 * A transformer decoder block: self-attention and a feed-forward layer, each wrapped in a residual
 * connection with a normalisation.
 *
 *   pre-norm (GPT-2, Llama; default):  x = x + drop(attn(attnNorm(x)));  x = x + drop(ffn(ffnNorm(x)))
 *   post-norm (original Transformer):  x = attnNorm(x + drop(attn(x)));  x = ffnNorm(x + drop(ffn(x)))
 */
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention, type AttentionForwardOptions } from './attention.js';
import { FeedForward, SwiGLU } from './feedforward.js';
import { Dropout } from './layers.js';
import { MultiHeadLatentAttention, type MlaConfig } from './mla.js';
import { Module } from './module.js';
import { MixtureOfExperts, type MixtureOfExpertsOptions } from './moe.js';
import { LayerNorm, RMSNorm } from './normalization.js';
import type { RotaryEmbedding } from './positional.js';

export type NormKind = 'layer' | 'rms';
export type MlpKind = 'gelu' | 'swiglu';
export type NormPlacement = 'pre' | 'post';

export interface TransformerBlockOptions {
  dModel: number;
  nHeads: number;
  /** Default nHeads (MHA). */
  nKvHeads?: number;
  /** Default 4·dModel. */
  dFF?: number;
  /** Default 'layer'. */
  norm?: NormKind;
  /** Default 'gelu'. */
  mlp?: MlpKind;
  /** Biases in the projections and LayerNorms — default true. */
  bias?: boolean;
  /** Dropout on attention probabilities and on both residual branches — default 0. */
  dropout?: number;
  /** Norm eps; default 1e-5 for LayerNorm, 1e-6 for RMSNorm. */
  normEps?: number;
  /** Default 'pre'. */
  normPlacement?: NormPlacement;
  causal?: boolean;
  rope?: RotaryEmbedding | null;
  /** Multiplier of the attention logits; default 1/√headDim (see MultiHeadAttentionOptions.scale). */
  attnScale?: number;
  /** Multi-head latent attention (nn/mla.ts) with these dimensions instead of MultiHeadAttention; needs `rope` of qkRopeHeadDim features. */
  mla?: MlaConfig | null;
  /** A mixture of experts instead of the dense feed-forward layer (its experts take `mlp` and `bias`). */
  moe?: Omit<MixtureOfExpertsOptions, 'mlp' | 'bias' | 'generator'> | null;
  generator?: Generator;
  dropoutGenerator?: Generator;
}

/** A LayerNorm or RMSNorm over dModel. */
export function makeNorm(kind: NormKind, dModel: number, options: { bias?: boolean; eps?: number } = {}): LayerNorm | RMSNorm {
  if (kind === 'layer') return new LayerNorm(dModel, { bias: options.bias ?? true, eps: options.eps ?? 1e-5 });
  if (kind === 'rms') return new RMSNorm(dModel, { eps: options.eps ?? 1e-6 });
  throw new Error(`unknown norm '${String(kind)}' (expected 'layer' or 'rms')`);
}

export class TransformerBlock extends Module<[Tensor, AttentionForwardOptions?], Tensor> {
  readonly normPlacement: NormPlacement;
  attnNorm: LayerNorm | RMSNorm;
  attn: MultiHeadAttention | MultiHeadLatentAttention;
  ffnNorm: LayerNorm | RMSNorm;
  ffn: FeedForward | SwiGLU | MixtureOfExperts;
  dropout: Dropout;

  constructor(options: TransformerBlockOptions) {
    super();
    const { dModel, nHeads } = options;
    const bias = options.bias ?? true;
    const p = options.dropout ?? 0;
    const mlp = options.mlp ?? 'gelu';
    this.normPlacement = options.normPlacement ?? 'pre';
    if (this.normPlacement !== 'pre' && this.normPlacement !== 'post') throw new Error(`TransformerBlock: normPlacement must be 'pre' or 'post', got '${String(this.normPlacement)}'`);
    const norm = { bias, eps: options.normEps };
    this.attnNorm = makeNorm(options.norm ?? 'layer', dModel, norm);
    if (options.mla) {
      if (!options.rope) throw new Error('TransformerBlock: mla needs a rotary embedding (rope) of qkRopeHeadDim features');
      this.attn = new MultiHeadLatentAttention(dModel, nHeads, options.mla, {
        bias,
        dropout: p,
        causal: options.causal,
        rope: options.rope,
        scale: options.attnScale,
        normEps: options.normEps,
        generator: options.generator,
        dropoutGenerator: options.dropoutGenerator,
      });
    } else {
      this.attn = new MultiHeadAttention(dModel, nHeads, {
        nKvHeads: options.nKvHeads,
        bias,
        dropout: p,
        causal: options.causal,
        rope: options.rope,
        scale: options.attnScale,
        generator: options.generator,
        dropoutGenerator: options.dropoutGenerator,
      });
    }
    this.ffnNorm = makeNorm(options.norm ?? 'layer', dModel, norm);
    const dFF = options.dFF ?? 4 * dModel;
    if (options.moe) this.ffn = new MixtureOfExperts(dModel, { ...options.moe, mlp, bias, generator: options.generator });
    else if (mlp === 'gelu') this.ffn = new FeedForward(dModel, dFF, { bias, generator: options.generator });
    else if (mlp === 'swiglu') this.ffn = new SwiGLU(dModel, dFF, { bias, generator: options.generator });
    else throw new Error(`TransformerBlock: unknown mlp '${String(mlp)}' (expected 'gelu' or 'swiglu')`);
    this.dropout = new Dropout(p, { generator: options.dropoutGenerator });
  }

  forward(x: Tensor, options: AttentionForwardOptions = {}): Tensor {
    const pre = this.normPlacement === 'pre';
    const a = this.attn.forward(pre ? this.attnNorm.forward(x) : x, options);
    x = pre ? x.add(this.dropout.forward(a)) : this.attnNorm.forward(x.add(this.dropout.forward(a)));
    const f = this.ffn.forward(pre ? this.ffnNorm.forward(x) : x);
    return pre ? x.add(this.dropout.forward(f)) : this.ffnNorm.forward(x.add(this.dropout.forward(f)));
  }
}
