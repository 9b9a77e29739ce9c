/**
 * LoRA, low-rank adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"),
 * as Hugging Face PEFT does it. A frozen linear layer W [out, in], b [out] gets a trainable
 * low-rank update ΔW = (α/r)·B·A with A [r, in] and B [out, r]:
 *
 *   h = x·Wᵀ + b + (α/r)·dropout(x)·Aᵀ·Bᵀ                          (LoRALinear.forward)
 *
 * A starts Kaiming-uniform (PEFT's default init, the same draw as nn.Linear's weight: U(±1/√in))
 * and B at zero, so an adapted model starts out exactly equal to its base model; dropout acts on
 * the LoRA branch only. Once trained, the update folds into the weight, W' = W + (α/r)·B·A
 * (merge / mergeLoRA), and the model is a plain model again, at no inference cost.
 *
 * Names follow PEFT in camelCase: rank (PEFT's r), alpha (lora_alpha), dropout (lora_dropout),
 * targetModules (target_modules, 'all-linear' included), loraA / loraB (lora_A / lora_B). Unlike
 * PEFT, the base weight and bias keep their own names (`layers.0.attn.wq.weight`, not
 * `…wq.base_layer.weight`), so a base checkpoint's state dict loads into an adapted model as is;
 * the adapter alone is `loraStateDict` (`layers.0.attn.wq.loraA`, `…loraB`).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { dropout as dropoutOp } from '../ops/dropout.js';
import { linear } from '../ops/linear.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Embedding } from './embedding.js';
import { kaimingUniform_ } from './init.js';
import { Linear, ModuleList, Sequential } from './layers.js';
import { isParameter, Module, parameter, type AnyModule } from './module.js';

// ---- options and config ------------------------------------------------------------------------

/** The hyperparameters of one LoRA layer. */
export interface LoRAOptions {
  /** r: the rank of the update B·A; a positive integer. */
  rank: number;
  /** α: the update is scaled by α/r (so changing r at a fixed α keeps the initial step size comparable). */
  alpha: number;
  /** Dropout probability on the LoRA branch's input, in [0, 1); default 0. */
  dropout?: number;
}

