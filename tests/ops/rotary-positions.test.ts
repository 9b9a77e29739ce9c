/** rotaryEmbedding with explicit per-token positions: the rows of the offset path, bit for bit, forward and backward. */
import { describe, expect, it } from 'vitest';
import { rotaryEmbedding, rotaryTables } from '../../src/ops/rotary.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';

describe('rotaryEmbedding positions', () => {
  for (const pairing of ['half', 'interleaved'] as const) {
    it(`${pairing}: a token at explicit position p is rotated exactly as at offset p, through a strided view`, () => {
      const { cos, sin } = rotaryTables(16, 8);
      // [B=2, H=3, T=4, D=8] as a permuted view of [B, T, H, D], as attention passes it.
      const x = randn([2, 4, 3, 8], { generator: new Generator(1), requiresGrad: true });
      const xv = x.permute(0, 2, 1, 3);
      const pos = [5, 6, 0, 1, 2, 3, 4, 9];
      const positions = tensor(Int32Array.from(pos), { shape: [2, 4] });
      const y = rotaryEmbedding(xv, cos, sin, { positions, pairing, scale: 0.5 });
      const g = randn([2, 3, 4, 8], { generator: new Generator(2) });
      y.mul(g).sum().backward();
      const gx = Array.from(x.grad!.toTypedArray());
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 4; t++) {
          const xt = x.detach().narrow(0, b, 1).narrow(1, t, 1).permute(0, 2, 1, 3).requiresGrad_();
          const yt = rotaryEmbedding(xt, cos, sin, { offset: pos[b * 4 + t], pairing, scale: 0.5 });
          expect(Array.from(yt.toTypedArray())).toEqual(Array.from(y.narrow(0, b, 1).narrow(2, t, 1).contiguous().toTypedArray()));
          yt.mul(g.narrow(0, b, 1).narrow(2, t, 1)).sum().backward();
          const expected = Array.from(xt.grad!.permute(0, 2, 1, 3).contiguous().toTypedArray());
          const got = gx.slice((b * 4 + t) * 24, (b * 4 + t + 1) * 24);
          expect(got).toEqual(expected);
        }
    });
  }

  it('rejects positions of the wrong shape or range in one line', () => {
    const { cos, sin } = rotaryTables(8, 4);
    const x = randn([2, 1, 3, 4], { generator: new Generator(3) });
    expect(() => rotaryEmbedding(x, cos, sin, { positions: tensor(Int32Array.of(0, 1, 2), { shape: [1, 3] }) })).toThrow(/positions must be int32 \[B, T\] = \[2, 3\] for input \[2, 1, 3, 4\], got int32 \[1, 3\]/);
    expect(() => rotaryEmbedding(x, cos, sin, { positions: tensor(Int32Array.of(0, 1, 8, 0, 1, 2), { shape: [2, 3] }) })).toThrow(/position 8 is outside the 8 positions/);
  });
});
