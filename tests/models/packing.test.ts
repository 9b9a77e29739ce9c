/**
 * Packed rows: several documents in one row with their own positions (restarting at 0) and
 * documentIds compute what each document computes on its own — logits, loss and parameter
 * gradients — for every position kind; explicit positions 0..T−1 without documentIds are
 * bit-identical to the default path; the options are validated.
 */
import { describe, expect, it } from 'vitest';
import { Generator, noGrad, randint, tensor, TransformerLM, type Tensor } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { packedAttentionMask } from '../../src/models/transformer.js';

const V = 13;
const W = 12;

const small = (overrides: Partial<TransformerConfigInput>): TransformerConfigInput => ({ vocabSize: V, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: W, ...overrides });

const VARIANTS: [string, Partial<TransformerConfigInput>][] = [
  ['layer/gelu/learned', { norm: 'layer', mlp: 'gelu', pos: 'learned' }],
  ['layer/swiglu/sinusoidal (MQA)', { norm: 'layer', mlp: 'swiglu', pos: 'sinusoidal', nKvHeads: 1 }],
  ['rms/swiglu/rope half (GQA, untied)', { norm: 'rms', mlp: 'swiglu', pos: 'rope', ropePairing: 'half', bias: false, tieWeights: false }],
  ['rms/gelu/rope interleaved (MHA, post-norm)', { norm: 'rms', mlp: 'gelu', pos: 'rope', ropePairing: 'interleaved', nKvHeads: 4, normPlacement: 'post' }],
];

/** Two rows: [A(5) | B(4) | C(3)] and [D(7) | E(3) | padding(2)]. */
const ROWS = [[5, 4, 3], [7, 3]];

interface Doc {
  row: number;
  start: number;
  ids: Tensor;
  targets: Tensor;
}

function packedInputs(seed: number) {
  const gen = new Generator(seed);
  const ids = randint(0, V, [ROWS.length, W], { generator: gen }).toTypedArray() as Int32Array;
  const targets = randint(0, V, [ROWS.length, W], { generator: gen }).toTypedArray() as Int32Array;
  const positions = new Int32Array(ROWS.length * W);
  const documentIds = new Int32Array(ROWS.length * W).fill(-1);
  const docs: Doc[] = [];
  ROWS.forEach((lengths, row) => {
    let start = 0;
    lengths.forEach((n, k) => {
      for (let t = 0; t < n; t++) {
        positions[row * W + start + t] = t;
        documentIds[row * W + start + t] = k;
        // Some ignored targets inside documents, as SFT's prompt tokens are.
        if ((start + t) % 4 === 1) targets[row * W + start + t] = -100;
      }
      const slice = (a: Int32Array) => tensor(a.slice(row * W + start, row * W + start + n), { shape: [1, n] });
      docs.push({ row, start, ids: slice(ids), targets: slice(targets) });
      start += n;
    });
    // Padding: its own document at positions 0.., targets ignored.
    for (let t = start; t < W; t++) {
      positions[row * W + t] = t - start;
      targets[row * W + t] = -100;
    }
  });
  const shape = [ROWS.length, W];
  return { ids: tensor(ids, { shape }), targets: tensor(targets, { shape }), positions: tensor(positions, { shape }), documentIds: tensor(documentIds, { shape }), docs };
}

const counted = (targets: Tensor) => (targets.toTypedArray() as Int32Array).filter((v) => v !== -100).length;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function grads(model: TransformerLM): Map<string, Float32Array> {
  return new Map(model.namedParameters().map(([name, p]) => [name, (p.grad ? p.grad.toTypedArray() : new Float32Array(p.size)) as Float32Array]));
}

