/** `--quantize int8|q8_0` on `tensorlm sample`, `chat` and `eval` (issue 18): a small run trained in the test. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sft } from '../../src/posttrain/sft.js';
import { runCli } from '../helpers/cli.js';
import { baseRun } from '../posttrain/helpers.js';

describe('tensorlm --quantize', () => {
  it('sample, chat and eval run the quantized model and print the weight bytes once; eval prints the float32 figure next to it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-quantize-'));
    const base = await baseRun(dir);
    const chat = (await sft({ base, outDir: dir, name: 'chat', tasks: ['reverse'], taskExamples: 20, evalExamples: 2, batchSize: 2, maxSteps: 2, warmupSteps: 1, evalInterval: 2, evalIters: 1 })).files.dir;
    const [sample, evalQ, chatQ, bad, tasks, chatPlain, chatCandidates] = await Promise.all([
      runCli(['sample', '--run', base, '--prompt', 'ab', '--max-new-tokens', '10', '--temperature', '0', '--quantize', 'int8']),
      runCli(['eval', '--run', base, '--quantize', 'q8_0']),
      runCli(['chat', '--run', chat, '--prompt', 'reverse: cat', '--max-new-tokens', '4', '--temperature', '0', '--quantize', 'int8']),
      runCli(['sample', '--run', base, '--quantize', 'int4']),
      runCli(['eval', '--run', base, '--quantize', 'int8', '--tasks', 'reverse']),
      // Not quantization: chat --candidates draws greedy candidates in one batched run (each is the one greedy reply).
      runCli(['chat', '--run', chat, '--prompt', 'reverse: cat', '--max-new-tokens', '4', '--temperature', '0']),
      runCli(['chat', '--run', chat, '--prompt', 'reverse: cat', '--max-new-tokens', '4', '--temperature', '0', '--candidates', '2']),
    ]);
    expect(chatCandidates.code, chatCandidates.stderr).toBe(0);
    expect(chatCandidates.stdout).toBe(`[1] ${chatPlain.stdout}---------------\n[2] ${chatPlain.stdout}`);
    expect(sample.code, sample.stderr).toBe(0);
    expect(sample.stdout.startsWith('ab')).toBe(true);
    // The bytes on stderr (stdout is the text), once.
    expect(sample.stderr.match(/quantized 12 layers to int8: weights [\d.]+ MB → [\d.]+ MB \(the quantized matrices [\d.]+ MB → [\d.]+ MB; worst relative error [\d.]+%\)/g)).toHaveLength(1);
    expect(evalQ.code, evalQ.stderr).toBe(0);
    expect(evalQ.stdout).toMatch(/quantized 12 layers to q8_0: weights/);
    expect(evalQ.stdout).toMatch(/best\.safetensors quantized to q8_0 on .* \(validation split\)/);
    expect(evalQ.stdout).toMatch(/loss \d\.\d{4} nats\/char, perplexity/);
    const cost = evalQ.stdout.match(/float32: loss \d\.\d{4} nats\/char, perplexity [\d.]+ — q8_0 costs -?\d\.\d{5} nats\/char, perplexity ([+-][\d.]+)% against float32/);
    expect(cost, evalQ.stdout).not.toBeNull();
    expect(Math.abs(Number(cost?.[1]))).toBeLessThan(1);
    expect(chatQ.code, chatQ.stderr).toBe(0);
    expect(chatQ.stderr).toMatch(/quantized 12 layers to int8/);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/argument 'int4' is invalid\. Allowed choices are int8, q8_0/);
    expect(tasks.code).not.toBe(0);
    expect(tasks.stderr).toMatch(/--quantize cannot be combined with --tasks/);
  }, 60_000);
});