/** LoRALinear's options: the hyperparameters plus where its random numbers come from. */
export interface LoRALinearOptions extends LoRAOptions {
  /** Draws loraA's initial values (the default generator otherwise). */
  generator?: Generator;
  /** Draws the branch's dropout masks (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

/**
 * A LoRA configuration as plain data (JSON round-trips it): what applyLoRA needs to rebuild the
 * same adapted model, e.g. to load a saved adapter and merge it. `loraConfig()` makes one.
 */
export interface LoRAConfig {
  rank: number;
  alpha: number;
  dropout: number;
  /**
   * Which Linear layers to adapt: names matched against each module's dotted name, PEFT's rule —
   * the whole name or its last segments ('wq' matches 'layers.0.attn.wq', so does 'attn.wq');
   * or 'all-linear': every Linear except the output layer (see applyLoRA).
   */
  targetModules: string[] | 'all-linear';
}

/** applyLoRA's argument: a LoRAConfig (dropout optional) plus generators, which are not part of the saved config. */
export interface ApplyLoRAOptions extends LoRAOptions {
  targetModules: readonly string[] | 'all-linear';
  /** Draws every loraA, layer after layer in module order (the default generator otherwise). */
  generator?: Generator;
  /** Draws the dropout masks of every LoRA branch (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

function checkRank(rank: unknown, op: string): number {
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 1) throw new RangeError(`${op}: rank must be a positive integer, got ${String(rank)}`);
  return rank;
}

function checkAlpha(alpha: unknown, op: string): number {
  // α = 0 or α < 0 would silently switch the update off or flip it: always a typo.
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw new RangeError(`${op}: alpha must be a positive finite number, got ${String(alpha)}`);
  return alpha;
}

function checkDropout(p: unknown, op: string): number {
  // p = 1 would zero the branch in training, so the adapter could never learn: rejected.
  if (p === undefined) return 0;
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`${op}: dropout must be a probability in [0, 1), got ${String(p)}`);
  return p;
}

function checkTargets(targets: unknown, op: string): string[] | 'all-linear' {
  if (targets === 'all-linear') return 'all-linear';
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string' && t !== '' && !t.startsWith('.') && !t.endsWith('.'))) {
    throw new TypeError(`${op}: targetModules must be 'all-linear' or a non-empty array of module names such as ['wq', 'wv'], got ${JSON.stringify(targets) ?? String(targets)}`);
  }
  return [...new Set(targets as string[])];
}

const CONFIG_KEYS = new Set(['rank', 'alpha', 'dropout', 'targetModules']);
// applyLoRA's options may be passed as they are: their generators are dropped, not saved.
const RUNTIME_KEYS = new Set(['generator', 'dropoutGenerator']);

/**
 * Validates a LoRA configuration (applyLoRA's options, or one parsed back from JSON) and returns it
 * as plain data with every field present (dropout defaults to 0) and the generators left out:
 * `JSON.stringify(loraConfig(options))` is what to save next to an adapter, and
 * `applyLoRA(model, loraConfig(JSON.parse(text)))` rebuilds the same layers. Unknown keys are
 * errors, so a misspelt option is not silently dropped.
 */
export function loraConfig(input: unknown): LoRAConfig {
  const op = 'loraConfig';
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError(`${op}: expected an object { rank, alpha, dropout?, targetModules }, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
  const o = input as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !CONFIG_KEYS.has(k) && !RUNTIME_KEYS.has(k));
  if (unknown.length > 0) throw new Error(`${op}: unknown key(s) ${unknown.map((k) => `'${k}'`).join(', ')} (expected rank, alpha, dropout, targetModules)`);
  return {
    rank: checkRank(o.rank, op),
    alpha: checkAlpha(o.alpha, op),
    dropout: checkDropout(o.dropout, op),
    targetModules: checkTargets(o.targetModules, op),
  };
}

// ---- LoRALinear --------------------------------------------------------------------------------

/**
 * A plain Linear around existing tensors. Linear's constructor always draws a random init; building
 * a zero-size one and then setting the sizes avoids drawing (and discarding) a whole weight matrix,
 * which would also advance the caller's generator for nothing.
 */
function linearAround<L extends Linear>(target: L, weight: Tensor, bias: Tensor | null): L {
  // inFeatures/outFeatures are readonly for users; here they are set once, right after construction.
  Object.assign(target, { inFeatures: weight.shape[1], outFeatures: weight.shape[0], weight, bias });
  return target;
}

/**
 * y = x·Wᵀ + b + (α/r)·dropout(x)·Aᵀ·Bᵀ: a Linear whose weight and bias are frozen, plus the
 * trainable low-rank update loraA [r, in], loraB [out, r].
 *
 * `new LoRALinear(base, options)` (PEFT's `lora.Linear(base_layer, …)`) takes over `base`'s weight
 * and bias tensors — the same tensors, not copies: no second copy of the model in memory, a tied
 * weight stays tied, and whoever holds them sees them frozen (requiresGrad = false). They keep
 * their names, `weight` and `bias`; the adapter's parameters come after them, `loraA`, `loraB`.
 * Forward hooks registered on `base` stay on `base` (register them on the LoRALinear).
 */
export class LoRALinear extends Linear {
  readonly rank: number;
  readonly alpha: number;
  /** The LoRA branch's dropout probability (off in eval mode). */
  readonly dropout: number;
  /** α/r, the factor of the update. */
  readonly scaling: number;
  readonly dropoutGenerator: Generator | undefined;
  /** A [rank, inFeatures], Kaiming-uniform at init. */
  loraA: Tensor;
  /** B [outFeatures, rank], zero at init. */
  loraB: Tensor;

  constructor(base: Linear, options: LoRALinearOptions) {
    super(0, 0, { bias: false });
    const op = 'LoRALinear';
    if (!(base instanceof Linear)) throw new TypeError(`${op}: base must be a Linear, got ${describe(base)}`);
    if (base instanceof LoRALinear) throw new Error(`${op}: base is already a LoRALinear; merge() it first to stack another adapter`);
    if (typeof options !== 'object' || options === null) throw new TypeError(`${op}: options { rank, alpha, dropout? } are required`);
    this.rank = checkRank(options.rank, op);
    this.alpha = checkAlpha(options.alpha, op);
    this.dropout = checkDropout(options.dropout, op);
    this.scaling = this.alpha / this.rank;
    this.dropoutGenerator = options.dropoutGenerator;
    linearAround(this, base.weight, base.bias);
    this.training = base.training;
    // Frozen: the point of LoRA is that only A and B train (requiresGrad back on is the caller's choice).
    this.weight.requiresGrad = false;
    if (this.bias) this.bias.requiresGrad = false;
    // PEFT: nn.init.kaiming_uniform_(lora_A.weight, a=math.sqrt(5)), i.e. U(±1/√in); lora_B zeros.
    this.loraA = parameter(zeros([this.rank, this.inFeatures]));
    kaimingUniform_(this.loraA, Math.sqrt(5), options.generator);
    this.loraB = parameter(zeros([this.outFeatures, this.rank]));
  }

  override forward(x: Tensor): Tensor {
    // Linear's forward: the input check and the frozen base product x·Wᵀ + b in one GEMM.
    const base = super.forward(x);
    const p = this.training ? this.dropout : 0;
    const d = p > 0 ? dropoutOp(x, p, true, this.dropoutGenerator) : x;
    // α/r multiplies the r-wide intermediate, not the out-wide result: the same value up to float32
    // rounding, r/out of the work.
    const h = linear(d, this.loraA);
    return base.add(linear(this.scaling === 1 ? h : h.mul(this.scaling), this.loraB));
  }

  /** W + (α/r)·B·A [out, in], a new tensor (no graph): the weight of the merged layer. */
  mergedWeight(): Tensor {
    return noGrad(() => this.weight.add(this.loraB.matmul(this.loraA).mul(this.scaling)));
  }

  /**
   * A plain Linear computing what this layer computes without dropout (eval mode): weight
   * W + (α/r)·B·A, a copy of the bias. Its tensors are new, so this layer is left as it was; they
   * keep the base's requiresGrad (frozen, unless the caller changed it) and the training mode.
   */
  merge(): Linear {
    const weight = parameter(this.mergedWeight(), this.weight.requiresGrad);
    const bias = this.bias ? parameter(this.bias.detach().clone(), this.bias.requiresGrad) : null;
    const merged = linearAround(new Linear(0, 0, { bias: false }), weight, bias);
    merged.training = this.training;
    return merged;
  }

  override extraRepr(): string {
    return `${super.extraRepr()}, rank=${this.rank}, alpha=${this.alpha}${this.dropout > 0 ? `, dropout=${this.dropout}` : ''}`;
  }
}

// ---- model surgery -----------------------------------------------------------------------------

function describe(v: unknown): string {
  if (v instanceof Module) return `a ${v.constructor.name}`;
  return v === null ? 'null' : typeof v;
}

const join = (prefix: string, name: string): string => (prefix === '' ? name : `${prefix}.${name}`);

/** Every (parent, field name, child, dotted name) edge of the module tree, a shared child once per parent that holds it. */
function edges(model: AnyModule): { parent: AnyModule; field: string; child: AnyModule; name: string }[] {
  const out: { parent: AnyModule; field: string; child: AnyModule; name: string }[] = [];
  const visited = new Set<AnyModule>();
  const visit = (m: AnyModule, prefix: string): void => {
    if (visited.has(m)) return;
    visited.add(m);
    for (const [field, child] of m.namedChildren()) {
      out.push({ parent: m, field, child, name: join(prefix, field) });
      visit(child, join(prefix, field));
    }
  };
  visit(model, '');
  return out;
}

/** PEFT's matching rule: the whole dotted name, or its last segments. */
function matches(name: string, target: string): boolean {
  return name === target || name.endsWith(`.${target}`);
}

/** The names PEFT's 'all-linear' leaves out as the output layer, in TensorLM's and Hugging Face's spelling. */
const OUTPUT_LAYER_NAMES = new Set(['head', 'lmHead', 'lm_head']);

/** A short list of names for an error message: the first few and the count. */
function someNames(names: string[], max = 6): string {
  if (names.length === 0) return 'none';
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, … (${names.length} in all)`;
}

/**
 * Container items (ModuleList, Sequential, and so MLP) cannot be replaced in place: the containers
 * iterate a private list of their own, which assigning the field would not update, so the old layer
 * would keep running. Checked for every layer before any is replaced.
 */
function checkReplaceable(edge: { parent: AnyModule; name: string }, op: string): void {
  if (edge.parent instanceof ModuleList || edge.parent instanceof Sequential) {
    throw new Error(`${op}: cannot replace '${edge.name}', an item of a ${edge.parent.constructor.name} (containers keep their own list); adapt a module whose Linear layers are named fields`);
  }
}

/**
 * Adds LoRA to `model` in place: every Linear layer named by `targetModules` is replaced by a
 * LoRALinear around its weight and bias, and every parameter of the model except the LoRA ones
 * (loraA, loraB of every LoRALinear in it) is frozen (requiresGrad = false). Returns the dotted
 * names of the replaced layers, in module order.
 *
 * In TransformerLM the Linear layers are `layers.{i}.attn.{wq,wk,wv,wo}`, `layers.{i}.ffn.{w1,w2}`
 * (+ `w3` with SwiGLU) and `head` (untied only): the paper's choice is ['wq', 'wv'].
 * 'all-linear' (PEFT's) takes every Linear except the output layer — a Linear named 'head',
 * 'lmHead' or 'lm_head', or one whose weight is an Embedding's (tied); a tied TransformerLM has no
 * head module at all. A layer shared by several parents becomes one LoRALinear shared the same way.
 *
 * Everything is checked before anything changes; errors (one line each): a target that matches no
 * Linear (with some names that exist), a target naming a module that is not a Linear, a layer that
 * is already a LoRALinear or another Linear subclass, a Linear inside a ModuleList/Sequential.
 * Forward hooks on a replaced Linear are not carried over. The model's own parameters are marked
 * with `parameter()` as they are frozen, so none drops out of parameters() or stateDict.
 */
export function applyLoRA(model: AnyModule, options: ApplyLoRAOptions): string[] {
  const op = 'applyLoRA';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module, got ${describe(model)}`);
  const config = loraConfig(options);
  if (model instanceof Linear) throw new Error(`${op}: the model itself is a ${model.constructor.name}; wrap it with new LoRALinear(linear, { rank, alpha })`);
  const all = edges(model);
  const linearNames = all.filter((e) => e.child instanceof Linear).map((e) => e.name);
  let chosen: typeof all;
  if (config.targetModules === 'all-linear') {
    const embeddingWeights = new Set(model.modules().filter((m): m is Embedding => m instanceof Embedding).map((m) => m.weight));
    const isOutput = (e: (typeof all)[number]): boolean =>
      OUTPUT_LAYER_NAMES.has(e.field) || embeddingWeights.has((e.child as Linear).weight);
    chosen = all.filter((e) => e.child instanceof Linear && !isOutput(e));
    if (chosen.length === 0) throw new Error(`${op}: 'all-linear' found no Linear layer besides the output layer (Linear layers: ${someNames(linearNames)})`);
  } else {
    const targets = config.targetModules;
    chosen = all.filter((e) => targets.some((t) => matches(e.name, t)));
    const unmatched = targets.filter((t) => !chosen.some((e) => matches(e.name, t)));
    if (unmatched.length > 0) {
      const which = unmatched.length === targets.length ? `no module matches targetModules ${JSON.stringify(targets)}` : `targetModules ${JSON.stringify(unmatched)} match no module`;
      throw new Error(`${op}: ${which} (Linear layers: ${someNames(linearNames)})`);
    }
    const notLinear = chosen.find((e) => !(e.child instanceof Linear));
    if (notLinear) throw new Error(`${op}: target '${notLinear.name}' is ${describe(notLinear.child)}, not a Linear; name its Linear layers instead (Linear layers: ${someNames(linearNames)})`);
  }
  for (const e of chosen) {
    if (e.child instanceof LoRALinear) throw new Error(`${op}: '${e.name}' is already a LoRALinear; mergeLoRA(model) first to add another adapter`);
    if (e.child.constructor !== Linear) throw new Error(`${op}: '${e.name}' is a ${e.child.constructor.name}, a Linear subclass whose forward LoRALinear would not keep; only plain Linear layers can be adapted`);
    checkReplaceable(e, op);
  }
  const layerOptions: LoRALinearOptions = { rank: config.rank, alpha: config.alpha, dropout: config.dropout, generator: options.generator, dropoutGenerator: options.dropoutGenerator };
  const replacements = new Map<AnyModule, LoRALinear>();
  for (const e of chosen) {
    let lora = replacements.get(e.child);
    if (!lora) {
      lora = new LoRALinear(e.child as Linear, layerOptions);
      replacements.set(e.child, lora);
    }
    e.parent.registerModule(e.field, lora);
  }
  markOnlyLoRATrainable(model);
  return chosen.map((e) => e.name);
}

/** The LoRA parameters (loraA, loraB of every LoRALinear) of `model`, in module order: what the optimizer should get. */
export function loraParameters(model: AnyModule): Tensor[] {
  return model.modules().flatMap((m) => (m instanceof LoRALinear ? [m.loraA, m.loraB] : []));
}

/** PEFT's mark_only_lora_as_trainable. */
function markOnlyLoRATrainable(model: AnyModule): void {
  const lora = new Set(loraParameters(model));
  for (const p of model.parameters()) {
    if (lora.has(p)) p.requiresGrad = true;
    // A plain requires-grad leaf stops being a parameter once frozen; parameter() keeps it registered.
    else if (isParameter(p)) p.requiresGrad = false;
    else parameter(p, false);
  }
}

/**
 * Folds every LoRALinear of `model` back into a plain Linear with weight W + (α/r)·B·A, in place,
 * and returns the merged layers' names. The model then has exactly the base model's parameters and
 * state-dict names (a base checkpoint again) and computes what the adapted model computes in eval
 * mode, up to float32 rounding. Nothing is unfrozen: the merged layers keep the base's
 * requiresGrad (false after applyLoRA), and so does every other parameter; unfreezing for further
 * training is the caller's business (`model.requiresGrad_(true)`).
 */
export function mergeLoRA(model: AnyModule): string[] {
  const op = 'mergeLoRA';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module, got ${describe(model)}`);
  if (model instanceof LoRALinear) throw new Error(`${op}: the model itself is a LoRALinear; use its merge() method`);
  const chosen = edges(model).filter((e) => e.child instanceof LoRALinear);
  for (const e of chosen) checkReplaceable(e, op);
  const merged = new Map<AnyModule, Linear>();
  for (const e of chosen) {
    let lin = merged.get(e.child);
    if (!lin) {
      lin = (e.child as LoRALinear).merge();
      merged.set(e.child, lin);
    }
    e.parent.registerModule(e.field, lin);
  }
  return chosen.map((e) => e.name);
}

// ---- adapter state -----------------------------------------------------------------------------

/** [dotted name, tensor] of every adapter tensor, in module order (a shared layer under its first name). */
function loraEntries(model: AnyModule): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const [name, m] of model.namedModules()) {
    if (m instanceof LoRALinear) out.push([join(name, 'loraA'), m.loraA], [join(name, 'loraB'), m.loraB]);
  }
  return out;
}

