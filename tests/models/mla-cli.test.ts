/**
 * `tensorlm train --preset nano-mla` at tiny sizes: trains, samples, resumes; `params` prints the
 * latent KV cache; `export` refuses the run in one line for both formats.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli, trainSampleResumeTiny } from '../helpers/cli.js';

describe('tensorlm with the nano-mla preset', () => {
  it('trains a few steps, samples, resumes, params reports the latent cache, export refuses', async () => {
    const { dir, run, model } = await trainSampleResumeTiny('nano-mla', 'mla');
    expect(model.mla).toEqual({ kvLoraRank: 128, qLoraRank: null, qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 });
    expect(model.nKvHeads).toBe(2);
    const p = await cli(['params', '--preset', 'nano-mla']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/nano-mla: 5,206,016 parameters/);
    expect(p.stdout).toMatch(/KV cache per sequence: 1\.69 MiB \(3\.38 KiB per token × 512 positions, fp32; multi-head latent attention caches 6 layers × \(128 c_KV \+ 16 k\^R\) floats per token\)/);
    for (const format of ['hf', 'gguf']) {
      const e = await cli(['export', '--run', run, '--out', join(dir, `out-${format}`), '--format', format]);
      expect(e.code).not.toBe(0);
      expect(e.stderr).toMatch(/mla \(neither has multi-head latent attention; DeepseekV2ForCausalLM is not written yet\)/);
    }
  }, 60_000);
});
