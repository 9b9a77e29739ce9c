/**
 * The losses of the post-training stages (docs/post-training.md, "Losses"), composed of existing
 * differentiable ops so that autograd needs nothing new:
 *
 * - SFT: `maskedCrossEntropy`, next-token cross-entropy on the tokens a loss mask selects (the
 *   assistant's turns), through the fused `crossEntropy` with an ignore index.
 * - Per-token and per-sequence log-probabilities, `tokenLogProbs` / `sequenceLogProbs`: what DPO
 *   and GRPO score sequences with; the same fused kernel, negated.
 * - DPO (Rafailov et al. 2023, eq. 7) with conservative label smoothing (cDPO), `dpoLoss`.
 * - GRPO (Shao et al. 2024, DeepSeekMath, eq. 3 with the k3 KL estimator of eq. 4),
 *   `groupAdvantages` and `grpoLoss`.
 *
 * Conventions. Logits are [B, T, V] with the vocabulary last; `targets[b, t]` is the token that
 * `logits[b, t]` predicts (already shifted by one, as data/ batches and `TransformerLM.forward`
 * have them); a mask is [B, T] of bool, int32 or float32 holding only 0 and 1 (1 = the position
 * counts). Targets at masked positions are never read, so padding there may hold anything
 * (−100, a pad id). Inputs that come from frozen models (DPO's reference, GRPO's old and reference
 * policies, the advantages) must not require gradients: passing one with a graph is an error, not
 * a silent detach, because it means a frozen model's forward was recorded for nothing (or, worse,
 * that the wrong model is being trained).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { binaryCrossEntropyWithLogits } from '../nn/functional.js';
import { minimum, sub, where } from '../ops/elementwise.js';
import { crossEntropy } from '../ops/fused.js';
import { full } from '../tensor/creation.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** The ignore index handed to `crossEntropy` for masked positions (never a valid token id). */
const IGNORED = -100;

// ---- validation --------------------------------------------------------------------------------

function position(flat: number, cols: number): string {
  return `[${Math.floor(flat / cols)}, ${flat % cols}]`;
}

/** The mask as 0/1 bytes, after checking its shape and that it holds nothing but 0 and 1. */
function maskBits(op: string, mask: Tensor, shape: readonly number[], against: string): Uint8Array {
  if (!(mask instanceof Tensor)) throw new TypeError(`${op}: mask must be a Tensor, got ${typeof mask}`);
  if (!shapesEqual(mask.shape, shape)) {
    throw new Error(`${op}: mask shape ${formatShape(mask.shape)} must equal ${against} ${formatShape(shape)}`);
  }
  const values = mask.toTypedArray();
  const bits = new Uint8Array(values.length);
  const cols = shape[shape.length - 1];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== 0 && v !== 1) throw new RangeError(`${op}: mask must hold only 0 and 1, got ${v} at ${position(i, cols)}`);
    bits[i] = v;
  }
  return bits;
}

function checkFloat(op: string, name: string, x: Tensor, rank: number, what: string): void {
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: ${name} must be a Tensor ${what}, got ${typeof x}`);
  if (x.dtype !== 'float32') throw new TypeError(`${op}: ${name} must be float32, got ${x.dtype}`);
  if (x.ndim !== rank) throw new Error(`${op}: ${name} must be ${what}, got shape ${formatShape(x.shape)}`);
}

function checkFrozen(op: string, name: string, x: Tensor): void {
  if (x.requiresGrad) {
    throw new Error(`${op}: ${name} requires grad, but it comes from a frozen model; compute it under noGrad() or pass ${name}.detach()`);
  }
}

function checkNumber(op: string, name: string, v: number, ok: (v: number) => boolean, expected: string): void {
  if (typeof v !== 'number' || !ok(v)) throw new RangeError(`${op}: ${name} must be ${expected}, got ${String(v)}`);
}

/**
 * Checks logits [B, T, V], targets [B, T] int32 and the mask, and returns the targets with every
 * masked position replaced by the ignore index (so the fused cross-entropy skips it: zero loss,
 * zero gradient row) and the number of selected positions.
 */
function selectTargets(op: string, logits: Tensor, targets: Tensor, mask: Tensor): { selected: Tensor; count: number } {
  checkFloat(op, 'logits', logits, 3, '[B, T, V]');
  const [b, t, v] = logits.shape;
  if (!(targets instanceof Tensor)) throw new TypeError(`${op}: targets must be an int32 Tensor [B, T], got ${typeof targets}`);
  if (targets.dtype !== 'int32') throw new TypeError(`${op}: targets must be int32 token ids, got ${targets.dtype}`);
  if (!shapesEqual(targets.shape, [b, t])) {
    throw new Error(`${op}: targets shape ${formatShape(targets.shape)} must equal logits' [B, T] = ${formatShape([b, t])}`);
  }
  const bits = maskBits(op, mask, [b, t], "logits' [B, T] =");
  const ids = targets.toTypedArray() as Int32Array;
  let count = 0;
  for (let i = 0; i < ids.length; i++) {
    if (bits[i] === 0) {
      ids[i] = IGNORED;
      continue;
    }
    if (ids[i] < 0 || ids[i] >= v) throw new RangeError(`${op}: targets${position(i, t)} = ${ids[i]} is outside the vocabulary [0, ${v}) at a position the mask selects`);
    count++;
  }
  return { selected: new Tensor(ids, [b, t]), count };
}

