/**
 * LoRA (src/nn/lora.ts): the layer against PyTorch goldens (tests/golden/lora.json, written by
 * tools/golden/lora.py from the paper's equation) and finite differences; model surgery on a
 * TransformerLM (exact equality at B = 0, frozen base, merge), the adapter state dict, dropout on
 * the branch only, and the error messages.
 */
import { describe, expect, it } from 'vitest';
import { defaultGenerator, F, Generator, models, nn, noGrad, optim, randint, randn, tensor, Tensor, TransformerLM, zeros } from '../../src/index.js';
import { expectClose, fromGolden, loadGolden, type GoldenTensor } from '../helpers/golden.js';
import { gradcheck } from '../helpers/gradcheck.js';
import type { MultiHeadAttention } from '../../src/nn/attention.js';
import { expectOneLineError } from '../helpers/errors.js';

const { Linear, LoRALinear, MLP, Module, applyLoRA, mergeLoRA, loraStateDict, loadLoRAStateDict, loraParameters, loraConfig, init } = nn;
type Linear = InstanceType<typeof Linear>;
type LoRALinear = InstanceType<typeof LoRALinear>;

interface LoRACase {
  name: string;
  rank: number;
  alpha: number;
  weight: GoldenTensor;
  bias: GoldenTensor | null;
  loraA: GoldenTensor;
  loraB: GoldenTensor;
  x: GoldenTensor;
  out: GoldenTensor;
  gradOut: GoldenTensor;
  grads: { x: GoldenTensor; loraA: GoldenTensor; loraB: GoldenTensor };
  mergedWeight: GoldenTensor;
}

const cases = loadGolden<{ cases: LoRACase[] }>('lora.json').cases;
const value = (g: GoldenTensor): Tensor => fromGolden(g).value;

/** The golden layer: a Linear with W, b wrapped in a LoRALinear whose A, B are then set. */
function goldenLayer(c: LoRACase): LoRALinear {
  const [outFeatures, inFeatures] = c.weight.shape;
  const base = new Linear(inFeatures, outFeatures, { bias: c.bias !== null });
  noGrad(() => {
    base.weight.copy_(value(c.weight));
    if (c.bias) base.bias?.copy_(value(c.bias));
  });
  const layer = new LoRALinear(base, { rank: c.rank, alpha: c.alpha });
  noGrad(() => {
    layer.loraA.copy_(value(c.loraA));
    layer.loraB.copy_(value(c.loraB));
  });
  return layer;
}


// The brief's model: one layer of the tiny preset (tied embeddings, GELU MLP, learned positions).
const tinyConfig = models.presetConfig('tiny', { vocabSize: 20, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, dFF: 64 });
// A Llama-style variant with an untied head, to see 'all-linear' leave the head out and take w3.
const llamaConfig = models.presetConfig('tiny', { vocabSize: 20, dModel: 32, nLayers: 2, nHeads: 2, nKvHeads: 1, dFF: 48, mlp: 'swiglu', norm: 'rms', pos: 'rope', tieWeights: false, bias: false });

const ids = randint(0, 20, [2, 7], { generator: new Generator(100) });
const targets = randint(0, 20, [2, 7], { generator: new Generator(101) });

function snapshot(dict: Record<string, Tensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(dict).map(([k, t]) => [k, t.clone()]));
}

describe('LoRALinear against PyTorch (tests/golden/lora.json)', () => {
  it('has the cases the generator writes', () => {
    expect(cases.map((c) => c.name)).toEqual(['lora/2d_bias_r2_a4', 'lora/2d_nobias_r3_a3', 'lora/3d_bias_r4_a6', 'lora/3d_nobias_r1_a0.5', 'lora/2d_bias_transposed_x_r2_a16']);
  });

  for (const c of cases) {
    it(`${c.name}: output, gradients w.r.t. x, A, B (W, b frozen) and the merged weight`, () => {
      const layer = goldenLayer(c);
      const { leaf, value: x } = fromGolden(c.x, true);
      const out = layer.forward(x);
      expectClose(out, c.out, `${c.name} out`);
      out.backward(value(c.gradOut));
      const gx = x === leaf ? leaf.grad : x.grad;
      expect(gx, `${c.name}: x.grad`).not.toBeNull();
      expectClose(gx as Tensor, c.grads.x, `${c.name} grad x`);
      expectClose(layer.loraA.grad as Tensor, c.grads.loraA, `${c.name} grad loraA`);
      expectClose(layer.loraB.grad as Tensor, c.grads.loraB, `${c.name} grad loraB`);
      expect(layer.weight.grad).toBeNull();
      expect(layer.bias?.grad ?? null).toBeNull();
      expectClose(layer.mergedWeight(), c.mergedWeight, `${c.name} merged weight`);
      const merged = layer.merge();
      expectClose(merged.weight, c.mergedWeight, `${c.name} merge().weight`);
      expectClose(noGrad(() => merged.forward(x)), c.out, `${c.name} merge().forward`);
    });
  }
});

