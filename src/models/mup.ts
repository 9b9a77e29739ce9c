/**
 * μP — the maximal update parametrization (Yang et al. 2022, "Tensor Programs V: Tuning Large
 * Neural Networks via Zero-Shot Hyperparameter Transfer", arXiv 2203.03466) — for TransformerLM
 * trained with Adam/AdamW. With m = dModel / baseWidth (a config's `mup`, models/config.ts):
 *
 * | parameter                             | init std          | Adam LR    | forward             |
 * |---------------------------------------|-------------------|------------|---------------------|
 * | token / learned position embedding    | initStd           | η          | × α_in              |
 * | hidden matrices wq wk wv wo, w1 w2 w3 | initStd/√m_fanIn  | η/m_fanIn  | –                   |
 * | biases, norm gains                    | unchanged         | η          | –                   |
 * | attention logits                      | –                 | –          | × √D_base/D (∝ 1/D) |
 * | query projection                      | zero (optional)   | η/m        | –                   |
 * | readout (untied)                      | initStd, or zero  | η          | input × α_out/m     |
 * | readout tied to the embedding         | the embedding's   | η          | input × α_out/m     |
 *
 * (m_fanIn is m for every hidden matrix but w2, whose fan-in is dFF: dFF/baseFFWidth, = m by
 * default. Residual projections wo, w2 keep SP's extra 1/√(2·nLayers) on top.) Init and the
 * multipliers are applied in TransformerLM, the logit scale in MultiHeadAttention, the LRs and
 * weight decays by `muParamGroups`, used by the training loop.
 *
 * Every rule is normalised so that at m = 1 it is the identity — the μP model at its base width
 * is bit for bit the standard model (tests/mup). Design choices (docs/mup.md): widening keeps the
 * head count (each head widens, so the 1/D logit rule matters; `baseHeadDim` switches to fixed
 * head size), the FFN widens by m (dFF/dModel fixed; `baseFFWidth` otherwise), and hidden-matrix
 * weight decay follows microsoft/mup (× m, so lr·wd is width-independent) unless
 * `weightDecay: 'independent'`.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { TransformerConfig } from './config.js';

/**
 * m = dModel / baseWidth, the width multiplier (1 without μP). TP5 writes every rule in terms of
 * fan-in ratios to a base model; for the residual stream's width that ratio is m.
 */
export function widthMultiplier(config: TransformerConfig): number {
  return config.mup ? config.dModel / config.mup.baseWidth : 1;
}

/**
 * The FFN's own ratio dFF / baseFFWidth — the fan-in ratio of the down projection w2. It equals m
 * when dFF/dModel is the same as the base's (the default baseFFWidth), which is the usual case.
 */
export function ffnWidthMultiplier(config: TransformerConfig): number {
  return config.mup ? config.dFF / config.mup.baseFFWidth : 1;
}

/**
 * The fan-in ratio of a hidden matrix, by its module name in the model ('layers.0.ffn.w2', …):
 * w2 reads the FFN's hidden width, every other hidden matrix (wq wk wv wo w1 w3) reads dModel
 * (wo reads nHeads·headDim = dModel). 1 without μP.
 */
export function hiddenFanInMultiplier(config: TransformerConfig, moduleName: string): number {
  if (!config.mup) return 1;
  return moduleName.endsWith('.ffn.w2') ? ffnWidthMultiplier(config) : widthMultiplier(config);
}

/**
 * The attention logit multiplier. SP: 1/√D (D = headDim). μP (TP5 §4, "attention logits scaled
 * by 1/d instead of 1/√d"): once trained, q and k are correlated, so q·k grows like D rather than
 * √D, and only 1/D keeps the logits Θ(1) as heads widen. It is written (1/√D)·√(D_base/D) =
 * √D_base / D — 1/D with the constant chosen so the base width gets exactly SP's 1/√D (the
 * "attn multiplier" of microsoft/mup and nanoGPT-mup set to √D_base) — and computed in this
 * form so that at D = D_base the factor √1 = 1 leaves SP's value bit for bit.
 */
export function attentionScale(config: TransformerConfig): number {
  const d = config.dModel / config.nHeads;
  const sp = 1 / Math.sqrt(d);
  return config.mup ? sp * Math.sqrt(config.mup.baseHeadDim / d) : sp;
}

/**
 * α_out/m, multiplying the final hidden state before the readout (tied or untied): TP5 Table 3,
 * output weights "multiplier 1/fan_in" relative to the base (microsoft/mup's MuReadout divides by
 * width_mult). The readout's Adam update changes logits by Θ(η·fan_in) through the correlation
 * with its input; the 1/m brings that back to Θ(1) while the weight keeps a constant-scale init
 * and LR η. 1 without μP.
 */
export function readoutMultiplier(config: TransformerConfig): number {
  return config.mup ? config.mup.outputMultiplier / widthMultiplier(config) : 1;
}

/** α_in, multiplying the input embeddings (token + position); 1 without μP. */
export function inputMultiplier(config: TransformerConfig): number {
  return config.mup ? config.mup.inputMultiplier : 1;
}

/** How μP treats one parameter. */
export type MupRole = 'input' | 'hidden' | 'readout' | 'vector';

export interface MupParamInfo {
  name: string;
  role: MupRole;
  /** The hidden matrix's fan-in ratio m_fanIn (1 for every other role, and without μP). */
  fanInMultiplier: number;
  /** Adam LR relative to the run's: 1/m_fanIn for hidden matrices, 1 otherwise. */
  lrScale: number;
  /** Whether weight decay applies (matrices, as in nanoGPT; not biases or norm gains). */
  decay: boolean;
  /** Multiplier of the run's weight decay: m_fanIn for hidden matrices with weightDecay 'with-lr', else 1. */
  weightDecayScale: number;
}

