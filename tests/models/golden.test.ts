/**
 * tests/golden/models.json (PyTorch reference implementations with the same parameter names):
 * every transformer module's forward output, input gradients and parameter gradients, and whole
 * 2-layer TransformerLMs for each norm × mlp × pos combination (plus post-norm, MQA and
 * interleaved RoPE): logits and loss within 1e-4 relative, all parameter gradients within 1e-3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getBackend, listBackends, nn, noGrad, setBackend, Tensor, TransformerLM, type TransformerConfigInputAlias } from './imports.js';
import { expectRelClose, fromGolden, goldenPath, loadModelsGolden, maxAbs, stateFromGolden, type ModuleCase } from './helpers.js';

const golden = loadModelsGolden();
const OUT_RTOL = 1e-4;
const GRAD_RTOL = 1e-3;

/** Builds the module a case describes, with its parameters loaded, and the forward to run. */
function build(c: ModuleCase): { module: nn.AnyModule; run: (xs: Tensor[]) => Tensor } {
  const a = c.args as Record<string, never>;
  switch (c.module) {
    case 'Embedding': {
      const m = new nn.Embedding(a.numEmbeddings, a.embeddingDim, { paddingIdx: a.paddingIdx });
      return { module: m, run: ([ids]) => m.forward(ids) };
    }
    case 'LayerNorm': {
      const m = new nn.LayerNorm(a.normalizedShape, { eps: a.eps, elementwiseAffine: a.elementwiseAffine, bias: a.bias });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'RMSNorm': {
      const m = new nn.RMSNorm(a.normalizedShape, { eps: a.eps });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'BatchNorm1d': {
      const m = new nn.BatchNorm1d(a.numFeatures, { eps: a.eps, momentum: a.momentum });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'GLU': {
      const m = new nn.GLU(a.dim);
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'FeedForward': {
      const m = new nn.FeedForward(a.dModel, a.dFF, { bias: a.bias });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'SwiGLU': {
      const m = new nn.SwiGLU(a.dModel, a.dFF, { bias: a.bias });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    case 'RotaryEmbedding': {
      const m = new nn.RotaryEmbedding(a.headDim, a.maxSeqLen, { theta: a.theta, pairing: a.pairing });
      return { module: m, run: ([x]) => m.forward(x, a.offset) };
    }
    case 'SinusoidalPositionalEncoding': {
      const m = new nn.SinusoidalPositionalEncoding(a.maxSeqLen, a.dModel);
      return { module: m, run: ([x]) => m.forward(x, a.offset) };
    }
    case 'LearnedPositionalEmbedding': {
      const m = new nn.LearnedPositionalEmbedding(a.maxSeqLen, a.dModel);
      return { module: m, run: ([x]) => m.forward(x, a.offset) };
    }
    case 'MultiHeadAttention': {
      const rope = a.rope ? new nn.RotaryEmbedding(a.dModel / a.nHeads, a.maxSeqLen, { pairing: a.rope }) : null;
      const m = new nn.MultiHeadAttention(a.dModel, a.nHeads, { nKvHeads: a.nKvHeads, bias: a.bias, causal: a.causal, rope });
      const mask = c.mask ? fromGolden(c.mask) : null;
      return { module: m, run: ([x]) => m.forward(x, { mask }) };
    }
    case 'TransformerBlock': {
      const rope = a.rope ? new nn.RotaryEmbedding(a.dModel / a.nHeads, a.maxSeqLen, { pairing: a.rope }) : null;
      const m = new nn.TransformerBlock({ ...(c.args as unknown as nn.TransformerBlockOptions), rope });
      return { module: m, run: ([x]) => m.forward(x) };
    }
    default:
      throw new Error(`no builder for module '${c.module}' (case ${c.name})`);
  }
}

const initialBackend = getBackend();

describe.each(listBackends())('on the %s backend', (backend) => {
  beforeAll(() => setBackend(backend));
  afterAll(() => setBackend(initialBackend));

  describe('transformer modules vs PyTorch', () => {
    it('covers every module kind', () => {
      const kinds = new Set(golden.modules.map((c) => c.module));
      for (const k of ['Embedding', 'LayerNorm', 'RMSNorm', 'BatchNorm1d', 'GLU', 'FeedForward', 'SwiGLU', 'RotaryEmbedding', 'SinusoidalPositionalEncoding', 'LearnedPositionalEmbedding', 'MultiHeadAttention', 'TransformerBlock']) {
        expect(kinds.has(k), k).toBe(true);
      }
    });

    for (const c of golden.modules) {
      it(c.name, () => {
        const { module, run } = build(c);
        module.loadStateDict(stateFromGolden(c.params));
        const inputs = c.inputs.map((g) => {
          const t = fromGolden(g);
          if (t.dtype === 'float32') t.requiresGrad = true;
          return t;
        });
        const out = run(inputs);
        expectRelClose(out, c.out, `${c.name} out`, OUT_RTOL);
        out.backward(fromGolden(c.gradOut));
        // The key bias's gradient is 0 in exact arithmetic (softmax ignores a per-row shift), so
        // gradients are judged with a floor on the scale of all of the case's gradients.
        const scale = maxAbs([...c.grads.inputs, ...Object.values(c.grads.params)]);
        c.grads.inputs.forEach((g, i) => {
          if (g) expectRelClose(inputs[i].grad, g, `${c.name} input grad ${i}`, GRAD_RTOL, 1e-2, Math.max(scale * 0.1, maxAbs([g])));
        });
        const params = Object.fromEntries(module.namedParameters());
        expect(Object.keys(params).sort(), `${c.name} parameter names`).toEqual(Object.keys(c.grads.params).sort());
        for (const [name, g] of Object.entries(c.grads.params)) expectRelClose(params[name].grad, g, `${c.name} grad ${name}`, GRAD_RTOL, 1e-2, Math.max(scale * 0.1, maxAbs([g])));
        if (c.after) {
          const state = module.stateDict();
          for (const [name, g] of Object.entries(c.after)) expectRelClose(state[name], g, `${c.name} ${name} after the step`, OUT_RTOL);
        }
        if (c.eval) {
          module.eval();
          const y = noGrad(() => run([fromGolden(c.eval!.input)]));
          expectRelClose(y, c.eval.out, `${c.name} eval out`, OUT_RTOL);
        }
        if (c.table) expectRelClose((module as nn.SinusoidalPositionalEncoding).pe, c.table, `${c.name} table`, 1e-6, 1e-3);
      });
    }
  });

  describe('TransformerLM vs PyTorch (2 layers)', () => {
    it('covers every norm × mlp × pos combination', () => {
      const combos = new Set(golden.models.map((c) => `${String(c.config.norm)}/${String(c.config.mlp)}/${String(c.config.pos)}`));
      for (const norm of ['layer', 'rms']) for (const mlp of ['gelu', 'swiglu']) for (const pos of ['learned', 'sinusoidal', 'rope']) expect(combos.has(`${norm}/${mlp}/${pos}`)).toBe(true);
    });

    for (const c of golden.models) {
      it(c.name, () => {
        const model = new TransformerLM(c.config as unknown as TransformerConfigInputAlias);
        model.loadStateDict(stateFromGolden(c.params));
        const { logits, loss } = model.forward(fromGolden(c.ids), fromGolden(c.targets));
        expectRelClose(logits, c.logits, `${c.name} logits`, OUT_RTOL);
        expect(Math.abs((loss as Tensor).item() - c.loss), `${c.name} loss ${(loss as Tensor).item()} vs ${c.loss}`).toBeLessThanOrEqual(OUT_RTOL * Math.abs(c.loss));
        (loss as Tensor).backward();
        const params = Object.fromEntries(model.namedParameters());
        expect(Object.keys(params).sort()).toEqual(Object.keys(c.grads).sort());
        const scale = maxAbs(Object.values(c.grads));
        for (const [name, g] of Object.entries(c.grads)) expectRelClose(params[name].grad, g, `${c.name} grad ${name}`, GRAD_RTOL, 1e-2, Math.max(scale * 0.1, maxAbs([g])));
      });
    }

    it('loads a PyTorch-exported safetensors file and gives the same logits', () => {
      const s = golden.safetensors;
      const model = new TransformerLM(s.config as unknown as TransformerConfigInputAlias);
      const result = model.loadSafetensors(goldenPath(s.file));
      expect(result.missingKeys).toEqual([]);
      expect(result.unexpectedKeys).toEqual([]);
      const { logits } = noGrad(() => model.forward(fromGolden(s.ids)));
      expectRelClose(logits, s.logits, 'safetensors logits', OUT_RTOL);
    });
  });
});
