#!/usr/bin/env python3
"""Golden values for the mixture-of-experts feed-forward layer (tests/golden/moe.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/moe.py          # part of: npm run golden

A TransformerLM with `moe`, written from the equations with the reference modules of generate.py
(same parameter names), every block's feed-forward replaced by:
    scores = softmax(router(x))  or  sigmoid(router(x))
    w, idx = topk(scores, k)        (w / w.sum() when normalizeTopK)
    y      = sum_e [sum_j w_j * (idx_j == e)] * expert_e(x)   (+ shared(x))
computed densely (every expert over every token, weighted by zero where not chosen) — the
opposite of TensorLM's sort-and-group dispatch, so the two are checked against each other.
Auxiliary losses (Switch eq. 4 generalised to top-k; ST-MoE eq. 5):
    aux = E * sum_e f_e * P_e,  f_e = (assignments to e) / (N k),  P_e = mean_t p_te
    z   = mean_t logsumexp(logits_t)^2
and the training objective CE + auxLossWeight * mean_layers(aux) + zLossWeight * mean_layers(z).
The cases record logits, the objective, each layer's aux and z, and every parameter gradient;
tests/models/moe.test.ts replays them (the model in training mode).
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)


class RefMoE(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        m = c["moe"]
        self.m = m
        self.router = torch.nn.Linear(d, m["nExperts"], bias=False)

        def expert(width):
            return G.RefSwiGLU(d, width, c["bias"]) if c["mlp"] == "swiglu" else G.RefFeedForward(d, width, c["bias"])

        self.experts = torch.nn.ModuleList([expert(m["dExpert"]) for _ in range(m["nExperts"])])
        shared = m.get("nSharedExperts", 0)
        self.shared = expert(shared * m["dExpert"]) if shared > 0 else None
        self.aux = None
        self.z = None

    def forward(self, x):
        m = self.m
        E, k = m["nExperts"], m["topK"]
        logits = self.router(x)
        scores = torch.softmax(logits, dim=-1) if m["router"] == "softmax" else torch.sigmoid(logits)
        w, idx = torch.topk(scores, k, dim=-1)
        if m["normalizeTopK"]:
            w = w / w.sum(dim=-1, keepdim=True)
        y = torch.zeros_like(x)
        for e in range(E):
            gate = (w * (idx == e).to(w.dtype)).sum(dim=-1, keepdim=True)
            y = y + gate * self.experts[e](x)
        if self.shared is not None:
            y = y + self.shared(x)
        n = logits.shape[0] * logits.shape[1]
        probs = scores if m["router"] == "softmax" else scores / scores.sum(dim=-1, keepdim=True)
        f = torch.stack([(idx == e).sum() for e in range(E)]).to(x.dtype) / (n * k)
        self.aux = E * (f * probs.reshape(n, E).mean(dim=0)).sum()
        self.z = (torch.logsumexp(logits, dim=-1) ** 2).mean()
        return y


def moe_case(name, config, batch, t):
    def build(m):
        for layer in m.layers:
            layer.ffn = RefMoE(config)

    def objective(m, ce):
        moes = [layer.ffn for layer in m.layers]
        aux = torch.stack([x.aux for x in moes])
        z = torch.stack([x.z for x in moes])
        loss = ce + config["moe"]["auxLossWeight"] * aux.mean() + config["moe"]["zLossWeight"] * z.mean()
        return loss, {"crossEntropy": G.fnum(ce), "aux": [G.fnum(v) for v in aux], "z": [G.fnum(v) for v in z]}

    return G.lm_case(name, config, batch, t, build=build, objective=objective)


BASE = {"vocabSize": 11, "dModel": 16, "nLayers": 2, "nHeads": 4, "nKvHeads": 2, "dFF": 24, "maxSeqLen": 16,
        "ropeTheta": 10000.0, "dropout": 0.0}


def moe(n, k, d_expert, router="softmax", normalize=None, shared=0, aux=0.01, zw=1e-3):
    return {"nExperts": n, "topK": k, "dExpert": d_expert, "nSharedExperts": shared, "router": router,
            "normalizeTopK": k > 1 if normalize is None else normalize, "auxLossWeight": aux, "zLossWeight": zw}


def main():
    cases = [
        # Mixtral-like: SwiGLU experts, softmax router, top-2 renormalised, RMSNorm, RoPE, GQA.
        moe_case("moe/rms_swiglu_rope_e4_top2", {**BASE, "norm": "rms", "mlp": "swiglu", "pos": "rope",
                 "tieWeights": False, "bias": False, "moe": moe(4, 2, 12)}, 2, 10),
        # Switch-like: GELU experts with biases, top-1 keeping the probability, LayerNorm, learned positions.
        moe_case("moe/layer_gelu_learned_e3_top1", {**BASE, "norm": "layer", "mlp": "gelu", "pos": "learned",
                 "nKvHeads": 4, "tieWeights": True, "bias": True, "moe": moe(3, 1, 20, aux=0.1, zw=0.01)}, 2, 9),
        # DeepSeek-like: sigmoid router, top-3 of 5 renormalised, one shared expert.
        moe_case("moe/rms_swiglu_sigmoid_e5_top3_shared", {**BASE, "norm": "rms", "mlp": "swiglu", "pos": "rope",
                 "tieWeights": True, "bias": False, "moe": moe(5, 3, 8, router="sigmoid", shared=1, aux=0.05)}, 1, 12),
    ]
    G.write_cases("moe.json", cases, "mixture-of-experts TransformerLM")


if __name__ == "__main__":
    main()
