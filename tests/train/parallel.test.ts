import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { AdamW } from '../../src/optim/adam.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import { randint } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { DataParallel } from '../../src/train/parallel.js';

const tied: TransformerConfigInput = { vocabSize: 20, dModel: 32, nLayers: 2, nHeads: 4, maxSeqLen: 16 };
const untied: TransformerConfigInput = { ...tied, tieWeights: false, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false };

/** Two models with identical weights: one to run data-parallel, one as the single-thread reference. */
function twins(config: TransformerConfigInput): [TransformerLM, TransformerLM] {
  return [new TransformerLM(config, { generator: new Generator(1) }), new TransformerLM(config, { generator: new Generator(1) })];
}

function batch(b: number, t: number, seed: number, vocab = 20): { x: Tensor; y: Tensor } {
  const g = new Generator(seed);
  return { x: randint(0, vocab, [b, t], { generator: g }), y: randint(0, vocab, [b, t], { generator: g }) };
}

/** Full-batch loss and gradients of the reference model. */
function referenceStep(model: TransformerLM, x: Tensor, y: Tensor): number {
  const loss = model.forward(x, y).loss as Tensor;
  loss.backward();
  return loss.item();
}

/**
 * Largest |a − b| of each parameter's gradient relative to that gradient's largest |b|. Some
 * gradients are exactly zero in exact arithmetic and only rounding noise here (the key bias: a
 * constant added to every score of a softmax row changes nothing), ~1e-12 against ~1e-1
 * elsewhere; the scale is therefore floored at 1e-4 of the largest gradient element of the model.
 */