describe('TransformerLM packed rows (positions + documentIds)', () => {
  for (const [label, cfg] of VARIANTS) {
    it(`${label}: logits and loss of packed documents equal each document on its own`, () => {
      const model = new TransformerLM(small(cfg), { generator: new Generator(11) });
      const { ids, targets, positions, documentIds, docs } = packedInputs(5);
      const packed = noGrad(() => model.forward(ids, targets, { positions, documentIds }));
      const logits = packed.logits.toTypedArray() as Float32Array;
      let weighted = 0;
      for (const doc of docs) {
        const alone = noGrad(() => model.forward(doc.ids, doc.targets));
        const n = doc.ids.shape[1];
        const expected = alone.logits.toTypedArray() as Float32Array;
        const got = logits.subarray((doc.row * W + doc.start) * V, (doc.row * W + doc.start + n) * V);
        expect(maxAbsDiff(got, expected)).toBeLessThan(1e-5);
        weighted += (alone.loss as Tensor).item() * counted(doc.targets);
      }
      // The packed loss is the mean over every counted target: the documents' means weighted by their counts.
      expect(Math.abs((packed.loss as Tensor).item() - weighted / counted(targets))).toBeLessThan(1e-5);
    });

    it(`${label}: parameter gradients of a packed batch equal the sum over separate forwards`, () => {
      const model = new TransformerLM(small(cfg), { generator: new Generator(12) });
      const { ids, targets, positions, documentIds, docs } = packedInputs(6);
      // Summed losses (mean × count) make both sides the same sum over tokens, so the gradients match exactly up to rounding.
      (model.forward(ids, targets, { positions, documentIds }).loss as Tensor).mul(counted(targets)).backward();
      const packed = grads(model);
      model.zeroGrad();
      let total: Tensor | null = null;
      for (const doc of docs) {
        const l = (model.forward(doc.ids, doc.targets).loss as Tensor).mul(counted(doc.targets));
        total = total ? total.add(l) : l;
      }
      (total as Tensor).backward();
      const separate = grads(model);
      for (const [name, g] of packed) {
        const ref = separate.get(name) as Float32Array;
        const scale = Math.max(1, ...Array.from(ref, Math.abs));
        expect(maxAbsDiff(g, ref) / scale, name).toBeLessThan(1e-5);
      }
    });

    it(`${label}: explicit positions 0..T−1 without documentIds are bit-identical to the default path`, () => {
      const model = new TransformerLM(small(cfg), { generator: new Generator(13) });
      const ids = randint(0, V, [2, 9], { generator: new Generator(14) });
      const targets = randint(0, V, [2, 9], { generator: new Generator(15) });
      const positions = tensor(Int32Array.from({ length: 18 }, (_, i) => i % 9), { shape: [2, 9] });
      const base = noGrad(() => model.forward(ids, targets));
      const explicit = noGrad(() => model.forward(ids, targets, { positions }));
      expect(Array.from(explicit.logits.toTypedArray())).toEqual(Array.from(base.logits.toTypedArray()));
      expect((explicit.loss as Tensor).item()).toBe((base.loss as Tensor).item());
      // And hidden() takes the same options.
      const h = noGrad(() => model.hidden(ids, { positions }));
      expect(Array.from(h.toTypedArray())).toEqual(Array.from(noGrad(() => model.hidden(ids)).toTypedArray()));
    });
  }

  it('a hooked attention layer sees no probability across documents', () => {
    const model = new TransformerLM(small({ pos: 'rope' }), { generator: new Generator(16) });
    const { ids, positions, documentIds } = packedInputs(7);
    let probs: Tensor | null = null;
    const handle = model.block(0).attn.attnDropout.registerForwardHook((_m, inputs) => {
      probs = inputs[0];
    });
    noGrad(() => model.forward(ids, null, { positions, documentIds }));
    handle.remove();
    const p = (probs as unknown as Tensor).toTypedArray() as Float32Array;
    const mask = packedAttentionMask(documentIds).toTypedArray() as Uint8Array;
    const [b, h] = [ROWS.length, 4];
    for (let r = 0; r < b; r++)
      for (let head = 0; head < h; head++)
        for (let e = 0; e < W * W; e++) if (!mask[r * W * W + e]) expect(p[(r * h + head) * W * W + e]).toBe(0);
  });

  it('packedAttentionMask is causal and block-diagonal', () => {
    const mask = packedAttentionMask(tensor(Int32Array.from([0, 0, 1, 1, 1]), { shape: [1, 5] }));
    expect(mask.shape).toEqual([1, 1, 5, 5]);
    expect(Array.from(mask.toTypedArray())).toEqual([1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1]);
  });

  it('validates positions and documentIds with one-line errors', () => {
    const model = new TransformerLM(small({ pos: 'learned' }), { generator: new Generator(17) });
    const ids = randint(0, V, [2, 4], { generator: new Generator(18) });
    const int = (data: number[], shape: number[]) => tensor(Int32Array.from(data), { shape });
    expect(() => model.forward(ids, null, { positions: int([0, 1, 2, 3], [1, 4]) })).toThrow(/positions must be an int32 tensor \[B, T\] = \[2, 4\] like ids, got int32 \[1, 4\]/);
    expect(() => model.forward(ids, null, { documentIds: tensor(new Float32Array(8), { shape: [2, 4] }) })).toThrow(/documentIds must be an int32 tensor \[B, T\] = \[2, 4\] like ids, got float32 \[2, 4\]/);
    expect(() => model.forward(ids, null, { positions: int([0, 1, 2, W, 0, 1, 2, 3], [2, 4]) })).toThrow(/position 12 is outside \[0, maxSeqLen 12\)/);
    expect(() => model.forward(ids, null, { positions: int([0, 1, 2, -1, 0, 1, 2, 3], [2, 4]) })).toThrow(/position -1/);
    const cache = model.createCache(2);
    expect(() => model.forward(ids, null, { cache, positions: int([0, 1, 2, 3, 0, 1, 2, 3], [2, 4]) })).toThrow(/cannot be combined with a KV cache/);
    expect(() => model.hidden(ids, { cache, documentIds: int([0, 0, 1, 1, 0, 0, 0, 0], [2, 4]) })).toThrow(/cannot be combined with a KV cache/);
  });
});
