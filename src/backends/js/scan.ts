/**
 * Reference selective scan (Mamba's S6), forward and backward, in plain loops over flat arrays.
 * States and every accumulation are float64 (JS numbers) and round once into the float32 outputs:
 * this is what lets the graph match the float64-checked PyTorch references, and it is the oracle
 * the WASM kernel is tested against.
 *
 * The backward recomputes the states of one (batch row, channel) at a time into an L·N scratch
 * buffer and then runs the reverse scan over it, so the forward stores nothing beyond its inputs
 * (the paper's "recomputation", §3.3.2, per channel instead of per SRAM tile).
 */
import type { SelectiveScanArgs, SelectiveScanBackwardArgs } from '../kernels.js';

export function selectiveScanForward(s: SelectiveScanArgs): void {
  const { batch: Bn, length: L, channels: D, state: N, x: xs, delta: dt, a, bmat: bm, cmat: cm, dSkip: ds, h0, y, hLast } = s;
  const h = new Float64Array(N);
  for (let b = 0; b < Bn; b++) {
    for (let d = 0; d < D; d++) {
      for (let n = 0; n < N; n++) h[n] = h0 ? h0[(b * D + d) * N + n] : 0;
      for (let t = 0; t < L; t++) {
        const i = (b * L + t) * D + d;
        const dtv = dt[i];
        const xv = xs[i];
        const row = (b * L + t) * N;
        let acc = ds[d] * xv;
        for (let n = 0; n < N; n++) {
          h[n] = Math.exp(dtv * a[d * N + n]) * h[n] + dtv * bm[row + n] * xv;
          acc += cm[row + n] * h[n];
        }
        y[i] = acc;
      }
      for (let n = 0; n < N; n++) hLast[(b * D + d) * N + n] = h[n];
    }
  }
}

export function selectiveScanBackward(s: SelectiveScanBackwardArgs): void {
  const { batch: Bn, length: L, channels: D, state: N, x: xs, delta: dt, a, bmat: bm, cmat: cm, dSkip: ds, h0, dy: gy } = s;
  const { dx, dDelta, dh0 } = s;
  const dA = new Float64Array(D * N);
  const dB = new Float64Array(Bn * L * N);
  const dC = new Float64Array(Bn * L * N);
  const dD = new Float64Array(D);
  // One channel's states h_0..h_L−1 and decays a_t (recomputed) and the running ∂loss/∂h.
  const hs = new Float64Array(L * N);
  const decay = new Float64Array(L * N);
  const gh = new Float64Array(N);
  for (let b = 0; b < Bn; b++) {
    for (let d = 0; d < D; d++) {
      // Recompute the forward of this channel.
      for (let t = 0; t < L; t++) {
        const i = (b * L + t) * D + d;
        const dtv = dt[i];
        const xv = xs[i];
        const row = (b * L + t) * N;
        for (let n = 0; n < N; n++) {
          const prev = t > 0 ? hs[(t - 1) * N + n] : h0 ? h0[(b * D + d) * N + n] : 0;
          const at = Math.exp(dtv * a[d * N + n]);
          decay[t * N + n] = at;
          hs[t * N + n] = at * prev + dtv * bm[row + n] * xv;
        }
      }
      // The reverse scan: g_t = ∂loss/∂h_t = C_t·gy_t + a_t+1·g_t+1.
      gh.fill(0);
      for (let t = L - 1; t >= 0; t--) {
        const i = (b * L + t) * D + d;
        const dtv = dt[i];
        const xv = xs[i];
        const gyv = gy[i];
        const row = (b * L + t) * N;
        let gx = ds[d] * gyv;
        let gdt = 0;
        dD[d] += gyv * xv;
        for (let n = 0; n < N; n++) {
          const k = t * N + n;
          const gt = gh[n] + cm[row + n] * gyv;
          dC[row + n] += gyv * hs[k];
          const prev = t > 0 ? hs[k - N] : h0 ? h0[(b * D + d) * N + n] : 0;
          const at = decay[k];
          const an = a[d * N + n];
          // h_t = a_t·h_t−1 + Δ·B·x with a_t = exp(Δ·A): ∂a_t/∂Δ = a_t·A, ∂a_t/∂A = a_t·Δ.
          const gDecay = gt * prev * at;
          gdt += gDecay * an + gt * bm[row + n] * xv;
          dA[d * N + n] += gDecay * dtv;
          dB[row + n] += gt * dtv * xv;
          gx += gt * dtv * bm[row + n];
          gh[n] = gt * at;
        }
        dx[i] = gx;
        dDelta[i] = gdt;
      }
      if (dh0) for (let n = 0; n < N; n++) dh0[(b * D + d) * N + n] = gh[n];
    }
  }
  s.dA.set(dA);
  s.dBmat.set(dB);
  s.dCmat.set(dC);
  s.dDSkip.set(dD);
}
