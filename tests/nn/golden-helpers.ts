/**
 * The nn tests' view of the shared golden helpers (tests/helpers/golden.ts): nn.json cases have a
 * single output, and grads may be missing, which `expectClose` reports as such.
 */
import { expect } from 'vitest';
import { Tensor } from '../../src/index.js';
import { expectClose as expectTensorClose, fromGolden, loadGolden, type GoldenCase as SharedCase, type GoldenTensor } from '../helpers/golden.js';

export type { GoldenTensor } from '../helpers/golden.js';
export type GoldenCase = SharedCase & { out: GoldenTensor };

export function loadCases(file: string): GoldenCase[] {
  return loadGolden<{ cases: GoldenCase[] }>(file).cases;
}

export function isGoldenTensor(v: unknown): v is GoldenTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'dtype' in v && 'data' in v;
}

/** The tensor of `g` before its view steps. */
export function baseTensor(g: GoldenTensor): Tensor {
  return fromGolden({ ...g, view: undefined }).value;
}

/** Builds an input as the generator did (leaf, then view steps); see `fromGolden`. */
export const goldenInput = fromGolden;

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the worst element. */
export function expectClose(actual: Tensor | null, expected: GoldenTensor, label: string, options: { rtol?: number; atol?: number } = {}): void {
  expect(actual, `${label}: missing`).not.toBeNull();
  expectTensorClose(actual as Tensor, expected, label, options.rtol ?? 1e-5, options.atol ?? 1e-6);
}
