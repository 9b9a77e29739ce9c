/**
 * μP in the model: config, the m = 1 identity with SP, init, multipliers, attention scale, and
 * the optimizer param groups (Tensor Programs V rules; models/mup.ts).
 */
import { describe, expect, it } from 'vitest';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { attentionScale, muParamGroups, mupParamInfo, readoutMultiplier, widthMultiplier } from '../../src/models/mup.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { recordActivations } from '../../src/mup/coord-check.js';
import { MultiHeadAttention } from '../../src/nn/attention.js';
import { RotaryEmbedding } from '../../src/nn/positional.js';
import { AdamW } from '../../src/optim/adam.js';
import { randint, randn } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const base: TransformerConfigInput = { vocabSize: 17, dModel: 32, nLayers: 2, nHeads: 4, maxSeqLen: 16 };

function std(t: Tensor): number {
  const a = t.toTypedArray() as Float32Array;
  let s = 0;
  let s2 = 0;
  for (const v of a) {
    s += v;
    s2 += v * v;
  }
  const m = s / a.length;
  return Math.sqrt(s2 / a.length - m * m);
}

function grads(model: TransformerLM): Record<string, number[]> {
  return Object.fromEntries(model.namedParameters().map(([n, p]) => [n, Array.from((p.grad as Tensor).toTypedArray())]));
}

describe('μP config', () => {
  it('is null by default and fills defaults relative to the config', () => {
    expect(resolveConfig(base).mup).toBeNull();
    const c = resolveConfig({ ...base, dModel: 128, dFF: 512, mup: { baseWidth: 32 } });
    expect(c.mup).toEqual({ baseWidth: 32, baseFFWidth: 128, baseHeadDim: 8, inputMultiplier: 1, outputMultiplier: 1, zeroInitQuery: false, zeroInitReadout: false, weightDecay: 'with-lr' });
    expect(Object.isFrozen(c.mup)).toBe(true);
    // resolving a resolved config changes nothing
    expect(resolveConfig(c)).toEqual(c);
  });

  it('rejects bad input with every problem listed', () => {
    expect(() => resolveConfig({ ...base, mup: { baseWidth: 0 } })).toThrow(/mup.baseWidth must be a positive integer/);
    expect(() => resolveConfig({ ...base, mup: { baseWidth: 16.5 } })).toThrow(/mup.baseWidth must be a positive integer/);
    expect(() => resolveConfig({ ...base, mup: { baseWidth: 16, outputMultiplier: -1, weightDecay: 'scaled' as never } })).toThrow(
      /mup.outputMultiplier must be a positive number, got -1; mup.weightDecay must be 'with-lr' or 'independent', got 'scaled'/,
    );
    expect(() => resolveConfig({ ...base, mup: { baseWidth: 16, zeroInitReadout: true } })).toThrow(/zeroInitReadout needs an untied readout/);
    expect(() => resolveConfig({ ...base, tieWeights: false, mup: { baseWidth: 16, zeroInitReadout: true } })).not.toThrow();
    expect(() => resolveConfig({ ...base, mup: { baseWidth: 16, baseWidht: 3 } as never })).toThrow(/unknown mup key 'baseWidht'/);
    expect(() => resolveConfig({ ...base, mup: 16 as never })).toThrow(/mup must be an object/);
  });
});

