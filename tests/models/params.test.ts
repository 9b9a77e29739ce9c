/**
 * The parameter counter against allocated models (every config combination), the presets'
 * documented counts, the memory estimator's arithmetic, and `tensorlm params` on the CLI.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { models, TransformerLM } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('countParameters', () => {
  it('equals the allocated parameter count for every combination of options', () => {
    let checked = 0;
    for (const norm of ['layer', 'rms'] as const)
      for (const mlp of ['gelu', 'swiglu'] as const)
        for (const pos of ['learned', 'sinusoidal', 'rope'] as const)
          for (const tieWeights of [true, false])
            for (const bias of [true, false])
              for (const [nHeads, nKvHeads] of [[4, 4], [4, 2], [4, 1]])
                for (const normPlacement of ['pre', 'post'] as const) {
                  const config: TransformerConfigInput = { vocabSize: 7, dModel: 8, nLayers: 2, nHeads, nKvHeads, dFF: 6, maxSeqLen: 5, norm, mlp, pos, tieWeights, bias, normPlacement };
                  const model = new TransformerLM(config);
                  const counted = models.countParameters(config);
                  expect(counted.total, JSON.stringify(config)).toBe(model.numParameters());
                  // the breakdown adds up, component by component
                  const sum = (prefix: (n: string) => boolean) => model.namedParameters().filter(([n]) => prefix(n)).reduce((s, [, p]) => s + p.size, 0);
                  expect(counted.embedding).toBe(sum((n) => n.startsWith('tokEmb') || n.startsWith('posEmb')));
                  expect(counted.attention).toBe(sum((n) => n.includes('.attn.')));
                  expect(counted.ffn).toBe(sum((n) => n.includes('.ffn.')));
                  expect(counted.norms).toBe(sum((n) => n.includes('Norm.') || n.startsWith('norm.')));
                  expect(counted.head).toBe(sum((n) => n.startsWith('head')));
                  checked++;
                }
    expect(checked).toBe(288);
  });

  it('gives the documented preset counts, TinyLlama exactly as the real model', () => {
    expect(models.countParameters(models.getPreset('tiny').config).total).toBe(818_048);
    expect(models.countParameters(models.getPreset('nano-trickster').config).total).toBe(5_180_672);
    const tl = models.countParameters(models.getPreset('tinyllama-1.1b').config);
    expect(tl.total).toBe(1_100_048_384);
    expect(tl).toMatchObject({ tokenEmbedding: 65_536_000, head: 65_536_000, attention: 22 * 9_437_184, ffn: 22 * 34_603_008, norms: 45 * 2048 });
    // the small presets also allocate to those counts
    expect(new TransformerLM(models.presetConfig('tiny')).numParameters()).toBe(818_048);
    expect(new TransformerLM(models.presetConfig('nano-trickster')).numParameters()).toBe(5_180_672);
    expect(() => models.getPreset('gpt-5')).toThrow(/unknown preset 'gpt-5' \(known presets: tiny, nano-trickster, nano-swa, nano-moe, nano-linear, nano-mla, nano-mamba, tinyllama-1.1b, char-lstm, char-gru, char-rnn\)/);
  });
});

describe('estimateMemory', () => {
  it('counts 16 bytes per parameter for weights, gradients and AdamW in both precisions', () => {
    const cfg = models.getPreset('tinyllama-1.1b').config;
    const p = 1_100_048_384;
    const fp32 = models.estimateMemory(cfg, { batch: 1, seq: 2048 });
    expect([fp32.weights, fp32.gradients, fp32.optimizer]).toEqual([4 * p, 4 * p, 8 * p]);
    const bf16 = models.estimateMemory(cfg, { batch: 1, seq: 2048, dtype: 'bf16' });
    expect([bf16.weights, bf16.gradients, bf16.optimizer]).toEqual([6 * p, 2 * p, 8 * p]);
    expect(bf16.activations * 2).toBe(fp32.activations);
    expect(fp32.total).toBe(fp32.weights + fp32.gradients + fp32.optimizer + fp32.activations);
  });

  it('activations grow linearly in batch and with the T² attention term in seq', () => {
    const cfg = models.presetConfig('nano-trickster');
    const a = models.estimateMemory(cfg, { batch: 1, seq: 256 }).activationElements;
    const b = models.estimateMemory(cfg, { batch: 4, seq: 256 }).activationElements;
    expect(b.total).toBe(4 * a.total);
    const c = models.resolveConfig(cfg);
    expect(a.total).toBe(256 * (c.nLayers * a.perLayerPerToken + a.modelPerToken) + c.nLayers * a.scoresPerLayerPerSequence);
    expect(a.scoresPerLayerPerSequence).toBe(2 * 8 * 256 * 256);
    expect(() => models.estimateMemory(cfg, { seq: 513 })).toThrow(/exceeds maxSeqLen 512/);
  });

  it('formats counts and bytes', () => {
    expect(models.formatCount(1_100_048_384)).toBe('1,100,048,384');
    expect(models.formatCount(65)).toBe('65');
    expect(models.formatBytes(512)).toBe('512 B');
    expect(models.formatBytes(3 * 1024 ** 3)).toBe('3.00 GiB');
  });
});

describe('tensorlm params (CLI)', () => {
  it('prints the TinyLlama count with thousands separators, the breakdown and memory', () => {
    const out = execFileSync('npx', ['tsx', 'src/cli/main.ts', 'params', '--preset', 'tinyllama-1.1b', '--batch', '2', '--seq', '1024', '--dtype', 'bf16'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toContain('1,100,048,384');
    for (const word of ['embedding', 'attention', 'feed-forward', 'norms', 'output head', 'weights', 'gradients', 'AdamW states', 'activations', 'batch 2 × seq 1024', 'bf16']) expect(out).toContain(word);
  });
});