// ---- SFT and sequence scores -------------------------------------------------------------------

/**
 * Mean next-token cross-entropy over the positions the mask selects (SFT trains on the assistant's
 * tokens only): Σ_{b,t} m_bt·(−log p(y_bt | x_<t)) / Σ_{b,t} m_bt. One pass of the fused
 * cross-entropy kernel, masked positions passed as its ignore index. Throws when the mask selects
 * nothing (the mean would be 0/0).
 */
export function maskedCrossEntropy(logits: Tensor, targets: Tensor, lossMask: Tensor): Tensor {
  const { selected, count } = selectTargets('maskedCrossEntropy', logits, targets, lossMask);
  if (count === 0) throw new Error(`maskedCrossEntropy: lossMask ${formatShape(lossMask.shape)} selects no position; the mean loss is undefined`);
  return crossEntropy(logits, selected, { reduction: 'mean', ignoreIndex: IGNORED });
}

/**
 * log p(y_bt | x_<t) per position, 0 where the mask is 0: [B, T]. GRPO's per-token log-probs
 * (its ratio and KL are per token). The fused cross-entropy with reduction 'none', negated.
 */
export function tokenLogProbs(logits: Tensor, targets: Tensor, mask: Tensor): Tensor {
  const { selected } = selectTargets('tokenLogProbs', logits, targets, mask);
  // 0 − ce rather than −ce: masked positions come out as +0, not −0.
  return sub(0, crossEntropy(logits, selected, { reduction: 'none', ignoreIndex: IGNORED }));
}

/**
 * log π(y_b | x_b) = Σ_t m_bt·log p(y_bt | x_<t): [B]. DPO's sequence score (eq. 7 uses
 * log π(y|x), the sum over the response's tokens, not a mean). A row the mask leaves empty is 0.
 */
export function sequenceLogProbs(logits: Tensor, targets: Tensor, mask: Tensor): Tensor {
  const { selected } = selectTargets('sequenceLogProbs', logits, targets, mask);
  return sub(0, crossEntropy(logits, selected, { reduction: 'none', ignoreIndex: IGNORED }).sum(-1));
}

// ---- DPO ---------------------------------------------------------------------------------------

/** Sequence log-probs [B] of the chosen and rejected responses under the policy and the reference. */
export interface PreferenceLogProbs {
  /** log π_θ(y_w | x), with a graph. */
  policyChosen: Tensor;
  /** log π_θ(y_l | x), with a graph. */
  policyRejected: Tensor;
  /** log π_ref(y_w | x); must not require grad. */
  referenceChosen: Tensor;
  /** log π_ref(y_l | x); must not require grad. */
  referenceRejected: Tensor;
}

export interface DpoOptions {
  /** β, the strength of the implicit KL constraint to the reference (eq. 7). Default 0.1. */
  beta?: number;
  /** ε of conservative DPO: the probability that a preference label is flipped, in [0, 0.5]. Default 0. */
  labelSmoothing?: number;
}

