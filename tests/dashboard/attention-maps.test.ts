/**
 * attentionMaps (src/models/inspect.ts) and the attnDropout hook point of MultiHeadAttention: the maps are
 * probabilities (rows sum to 1, zero above the diagonal), equal an explicit softmax(q·kᵀ·scale)
 * computed here from the layer's own weights, and reproduce the layer's output when multiplied by
 * v — for MHA, GQA, MQA, learned positions and RoPE.
 */
import { describe, expect, it } from 'vitest';
import { noGrad, tensor, TransformerLM, type Tensor } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { attentionMaps } from '../../src/models/inspect.js';
import type { MultiHeadAttention } from '../../src/nn/attention.js';
import type { Linear } from '../../src/nn/layers.js';

const T = 9;

const VARIANTS: [string, Partial<TransformerConfigInput>][] = [
  ['MHA, learned positions', { nKvHeads: 4, pos: 'learned' }],
  ['GQA (4 heads, 2 kv heads), RoPE', { nKvHeads: 2, pos: 'rope', norm: 'rms', mlp: 'swiglu', bias: false }],
  ['MQA, RoPE interleaved, post-norm', { nKvHeads: 1, pos: 'rope', ropePairing: 'interleaved', normPlacement: 'post' }],
  ['GQA, learned positions, μP scale', { nKvHeads: 2, pos: 'learned', mup: { baseWidth: 8 } }],
];

function makeModel(overrides: Partial<TransformerConfigInput>): TransformerLM {
  // A large init std makes the attention far from uniform, so a wrong map cannot pass by accident.
  return new TransformerLM({ vocabSize: 17, dModel: 16, nLayers: 2, nHeads: 4, dFF: 24, maxSeqLen: 12, initStd: 0.4, ...overrides });
}

const IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5];

/** x·Wᵀ + b for x [T, in] as rows of numbers. */
function linear(x: number[][], layer: Linear): number[][] {
  const w = layer.weight.tolist() as number[][];
  const b = layer.bias ? layer.bias.toArray() : null;
  return x.map((row) => w.map((wr, o) => wr.reduce((s, wi, i) => s + wi * row[i], b ? b[o] : 0)));
}

/** [T, H·D] rows → [H][T][D]. */
function heads(rows: number[][], h: number, d: number): number[][][] {
  return Array.from({ length: h }, (_, hh) => rows.map((r) => r.slice(hh * d, (hh + 1) * d)));
}

function rope(model: TransformerLM, x: number[][][]): number[][][] {
  if (!model.rope) return x;
  const [h, t, d] = [x.length, x[0].length, x[0][0].length];
  const rotated = noGrad(() => model.rope!.forward(tensor(Float32Array.from(x.flat(2)), { shape: [h, t, d] })));
  return rotated.tolist() as number[][][];
}

/** Captures each layer's attention input and output during one forward pass. */
function captureAttention(model: TransformerLM, ids: number[]): { x: Tensor; y: Tensor }[] {
  const seen: { x: Tensor; y: Tensor }[] = [];
  const handles = Array.from(model.layers, (_, i) =>
    model.block(i).attn.registerForwardHook((_attn, [x], y) => {
      seen[i] = { x, y };
    }),
  );
  try {
    noGrad(() => model.forward(tensor(Int32Array.from(ids), { shape: [1, ids.length] })));
  } finally {
    for (const h of handles) h.remove();
  }
  return seen;
}

function explicitProbs(model: TransformerLM, attn: MultiHeadAttention, x: number[][]): number[][][] {
  const { nHeads: h, nKvHeads: hkv, headDim: d, scale } = attn;
  const q = rope(model, heads(linear(x, attn.wq), h, d));
  const k = rope(model, heads(linear(x, attn.wk), hkv, d));
  const g = h / hkv;
  return q.map((qh, head) =>
    qh.map((qi, i) => {
      const kh = k[Math.floor(head / g)];
      const scores = kh.map((kj, j) => (j <= i ? scale * qi.reduce((s, v, c) => s + v * kj[c], 0) : -Infinity));
      const max = Math.max(...scores);
      const e = scores.map((s) => (s === -Infinity ? 0 : Math.exp(s - max)));
      const total = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / total);
    }),
  );
}

