/** `tensorlm report` end to end on a tiny run (trained through the library, so the test stays fast). */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';
import { runCli as cli } from '../helpers/cli.js';

describe('tensorlm report', () => {
  let dir: string;
  let runDir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-report-cli-'));
    const data = join(dir, 'plays.txt');
    writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\n'.repeat(40));
    runDir = (await train(smallTrainConfig(dir, data, { name: 'tiny', model: { dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 32 }, maxSteps: 4, evalInterval: 2, sampleTokens: 8, replicas: 1 }))).files.dir;
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the report card, with --eval and --samples, where --out says', async () => {
    const out = join(dir, 'card.md');
    const r = await cli(['report', '--run', runDir, '--eval', '--samples', '1', '--sample-tokens', '5', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`report card: ${out}`);
    expect(r.stdout).toContain(`wrote ${out}, ${join(dir, 'card.json')}, ${join(dir, 'card-loss.svg')}`);
    const md = readFileSync(out, 'utf8');
    expect(md).toContain('# Report card: tiny');
    expect(md).toMatch(/Validation \(best checkpoint, step \d+, the whole split/);
    expect(md).toContain('Fresh sample, best checkpoint, seed 1, temperature 0.8');
    expect(existsSync(join(dir, 'card-loss.svg'))).toBe(true);
    expect(existsSync(join(runDir, 'report.md'))).toBe(false);
  }, 20_000);

  it('a missing run is one line of error', async () => {
    const r = await cli(['report', '--run', join(dir, 'missing')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^tensorlm: run directory .*missing does not exist$/);
  }, 20_000);
});
