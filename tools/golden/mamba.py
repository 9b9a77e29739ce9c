#!/usr/bin/env python3
"""Golden values for Mamba (selective state-space) layers (tests/golden/mamba.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/mamba.py          # part of: npm run golden

A TransformerLM whose 'mamba' layers are written from Gu & Dao 2023 ("Mamba: Linear-Time Sequence
Modeling with Selective State Spaces", Alg. 2 and section 3.4) with a sequential scan loop (no
mamba_ssm or Hugging Face code), inside generate.py's reference LM (embedding, norms, RefBlock for
the attention layers, head), with TensorLM's parameter names. A Mamba layer is the pre-norm block
x + mixer(norm(x)); the mixer, for u [B, L, d]:
    x, z = inProj(u).chunk(2)                                   # Din = expand * d each
    x = silu(causal depthwise conv1d(x))                          # kernel dConv, left zero padding
    dt_low, B, C = xProj(x).split(dtRank, N, N)
    delta = softplus(dtProj(dt_low));  A = -exp(aLog)
    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * x_t        # per channel d and state n
    y_t = sum_n C_t,n h_t,n + dSkip * x_t
    out = outProj(y * silu(z))
The cases record logits, loss and every parameter gradient; tests/models/mamba.test.ts replays them.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)


def mamba_sizes(c):
    m = c["mamba"]
    return (m.get("dState", 16), m.get("dConv", 4), m.get("expand", 2), m.get("dtRank", math.ceil(c["dModel"] / 16)))


class RefConv(torch.nn.Module):
    """Causal depthwise conv over time: weight [Din, K], bias [Din] (TensorLM's layout)."""

    def __init__(self, din, k):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(din, k))
        self.bias = torch.nn.Parameter(torch.zeros(din))

    def forward(self, x):  # x [B, L, Din]
        b, l, din = x.shape
        k = self.weight.shape[1]
        xp = F.pad(x, (0, 0, k - 1, 0))  # k - 1 zeros before t = 0
        out = self.bias.expand(b, l, din)
        for j in range(k):
            # out_t = bias + sum_j w[:, j] * x_{t - (k - 1) + j}
            out = out + self.weight[:, j] * xp[:, j:j + l]
        return out


class RefMixer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        n, k, expand, r = mamba_sizes(c)
        din = expand * d
        self.n, self.r, self.din = n, r, din
        self.inProj = torch.nn.Linear(d, 2 * din, bias=c["bias"])
        self.conv = RefConv(din, k)
        self.xProj = torch.nn.Linear(din, r + 2 * n, bias=False)
        self.dtProj = torch.nn.Linear(r, din, bias=True)
        self.aLog = torch.nn.Parameter(torch.zeros(din, n))
        self.dSkip = torch.nn.Parameter(torch.ones(din))
        self.outProj = torch.nn.Linear(din, d, bias=c["bias"])

    def forward(self, u):
        b, l, _ = u.shape
        x, z = self.inProj(u).split(self.din, dim=-1)
        x = F.silu(self.conv(x))
        dt_low, bm, cm = self.xProj(x).split([self.r, self.n, self.n], dim=-1)
        delta = F.softplus(self.dtProj(dt_low))  # [B, L, Din]
        a = -torch.exp(self.aLog)  # [Din, N]
        h = torch.zeros(b, self.din, self.n)
        ys = []
        for t in range(l):
            dt = delta[:, t, :, None]  # [B, Din, 1]
            h = torch.exp(dt * a) * h + dt * bm[:, t, None, :] * x[:, t, :, None]
            ys.append((h * cm[:, t, None, :]).sum(-1) + self.dSkip * x[:, t])
        y = torch.stack(ys, dim=1)
        return self.outProj(y * F.silu(z))


class RefMambaBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("normEps", 1e-6 if c["norm"] == "rms" else 1e-5)
        self.norm = G.ref_norm(c["norm"], c["dModel"], c["bias"], eps)
        self.mixer = RefMixer(c)

    def forward(self, x, attend=None):
        return x + self.mixer(self.norm(x))


def case(name, config, batch, t):
    def build(m):
        types = config.get("layerTypes") or ["mamba"] * config["nLayers"]
        for i, kind in enumerate(types):
            if kind == "mamba":
                m.layers[i] = RefMambaBlock(config)

    def init(m, g):
        for layer in m.layers:
            if isinstance(layer, RefMambaBlock):
                mx = layer.mixer
                # S4D-real A and Delta in the paper's initial range, jittered so every entry differs.
                mx.aLog.copy_(torch.log(torch.arange(1, mx.n + 1, dtype=torch.float32)).expand(mx.din, mx.n)
                              + 0.1 * torch.randn(mx.din, mx.n, generator=g))
                dt = torch.exp(torch.rand(mx.din, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                mx.dtProj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    return G.lm_case(name, config, batch, t, build=build, init=init)


def main():
    cases = [
        case("mamba/pure_rms_learned_untied", {
            "vocabSize": 11, "dModel": 16, "nLayers": 2, "nHeads": 2, "nKvHeads": 2, "dFF": 24, "maxSeqLen": 16,
            "norm": "rms", "mlp": "gelu", "pos": "learned", "tieWeights": False, "bias": False, "dropout": 0.0,
            "mamba": {"dState": 8, "dConv": 4, "expand": 2, "dtRank": 3}}, 2, 10),
        case("mamba/hybrid_layer_gelu_rope_bias", {
            "vocabSize": 13, "dModel": 16, "nLayers": 2, "nHeads": 4, "nKvHeads": 2, "dFF": 24, "maxSeqLen": 16,
            "norm": "layer", "mlp": "gelu", "pos": "rope", "tieWeights": True, "bias": True, "dropout": 0.0,
            "mamba": {"dState": 4, "dConv": 3}, "layerTypes": ["mamba", "attention"]}, 2, 9),
        case("mamba/odd_attention_mamba_mamba_sinusoidal", {
            "vocabSize": 7, "dModel": 12, "nLayers": 3, "nHeads": 3, "nKvHeads": 3, "dFF": 20, "maxSeqLen": 12,
            "norm": "rms", "mlp": "swiglu", "pos": "sinusoidal", "tieWeights": True, "bias": False, "dropout": 0.0,
            "mamba": {"dState": 5, "dConv": 2, "expand": 3, "dtRank": 2},
            "layerTypes": ["attention", "mamba", "mamba"]}, 1, 7),
    ]
    G.write_cases("mamba.json", cases, "Mamba TransformerLM")


if __name__ == "__main__":
    main()