function worstGradError(a: TransformerLM, b: TransformerLM): number {
  const ref = new Map(b.namedParameters());
  const pairs = a.namedParameters().map(([name, p]) => {
    const q = ref.get(name) as Tensor;
    if (p.grad === null || q.grad === null) throw new Error(`${name}: missing gradient (dp ${p.grad === null}, reference ${q.grad === null})`);
    return [p.grad.toTypedArray(), q.grad.toTypedArray()] as const;
  });
  let global = 0;
  for (const [, gb] of pairs) for (const v of gb) global = Math.max(global, Math.abs(v));
  let worst = 0;
  for (const [ga, gb] of pairs) {
    let diff = 0;
    let scale = 1e-4 * global;
    for (let i = 0; i < ga.length; i++) {
      diff = Math.max(diff, Math.abs(ga[i] - gb[i]));
      scale = Math.max(scale, Math.abs(gb[i]));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

function worstParamDiff(a: TransformerLM, b: TransformerLM): number {
  const ref = new Map(b.namedParameters());
  let worst = 0;
  for (const [name, p] of a.namedParameters()) {
    const pa = p.toTypedArray();
    const pb = (ref.get(name) as Tensor).toTypedArray();
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
  }
  return worst;
}

const open: DataParallel[] = [];
function parallel(model: TransformerLM, replicas: number, seed?: number): DataParallel {
  const dp = new DataParallel(model, { replicas, seed });
  open.push(dp);
  return dp;
}
afterAll(async () => {
  await Promise.all(open.map((dp) => dp.close()));
});

describe('DataParallel', () => {
  it.each([
    ['tied weights, GELU, learned positions', tied],
    ['untied head, SwiGLU, RoPE, RMSNorm', untied],
  ])('2 replicas give the full-batch loss and gradients (%s)', async (_, config) => {
    const [model, ref] = twins(config);
    const dp = parallel(model, 2);
    const { x, y } = batch(6, 16, 2);
    const loss = await dp.step(x, y);
    const expected = referenceStep(ref, x, y);
    expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-6);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
    expect(dp.info().workerBackends).toHaveLength(1);
    // Tied weights stay one parameter on both sides (no separate head gradient to lose).
    expect(model.namedParameters().map(([n]) => n)).toEqual(ref.namedParameters().map(([n]) => n));
  });

  it('tracks a single-thread AdamW run step for step', async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 2);
    const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.1 });
    const refOpt = new AdamW(ref.parameters(), { lr: 3e-3, weightDecay: 0.1 });
    for (let step = 0; step < 5; step++) {
      const { x, y } = batch(6, 16, 10 + step);
      opt.zeroGrad();
      const loss = await dp.step(x, y);
      clipGradNorm(model.parameters(), 1.0);
      opt.step();
      refOpt.zeroGrad();
      const expected = referenceStep(ref, x, y);
      clipGradNorm(ref.parameters(), 1.0);
      refOpt.step();
      expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-5);
    }
    // Five steps of lr 3e-3 move weights by up to ~1.6e-2; the two runs differ by ~1e-6 (float32
    // rounding of differently ordered sums, amplified a little by Adam's normalisation).
    expect(worstParamDiff(model, ref)).toBeLessThan(2e-5);
  });

  it('weights uneven shards and ignored targets by their share of the batch', async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 3); // 7 rows → shards of 2, 2 and 3
    const { x, y } = batch(7, 16, 3);
    // Ignore most targets of the last rows so that the shards' shares differ from their row counts.
    const targets = y.storage as Int32Array;
    for (let i = 5 * 16; i < 7 * 16 - 3; i++) targets[i] = -100;
    const loss = await dp.step(x, y);
    const expected = referenceStep(ref, x, y);
    expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-6);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
  });

  it('leaves replicas idle when the batch is smaller than the replica count', async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 2);
    const { x, y } = batch(1, 16, 4); // the only row goes to the worker; the main thread only sums
    const loss = await dp.step(x, y);
    const expected = referenceStep(ref, x, y);
    expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-6);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
  });

  it('adds into existing gradients, as backward() does', async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 2);
    const a = batch(4, 16, 5);
    const b = batch(4, 16, 6);
    await dp.step(a.x, a.y);
    await dp.step(b.x, b.y);
    referenceStep(ref, a.x, a.y);
    referenceStep(ref, b.x, b.y);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
  });

  it('with 1 replica is exactly a plain step (no workers)', async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 1);
    expect(dp.info().workerBackends).toEqual([]);
    const { x, y } = batch(6, 16, 7);
    const loss = await dp.step(x, y);
    expect(loss).toBe(referenceStep(ref, x, y));
    expect(worstGradError(model, ref)).toBe(0);
  });

  it('mirrors eval mode to the replicas (dropout off gives the full-batch result)', async () => {
    const config = { ...tied, dropout: 0.3 };
    const [model, ref] = twins(config);
    model.eval();
    ref.eval();
    const dp = parallel(model, 2);
    const { x, y } = batch(6, 16, 8);
    const loss = await dp.step(x, y);
    const expected = referenceStep(ref, x, y);
    expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-6);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
  });

  it('draws dropout masks deterministically per replica', async () => {
    const config = { ...tied, dropout: 0.3 };
    const run = async (seed: number) => {
      const model = new TransformerLM(config, { generator: new Generator(1), dropoutGenerator: new Generator(2) });
      const dp = parallel(model, 2, seed);
      const losses: number[] = [];
      for (let i = 0; i < 2; i++) {
        const { x, y } = batch(4, 16, 9 + i);
        losses.push(await dp.step(x, y));
      }
      await dp.close();
      return losses;
    };
    const first = await run(5);
    expect(await run(5)).toEqual(first);
    // Another seed changes only the worker's masks (the main shard uses the model's generator).
    expect(await run(6)).not.toEqual(first);
  });

  it("rejects with the worker's error, and keeps working afterwards", async () => {
    const [model, ref] = twins(tied);
    const dp = parallel(model, 2);
    const bad = batch(4, 16, 11);
    (bad.x.storage as Int32Array)[3 * 16 + 5] = 25; // row 3 is in the worker's shard
    await expect(dp.step(bad.x, bad.y)).rejects.toThrow(/replica 1 \(worker thread\) failed: embedding: index 25 is out of range/);
    model.zeroGrad();
    const { x, y } = batch(4, 16, 12);
    const loss = await dp.step(x, y);
    expect(Math.abs(loss - referenceStep(ref, x, y))).toBeLessThan(1e-5);
    expect(worstGradError(model, ref)).toBeLessThan(1e-5);
  });

  it('rejects an error on the main shard after the workers finished theirs', async () => {
    const [model] = twins(tied);
    const dp = parallel(model, 2);
    const bad = batch(4, 16, 13);
    (bad.x.storage as Int32Array)[2] = -1; // row 0 is the main thread's
    await expect(dp.step(bad.x, bad.y)).rejects.toThrow(/embedding: index -1 is out of range/);
    const { x, y } = batch(4, 16, 14);
    await expect(dp.step(x, y)).resolves.toBeGreaterThan(0);
  });

  it('checks its inputs and its state', async () => {
    const [model] = twins(tied);
    const dp = new DataParallel(model, { replicas: 2 });
    const { x, y } = batch(4, 16, 15);
    await expect(dp.step(x.float(), y)).rejects.toThrow(/int32 tensors of the same shape/);
    await expect(dp.step(x, y.narrow(0, 0, 2))).rejects.toThrow(/int32 tensors of the same shape/);
    const first = dp.step(x, y);
    await expect(dp.step(x, y)).rejects.toThrow(/previous step has not finished/);
    await first;
    await dp.close();
    await expect(dp.step(x, y)).rejects.toThrow(/closed/);
    expect(() => new DataParallel(model, { replicas: 0 })).toThrow(/replicas must be a positive integer/);
  });

  it("reports a replica that cannot mirror the main model (the worker's start-up error)", async () => {
    const [model] = twins(tied);
    // A parameter the config knows nothing about: the replica built from the config lacks it.
    model.registerParameter('extra', new Tensor(new Float32Array(3), [3]).requiresGrad_());
    const dp = parallel(model, 2);
    const { x, y } = batch(4, 16, 18);
    await expect(dp.step(x, y)).rejects.toThrow(/replica 1 could not start: the replica built from the config has \d+ parameters, the main model \d+/);
  });

  it('rejects a step in flight when the workers are closed under it', async () => {
    const [model] = twins(tied);
    const dp = new DataParallel(model, { replicas: 2 });
    await dp.ready();
    const { x, y } = batch(4, 16, 17);
    const running = dp.step(x, y);
    const closing = dp.close();
    await expect(running).rejects.toThrow(/replica 1 \(worker thread\) exited/);
    await closing;
  });

  it('falls back to an available backend in the worker, with a warning', async () => {
    const [model, ref] = twins(tied);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const dp = new DataParallel(model, { replicas: 2, backend: 'no-such-backend' });
      open.push(dp);
      await dp.ready();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(dp.info().workerBackends[0]).not.toBe('no-such-backend');
      const { x, y } = batch(4, 16, 16);
      await dp.step(x, y);
      referenceStep(ref, x, y);
      expect(worstGradError(model, ref)).toBeLessThan(1e-5);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.join('\n')).toMatch(/backend 'no-such-backend' is not available in the worker thread/);
  });

  it('never keeps the process alive, and a pending step keeps it alive long enough', () => {
    // A script that awaits a step at top level and never closes: it must print and exit on its
    // own (an unref'd worker without a ref during the step would let Node exit mid-step).
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-dp-'));
    const src = (p: string) => pathToFileURL(resolve(p)).href;
    const script = join(dir, 'exit.mts');
    writeFileSync(
      script,
      `import { DataParallel } from ${JSON.stringify(src('src/train/parallel.ts'))};
import { TransformerLM } from ${JSON.stringify(src('src/models/transformer.ts'))};
import { randint } from ${JSON.stringify(src('src/tensor/creation.ts'))};
const model = new TransformerLM({ vocabSize: 20, dModel: 16, nLayers: 1, nHeads: 2, maxSeqLen: 8 });
const dp = new DataParallel(model, { replicas: 2 });
const loss = await dp.step(randint(0, 20, [4, 8]), randint(0, 20, [4, 8]));
console.log('loss', loss.toFixed(3));
new DataParallel(model, { replicas: 2 }); // never stepped, never closed, still starting
const end = performance.now();
process.on('exit', () => console.log('exit after', Math.round(performance.now() - end), 'ms'));
`,
    );
    const out = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 45_000 });
    expect(out).toMatch(/^loss \d\.\d{3}$/m);
    // Normally ~10 ms; a worker left ref'd keeps the process alive (for ~30 s under tsx, forever compiled).
    const lag = Number(/^exit after (\d+) ms$/m.exec(out)?.[1]);
    expect(lag).toBeLessThan(5000);
  });
});