describe('attentionMaps', () => {
  for (const [label, overrides] of VARIANTS) {
    it(`${label}: probabilities equal softmax(q·kᵀ·scale) and reproduce the attention output`, () => {
      const model = makeModel(overrides);
      const maps = attentionMaps(model, IDS);
      expect(maps.tokens).toBe(T);
      expect(maps.nLayers).toBe(2);
      expect(maps.nHeads).toBe(4);
      const captured = captureAttention(model, IDS);
      for (let l = 0; l < maps.nLayers; l++) {
        const map = maps.layers[l];
        expect(map.length).toBe(4 * T * T);
        const attn = model.block(l).attn as MultiHeadAttention;
        const x = (captured[l].x.tolist() as number[][][])[0];
        const expected = explicitProbs(model, attn, x);
        let maxErr = 0;
        let fromUniform = 0;
        for (let h = 0; h < 4; h++) {
          for (let i = 0; i < T; i++) {
            let sum = 0;
            for (let j = 0; j < T; j++) {
              const p = map[(h * T + i) * T + j];
              if (j > i) expect(p).toBe(0);
              sum += p;
              if (j <= i) fromUniform = Math.max(fromUniform, Math.abs(p - 1 / (i + 1)));
              maxErr = Math.max(maxErr, Math.abs(p - expected[h][i][j]));
            }
            expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
          }
        }
        expect(maxErr).toBeLessThan(2e-5);
        expect(fromUniform).toBeGreaterThan(0.05); // the check above is not between two near-uniform maps

        // y = wo(P·v), with query head h reading kv head ⌊h/G⌋.
        const { nHeads: h, nKvHeads: hkv, headDim: d } = attn;
        const v = heads(linear(x, attn.wv), hkv, d);
        const merged = Array.from({ length: T }, (_, i) =>
          Array.from({ length: h * d }, (_, c) => {
            const head = Math.floor(c / d);
            const vh = v[Math.floor(head / (h / hkv))];
            let s = 0;
            for (let j = 0; j < T; j++) s += map[(head * T + i) * T + j] * vh[j][c % d];
            return s;
          }),
        );
        const y = linear(merged, attn.wo);
        const actual = (captured[l].y.tolist() as number[][][])[0];
        const outErr = Math.max(...y.flatMap((row, i) => row.map((val, c) => Math.abs(val - actual[i][c]))));
        expect(outErr).toBeLessThan(1e-4);
      }
    });
  }

  it('restores training mode, removes its hooks and validates ids', () => {
    const model = makeModel({ nKvHeads: 2 });
    model.train();
    attentionMaps(model, [1, 2, 3]);
    expect(model.training).toBe(true);
    expect(model.block(0).attn.training).toBe(true);
    // No hook left behind: every module runs its class's forward again, unwrapped.
    for (const [name, m] of model.namedModules()) {
      expect(m.hasForwardHooks(), name).toBe(false);
      expect(Object.prototype.hasOwnProperty.call(m, 'forward'), name).toBe(false);
    }
    expect(() => attentionMaps(model, [])).toThrow(/1 to 12 tokens/);
    expect(() => attentionMaps(model, Array.from({ length: 13 }, () => 1))).toThrow(/1 to 12 tokens/);
    expect(() => attentionMaps(model, [1, 17])).toThrow(/ids\[1\] = 17/);
  });

  it('a single token attends only to itself', () => {
    const maps = attentionMaps(makeModel({}), [7]);
    for (const layer of maps.layers) expect(Array.from(layer)).toEqual([1, 1, 1, 1]);
  });
});
