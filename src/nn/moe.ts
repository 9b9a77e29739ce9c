/**
 * Mixture-of-experts feed-forward layer (Switch Transformer, Mixtral, DeepSeekMoE): a router
 * scores every token against E experts, each token goes through its top-k experts, and their
 * outputs are summed with the router's weights; optional shared experts see every token.
 *
 *   scores  = softmax(router(x))            ('softmax': Switch, Mixtral)
 *           | sigmoid(router(x))            ('sigmoid': DeepSeek-V3's affinities)
 *   top-k   = the k largest scores of each token (ties: the lower expert index first)
 *   w       = those k scores, divided by their sum when normalizeTopK (Mixtral, DeepSeek-V3)
 *   y       = Σ_{e ∈ top-k} w_e · expert_e(x)  (+ shared(x))
 *
 * Dispatch is by sorting, not masking: the N·k (token, expert) assignments are ordered by expert
 * (a counting sort), the tokens gathered in that order with one indexSelect, each expert runs one
 * GEMM pass over its own contiguous run of rows, and one indexAdd sums the weighted outputs back
 * into the tokens' rows. No token is dropped (no capacity factor): an expert's run is as long as
 * its share. With one expert and top-1 the weight is exactly 1 and the layer computes exactly its
 * expert's FFN (tested against the dense SwiGLU).
 *
 * The router's auxiliary losses (recomputed at every forward, read by TransformerLM):
 *   load balancing (Switch eq. 4, generalised to top-k as DeepSeekMoE's expert-level loss):
 *     aux = E · Σ_e f_e · P_e,  f_e = (assignments to e) / (N·k),  P_e = mean over tokens of p_e,
 *     p = the softmax probabilities (sigmoid: the scores normalised to sum 1 per token); 1 when
 *     perfectly balanced. (Hugging Face Mixtral's load_balancing_loss_func is k times this.)
 *   router z-loss (ST-MoE eq. 5): z = mean over tokens of logsumexp(router logits)².
 *
 * State-dict names: router.weight [E, d]; experts.{e}.{w1,w2[,w3]} (FeedForward or SwiGLU of
 * width dExpert); shared.{w1,w2[,w3]} (one FFN of width nSharedExperts·dExpert, which equals
 * nSharedExperts separate always-on experts summed — DeepSeek-V2's layout).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { cat, indexAdd, indexSelect } from '../ops/indexing.js';
import { logsumexp } from '../ops/reduce.js';
import { tensor, zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { FeedForward, SwiGLU } from './feedforward.js';
import { Linear, ModuleList } from './layers.js';
import { Module } from './module.js';

export type RouterKind = 'softmax' | 'sigmoid';

export interface MixtureOfExpertsOptions {
  nExperts: number;
  topK: number;
  /** Hidden width of each expert. */
  dExpert: number;
  /** Always-on experts (DeepSeekMoE), as one FFN of width nSharedExperts·dExpert. Default 0. */
  nSharedExperts?: number;
  /** Default 'softmax'. */
  router?: RouterKind;
  /** Renormalise the top-k weights to sum 1. Default true for topK > 1, false for top-1 (Switch). */
  normalizeTopK?: boolean;
  /** 'swiglu' (default) or 'gelu' experts. */
  mlp?: 'gelu' | 'swiglu';
  bias?: boolean;
  generator?: Generator;
}

/** Routing figures accumulated over forwards since the last reset (expert utilisation). */
export interface RouterStats {
  /** Assignments per expert (each token counts once for each of its k experts). */
  counts: number[];
  tokens: number;
  /** Token-weighted means of the two auxiliary losses over those forwards. */
  auxLoss: number;
  zLoss: number;
}

export class MixtureOfExperts extends Module {
  readonly nExperts: number;
  readonly topK: number;
  readonly dExpert: number;
  readonly nSharedExperts: number;
  readonly routerKind: RouterKind;
  readonly normalizeTopK: boolean;
  router: Linear;
  experts: ModuleList<FeedForward | SwiGLU>;
  shared: FeedForward | SwiGLU | null;
  /** The last forward's load-balancing and z losses (scalars with their graphs), for TransformerLM's objective. */
  auxLoss: Tensor | null = null;
  zLoss: Tensor | null = null;
  #counts: Float64Array;
  #tokens = 0;
  #auxSum = 0;
  #zSum = 0;

