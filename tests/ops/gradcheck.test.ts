/** Finite-difference checks of every differentiable op's backward, on seeded random shapes. */
import { describe, it } from 'vitest';
import * as T from '../../src/index.js';
import { Generator, Tensor } from '../../src/index.js';
import { gelu, geluTanh, rsqrt, silu, sin, cos, square } from '../../src/ops/elementwise.js';
import { gradcheck, sample } from '../helpers/gradcheck.js';

const shapeGen = new Generator(2024);
/** A random shape of the given rank, sides in [1, 5]. */
function randomShape(rank: number): number[] {
  return Array.from({ length: rank }, () => shapeGen.randint(1, 6));
}

describe('finite-difference gradients: elementwise', () => {
  const unary: [string, (x: Tensor) => Tensor, { awayFromZero?: number; positive?: boolean }][] = [
    ['neg', (x) => x.neg(), {}],
    ['exp', (x) => x.exp(), {}],
    ['log', (x) => x.log(), { positive: true }],
    ['sqrt', (x) => x.sqrt(), { positive: true }],
    ['rsqrt', (x) => rsqrt(x), { positive: true }],
    ['abs', (x) => x.abs(), { awayFromZero: 0.05 }],
    ['square', (x) => square(x), {}],
    ['sin', (x) => sin(x), {}],
    ['cos', (x) => cos(x), {}],
    ['tanh', (x) => x.tanh(), {}],
    ['sigmoid', (x) => x.sigmoid(), {}],
    ['relu', (x) => x.relu(), { awayFromZero: 0.05 }],
    ['gelu', (x) => gelu(x), {}],
    ['geluTanh', (x) => geluTanh(x), {}],
    ['silu', (x) => silu(x), {}],
    ['clamp', (x) => x.clamp(-0.5, 0.7), { awayFromZero: 0.05 }],
    ['pow scalar', (x) => x.pow(2.5), { positive: true }],
    ['transposed input', (x) => x.transpose(0, 1).exp(), {}],
  ];
  unary.forEach(([name, f, opts], n) => {
    it(name, () => {
      let x = sample(randomShape(2), 100 + n, opts);
      if (name === 'clamp') {
        // keep samples away from the clamp boundaries, where the derivative jumps
        const d = x.storage as Float32Array;
        for (let i = 0; i < d.length; i++) if (Math.abs(d[i] + 0.5) < 0.02 || Math.abs(d[i] - 0.7) < 0.02) d[i] += 0.1;
        x = T.tensor(d, { shape: x.shape });
      }
      gradcheck(name, f, [x]);
    });
  });

  const binary: [string, (a: Tensor, b: Tensor) => Tensor, boolean][] = [
    ['add', (a, b) => a.add(b), false],
    ['sub', (a, b) => a.sub(b), false],
    ['mul', (a, b) => a.mul(b), false],
    ['div', (a, b) => a.div(b), true],
    ['pow', (a, b) => a.pow(b), true],
    ['maximum', (a, b) => a.maximum(b), false],
    ['minimum', (a, b) => a.minimum(b), false],
  ];
  binary.forEach(([name, f, positive], n) => {
    it(`${name} with broadcasting`, () => {
      const [r, c] = randomShape(2);
      gradcheck(name, f, [sample([2, r, c], 200 + n, { positive }), sample([r, 1], 300 + n, { positive })]);
    });
  });

  it('where', () => {
    const cond = sample([3, 4], 1).gt(0);
    gradcheck('where', (a, b) => T.where(cond, a, b), [sample([3, 4], 2), sample([4], 3)]);
  });
  it('maskedFill', () => {
    const mask = sample([1, 4], 4).gt(0);
    gradcheck('maskedFill', (a) => a.maskedFill(mask, -3), [sample([3, 4], 5)]);
  });
});

