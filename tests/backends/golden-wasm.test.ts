/**
 * The PyTorch golden cases (tests/golden/ops.json) through the WASM kernels with their small-size
 * cut-offs off. The golden inputs are small (mostly < 64 elements), so tests/ops/golden.test.ts on
 * the 'wasm' backend mostly exercises the reference kernels it falls back to; here every case that
 * reaches a WASM kernel really runs in WASM, in each build this engine accepts.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { registerBackend, setBackend } from '../../src/backends/registry.js';
import { gelu, geluTanh, rsqrt, silu, square } from '../../src/ops/elementwise.js';
import { setWasmSizeThresholds, wasmInfo, wasmKernels, type WasmSizeThresholds } from '../../src/backends/wasm/index.js';
import { expectClose, fromGolden, loadGolden, type GoldenCase } from '../helpers/golden.js';

type Args = Record<string, unknown>;
type Dims = number | number[] | null | undefined;

function binary(f: (x: Tensor, y: Tensor | number) => Tensor) {
  return (xs: Tensor[], a: Args): Tensor => f(xs[0], 'other' in a ? (a.other as number) : xs[1]);
}

/** The golden ops whose forward or backward reaches a WASM kernel (gemm, unary, binary, reduce, softmax). */
const ops: Record<string, (x: Tensor[], a: Args) => Tensor | Tensor[]> = {
  neg: ([x]) => x.neg(),
  exp: ([x]) => x.exp(),
  log: ([x]) => x.log(),
  sqrt: ([x]) => x.sqrt(),
  rsqrt: ([x]) => rsqrt(x),
  abs: ([x]) => x.abs(),
  tanh: ([x]) => x.tanh(),
  sigmoid: ([x]) => x.sigmoid(),
  relu: ([x]) => x.relu(),
  square: ([x]) => square(x),
  silu: ([x]) => silu(x),
  gelu: ([x], a) => (a.approximate === 'tanh' ? geluTanh(x) : gelu(x)),
  add: binary((x, y) => x.add(y)),
  sub: binary((x, y) => x.sub(y)),
  mul: binary((x, y) => x.mul(y)),
  div: binary((x, y) => x.div(y)),
  maximum: binary((x, y) => x.maximum(y)),
  minimum: binary((x, y) => x.minimum(y)),
  clamp: ([x], a) => x.clamp(a.min as number | undefined, a.max as number | undefined),
  sum: ([x], a) => x.sum(a.dim as Dims, Boolean(a.keepdim)),
  mean: ([x], a) => x.mean(a.dim as Dims, Boolean(a.keepdim)),
  var: ([x], a) => x.var(a.dim as Dims, { correction: a.correction as number, keepdim: Boolean(a.keepdim) }),
  std: ([x], a) => x.std(a.dim as Dims, { correction: a.correction as number, keepdim: Boolean(a.keepdim) }),
  max: ([x], a) => (a.dim === null || a.dim === undefined ? x.max() : x.max(a.dim as number, Boolean(a.keepdim)).values),
  min: ([x], a) => (a.dim === null || a.dim === undefined ? x.min() : x.min(a.dim as number, Boolean(a.keepdim)).values),
  matmul: ([x, y]) => x.matmul(y),
  softmax: ([x], a) => x.softmax(a.dim as number),
  logSoftmax: ([x], a) => x.logSoftmax(a.dim as number),
};

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
  for (const c of cases.filter((g: GoldenCase) => ops[g.op])) {
    it(c.name, () => {
      const tolerance = c.name.includes('long') ? 1e-4 : 1e-5;
      const built = c.inputs.map((g, i) => fromGolden(g, Boolean(c.grads?.[i])));
      const result = ops[c.op](built.map((b) => b.value), c.args);
      const outs = Array.isArray(result) ? result : [result];
      const expected = Array.isArray(c.out) ? c.out : [c.out];
      outs.forEach((o, i) => expectClose(o, expected[i], `${c.name} output ${i}`, tolerance));
      if (c.gradOut && c.grads) {
        outs[0].backward(fromGolden(c.gradOut).value);
        c.grads.forEach((g, i) => {
          if (!g) return;
          const grad = built[i].value.grad;
          if (!grad) throw new Error(`${c.name}: input ${i} received no gradient`);
          expectClose(grad, g, `${c.name} grad ${i}`, tolerance);
        });
      }
    });
  }
});