/**
 * The adapter alone: `{ 'layers.0.attn.wq.loraA': A, 'layers.0.attn.wq.loraB': B, … }` — the same
 * names as in model.stateDict(), as detached tensors sharing storage with the model (like
 * stateDict; clone them to keep a snapshot). Empty when the model has no LoRA layers.
 */
export function loraStateDict(model: AnyModule): Record<string, Tensor> {
  if (!(model instanceof Module)) throw new TypeError(`loraStateDict: model must be a Module, got ${describe(model)}`);
  const dict: Record<string, Tensor> = {};
  for (const [name, t] of loraEntries(model)) dict[name] = t.detach();
  return dict;
}

/**
 * Copies an adapter (loraStateDict's names) into the model's LoRA layers, in place (optimizers
 * holding loraA/loraB keep working). Strict: every adapter tensor of the model must be in `dict`
 * and nothing else, with the same shape and float32; all of it is checked before anything is
 * copied, and the problems are reported together on one line. Apply LoRA with the adapter's config
 * first (loraConfig).
 */
export function loadLoRAStateDict(model: AnyModule, dict: Readonly<Record<string, Tensor>>): void {
  const op = 'loadLoRAStateDict';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module, got ${describe(model)}`);
  if (typeof dict !== 'object' || dict === null) throw new TypeError(`${op}: dict must be an object of tensors by name, got ${dict === null ? 'null' : typeof dict}`);
  const entries = loraEntries(model);
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(dict, k);
  const own = new Set(entries.map(([name]) => name));
  const quote = (keys: string[]): string => someNames(keys.map((k) => `"${k}"`));
  const errors: string[] = [];
  if (entries.length === 0) errors.push('the model has no LoRA layers (applyLoRA first)');
  const missing = entries.map(([name]) => name).filter((name) => !has(name));
  const unexpected = Object.keys(dict).filter((name) => !own.has(name));
  if (missing.length > 0) errors.push(`missing key(s) ${quote(missing)}`);
  if (unexpected.length > 0) errors.push(`unexpected key(s) ${quote(unexpected)}`);
  for (const [name, target] of entries) {
    if (!has(name)) continue;
    const source: unknown = dict[name];
    if (!(source instanceof Tensor)) errors.push(`${name} is ${describe(source)}, not a Tensor`);
    else if (source.dtype !== 'float32') errors.push(`${name} is ${source.dtype}, expected float32`);
    else if (!shapesEqual(source.shape, target.shape)) errors.push(`size mismatch for ${name}: got ${formatShape(source.shape)}, the model has ${formatShape(target.shape)}`);
  }
  if (errors.length > 0) throw new Error(`${op}: ${errors.join('; ')}`);
  noGrad(() => {
    for (const [name, target] of entries) if (dict[name] !== target) target.copy_(dict[name]);
  });
}
