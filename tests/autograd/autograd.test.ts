import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';

describe('autograd', () => {
  it('accumulates into .grad across backward calls and through shared inputs', () => {
    const x = T.tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward(); // d/dx Σx² = 2x
    expect(x.grad!.toArray()).toEqual([2, 4, 6]);
    x.sum().backward();
    expect(x.grad!.toArray()).toEqual([3, 5, 7]);
  });

  it('backward with an explicit gradient, and its shape check', () => {
    const x = T.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    const y = x.mul(3);
    y.backward(T.tensor([[1, 0], [0, 2]]));
    expect(x.grad!.tolist()).toEqual([[3, 0], [0, 6]]);
    expect(() => x.mul(3).backward()).toThrow(/implicitly created only for scalar outputs/);
    expect(() => x.mul(3).backward(T.ones([3]))).toThrow(/gradient shape \[3\] does not match tensor shape \[2, 2\]/);
  });

  it('reduces broadcast gradients back to the input shape', () => {
    const a = T.ones([3, 1], { requiresGrad: true });
    const b = T.ones([4], { requiresGrad: true });
    a.add(b).sum().backward();
    expect(a.grad!.shape).toEqual([3, 1]);
    expect(a.grad!.toArray()).toEqual([4, 4, 4]);
    expect(b.grad!.toArray()).toEqual([3, 3, 3, 3]);
  });

  it('flows through views into the base tensor', () => {
    const x = T.zeros([2, 3], { requiresGrad: true });
    x.transpose(0, 1).narrow(0, 1, 1).mul(2).sum().backward();
    expect(x.grad!.tolist()).toEqual([[0, 2, 0], [0, 2, 0]]);
  });

  it('noGrad records nothing; detach cuts the graph', () => {
    const x = T.ones([2], { requiresGrad: true });
    const y = T.noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const z = x.detach();
    expect(z.requiresGrad).toBe(false);
    expect(z.storage).toBe(x.storage);
    expect(T.isGradEnabled()).toBe(true);
    expect(T.noGrad(() => T.enableGrad(() => x.mul(2))).requiresGrad).toBe(true);
  });

  it('non-leaf gradients are kept only with retainGrad', () => {
    const x = T.ones([2], { requiresGrad: true });
    const h = x.mul(2).retainGrad();
    const k = x.mul(3);
    h.add(k).sum().backward();
    expect(h.grad!.toArray()).toEqual([1, 1]);
    expect(k.grad).toBeNull();
    expect(x.grad!.toArray()).toEqual([5, 5]);
  });

  it('a chain of 100,000 ops does not overflow the stack', () => {
    const x = T.tensor([1], { requiresGrad: true });
    let y = x;
    for (let i = 0; i < 100_000; i++) y = y.add(1e-3);
    y.sum().backward();
    expect(x.grad!.toArray()).toEqual([1]);
  });

  it('grad functions are named and linked', () => {
    const x = T.ones([2], { requiresGrad: true });
    const y = x.exp().sum();
    expect(y.gradFn!.name).toBe('sum');
    expect(y.gradFn!.inputs[0].gradFn!.name).toBe('exp');
    expect(x.isLeaf).toBe(true);
    expect(y.isLeaf).toBe(false);
  });

  it('backward on a tensor without grad explains why', () => {
    expect(() => T.ones([1]).backward()).toThrow(/does not require grad/);
  });

  it('integer and bool outputs carry no gradient', () => {
    const x = T.tensor([1, 3, 2], { requiresGrad: true });
    expect(x.argmax().requiresGrad).toBe(false);
    expect(x.gt(1).requiresGrad).toBe(false);
    expect(x.max(0).indices.requiresGrad).toBe(false);
  });
});
