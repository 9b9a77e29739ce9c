import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accuracyDifference, type TaskExample } from '../../src/chat/tasks.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { resolveConfig } from '../../src/models/config.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { fewShotPrompt, pipeline, resolvePipelineConfig, scoreFewShot, type PipelineConfig, type PipelineReport, type PipelineStage } from '../../src/posttrain/pipeline.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';

/** Four tiny stages by step counts, two tasks, four held-out problems each: seconds, not minutes. */
function tinyPipeline(dir: string, data: string): Partial<PipelineConfig> {
  return {
    name: 'p',
    outDir: dir,
    // addition's problems hold every digit, so SFT's tokenizer can spell DPO's wrong answers too.
    tasks: ['reverse', 'addition'],
    baseData: data,
    steps: { base: 4, sft: 3, rl: 2, dpo: 2 },
    evalExamples: 4,
    fewShot: 2,
    seed: 3,
    overrides: {
      base: { model: { dModel: 32, nLayers: 1, nHeads: 2, dFF: 64, maxSeqLen: 64 }, batchSize: 4, blockSize: 32, warmupSteps: 1, evalInterval: 100, evalIters: 1, sampleTokens: 0, lr: 5e-3, minLr: 5e-4 },
      sft: { batchSize: 4, warmupSteps: 1, evalInterval: 100, evalIters: 1, taskExamples: 20 },
      rl: { batchSize: 1, groupSize: 2, maxNewTokens: 4, warmupSteps: 1, evalInterval: 100, taskExamples: 20 },
      dpo: { batchSize: 2, warmupSteps: 1, evalInterval: 100, evalIters: 1, taskExamples: 20 },
    },
  };
}

function counter() {
  const started: { stage: PipelineStage; resumed: boolean }[] = [];
  const skipped: PipelineStage[] = [];
  return { started, skipped, hooks: { onStageStart: (stage: PipelineStage, info: { resumed: boolean }) => void started.push({ stage, resumed: info.resumed }), onStageSkip: (stage: PipelineStage) => void skipped.push(stage) } };
}

