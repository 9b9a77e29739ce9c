#!/usr/bin/env python3
"""Golden values for the recurrent layers (src/nn/recurrent.ts), from torch.nn's own modules.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 tools/golden/recurrent.py     # npm run golden runs it after generate.py

It writes tests/golden/recurrent.json (format: tools/golden/SPEC.md, "recurrent.json"):

- layers: torch.nn.RNN (tanh and relu), LSTM and GRU over a fractional grid of numLayers 1/2,
  bidirectional, batch_first, bias and an initial state given or not, plus one unbatched case
  each. Each case holds the module's state_dict under torch's own (snake_case) names, the input,
  the initial state, the output and the final state, and the gradients of

      L = sum(output * gradOut) + sum(h_n * gradH) (+ sum(c_n * gradC) for LSTM)

  w.r.t. every parameter (by state_dict name), the input and the initial state(s).
- cells: torch.nn.RNNCell (tanh, relu), LSTMCell and GRUCell, with and without bias and hidden
  state, L = sum(h' * gradH) (+ sum(c' * gradC)).
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# generate.py runs its main() only as a script: importing it reuses its encoding and seeding.
from generate import OUT_DIR, check_tensor, check_unique, enc, gen_for, randn, uniform, write  # noqa: E402

torch.set_default_dtype(torch.float32)

MODES = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


def make_layer(mode, input_size, hidden_size, num_layers, bias, batch_first, bidirectional):
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    if mode == "LSTM":
        return torch.nn.LSTM(input_size, hidden_size, **kw)
    if mode == "GRU":
        return torch.nn.GRU(input_size, hidden_size, **kw)
    return torch.nn.RNN(input_size, hidden_size, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


def set_params(g, mod, hidden_size):
    # torch's init range U(±1/√H), widened a little so that relu units and gates are not all tame.
    bound = 1.5 / hidden_size ** 0.5
    with torch.no_grad():
        for _, p in mod.named_parameters():
            p.copy_(uniform(g, list(p.shape), -bound, bound))


def layer_case(mode, T, B, I, H, num_layers, bidirectional, batch_first, bias, with_state, unbatched=False):
    name = (
        f"{MODES[mode]}/L{num_layers}_{'bi' if bidirectional else 'uni'}_{'bf' if batch_first else 'tf'}"
        f"_{'bias' if bias else 'nobias'}_{'h0' if with_state else 'noh0'}{'_unbatched' if unbatched else ''}"
        f"_T{T}B{B}I{I}H{H}"
    )
    g = gen_for(name)
    mod = make_layer(mode, I, H, num_layers, bias, batch_first, bidirectional)
    set_params(g, mod, H)
    D = 2 if bidirectional else 1
    if unbatched:
        x_shape, state_shape = [T, I], [num_layers * D, H]
    else:
        x_shape = [B, T, I] if batch_first else [T, B, I]
        state_shape = [num_layers * D, B, H]
    x = randn(g, x_shape).requires_grad_(True)
    h0 = randn(g, state_shape, 0.5).requires_grad_(True) if with_state else None
    c0 = randn(g, state_shape, 0.5).requires_grad_(True) if with_state and mode == "LSTM" else None
    if mode == "LSTM":
        out, (hn, cn) = mod(x, (h0, c0)) if with_state else mod(x)
    else:
        out, hn = mod(x, h0) if with_state else mod(x)
        cn = None
    grad_out = randn(g, list(out.shape))
    grad_h = randn(g, list(hn.shape))
    grad_c = randn(g, list(cn.shape)) if cn is not None else None
    loss = (out * grad_out).sum() + (hn * grad_h).sum()
    if cn is not None:
        loss = loss + (cn * grad_c).sum()
    loss.backward()
    grads = {"x": enc(x.grad), "params": {n: enc(p.grad) for n, p in mod.named_parameters()}}
    if h0 is not None:
        grads["h0"] = enc(h0.grad)
    if c0 is not None:
        grads["c0"] = enc(c0.grad)
    return {
        "name": name,
        "mode": mode,
        "options": {
            "inputSize": I,
            "hiddenSize": H,
            "numLayers": num_layers,
            "bias": bias,
            "batchFirst": batch_first,
            "bidirectional": bidirectional,
        },
        "stateDict": {n: enc(t) for n, t in mod.state_dict().items()},
        "x": enc(x),
        "h0": enc(h0) if h0 is not None else None,
        "c0": enc(c0) if c0 is not None else None,
        "out": enc(out),
        "hN": enc(hn),
        "cN": enc(cn) if cn is not None else None,
        "gradOut": enc(grad_out),
        "gradH": enc(grad_h),
        "gradC": enc(grad_c) if grad_c is not None else None,
        "grads": grads,
    }


def layer_cases():
    cases = []
    for mode in MODES:
        # A 2^(5-2) fractional factorial: every factor is on in half the runs, and numLayers and
        # bidirectional are crossed fully; batchFirst, bias and the initial state vary with them.
        for k in range(8):
            a, b, c = k & 1, (k >> 1) & 1, (k >> 2) & 1
            num_layers = 1 + a
            bidirectional = bool(b)
            batch_first = bool(c)
            bias = not (a ^ b)
            with_state = bool(a ^ c)
            T, B, I, H = 3 + (k % 3), 2 + (k % 2), 3 + ((k >> 1) % 2), 4 + ((k + 1) % 2)
            cases.append(layer_case(mode, T, B, I, H, num_layers, bidirectional, batch_first, bias, with_state))
        # The missing bias/state combinations at numLayers 2, bidirectional (the hardest wiring).
        cases.append(layer_case(mode, 4, 3, 4, 5, 2, True, False, True, True))
        cases.append(layer_case(mode, 3, 2, 3, 4, 2, True, True, False, False))
        # Unbatched input [T, I], with and without a state.
        cases.append(layer_case(mode, 4, 1, 3, 5, 2, True, False, True, True, unbatched=True))
        cases.append(layer_case(mode, 5, 1, 4, 4, 1, False, True, True, False, unbatched=True))
    return cases


def cell_case(mode, B, I, H, bias, with_state):
    name = f"{MODES[mode]}_cell/{'bias' if bias else 'nobias'}_{'hx' if with_state else 'nohx'}_B{B}I{I}H{H}"
    g = gen_for(name)
    if mode == "LSTM":
        mod = torch.nn.LSTMCell(I, H, bias=bias)
    elif mode == "GRU":
        mod = torch.nn.GRUCell(I, H, bias=bias)
    else:
        mod = torch.nn.RNNCell(I, H, bias=bias, nonlinearity="tanh" if mode == "RNN_TANH" else "relu")
    set_params(g, mod, H)
    x = randn(g, [B, I]).requires_grad_(True)
    h = randn(g, [B, H], 0.5).requires_grad_(True) if with_state else None
    c = randn(g, [B, H], 0.5).requires_grad_(True) if with_state and mode == "LSTM" else None
    if mode == "LSTM":
        h1, c1 = mod(x, (h, c)) if with_state else mod(x)
    else:
        h1, c1 = mod(x, h) if with_state else mod(x), None
    grad_h = randn(g, list(h1.shape))
    grad_c = randn(g, list(c1.shape)) if c1 is not None else None
    loss = (h1 * grad_h).sum()
    if c1 is not None:
        loss = loss + (c1 * grad_c).sum()
    loss.backward()
    grads = {"x": enc(x.grad), "params": {n: enc(p.grad) for n, p in mod.named_parameters()}}
    if h is not None:
        grads["h"] = enc(h.grad)
    if c is not None:
        grads["c"] = enc(c.grad)
    return {
        "name": name,
        "mode": mode,
        "options": {"inputSize": I, "hiddenSize": H, "bias": bias},
        "stateDict": {n: enc(t) for n, t in mod.state_dict().items()},
        "x": enc(x),
        "h": enc(h) if h is not None else None,
        "c": enc(c) if c is not None else None,
        "hOut": enc(h1),
        "cOut": enc(c1) if c1 is not None else None,
        "gradH": enc(grad_h),
        "gradC": enc(grad_c) if grad_c is not None else None,
        "grads": grads,
    }


def cell_cases():
    cases = []
    for mode in MODES:
        cases.append(cell_case(mode, 3, 4, 5, True, True))
        cases.append(cell_case(mode, 2, 3, 4, False, True))
        cases.append(cell_case(mode, 2, 4, 3, True, False))
    return cases


LAYER_KEYS = {"name", "mode", "options", "stateDict", "x", "h0", "c0", "out", "hN", "cN", "gradOut", "gradH", "gradC", "grads"}
CELL_KEYS = {"name", "mode", "options", "stateDict", "x", "h", "c", "hOut", "cOut", "gradH", "gradC", "grads"}


def validate(path):
    import json

    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"layers", "cells"}
    for c in doc["layers"]:
        w = c["name"]
        assert set(c) == LAYER_KEYS and c["mode"] in MODES, w
        o = c["options"]
        D = 2 if o["bidirectional"] else 1
        G = o["hiddenSize"] * {"LSTM": 4, "GRU": 3}.get(c["mode"], 1)
        names = [
            f"{kind}_l{l}{sfx}"
            for l in range(o["numLayers"])
            for sfx in (["", "_reverse"] if D == 2 else [""])
            for kind in (["weight_ih", "weight_hh", "bias_ih", "bias_hh"] if o["bias"] else ["weight_ih", "weight_hh"])
        ]
        assert list(c["stateDict"]) == names and list(c["grads"]["params"]) == names, w
        for n in names:
            check_tensor(c["stateDict"][n], w)
            check_tensor(c["grads"]["params"][n], w, c["stateDict"][n]["shape"])
            assert c["stateDict"][n]["shape"][0] == G, w
        check_tensor(c["x"], w)
        check_tensor(c["grads"]["x"], w, c["x"]["shape"])
        check_tensor(c["out"], w)
        assert c["out"]["shape"][-1] == D * o["hiddenSize"], w
        check_tensor(c["gradOut"], w, c["out"]["shape"])
        check_tensor(c["hN"], w)
        check_tensor(c["gradH"], w, c["hN"]["shape"])
        assert c["hN"]["shape"][0] == o["numLayers"] * D, w
        for k in ("h0", "c0"):
            if c[k] is not None:
                check_tensor(c[k], w, c["hN"]["shape"])
                check_tensor(c["grads"][k], w, c["hN"]["shape"])
        assert (c["cN"] is not None) == (c["mode"] == "LSTM"), w
        if c["cN"] is not None:
            check_tensor(c["cN"], w, c["hN"]["shape"])
            check_tensor(c["gradC"], w, c["hN"]["shape"])
    for c in doc["cells"]:
        w = c["name"]
        assert set(c) == CELL_KEYS and c["mode"] in MODES, w
        for n, t in c["stateDict"].items():
            check_tensor(t, w)
            check_tensor(c["grads"]["params"][n], w, t["shape"])
        check_tensor(c["hOut"], w)
        check_tensor(c["gradH"], w, c["hOut"]["shape"])
    return len(doc["layers"]), len(doc["cells"])


def main():
    layers = layer_cases()
    cells = cell_cases()
    check_unique(layers)
    check_unique(cells)
    write("recurrent.json", {"layers": layers, "cells": cells})
    n, m = validate(os.path.join(OUT_DIR, "recurrent.json"))
    print(f"validated: recurrent {n} layer cases, {m} cell cases")


if __name__ == "__main__":
    main()
