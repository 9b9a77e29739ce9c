/** Shared helpers of the model tests: golden tensors from tests/golden/models.json, and tolerances. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { tensor, type Tensor } from '../../src/index.js';
import { TransformerLM } from '../../src/models/transformer.js';
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
