/** LoRA runs out of the run directory: the adapter file and the merged run (posttrain/merge.ts). */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyLoRA, loraConfig } from '../../src/nn/lora.js';
import { adapterPath, loadAdapter, mergeRun } from '../../src/posttrain/merge.js';
import { sft } from '../../src/posttrain/sft.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { randint } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { loadRun } from '../../src/train/trainer.js';
import { baseRun } from './helpers.js';

describe('LoRA adapters and merging', () => {
  it('a LoRA run saves its adapters on their own; merge folds them into a plain run with the same outputs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-merge-'));
    const base = await baseRun(dir);
    const lora = { rank: 4, alpha: 8, dropout: 0, targetModules: ['wq', 'wv', 'w1'] };
    const r = await sft({ base, outDir: dir, name: 'lora', tasks: ['reverse'], taskExamples: 40, evalExamples: 4, batchSize: 4, maxSteps: 6, warmupSteps: 1, evalInterval: 3, evalIters: 1, lora });
    r.model.eval();
    const ids = randint(0, r.tokenizer.vocabSize, [2, 12], { generator: new Generator(3) });
    const expected = r.model.forward(ids).logits.toTypedArray() as Float32Array;

    // The adapter file holds only the adapters, and loads into a freshly adapted model.
    expect(existsSync(adapterPath(r.files.dir))).toBe(true);
    const fresh = new TransformerLM(r.model.config);
    fresh.loadStateDict(r.model.stateDict(), { strict: false });
    applyLoRA(fresh, { ...loraConfig(lora), generator: new Generator(99) });
    expect(loadAdapter(fresh, adapterPath(r.files.dir))).toEqual(loraConfig(lora));
    fresh.eval();
    // The base weights came from the fine-tuned model; the adapters from the file.
    expect(Array.from(fresh.forward(ids).logits.toTypedArray() as Float32Array)).toEqual(Array.from(expected));

    const { files, merged } = mergeRun(r.files.dir, dir, 'lora-merged');
    expect(merged).toHaveLength(3 * r.model.config.nLayers);
    const config = JSON.parse(readFileSync(files.config, 'utf8'));
    expect(config.lora).toBeNull();
    const plain = loadRun(files.dir, 'best');
    expect(Object.keys(plain.model.stateDict()).some((k) => k.includes('lora'))).toBe(false);
    const got = plain.model.forward(ids).logits.toTypedArray() as Float32Array;
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
    // x·(W + s·B·A)ᵀ against x·Wᵀ + s·(x·Aᵀ)·Bᵀ: the same up to float32 reassociation.
    expect(worst).toBeLessThan(1e-5);
    expect(plain.tokenizer.vocabSize).toBe(r.tokenizer.vocabSize);

    expect(() => mergeRun(r.files.dir, dir, 'lora-merged')).toThrow(/already holds a run/);
    expect(() => mergeRun(base, dir, 'nothing')).toThrow(/has no LoRA adapters/);
  }, 60_000);
});
