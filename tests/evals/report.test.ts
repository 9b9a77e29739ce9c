/** `tensorlm report`'s library: the report card of a tiny run, its figures checked against metrics.jsonl. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalTasksReport } from '../../src/evals/evaluate.js';
import { bucketLossByPosition, buildRunReport, readEvalTasks, runReportMarkdown, writeRunReport } from '../../src/evals/report.js';
import { generateText } from '../../src/models/generate.js';
import { countParameters } from '../../src/models/params.js';
import { markdownTable } from '../../src/posttrain/pipeline.js';
import { readMetrics, type EvalRecord } from '../../src/train/metrics.js';
import { loadRun, train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

const TASKS: EvalTasksReport = {
  version: 1,
  checkpoint: 'best',
  bitsPerByte: 2.345,
  tasks: [
    { name: 'shakespeare-speaker', kind: 'multiple-choice', examples: 50, correct: 20, accuracy: 0.4, low: 0.28, high: 0.54, chance: 0.25, norm: { correct: 22, accuracy: 0.44, low: 0.31, high: 0.58 } },
    { name: 'shakespeare-continuation', kind: 'generative', examples: 40, correct: 3, accuracy: 0.075, low: 0.026, high: 0.199, chance: null, norm: null },
  ],
};

describe('run report card', () => {
  let dir: string;
  let runDir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-report-'));
    const data = join(dir, 'plays.txt');
    writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.repeat(40));
    const result = await train(smallTrainConfig(dir, data, { name: 'tiny', model: { dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 32 }, maxSteps: 6, evalInterval: 3, logInterval: 2, sampleTokens: 12, replicas: 1 }));
    runDir = result.files.dir;
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports every section from the run files, with the figures of metrics.jsonl', async () => {
    const { report, paths } = await writeRunReport(runDir, { date: new Date('2025-01-02T03:04:05Z') });
    expect(paths.markdown).toBe(join(runDir, 'report.md'));
    const md = readFileSync(paths.markdown, 'utf8');
    for (const section of ['# Report card: tiny', '## Config', '## Data', '## Throughput', '## Loss curves', '## Evaluation', '## Samples']) expect(md).toContain(section);
    expect(md).toMatch(/Stage pretrain · written 2025-01-02T03:04:05.000Z · TensorLM \d+\.\d+\.\d+/);
    expect(md).toMatch(/\d+ cores \(.*\) · \w+ \w+ · Node v\d+.* · backend \w+/);

    const records = readMetrics(join(runDir, 'metrics.jsonl'));
    const evals = records.filter((r): r is EvalRecord => r.kind === 'eval');
    const last = records[records.length - 1];
    const best = evals.reduce((a, b) => (b.valLoss < a.valLoss ? b : a));
    expect(report.throughput).toMatchObject({ steps: 6, tokens: last.tokens, wallSeconds: last.elapsedSeconds, bestValLoss: best.valLoss, bestValStep: best.step, finalValLoss: evals[evals.length - 1].valLoss, evaluations: evals.length });
    expect(report.throughput.tokensPerSecond).toBeCloseTo(last.tokens / last.elapsedSeconds, 6);
    expect(md).toContain(`| tokens seen | ${last.tokens.toLocaleString('en-US')} |`);
    expect(md).toContain(`| best val loss | ${best.valLoss.toFixed(4)} at step ${best.step} |`);
    expect(md).toContain(`val ${evals[evals.length - 1].valLoss.toFixed(4)} (last of ${evals.length} evaluations)`);

    const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    expect(report.model).toMatchObject({ arch: 'transformer', layers: 1, dModel: 16, heads: 2, vocabSize: config.model.vocabSize, parameters: countParameters(config.model).total });
    expect(md).toContain(`| parameters | ${countParameters(config.model).total.toLocaleString('en-US')} |`);
    expect(md).toContain('| batch | 4 × block 32 = 128 tokens/step |');
    expect(report.training).toMatchObject({ batchSize: 4, blockSize: 32, maxSteps: 6, replicas: 1, lrSchedule: 'cosine' });
    expect(report.data).toMatchObject({ dataShards: null, trainTokens: null, valTokens: null, tokenizer: { type: 'char', vocabSize: config.model.vocabSize } });
    expect(md).toContain('not recorded by the run');

    // The loss curves next to the report, linked relatively.
    expect(readFileSync(join(runDir, 'report-loss.svg'), 'utf8')).toMatch(/^<svg/);
    expect(md).toContain('](report-loss.svg)');
    // No eval-tasks.json yet: the command that writes it; validation from the last evaluation.
    expect(md).toContain(`tensorlm eval --run ${runDir} --tasks shakespeare-speaker,shakespeare-continuation`);
    expect(report.validation).toMatchObject({ source: 'metrics', loss: evals[evals.length - 1].valLoss, unit: 'char' });
    expect(md).toMatch(/loss \d\.\d{4} nats\/char, perplexity \d+\.\d{2}, \d\.\d{3} bits\/char/);
    const sample = [...evals].reverse().find((e) => e.sample !== undefined);
    expect(report.samples.last?.text).toBe(sample?.sample);
    expect(report.samples.fresh).toEqual([]);
    // report.json holds the same figures.
    expect(JSON.parse(readFileSync(paths.json, 'utf8'))).toEqual(report);
  }, 20_000);

  it('adds the task table, loss by position, a fresh evaluation and seeded samples; writes where --out says', async () => {
    writeFileSync(join(runDir, 'eval-tasks.json'), JSON.stringify(TASKS));
    const losses = Array.from({ length: 32 }, (_, i) => i + 1);
    writeFileSync(join(runDir, 'loss-by-position-32.json'), JSON.stringify({ checkpoint: join(runDir, 'best.safetensors'), data: 'x', blockSize: 32, windows: 7, losses }));
    const out = join(dir, 'cards', 'tiny.md');
    const { report, paths } = await writeRunReport(runDir, { out, evaluate: true, samples: 2, sampleTokens: 8, samplePrompt: 'ROMEO:' });
    expect(paths).toEqual({ markdown: out, json: join(dir, 'cards', 'tiny.json'), svg: join(dir, 'cards', 'tiny-loss.svg') });
    expect(existsSync(paths.svg)).toBe(true);
    const md = readFileSync(out, 'utf8');
    expect(md).toContain('](tiny-loss.svg)');
    expect(md).toContain('| task | kind | n | accuracy [95% interval] | normalised accuracy | chance |');
    expect(md).toContain('| shakespeare-speaker | multiple-choice | 50 | 20/50 = 40.0% [28.0%, 54.0%] | 44.0% [31.0%, 58.0%] | 25.0% |');
    expect(md).toContain('| shakespeare-continuation | generative | 40 | 3/40 = 7.5% [2.6%, 19.9%] | – | – |');
    expect(md).toContain('2.345 bits/byte');
    expect(md).toContain('| positions → | 1 | 2–4 | 5–16 | 17–32 |');
    expect(md).toMatch(/\| windows of 32, 7 windows \(best.safetensors\) \| 1\.000 \| 3\.000 \| 10\.500 \| 24\.500 \|$/m);

    // The fresh figures: the whole validation split through the best checkpoint.
    const run = loadRun(runDir, 'best');
    expect(report.data.trainTokens! + report.data.valTokens!).toBe(40 * 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.length);
    expect(report.validation).toMatchObject({ source: 'fresh', checkpoint: 'best', tokens: report.data.valTokens! - 1, step: run.meta.step });
    expect(report.validation!.perplexity).toBeCloseTo(Math.exp(report.validation!.loss), 9);
    expect(md).toMatch(/Validation \(best checkpoint, step \d+, the whole split: [\d,]+ chars\): loss \d\.\d{4} nats\/char/);
    // Samples are seeded: the same text as generateText with seeds 1 and 2 at temperature 0.8.
    expect(report.samples.fresh.map((s) => s.seed)).toEqual([1, 2]);
    expect(report.samples.fresh[1].text).toBe(generateText(run.model, run.tokenizer, 'ROMEO:', { maxNewTokens: 8, temperature: 0.8, seed: 2 }).text);
    expect(md).toContain('Fresh sample, best checkpoint, seed 2, temperature 0.8, prompt "ROMEO:"');
  }, 20_000);

  it('fails in one line on a missing run, a run without metrics and a malformed eval-tasks.json', async () => {
    await expect(buildRunReport(join(dir, 'nope'))).rejects.toThrow(/^run directory .*nope does not exist$/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await expect(buildRunReport(empty)).rejects.toThrow(/is not a run directory \(no config\.json\)/);
    writeFileSync(join(empty, 'config.json'), readFileSync(join(runDir, 'config.json')));
    writeFileSync(join(empty, 'metrics.jsonl'), '');
    await expect(buildRunReport(empty)).rejects.toThrow(/has no metrics \(metrics\.jsonl is missing or empty\)/);
    const bad = join(dir, 'bad-tasks.json');
    writeFileSync(bad, JSON.stringify({ ...TASKS, tasks: [{ ...TASKS.tasks[0], accuracy: 'high' }] }));
    expect(() => readEvalTasks(bad)).toThrow(/bad-tasks\.json: tasks\[0\]\.accuracy must be a number/);
  });

  it('buckets loss by position like docs/recurrent.md, and shares the pipeline card\'s tables', () => {
    const b = bucketLossByPosition(Array.from({ length: 512 }, (_, i) => i + 1));
    expect(b.map((x) => `${x.from}-${x.to}`)).toEqual(['1-1', '2-4', '5-16', '17-64', '65-128', '129-256', '257-512']);
    expect(b[1].loss).toBe(3);
    expect(bucketLossByPosition([1, 2, 3, 4, 5, 6]).map((x) => x.to)).toEqual([1, 4, 6]);
    expect(markdownTable(['a', 'b'], ['left', 'right'], [['1', '2']])).toBe('| a | b |\n|---|---:|\n| 1 | 2 |');
    // The markdown is a pure function of the report.
    expect(typeof runReportMarkdown).toBe('function');
  });
});
