/** `tensorlm eval --tasks` end to end on a tiny run trained for a few steps on tiny-shakespeare. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli } from '../helpers/cli.js';

describe('tensorlm eval --tasks', () => {
  it('prints bits per byte and the task table, writes eval-tasks.json; a chat task on a base run is a one-line error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-evaltasks-'));
    const config = join(dir, 'train.json');
    writeFileSync(config, JSON.stringify({ model: { dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 64 }, batchSize: 4, blockSize: 64, evalIters: 1, warmupSteps: 1, sampleTokens: 0, replicas: 1 }));
    const t = await cli(['train', '--config', config, '--out-dir', dir, '--name', 'tiny', '--max-steps', '3', '--max-time', 'none', '--eval-interval', '3']);
    expect(t.code, t.stderr).toBe(0);
    const runDir = join(dir, 'tiny');
    const qa = join(dir, 'qa.jsonl');
    writeFileSync(qa, '{"context": "ROMEO:\\nO", "choices": [" Juliet", " zzz"], "answer": 0}\n{"context": "To be, or not to", "choices": [" be", " qx"], "answer": 0, "id": "hamlet"}\n');

    const [e, chat] = await Promise.all([
      cli(['eval', '--run', runDir, '--tasks', `shakespeare-speaker,shakespeare-continuation,${qa}`, '--limit', '6', '--seed', '3']),
      cli(['eval', '--run', runDir, '--tasks', 'shakespeare-speaker,addition']),
    ]);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/best checkpoint on tinyshakespeare \(validation split\): loss \d+\.\d+ nats\/token over 111,539 tokens, \d+\.\d+ bits\/byte over 111,539 bytes/);
    expect(e.stdout).toMatch(/task\s+examples\s+acc \[95% CI\]\s+acc_norm \[95% CI\]\s+chance/);
    expect(e.stdout).toMatch(/shakespeare-speaker\s+6\s+\d+\.\d% \[\d+\.\d, \d+\.\d\]\s+\d+\.\d% \[\d+\.\d, \d+\.\d\]\s+25\.0%/);
    expect(e.stdout).toMatch(/shakespeare-continuation\s+6\s+/);
    expect(e.stdout).toMatch(/qa\.jsonl\s+2\s+.*50\.0%/);
    const report = JSON.parse(readFileSync(join(runDir, 'eval-tasks.json'), 'utf8'));
    expect(report.version).toBe(1);
    expect(report.checkpoint).toBe('best');
    expect(report.bitsPerByte).toBeGreaterThan(0);
    expect(report.tasks.map((x: { name: string }) => x.name)).toEqual(['shakespeare-speaker', 'shakespeare-continuation', qa]);
    for (const task of report.tasks) {
      expect(Object.keys(task)).toEqual(['name', 'kind', 'examples', 'correct', 'accuracy', 'low', 'high', 'chance', 'norm']);
      expect(task.kind).toBe('multiple-choice');
      expect(task.low).toBeLessThanOrEqual(task.accuracy);
      expect(task.high).toBeGreaterThanOrEqual(task.accuracy);
      expect(task.accuracy).toBeCloseTo(task.correct / task.examples, 5);
    }

    expect(chat.code).not.toBe(0);
    expect(chat.stderr).toMatch(/task 'addition' needs an SFT run \(a chat-tuned transformer, e\.g\. from tensorlm sft\); run .* is not one: its tokenizer lacks the chat template's special tokens/);
  });

  it('rejects --tasks with --data, and a bad --limit', async () => {
    const bad = await cli(['eval', '--run', 'nowhere', '--tasks', 'addition', '--limit', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--limit/);
  });
});
