/**
 * Layout-preserving paths: elementwise ops on permuted dense views run in memory order and keep
 * the view's strides; matmul gradients of permuted/transposed operands come back in the operand's
 * own layout. Values must equal the contiguous computation exactly.
 */
import { describe, expect, it } from 'vitest';
import { Generator, randn, Tensor } from '../../src/index.js';
import { matmul } from '../../src/ops/matmul.js';
import { isContiguous } from '../../src/tensor/shape.js';

const gen = new Generator(7);

function values(t: Tensor): number[] {
  return Array.from(t.contiguous().toTypedArray());
}

describe('elementwise ops on permuted dense views', () => {
  it('x·scalar on a [B, H, T, D] head view keeps the head layout and the values', () => {
    const base = randn([2, 16, 4, 32], { generator: gen });
    const heads = base.permute(0, 2, 1, 3);
    const out = heads.mul(0.25);
    expect(out.shape).toEqual([2, 4, 16, 32]);
    expect(out.strides).toEqual(heads.strides);
    expect(values(out)).toEqual(values(heads.contiguous().mul(0.25)));
  });

  it('two views with the same permuted layout add in memory order; mixed layouts still broadcast correctly', () => {
    const a = randn([3, 32, 40], { generator: gen }).transpose(1, 2);
    const b = randn([3, 32, 40], { generator: gen }).transpose(1, 2);
    const same = a.add(b);
    expect(same.strides).toEqual(a.strides);
    expect(values(same)).toEqual(values(a.contiguous().add(b.contiguous())));
    const mixed = a.add(b.contiguous());
    expect(values(mixed)).toEqual(values(a.contiguous().add(b.contiguous())));
  });

  it('gradients flow through a layout-preserving op', () => {
    const base = randn([2, 16, 4, 32], { generator: gen }).requiresGrad_();
    const y = base.permute(0, 2, 1, 3).mul(3);
    y.sum().backward();
    expect(values(base.grad as Tensor).every((v) => v === 3)).toBe(true);
  });
});

describe('matmul gradients in the operand layout', () => {
  it('q·kᵀ with head views: gradients equal those of contiguous operands, and stay views of the head layout', () => {
    const [b, t, h, d] = [2, 24, 4, 16];
    const qBase = randn([b, t, h, d], { generator: gen }).requiresGrad_();
    const kBase = randn([b, t, h, d], { generator: gen }).requiresGrad_();
    const g = randn([b, h, t, t], { generator: gen });
    const q = qBase.permute(0, 2, 1, 3);
    const k = kBase.permute(0, 2, 1, 3);
    matmul(q, k.transpose(-2, -1)).mul(g).sum().backward();

    const qc = qBase.detach().permute(0, 2, 1, 3).contiguous().requiresGrad_();
    const kc = kBase.detach().permute(0, 2, 1, 3).contiguous().requiresGrad_();
    matmul(qc, kc.transpose(-2, -1)).mul(g).sum().backward();

    const close = (x: number[], y: number[]) => x.every((v, i) => Math.abs(v - y[i]) <= 1e-5 * (1 + Math.abs(y[i])));
    expect(close(values(qBase.grad as Tensor), values((qc.grad as Tensor).permute(0, 2, 1, 3)))).toBe(true);
    expect(close(values(kBase.grad as Tensor), values((kc.grad as Tensor).permute(0, 2, 1, 3)))).toBe(true);
    expect(isContiguous((qBase.grad as Tensor).shape, (qBase.grad as Tensor).strides)).toBe(true);
  });

  it('probs·v with a head view of v', () => {
    const [b, t, h, d] = [2, 20, 3, 8];
    const vBase = randn([b, t, h, d], { generator: gen }).requiresGrad_();
    const p = randn([b, h, t, t], { generator: gen }).requiresGrad_();
    const g = randn([b, h, t, d], { generator: gen });
    matmul(p, vBase.permute(0, 2, 1, 3)).mul(g).sum().backward();
    const vc = vBase.detach().permute(0, 2, 1, 3).contiguous().requiresGrad_();
    const pc = p.detach().requiresGrad_();
    matmul(pc, vc).mul(g).sum().backward();
    const close = (x: number[], y: number[]) => x.every((v, i) => Math.abs(v - y[i]) <= 1e-5 * (1 + Math.abs(y[i])));
    expect(close(values(vBase.grad as Tensor), values((vc.grad as Tensor).permute(0, 2, 1, 3)))).toBe(true);
    expect(close(values(p.grad as Tensor), values(pc.grad as Tensor))).toBe(true);
  });
});

describe('matmulInLayout', () => {
  it('stores the product in the permuted order with the values and gradients of matmul', async () => {
    const { matmulInLayout } = await import('../../src/ops/matmul.js');
    const p = randn([2, 3, 10, 10], { generator: gen }).requiresGrad_();
    const v = randn([2, 3, 10, 8], { generator: gen }).requiresGrad_();
    const y = matmulInLayout(p, v, [0, 2, 1, 3]);
    expect(y.shape).toEqual([2, 3, 10, 8]);
    expect(isContiguous([2, 10, 3, 8], y.permute(0, 2, 1, 3).strides)).toBe(true);
    const g = randn([2, 3, 10, 8], { generator: gen });
    y.mul(g).sum().backward();
    const pc = p.detach().requiresGrad_();
    const vc = v.detach().requiresGrad_();
    const yc = matmul(pc, vc);
    yc.mul(g).sum().backward();
    expect(values(y)).toEqual(values(yc));
    expect(values(p.grad as Tensor)).toEqual(values(pc.grad as Tensor));
    expect(values(v.grad as Tensor)).toEqual(values(vc.grad as Tensor));
    expect(() => matmulInLayout(p, v, [0, 1, 3, 2])).toThrow(/keep the last one last/);
  });
});