describe('pipeline', () => {
  let dir: string;
  let config: Partial<PipelineConfig>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-pipeline-'));
    const g = new Generator(5);
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    const data = join(dir, 'words.txt');
    writeFileSync(data, Array.from({ length: 2000 }, () => Array.from({ length: 1 + g.randint(0, 6) }, () => letters[g.randint(0, 26)]).join('')).join(' '));
    config = tinyPipeline(dir, data);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs base → SFT → RL (+ DPO), stops cleanly, resumes, writes a consistent report, and skips finished stages on a rerun', async () => {
    // First call: interrupted during SFT (after its first step): base finished, SFT has a checkpoint.
    const first = counter();
    let stage: PipelineStage | null = null;
    const interrupted = await pipeline(config, { shouldStop: () => stage === 'sft', hooks: { ...first.hooks, onStageStart: (s, info) => ((stage = s), first.hooks.onStageStart(s, info)) } });
    expect(interrupted.interrupted).toBe('sft');
    expect(interrupted.report).toBeNull();
    expect(first.started.map((s) => s.stage)).toEqual(['base', 'sft']);

    // Second call: the base is skipped, SFT resumed, RL and DPO run, the report is written.
    const second = counter();
    const done = await pipeline(config, { hooks: second.hooks, commands: ['tensorlm pipeline --name p'] });
    expect(second.skipped).toEqual(['base']);
    expect(second.started).toEqual([
      { stage: 'sft', resumed: true },
      { stage: 'rl', resumed: false },
      { stage: 'dpo', resumed: false },
    ]);
    const root = join(dir, 'p');
    for (const s of ['base', 'sft', 'rl', 'dpo']) expect(existsSync(join(root, s, 'latest.safetensors'))).toBe(true);
    for (const f of ['report.md', 'report.json', 'accuracy.svg', 'curves.svg']) expect(existsSync(join(root, f))).toBe(true);

    const report = JSON.parse(readFileSync(join(root, 'report.json'), 'utf8')) as PipelineReport;
    expect(report).toEqual(JSON.parse(JSON.stringify(done.report)));
    expect(report.stages.map((s) => s.stage)).toEqual(['base', 'sft', 'rl', 'dpo']);
    expect(report.stages.map((s) => s.steps)).toEqual([4, 3, 2, 2]);
    expect(report.problems).toEqual({ reverse: 4, addition: 4 });
    for (const s of report.stages) {
      expect(s.wallSeconds).toBeGreaterThan(0);
      for (const task of ['reverse', 'addition', 'all']) {
        const score = s.scores[task];
        expect(score.total).toBe(task === 'all' ? 8 : 4);
        expect(score.accuracy).toBe(score.correct / score.total);
        expect(score.low).toBeLessThanOrEqual(score.accuracy);
        expect(score.high).toBeGreaterThanOrEqual(score.accuracy);
      }
    }
    const pairs = [...new Set(report.gains.map((g) => `${g.from}→${g.to}`))];
    expect(pairs).toEqual(['base→sft', 'sft→rl', 'sft→dpo']);
    const byStage = Object.fromEntries(report.stages.map((s) => [s.stage, s]));
    for (const g of report.gains) {
      const a = byStage[g.to].scores[g.task];
      const b = byStage[g.from].scores[g.task];
      expect(g.difference).toBeCloseTo(a.accuracy - b.accuracy, 12);
      expect(g).toMatchObject(accuracyDifference(a, b));
      expect(g.significant).toBe(g.low > 0);
    }
    const md = readFileSync(join(root, 'report.md'), 'utf8');
    expect(md).toContain('| stage | wall time | steps | final val loss | reverse | addition | all |');
    expect(md).toContain('| base → sft | reverse |');
    expect(md).toContain('tensorlm pipeline --name p');
    expect(readFileSync(join(root, 'accuracy.svg'), 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(join(root, 'curves.svg'), 'utf8')).toMatch(/^<svg/);
    expect(md).toContain('![each stage: loss and held-out exact match against steps](curves.svg)');
    // Each stage's curves come from its metrics: the losses everywhere, held-out accuracy where measured.
    for (const card of report.stages) {
      expect(card.curves.some((p) => p.panel === 'loss' && p.series === 'val'), card.stage).toBe(true);
      expect(card.curves.some((p) => p.panel === 'held-out exact match' && p.series === 'reverse'), card.stage).toBe(card.stage !== 'base');
    }

    // Third call: every stage is finished, none trains, no metrics file is touched.
    const mtimes = ['base', 'sft', 'rl', 'dpo'].map((s) => statSync(join(root, s, 'metrics.jsonl')).mtimeMs);
    const third = counter();
    const again = await pipeline(config, { hooks: third.hooks });
    expect(third.started).toEqual([]);
    expect(third.skipped).toEqual(['base', 'sft', 'rl', 'dpo']);
    expect(['base', 'sft', 'rl', 'dpo'].map((s) => statSync(join(root, s, 'metrics.jsonl')).mtimeMs)).toEqual(mtimes);
    // Greedy scoring of the same checkpoints on the same problems: the same numbers.
    expect(again.report?.stages.map((s) => s.scores)).toEqual(report.stages.map((s) => s.scores));
  }, 120_000);
});

describe('pipeline settings', () => {
  it('rejects unknown tasks, a missing base or SFT budget and bad counts, in one line', () => {
    expect(() => resolvePipelineConfig({ tasks: ['reverse', 'spell'] })).toThrow(/unknown task 'spell'/);
    expect(() => resolvePipelineConfig({ time: { base: 0, sft: 60, rl: 60, dpo: 0 } })).toThrow('pipeline: no base stage time: give --base-time (e.g. 8m); only rl and dpo may be skipped with 0');
    expect(() => resolvePipelineConfig({ time: { base: 60, sft: 0, rl: 60, dpo: 0 } })).toThrow(/no sft stage time/);
    expect(() => resolvePipelineConfig({ time: { base: 60, sft: 60, rl: -1, dpo: 0 } })).toThrow(/rl time must be a non-negative/);
    expect(() => resolvePipelineConfig({ steps: { sft: 0 } })).toThrow(/sft steps must be a positive integer/);
    expect(() => resolvePipelineConfig({ evalExamples: 0 })).toThrow(/evalExamples must be a positive integer/);
    // A step count stands in for a time budget; RL and DPO may be skipped.
    expect(resolvePipelineConfig({ time: { base: 0, sft: 0, rl: 0, dpo: 0 }, steps: { base: 2, sft: 2 } }).time.rl).toBe(0);
  });
});

