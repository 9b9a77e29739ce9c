/** Packed SFT batches (posttrain/sft.ts `packedBatch`, `sft({ pack: true })`): the layout, the padded step's loss, the run and its resume. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TransformerLM } from '../../src/models/transformer.js';
import { packedBatch, paddedBatch, resolveSftConfig, sft, type SftExample } from '../../src/posttrain/sft.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { Generator } from '../../src/tensor/random.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { languageModelLoss } from '../../src/train/loop.js';
import { baseRun } from './helpers.js';

describe('packedBatch', () => {
  it('packs first-fit by decreasing length, positions restart per conversation, padding is its own document', () => {
    const examples: SftExample[] = [
      { ids: Int32Array.of(1, 2, 3, 4), lossMask: Uint8Array.of(0, 0, 1, 1) },
      { ids: Int32Array.of(5, 6), lossMask: Uint8Array.of(0, 1) },
      { ids: Int32Array.of(7, 8, 9), lossMask: Uint8Array.of(0, 1, 1) },
    ];
    // Lengths (inputs) 3, 1, 2 into rows of 4: [0 | 1] and [2 | padding].
    const b = packedBatch(examples, [0, 1, 2], 4);
    expect(b.x.shape).toEqual([2, 4]);
    expect(Array.from(b.x.toTypedArray())).toEqual([1, 2, 3, 5, 7, 8, 0, 0]);
    expect(Array.from(b.y.toTypedArray())).toEqual([-100, 3, 4, 6, 8, 9, -100, -100]);
    expect(Array.from(b.positions.toTypedArray())).toEqual([0, 1, 2, 0, 0, 1, 0, 1]);
    expect(Array.from(b.documentIds.toTypedArray())).toEqual([0, 0, 0, 1, 0, 0, -1, -1]);
    // The batch is as wide as its fullest row.
    expect(packedBatch(examples, [1, 2], 100).x.shape).toEqual([1, 3]);
    expect(() => packedBatch(examples, [0], 2)).toThrow(/example 0 has 3 input tokens, more than the row width 2/);
    expect(() => packedBatch(examples, [3], 4)).toThrow(/index 3 is outside the 3 examples/);
  });

  const VARIANTS: [string, Partial<TransformerConfigInput>][] = [
    ['learned', { pos: 'learned' }],
    ['sinusoidal', { pos: 'sinusoidal', mlp: 'swiglu' }],
    ['rope half', { pos: 'rope', norm: 'rms', ropePairing: 'half' }],
    ['rope interleaved', { pos: 'rope', norm: 'rms', ropePairing: 'interleaved', nKvHeads: 1 }],
  ];
  for (const [label, cfg] of VARIANTS) {
    it(`${label}: the packed step's loss is the padded step's (the mean over assistant tokens) within 1e-5`, () => {
      const model = new TransformerLM({ vocabSize: 17, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 24, maxSeqLen: 16, ...cfg }, { generator: new Generator(3) });
      const g = new Generator(4);
      const examples: SftExample[] = Array.from({ length: 9 }, () => {
        const n = 2 + g.randint(0, 12);
        const prompt = 1 + g.randint(0, n - 1);
        return { ids: Int32Array.from({ length: n }, () => g.randint(0, 17)), lossMask: Uint8Array.from({ length: n }, (_, t) => (t >= prompt ? 1 : 0)) };
      });
      const indices = [0, 1, 2, 3, 4, 5, 6, 7, 8, 2];
      const packed = packedBatch(examples, indices, 16);
      expect(packed.x.shape[0]).toBeLessThan(indices.length);
      const a = noGrad(() => languageModelLoss(model, paddedBatch(examples, indices)).item());
      const b = noGrad(() => languageModelLoss(model, packed).item());
      expect(Math.abs(a - b)).toBeLessThan(1e-5);
    });
  }

  it('sft validates pack', () => {
    expect(() => resolveSftConfig({ base: 'runs/x', tasks: ['reverse'], pack: 'yes' as unknown as boolean })).toThrow(/pack must be true or false, got yes/);
  });
});

describe('sft --pack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-sft-pack-'));
  const base = baseRun(dir);
  const small = async (name: string, extra: Record<string, unknown> = {}) => ({
    base: await base,
    outDir: dir,
    name,
    tasks: ['reverse', 'count'],
    taskExamples: 60,
    evalExamples: 6,
    batchSize: 6,
    maxSteps: 6,
    warmupSteps: 2,
    evalInterval: 3,
    evalIters: 2,
    ...extra,
  });

  it('trains on the padded run’s conversations (same first loss), records pack, and resumes exactly', async () => {
    const padded = await sft(await small('padded'));
    const full = await sft(await small('packed', { pack: true }));
    expect(full.step).toBe(6);
    expect(JSON.parse(readFileSync(join(full.files.dir, 'config.json'), 'utf8')).sft.pack).toBe(true);
    // Same conversations, same initial weights: the first step's loss agrees up to rounding.
    expect(Math.abs(full.trainLosses[0].loss - padded.trainLosses[0].loss)).toBeLessThan(1e-5);
    const half = await sft(await small('packed-split', { pack: true }), { stopAfterSteps: 3 });
    // A resume takes the run's own settings (pack included), whatever it is given.
    const rest = await sft({ outDir: dir, name: 'packed-split', base: await base, tasks: ['reverse'] }, { resume: true });
    expect([...half.trainLosses, ...rest.trainLosses].map((s) => s.loss)).toEqual(full.trainLosses.map((s) => s.loss));
    expect(rest.finalValLoss).toBe(full.finalValLoss);
  }, 120_000);

  it('tensorlm sft --pack runs end to end and --resume reads pack back', async () => {
    const cli = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'sft', ...args], { maxBuffer: 1 << 24 });
    const common = ['--base', await base, '--task', 'reverse', '--out-dir', dir, '--name', 'cli-packed'];
    const first = await cli([...common, '--task-examples', '40', '--eval-examples', '4', '--batch-size', '6', '--max-steps', '4', '--eval-interval', '2', '--eval-iters', '1', '--warmup-steps', '1', '--pack']);
    expect(first.stdout).toMatch(/finished 4 steps/);
    expect(JSON.parse(readFileSync(join(dir, 'cli-packed', 'config.json'), 'utf8')).sft.pack).toBe(true);
    // The run is finished: a resume reads it back, trains nothing and says so (issue #20, item 6).
    const resumed = await cli([...common, '--resume']);
    expect(resumed.stdout).toMatch(/cli-packed has already finished \(step 4 of 4\); nothing to train/);
    expect(JSON.parse(readFileSync(join(dir, 'cli-packed', 'config.json'), 'utf8')).sft.pack).toBe(true);
  }, 120_000);
});