export interface DpoResult {
  /** Mean loss over the batch, with a graph to the policy log-probs. */
  loss: Tensor;
  /** β·(log π_θ(y_w|x) − log π_ref(y_w|x)): [B], detached. DPO's implicit reward (§5). */
  chosenRewards: Tensor;
  /** β·(log π_θ(y_l|x) − log π_ref(y_l|x)): [B], detached. */
  rejectedRewards: Tensor;
  /** chosenRewards − rejectedRewards: [B], detached. */
  margins: Tensor;
  /** Fraction of pairs with chosenRewards > rejectedRewards (strictly). */
  accuracy: number;
}

/**
 * Direct Preference Optimization (Rafailov et al. 2023, eq. 7), with cDPO label smoothing as in
 * TRL's 'sigmoid' loss:
 *   Δ = (log π_θ(y_w) − log π_θ(y_l)) − (log π_ref(y_w) − log π_ref(y_l)),
 *   L = −(1 − ε)·log σ(β·Δ) − ε·log σ(−β·Δ), averaged over the batch.
 * That is binary cross-entropy on the logit β·Δ against the soft label 1 − ε, so it reuses
 * `binaryCrossEntropyWithLogits` (stable for any |β·Δ|). ε = 0 is the paper's loss.
 */
export function dpoLoss(logProbs: PreferenceLogProbs, options: DpoOptions = {}): DpoResult {
  const op = 'dpoLoss';
  const beta = options.beta ?? 0.1;
  const labelSmoothing = options.labelSmoothing ?? 0;
  checkNumber(op, 'beta', beta, (v) => Number.isFinite(v) && v > 0, 'a finite number > 0');
  // ε > 0.5 would say the labels are more often wrong than right: train on the swapped pairs instead.
  checkNumber(op, 'labelSmoothing', labelSmoothing, (v) => v >= 0 && v <= 0.5, 'in [0, 0.5]');
  const names = ['policyChosen', 'policyRejected', 'referenceChosen', 'referenceRejected'] as const;
  for (const name of names) checkFloat(op, name, logProbs[name], 1, 'sequence log-probs [B]');
  const { policyChosen, policyRejected, referenceChosen, referenceRejected } = logProbs;
  const batch = policyChosen.shape[0];
  if (batch === 0) throw new Error(`${op}: policyChosen is empty (shape [0]); a batch needs at least one pair`);
  for (const name of names) {
    if (logProbs[name].shape[0] !== batch) {
      throw new Error(`${op}: ${name} shape ${formatShape(logProbs[name].shape)} must equal policyChosen's ${formatShape(policyChosen.shape)}`);
    }
  }
  checkFrozen(op, 'referenceChosen', referenceChosen);
  checkFrozen(op, 'referenceRejected', referenceRejected);

  // Eq. 7's logit, in TRL's order of operations: policy log-ratio minus reference log-ratio.
  const delta = policyChosen.sub(policyRejected).sub(referenceChosen.sub(referenceRejected));
  const loss = binaryCrossEntropyWithLogits(delta.mul(beta), full([batch], 1 - labelSmoothing));

  return noGrad(() => {
    const chosenRewards = policyChosen.detach().sub(referenceChosen).mul(beta);
    const rejectedRewards = policyRejected.detach().sub(referenceRejected).mul(beta);
    const c = chosenRewards.toTypedArray();
    const r = rejectedRewards.toTypedArray();
    let wins = 0;
    for (let i = 0; i < batch; i++) if (c[i] > r[i]) wins++;
    return { loss, chosenRewards, rejectedRewards, margins: chosenRewards.sub(rejectedRewards), accuracy: wins / batch };
  });
}

// ---- GRPO --------------------------------------------------------------------------------------

export interface GroupAdvantageOptions {
  /** Added to the group's standard deviation, so a group of equal rewards gives 0, not 0/0. Default 1e-4. */
  eps?: number;
}

/**
 * GRPO's outcome-supervision advantages (Shao et al. 2024, §4.1.2): each of a prompt's G sampled
 * completions gets Â_i = (r_i − mean(r)) / (std(r) + eps) over its own group. `rewards` holds the
 * groups one after another: rewards[g·G + i] is completion i of prompt g (TRL's layout).
 *
 * std is the sample standard deviation (Bessel's correction, divisor G − 1), as TRL computes it
 * with torch.std; the paper does not say which. Hence groupSize ≥ 2. Computed in float64, with
 * the group's first reward as the shift, so that a group of equal rewards gives exactly 0.
 * Returns float32 [N], without a graph (advantages are constants of the policy-gradient loss).
 */
