/** `tensorlm train --preset nano-linear` at tiny sizes: trains, samples, resumes; `params` prints the constant linear-attention state. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli } from '../helpers/cli.js';

describe('tensorlm with the nano-linear preset', () => {
  it('trains a few steps, samples, resumes, and params reports the constant state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-linear-'));
    const data = join(dir, 'text.txt');
    writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\n'.repeat(40));
    const args = ['--preset', 'nano-linear', '--d-model', '16', '--n-layers', '1', '--n-heads', '2', '--data', data, '--out-dir', dir, '--name', 'lin', '--batch-size', '2', '--block-size', '16', '--max-time', 'none', '--eval-interval', '3', '--eval-iters', '1', '--sample-tokens', '8'];
    const t = await cli(['train', ...args, '--max-steps', '3']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/finished 3 steps/);
    const resolved = JSON.parse(readFileSync(join(dir, 'lin', 'config.json'), 'utf8')) as { model: { attention: string; pos: string } };
    expect(resolved.model.attention).toBe('linear');
    expect(resolved.model.pos).toBe('learned');
    const s = await cli(['sample', '--run', join(dir, 'lin'), '--prompt', 'ROMEO:', '--max-new-tokens', '12', '--temperature', '0']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.startsWith('ROMEO:')).toBe(true);
    // --resume reloads the run (its config with attention 'linear', the checkpoint); a finished run says so.
    const r = await cli(['train', '--resume', '--out-dir', dir, '--name', 'lin']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout, r.stdout).toMatch(/has already finished \(step 3 of 3\)/);
    const p = await cli(['params', '--preset', 'nano-linear']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/Linear-attention state per sequence: 198\.00 KiB \(6 layers × 8 kv heads × \(32² \+ 32\) floats, fp32, any length\)/);
    const j = await cli(['params', '--preset', 'nano-linear', '--json']);
    expect((JSON.parse(j.stdout) as { kvCache: { stateBytes: number } }).kvCache.stateBytes).toBe(202_752);
  }, 60_000);
});