describe('μP at m = 1 is the standard model, bit for bit', () => {
  const variants: Partial<TransformerConfigInput>[] = [
    {},
    { norm: 'rms', mlp: 'swiglu', pos: 'rope', tieWeights: false, bias: false },
    { normPlacement: 'post', nKvHeads: 2, pos: 'sinusoidal' },
    { dModel: 24, nHeads: 3, dFF: 40 },
  ];
  for (const v of variants) {
    it(`same weights, logits, loss and gradients: ${JSON.stringify(v)}`, () => {
      const cfg = { ...base, ...v } as TransformerConfigInput;
      const sp = new TransformerLM(cfg, { generator: new Generator(5) });
      const mup = new TransformerLM({ ...cfg, mup: { baseWidth: cfg.dModel } }, { generator: new Generator(5) });
      expect(widthMultiplier(mup.config)).toBe(1);
      expect(attentionScale(mup.config)).toBe(1 / Math.sqrt(cfg.dModel / cfg.nHeads));
      expect(mup.parameters().map((p) => Array.from(p.toTypedArray()))).toEqual(sp.parameters().map((p) => Array.from(p.toTypedArray())));
      const ids = randint(0, 17, [2, 9], { generator: new Generator(1) });
      const targets = randint(0, 17, [2, 9], { generator: new Generator(2) });
      const a = sp.forward(ids, targets);
      const b = mup.forward(ids, targets);
      expect(Array.from(b.logits.toTypedArray())).toEqual(Array.from(a.logits.toTypedArray()));
      expect((b.loss as Tensor).item()).toBe((a.loss as Tensor).item());
      (a.loss as Tensor).backward();
      (b.loss as Tensor).backward();
      expect(grads(mup)).toEqual(grads(sp));
    });
  }

  it('and trains identically through its param groups', () => {
    const run = (mup: boolean) => {
      const model = new TransformerLM({ ...base, mup: mup ? { baseWidth: 32 } : null }, { generator: new Generator(3) });
      const opt = new AdamW(muParamGroups(model, { lr: 1e-2, weightDecay: 0.1 }), { lr: 1e-2, weightDecay: 0.1 });
      const ids = randint(0, 17, [2, 12], { generator: new Generator(4) });
      const losses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const loss = model.forward(ids, ids).loss as Tensor;
        losses.push(loss.item());
        opt.zeroGrad();
        loss.backward();
        opt.step();
      }
      return { losses, weights: model.parameters().map((p) => Array.from(p.toTypedArray())) };
    };
    const a = run(false);
    const b = run(true);
    expect(b.losses).toEqual(a.losses);
    expect(b.weights).toEqual(a.weights);
  });
});

describe('μP init (variance ∝ 1/fan_in relative to the base)', () => {
  const cfg: TransformerConfigInput = { vocabSize: 300, dModel: 128, nLayers: 2, nHeads: 4, maxSeqLen: 64, tieWeights: false };
  const sp = new TransformerLM(cfg, { generator: new Generator(7) });
  const mup = new TransformerLM({ ...cfg, mup: { baseWidth: 32 } }, { generator: new Generator(7) });
  const named = (m: TransformerLM) => new Map(m.namedParameters());

  it('divides hidden matrices by √m (residual projections keep 1/√(2L)); embeddings and readout keep initStd', () => {
    const s = named(sp);
    const u = named(mup);
    for (const name of ['layers.0.attn.wq.weight', 'layers.1.attn.wv.weight', 'layers.0.ffn.w1.weight', 'layers.1.attn.wo.weight', 'layers.0.ffn.w2.weight']) {
      // Same draws, so the ratio is 1/√m = 1/2 up to float rounding.
      expect(std(u.get(name) as Tensor) / std(s.get(name) as Tensor)).toBeCloseTo(0.5, 5);
    }
    expect(std(u.get('layers.0.attn.wq.weight') as Tensor)).toBeCloseTo(0.01, 3);
    expect(std(u.get('layers.0.attn.wo.weight') as Tensor)).toBeCloseTo(0.02 / 2 / 2, 3);
    for (const name of ['tokEmb.weight', 'posEmb.weight', 'head.weight']) expect(Array.from((u.get(name) as Tensor).toTypedArray())).toEqual(Array.from((s.get(name) as Tensor).toTypedArray()));
  });

  it('zero-initialises query and readout on request, leaving every other weight as it was', () => {
    const z = new TransformerLM({ ...cfg, mup: { baseWidth: 32, zeroInitQuery: true, zeroInitReadout: true } }, { generator: new Generator(7) });
    const u = named(mup);
    for (const [name, p] of z.namedParameters()) {
      const values = Array.from(p.toTypedArray());
      if (name.endsWith('attn.wq.weight') || name === 'head.weight') expect(values.every((x) => x === 0)).toBe(true);
      else expect(values).toEqual(Array.from((u.get(name) as Tensor).toTypedArray()));
    }
  });
});

