/** `tensorlm train --preset nano-swa` at tiny sizes: trains, samples, resumes; `params` prints the capped KV cache. */
import { describe, expect, it } from 'vitest';
import { runCli as cli, trainSampleResumeTiny } from '../helpers/cli.js';

describe('tensorlm with the nano-swa preset', () => {
  it('trains a few steps, samples, resumes, and params reports the window', async () => {
    const { model } = await trainSampleResumeTiny('nano-swa', 'swa');
    expect(model.slidingWindow).toBe(128);
    const p = await cli(['params', '--preset', 'nano-swa']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/KV cache per sequence: 1\.50 MiB \(12\.00 KiB per token × 128 positions, fp32, sliding window 128/);
  }, 60_000);
});
