/** `tensorlm train --preset nano-swa` at tiny sizes: trains, samples, resumes; `params` prints the capped KV cache. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli } from '../helpers/cli.js';

describe('tensorlm with the nano-swa preset', () => {
  it('trains a few steps, samples, resumes, and params reports the window', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-swa-'));
    const data = join(dir, 'text.txt');
    writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\n'.repeat(40));
    const args = ['--preset', 'nano-swa', '--d-model', '16', '--n-layers', '1', '--n-heads', '2', '--data', data, '--out-dir', dir, '--name', 'swa', '--batch-size', '2', '--block-size', '16', '--max-time', 'none', '--eval-interval', '3', '--eval-iters', '1', '--sample-tokens', '8'];
    const t = await cli(['train', ...args, '--max-steps', '3']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/finished 3 steps/);
    const resolved = JSON.parse(readFileSync(join(dir, 'swa', 'config.json'), 'utf8')) as { model: { slidingWindow: number } };
    expect(resolved.model.slidingWindow).toBe(128);
    const s = await cli(['sample', '--run', join(dir, 'swa'), '--prompt', 'ROMEO:', '--max-new-tokens', '12', '--temperature', '0']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.startsWith('ROMEO:')).toBe(true);
    // --resume reloads the run (its config with slidingWindow, the checkpoint); a finished run says so.
    const r = await cli(['train', '--resume', '--out-dir', dir, '--name', 'swa']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout, r.stdout).toMatch(/has already finished \(step 3 of 3\)/);
    const p = await cli(['params', '--preset', 'nano-swa']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/KV cache per sequence: 1\.50 MiB \(12\.00 KiB per token × 128 positions, fp32, sliding window 128/);
  }, 60_000);
});