describe('μP forward multipliers and attention scale', () => {
  it('multiplies the embeddings by α_in and the readout input by α_out/m, tied or untied', () => {
    for (const tieWeights of [true, false]) {
      const cfg = { ...base, dModel: 64, tieWeights, mup: { baseWidth: 16, inputMultiplier: 3, outputMultiplier: 2 } };
      const model = new TransformerLM(cfg, { generator: new Generator(2) });
      expect(readoutMultiplier(model.config)).toBe(0.5);
      const ids = randint(0, 17, [1, 5], { generator: new Generator(3) });
      const seen = new Map<string, Tensor>();
      const recording = recordActivations(model, (name, x) => seen.set(name, x));
      const { logits } = noGrad(() => model.forward(ids));
      recording.remove();
      const posEmb = model.posEmb as NonNullable<typeof model.posEmb>;
      const expectedEmb = noGrad(() => posEmb.forward(model.tokEmb.forward(ids)).mul(3));
      expect(Array.from((seen.get('embedding') as Tensor).toTypedArray())).toEqual(Array.from(expectedEmb.toTypedArray()));
      const h = noGrad(() => model.hidden(ids));
      const manual = noGrad(() => h.mul(0.5).matmul(model.headWeight.transpose(0, 1)));
      const got = logits.toTypedArray();
      const want = manual.toTypedArray();
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
      expect([...seen.keys()]).toEqual(['embedding', 'layers.0.attn', 'layers.0.ffn', 'layers.1.attn', 'layers.1.ffn', 'logits']);
    }
  });

  it('scales attention logits by √D_base/D: 1/D up to the base constant', () => {
    // fixed head count: D grows with m
    const c = resolveConfig({ ...base, dModel: 128, mup: { baseWidth: 32 } });
    expect(attentionScale(c)).toBeCloseTo(Math.sqrt(8) / 32, 15);
    // fixed head size (baseHeadDim = D): SP's 1/√D at every width
    const h = resolveConfig({ ...base, dModel: 128, nHeads: 16, mup: { baseWidth: 32, baseHeadDim: 8 } });
    expect(attentionScale(h)).toBeCloseTo(1 / Math.sqrt(8), 15);
    expect(attentionScale(resolveConfig(base))).toBe(1 / Math.sqrt(8));
    const model = new TransformerLM(c);
    expect(model.block(0).attn.scale).toBe(attentionScale(c));
  });

  for (const variant of ['plain', 'rope', 'mask'] as const) {
    it(`MultiHeadAttention's scale acts on q·k (${variant})`, () => {
      // scale s with weights W equals the default 1/√D with wq (and its bias) multiplied by s·√D.
      const d = 32;
      const heads = 4;
      const hd = d / heads;
      const s = 0.05;
      const rope = variant === 'rope' ? new RotaryEmbedding(hd, 16) : null;
      const a = new MultiHeadAttention(d, heads, { scale: s, rope, generator: new Generator(1) });
      const b = new MultiHeadAttention(d, heads, { rope, generator: new Generator(1) });
      noGrad(() => {
        b.wq.weight.mul_(s * Math.sqrt(hd));
        b.wq.bias?.mul_(s * Math.sqrt(hd));
      });
      const x = randn([2, 7, d], { generator: new Generator(2) });
      const mask = variant === 'mask' ? randn([7, 7], { generator: new Generator(3) }) : null;
      const ya = noGrad(() => a.forward(x, { mask })).toTypedArray();
      const yb = noGrad(() => b.forward(x, { mask })).toTypedArray();
      for (let i = 0; i < ya.length; i++) expect(ya[i]).toBeCloseTo(yb[i], 5);
      // and it is not the default
      const c = new MultiHeadAttention(d, heads, { rope, generator: new Generator(1) });
      const yc = noGrad(() => c.forward(x, { mask })).toTypedArray();
      expect(Math.max(...ya.map((v, i) => Math.abs(v - yc[i])))).toBeGreaterThan(1e-4);
    });
  }

  it('rejects a bad attention scale', () => {
    expect(() => new MultiHeadAttention(8, 2, { scale: 0 })).toThrow(/scale must be a positive number/);
  });
});

