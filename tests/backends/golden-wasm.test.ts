/**
 * The PyTorch golden cases (tests/golden/ops.json) through the WASM kernels with their small-size
 * cut-offs off. The golden inputs are small (mostly < 64 elements), so tests/ops/golden.test.ts on
 * the 'wasm' backend mostly exercises the reference kernels it falls back to; here every case that
 * reaches a WASM kernel really runs in WASM, in each build this engine accepts.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as T from '../../src/index.js';
import { registerBackend, setBackend } from '../../src/backends/registry.js';
import { setWasmSizeThresholds, wasmInfo, wasmKernels, type WasmSizeThresholds } from '../../src/backends/wasm/index.js';
import { loadGolden, type GoldenCase } from '../helpers/golden.js';
import { runGoldenCase } from '../helpers/golden-ops.js';

/** The golden ops whose forward or backward reaches a WASM kernel (gemm, unary, binary, reduce, softmax). */
const WASM_OPS = new Set([
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'tanh', 'sigmoid', 'relu', 'square', 'silu', 'gelu',
  'add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'clamp',
  'sum', 'mean', 'var', 'std', 'max', 'min', 'matmul', 'softmax', 'logSoftmax',
]);

const { cases } = loadGolden('ops.json');
const wasm = wasmInfo();
const initialBackend = T.getBackend();

describe.skipIf(!wasm.available).each(wasm.variants)('golden ops on the %s build, every size through WASM', (variant) => {
  let saved: WasmSizeThresholds | undefined;
  beforeAll(() => {
    registerBackend({ name: `wasm-${variant}-test`, kernels: wasmKernels(variant), priority: -1 });
    setBackend(`wasm-${variant}-test`);
    saved = setWasmSizeThresholds({ elementwise: 0, gemm: 0 });
  });
  afterAll(() => {
    if (saved) setWasmSizeThresholds(saved);
    setBackend(initialBackend);
  });
  for (const c of cases.filter((g: GoldenCase) => WASM_OPS.has(g.op))) it(c.name, () => runGoldenCase(c));
});
