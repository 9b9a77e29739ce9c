#!/usr/bin/env python3
"""Golden values for multi-head latent attention (tests/golden/mla.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/mla.py          # part of: npm run golden

A TransformerLM with `mla`, written from the equations of DeepSeek-V2 (DeepSeek-AI 2024, §2.1,
eq. 9-19 and 37-47) with the reference modules of generate.py (same parameter names as
src/nn/mla.ts). Per token h:

    c_KV = RMSNorm(W_DKV h)            k^C_i = W_UK,i c_KV       v_i = W_UV,i c_KV
    k^R  = RoPE(W_KR h)                (one rotary key shared by every head)
    plain queries:     q^C_i = W_Q,i h,             q^R_i = RoPE(W_QR,i h)
    low-rank queries:  c_Q = RMSNorm(W_DQ h),  q^C_i = W_UQ,i c_Q,  q^R_i = RoPE(W_QR,i c_Q)
    score_i(t, j) = (q^C_i(t) . k^C_i(j) + q^R_i(t) . k^R(j)) / sqrt(nope + rope)

The score is computed as the sum of its two dot products (TensorLM concatenates q_i = [q^C_i; q^R_i]
and k_i = [k^C_i; k^R] instead), so the two forms are checked against each other. Causal softmax,
then u = W_O [o_1; ...; o_H]. The cases record logits, loss and every parameter gradient;
tests/models/mla.test.ts replays them.
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)


def mla_dims(c):
    """The config's MLA dimensions with TensorLM's defaults (nn/mla.ts mlaDefaults): DeepSeek-V2's
    proportions to the head dim D = dModel/nHeads."""
    d = c["dModel"] // c["nHeads"]
    m = c["mla"]
    return {
        "kvLoraRank": m.get("kvLoraRank", 4 * d),
        "qLoraRank": m.get("qLoraRank", None),
        "qkNopeHeadDim": m.get("qkNopeHeadDim", d),
        "qkRopeHeadDim": m.get("qkRopeHeadDim", max(2, 2 * (d // 4))),
        "vHeadDim": m.get("vHeadDim", d),
    }


class RefMLA(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        m = mla_dims(c)
        d, h, bias = c["dModel"], c["nHeads"], c["bias"]
        eps = c.get("normEps", 1e-6 if c["norm"] == "rms" else 1e-5)
        self.h, self.nope, self.rope_dim, self.dv = h, m["qkNopeHeadDim"], m["qkRopeHeadDim"], m["vHeadDim"]
        self.low_rank_q = m["qLoraRank"] is not None
        lin = lambda i, o: torch.nn.Linear(i, o, bias=bias)  # noqa: E731
        if self.low_rank_q:
            self.wDq = lin(d, m["qLoraRank"])
            self.qNorm = G.RefRMSNorm(m["qLoraRank"], eps=eps)
            self.wUq = lin(m["qLoraRank"], h * self.nope)
        else:
            self.wq = lin(d, h * self.nope)
        self.wQr = lin(m["qLoraRank"] if self.low_rank_q else d, h * self.rope_dim)
        self.wDkv = lin(d, m["kvLoraRank"])
        self.kvNorm = G.RefRMSNorm(m["kvLoraRank"], eps=eps)
        self.wKr = lin(d, self.rope_dim)
        self.wUk = lin(m["kvLoraRank"], h * self.nope)
        self.wUv = lin(m["kvLoraRank"], h * self.dv)
        self.wo = lin(h * self.dv, d)
        cos, sin = G.rope_tables(c["maxSeqLen"], self.rope_dim, c.get("ropeTheta", 10000.0))
        self.rope = (cos, sin, c.get("ropePairing", "half"))

    def forward(self, x):
        b, t, _ = x.shape
        h, nope, rd, dv = self.h, self.nope, self.rope_dim, self.dv
        cos, sin, pairing = self.rope
        cos, sin = cos[:t], sin[:t]
        c_q = self.qNorm(self.wDq(x)) if self.low_rank_q else x
        q_c = (self.wUq if self.low_rank_q else self.wq)(c_q).view(b, t, h, nope).transpose(1, 2)
        q_r = G.apply_rope(self.wQr(c_q).view(b, t, h, rd).transpose(1, 2), cos, sin, pairing)
        c_kv = self.kvNorm(self.wDkv(x))                       # [b, t, r]: what a cache keeps
        k_r = G.apply_rope(self.wKr(x), cos, sin, pairing)     # [b, t, rope]: shared, cached too
        k_c = self.wUk(c_kv).view(b, t, h, nope).transpose(1, 2)
        v = self.wUv(c_kv).view(b, t, h, dv).transpose(1, 2)
        scores = (q_c @ k_c.transpose(-2, -1) + q_r @ k_r.unsqueeze(1).transpose(-2, -1)) / math.sqrt(nope + rd)
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        o = torch.softmax(scores, dim=-1) @ v
        return self.wo(o.transpose(1, 2).reshape(b, t, h * dv))


def mla_case(name, config, batch, t):
    """A whole RefLM whose blocks' attention is RefMLA (replaced before the weights are drawn)."""
    def build(m):
        for layer in m.layers:
            layer.attn = RefMLA(config)

    return G.lm_case(name, config, batch, t, build=build)


BASE = {"vocabSize": 11, "dModel": 16, "nLayers": 2, "nHeads": 4, "nKvHeads": 4, "dFF": 24, "maxSeqLen": 16,
        "pos": "rope", "ropeTheta": 10000.0, "dropout": 0.0}


def main():
    cases = [
        mla_case("mla/rms_swiglu_lowrank_q_untied_t12", {**BASE, "norm": "rms", "mlp": "swiglu", "tieWeights": False, "bias": False,
                 "mla": {"kvLoraRank": 6, "qLoraRank": 10, "qkNopeHeadDim": 4, "qkRopeHeadDim": 4, "vHeadDim": 5}}, 2, 12),
        mla_case("mla/layer_gelu_plain_q_tied_bias_interleaved_t10", {**BASE, "norm": "layer", "mlp": "gelu", "tieWeights": True, "bias": True,
                 "ropePairing": "interleaved",
                 "mla": {"kvLoraRank": 8, "qLoraRank": None, "qkNopeHeadDim": 3, "qkRopeHeadDim": 2, "vHeadDim": 4}}, 2, 10),
        # The defaults (DeepSeek-V2's proportions to the head dim 4: r 16, nope 4, rope 2, v 4), post-norm.
        mla_case("mla/rms_gelu_defaults_post_t7", {**BASE, "norm": "rms", "mlp": "gelu", "tieWeights": True, "bias": False,
                 "normPlacement": "post", "mla": {}}, 1, 7),
    ]
    G.write_cases("mla.json", cases, "multi-head latent attention TransformerLM")


if __name__ == "__main__":
    main()
