/** Shared helpers of the model tests: golden tensors from tests/golden/models.json, and tolerances. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { getBackend, listBackends, noGrad, setBackend, tensor, type Tensor } from '../../src/index.js';
import type { TransformerConfigInput } from '../../src/models/config.js';
import { DecodeEngine } from '../../src/models/decode.js';
import { TransformerLM, type KVCache } from '../../src/models/transformer.js';
import { Generator } from '../../src/tensor/random.js';
import type { GoldenTensor } from '../helpers/golden.js';

export type { GoldenTensor } from '../helpers/golden.js';

export interface ModuleCase {
  name: string;
  module: string;
  args: Record<string, unknown>;
  params: Record<string, GoldenTensor>;
  inputs: GoldenTensor[];
  out: GoldenTensor;
  gradOut: GoldenTensor;
  grads: { inputs: (GoldenTensor | null)[]; params: Record<string, GoldenTensor> };
  mask?: GoldenTensor;
  table?: GoldenTensor;
  after?: Record<string, GoldenTensor>;
  eval?: { input: GoldenTensor; out: GoldenTensor };
}

export interface ModelCase {
  name: string;
  config: Record<string, unknown>;
  params: Record<string, GoldenTensor>;
  ids: GoldenTensor;
  targets: GoldenTensor;
  logits: GoldenTensor;
  loss: number;
  grads: Record<string, GoldenTensor>;
}

export interface ModelsGolden {
  modules: ModuleCase[];
  models: ModelCase[];
  safetensors: { name: string; file: string; config: Record<string, unknown>; ids: GoldenTensor; logits: GoldenTensor };
}

export function goldenPath(file: string): string {
  return fileURLToPath(new URL(`../golden/${file}`, import.meta.url));
}

let cached: ModelsGolden | null = null;
export function loadModelsGolden(): ModelsGolden {
  cached ??= JSON.parse(readFileSync(goldenPath('models.json'), 'utf8')) as ModelsGolden;
  return cached;
}

export function fromGolden(g: GoldenTensor): Tensor {
  const data = g.dtype === 'float32' ? Float32Array.from(g.data) : g.dtype === 'int32' ? Int32Array.from(g.data) : Uint8Array.from(g.data);
  return tensor(data, { shape: g.shape });
}

export function stateFromGolden(params: Record<string, GoldenTensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, fromGolden(v)]));
}

/** The largest magnitude over several golden tensors (the scale of a set of gradients). */
export function maxAbs(tensors: Iterable<GoldenTensor | null>): number {
  let m = 0;
  for (const t of tensors) if (t) for (const v of t.data) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * |actual − expected| ≤ rtol·(|expected| + floor·scale) elementwise: relative, with a floor of
 * `floor` times `scale` (default: the tensor's largest magnitude; pass the largest gradient of the
 * whole model to judge a gradient that is zero in exact arithmetic, like a key bias's, on the
 * model's scale). Names the worst element on failure.
 */
export function expectRelClose(actual: Tensor | null | undefined, expected: GoldenTensor, label: string, rtol: number, floor = 1e-2, scaleOverride?: number): void {
  expect(actual, `${label}: missing`).toBeTruthy();
  const a = actual as Tensor;
  expect(a.shape, `${label}: shape`).toEqual(expected.shape);
  if (expected.dtype !== 'float32') {
    expect(a.toArray(), `${label}: values`).toEqual(expected.data);
    return;
  }
  const values = a.toArray();
  let scale = scaleOverride ?? 0;
  if (scaleOverride === undefined) for (const e of expected.data) scale = Math.max(scale, Math.abs(e));
  let worst = -1;
  let worstRatio = 1;
  for (let i = 0; i < values.length; i++) {
    const e = expected.data[i];
    const ratio = Math.abs(values[i] - e) / (rtol * (Math.abs(e) + floor * scale) + 1e-30);
    if (!(ratio <= worstRatio)) {
      worst = i;
      worstRatio = Number.isNaN(ratio) ? Infinity : ratio;
    }
  }
  if (worst >= 0) expect.fail(`${label}: element ${worst} is ${values[worst]}, expected ${expected.data[worst]} (rtol ${rtol}, ${worstRatio.toFixed(2)}× the tolerance)`);
}

/** `m` in eval mode with its matrices scaled ×4: sharper than the default init, so greedy choices are clear and a slip would show. */
export function sharpened<M extends TransformerLM>(m: M): M {
  for (const p of m.parameters()) if (p.ndim === 2) p.storage.set(p.toTypedArray().map((v) => v * 4));
  m.eval();
  return m;
}

/** `n` seeded random token ids below `vocab`. */
export function randomIds(n: number, vocab: number, seed = 1): number[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => g.randint(0, vocab));
}

/** Logits [T·V] of one row, uncached: the model's full forward over all of it. */
export function uncachedLogits(m: TransformerLM, row: readonly number[]): Float32Array {
  return noGrad(() => m.forward(tensor(Int32Array.from(row), { shape: [1, row.length] })).logits.contiguous().toTypedArray() as Float32Array);
}

/** The largest absolute difference of two equally long arrays. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Index of the largest of a[from .. from + n), counted from `from`. */
export function argmax(a: ArrayLike<number>, from = 0, n = a.length): number {
  let best = from;
  for (let i = from; i < from + n; i++) if (a[i] > a[best]) best = i;
  return best - from;
}

/**
 * Feeds rows (B sequences of token ids) chunk by chunk to a fresh DecodeEngine and a fresh graph
 * KV cache together: after each chunk both give every row's uncached logits at its last position
 * within 1e-5, and `check(engine, graph)` may compare the two caches element by element. For each
 * chunking in `chunkings` (lengths summing to at most the rows' length).
 */
export function expectEngineAndCacheFollowUncached(m: TransformerLM, rows: readonly (readonly number[])[], chunkings: readonly (readonly number[])[], check?: (engine: DecodeEngine, graph: KVCache) => void): void {
  const B = rows.length;
  const V = m.config.vocabSize;
  const full = rows.map((row) => uncachedLogits(m, row));
  for (const chunks of chunkings) {
    const engine = new DecodeEngine(m, B);
    const graph = m.createCache(B);
    let at = 0;
    for (const n of chunks) {
      const flat = Int32Array.from(rows.flatMap((row) => row.slice(at, at + n)));
      const logits = engine.forward(flat, n);
      const viaGraph = noGrad(() => m.step(tensor(flat, { shape: [B, n] }), graph).contiguous().toTypedArray() as Float32Array);
      at += n;
      for (let r = 0; r < B; r++) {
        const want = full[r].subarray((at - 1) * V, at * V);
        expect(maxDiff(logits.subarray(r * V, (r + 1) * V), want), `engine, row ${r} at ${at}`).toBeLessThan(1e-5);
        expect(maxDiff(viaGraph.subarray(r * V, (r + 1) * V), want), `graph cache, row ${r} at ${at}`).toBeLessThan(1e-5);
      }
      check?.(engine, graph);
    }
  }
}

/**
 * Greedy generation to the end of the context through the DecodeEngine and through the KVCache
 * graph path gives the tokens of an uncached argmax loop (the full forward each step).
 */
export function expectCachedGreedyMatchesUncached(m: TransformerLM, prompt: readonly number[]): void {
  const n = m.config.maxSeqLen - prompt.length;
  const V = m.config.vocabSize;
  const seq = prompt.slice();
  for (let i = 0; i < n; i++) seq.push(argmax(uncachedLogits(m, seq), (seq.length - 1) * V, V));
  const want = seq.slice(prompt.length);
  const input = tensor(Int32Array.from(prompt), { shape: [1, prompt.length] });
  expect([...m.generateStream(input, { maxNewTokens: n, temperature: 0 })].map((t) => t[0])).toEqual(want);
  expect([...m.generateStream(input, { maxNewTokens: n, temperature: 0, cache: m.createCache(1) })].map((t) => t[0])).toEqual(want);
}

/**
 * Replays a golden file of whole models (tests/golden/<file>: cases of config, parameters, ids,
 * targets, logits, loss and gradients from a PyTorch reference) on every backend: logits, loss and
 * every gradient within 1e-5 relative. Gradients are relative to the tensor's largest value,
 * floored at a tenth of the model's largest gradient: some are exactly 0 analytically (a key bias
 * shifts a softmax row; with a window of 1 the query never matters) and only rounding is left.
 */
export function describeModelGolden(file: string): void {
  describe(`PyTorch golden (tests/golden/${file})`, () => {
    const golden = JSON.parse(readFileSync(goldenPath(file), 'utf8')) as { cases: (ModelCase & { config: TransformerConfigInput })[] };
    const initial = getBackend();
    afterAll(() => setBackend(initial));
    for (const backend of listBackends()) {
      for (const c of golden.cases) {
        it(`${c.name} (${backend}): logits, loss and every gradient within 1e-5 relative`, () => {
          setBackend(backend);
          const m = new TransformerLM(c.config);
          m.loadStateDict(stateFromGolden(c.params));
          const { logits, loss } = m.forward(fromGolden(c.ids), fromGolden(c.targets));
          const floor = 0.1 * Math.max(...Object.values(c.grads).flatMap((g) => g.data.map(Math.abs)));
          const rel = (a: Tensor, g: { data: number[] }, min = 0): number => maxDiff(a.contiguous().toTypedArray(), g.data) / Math.max(min, ...g.data.map(Math.abs));
          expect(rel(logits, c.logits)).toBeLessThan(1e-5);
          expect(Math.abs(loss!.item() - c.loss) / Math.abs(c.loss)).toBeLessThan(1e-5);
          loss!.backward();
          const params = Object.fromEntries(m.namedParameters());
          expect(Object.keys(params).sort()).toEqual(Object.keys(c.grads).sort());
          for (const [name, g] of Object.entries(c.grads)) expect(rel(params[name].grad!, g, floor), `${c.name} grad ${name}`).toBeLessThan(1e-5);
        });
      }
    }
  });
}