export function groupAdvantages(rewards: readonly number[] | Float32Array | Float64Array, groupSize: number, options: GroupAdvantageOptions = {}): Tensor {
  const op = 'groupAdvantages';
  const eps = options.eps ?? 1e-4;
  checkNumber(op, 'groupSize', groupSize, (v) => Number.isInteger(v) && v >= 2, 'an integer ≥ 2 (the sample std needs two completions per prompt)');
  checkNumber(op, 'eps', eps, (v) => Number.isFinite(v) && v >= 0, 'a finite number ≥ 0');
  const n = rewards.length;
  if (n === 0 || n % groupSize !== 0) throw new Error(`${op}: rewards has ${n} values, expected a positive multiple of groupSize ${groupSize}`);
  const out = new Float32Array(n);
  for (let start = 0; start < n; start += groupSize) {
    const shift = rewards[start];
    let dev = 0;
    for (let i = start; i < start + groupSize; i++) {
      if (!Number.isFinite(rewards[i])) throw new RangeError(`${op}: rewards[${i}] is ${rewards[i]}, expected a finite number`);
      dev += rewards[i] - shift;
    }
    const mean = shift + dev / groupSize;
    let squares = 0;
    for (let i = start; i < start + groupSize; i++) squares += (rewards[i] - mean) ** 2;
    const std = Math.sqrt(squares / (groupSize - 1));
    for (let i = start; i < start + groupSize; i++) out[i] = (rewards[i] - mean) / (std + eps);
  }
  return new Tensor(out, [n]);
}

export interface GrpoInputs {
  /** log π_θ(o_t | q, o_<t): [B, T], with a graph (`tokenLogProbs` of the policy). */
  logProbs: Tensor;
  /**
   * log π_θold: [B, T], no grad: the policy that sampled the completions. Null or absent: the
   * current policy, detached (one gradient step per batch of samples, so the ratio is 1 in value).
   */
  oldLogProbs?: Tensor | null;
  /** log π_ref: [B, T], no grad. Null or absent: no KL term (klBeta is then ignored). */
  referenceLogProbs?: Tensor | null;
  /** Â_i: [B], no grad (`groupAdvantages`); one per sequence, shared by its tokens. */
  advantages: Tensor;
  /** [B, T]: 1 on the completion's tokens. */
  mask: Tensor;
}

export interface GrpoOptions {
  /** ε of the clipped ratio, clip(r, 1 − ε, 1 + ε). Default 0.2. */
  clipEps?: number;
  /** β of the KL penalty. Default 0.04 (DeepSeekMath's value). */
  klBeta?: number;
}

export interface GrpoResult {
  /** The loss to minimise (the negated objective of eq. 3), with a graph to logProbs. */
  loss: Tensor;
  /**
   * Fraction of the mask's tokens whose objective is the clipped branch, where the gradient is 0:
   * r < 1 − ε with Â < 0, or r > 1 + ε with Â > 0 (TRL's clip ratio).
   */
  clipFraction: number;
  /** Mean k3 KL estimate over the mask's tokens; null without referenceLogProbs. */
  kl: number | null;
}

/**
 * GRPO's loss (Shao et al. 2024, eq. 3), per token t of completion i:
 *   r = exp(log π_θ − log π_θold),
 *   s = min(r·Â_i, clip(r, 1 − ε, 1 + ε)·Â_i),
 *   KL = π_ref/π_θ − log(π_ref/π_θ) − 1 = exp(ref − logp) − (ref − logp) − 1   (eq. 4, k3),
 *   ℓ_it = −(s − β·KL);
 * then the paper's normalisation: the mean over each completion's own tokens (1/|o_i|) and the
 * mean over the B completions, L = (1/B)·Σ_i (1/|o_i|)·Σ_t m_it·ℓ_it (TRL's loss_type 'grpo').
 * A completion the mask leaves empty contributes 0 (|o_i| clamped to 1, as TRL does) but counts
 * in B; a mask that selects nothing at all is an error.
 *
 * Positions outside the mask are replaced by 0 before anything is computed, so whatever they
 * hold (padding, −∞) cannot turn into NaN through exp and reach the gradient.
 */