/**
 * The μP treatment of each of a model's parameters, in `namedParameters()` order.
 * Roles by state-dict name: tokEmb/posEmb weights are input weights (a tied tokEmb is the readout
 * too; TP5 treats it as an input weight plus the readout multiplier), head.weight the readout,
 * 1-d tensors (biases, norm gains) vectors, and every other matrix — the projections inside
 * `layers.{i}` — a hidden matrix.
 */
export function mupParamInfo(model: { config: TransformerConfig; namedParameters(): [string, Tensor][] }): MupParamInfo[] {
  const c = model.config;
  return model.namedParameters().map(([name, p]) => {
    let role: MupRole;
    if (p.ndim < 2) role = 'vector';
    else if (name === 'tokEmb.weight' || name === 'posEmb.weight') role = 'input';
    else if (name === 'head.weight') role = 'readout';
    else if (name.startsWith('layers.')) role = 'hidden';
    else throw new Error(`mupParamInfo: parameter '${name}' has no μP rule (expected embeddings, head, norms, biases, or matrices inside layers)`);
    if (role !== 'hidden' || !c.mup) return { name, role, fanInMultiplier: 1, lrScale: 1, decay: role !== 'vector', weightDecayScale: 1 };
    const mult = hiddenFanInMultiplier(c, name.slice(0, -'.weight'.length));
    const expectedFanIn = name.endsWith('.ffn.w2.weight') ? c.dFF : c.dModel;
    if (p.shape[1] !== expectedFanIn) throw new Error(`mupParamInfo: hidden matrix '${name}' has fan-in ${p.shape[1]}, expected ${expectedFanIn}`);
    // TP5 Table 3 (Adam): hidden weights' LR ∝ 1/fan_in, i.e. η/m_fanIn relative to the base. Adam's
    // update has Θ(1) entries whatever the gradient's scale, so ΔW·x sums fan_in correlated terms:
    // η/m keeps each layer's change in output Θ(1) as the width grows.
    const lrScale = 1 / mult;
    // Weight decay: 'with-lr' (microsoft/mup MuAdam, decoupled_wd=False) multiplies it by m so that
    // AdamW's per-step shrink lr·wd stays the base's; 'independent' (nanoGPT-mup) leaves it.
    const weightDecayScale = c.mup.weightDecay === 'with-lr' ? mult : 1;
    return { name, role, fanInMultiplier: mult, lrScale, decay: true, weightDecayScale };
  });
}

/** An Adam/AdamW param group with its LR relative to the run's (`lrScale`, see ParamGroup). */
export interface MuParamGroup {
  params: Tensor[];
  lr: number;
  lrScale: number;
  weightDecay: number;
}

/**
 * AdamW/Adam param groups for a model: without μP exactly nanoGPT's two groups — matrices
 * (dim ≥ 2) with weight decay, then biases and norm gains without — so standard runs are
 * unchanged. With μP the hidden matrices come first, one group per distinct fan-in ratio (LR
 * lr/m, decay per `mup.weightDecay`), then the other matrices (embeddings, readout: LR lr, decay),
 * then the vectors (LR lr, no decay). Every group has `lrScale`, its LR relative to `lr`, which a
 * schedule must multiply (src/train/trainer.ts does), never overwrite.
 */
export function muParamGroups(model: { config: TransformerConfig; namedParameters(): [string, Tensor][] }, options: { lr: number; weightDecay: number }): MuParamGroup[] {
  const { lr, weightDecay } = options;
  if (!(typeof lr === 'number' && Number.isFinite(lr) && lr >= 0)) throw new Error(`muParamGroups: lr must be a non-negative number, got ${String(lr)}`);
  if (!(typeof weightDecay === 'number' && Number.isFinite(weightDecay) && weightDecay >= 0)) throw new Error(`muParamGroups: weightDecay must be a non-negative number, got ${String(weightDecay)}`);
  const params = new Map(model.namedParameters());
  const info = mupParamInfo(model);
  const groups = new Map<string, MuParamGroup>();
  const add = (key: string, p: Tensor, lrScale: number, wd: number) => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { params: [], lr: lr * lrScale, lrScale, weightDecay: wd }));
    g.params.push(p);
  };
  if (!model.config.mup) {
    // The standard groups, as the trainer always made them: both exist, decay first.
    const decay: MuParamGroup = { params: [], lr, lrScale: 1, weightDecay };
    const noDecay: MuParamGroup = { params: [], lr, lrScale: 1, weightDecay: 0 };
    for (const i of info) (i.decay ? decay : noDecay).params.push(params.get(i.name) as Tensor);
    return [decay, noDecay];
  } else {
    // Insertion order fixes the group order (checkpoints match optimizer groups by position).
    for (const i of info) if (i.role === 'hidden') add(`hidden ${i.lrScale} ${i.weightDecayScale}`, params.get(i.name) as Tensor, i.lrScale, weightDecay * i.weightDecayScale);
    for (const i of info) if (i.role === 'input' || i.role === 'readout') add('decay', params.get(i.name) as Tensor, 1, weightDecay);
    for (const i of info) if (i.role === 'vector') add('noDecay', params.get(i.name) as Tensor, 1, 0);
  }
  return [...groups.values()];
}