describe('finite-difference gradients: reductions', () => {
  const x = () => sample(randomShape(3), 11);
  it('sum over dims', () => gradcheck('sum', (a) => a.sum([0, 2]), [x()]));
  it('sum keepdim', () => gradcheck('sum keepdim', (a) => a.sum(1, true), [x()]));
  it('mean', () => gradcheck('mean', (a) => a.mean(-1), [x()]));
  it('mean all', () => gradcheck('mean all', (a) => a.mean(), [x()]));
  it('max with dim', () => gradcheck('max dim', (a) => a.max(1).values, [x()]));
  it('min all', () => gradcheck('min all', (a) => a.min(), [x()]));
  it('amax over dims', () => gradcheck('amax', (a) => a.amax([0, 1]), [x()]));
  it('var', () => gradcheck('var', (a) => a.var(1), [sample([3, 5], 12)]));
  it('std', () => gradcheck('std', (a) => a.std(null, { correction: 0 }), [sample([3, 5], 13)]));
  it('logsumexp', () => gradcheck('logsumexp', (a) => a.logsumexp(1), [sample([3, 5], 14)]));
  it('softmax', () => gradcheck('softmax', (a) => a.softmax(1), [sample([2, 4, 3], 15)]));
  it('logSoftmax', () => gradcheck('logSoftmax', (a) => a.logSoftmax(-1), [sample([2, 4, 3], 16)]));
});

describe('finite-difference gradients: matmul and indexing', () => {
  it('matmul 2-D', () => gradcheck('matmul', (a, b) => a.matmul(b), [sample([3, 4], 20), sample([4, 5], 21)]));
  it('matmul broadcast batch', () => gradcheck('matmul batch', (a, b) => a.matmul(b), [sample([2, 1, 3, 4], 22), sample([3, 4, 2], 23)]));
  it('matmul transposed views', () => gradcheck('matmul T', (a, b) => a.mT.matmul(b.mT), [sample([2, 4, 3], 24), sample([2, 5, 4], 25)]));
  it('matmul vector', () => gradcheck('matvec', (a, b) => a.matmul(b), [sample([3, 4], 26), sample([4], 27)]));
  it('gather', () => {
    const index = T.tensor([[0, 2], [1, 1], [3, 0]], { dtype: 'int32' });
    gradcheck('gather', (a) => a.gather(1, index), [sample([3, 4], 30)]);
  });
  it('indexSelect with repeats', () => {
    const index = T.tensor([2, 0, 2], { dtype: 'int32' });
    gradcheck('indexSelect', (a) => a.indexSelect(0, index), [sample([4, 3], 31)]);
  });
  it('cat and stack', () => {
    gradcheck('cat', (a, b) => T.cat([a, b], 1), [sample([2, 3], 32), sample([2, 2], 33)]);
    gradcheck('stack', (a, b) => T.stack([a, b], -1), [sample([2, 3], 34), sample([2, 3], 35)]);
  });
  it('tril and triu', () => {
    gradcheck('tril', (a) => a.tril(-1), [sample([2, 4, 4], 36)]);
    gradcheck('triu', (a) => a.triu(1), [sample([4, 5], 37)]);
  });
});

describe('finite-difference gradients: views', () => {
  const v: [string, (a: Tensor) => Tensor][] = [
    ['reshape', (a) => a.reshape(6, -1).mul(a.reshape(6, -1))],
    ['transpose', (a) => a.transpose(0, 2).exp()],
    ['permute', (a) => a.permute(2, 0, 1).square()],
    ['unsqueeze/squeeze', (a) => a.unsqueeze(1).squeeze(1).tanh()],
    ['narrow', (a) => a.narrow(1, 1, 2).exp()],
    ['slice with step', (a) => a.slice(2, 0, undefined, 2).exp()],
    ['select', (a) => a.select(0, -1).exp()],
    ['expand', (a) => a.narrow(1, 0, 1).expand(2, 4, 4).exp()],
    ['flatten', (a) => a.flatten(1).square()],
    ['contiguous of transpose', (a) => a.transpose(1, 2).contiguous().square()],
    ['reshape of transposed (copy)', (a) => a.transpose(0, 1).reshape(-1).exp()],
  ];
  v.forEach(([name, f], n) => it(name, () => gradcheck(name, f, [sample([2, 3, 4], 40 + n)])));
});

describe('finite-difference gradients: composite graph', () => {
  it('a two-layer network with shared inputs', () => {
    gradcheck(
      'mlp',
      (x, w1, w2) => x.matmul(w1).tanh().matmul(w2).add(x.sum(1, true)).logSoftmax(1),
      [sample([4, 3], 50), sample([3, 5], 51), sample([5, 2], 52)],
    );
  });
});