describe('LoRALinear', () => {
  it('passes a finite-difference gradcheck w.r.t. x, A, B (and W, b when unfrozen), 2-D and 3-D', () => {
    const gen = new Generator(7);
    const layer = new LoRALinear(new Linear(3, 2, { generator: gen }), { rank: 2, alpha: 3, generator: gen });
    const B = randn([2, 2], { generator: gen });
    const f = (x: Tensor, w: Tensor, b: Tensor, a: Tensor, bb: Tensor): Tensor => {
      layer.weight = w;
      layer.bias = b;
      layer.loraA = a;
      layer.loraB = bb;
      return layer.forward(x);
    };
    gradcheck('LoRALinear 2-D', f, [randn([4, 3], { generator: gen }), layer.weight, layer.bias as Tensor, layer.loraA, B]);
    gradcheck('LoRALinear 3-D', f, [randn([2, 3, 3], { generator: gen }), layer.weight, layer.bias as Tensor, layer.loraA, B]);
  });

  it("takes over the base's tensors, frozen, and initialises A like PEFT (Kaiming uniform from its generator), B at zero", () => {
    const base = new Linear(6, 4, { generator: new Generator(1) });
    const before = defaultGenerator.getState();
    const layer = new LoRALinear(base, { rank: 3, alpha: 6, generator: new Generator(11) });
    expect(defaultGenerator.getState(), 'no draw from the default generator').toEqual(before);
    expect(layer.weight).toBe(base.weight);
    expect(layer.bias).toBe(base.bias);
    expect(base.weight.requiresGrad).toBe(false);
    expect(base.bias?.requiresGrad).toBe(false);
    expect([layer.inFeatures, layer.outFeatures, layer.rank, layer.alpha, layer.scaling, layer.dropout]).toEqual([6, 4, 3, 6, 2, 0]);
    const expectedA = init.kaimingUniform_(zeros([3, 6]), Math.sqrt(5), new Generator(11));
    expect(layer.loraA.toArray()).toEqual(expectedA.toArray());
    expect(Math.max(...layer.loraA.toArray().map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(6));
    expect(layer.loraB.shape).toEqual([4, 3]);
    expect(layer.loraB.toArray().every((v) => v === 0)).toBe(true);
    expect(layer.namedParameters().map(([n, p]) => [n, p.requiresGrad])).toEqual([
      ['weight', false],
      ['bias', false],
      ['loraA', true],
      ['loraB', true],
    ]);
    expect(String(layer)).toBe('LoRALinear(inFeatures=6, outFeatures=4, bias=true, rank=3, alpha=6)');
  });

  it('merge() is a plain Linear with new tensors; the layer is left as it was', () => {
    const gen = new Generator(3);
    const layer = new LoRALinear(new Linear(5, 3, { generator: gen }), { rank: 2, alpha: 2, dropout: 0.3, generator: gen });
    noGrad(() => layer.loraB.copy_(randn([3, 2], { generator: gen })));
    layer.eval();
    const weightBefore = layer.weight.toArray();
    const merged = layer.merge();
    expect(merged.constructor).toBe(Linear);
    expect([merged.inFeatures, merged.outFeatures, merged.training]).toEqual([5, 3, false]);
    expect(merged.weight).not.toBe(layer.weight);
    expect(merged.bias).not.toBe(layer.bias);
    expect(merged.bias?.toArray()).toEqual(layer.bias?.toArray());
    expect(merged.weight.toArray()).toEqual(layer.mergedWeight().toArray());
    expect(merged.namedParameters().map(([n, p]) => [n, p.requiresGrad])).toEqual([
      ['weight', false],
      ['bias', false],
    ]);
    expect(layer.weight.toArray()).toEqual(weightBefore);
    const x = randn([4, 5], { generator: gen });
    const a = layer.forward(x).toArray();
    const b = merged.forward(x).toArray();
    // x·(W + s·B·A)ᵀ against x·Wᵀ + s·(x·Aᵀ)·Bᵀ: equal up to float32 reassociation.
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-6);
  });

  it('drops out only the LoRA branch, and only in training mode', () => {
    const gen = new Generator(5);
    const base = new Linear(6, 4, { generator: gen });
    const layer = new LoRALinear(base, { rank: 2, alpha: 4, dropout: 0.5, generator: gen, dropoutGenerator: new Generator(9) });
    noGrad(() => layer.loraB.copy_(randn([4, 2], { generator: gen })));
    const x = randn([5, 6], { generator: gen });
    const withInput = (d: Tensor): number[] => F.linear(x, layer.weight, layer.bias).add(F.linear(F.linear(d, layer.loraA).mul(2), layer.loraB)).toArray();

    // Training: the same mask as the one dropout op draws from a generator in the same state.
    const y = layer.forward(x).toArray();
    expect(y).toEqual(withInput(F.dropout(x, 0.5, true, new Generator(9))));
    expect(y).not.toEqual(withInput(x));
    expect(layer.forward(x).toArray(), 'a new mask each call').not.toEqual(y);

    // The base path never sees the dropout: with B = 0 the output is the base layer's, exactly.
    const zeroB = new LoRALinear(new Linear(6, 4, { generator: new Generator(6) }), { rank: 2, alpha: 4, dropout: 0.9 });
    expect(zeroB.forward(x).toArray()).toEqual(F.linear(x, zeroB.weight, zeroB.bias).toArray());

    // Eval: no dropout at all, and deterministic.
    layer.eval();
    expect(layer.forward(x).toArray()).toEqual(withInput(x));
    expect(layer.forward(x).toArray()).toEqual(withInput(x));
  });

  it('rejects bad options and bases with one-line errors', () => {
    const base = new Linear(4, 3);
    expectOneLineError(() => new LoRALinear(base, { rank: 0, alpha: 1 }), /^LoRALinear: rank must be a positive integer, got 0$/);
    expectOneLineError(() => new LoRALinear(base, { rank: 1.5, alpha: 1 }), /rank must be a positive integer, got 1.5/);
    expectOneLineError(() => new LoRALinear(base, { rank: 2, alpha: 0 }), /^LoRALinear: alpha must be a positive finite number, got 0$/);
    expectOneLineError(() => new LoRALinear(base, { rank: 2, alpha: Number.NaN }), /alpha must be a positive finite number, got NaN/);
    expectOneLineError(() => new LoRALinear(base, { rank: 2, alpha: 4, dropout: 1 }), /^LoRALinear: dropout must be a probability in \[0, 1\), got 1$/);
    expectOneLineError(() => new LoRALinear(base, { rank: 2, alpha: 4, dropout: -0.1 }), /dropout must be a probability in \[0, 1\), got -0.1/);
    expectOneLineError(() => new LoRALinear(new nn.ReLU() as unknown as Linear, { rank: 2, alpha: 4 }), /^LoRALinear: base must be a Linear, got a ReLU$/);
    const lora = new LoRALinear(new Linear(4, 3), { rank: 2, alpha: 4 });
    expectOneLineError(() => new LoRALinear(lora, { rank: 2, alpha: 4 }), /^LoRALinear: base is already a LoRALinear; merge\(\) it first/);
    expectOneLineError(() => lora.forward(randn([2, 5])), /^Linear\(4, 3\): input last dim is 5, expected 4$/);
  });
});