export function grpoLoss(inputs: GrpoInputs, options: GrpoOptions = {}): GrpoResult {
  const op = 'grpoLoss';
  const clipEps = options.clipEps ?? 0.2;
  const klBeta = options.klBeta ?? 0.04;
  checkNumber(op, 'clipEps', clipEps, (v) => v > 0 && v < 1, 'in (0, 1)');
  checkNumber(op, 'klBeta', klBeta, (v) => Number.isFinite(v) && v >= 0, 'a finite number ≥ 0');
  const { logProbs, advantages, mask } = inputs;
  const oldLogProbs = inputs.oldLogProbs ?? null;
  const referenceLogProbs = inputs.referenceLogProbs ?? null;
  checkFloat(op, 'logProbs', logProbs, 2, '[B, T]');
  const [b, t] = logProbs.shape;
  for (const [name, x] of [['oldLogProbs', oldLogProbs], ['referenceLogProbs', referenceLogProbs]] as const) {
    if (x === null) continue;
    checkFloat(op, name, x, 2, '[B, T]');
    if (!shapesEqual(x.shape, logProbs.shape)) throw new Error(`${op}: ${name} shape ${formatShape(x.shape)} must equal logProbs' ${formatShape(logProbs.shape)}`);
    checkFrozen(op, name, x);
  }
  checkFloat(op, 'advantages', advantages, 1, '[B] (one per sequence)');
  if (advantages.shape[0] !== b) throw new Error(`${op}: advantages shape ${formatShape(advantages.shape)} must be [B] = [${b}] for logProbs ${formatShape(logProbs.shape)}`);
  checkFrozen(op, 'advantages', advantages);
  const bits = maskBits(op, mask, [b, t], "logProbs' shape");
  const lengths = new Float32Array(b);
  let tokens = 0;
  for (let i = 0; i < bits.length; i++) lengths[Math.floor(i / t)] += bits[i];
  for (let i = 0; i < b; i++) tokens += lengths[i];
  if (tokens === 0) throw new Error(`${op}: mask ${formatShape(mask.shape)} selects no token; the loss is undefined`);

  const keep = new Tensor(bits, [b, t], undefined, 0, 'bool');
  const weights = new Tensor(Float32Array.from(bits), [b, t]);
  const logp = where(keep, logProbs, 0);
  const old = oldLogProbs ? where(keep, oldLogProbs, 0) : logp.detach();
  const ratio = logp.sub(old).exp();
  const adv = advantages.reshape([b, 1]);
  // Eq. 3's pessimistic bound: the smaller of the unclipped and clipped surrogate.
  const surrogate = minimum(ratio.mul(adv), ratio.clamp(1 - clipEps, 1 + clipEps).mul(adv));
  let perToken = surrogate.neg();
  let kl: Tensor | null = null;
  if (referenceLogProbs) {
    const d = where(keep, referenceLogProbs, 0).sub(logp);
    kl = d.exp().sub(d).sub(1); // eq. 4: unbiased and ≥ 0
    if (klBeta > 0) perToken = perToken.add(kl.mul(klBeta));
  }
  const clampedLengths = new Tensor(lengths.map((n) => Math.max(n, 1)), [b]);
  const loss = perToken.mul(weights).sum(-1).div(clampedLengths).mean();

  return noGrad(() => {
    const r = ratio.toTypedArray();
    const a = advantages.toTypedArray();
    const k = kl ? kl.toTypedArray() : null;
    // The bounds as float32, as clamp used them (and as torch compares a float32 ratio).
    const low = Math.fround(1 - clipEps);
    const high = Math.fround(1 + clipEps);
    let clipped = 0;
    let klSum = 0;
    for (let i = 0; i < bits.length; i++) {
      if (bits[i] === 0) continue;
      const ai = a[Math.floor(i / t)];
      if ((r[i] < low && ai < 0) || (r[i] > high && ai > 0)) clipped++;
      if (k) klSum += k[i];
    }
    return { loss, clipFraction: clipped / tokens, kl: k ? klSum / tokens : null };
  });
}