/**
 * A hand-made model that continues every token with a fixed next token: its layers' weights are
 * zero (so the residual stream is the token's embedding), the embedding is one-hot, and the head
 * maps token i to `next[i]`.
 */
function lookupModel(tokenizer: CharTokenizer, next: Record<string, string>): TransformerLM {
  const V = tokenizer.vocabSize;
  // RoPE needs an even head dimension.
  const D = V + (V % 2);
  const model = new TransformerLM(resolveConfig({ vocabSize: V, dModel: D, nLayers: 1, nHeads: 1, dFF: 4, maxSeqLen: 64, pos: 'rope', tieWeights: false, bias: false }));
  noGrad(() => {
    for (const [name, p] of Object.entries(model.stateDict())) if (!name.includes('norm')) (p.storage as Float32Array).fill(0, p.offset, p.offset + p.size);
    const emb = model.tokEmb.weight;
    const head = model.head!.weight;
    for (let i = 0; i < V; i++) (emb.storage as Float32Array)[emb.offset + i * D + i] = 1;
    for (const [from, to] of Object.entries(next)) (head.storage as Float32Array)[head.offset + tokenizer.encode(to)[0] * D + tokenizer.encode(from)[0]] = 10;
  });
  model.eval();
  return model;
}

describe('the base model\'s few-shot scoring', () => {
  const tokenizer = new CharTokenizer([...'\n :0123abceinorstuv']);
  const shots: TaskExample[] = [
    { task: 'count', prompt: 'count a in cat', answer: '1' },
    { task: 'count', prompt: 'count o in cat', answer: '0' },
  ];

  it('puts the solved examples in plain text before the problem, dropping them where the context is short', () => {
    const problem: TaskExample = { task: 'count', prompt: 'count n in nut', answer: '1' };
    const decode = (ids: number[] | null) => (ids === null ? null : tokenizer.decode(ids));
    expect(decode(fewShotPrompt(tokenizer, shots, problem, 128))).toBe('count a in cat\n1\ncount o in cat\n0\ncount n in nut\n');
    // 15 tokens of problem + 24 of answer leave room for one 17-token example in 56, none in 50.
    expect(decode(fewShotPrompt(tokenizer, shots, problem, 56))).toBe('count o in cat\n0\ncount n in nut\n');
    expect(decode(fewShotPrompt(tokenizer, shots, problem, 50))).toBe('count n in nut\n');
    // A character the base never saw: it cannot read the problem.
    expect(fewShotPrompt(tokenizer, shots, { task: 'reverse', prompt: 'reverse: dog', answer: 'god' }, 128)).toBeNull();
  });

  it('greedy-decodes up to a newline and scores by exact match; an unreadable problem is wrong', () => {
    // After the prompt's newline the model writes "0", then a newline: its answer is always "0".
    const model = lookupModel(tokenizer, { '\n': '0', '0': '\n' });
    const problems: TaskExample[] = [
      { task: 'count', prompt: 'count o in cat', answer: '0' },
      { task: 'count', prompt: 'count a in cat', answer: '1' },
      { task: 'count', prompt: 'count e in nut', answer: '0' },
      { task: 'count', prompt: 'count z in zoo', answer: '0' },
    ];
    const score = scoreFewShot(model, tokenizer, shots, problems);
    expect(score).toMatchObject({ correct: 2, total: 4, accuracy: 0.5 });
    expect(score.low).toBeLessThan(0.5);
    expect(score.high).toBeGreaterThan(0.5);
  });
});
