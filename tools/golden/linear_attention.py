#!/usr/bin/env python3
"""Golden values for causal linear attention (tests/golden/linear-attention.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/linear_attention.py          # part of: npm run golden

A TransformerLM with `attention: 'linear'`, written from the equations of Katharopoulos et al.
2020 ("Transformers are RNNs", eq. 4-5 and 16-20) with the reference modules of generate.py (same
parameter names). Each attention layer, per head (kv heads shared by repeat_interleave as in GQA):
    phi(x) = elu(x) + 1
    S_i = sum_{j<=i} phi(k_j) v_j^T,   z_i = sum_{j<=i} phi(k_j)
    out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + 1e-6)
computed in the recurrent form (a loop over positions with running sums), not the parallel form
TensorLM trains with, so the two forms are checked against each other. No 1/sqrt(d) scale, no
RoPE (TensorLM refuses pos 'rope' with linear attention). The cases record logits, loss and every
parameter gradient; tests/models/linear-attention.test.ts replays them.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)

EPS = 1e-6


def phi(x):
    return F.elu(x) + 1


def linear_attention(attn, x):
    b, t, d = x.shape
    q = attn.wq(x).view(b, t, attn.h, attn.hd).transpose(1, 2)
    k = attn.wk(x).view(b, t, attn.kv, attn.hd).transpose(1, 2)
    v = attn.wv(x).view(b, t, attn.kv, attn.hd).transpose(1, 2)
    k = k.repeat_interleave(attn.h // attn.kv, dim=1)
    v = v.repeat_interleave(attn.h // attn.kv, dim=1)
    fq, fk = phi(q), phi(k)
    s = torch.zeros(b, attn.h, attn.hd, attn.hd)
    z = torch.zeros(b, attn.h, attn.hd)
    outs = []
    for i in range(t):
        s = s + fk[:, :, i, :, None] * v[:, :, i, None, :]
        z = z + fk[:, :, i]
        num = torch.einsum("bhd,bhde->bhe", fq[:, :, i], s)
        den = torch.einsum("bhd,bhd->bh", fq[:, :, i], z)
        outs.append(num / (den[..., None] + EPS))
    y = torch.stack(outs, dim=2)
    return attn.wo(y.transpose(1, 2).reshape(b, t, attn.h * attn.hd))


def case(name, config, batch, t):
    return G.attention_variant_case(name, config, batch, t, linear_attention)


BASE = {"vocabSize": 11, "dModel": 16, "nLayers": 2, "nHeads": 4, "nKvHeads": 2, "dFF": 24, "maxSeqLen": 16,
        "dropout": 0.0, "attention": "linear"}


def main():
    cases = [
        case("linear/rms_swiglu_learned_gqa_t10", {**BASE, "norm": "rms", "mlp": "swiglu", "pos": "learned",
             "tieWeights": False, "bias": False}, 2, 10),
        case("linear/layer_gelu_sinusoidal_mha_t10", {**BASE, "norm": "layer", "mlp": "gelu", "pos": "sinusoidal",
             "nKvHeads": 4, "tieWeights": True, "bias": True}, 2, 10),
        case("linear/rms_gelu_learned_mqa_post_t7", {**BASE, "norm": "rms", "mlp": "gelu", "pos": "learned",
             "nKvHeads": 1, "tieWeights": True, "bias": True, "normPlacement": "post"}, 1, 7),
    ]
    G.write_cases("linear-attention.json", cases, "linear-attention TransformerLM")


if __name__ == "__main__":
    main()
