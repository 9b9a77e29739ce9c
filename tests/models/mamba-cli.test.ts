/** `tensorlm train --preset nano-mamba` at tiny sizes: trains, samples, resumes; `params` prints the Mamba state. */
import { describe, expect, it } from 'vitest';
import { runCli as cli, trainSampleResumeTiny } from '../helpers/cli.js';

describe('tensorlm with the nano-mamba preset', () => {
  it('trains a few steps, samples, resumes, and params reports the parameters and the state', async () => {
    const { model } = await trainSampleResumeTiny('nano-mamba', 'mamba', 2);
    expect(model.mamba).toEqual({ dState: 16, dConv: 4, expand: 2, dtRank: 16 });
    expect(model.nLayers).toBe(2);
    const p = await cli(['params', '--preset', 'nano-mamba']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/nano-mamba: 5,321,984 parameters/);
    expect(p.stdout).toMatch(/Mamba state per sequence: 456\.00 KiB \(12 layers × 512 channels × \(3 conv \+ 16 SSM\) floats, fp32, any length\)/);
  }, 60_000);
});
