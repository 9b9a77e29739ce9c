/**
 * The gradient buffer pool (tensor/pool.ts) only changes where memory comes from: training with it
 * must give bit-identical parameters to training without it, for models whose backward passes
 * share gradient buffers in every way (residual adds, views, GQA heads, tied weights).
 */
import { describe, expect, it } from 'vitest';
import { Generator, randint, Tensor } from '../../src/index.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { AdamW } from '../../src/optim/adam.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import { backward } from '../../src/autograd/engine.js';
import { bufferPoolStats, setBufferPoolLimit } from '../../src/tensor/pool.js';
import type { TransformerConfigInput } from '../../src/models/config.js';

function trainParams(config: TransformerConfigInput, poolBytes: number, steps = 4, recycleIntermediates = false): Float32Array[] {
  setBufferPoolLimit(poolBytes);
  try {
    const gen = new Generator(3);
    const model = new TransformerLM(config, { generator: gen, dropoutGenerator: new Generator(4) });
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
    const x = randint(0, config.vocabSize, [4, 32], { generator: gen });
    const y = randint(0, config.vocabSize, [4, 32], { generator: gen });
    for (let i = 0; i < steps; i++) {
      const loss = model.forward(x, y).loss as Tensor;
      opt.zeroGrad();
      backward(loss, undefined, { recycleIntermediates });
      clipGradNorm(model.parameters(), 1.0);
      opt.step();
    }
    return model.parameters().map((p) => Float32Array.from(p.toTypedArray() as Float32Array));
  } finally {
    setBufferPoolLimit(256 * 1024 * 1024);
  }
}

const configs: [string, TransformerConfigInput][] = [
  ['GPT-2 style (LayerNorm, GELU, learned positions, tied)', { vocabSize: 50, dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: 32 }],
  ['Llama style (RMSNorm, SwiGLU, RoPE, GQA, untied)', { vocabSize: 50, dModel: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 128, maxSeqLen: 32, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, tieWeights: false }],
  ['post-norm', { vocabSize: 50, dModel: 64, nLayers: 2, nHeads: 2, dFF: 128, maxSeqLen: 32, normPlacement: 'post' }],
  ['dropout, sinusoidal positions, MQA', { vocabSize: 50, dModel: 64, nLayers: 2, nHeads: 4, nKvHeads: 1, dFF: 128, maxSeqLen: 32, dropout: 0.1, pos: 'sinusoidal' }],
  ['μP', { vocabSize: 50, dModel: 128, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: 32, mup: { baseWidth: 32 } }],
];

describe('gradient buffer pool', () => {
  for (const [name, config] of configs) {
    it(`${name}: parameters after 4 AdamW steps are bit-identical with and without the pool`, () => {
      const without = trainParams(config, 0);
      const withPool = trainParams(config, 256 * 1024 * 1024);
      expect(withPool.length).toBe(without.length);
      for (let i = 0; i < without.length; i++) expect(withPool[i]).toEqual(without[i]);
    });
  }

  for (const [name, config] of configs) {
    it(`${name}: recycling the graph's intermediate buffers after backward changes no parameter bit`, () => {
      const plain = trainParams(config, 256 * 1024 * 1024, 4, false);
      const recycled = trainParams(config, 256 * 1024 * 1024, 4, true);
      for (let i = 0; i < plain.length; i++) expect(recycled[i]).toEqual(plain[i]);
    });
  }

  it('recycling keeps the loss and every parameter (even behind a transposed view) intact', () => {
    const config = configs[1][1];
    const model = new TransformerLM(config, { generator: new Generator(5) });
    const before = model.parameters().map((p) => Float32Array.from(p.toTypedArray() as Float32Array));
    const x = randint(0, 50, [4, 32], { generator: new Generator(6) });
    const loss = model.forward(x, x).loss as Tensor;
    const value = loss.item();
    backward(loss, undefined, { recycleIntermediates: true });
    expect(loss.item()).toBe(value);
    // Allocate over the recycled buffers, then check nothing the model owns was among them.
    for (let i = 0; i < 50; i++) model.forward(x, x);
    model.parameters().forEach((p, i) => expect(p.toTypedArray()).toEqual(before[i]));
  });

  it('recycles gradient buffers during backward', () => {
    setBufferPoolLimit(0);
    setBufferPoolLimit(256 * 1024 * 1024);
    const config = configs[0][1];
    const model = new TransformerLM(config, { generator: new Generator(1) });
    const x = randint(0, 50, [4, 32], { generator: new Generator(2) });
    (model.forward(x, x).loss as Tensor).backward();
    expect(bufferPoolStats().buffers).toBeGreaterThan(0);
  });

  it('rejects a bad limit', () => {
    expect(() => setBufferPoolLimit(-1)).toThrow(/setBufferPoolLimit/);
  });
});