describe('μP param groups (Adam LR ∝ 1/fan_in for hidden matrices)', () => {
  it('without μP: the two standard groups, matrices decayed, vectors not', () => {
    const model = new TransformerLM(base);
    const groups = muParamGroups(model, { lr: 0.01, weightDecay: 0.1 });
    expect(groups.map((g) => [g.lr, g.lrScale, g.weightDecay])).toEqual([
      [0.01, 1, 0.1],
      [0.01, 1, 0],
    ]);
    expect(groups[0].params).toEqual(model.parameters().filter((p) => p.ndim >= 2));
    expect(groups[1].params).toEqual(model.parameters().filter((p) => p.ndim < 2));
  });

  it('with μP: hidden matrices at lr/m with weight decay ×m (with-lr) or as given (independent)', () => {
    const cfg = { ...base, dModel: 128, tieWeights: false };
    for (const weightDecay of ['with-lr', 'independent'] as const) {
      const model = new TransformerLM({ ...cfg, mup: { baseWidth: 32, weightDecay } });
      const groups = muParamGroups(model, { lr: 0.01, weightDecay: 0.1 });
      expect(groups.map((g) => [g.lr, g.lrScale, g.weightDecay])).toEqual([
        [0.0025, 0.25, weightDecay === 'with-lr' ? 0.4 : 0.1],
        [0.01, 1, 0.1],
        [0.01, 1, 0],
      ]);
      const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
      expect(groups[0].params.map((p) => names.get(p))).toEqual(model.namedParameters().filter(([n, p]) => n.startsWith('layers.') && p.ndim === 2).map(([n]) => n));
      expect(groups[1].params.map((p) => names.get(p))).toEqual(['tokEmb.weight', 'posEmb.weight', 'head.weight']);
      expect(groups.flatMap((g) => g.params).length).toBe(model.parameters().length);
    }
  });

  it('gives w2 its own ratio when the FFN widens differently, and classifies every parameter', () => {
    const model = new TransformerLM({ ...base, dModel: 64, dFF: 512, mup: { baseWidth: 32, baseFFWidth: 64 } });
    const info = mupParamInfo(model);
    const get = (n: string) => info.find((i) => i.name === n);
    expect(get('layers.0.ffn.w2.weight')).toMatchObject({ role: 'hidden', fanInMultiplier: 8, lrScale: 0.125 });
    expect(get('layers.0.ffn.w1.weight')).toMatchObject({ role: 'hidden', fanInMultiplier: 2, lrScale: 0.5 });
    expect(get('tokEmb.weight')).toMatchObject({ role: 'input', lrScale: 1, decay: true });
    expect(get('layers.0.attn.wq.bias')).toMatchObject({ role: 'vector', lrScale: 1, decay: false });
    expect(get('norm.weight')).toMatchObject({ role: 'vector', lrScale: 1 });
    const groups = muParamGroups(model, { lr: 1, weightDecay: 0 });
    expect(groups.map((g) => g.lrScale)).toEqual([0.5, 0.125, 1, 1]);
  });

  it('validates its options, and optimizers validate lrScale', () => {
    const model = new TransformerLM(base);
    expect(() => muParamGroups(model, { lr: -1, weightDecay: 0 })).toThrow(/lr must be a non-negative number/);
    expect(() => new AdamW([{ params: model.parameters(), lrScale: 0 }])).toThrow(/param group 0 has an invalid lrScale 0/);
    const opt = new AdamW(muParamGroups(new TransformerLM({ ...base, dModel: 64, mup: { baseWidth: 32 } }), { lr: 0.01, weightDecay: 0 }));
    expect(opt.stateDict().paramGroups.map((g) => g.lrScale)).toEqual([0.5, 1, 1]);
  });
});
