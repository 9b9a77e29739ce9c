/**
 * Faults around a training run on disk (issue #20, item 6): SIGTERM, temporary files a killed
 * writer left behind, resuming a finished run, and a copied run directory.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/index.js';
import { removeStaleTempFiles, tempFileWriterPid, tempPathFor } from '../../src/data/files.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';
import { CLI_ARGS as CLI, runCli as cli } from '../helpers/cli.js';

function setup(): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-faults-'));
  const data = join(dir, 'plays.txt');
  writeFileSync(data, 'ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n'.repeat(60));
  return { dir, data };
}

/** The id of a process that has exited (a writer killed mid-write). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('training run faults', () => {
  it('SIGTERM saves a checkpoint and exits with a message, as Ctrl-C does; the run resumes from it', async () => {
    const { dir, data } = setup();
    const config = join(dir, 'train.json');
    writeFileSync(config, JSON.stringify({ model: { dModel: 32, nLayers: 1, nHeads: 2, dFF: 64, maxSeqLen: 32 }, batchSize: 4, blockSize: 32, maxTime: 'none', evalIters: 2, warmupSteps: 2 }));
    const child = spawn(process.execPath, [...CLI, 'train', '--config', config, '--data', data, '--out-dir', dir, '--name', 'termed', '--max-steps', '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (stdout.includes('run directory')) {
          clearInterval(poll);
          setTimeout(() => {
            child.kill('SIGTERM');
            resolve();
          }, 1500);
        }
      }, 100);
    });
    const { code, signal } = await exited;
    expect({ code, signal }, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toMatch(/SIGTERM: saving a checkpoint/);
    const m = /stopped at step (\d+); checkpoint saved to .*latest\.safetensors\. Continue with: tensorlm train --name termed --out-dir .* --resume/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const step = Number(m?.[1]);
    expect(readCheckpoint(join(dir, 'termed', 'latest.safetensors')).meta.step).toBe(step);
    const resumed = await train({ outDir: dir, name: 'termed' }, { resume: true, stopAfterSteps: 1 });
    expect(resumed.step).toBe(step + 1);
  }, 90_000);

  it('opening a run removes the temporary files of writers that are gone, and keeps those of live ones', async () => {
    const { dir, data } = setup();
    const r = await train(smallTrainConfig(dir, data, { name: 'stale', maxSteps: 4, evalInterval: 2, sampleTokens: 0 }), { stopAfterSteps: 2 });
    const gone = deadPid();
    // Both writers' names: data/files.ts writeFileAtomic (via tempPathFor) and io/safetensors.ts saveSafetensors.
    const ours = tempPathFor(r.files.config);
    expect(tempFileWriterPid(ours.slice(r.files.dir.length + 1))).toBe(process.pid);
    const stale = [
      ours.replace(`.${process.pid}.`, `.${gone}.`),
      join(r.files.dir, `.latest.safetensors.tmp-${gone}-${Date.now().toString(36)}-k3j9x1`),
      join(r.files.dir, `.best.safetensors.tmp-${gone}-${Date.now().toString(36)}-0a1b2c`),
    ];
    const live = [ours, join(r.files.dir, `.latest.safetensors.tmp-${process.pid}-${Date.now().toString(36)}-zz0011`)];
    const unrelated = [join(r.files.dir, '.notes.tmp'), join(r.files.dir, 'my.123.tmp')];
    for (const path of [...stale, ...live, ...unrelated]) writeFileSync(path, 'half-written');
    const resumed = await train({ outDir: dir, name: 'stale' }, { resume: true });
    expect(resumed.step).toBe(4);
    for (const path of stale) expect(existsSync(path), path).toBe(false);
    for (const path of [...live, ...unrelated]) expect(existsSync(path), path).toBe(true);
    expect(removeStaleTempFiles(join(dir, 'no-such-run'))).toEqual([]);
  });

  it('resuming a finished run trains nothing and appends no second final evaluation (library and CLI)', async () => {
    const { dir, data } = setup();
    const r = await train(smallTrainConfig(dir, data, { name: 'done', maxSteps: 4, evalInterval: 2, sampleTokens: 0 }));
    const metrics = readFileSync(r.files.metrics, 'utf8');
    const latest = readFileSync(r.files.latest);
    const evals = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.kind === 'eval').map((x) => x.step);
    expect(evals(metrics)).toEqual([2, 4]);

    const again = await train({ outDir: dir, name: 'done' }, { resume: true });
    expect(again.alreadyFinished).toBe(true);
    expect([again.step, again.trainLosses.length, again.finalValLoss]).toEqual([4, 0, r.finalValLoss]);
    expect(readFileSync(r.files.metrics, 'utf8')).toBe(metrics);
    expect(readFileSync(r.files.latest).equals(latest)).toBe(true);

    const t = await cli(['train', '--resume', '--out-dir', dir, '--name', 'done']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/done has already finished \(step 4 of 4\); nothing to train; its final val loss is \d+\.\d{4}/);
    expect(t.stdout).not.toMatch(/resuming/);
    expect(evals(readFileSync(r.files.metrics, 'utf8'))).toEqual([2, 4]);
  }, 60_000);

  it('a copied run directory resumes where it is, and says so', async () => {
    const { dir, data } = setup();
    const original = await train(smallTrainConfig(dir, data, { name: 'orig', maxSteps: 4, evalInterval: 2, sampleTokens: 0 }), { stopAfterSteps: 2 });
    const copy = join(dir, 'copy');
    cpSync(original.files.dir, copy, { recursive: true });
    const before = readFileSync(original.files.metrics, 'utf8');
    const latestBefore = statSync(original.files.latest).mtimeMs;

    const t = await cli(['train', '--resume', '--out-dir', dir, '--name', 'copy', '--sample-tokens', '0']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^resuming copy: /m);
    expect(t.stdout).toContain(`run directory ${copy}`);
    expect(t.stdout).not.toContain(original.files.dir);
    expect(readCheckpoint(join(copy, 'latest.safetensors')).meta.step).toBe(4);
    // The copy's files name the copy, not the original.
    const saved = JSON.parse(readFileSync(join(copy, 'config.json'), 'utf8')) as { train: { name: string; outDir: string } };
    expect([saved.train.name, saved.train.outDir]).toEqual(['copy', dir]);
    expect((readCheckpoint(join(copy, 'latest.safetensors')).meta.config as { train: { name: string } }).train.name).toBe('copy');
    // The original is untouched.
    expect(readFileSync(original.files.metrics, 'utf8')).toBe(before);
    expect(statSync(original.files.latest).mtimeMs).toBe(latestBefore);
    expect(readdirSync(original.files.dir).sort()).toEqual(readdirSync(original.files.dir).filter((n) => !n.startsWith('.')).sort());
  }, 60_000);
});
