/**
 * Reading the PyTorch golden values of tests/golden (format: tools/golden/SPEC.md) and comparing
 * tensors against them, for the nn tests.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { Tensor, tensor, type DType } from '../../src/index.js';

export type ViewStep = { transpose: [number, number] } | { permute: number[] } | { narrow: [number, number, number] } | { expand: number[] };

export interface GoldenTensor {
  shape: number[];
  dtype: DType;
  data: number[];
  view?: ViewStep[];
}

export interface GoldenCase {
  name: string;
  op: string;
  inputs: GoldenTensor[];
  args: Record<string, unknown>;
  out: GoldenTensor;
  gradOut?: GoldenTensor;
  grads?: (GoldenTensor | null)[];
}

export function loadCases(file: string): GoldenCase[] {
  const path = fileURLToPath(new URL(`../golden/${file}`, import.meta.url));
  return (JSON.parse(readFileSync(path, 'utf8')) as { cases: GoldenCase[] }).cases;
}

export function isGoldenTensor(v: unknown): v is GoldenTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'dtype' in v && 'data' in v;
}

/** The tensor of `g` before its view steps. */
export function baseTensor(g: GoldenTensor): Tensor {
  const data = g.dtype === 'float32' ? Float32Array.from(g.data) : g.dtype === 'int32' ? Int32Array.from(g.data) : Uint8Array.from(g.data);
  return tensor(data, { shape: g.shape });
}

/**
 * Builds an input as the generator did: the base tensor (a leaf, requiring grad when asked), then
 * the view steps. `value` is what the op receives; a viewed value retains its grad, since the
 * golden grads refer to the tensor after the view steps.
 */
export function goldenInput(g: GoldenTensor, requiresGrad = false): { leaf: Tensor; value: Tensor } {
  const leaf = baseTensor(g);
  if (requiresGrad) leaf.requiresGrad = true;
  let value = leaf;
  for (const step of g.view ?? []) {
    if ('transpose' in step) value = value.transpose(step.transpose[0], step.transpose[1]);
    else if ('permute' in step) value = value.permute(step.permute);
    else if ('narrow' in step) value = value.narrow(step.narrow[0], step.narrow[1], step.narrow[2]);
    else if ('expand' in step) value = value.expand(step.expand);
    else throw new Error(`golden: unknown view step ${JSON.stringify(step)}`);
  }
  if (requiresGrad && value !== leaf) value.retainGrad();
  return { leaf, value };
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the worst element. */
export function expectClose(actual: Tensor | null, expected: GoldenTensor, label: string, options: { rtol?: number; atol?: number } = {}): void {
  expect(actual, `${label}: missing`).not.toBeNull();
  const a = actual as Tensor;
  expect(a.shape, `${label}: shape`).toEqual(expected.shape);
  if (expected.dtype !== 'float32') {
    expect(a.dtype, `${label}: dtype`).toBe(expected.dtype);
    expect(a.toArray(), `${label}: values`).toEqual(expected.data);
    return;
  }
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  const values = a.toArray();
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < values.length; i++) {
    const e = expected.data[i];
    const excess = Math.abs(values[i] - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || Number.isNaN(excess) || excess > worstExcess)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) expect.fail(`${label}: element ${worst} is ${values[worst]}, expected ${expected.data[worst]} (rtol ${rtol}, atol ${atol})`);
}
