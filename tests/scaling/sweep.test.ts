/** `scaling sweep`: a tiny grid of sizes × token budgets trained through tuning studies, then read back as (N, D, C, loss). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TransformerConfig } from '../../src/models/config.js';
import { countParameters } from '../../src/models/params.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { loadRunsCsv } from '../../src/scaling/data.js';
import { runSweepWorker, sweepCsv, sweepRows, sweepStudies, type SweepInput } from '../../src/scaling/sweep.js';
import { SqliteStorage } from '../../src/tune/storage/sqlite.js';
import { buildModelConfig } from '../../src/models/presets.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { makeTempDir } from '../tokenizers/helpers.js';

const tmp = makeTempDir('tensorlm-sweep-');
afterAll(() => tmp.cleanup());

describe('scaling sweep', () => {
  it('trains every size × budget once and reports N without and with embeddings, D, C = 6ND and the final loss', async () => {
    const dir = tmp.fresh();
    const text = join(dir, 'text.txt');
    writeFileSync(text, 'the quick brown fox jumps over the lazy dog. '.repeat(200));
    const input: SweepInput = {
      name: 'unit',
      widths: [8, 16],
      layers: [1, 2],
      tokens: [320, 640],
      base: { data: text, preset: 'tiny', batchSize: 2, blockSize: 16, evalIters: 1, lr: 1e-2, warmupSteps: 0 },
    };
    expect(sweepStudies(input).map((s) => s.study)).toEqual(['unit-d320', 'unit-d640']);
    const storage = new SqliteStorage(join(dir, 'sweep.sqlite'));
    try {
      const summaries = await runSweepWorker(storage, input, { outDir: join(dir, 'runs') });
      expect(summaries.map((s) => s.complete)).toEqual([4, 4]);
      const rows = await sweepRows(storage, input);
      expect(rows).toHaveLength(8);
      const vocab = 'the quick brown fox jumps over the lazy dog. '.split('').filter((c, i, a) => a.indexOf(c) === i).length;
      for (const r of rows) {
        // D is what the run trained on: whole steps of batch × block tokens.
        expect(r.D).toBe(Number(r.study.slice('unit-d'.length)));
        expect(r.C).toBe(6 * r.N * r.D);
        expect(Number.isFinite(r.loss) && r.loss > 0).toBe(true);
        // N matches an allocated model of that size; dFF kept tiny's 4× ratio.
        const config = buildModelConfig(resolveTrainConfig({ ...input.base, model: { dModel: r.dModel, nLayers: r.nLayers } }), vocab) as TransformerConfig;
        expect(config.dFF).toBe(4 * r.dModel);
        const model = new TransformerLM(config);
        expect(r.N_with_embeddings).toBe(model.numParameters());
        const counts = countParameters(config);
        expect(r.N).toBe(model.numParameters() - counts.embedding - counts.head);
        expect(r.N).toBeLessThan(r.N_with_embeddings);
      }
      // A second worker on a finished sweep runs nothing more.
      const again = await runSweepWorker(storage, input, { outDir: join(dir, 'runs') });
      expect(again.map((s) => s.ran)).toEqual([0, 0]);
      // The CSV is the sweep format `scaling fit` reads.
      const csv = join(dir, 'scaling.csv');
      writeFileSync(csv, sweepCsv(rows));
      const loaded = loadRunsCsv(csv);
      expect(loaded.format).toBe('tensorlm-sweep');
      expect(loaded.runs.map((r) => r.N)).toEqual(rows.map((r) => r.N));
    } finally {
      await storage.close();
    }
  }, 120_000);

  it('rejects empty or non-integer grids with the flag named', () => {
    expect(() => sweepStudies({ name: 'x', widths: [], layers: [1], tokens: [100], base: {} })).toThrow(/--widths is empty/);
    expect(() => sweepStudies({ name: 'x', widths: [16], layers: [1.5], tokens: [100], base: {} })).toThrow(/--layers must be positive integers/);
    expect(() => sweepStudies({ name: 'a b', widths: [16], layers: [1], tokens: [100], base: {} })).toThrow(/--name 'a b'/);
  });
});
