/** `tensorlm train --preset nano-linear` at tiny sizes: trains, samples, resumes; `params` prints the constant state. */
import { describe, expect, it } from 'vitest';
import { runCli as cli, trainSampleResumeTiny } from '../helpers/cli.js';

describe('tensorlm with the nano-linear preset', () => {
  it('trains a few steps, samples, resumes, and params reports the constant state', async () => {
    const { model } = await trainSampleResumeTiny('nano-linear', 'lin');
    expect(model.attention).toBe('linear');
    expect(model.pos).toBe('learned');
    const p = await cli(['params', '--preset', 'nano-linear']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/Linear-attention state per sequence: 198\.00 KiB \(6 layers × 8 kv heads × \(32² \+ 32\) floats, fp32, any length\)/);
    const j = await cli(['params', '--preset', 'nano-linear', '--json']);
    expect((JSON.parse(j.stdout) as { kvCache: { stateBytes: number } }).kvCache.stateBytes).toBe(202_752);
  }, 60_000);
});