  constructor(dModel: number, options: MixtureOfExpertsOptions) {
    super();
    const { nExperts, topK, dExpert } = options;
    const nShared = options.nSharedExperts ?? 0;
    for (const [name, v, min] of [['nExperts', nExperts, 1], ['topK', topK, 1], ['dExpert', dExpert, 1], ['nSharedExperts', nShared, 0]] as const) {
      if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`MixtureOfExperts: ${name} must be an integer ≥ ${min}, got ${String(v)}`);
    }
    if (topK > nExperts) throw new RangeError(`MixtureOfExperts: topK ${topK} exceeds nExperts ${nExperts}`);
    this.nExperts = nExperts;
    this.topK = topK;
    this.dExpert = dExpert;
    this.nSharedExperts = nShared;
    this.routerKind = options.router ?? 'softmax';
    if (this.routerKind !== 'softmax' && this.routerKind !== 'sigmoid') throw new Error(`MixtureOfExperts: router must be 'softmax' or 'sigmoid', got '${String(this.routerKind)}'`);
    this.normalizeTopK = options.normalizeTopK ?? topK > 1;
    const mlp = options.mlp ?? 'swiglu';
    const bias = options.bias ?? false;
    const expert = (width: number) => (mlp === 'swiglu' ? new SwiGLU(dModel, width, { bias, generator: options.generator }) : new FeedForward(dModel, width, { bias, generator: options.generator }));
    this.router = new Linear(dModel, nExperts, { bias: false, generator: options.generator });
    this.experts = new ModuleList<FeedForward | SwiGLU>();
    for (let e = 0; e < nExperts; e++) this.experts.append(expert(dExpert));
    this.shared = nShared > 0 ? expert(nShared * dExpert) : null;
    this.#counts = new Float64Array(nExperts);
  }

  /** x [..., d] → [..., d]. */
  forward(x: Tensor): Tensor {
    const d = this.router.inFeatures;
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== d) throw new Error(`MixtureOfExperts: input must be [..., ${d}], got ${formatShape(x.shape)}`);
    const flat = x.reshape([-1, d]);
    const n = flat.shape[0];
    const E = this.nExperts;
    const k = this.topK;
    const logits = this.router.forward(flat);
    const scores = this.routerKind === 'softmax' ? logits.softmax(-1) : logits.sigmoid();

    // Top-k per token, and the assignments ordered by expert (a counting sort, stable in token order).
    const s = noGrad(() => scores.contiguous().toTypedArray()) as Float32Array;
    const chosen = new Int32Array(n * k);
    for (let t = 0; t < n; t++) topKIndices(s, t * E, E, k, chosen, t * k);
    const counts = new Int32Array(E);
    for (let i = 0; i < chosen.length; i++) counts[chosen[i]]++;
    const starts = new Int32Array(E + 1);
    for (let e = 0; e < E; e++) starts[e + 1] = starts[e] + counts[e];
    const fill = starts.slice(0, E);
    const slotOrder = new Int32Array(n * k);
    const tokenOrder = new Int32Array(n * k);
    for (let a = 0; a < chosen.length; a++) {
      const at = fill[chosen[a]]++;
      slotOrder[at] = a;
      tokenOrder[at] = Math.floor(a / k);
    }

    // The k weights of each token (through the scores, so the router learns from the LM loss).
    let weights = scores.gather(1, tensor(chosen, { shape: [n, k] }));
    if (this.normalizeTopK) weights = weights.div(weights.sum(-1, true));
    const tokens = tensor(tokenOrder, { shape: [n * k] });
    const routed = indexSelect(flat, 0, tokens);
    const outputs: Tensor[] = [];
    for (let e = 0; e < E; e++) if (counts[e] > 0) outputs.push(this.experts.at(e).forward(routed.narrow(0, starts[e], counts[e])));
    const expertOut = outputs.length === 1 ? outputs[0] : cat(outputs, 0);
    const w = indexSelect(weights.reshape([n * k]), 0, tensor(slotOrder, { shape: [n * k] }));
    let y = indexAdd(zeros([n, d]), 0, tokens, expertOut.mul(w.unsqueeze(1)));
    if (this.shared) y = y.add(this.shared.forward(flat));

    this.#routerLosses(logits, scores, counts, n);
    return y.reshape(x.shape);
  }

  /** The two auxiliary losses of this forward (kept on the module) and the running statistics. */
  #routerLosses(logits: Tensor, scores: Tensor, counts: Int32Array, n: number): void {
    const E = this.nExperts;
    const fraction = new Float32Array(E);
    for (let e = 0; e < E; e++) fraction[e] = counts[e] / (n * this.topK);
    const probs = this.routerKind === 'softmax' ? scores : scores.div(scores.sum(-1, true));
    const aux = probs.mean(0).mul(tensor(fraction)).sum().mul(E);
    const lse = logsumexp(logits, -1);
    const z = lse.mul(lse).mean();
    this.auxLoss = aux;
    this.zLoss = z;
    for (let e = 0; e < E; e++) this.#counts[e] += counts[e];
    this.#tokens += n;
    this.#auxSum += aux.item() * n;
    this.#zSum += z.item() * n;
  }

  /** Routing since the last resetRouterStats (or construction). */
  routerStats(): RouterStats {
    const t = this.#tokens;
    return { counts: Array.from(this.#counts), tokens: t, auxLoss: t > 0 ? this.#auxSum / t : 0, zLoss: t > 0 ? this.#zSum / t : 0 };
  }

  resetRouterStats(): void {
    this.#counts.fill(0);
    this.#tokens = 0;
    this.#auxSum = 0;
    this.#zSum = 0;
  }

  override extraRepr(): string {
    return `nExperts=${this.nExperts}, topK=${this.topK}, dExpert=${this.dExpert}, nSharedExperts=${this.nSharedExperts}, router='${this.routerKind}', normalizeTopK=${this.normalizeTopK}`;
  }
}

/**
 * Indices of the k largest of s[from .. from+E) in descending order (equal scores: the lower index
 * first, as torch.topk on CPU), written to out[at .. at+k). k is small: a selection by insertion.
 */
export function topKIndices(s: Float32Array, from: number, E: number, k: number, out: Int32Array, at: number): void {
  let filled = 0;
  for (let e = 0; e < E; e++) {
    const v = s[from + e];
    if (Number.isNaN(v)) throw new Error(`MixtureOfExperts: router score of expert ${e} is NaN`);
    if (filled === k && v <= s[from + out[at + k - 1]]) continue;
    let i = filled < k ? filled++ : k - 1;
    while (i > 0 && s[from + out[at + i - 1]] < v) {
      out[at + i] = out[at + i - 1];
      i--;
    }
    out[at + i] = e;
  }
}

/**
 * Expert utilisation of MoE layers as flat metrics (the trainer logs them with each evaluation):
 * `moe.auxLoss` and `moe.zLoss` (means over the layers), `moe.maxLoad` / `moe.minLoad` (the
 * busiest and idlest expert's share × nExperts over all layers: 1 is perfect balance, 0 an unused
 * expert), and `moe.layer{i}.expert{e}` (each expert's share of its layer's assignments).
 */
export function routerMetrics(layers: readonly MixtureOfExperts[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (layers.length === 0) return out;
  let aux = 0;
  let z = 0;
  let maxLoad = 0;
  let minLoad = Infinity;
  layers.forEach((layer, i) => {
    const s = layer.routerStats();
    aux += s.auxLoss / layers.length;
    z += s.zLoss / layers.length;
    const assigned = s.counts.reduce((a, b) => a + b, 0);
    s.counts.forEach((count, e) => {
      const share = assigned > 0 ? count / assigned : 0;
      out[`moe.layer${i}.expert${e}`] = share;
      maxLoad = Math.max(maxLoad, share * layer.nExperts);
      minLoad = Math.min(minLoad, share * layer.nExperts);
    });
  });
  return { 'moe.auxLoss': aux, 'moe.zLoss': z, 'moe.maxLoad': maxLoad, 'moe.minLoad': minLoad, ...out };
}
