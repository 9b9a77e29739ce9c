/** `tensorlm train --preset nano-moe` at tiny sizes: trains (logging expert utilisation), samples, resumes; `params` prints the active parameters. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli, trainSampleResumeTiny } from '../helpers/cli.js';

describe('tensorlm with the nano-moe preset', () => {
  it('trains a few steps with utilisation metrics, samples, resumes, and params reports the active parameters', async () => {
    const { run, model, train } = await trainSampleResumeTiny('nano-moe', 'moe');
    expect(train.stdout).toMatch(/step 3: train loss [\d.]+, val loss [\d.]+, expert load [\d.]+–[\d.]+ \(aux [\d.]+\)/);
    expect(model.moe).toMatchObject({ nExperts: 8, topK: 2, dExpert: 24 });
    const evals = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; metrics?: Record<string, number> })
      .filter((r) => r.kind === 'eval');
    const m = evals[evals.length - 1].metrics!;
    expect(Object.keys(m).filter((k) => k.startsWith('moe.layer0.expert'))).toHaveLength(8);
    expect(m['moe.maxLoad']).toBeGreaterThanOrEqual(1);
    const p = await cli(['params', '--preset', 'nano-moe']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/nano-moe: 15,809,792 parameters/);
    expect(p.stdout).toMatch(/active\/token\s+5,192,960\s+32\.8%\s+\(each token runs 2 of 8 experts\)/);
  }, 60_000);
});
