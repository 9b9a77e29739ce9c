/** How each op of tests/golden/ops.json is called through our API, and how a case is checked. */
import * as T from '../../src/index.js';
import { Tensor } from '../../src/index.js';
import { gelu, geluTanh, silu, rsqrt, sin, cos, square } from '../../src/ops/elementwise.js';
import { expectClose, fromGolden, type GoldenCase } from './golden.js';

type Args = Record<string, unknown>;
type Dims = number | number[] | null | undefined;

/** One entry per op name in the golden file: how to call our API with the case's inputs and args. */
export const goldenOps: Record<string, (x: Tensor[], a: Args) => Tensor | Tensor[]> = {
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
  sin: ([x]) => sin(x),
  cos: ([x]) => cos(x),
  silu: ([x]) => silu(x),
  gelu: ([x], a) => (a.approximate === 'tanh' ? geluTanh(x) : gelu(x)),
  add: binary((x, y) => x.add(y)),
  sub: binary((x, y) => x.sub(y)),
  mul: binary((x, y) => x.mul(y)),
  div: binary((x, y) => x.div(y)),
  pow: binary((x, y) => x.pow(y)),
  maximum: binary((x, y) => x.maximum(y)),
  minimum: binary((x, y) => x.minimum(y)),
  clamp: ([x], a) => x.clamp(a.min as number | undefined, a.max as number | undefined),
  where: ([c, x, y]) => T.where(c, x, y),
  eq: ([x, y]) => x.eq(y),
  ne: ([x, y]) => x.ne(y),
  lt: ([x, y]) => x.lt(y),
  le: ([x, y]) => x.le(y),
  gt: ([x, y]) => x.gt(y),
  ge: ([x, y]) => x.ge(y),
  sum: ([x], a) => x.sum(a.dim as Dims, Boolean(a.keepdim)),
  mean: ([x], a) => x.mean(a.dim as Dims, Boolean(a.keepdim)),
  max: ([x], a) => (a.dim === null || a.dim === undefined ? x.max() : pair(x.max(a.dim as number, Boolean(a.keepdim)))),
  min: ([x], a) => (a.dim === null || a.dim === undefined ? x.min() : pair(x.min(a.dim as number, Boolean(a.keepdim)))),
  argmax: ([x], a) => x.argmax(a.dim as number | null, Boolean(a.keepdim)),
  argmin: ([x], a) => x.argmin(a.dim as number | null, Boolean(a.keepdim)),
  var: ([x], a) => x.var(a.dim as Dims, { correction: a.correction as number, keepdim: Boolean(a.keepdim) }),
  std: ([x], a) => x.std(a.dim as Dims, { correction: a.correction as number, keepdim: Boolean(a.keepdim) }),
  matmul: ([x, y]) => x.matmul(y),
  softmax: ([x], a) => x.softmax(a.dim as number),
  logSoftmax: ([x], a) => x.logSoftmax(a.dim as number),
  gather: ([x, i], a) => x.gather(a.dim as number, i),
  indexSelect: ([x, i], a) => x.indexSelect(a.dim as number, i),
  cat: (xs, a) => T.cat(xs, a.dim as number),
  stack: (xs, a) => T.stack(xs, a.dim as number),
  tril: ([x], a) => x.tril(a.k as number),
  triu: ([x], a) => x.triu(a.k as number),
  maskedFill: ([x, m], a) => x.maskedFill(m, a.value as number),
  reshape: ([x], a) => x.reshape(a.shape as number[]),
  transpose: ([x], a) => x.transpose(a.dim0 as number, a.dim1 as number),
  permute: ([x], a) => x.permute(a.dims as number[]),
  unsqueeze: ([x], a) => x.unsqueeze(a.dim as number),
  squeeze: ([x], a) => (a.dim === null || a.dim === undefined ? x.squeeze() : x.squeeze(a.dim as number)),
  narrow: ([x], a) => x.narrow(a.dim as number, a.start as number, a.length as number),
  select: ([x], a) => x.select(a.dim as number, a.index as number),
  expand: ([x], a) => x.expand(a.shape as number[]),
  flatten: ([x], a) => x.flatten(a.startDim as number, a.endDim as number),
};

function binary(f: (x: Tensor, y: Tensor | number) => Tensor) {
  return (xs: Tensor[], a: Args): Tensor => f(xs[0], 'other' in a ? (a.other as number) : xs[1]);
}

function pair(r: { values: Tensor; indices: Tensor }): Tensor[] {
  return [r.values, r.indices];
}

/** Long reductions accumulate differently from PyTorch's float32 pairwise sums. */
export function tolerance(c: GoldenCase): number {
  return c.name.includes('long') ? 1e-4 : 1e-5;
}

/** Runs one golden case: outputs, then input gradients through backward(gradOut). */
export function runGoldenCase(c: GoldenCase): void {
  const built = c.inputs.map((g, i) => fromGolden(g, Boolean(c.grads?.[i])));
  const call = goldenOps[c.op];
  if (!call) throw new Error(`no mapping for golden op ${c.op}`);
  const result = call(
    built.map((b) => b.value),
    c.args,
  );
  const outs = Array.isArray(result) ? result : [result];
  const expected = Array.isArray(c.out) ? c.out : [c.out];
  outs.forEach((o, i) => expectClose(o, expected[i], `${c.name} output ${i}`, tolerance(c)));
  if (c.gradOut && c.grads) {
    outs[0].backward(fromGolden(c.gradOut).value);
    c.grads.forEach((g, i) => {
      if (!g) return;
      const grad = built[i].value.grad;
      if (!grad) throw new Error(`${c.name}: input ${i} received no gradient`);
      expectClose(grad, g, `${c.name} grad ${i}`, tolerance(c));
    });
  }
}
