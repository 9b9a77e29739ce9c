#!/usr/bin/env python3
"""Golden values for sliding-window attention (tests/golden/swa.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/swa.py          # part of: npm run golden

A TransformerLM with `slidingWindow` W, written from the equations with the reference modules of
generate.py (same parameter names): every layer's attention scores get the band mask
    key j visible from query i  iff  i - W < j <= i
(Hugging Face Mistral's `sliding_window`) as an explicit [T, T] bool mask, then softmax. The cases
record logits, loss and every parameter gradient; tests/models/swa.test.ts replays them.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)


def band_mask(t, window):
    i = torch.arange(t).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    return (j <= i) & (j > i - window)



def swa_forward(block, x, mask):
    if block.post:
        x = block.attnNorm(x + block.attn(x, mask=mask))
        return block.ffnNorm(x + block.ffn(x))
    x = x + block.attn(block.attnNorm(x), mask=mask)
    return x + block.ffn(block.ffnNorm(x))


def lm_forward(m, ids, targets, window):
    t = ids.shape[1]
    x = m.tokEmb(ids)
    if m.posEmb is not None:
        x = x + m.posEmb.weight[:t]
    if m.pe is not None:
        x = x + m.pe[:t]
    mask = band_mask(t, window)
    for layer in m.layers:
        x = swa_forward(layer, x, mask)
    if m.norm is not None:
        x = m.norm(x)
    w = m.tokEmb.weight if m.head is None else m.head.weight
    logits = x @ w.t()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    return logits, loss


def swa_case(name, config, batch, t):
    g = G.gen_for(name)
    m = G.RefLM(config)
    G.randomize(m, g)
    ids = G.randint(g, (batch, t), 0, config["vocabSize"])
    targets = G.randint(g, (batch, t), 0, config["vocabSize"])
    targets[0, 3] = -100
    logits, loss = lm_forward(m, ids, targets, config["slidingWindow"])
    loss.backward()
    return {
        "name": name,
        "config": config,
        "params": G.enc_state(m),
        "ids": G.enc(ids),
        "targets": G.enc(targets),
        "logits": G.enc(logits),
        "loss": G.fnum(loss),
        "grads": {n: G.enc(p.grad) for n, p in m.named_parameters()},
    }


BASE = {"vocabSize": 11, "dModel": 16, "nLayers": 2, "nHeads": 4, "nKvHeads": 2, "dFF": 24, "maxSeqLen": 16,
        "ropeTheta": 10000.0, "dropout": 0.0}


def main():
    cases = [
        swa_case("swa/rms_swiglu_rope_gqa_w4_t12", {**BASE, "norm": "rms", "mlp": "swiglu", "pos": "rope",
                 "tieWeights": False, "bias": False, "slidingWindow": 4}, 2, 12),
        swa_case("swa/layer_gelu_learned_mha_w3_t10", {**BASE, "norm": "layer", "mlp": "gelu", "pos": "learned",
                 "nKvHeads": 4, "tieWeights": True, "bias": True, "slidingWindow": 3}, 2, 10),
        # W = 1: every token attends only to itself.
        swa_case("swa/rms_gelu_rope_mqa_w1_t6", {**BASE, "norm": "rms", "mlp": "gelu", "pos": "rope",
                 "nKvHeads": 1, "tieWeights": True, "bias": False, "slidingWindow": 1}, 1, 6),
    ]
    path = os.path.join(G.OUT_DIR, "swa.json")
    with open(path, "w") as f:
        json.dump({"cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(cases)} sliding-window TransformerLM cases")


if __name__ == "__main__":
    main()
