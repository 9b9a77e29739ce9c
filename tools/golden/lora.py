#!/usr/bin/env python3
"""Golden values for LoRA (src/nn/lora.ts), from the paper's equation in plain PyTorch.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 tools/golden/lora.py          # npm run golden runs it after generate.py

It writes tests/golden/lora.json (format: tools/golden/SPEC.md, "lora.json"). A LoRA linear layer
(Hu et al. 2021, as Hugging Face PEFT computes it, dropout 0) with given W, b, A, B, alpha, r:

    out = x @ W.T + b + (alpha / r) * (x @ A.T) @ B.T        merged weight = W + (alpha / r) * B @ A

W and b are frozen (no gradient); the gradients are those of sum(out * gradOut) w.r.t. x, A, B.
PEFT itself is not needed (nor installed): the equation is all it computes for a Linear.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# generate.py runs its main() only as a script: importing it reuses its encoding and seeding.
from generate import OUT_DIR, apply_views, check_tensor, check_unique, enc, gen_for, randn, uniform, write  # noqa: E402

torch.set_default_dtype(torch.float32)


def lora_case(name, x_shape, out_features, rank, alpha, bias, x_view=None):
    """One case; x_shape is the base shape of x before x_view (a list of SPEC view steps)."""
    g = gen_for(name)
    x_base = randn(g, x_shape)
    x_leaf = x_base.clone().requires_grad_(True)
    x = apply_views(x_leaf, x_view)
    in_features = x.shape[-1]
    if x is not x_leaf:
        x.retain_grad()
    # Non-trivial values everywhere: B is not zero (PEFT's init) or A's gradient would vanish.
    weight = randn(g, [out_features, in_features], 0.5)
    b = randn(g, [out_features], 0.2) if bias else None
    bound = 1 / in_features ** 0.5  # PEFT's kaiming_uniform_(a=sqrt(5)) range, U(-1/sqrt(in), 1/sqrt(in))
    lora_a = uniform(g, [rank, in_features], -bound, bound).requires_grad_(True)
    lora_b = randn(g, [out_features, rank], 0.5).requires_grad_(True)
    scaling = alpha / rank

    # PEFT's order: the base layer, then + lora_B(lora_A(x)) * scaling.
    base = x @ weight.T + b if b is not None else x @ weight.T
    out = base + ((x @ lora_a.T) @ lora_b.T) * scaling
    grad_out = randn(g, list(out.shape))
    out.backward(grad_out)
    assert weight.grad is None and (b is None or b.grad is None), name

    merged = weight + scaling * (lora_b.detach() @ lora_a.detach())
    # The merged layer computes the same function, up to float32 reassociation.
    again = x.detach() @ merged.T + (b if b is not None else 0)
    assert torch.allclose(again, out.detach(), rtol=1e-5, atol=1e-5), name

    x_enc = enc(x_base, view=x_view)
    return {
        "name": name,
        "rank": rank,
        "alpha": alpha,
        "weight": enc(weight),
        "bias": enc(b) if b is not None else None,
        "loraA": enc(lora_a),
        "loraB": enc(lora_b),
        "x": x_enc,
        "out": enc(out),
        "gradOut": enc(grad_out),
        "grads": {"x": enc(x.grad), "loraA": enc(lora_a.grad), "loraB": enc(lora_b.grad)},
        "mergedWeight": enc(merged),
    }


def lora_cases():
    return [
        lora_case("lora/2d_bias_r2_a4", [5, 6], 4, 2, 4.0, True),
        lora_case("lora/2d_nobias_r3_a3", [7, 5], 3, 3, 3.0, False),  # alpha / r = 1
        lora_case("lora/3d_bias_r4_a6", [2, 3, 6], 5, 4, 6.0, True),
        lora_case("lora/3d_nobias_r1_a0.5", [2, 4, 8], 6, 1, 0.5, False),
        lora_case("lora/2d_bias_transposed_x_r2_a16", [6, 5], 7, 2, 16.0, True, x_view=[{"transpose": [0, 1]}]),
    ]


KEYS = {"name", "rank", "alpha", "weight", "bias", "loraA", "loraB", "x", "out", "gradOut", "grads", "mergedWeight"}


def validate(path):
    import json

    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"cases"}
    for c in doc["cases"]:
        w = c["name"]
        assert set(c) == KEYS, w
        r, out_f, in_f = c["rank"], c["weight"]["shape"][0], c["weight"]["shape"][1]
        assert isinstance(r, int) and r >= 1 and c["alpha"] > 0, w
        check_tensor(c["weight"], w)
        if c["bias"] is not None:
            check_tensor(c["bias"], w, [out_f])
        check_tensor(c["loraA"], w, [r, in_f])
        check_tensor(c["loraB"], w, [out_f, r])
        check_tensor(c["x"], w)
        x_shape = list(apply_views(torch.zeros(c["x"]["shape"]), c["x"].get("view")).shape)
        check_tensor(c["out"], w, x_shape[:-1] + [out_f])
        check_tensor(c["gradOut"], w, c["out"]["shape"])
        assert set(c["grads"]) == {"x", "loraA", "loraB"}, w
        check_tensor(c["grads"]["x"], w, x_shape)
        check_tensor(c["grads"]["loraA"], w, [r, in_f])
        check_tensor(c["grads"]["loraB"], w, [out_f, r])
        check_tensor(c["mergedWeight"], w, [out_f, in_f])
    return len(doc["cases"])


def main():
    cases = lora_cases()
    check_unique(cases)
    write("lora.json", {"cases": cases})
    n = validate(os.path.join(OUT_DIR, "lora.json"))
    print(f"validated: lora {n} cases")


if __name__ == "__main__":
    main()
