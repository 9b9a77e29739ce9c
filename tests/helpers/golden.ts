/** Reading PyTorch golden values (tools/golden/SPEC.md) and comparing tensors against them. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { Tensor, tensor, type DType } from '../../src/index.js';

export interface GoldenTensor {
  shape: number[];
  dtype: DType;
  data: number[];
  view?: Record<string, number[]>[];
}

export interface GoldenCase {
  name: string;
  op: string;
  inputs: GoldenTensor[];
  args: Record<string, unknown>;
  out: GoldenTensor | GoldenTensor[];
  gradOut?: GoldenTensor;
  grads?: (GoldenTensor | null)[];
}

export function loadGolden<T = { cases: GoldenCase[] }>(file: string): T {
  const path = fileURLToPath(new URL(`../golden/${file}`, import.meta.url));
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Builds the tensor, marks it as a leaf requiring grad when asked, then applies the view steps. */
export function fromGolden(g: GoldenTensor, requiresGrad = false): { leaf: Tensor; value: Tensor } {
  const leaf = tensor(
    g.dtype === 'float32' ? Float32Array.from(g.data) : g.dtype === 'int32' ? Int32Array.from(g.data) : Uint8Array.from(g.data),
    { shape: g.shape },
  );
  if (requiresGrad) leaf.requiresGrad = true;
  let value = leaf;
  for (const step of g.view ?? []) {
    const [kind, arg] = Object.entries(step)[0];
    if (kind === 'transpose') value = value.transpose(arg[0], arg[1]);
    else if (kind === 'permute') value = value.permute(arg);
    else if (kind === 'narrow') value = value.narrow(arg[0], arg[1], arg[2]);
    else if (kind === 'expand') value = value.expand(arg);
    else throw new Error(`unknown view step ${kind}`);
  }
  if (requiresGrad && value !== leaf) value.retainGrad();
  return { leaf, value };
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, with a message that names the
 * case and the worst element.
 */
export function expectClose(actual: Tensor, expected: GoldenTensor, label: string, rtol = 1e-5, atol = 1e-6): void {
  expect(actual.shape, `${label}: shape`).toEqual(expected.shape);
  if (expected.dtype !== 'float32') {
    expect(actual.dtype, `${label}: dtype`).toBe(expected.dtype);
    expect(actual.toArray(), `${label}: values`).toEqual(expected.data);
    return;
  }
  const values = actual.toArray();
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < values.length; i++) {
    const e = expected.data[i];
    const excess = Math.abs(values[i] - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.fail(`${label}: element ${worst} is ${values[worst]}, expected ${expected.data[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}
