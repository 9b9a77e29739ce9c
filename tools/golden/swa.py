#!/usr/bin/env python3
"""Golden values for sliding-window attention (tests/golden/swa.json).

Run from the repository root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/golden/swa.py          # part of: npm run golden

A TransformerLM with `slidingWindow` W (or one window per layer), written from the equations with the reference modules of
generate.py (same parameter names): every layer's attention scores get the band mask
    key j visible from query i  iff  i - W < j <= i
(Hugging Face Mistral's `sliding_window`) as an explicit [T, T] bool mask, then softmax. The cases
record logits, loss and every parameter gradient; tests/models/swa.test.ts replays them.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (the reference modules, encoders and seeding)


def band_mask(t, window):
    i = torch.arange(t).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    return (j <= i) & (j > i - window)


def banded(window):
    """Attention whose scores get the band mask (as an explicit [T, T] bool mask, then softmax)."""
    return lambda attn, x: attn(x, mask=band_mask(x.shape[1], window))


def swa_case(name, config, batch, t):
    return G.attention_variant_case(name, config, batch, t, banded(config["slidingWindow"]))


def per_layer_case(name, config, batch, t):
    """Per-layer windows (a list, null = full causal attention in that layer): each layer's
    attention gets its own band mask."""
    windows = config["slidingWindow"]

    def build(m):
        for layer, w in zip(m.layers, windows):
            layer.attn.window = w

    def attend(attn, x):
        return attn(x) if attn.window is None else attn(x, mask=band_mask(x.shape[1], attn.window))

    return G.lm_case(name, config, batch, t, attend=attend, build=build)


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
        # Gemma-2-like alternation of local and global layers: windows 3, none, 5.
        per_layer_case("swa/per_layer_rms_swiglu_rope_gqa_w3_full_w5_t12", {**BASE, "nLayers": 3, "norm": "rms", "mlp": "swiglu",
                       "pos": "rope", "tieWeights": True, "bias": False, "slidingWindow": [3, None, 5]}, 2, 12),
    ]
    G.write_cases("swa.json", cases, "sliding-window TransformerLM")


if __name__ == "__main__":
    main()
