/** The train / sample / eval / plot commands end to end on a small corpus, plus argument errors. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_ARGS as CLI, runCli as cli } from '../helpers/cli.js';

describe('tensorlm train / sample / eval / plot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-cli-'));
  const data = join(dir, 'plays.txt');
  writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.repeat(60));
  const config = join(dir, 'train.json');
  // The file sets most options; the flags below override some of them.
  writeFileSync(config, JSON.stringify({ model: { dModel: 32, nLayers: 1, nHeads: 2, dFF: 64, maxSeqLen: 32 }, batchSize: 4, blockSize: 32, maxSteps: 999, maxTime: "none", evalIters: 2, warmupSteps: 2 }));

  it('trains, samples, evaluates and plots', async () => {
    const t = await cli(['train', '--config', config, '--data', data, '--out-dir', dir, '--name', 'small', '--max-steps', '12', '--max-time', 'none', '--eval-interval', '6', '--sample-tokens', '20']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/finished 12 steps/);
    expect(t.stdout).toMatch(/validation loss \d+\.\d+ nats\/char .*perplexity/);
    expect(t.stdout).toMatch(/baselines: uniform ln \d+ = \d\.\d+, unigram \d\.\d+/);
    const runDir = join(dir, 'small');
    const resolved = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    expect(resolved.train.maxSteps).toBe(12);
    expect(resolved.train.batchSize).toBe(4);
    expect(resolved.train.maxTime).toBeNull();
    // A new run uses one data-parallel replica per core (up to its 4 rows), and records the count.
    expect(resolved.train.replicas).toBe(Math.min(availableParallelism(), 4, 8));

    const [s, e, p] = await Promise.all([
      cli(['sample', '--run', runDir, '--prompt', 'ROMEO:', '--max-new-tokens', '30', '--temperature', '0']),
      cli(['eval', '--run', runDir]),
      cli(['plot', '--run', runDir]),
    ]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.startsWith('ROMEO:')).toBe(true);
    expect(s.stdout.length).toBeGreaterThan(30);
    // --stop ends the greedy continuation at the first occurrence of the stop text, which is not printed.
    const continuation = s.stdout.slice('ROMEO:'.length, -1);
    const stop = continuation.slice(4, 6);
    const stopped = await cli(['sample', '--run', runDir, '--prompt', 'ROMEO:', '--max-new-tokens', '30', '--temperature', '0', '--stop', stop]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toBe(`ROMEO:${continuation.slice(0, continuation.indexOf(stop))}\n`);
    // --num-samples: rows of one batched run, separated by a line; greedy rows are the batch-1 text,
    // sampled ones are reproducible for a seed.
    const sampled = ['sample', '--run', runDir, '--prompt', 'ROMEO:', '--max-new-tokens', '30', '--temperature', '1', '--seed', '5', '--num-samples', '3'];
    const [greedy3, sampledA, sampledB, zero] = await Promise.all([
      cli(['sample', '--run', runDir, '--prompt', 'ROMEO:', '--max-new-tokens', '30', '--temperature', '0', '--num-samples', '3']),
      cli(sampled),
      cli(sampled),
      cli(['sample', '--run', runDir, '--num-samples', '0']),
    ]);
    expect(greedy3.code, greedy3.stderr).toBe(0);
    expect(greedy3.stdout).toBe([s.stdout, s.stdout, s.stdout].join('---------------\n'));
    expect(sampledA.code, sampledA.stderr).toBe(0);
    expect(sampledB.stdout).toBe(sampledA.stdout);
    const parts = sampledA.stdout.split('\n---------------\n');
    expect(parts).toHaveLength(3);
    for (const part of parts) expect(part.startsWith('ROMEO:')).toBe(true);
    expect(new Set(parts.map((p) => p.trimEnd())).size).toBeGreaterThan(1);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr.trim()).toMatch(/--num-samples must be a positive integer, got '0'/);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/loss \d+\.\d+ nats\/char, perplexity \d+\.\d+, \d+\.\d+ bits\/char/);
    expect(p.code, p.stderr).toBe(0);
    expect(readFileSync(join(runDir, 'loss.svg'), 'utf8')).toMatch(/^<svg/);
    expect(existsSync(join(runDir, 'loss.png'))).toBe(true);
  }, 120_000);

  it('a char-lstm run: trains, samples past any window, evaluates by position and plots the curves of two runs', async () => {
    const t = await cli(['train', '--preset', 'char-lstm', '--hidden-size', '16', '--n-layers', '1', '--data', data, '--out-dir', dir, '--name', 'lstm', '--batch-size', '4', '--block-size', '32', '--max-steps', '6', '--max-time', 'none', '--eval-interval', '6', '--eval-iters', '2', '--sample-tokens', '10']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/preset char-lstm \([\d,]+ parameters, 1 LSTM layers, hidden 16, vocab \d+\)/);
    const lstm = join(dir, 'lstm');
    const s = await cli(['sample', '--run', lstm, '--prompt', 'ROMEO:', '--max-new-tokens', '100', '--temperature', '0']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.length).toBeGreaterThan(100);
    const e = await cli(['eval', '--run', lstm, '--by-position', '--block-size', '64']);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/in windows of 64/);
    expect(e.stdout).toMatch(/loss by position \(\d+ windows; .*\n1: \d\.\d{3}, 2: \d\.\d{3}, 4: .* 64: \d\.\d{3}/);
    expect(JSON.parse(readFileSync(join(lstm, 'loss-by-position-64.json'), 'utf8')).losses).toHaveLength(64);
    // A transformer's windows stop at its context.
    const tooLong = await cli(['eval', '--run', join(dir, 'small'), '--block-size', '64']);
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toMatch(/--block-size 64 is longer than the model's context \(maxSeqLen 32\)/);
    const missing = await cli(['plot', '--run', lstm, join(dir, 'small'), '--by-position', '64']);
    expect(missing.stderr).toMatch(/loss-by-position-64.json does not exist: run tensorlm eval --run .* --by-position --block-size 64 first/);
    expect((await cli(['eval', '--run', lstm, '--by-position', '--block-size', '32'])).code).toBe(0);
    expect((await cli(['eval', '--run', join(dir, 'small'), '--by-position'])).code).toBe(0);
    const out = join(dir, 'positions');
    const p = await cli(['plot', '--run', lstm, join(dir, 'small'), '--by-position', '32', '--out', out]);
    expect(p.code, p.stderr).toBe(0);
    expect(readFileSync(`${out}.svg`, 'utf8')).toMatch(/^<svg/);
  }, 120_000);

  it('Ctrl-C saves a checkpoint and exits cleanly', async () => {
    const child = spawn(process.execPath, [...CLI, 'train', '--config', config, '--data', data, '--out-dir', dir, '--name', 'interrupted', '--max-steps', '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (stdout.includes('run directory')) {
          clearInterval(poll);
          setTimeout(() => {
            child.kill('SIGINT');
            resolve();
          }, 1500);
        }
      }, 100);
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(stdout).toMatch(/stopped at step \d+; checkpoint saved to .*latest\.safetensors\. Continue with: tensorlm train --name interrupted .* --resume/);
    expect(existsSync(join(dir, 'interrupted', 'latest.safetensors'))).toBe(true);
  }, 60_000);

  it('model-size, μP and schedule flags merge into the config file\'s model', async () => {
    const t = await cli(['train', '--config', config, '--data', data, '--out-dir', dir, '--name', 'mup', '--max-steps', '2', '--eval-interval', '2', '--sample-tokens', '0', '--d-model', '48', '--n-heads', '4', '--mup-base-width', '16', '--lr-schedule', 'constant']);
    expect(t.code, t.stderr).toBe(0);
    const resolved = JSON.parse(readFileSync(join(dir, 'mup', 'config.json'), 'utf8'));
    expect(resolved.train.lrSchedule).toBe('constant');
    // The file's nLayers and maxSeqLen stay; its explicit dFF stays too (only a preset's ratio scales).
    expect([resolved.model.dModel, resolved.model.nHeads, resolved.model.nLayers, resolved.model.maxSeqLen, resolved.model.dFF]).toEqual([48, 4, 1, 32, 64]);
    expect(resolved.model.mup.baseWidth).toBe(16);
    const bad = await cli(['train', '--d-model', '0', '--data', data, '--out-dir', dir, '--name', 'zero']);
    expect(bad.stderr).toMatch(/--d-model must be a positive integer, got '0'/);
  }, 60_000);

  it('rejects bad arguments with one clear line', async () => {
    const [neg, block, missing, unknown, resume] = await Promise.all([
      cli(['train', '--lr', '-0.1', '--data', data, '--out-dir', dir]),
      cli(['train', '--config', config, '--block-size', '64', '--data', data, '--out-dir', dir, '--name', 'b']),
      cli(['train', '--data', join(dir, 'nope.txt'), '--out-dir', dir, '--name', 'c']),
      cli(['train', '--learning-rate', '1']),
      cli(['train', '--resume', '--out-dir', dir, '--name', 'never-ran']),
    ]);
    expect(neg.code).not.toBe(0);
    expect(neg.stderr).toMatch(/--lr must be a positive number, got '-0.1'/);
    expect(block.stderr).toMatch(/blockSize 64 is larger than the model's maxSeqLen 32/);
    expect(missing.stderr).toMatch(/nope\.txt/);
    expect(unknown.stderr).toMatch(/unknown option '--learning-rate'/);
    expect(resume.stderr).toMatch(/--resume: no checkpoint at/);
    for (const r of [block, missing, resume]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});
