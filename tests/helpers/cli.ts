/**
 * Node's arguments that run the CLI from sources (CLI_ARGS), and runCli: runs the `tensorlm` CLI from
 * sources (tsx), as the CLI tests do: exit code and both streams, never a throw. trainSampleResumeTiny:
 * the outline of the architecture presets' CLI tests.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const run = promisify(execFile);
export const CLI_ARGS = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];

export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI_ARGS, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

/** What trainPresetTiny leaves: the runs directory, the run's resolved model config, and the train command's output. */
export interface TinyPresetRun {
  dir: string;
  run: string;
  model: Record<string, unknown>;
  train: CliResult;
}

/**
 * `tensorlm train --preset <preset>` shrunk to a few seconds (dModel 16, 2 heads, `layers` layers,
 * 3 steps of 2 × 16 tokens on a repeated line), then `sample` from the run and `train --resume`
 * (which says the run has finished). Asserts each succeeds: the outline every architecture
 * preset's CLI test shares; the test adds its own checks on the returned run.
 */
export async function trainSampleResumeTiny(preset: string, name: string, layers = 1): Promise<TinyPresetRun> {
  const dir = mkdtempSync(join(tmpdir(), `tensorlm-${name}-`));
  const data = join(dir, 'text.txt');
  writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\n'.repeat(40));
  const args = ['--preset', preset, '--d-model', '16', '--n-layers', String(layers), '--n-heads', '2', '--data', data, '--out-dir', dir, '--name', name, '--batch-size', '2', '--block-size', '16', '--max-time', 'none', '--eval-interval', '3', '--eval-iters', '1', '--sample-tokens', '8'];
  const train = await runCli(['train', ...args, '--max-steps', '3']);
  expect(train.code, train.stderr).toBe(0);
  expect(train.stdout).toMatch(/finished 3 steps/);
  const run = join(dir, name);
  const model = (JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { model: Record<string, unknown> }).model;
  const sample = await runCli(['sample', '--run', run, '--prompt', 'ROMEO:', '--max-new-tokens', '12', '--temperature', '0']);
  expect(sample.code, sample.stderr).toBe(0);
  expect(sample.stdout.startsWith('ROMEO:')).toBe(true);
  // --resume reloads the run (its config, the checkpoint); a finished run says so. Exact resume
  // mid-run is tests/models/variants-resume.test.ts.
  const resume = await runCli(['train', '--resume', '--out-dir', dir, '--name', name]);
  expect(resume.code, resume.stderr).toBe(0);
  expect(resume.stdout, resume.stdout).toMatch(/has already finished \(step 3 of 3\)/);
  return { dir, run, model, train };
}