describe('applyLoRA / mergeLoRA on a TransformerLM', () => {
  it('with B = 0 the adapted model equals the base model exactly, and only A, B train', () => {
    const model = new TransformerLM(tinyConfig, { generator: new Generator(1) });
    const baseKeys = Object.keys(model.stateDict());
    const before = model.forward(ids, targets);
    const names = applyLoRA(model, { rank: 4, alpha: 8, dropout: 0.1, targetModules: 'all-linear', generator: new Generator(2) });
    // Tied embeddings: there is no head module to leave out.
    expect(names).toEqual(['layers.0.attn.wq', 'layers.0.attn.wk', 'layers.0.attn.wv', 'layers.0.attn.wo', 'layers.0.ffn.w1', 'layers.0.ffn.w2']);
    const after = model.forward(ids, targets);
    expect(after.logits.toArray()).toEqual(before.logits.toArray());
    expect(after.loss?.item()).toBe(before.loss?.item());
    model.eval();
    expect(model.forward(ids).logits.toArray()).toEqual(before.logits.toArray());

    const loraKeys = names.flatMap((n) => [`${n}.loraA`, `${n}.loraB`]);
    expect(Object.keys(model.stateDict()).sort()).toEqual([...baseKeys, ...loraKeys].sort());
    for (const [name, p] of model.namedParameters()) expect(p.requiresGrad, name).toBe(name.endsWith('.loraA') || name.endsWith('.loraB'));
    // r·(in + out) per layer: attention 4·(32+32) × 4, w1 4·(32+64), w2 4·(64+32).
    expect(model.numParameters({ trainable: true })).toBe(4 * 64 * 4 + 4 * 96 * 2);
    expect(loraParameters(model)).toHaveLength(12);

    // A base checkpoint still loads by name: only the adapter's keys are missing.
    const result = model.loadStateDict(new TransformerLM(tinyConfig, { generator: new Generator(1) }).stateDict(), { strict: false });
    expect(result.unexpectedKeys).toEqual([]);
    expect(result.missingKeys.sort()).toEqual([...loraKeys].sort());
  });

  it("'all-linear' leaves an untied head out; names match by their last segments", () => {
    const model = new TransformerLM(llamaConfig, { generator: new Generator(4) });
    const names = applyLoRA(model, { rank: 2, alpha: 4, targetModules: 'all-linear' });
    expect(names).toHaveLength(14);
    expect(names.filter((n) => n.startsWith('layers.1.'))).toEqual(['layers.1.attn.wq', 'layers.1.attn.wk', 'layers.1.attn.wv', 'layers.1.attn.wo', 'layers.1.ffn.w1', 'layers.1.ffn.w3', 'layers.1.ffn.w2']);
    expect(model.head).not.toBeInstanceOf(LoRALinear);
    expect(model.head?.weight.requiresGrad).toBe(false);

    const other = new TransformerLM(llamaConfig, { generator: new Generator(4) });
    expect(applyLoRA(other, { rank: 2, alpha: 4, targetModules: ['wq', 'attn.wv', 'layers.0.ffn.w3', 'head'] })).toEqual([
      'layers.0.attn.wq',
      'layers.0.attn.wv',
      'layers.0.ffn.w3',
      'layers.1.attn.wq',
      'layers.1.attn.wv',
      'head',
    ]);
    expect(other.block(1).attn.wq).toBeInstanceOf(LoRALinear);
    expect(other.block(1).ffn).not.toHaveProperty('w3.loraA');
  });

  it('after AdamW steps on the LoRA parameters the base is unchanged, and merged equals unmerged', () => {
    const model = new TransformerLM(tinyConfig, { generator: new Generator(3) });
    const base = snapshot(model.stateDict());
    const names = applyLoRA(model, { rank: 4, alpha: 8, targetModules: ['wq', 'wv', 'w1', 'w2'], generator: new Generator(5) });
    const opt = new optim.AdamW(loraParameters(model), { lr: 1e-2 });
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      opt.zeroGrad();
      const { loss } = model.forward(ids, targets);
      (loss as Tensor).backward();
      losses.push((loss as Tensor).item());
      opt.step();
    }
    expect(losses[4]).toBeLessThan(losses[0]);
    const state = model.stateDict();
    for (const [key, t] of Object.entries(base)) {
      expect(state[key].toArray(), `${key} unchanged`).toEqual(t.toArray());
    }
    for (const [name, p] of model.namedParameters()) if (!name.includes('.lora')) expect(p.grad, `${name} has no gradient`).toBeNull();
    const wq = model.block(0).attn.wq as LoRALinear;
    expect(wq.loraB.toArray().some((v) => v !== 0)).toBe(true);

    model.eval();
    const unmerged = model.forward(ids).logits.toArray();
    expect(mergeLoRA(model)).toEqual(names);
    expect(model.modules().some((m) => m instanceof LoRALinear)).toBe(false);
    expect(Object.keys(model.stateDict())).toEqual(Object.keys(base));
    expect((model.block(0).attn as MultiHeadAttention).wq.weight.toArray()).not.toEqual(base['layers.0.attn.wq.weight'].toArray());
    expect((model.block(0).attn as MultiHeadAttention).wk.weight.toArray()).toEqual(base['layers.0.attn.wk.weight'].toArray());
    // Nothing is unfrozen by merging: that is the caller's business.
    expect(model.parameters().every((p) => !p.requiresGrad)).toBe(true);
    const merged = model.forward(ids).logits.toArray();
    // x·(W + s·B·A)ᵀ against x·Wᵀ + s·(x·Aᵀ)·Bᵀ: the same sums in another order, so equal up to
    // float32 reassociation (logits here are up to ~0.6, where one ulp is ~6e-8).
    let worst = 0;
    for (let i = 0; i < merged.length; i++) worst = Math.max(worst, Math.abs(merged[i] - unmerged[i]));
    expect(worst).toBeLessThanOrEqual(1e-6);
  });

  it('loraStateDict / loadLoRAStateDict round-trip an adapter, with its config through JSON', () => {
    const options = { rank: 3, alpha: 6, targetModules: ['wq', 'wv'], generator: new Generator(8) };
    const model = new TransformerLM(tinyConfig, { generator: new Generator(1) });
    applyLoRA(model, options);
    noGrad(() => {
      for (const p of loraParameters(model)) p.copy_(randn(p.shape, { generator: new Generator(p.size) }).mul(0.1));
    });
    const dict = loraStateDict(model);
    expect(Object.keys(dict)).toEqual(['layers.0.attn.wq.loraA', 'layers.0.attn.wq.loraB', 'layers.0.attn.wv.loraA', 'layers.0.attn.wv.loraB']);
    expect(dict['layers.0.attn.wq.loraA'].shape).toEqual([3, 32]);
    expect(dict['layers.0.attn.wv.loraB'].shape).toEqual([32, 3]);
    expect(dict['layers.0.attn.wq.loraA'].requiresGrad).toBe(false);

    const text = JSON.stringify(loraConfig(options));
    expect(JSON.parse(text)).toEqual({ rank: 3, alpha: 6, dropout: 0, targetModules: ['wq', 'wv'] });
    const restored = new TransformerLM(tinyConfig, { generator: new Generator(1) });
    applyLoRA(restored, { ...loraConfig(JSON.parse(text)), generator: new Generator(99) });
    loadLoRAStateDict(restored, snapshot(dict));
    expect(restored.forward(ids).logits.toArray()).toEqual(model.forward(ids).logits.toArray());
    expect(loraStateDict(new TransformerLM(tinyConfig))).toEqual({});
  });

  it('loadLoRAStateDict is strict, checks everything before copying, and says what is wrong on one line', () => {
    const model = new TransformerLM(tinyConfig, { generator: new Generator(1) });
    applyLoRA(model, { rank: 2, alpha: 2, targetModules: ['wq'] });
    const good = snapshot(loraStateDict(model));
    const before = loraParameters(model).map((p) => p.toArray());
    const { ['layers.0.attn.wq.loraB']: _dropped, ...missing } = good;
    expectOneLineError(() => loadLoRAStateDict(model, missing), /^loadLoRAStateDict: missing key\(s\) "layers\.0\.attn\.wq\.loraB"$/);
    expectOneLineError(() => loadLoRAStateDict(model, { ...good, 'layers.0.attn.wk.loraA': zeros([2, 32]) }), /^loadLoRAStateDict: unexpected key\(s\) "layers\.0\.attn\.wk\.loraA"$/);
    expectOneLineError(
      () => loadLoRAStateDict(model, { ...good, 'layers.0.attn.wq.loraA': randn([4, 32]) }),
      /^loadLoRAStateDict: size mismatch for layers\.0\.attn\.wq\.loraA: got \[4, 32\], the model has \[2, 32\]$/,
    );
    expectOneLineError(() => loadLoRAStateDict(model, { ...good, 'layers.0.attn.wq.loraB': tensor(new Int32Array(64), { shape: [32, 2] }) }), /layers\.0\.attn\.wq\.loraB is int32, expected float32/);
    expectOneLineError(() => loadLoRAStateDict(model, { ...good, 'layers.0.attn.wq.loraB': [1, 2] as unknown as Tensor }), /layers\.0\.attn\.wq\.loraB is object, not a Tensor/);
    expectOneLineError(() => loadLoRAStateDict(new TransformerLM(tinyConfig), good), /^loadLoRAStateDict: the model has no LoRA layers \(applyLoRA first\); unexpected key\(s\)/);
    expect(loraParameters(model).map((p) => p.toArray()), 'nothing was copied').toEqual(before);
  });

  it('explains what it cannot do with one-line errors, changing nothing', () => {
    const model = new TransformerLM(tinyConfig, { generator: new Generator(1) });
    expectOneLineError(
      () => applyLoRA(model, { rank: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] }),
      /^applyLoRA: no module matches targetModules \["q_proj","v_proj"\] \(Linear layers: layers\.0\.attn\.wq, layers\.0\.attn\.wk, layers\.0\.attn\.wv, layers\.0\.attn\.wo, layers\.0\.ffn\.w1, layers\.0\.ffn\.w2\)$/,
    );
    expectOneLineError(() => applyLoRA(model, { rank: 2, alpha: 4, targetModules: ['wq', 'wx'] }), /^applyLoRA: targetModules \["wx"\] match no module \(Linear layers: /);
    expectOneLineError(() => applyLoRA(model, { rank: 2, alpha: 4, targetModules: ['attn'] }), /^applyLoRA: target 'layers\.0\.attn' is a MultiHeadAttention, not a Linear; name its Linear layers instead/);
    expectOneLineError(() => applyLoRA(model, { rank: 0, alpha: 4, targetModules: ['wq'] }), /^loraConfig: rank must be a positive integer, got 0$/);
    expectOneLineError(() => applyLoRA(model, { rank: 2, alpha: 4, targetModules: [] }), /^loraConfig: targetModules must be 'all-linear' or a non-empty array of module names/);
    expect(model.modules().some((m) => m instanceof LoRALinear), 'nothing replaced').toBe(false);
    expect(model.parameters().every((p) => p.requiresGrad), 'nothing frozen').toBe(true);

    applyLoRA(model, { rank: 2, alpha: 4, targetModules: ['wq'] });
    expectOneLineError(() => applyLoRA(model, { rank: 2, alpha: 4, targetModules: ['wq'] }), /^applyLoRA: 'layers\.0\.attn\.wq' is already a LoRALinear; mergeLoRA\(model\) first/);

    const mlp = new MLP([4, 8, 2]);
    expectOneLineError(() => applyLoRA(mlp, { rank: 2, alpha: 4, targetModules: 'all-linear' }), /^applyLoRA: cannot replace '0', an item of a MLP \(containers keep their own list\)/);
    expectOneLineError(() => applyLoRA(new Linear(3, 3), { rank: 2, alpha: 4, targetModules: 'all-linear' }), /^applyLoRA: the model itself is a Linear; wrap it with new LoRALinear/);
    expectOneLineError(() => mergeLoRA(new LoRALinear(new Linear(3, 3), { rank: 1, alpha: 1 })), /^mergeLoRA: the model itself is a LoRALinear; use its merge\(\) method$/);

    class Quantised extends Linear {}
    class Holder extends Module {
      fc = new Quantised(3, 3);
      forward(x: Tensor): Tensor {
        return this.fc.forward(x);
      }
    }
    expectOneLineError(() => applyLoRA(new Holder(), { rank: 1, alpha: 1, targetModules: ['fc'] }), /^applyLoRA: 'fc' is a Quantised, a Linear subclass/);
  });

  it('loraConfig validates plain data and rejects unknown keys', () => {
    expect(loraConfig({ rank: 8, alpha: 16, targetModules: 'all-linear', generator: new Generator(1) })).toEqual({ rank: 8, alpha: 16, dropout: 0, targetModules: 'all-linear' });
    expect(loraConfig({ rank: 8, alpha: 16, dropout: 0.05, targetModules: ['wq', 'wq', 'wv'] }).targetModules).toEqual(['wq', 'wv']);
    expectOneLineError(() => loraConfig({ rank: 8, alpha: 16, dropOut: 0.1, targetModules: ['wq'] }), /^loraConfig: unknown key\(s\) 'dropOut' \(expected rank, alpha, dropout, targetModules\)$/);
    expectOneLineError(() => loraConfig({ rank: 8, alpha: 16, targetModules: 'all' }), /^loraConfig: targetModules must be 'all-linear' or a non-empty array of module names such as \['wq', 'wv'\], got "all"$/);
    expectOneLineError(() => loraConfig('r=8'), /^loraConfig: expected an object \{ rank, alpha, dropout\?, targetModules \}, got string$/);
    expectOneLineError(() => loraConfig({ rank: 8, alpha: 16, dropout: '0.1', targetModules: ['wq'] }), /dropout must be a probability in \[0, 1\), got 0\.1/);
  });
});
