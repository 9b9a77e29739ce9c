import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { isRecurrentConfig, resolveRecurrentConfig, type RecurrentLMConfigInput } from '../../src/models/config.js';
import { generateText } from '../../src/models/generate.js';
import { createLanguageModel } from '../../src/models/language-model.js';
import { countParameters, describeModel, estimateMemory } from '../../src/models/params.js';
import { buildModelConfig, getPreset, presetConfig, presetModelConfig } from '../../src/models/presets.js';
import { RecurrentLM } from '../../src/models/recurrent.js';
import { argmax } from '../../src/models/sampling.js';
import { AdamW } from '../../src/optim/adam.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { evaluateStream, lossByPosition } from '../../src/train/evaluate.js';
import { loadRun, loadTransformerRun, train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { expectOneLineError } from '../helpers/errors.js';
import { smallTrainConfig } from '../train/helpers.js';

function small(arch: 'lstm' | 'gru' | 'rnn', extra: Partial<RecurrentLMConfigInput> = {}): RecurrentLM {
  return new RecurrentLM({ arch, vocabSize: 11, embedDim: 6, hiddenSize: 8, nLayers: 2, ...extra }, { generator: new Generator(1) });
}

function ids(rows: number[][]): Tensor {
  return tensor(Int32Array.from(rows.flat()), { shape: [rows.length, rows[0].length] });
}

describe('RecurrentLM', () => {
  it('the presets have the counts docs/recurrent.md gives, within 0.6% of tiny, and allocate to them', () => {
    const tiny = countParameters(presetConfig('tiny')).total;
    for (const [name, total] of [['char-lstm', 821_021], ['char-gru', 822_849], ['char-rnn', 818_873]] as const) {
      const config = presetModelConfig(name);
      expect(isRecurrentConfig(config)).toBe(true);
      expect(countParameters(config).total).toBe(total);
      expect(createLanguageModel(config).numParameters()).toBe(total);
      expect(Math.abs(total - tiny) / tiny).toBeLessThan(0.006);
    }
    // Every option combination counts exactly what it allocates.
    for (const arch of ['lstm', 'gru', 'rnn'] as const) {
      for (const tieWeights of [false, true]) {
        for (const nLayers of [1, 3]) {
          const c = { arch, vocabSize: 13, embedDim: tieWeights ? 9 : 5, hiddenSize: 9, nLayers, tieWeights };
          expect(countParameters(c).total).toBe(new RecurrentLM(c).numParameters());
        }
      }
    }
  });

  it("uses torch's state-dict names", () => {
    expect(Object.keys(small('lstm').stateDict())).toEqual([
      'tokEmb.weight',
      'rnn.weightIhL0',
      'rnn.weightHhL0',
      'rnn.biasIhL0',
      'rnn.biasHhL0',
      'rnn.weightIhL1',
      'rnn.weightHhL1',
      'rnn.biasIhL1',
      'rnn.biasHhL1',
      'head.weight',
      'head.bias',
    ]);
    expect(Object.keys(small('gru', { embedDim: 8, tieWeights: true }).stateDict())).not.toContain('head.weight');
  });

  it.each(['lstm', 'gru', 'rnn'] as const)('%s: a sequence fed in chunks with the carried state gives the logits of one pass', (arch) => {
    const model = small(arch);
    model.eval();
    const x = ids([
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
      [9, 8, 7, 6, 5, 4, 3, 2, 1],
    ]);
    noGrad(() => {
      const whole = model.forward(x).logits;
      const state = model.createCache(2);
      const a = model.forward(x.narrow(1, 0, 4), null, { state }).logits;
      const b = model.forward(x.narrow(1, 4, 5), null, { state }).logits;
      expect(state.length).toBe(9);
      expect(maxAbsDiff(whole.narrow(1, 0, 4), a)).toBeLessThan(1e-6);
      expect(maxAbsDiff(whole.narrow(1, 4, 5), b)).toBeLessThan(1e-6);
    });
  });

  it.each(['lstm', 'gru', 'rnn'] as const)('%s: greedy generation with the carried state equals re-reading the whole sequence every token', (arch) => {
    const model = small(arch);
    const prompt = [3, 1, 4, 1, 5];
    const fast = Array.from(model.generate(tensor(Int32Array.from(prompt), { shape: [prompt.length] }), { maxNewTokens: 40, temperature: 0 }).toTypedArray());
    const slow = [...prompt];
    model.eval();
    noGrad(() => {
      for (let i = 0; i < 40; i++) {
        const logits = model.forward(ids([slow])).logits;
        const v = logits.select(0, 0).select(0, slow.length - 1).toTypedArray();
        slow.push(argmax(v));
      }
    });
    expect(fast).toEqual(slow);
    // A state continues a sequence across calls (a chat's turns): the same tokens as one call.
    const state = model.createCache(1);
    const first = Array.from(model.generate(ids([prompt]), { maxNewTokens: 10, temperature: 0, state }).toTypedArray()).slice(prompt.length);
    expect(first).toEqual(slow.slice(prompt.length, prompt.length + 10));
    expect(state.length).toBe(prompt.length + 9); // the last generated token is yielded, not yet fed
  });

  it('learns: AdamW drives the loss on a repeating pattern towards zero', () => {
    const model = small('lstm');
    const optimizer = new AdamW(model.parameters(), { lr: 2e-2 });
    const pattern = [1, 2, 3, 4, 5, 6, 7];
    const seq = Array.from({ length: 29 }, (_, i) => pattern[i % 7]);
    const x = ids([seq.slice(0, 28)]);
    const y = ids([seq.slice(1, 29)]);
    const losses: number[] = [];
    for (let step = 0; step < 80; step++) {
      optimizer.zeroGrad();
      const loss = model.forward(x, y).loss as Tensor;
      losses.push(loss.item());
      loss.backward();
      optimizer.step();
    }
    expect(losses[79]).toBeLessThan(losses[0] / 10);
  });

  it('gives one-line errors for what a recurrent model cannot do', () => {
    const model = small('lstm');
    expectOneLineError(() => model.forward(ids([[1, 2]]), null, { positions: ids([[0, 1]]) }), /packed rows .* not supported by a recurrent model/);
    expectOneLineError(() => model.forward(ids([[1, 2]]), null, { state: model.createCache(3) }), /the state holds 3 sequences, ids 1/);
    expectOneLineError(() => model.forward(tensor(Float32Array.of(1, 2), { shape: [1, 2] })), /ids must be a non-empty int32 tensor \[B, T\], got float32 \[1, 2\]/);
    expectOneLineError(() => resolveRecurrentConfig({ arch: 'lstm', vocabSize: 5, hiddenSize: 8, embedDim: 4, tieWeights: true }), /tieWeights needs embedDim = hiddenSize/);
    expectOneLineError(() => resolveRecurrentConfig({ arch: 'gru', vocabSize: 5, hiddenSize: 8, dModel: 4 } as RecurrentLMConfigInput), /unknown config key 'dModel' for a recurrent model/);
    expectOneLineError(() => resolveRecurrentConfig({ arch: 'transformer', vocabSize: 5, hiddenSize: 8 } as unknown as RecurrentLMConfigInput), /arch must be 'lstm', 'gru' or 'rnn', got 'transformer'/);
    expectOneLineError(() => buildModelConfig({ preset: 'char-lstm', model: { arch: 'gru' }, blockSize: 64 }, 65), /model.arch cannot change preset 'char-lstm''s 'lstm'/);
    expectOneLineError(() => buildModelConfig({ preset: 'tiny', model: { arch: 'lstm' } as never, blockSize: 64 }, 65), /model.arch is for recurrent presets/);
    expectOneLineError(() => presetConfig('char-gru'), /preset 'char-gru' is a recurrent model \(arch 'gru'\), not a transformer/);
    // A recurrent model has no context limit: any block size trains.
    expect(buildModelConfig({ preset: 'char-lstm', model: { hiddenSize: 16 }, blockSize: 100_000 }, 65)).toMatchObject({ arch: 'lstm', hiddenSize: 16, embedDim: 222, vocabSize: 65 });
  });

  it('params: describes the model, its state per sequence and its training memory', () => {
    const text = describeModel('char-lstm', getPreset('char-lstm').config, { batch: 16, seq: 128 });
    expect(text).toContain('char-lstm: 821,021 parameters');
    expect(text).toContain('state per sequence: 3.47 KiB (h and c of 2 layers, fp32), whatever the context length');
    const m = estimateMemory(getPreset('char-gru').config, { batch: 2, seq: 10 });
    expect(m.activationElements.total).toBe(2 * estimateMemory(getPreset('char-gru').config, { batch: 1, seq: 10 }).activationElements.total);
    expect(m.weights).toBe(4 * 822_849);
  });

  it('lossByPosition: the mean over positions of consecutive windows is evaluateStream', () => {
    const model = small('gru');
    const g = new Generator(5);
    const stream = Int32Array.from({ length: 8 * 12 + 1 }, () => g.randint(0, 11));
    const curve = lossByPosition(model, stream, 12, { batchSize: 3 });
    expect(curve).toHaveLength(12);
    const mean = curve.reduce((a, b) => a + b, 0) / 12;
    expect(mean).toBeCloseTo(evaluateStream(model, stream, 12, 5).loss, 5);
  });
});

describe('tensorlm train --preset char-lstm', () => {
  function setup(): { dir: string; data: string } {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-rnn-'));
    const data = join(dir, 'corpus.txt');
    const g = new Generator(3);
    const words = ['love', 'night', 'light', 'death', 'sweet', 'fair'];
    writeFileSync(data, Array.from({ length: 300 }, () => `ROMEO:\n${Array.from({ length: 6 }, () => words[g.randint(0, 6)]).join(' ')}.\n`).join('\n'));
    return { dir, data };
  }
  const config = (dir: string, data: string, name: string, extra = {}) => smallTrainConfig(dir, data, { name, preset: 'char-lstm', model: { hiddenSize: 24, embedDim: 16 }, maxSteps: 40, evalInterval: 8, lr: 2e-2, minLr: 2e-3, ...extra });

  it('trains, samples from the run, and resumes exactly', async () => {
    const { dir, data } = setup();
    const full = await train(config(dir, data, 'full', { dropout: 0.1 }));
    expect(full.model).toBeInstanceOf(RecurrentLM);
    const losses = full.trainLosses.map((s) => s.loss);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.6);
    const half = await train(config(dir, data, 'split', { dropout: 0.1 }), { stopAfterSteps: 19 });
    const rest = await train({ outDir: dir, name: 'split' }, { resume: true });
    expect([...half.trainLosses, ...rest.trainLosses].map((s) => s.loss)).toEqual(losses);
    expect(rest.finalValLoss).toBe(full.finalValLoss);

    const run = loadRun(join(dir, 'full'));
    expect(run.model).toBeInstanceOf(RecurrentLM);
    expect(run.config.model).toMatchObject({ arch: 'lstm', hiddenSize: 24, embedDim: 16, dropout: 0.1 });
    const sample = generateText(run.model, run.tokenizer, 'ROMEO:', { maxNewTokens: 300, temperature: 0.8, seed: 1 });
    expect(sample.tokens).toHaveLength(300); // longer than any training window: no context limit
    expect(generateText(run.model, run.tokenizer, 'ROMEO:', { maxNewTokens: 300, temperature: 0.8, seed: 1 }).text).toBe(sample.text);
    expectOneLineError(() => loadTransformerRun(join(dir, 'full'), 'best', 'tensorlm sft'), /tensorlm sft needs a transformer model; run .* holds a recurrent 'lstm' model/);
  }, 60_000);

  it('with 2 data-parallel replicas follows the single-thread run', async () => {
    const { dir, data } = setup();
    const one = await train(config(dir, data, 'one', { maxSteps: 6, evalInterval: 6 }));
    const two = await train(config(dir, data, 'two', { maxSteps: 6, evalInterval: 6, replicas: 2 }));
    for (let i = 0; i < 6; i++) expect(Math.abs(two.trainLosses[i].loss - one.trainLosses[i].loss)).toBeLessThan(2e-4);
  }, 60_000);
});
