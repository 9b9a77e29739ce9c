#!/usr/bin/env python3
"""Generate PyTorch golden values for the TensorLM TypeScript tests.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 tools/golden/generate.py          # or: npm run golden

It writes compact JSON to tests/golden/ops.json, tests/golden/nn.json,
tests/golden/optim.json and tests/golden/models.json (transformer modules and whole
TransformerLMs), plus tests/golden/tiny-lm.safetensors. The format is described in tools/golden/SPEC.md.
Everything is deterministic: every case draws its random numbers from its own
torch.Generator seeded from the case name, all tensors are float32 (indices are
int64 inside torch, written as int32), floats are written with 9 significant
digits. Only torch and the standard library are used.
"""

import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(ROOT, "tests", "golden")

torch.manual_seed(0)
torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------

def fnum(v):
    """A Python float with 9 significant digits (exact float32 round trip)."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value in golden data: {v}")
    return float(f"{v:.9g}")


def enc(t, view=None):
    """Encode a tensor as {"shape", "dtype", "data"} (+ optional "view")."""
    t = t.detach().contiguous()
    flat = t.reshape(-1).tolist()
    if t.dtype == torch.bool:
        dtype, data = "bool", [1 if v else 0 for v in flat]
    elif t.dtype in (torch.int32, torch.int64):
        dtype, data = "int32", [int(v) for v in flat]
    elif t.dtype == torch.float32:
        dtype, data = "float32", [fnum(v) for v in flat]
    else:
        raise TypeError(f"unsupported dtype {t.dtype}")
    d = {"shape": list(t.shape), "dtype": dtype, "data": data}
    if view:
        d["view"] = view
    return d


# ---------------------------------------------------------------------------
# Random helpers (each case owns a generator)
# ---------------------------------------------------------------------------

def gen_for(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def randn(g, shape, scale=1.0):
    return torch.randn(shape, generator=g) * scale


def uniform(g, shape, lo, hi):
    return torch.rand(shape, generator=g) * (hi - lo) + lo


def randint(g, shape, lo, hi):
    return torch.randint(lo, hi, shape, generator=g)


def away_from(x, points, eps=0.05):
    """Push values that lie within eps of any point to at least eps away."""
    for p in points:
        d = x - p
        s = torch.where(d >= 0, torch.ones_like(d), -torch.ones_like(d))
        x = torch.where(d.abs() < eps, p + s * (eps + d.abs()), x)
    for p in points:
        assert bool(((x - p).abs() >= eps * 0.999).all())
    return x


def distinct(g, shape, spacing=0.25):
    """Values with pairwise distance >= spacing*0.6 (no ties for max/min)."""
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(n, generator=g).float()
    noise = torch.rand(n, generator=g) * 0.4 * spacing
    return ((perm - n / 2) * spacing + noise).reshape(shape)


def signed_mag(g, shape, lo, hi):
    """Random sign times a magnitude in [lo, hi] (denominators away from 0)."""
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return sign * uniform(g, shape, lo, hi)


# ---------------------------------------------------------------------------
# Case builder
# ---------------------------------------------------------------------------

class Inp:
    """An input: base data (float32 / int64 / bool), optional view steps."""

    def __init__(self, data, view=None, grad=None):
        self.data = data
        self.view = view
        self.grad = data.dtype == torch.float32 if grad is None else grad


def apply_views(t, view):
    for step in view or []:
        (kind, a), = step.items()
        if kind == "transpose":
            t = t.transpose(a[0], a[1])
        elif kind == "permute":
            t = t.permute(*a)
        elif kind == "narrow":
            t = t.narrow(a[0], a[1], a[2])
        elif kind == "expand":
            t = t.expand(*a)
        else:
            raise ValueError(kind)
    return t


def case(name, op, inputs, fn, args=None, differentiable=True):
    """Build one op case. fn receives the (viewed) input tensors.

    inputs are Inp objects (a bare tensor is wrapped). Float inputs require
    grad unless Inp(grad=False). The gradient flows from the first output when
    fn returns a tuple/list."""
    g = gen_for(name + "#gradOut")
    inputs = [i if isinstance(i, Inp) else Inp(i) for i in inputs]
    tensors = []
    for i in inputs:
        base = i.data.clone()
        need = differentiable and i.grad and base.dtype == torch.float32
        if need:
            base.requires_grad_(True)
        t = apply_views(base, i.view)
        if need and i.view:
            t.retain_grad()
        tensors.append(t)
    out = fn(*tensors)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    c = {
        "name": name,
        "op": op,
        "inputs": [enc(i.data, i.view) for i in inputs],
        "args": args or {},
        "out": [enc(o) for o in outs] if isinstance(out, (tuple, list)) else enc(out),
    }
    if differentiable:
        first = outs[0]
        grad_out = randn(g, tuple(first.shape))
        first.backward(grad_out)
        grads = []
        for i, t in zip(inputs, tensors):
            if i.grad and i.data.dtype == torch.float32:
                gr = t.grad if t.grad is not None else torch.zeros_like(t)
                grads.append(enc(gr))
            else:
                grads.append(None)
        c["gradOut"] = enc(grad_out)
        c["grads"] = grads
    return c


T = [{"transpose": [0, 1]}]  # shorthand: transposed 2-D view


# ---------------------------------------------------------------------------
# ops.json
# ---------------------------------------------------------------------------

UNARY = {
    "neg": (torch.neg, "randn"),
    "exp": (torch.exp, "randn"),
    "log": (torch.log, "pos"),
    "sqrt": (torch.sqrt, "pos"),
    "rsqrt": (torch.rsqrt, "pos"),
    "abs": (torch.abs, "nonzero"),
    "tanh": (torch.tanh, "randn"),
    "sigmoid": (torch.sigmoid, "randn"),
    "relu": (torch.relu, "nonzero"),
    "square": (torch.square, "randn"),
    "sin": (torch.sin, "wide"),
    "cos": (torch.cos, "wide"),
    "silu": (F.silu, "randn"),
}


def unary_data(g, shape, domain):
    if domain == "pos":
        return uniform(g, shape, 0.5, 2.0)
    if domain == "nonzero":
        return away_from(randn(g, shape), [0.0])
    if domain == "wide":
        return uniform(g, shape, -4.0, 4.0)
    return randn(g, shape)


def unary_cases():
    cases = []
    variants = list(UNARY.items()) + [
        ("gelu", (lambda x: F.gelu(x, approximate="none"), "randn"), {"approximate": "none"}),
        ("gelu", (lambda x: F.gelu(x, approximate="tanh"), "randn"), {"approximate": "tanh"}),
    ]
    for v in variants:
        op, (fn, dom) = v[0], v[1]
        args = v[2] if len(v) > 2 else {}
        suffix = "_" + args["approximate"] if args else ""
        n = f"{op}{suffix}/same_3x5"
        cases.append(case(n, op, [unary_data(gen_for(n), (3, 5), dom)], fn, args))
        n = f"{op}{suffix}/transposed_5x3"
        cases.append(case(n, op, [Inp(unary_data(gen_for(n), (5, 3), dom), T)], fn, args))
    return cases


BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "pow": torch.pow,
}


def binary_data(op, g, sa, sb, transpose_a=False):
    if op == "div":
        return randn(g, sa), signed_mag(g, sb, 0.5, 2.0)
    if op == "pow":
        return uniform(g, sa, 0.5, 2.0), uniform(g, sb, -2.0, 2.0)
    if op in ("maximum", "minimum"):
        for _ in range(10000):
            a, b = randn(g, sa), randn(g, sb)
            av = a.t() if transpose_a else a
            if float((av - b).abs().min()) > 0.05:
                return a, b
        raise RuntimeError("could not draw separated operands")
    return randn(g, sa), randn(g, sb)


def binary_cases():
    cases = []
    shapes = [
        ("same_3x4", (3, 4), (3, 4)),
        ("broadcast_3x1_1x4", (3, 1), (1, 4)),
        ("broadcast_2x3x4_4", (2, 3, 4), (4,)),
        ("broadcast_2x1x4_3x1", (2, 1, 4), (3, 1)),
    ]
    for op, fn in BINARY.items():
        for label, sa, sb in shapes:
            n = f"{op}/{label}"
            a, b = binary_data(op, gen_for(n), sa, sb)
            cases.append(case(n, op, [a, b], fn))
        # transposed (non-contiguous) first operand: base [4,3] -> [3,4]
        n = f"{op}/transposed_first"
        a, b = binary_data(op, gen_for(n), (4, 3), (3, 4), transpose_a=True)
        cases.append(case(n, op, [Inp(a, T), b], fn))
        # scalar second operand
        if op == "pow":
            scalars = [3.0, 0.5]
        elif op in ("maximum", "minimum"):
            scalars = [0.3]
        else:
            scalars = [2.5]
        for s in scalars:
            n = f"{op}/scalar_{s:g}"
            g = gen_for(n)
            if op == "pow":
                x = uniform(g, (3, 4), 0.5, 2.0)
            elif op in ("maximum", "minimum"):
                x = away_from(randn(g, (3, 4)), [s])
            else:
                x = randn(g, (3, 4))
            if op in ("maximum", "minimum"):
                f = (lambda fn_, s_: lambda t: fn_(t, torch.tensor(s_)))(fn, s)
            else:
                f = (lambda fn_, s_: lambda t: fn_(t, s_))(fn, s)
            cases.append(case(n, op, [x], f, {"other": s}))
    return cases


def clamp_where_compare_cases():
    cases = []
    for label, args in [
        ("min_max", {"min": -0.5, "max": 0.5}),
        ("min_only", {"min": -0.5}),
        ("max_only", {"max": 0.5}),
    ]:
        n = f"clamp/{label}"
        x = away_from(randn(gen_for(n), (3, 5)), [-0.5, 0.5])
        cases.append(case(n, "clamp", [x],
                          lambda t, a=args: torch.clamp(t, min=a.get("min"), max=a.get("max")), args))
    n = "clamp/min_max_transposed"
    x = away_from(randn(gen_for(n), (5, 3)), [-0.5, 0.5])
    cases.append(case(n, "clamp", [Inp(x, T)], lambda t: torch.clamp(t, -0.5, 0.5),
                      {"min": -0.5, "max": 0.5}))

    n = "where/broadcast_3x1_3x4_4"
    g = gen_for(n)
    cond = torch.tensor([[True], [False], [True]])
    cases.append(case(n, "where", [cond, randn(g, (3, 4)), randn(g, (4,))], torch.where))
    n = "where/same_3x4"
    g = gen_for(n)
    cond = torch.rand((3, 4), generator=g) < 0.5
    cases.append(case(n, "where", [cond, randn(g, (3, 4)), randn(g, (3, 4))], torch.where))

    for op, fn in [("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt),
                   ("le", torch.le), ("gt", torch.gt), ("ge", torch.ge)]:
        for label, sa, sb in [("broadcast_3x4_4", (3, 4), (4,)), ("same_3x4", (3, 4), (3, 4))]:
            n = f"{op}/{label}"
            g = gen_for(n)
            a = randint(g, sa, -2, 3).float() * 0.5
            b = randint(g, sb, -2, 3).float() * 0.5
            cases.append(case(n, op, [a, b], fn, differentiable=False))
    return cases


def dim_arg(d):
    return tuple(d) if isinstance(d, list) else d


def reduction_cases():
    cases = []
    for op, fn in [("sum", torch.sum), ("mean", torch.mean)]:
        for label, args in [
            ("all", {"dim": None}),
            ("dim1", {"dim": 1}),
            ("dim-1_keepdim", {"dim": -1, "keepdim": True}),
            ("dims0_2", {"dim": [0, 2]}),
        ]:
            n = f"{op}/{label}_2x3x4"

            def f(t, a=args, fn=fn):
                if a["dim"] is None:
                    return fn(t)
                return fn(t, dim=dim_arg(a["dim"]), keepdim=a.get("keepdim", False))
            cases.append(case(n, op, [randn(gen_for(n), (2, 3, 4))], f, args))
        n = f"{op}/transposed_dim1"
        cases.append(case(n, op, [Inp(randn(gen_for(n), (5, 3)), T)],
                          lambda t, fn=fn: fn(t, dim=1), {"dim": 1}))
        n = f"{op}/transposed_all"
        cases.append(case(n, op, [Inp(randn(gen_for(n), (5, 3)), T)],
                          lambda t, fn=fn: fn(t), {"dim": None}))
        n = f"{op}/long_2x1000_dim-1"
        cases.append(case(n, op, [randn(gen_for(n), (2, 1000))],
                          lambda t, fn=fn: fn(t, dim=-1), {"dim": -1}))
        n = f"{op}/long_2x1000_all"
        cases.append(case(n, op, [randn(gen_for(n), (2, 1000))],
                          lambda t, fn=fn: fn(t), {"dim": None}))

    for op, fn in [("max", torch.max), ("min", torch.min)]:
        n = f"{op}/all_3x5"
        cases.append(case(n, op, [distinct(gen_for(n), (3, 5))], lambda t, fn=fn: fn(t), {"dim": None}))
        for kd in (False, True):
            n = f"{op}/dim1_keepdim{str(kd).lower()}_2x3x4"

            def f(t, fn=fn, kd=kd):
                v, i = fn(t, dim=1, keepdim=kd)
                return [v, i.to(torch.int32)]
            cases.append(case(n, op, [distinct(gen_for(n), (2, 3, 4))], f, {"dim": 1, "keepdim": kd}))
        n = f"{op}/dim1_transposed"

        def f(t, fn=fn):
            v, i = fn(t, dim=1, keepdim=False)
            return [v, i.to(torch.int32)]
        cases.append(case(n, op, [Inp(distinct(gen_for(n), (5, 3)), T)], f, {"dim": 1, "keepdim": False}))

    for op, fn in [("argmax", torch.argmax), ("argmin", torch.argmin)]:
        n = f"{op}/dim1_3x5"
        cases.append(case(n, op, [distinct(gen_for(n), (3, 5))],
                          lambda t, fn=fn: fn(t, dim=1, keepdim=False).to(torch.int32),
                          {"dim": 1, "keepdim": False}, differentiable=False))
        n = f"{op}/dim1_2x3x4"
        cases.append(case(n, op, [distinct(gen_for(n), (2, 3, 4))],
                          lambda t, fn=fn: fn(t, dim=1, keepdim=False).to(torch.int32),
                          {"dim": 1, "keepdim": False}, differentiable=False))
        n = f"{op}/all_2x3x4"
        cases.append(case(n, op, [distinct(gen_for(n), (2, 3, 4))],
                          lambda t, fn=fn: fn(t).to(torch.int32),
                          {"dim": None}, differentiable=False))

    for op, fn in [("var", torch.var), ("std", torch.std)]:
        for label, args in [
            ("dim1_corr1", {"dim": 1, "correction": 1, "keepdim": False}),
            ("all_corr0", {"dim": None, "correction": 0}),
            ("dims0_2_corr1_keepdim", {"dim": [0, 2], "correction": 1, "keepdim": True}),
        ]:
            n = f"{op}/{label}_2x3x4"
            cases.append(case(n, op, [randn(gen_for(n), (2, 3, 4))],
                              lambda t, a=args, fn=fn: fn(t, dim=dim_arg(a["dim"]), correction=a["correction"],
                                                          keepdim=a.get("keepdim", False)), args))
    return cases


def Inp_spec(shape, view=None):
    return (shape, view)


def matmul_cases():
    cases = []
    specs = [
        ("2d_3x4_4x5", Inp_spec((3, 4)), Inp_spec((4, 5))),
        ("1d_2d_4_4x5", Inp_spec((4,)), Inp_spec((4, 5))),
        ("2d_1d_3x4_4", Inp_spec((3, 4)), Inp_spec((4,))),
        ("1d_1d_4_4", Inp_spec((4,)), Inp_spec((4,))),
        ("batched_2x3x4_2x4x5", Inp_spec((2, 3, 4)), Inp_spec((2, 4, 5))),
        ("broadcast_2x1x3x4_5x4x2", Inp_spec((2, 1, 3, 4)), Inp_spec((5, 4, 2))),
        ("transposed_first", Inp_spec((4, 3), T), Inp_spec((4, 5))),
        ("transposed_second", Inp_spec((3, 4)), Inp_spec((5, 4), T)),
        ("batched_transposed_second", Inp_spec((2, 3, 4)), Inp_spec((2, 5, 4), [{"transpose": [1, 2]}])),
        ("odd_7x33_33x9", Inp_spec((7, 33)), Inp_spec((33, 9))),
    ]
    for label, sa, sb in specs:
        n = f"matmul/{label}"
        g = gen_for(n)
        a = Inp(randn(g, sa[0]), sa[1])
        b = Inp(randn(g, sb[0]), sb[1])
        cases.append(case(n, "matmul", [a, b], torch.matmul))
    return cases


def softmax_cases():
    cases = []
    for op, fn in [("softmax", torch.softmax), ("logSoftmax", torch.log_softmax)]:
        for label, shape, dim, scale in [
            ("3x5_dim-1", (3, 5), -1, 1.0),
            ("3x5_dim0", (3, 5), 0, 1.0),
            ("2x3x4_dim1", (2, 3, 4), 1, 1.0),
            ("large_3x5_dim-1", (3, 5), -1, None),
        ]:
            n = f"{op}/{label}"
            g = gen_for(n)
            x = uniform(g, shape, -50.0, 50.0) if scale is None else randn(g, shape)
            cases.append(case(n, op, [x], lambda t, d=dim, fn=fn: fn(t, dim=d), {"dim": dim}))
    return cases


def indexing_cases():
    cases = []
    n = "gather/dim1_3x4_idx3x2"
    g = gen_for(n)
    cases.append(case(n, "gather", [randn(g, (3, 4)), randint(g, (3, 2), 0, 4)],
                      lambda x, i: torch.gather(x, 1, i), {"dim": 1}))
    n = "gather/dim0_3x4_idx2x4"
    g = gen_for(n)
    idx = torch.tensor([[0, 2, 1, 2], [2, 2, 0, 1]])
    cases.append(case(n, "gather", [randn(g, (3, 4)), idx],
                      lambda x, i: torch.gather(x, 0, i), {"dim": 0}))

    n = "indexSelect/dim0_5x3"
    g = gen_for(n)
    cases.append(case(n, "indexSelect", [randn(g, (5, 3)), torch.tensor([4, 0, 4, 2])],
                      lambda x, i: torch.index_select(x, 0, i), {"dim": 0}))
    n = "indexSelect/dim1_5x3"
    g = gen_for(n)
    cases.append(case(n, "indexSelect", [randn(g, (5, 3)), torch.tensor([2, 0, 2, 1])],
                      lambda x, i: torch.index_select(x, 1, i), {"dim": 1}))

    for label, dim, shapes in [
        ("dim0", 0, [(2, 3), (1, 3), (3, 3)]),
        ("dim1", 1, [(2, 1), (2, 3), (2, 2)]),
        ("dim-1_3d", -1, [(2, 3, 1), (2, 3, 2), (2, 3, 3)]),
    ]:
        n = f"cat/{label}"
        g = gen_for(n)
        cases.append(case(n, "cat", [randn(g, s) for s in shapes],
                          lambda *ts, d=dim: torch.cat(ts, dim=d), {"dim": dim}))
    for dim in (0, 1, -1):
        n = f"stack/dim{dim}"
        g = gen_for(n)
        cases.append(case(n, "stack", [randn(g, (2, 3)) for _ in range(3)],
                          lambda *ts, d=dim: torch.stack(ts, dim=d), {"dim": dim}))

    for op, fn in [("tril", torch.tril), ("triu", torch.triu)]:
        for shape in [(4, 5), (2, 3, 3)]:
            for k in (0, 1, -1):
                n = f"{op}/{'x'.join(map(str, shape))}_k{k}"
                cases.append(case(n, op, [randn(gen_for(n), shape)],
                                  lambda t, k=k, fn=fn: fn(t, diagonal=k), {"k": k}))

    for label, mshape, value in [
        ("mask3x4_neg1e9", (3, 4), -1e9),
        ("mask1x4_0.5", (1, 4), 0.5),
        ("mask1x4_neg1e9", (1, 4), -1e9),
    ]:
        n = f"maskedFill/{label}"
        g = gen_for(n)
        mask = torch.rand(mshape, generator=g) < 0.5
        cases.append(case(n, "maskedFill", [randn(g, (3, 4)), mask],
                          lambda x, m, v=value: x.masked_fill(m, v), {"value": value}))
    return cases


def view_cases():
    cases = []

    def add(n, op, shape, fn, args, view=None):
        cases.append(case(n, op, [Inp(randn(gen_for(n), shape), view)], fn, args))

    add("reshape/2x3x4_to_4x-1", "reshape", (2, 3, 4), lambda t: t.reshape(4, -1), {"shape": [4, -1]})
    add("reshape/transposed_to_2x6", "reshape", (4, 3), lambda t: t.reshape(2, 6), {"shape": [2, 6]}, T)
    add("transpose/2x3x4_0_2", "transpose", (2, 3, 4), lambda t: t.transpose(0, 2), {"dim0": 0, "dim1": 2})
    add("transpose/3x4_-1_-2", "transpose", (3, 4), lambda t: t.transpose(-1, -2), {"dim0": -1, "dim1": -2})
    add("permute/2x3x4_2_0_1", "permute", (2, 3, 4), lambda t: t.permute(2, 0, 1), {"dims": [2, 0, 1]})
    add("unsqueeze/3x4_dim1", "unsqueeze", (3, 4), lambda t: t.unsqueeze(1), {"dim": 1})
    add("unsqueeze/3x4_dim-1", "unsqueeze", (3, 4), lambda t: t.unsqueeze(-1), {"dim": -1})
    add("squeeze/3x1x4_dim1", "squeeze", (3, 1, 4), lambda t: t.squeeze(1), {"dim": 1})
    add("squeeze/3x1x4x1_all", "squeeze", (3, 1, 4, 1), lambda t: t.squeeze(), {"dim": None})
    add("narrow/3x4_dim1_1_2", "narrow", (3, 4), lambda t: t.narrow(1, 1, 2),
        {"dim": 1, "start": 1, "length": 2})
    add("narrow/transposed_dim0_1_2", "narrow", (4, 3), lambda t: t.narrow(0, 1, 2),
        {"dim": 0, "start": 1, "length": 2}, T)
    add("select/3x4_dim0_-1", "select", (3, 4), lambda t: t.select(0, -1), {"dim": 0, "index": -1})
    add("select/2x3x4_dim1_2", "select", (2, 3, 4), lambda t: t.select(1, 2), {"dim": 1, "index": 2})
    add("expand/3x1_to_2x3x4", "expand", (3, 1), lambda t: t.expand(2, 3, 4), {"shape": [2, 3, 4]})
    add("expand/1x4_to_3x4", "expand", (1, 4), lambda t: t.expand(3, 4), {"shape": [3, 4]})
    add("flatten/2x3x4_1_-1", "flatten", (2, 3, 4), lambda t: t.flatten(1, -1), {"startDim": 1, "endDim": -1})
    add("flatten/2x3x4_0_-1", "flatten", (2, 3, 4), lambda t: t.flatten(0, -1), {"startDim": 0, "endDim": -1})
    add("flatten/transposed_0_1", "flatten", (4, 3), lambda t: t.flatten(0, 1), {"startDim": 0, "endDim": 1}, T)
    return cases


def ops_cases():
    return (unary_cases() + binary_cases() + clamp_where_compare_cases() + reduction_cases()
            + matmul_cases() + softmax_cases() + indexing_cases() + view_cases())


# ---------------------------------------------------------------------------
# nn.json
# ---------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "none")


def ce_fn(reduction, ignore_index, smoothing):
    """cross_entropy on logits [..., C] with targets [...] (class dim last).

    PyTorch wants the class dim at 1 for K-dim inputs; we flatten to [N, C]
    and reshape a 'none' output back to the target shape. This is identical
    to F.cross_entropy(logits.movedim(-1, 1), target)."""
    def f(logits, target):
        c = logits.shape[-1]
        out = F.cross_entropy(logits.reshape(-1, c), target.reshape(-1), reduction=reduction,
                              ignore_index=ignore_index, label_smoothing=smoothing)
        if reduction == "none":
            out = out.reshape(target.shape)
        return out
    return f


def nn_cases():
    cases = []
    # mseLoss (target is a constant: no grad)
    for r in REDUCTIONS:
        n = f"mseLoss/{r}_3x4"
        g = gen_for(n)
        cases.append(case(n, "mseLoss", [randn(g, (3, 4)), Inp(randn(g, (3, 4)), grad=False)],
                          lambda p, t, r=r: F.mse_loss(p, t, reduction=r), {"reduction": r}))

    # crossEntropy
    def ce(n, logits, target, r, ii=-100, ls=0.0):
        cases.append(case(n, "crossEntropy", [logits, target], ce_fn(r, ii, ls),
                          {"reduction": r, "ignoreIndex": ii, "labelSmoothing": ls}))

    for r in REDUCTIONS:
        for ls in (0.0, 0.1):
            n = f"crossEntropy/{r}_ls{ls:g}_5x7"
            g = gen_for(n)
            ce(n, randn(g, (5, 7), 2.0), randint(g, (5,), 0, 7), r, ls=ls)
            n = f"crossEntropy/{r}_ls{ls:g}_BTC_2x3x7"
            g = gen_for(n)
            ce(n, randn(g, (2, 3, 7), 2.0), randint(g, (2, 3), 0, 7), r, ls=ls)
    for r in REDUCTIONS:
        for ls in (0.0, 0.1):
            n = f"crossEntropy/ignore2_{r}_ls{ls:g}_2x3x7"
            g = gen_for(n)
            target = torch.tensor([[2, 0, 5], [2, 6, 2]])
            ce(n, randn(g, (2, 3, 7), 2.0), target, r, ii=2, ls=ls)
    for r in ("mean", "none"):
        n = f"crossEntropy/extreme_{r}_4x5"
        g = gen_for(n)
        logits = torch.tensor([[1e4, -1e4, 0.0, 5e3, -5e3],
                               [-1e4, 1e4, 1e4, 0.0, -1e4],
                               [0.0, 0.0, -1e4, 1e4, 2.0],
                               [-1e4, -1e4, -1e4, -1e4, 1e4]])
        target = torch.tensor([1, 2, 3, 0])
        ce(n, logits, target, r)
        n = f"crossEntropy/extreme_{r}_ls0.1_4x5"
        ce(n, logits, target, r, ls=0.1)

    # nllLoss
    for r in REDUCTIONS:
        for ii in (-100, 1):
            n = f"nllLoss/{r}_ignore{ii}_5x4"
            g = gen_for(n)
            logp = torch.log_softmax(randn(g, (5, 4), 2.0), dim=-1)
            target = torch.tensor([1, 0, 3, 1, 2])
            cases.append(case(n, "nllLoss", [logp, target],
                              lambda x, t, r=r, ii=ii: F.nll_loss(x, t, reduction=r, ignore_index=ii),
                              {"reduction": r, "ignoreIndex": ii}))

    # binaryCrossEntropy (probabilities)
    for r in REDUCTIONS:
        for label in ("hard", "soft"):
            n = f"binaryCrossEntropy/{label}_{r}_3x4"
            g = gen_for(n)
            probs = uniform(g, (3, 4), 0.05, 0.95)
            target = (torch.rand((3, 4), generator=g) < 0.5).float()
            if label == "soft":
                target[0, :] = 0.3
            cases.append(case(n, "binaryCrossEntropy", [probs, Inp(target, grad=False)],
                              lambda p, t, r=r: F.binary_cross_entropy(p, t, reduction=r), {"reduction": r}))

    # binaryCrossEntropyWithLogits
    for r in REDUCTIONS:
        n = f"binaryCrossEntropyWithLogits/{r}_3x4"
        g = gen_for(n)
        logits = randn(g, (3, 4), 2.0)
        target = (torch.rand((3, 4), generator=g) < 0.5).float()
        target[1, 1] = 0.3
        cases.append(case(n, "binaryCrossEntropyWithLogits", [logits, Inp(target, grad=False)],
                          lambda x, t, r=r: F.binary_cross_entropy_with_logits(x, t, reduction=r),
                          {"reduction": r}))
    for r in ("mean", "none"):
        n = f"binaryCrossEntropyWithLogits/extreme_{r}_2x4"
        logits = torch.tensor([[1e4, -1e4, 1e4, -1e4], [5e3, -5e3, 0.0, 1e4]])
        target = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.3]])
        cases.append(case(n, "binaryCrossEntropyWithLogits", [logits, Inp(target, grad=False)],
                          lambda x, t, r=r: F.binary_cross_entropy_with_logits(x, t, reduction=r),
                          {"reduction": r}))
    for r in REDUCTIONS:
        n = f"binaryCrossEntropyWithLogits/posWeight_{r}_4x3"
        g = gen_for(n)
        logits = randn(g, (4, 3), 2.0)
        target = (torch.rand((4, 3), generator=g) < 0.5).float()
        pw = torch.tensor([0.5, 2.0, 3.0])
        cases.append(case(n, "binaryCrossEntropyWithLogits", [logits, Inp(target, grad=False)],
                          lambda x, t, r=r, pw=pw: F.binary_cross_entropy_with_logits(
                              x, t, reduction=r, pos_weight=pw),
                          {"reduction": r, "posWeight": enc(pw)}))
    n = "binaryCrossEntropyWithLogits/posWeight_extreme_mean_2x4"
    logits = torch.tensor([[1e4, -1e4, 1e4, -1e4], [5e3, -5e3, 0.0, 1e4]])
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.3]])
    pw = torch.tensor([2.0, 0.5, 1.5, 3.0])
    cases.append(case(n, "binaryCrossEntropyWithLogits", [logits, Inp(target, grad=False)],
                      lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="mean", pos_weight=pw),
                      {"reduction": "mean", "posWeight": enc(pw)}))

    # linear
    n = "linear/bias_4x3_5x3"
    g = gen_for(n)
    cases.append(case(n, "linear", [randn(g, (4, 3)), randn(g, (5, 3)), randn(g, (5,))], F.linear))
    n = "linear/nobias_4x3_5x3"
    g = gen_for(n)
    cases.append(case(n, "linear", [randn(g, (4, 3)), randn(g, (5, 3))], F.linear))
    n = "linear/bias_3d_2x4x3_5x3"
    g = gen_for(n)
    cases.append(case(n, "linear", [randn(g, (2, 4, 3)), randn(g, (5, 3)), randn(g, (5,))], F.linear))
    return cases


# ---------------------------------------------------------------------------
# optim.json
# ---------------------------------------------------------------------------

STEPS = 20


def optimizer_case(name, kind, options):
    g = gen_for(name)
    init = [randn(g, (3, 4)), randn(g, (4,))]
    grads = [[randn(g, (3, 4)), randn(g, (4,))] for _ in range(STEPS)]
    params = [torch.nn.Parameter(p.clone()) for p in init]
    o = options
    if kind == "SGD":
        opt = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], dampening=o["dampening"],
                              weight_decay=o["weightDecay"], nesterov=o["nesterov"], foreach=False)
    else:
        cls = torch.optim.Adam if kind == "Adam" else torch.optim.AdamW
        opt = cls(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                  weight_decay=o["weightDecay"], amsgrad=o["amsgrad"], foreach=False)
    traj = []
    for step_grads in grads:
        for p, gr in zip(params, step_grads):
            p.grad = gr.clone()
        opt.step()
        traj.append([enc(p.detach().clone()) for p in params])
    return {
        "name": name,
        "optimizer": kind,
        "options": options,
        "params": [enc(p) for p in init],
        "grads": [[enc(gr) for gr in s] for s in grads],
        "trajectory": traj,
    }


def sgd_opts(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    return {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
            "weightDecay": weight_decay}


def adam_opts(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    return {"lr": lr, "betas": list(betas), "eps": eps, "weightDecay": weight_decay, "amsgrad": amsgrad}


def clip_case(name, scale, norm_type):
    g = gen_for(name)
    grads = [randn(g, (3, 4), scale), randn(g, (4,), scale)]
    params = [torch.nn.Parameter(torch.zeros_like(x)) for x in grads]
    for p, gr in zip(params, grads):
        p.grad = gr.clone()
    nt = math.inf if norm_type == "inf" else float(norm_type)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0, norm_type=nt)
    return {
        "name": name,
        "grads": [enc(x) for x in grads],
        "maxNorm": 1.0,
        "normType": norm_type,
        "totalNorm": fnum(total),
        "clipped": [enc(p.grad) for p in params],
    }


SCHED_STEPS = 30


def warmup_cosine_lr(it, base_lr, warmup, max_steps, min_lr):
    """nanoGPT's get_lr."""
    if it < warmup:
        return base_lr * (it + 1) / (warmup + 1)
    if it > max_steps:
        return min_lr
    ratio = (it - warmup) / (max_steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return min_lr + coeff * (base_lr - min_lr)


def schedule_case(name, kind, options, base_lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    o = options
    if kind == "StepLR":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=o["stepSize"], gamma=o["gamma"])
    elif kind == "CosineAnnealingLR":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o["tMax"], eta_min=o["etaMin"])
    elif kind == "LinearLR":
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=o["startFactor"],
                                                  end_factor=o["endFactor"], total_iters=o["totalIters"])
    elif kind == "warmupCosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda it: warmup_cosine_lr(it, base_lr, o["warmupSteps"], o["maxSteps"], o["minLr"]) / base_lr)
    else:
        raise ValueError(kind)
    lrs = []
    for _ in range(SCHED_STEPS):
        lrs.append(fnum(opt.param_groups[0]["lr"]))
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    return {"name": name, "schedule": kind, "baseLr": base_lr, "options": options, "lrs": lrs}


def optim_data():
    optimizers = [
        optimizer_case("SGD/plain_lr0.1", "SGD", sgd_opts(0.1)),
        optimizer_case("SGD/momentum0.9", "SGD", sgd_opts(0.1, momentum=0.9)),
        optimizer_case("SGD/momentum0.9_nesterov", "SGD", sgd_opts(0.1, momentum=0.9, nesterov=True)),
        optimizer_case("SGD/momentum0.9_dampening0.1_wd0.01", "SGD",
                       sgd_opts(0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        optimizer_case("Adam/default", "Adam", adam_opts()),
        optimizer_case("Adam/lr0.05_wd0.1", "Adam", adam_opts(lr=0.05, weight_decay=0.1)),
        optimizer_case("Adam/amsgrad_lr0.05", "Adam", adam_opts(lr=0.05, amsgrad=True)),
        optimizer_case("AdamW/default", "AdamW", adam_opts(weight_decay=0.01)),
        optimizer_case("AdamW/lr0.05_wd0.1_betas0.8_0.95", "AdamW",
                       adam_opts(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1)),
    ]
    clip = [
        clip_case("clipGradNorm/l2_clipped", 1.0, 2),
        clip_case("clipGradNorm/l2_not_clipped", 0.1, 2),
        clip_case("clipGradNorm/inf_clipped", 1.0, "inf"),
        clip_case("clipGradNorm/inf_not_clipped", 0.1, "inf"),
    ]
    schedules = [
        schedule_case("StepLR/step5_gamma0.5", "StepLR", {"stepSize": 5, "gamma": 0.5}),
        schedule_case("CosineAnnealingLR/tMax20_etaMin0.001", "CosineAnnealingLR",
                      {"tMax": 20, "etaMin": 0.001}),
        schedule_case("LinearLR/0.25_to_1_over8", "LinearLR",
                      {"startFactor": 0.25, "endFactor": 1.0, "totalIters": 8}),
        schedule_case("warmupCosine/warmup5_max25_min0.01", "warmupCosine",
                      {"warmupSteps": 5, "maxSteps": 25, "minLr": 0.01}),
    ]
    return {"optimizers": optimizers, "clipGradNorm": clip, "schedules": schedules}


# ---------------------------------------------------------------------------
# models.json: transformer components and whole TransformerLMs
#
# Reference implementations written from the math with plain torch ops, using TensorLM's
# parameter names (tokEmb, layers.0.attn.wq, ...), so a state dict transfers by name.
# ---------------------------------------------------------------------------

class RefLayerNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-5, affine=True, bias=True):
        super().__init__()
        self.d, self.eps = d, eps
        self.weight = torch.nn.Parameter(torch.ones(d)) if affine else None
        self.bias = torch.nn.Parameter(torch.zeros(d)) if affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, (self.d,), self.weight, self.bias, self.eps)


class RefRMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def ref_norm(kind, d, bias, eps):
    return RefLayerNorm(d, eps=eps, bias=bias) if kind == "layer" else RefRMSNorm(d, eps=eps)


def rope_tables(positions, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    ang = torch.outer(torch.arange(positions).float(), inv)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin, pairing):
    """x [..., T, D]; cos/sin [T, D/2]."""
    if pairing == "half":
        # Hugging Face Llama / GPT-NeoX: rotate_half with cos/sin repeated over both halves.
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        c, s = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
        return x * c + torch.cat([-x2, x1], -1) * s
    # GPT-J / Meta Llama: pairs (2i, 2i+1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def sinusoid_table(positions, d):
    pe = torch.zeros(positions, d)
    position = torch.arange(positions).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class RefMHA(torch.nn.Module):
    def __init__(self, d, h, kv, bias=True, causal=True, rope=None):
        super().__init__()
        self.h, self.kv, self.hd, self.causal = h, kv, d // h, causal
        self.rope = rope  # (cos, sin, pairing) or None
        self.wq = torch.nn.Linear(d, h * self.hd, bias=bias)
        self.wk = torch.nn.Linear(d, kv * self.hd, bias=bias)
        self.wv = torch.nn.Linear(d, kv * self.hd, bias=bias)
        self.wo = torch.nn.Linear(h * self.hd, d, bias=bias)

    def forward(self, x, mask=None, offset=0):
        b, t, d = x.shape
        q = self.wq(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.wk(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.wv(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        if self.rope is not None:
            cos, sin, pairing = self.rope
            q = apply_rope(q, cos[offset:offset + t], sin[offset:offset + t], pairing)
            k = apply_rope(k, cos[offset:offset + t], sin[offset:offset + t], pairing)
        k = k.repeat_interleave(self.h // self.kv, dim=1)
        v = v.repeat_interleave(self.h // self.kv, dim=1)
        s = q @ k.transpose(-2, -1) / math.sqrt(self.hd)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        elif self.causal:
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        y = torch.softmax(s, dim=-1) @ v
        return self.wo(y.transpose(1, 2).reshape(b, t, self.h * self.hd))


class RefFeedForward(torch.nn.Module):
    def __init__(self, d, f, bias=True):
        super().__init__()
        self.w1 = torch.nn.Linear(d, f, bias=bias)
        self.w2 = torch.nn.Linear(f, d, bias=bias)

    def forward(self, x):
        return self.w2(F.gelu(self.w1(x)))


class RefSwiGLU(torch.nn.Module):
    def __init__(self, d, f, bias=False):
        super().__init__()
        self.w1 = torch.nn.Linear(d, f, bias=bias)
        self.w3 = torch.nn.Linear(d, f, bias=bias)
        self.w2 = torch.nn.Linear(f, d, bias=bias)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RefBlock(torch.nn.Module):
    def __init__(self, c, rope=None):
        super().__init__()
        d = c["dModel"]
        eps = c.get("normEps", 1e-6 if c["norm"] == "rms" else 1e-5)
        self.post = c.get("normPlacement", "pre") == "post"
        self.attnNorm = ref_norm(c["norm"], d, c["bias"], eps)
        self.attn = RefMHA(d, c["nHeads"], c["nKvHeads"], c["bias"], rope=rope)
        self.ffnNorm = ref_norm(c["norm"], d, c["bias"], eps)
        self.ffn = RefSwiGLU(d, c["dFF"], c["bias"]) if c["mlp"] == "swiglu" else RefFeedForward(d, c["dFF"], c["bias"])

    def forward(self, x, attend=None):
        # `attend(attn, x)` replaces the attention computation (its parameters stay attn's): the
        # variant scripts (swa.py, linear_attention.py) reuse the whole model around it.
        a = (lambda h: self.attn(h)) if attend is None else (lambda h: attend(self.attn, h))
        if self.post:
            x = self.attnNorm(x + a(x))
            return self.ffnNorm(x + self.ffn(x))
        x = x + a(self.attnNorm(x))
        return x + self.ffn(self.ffnNorm(x))


class RefLearnedPos(torch.nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(n, d))


class RefLM(torch.nn.Module):
    """TransformerLM's reference: same structure, same state-dict names."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["dModel"]
        self.tokEmb = torch.nn.Embedding(c["vocabSize"], d)
        self.posEmb = RefLearnedPos(c["maxSeqLen"], d) if c["pos"] == "learned" else None
        self.pe = sinusoid_table(c["maxSeqLen"], d) if c["pos"] == "sinusoidal" else None
        rope = None
        if c["pos"] == "rope":
            cos, sin = rope_tables(c["maxSeqLen"], d // c["nHeads"], c.get("ropeTheta", 10000.0))
            rope = (cos, sin, c.get("ropePairing", "half"))
        self.layers = torch.nn.ModuleList([RefBlock(c, rope) for _ in range(c["nLayers"])])
        eps = c.get("normEps", 1e-6 if c["norm"] == "rms" else 1e-5)
        self.norm = ref_norm(c["norm"], d, c["bias"], eps) if c.get("normPlacement", "pre") == "pre" else None
        self.head = None if c["tieWeights"] else torch.nn.Linear(d, c["vocabSize"], bias=False)

    def forward(self, ids, targets=None, attend=None):
        t = ids.shape[1]
        x = self.tokEmb(ids)
        if self.posEmb is not None:
            x = x + self.posEmb.weight[:t]
        if self.pe is not None:
            x = x + self.pe[:t]
        for layer in self.layers:
            x = layer(x, attend)
        if self.norm is not None:
            x = self.norm(x)
        w = self.tokEmb.weight if self.head is None else self.head.weight
        logits = x @ w.t()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits, loss


def randomize(module, g, scale=0.6):
    """Random weights with O(1) activations: norms ~1, biases small, matrices ~ scale/sqrt(fan_in)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.split(".")[-1]
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            owner = module.get_submodule(parent) if parent else module
            if isinstance(owner, (RefLayerNorm, RefRMSNorm)) and leaf == "weight":
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif isinstance(owner, (torch.nn.Embedding, RefLearnedPos)):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale / math.sqrt(p.shape[1]) * torch.randn(p.shape, generator=g))


def enc_state(module, keep=None):
    return {n: enc(t) for n, t in module.state_dict().items() if keep is None or n in keep}


def module_case(name, kind, args, mod, inputs, fwd, extra=None):
    """Forward `fwd(mod, *inputs)`, backward a random gradOut; records params, out, grads."""
    g = gen_for(name + "#gradOut")
    params_before = {n: enc(t) for n, t in mod.state_dict().items()}
    leaves = []
    for x in inputs:
        x = x.clone()
        if x.dtype == torch.float32:
            x.requires_grad_(True)
        leaves.append(x)
    out = fwd(mod, *leaves)
    grad_out = randn(g, tuple(out.shape))
    out.backward(grad_out)
    c = {
        "name": name,
        "module": kind,
        "args": args,
        "params": params_before,
        "inputs": [enc(x) for x in inputs],
        "out": enc(out),
        "gradOut": enc(grad_out),
        "grads": {
            "inputs": [enc(x.grad if x.grad is not None else torch.zeros_like(x)) if x.dtype == torch.float32 else None
                       for x in leaves],
            "params": {n: enc(p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in mod.named_parameters()},
        },
    }
    if extra:
        c.update(extra)
    return c


def module_cases():
    cases = []

    # Embedding
    for label, pad in [("plain", None), ("padding2", 2)]:
        n = f"Embedding/{label}"
        g = gen_for(n)
        m = torch.nn.Embedding(7, 4, padding_idx=pad)
        with torch.no_grad():
            m.weight.copy_(torch.randn(7, 4, generator=g))
            if pad is not None:
                m.weight[pad].zero_()
        ids = torch.tensor([[1, 2, 6], [2, 0, 1]])
        cases.append(module_case(n, "Embedding", {"numEmbeddings": 7, "embeddingDim": 4, "paddingIdx": pad},
                                 m, [ids], lambda m, i: m(i)))

    # LayerNorm / RMSNorm
    for label, affine, bias in [("affine", True, True), ("nobias", True, False), ("noaffine", False, False)]:
        n = f"LayerNorm/{label}"
        g = gen_for(n)
        m = RefLayerNorm(6, eps=1e-5, affine=affine, bias=bias)
        randomize(m, g)
        cases.append(module_case(n, "LayerNorm", {"normalizedShape": 6, "eps": 1e-5, "elementwiseAffine": affine, "bias": bias},
                                 m, [randn(g, (2, 3, 6), 2.0) + 0.5], lambda m, x: m(x)))
    for label, eps in [("eps1e-6", 1e-6), ("eps1e-2", 1e-2)]:
        n = f"RMSNorm/{label}"
        g = gen_for(n)
        m = RefRMSNorm(6, eps=eps)
        randomize(m, g)
        cases.append(module_case(n, "RMSNorm", {"normalizedShape": 6, "eps": eps}, m,
                                 [randn(g, (2, 3, 6))], lambda m, x: m(x)))

    # BatchNorm1d: train step (running stats after), then eval on another input
    for label, shape, momentum in [("2d_train", (5, 3), 0.1), ("3d_train", (4, 3, 5), 0.3), ("2d_cumulative", (6, 3), None)]:
        n = f"BatchNorm1d/{label}"
        g = gen_for(n)
        m = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=momentum)
        with torch.no_grad():
            m.weight.copy_(1 + 0.2 * torch.randn(3, generator=g))
            m.bias.copy_(0.2 * torch.randn(3, generator=g))
            m.running_mean.copy_(0.5 * torch.randn(3, generator=g))
            m.running_var.copy_(uniform(g, (3,), 0.5, 2.0))
            m.num_batches_tracked.fill_(2 if momentum is None else 0)
        x = randn(g, shape, 1.5) + 0.3
        x_eval = randn(g, shape)
        rename = {"running_mean": "runningMean", "running_var": "runningVar", "num_batches_tracked": "numBatchesTracked"}
        m.train()
        c = module_case(n, "BatchNorm1d", {"numFeatures": 3, "eps": 1e-5, "momentum": momentum}, m, [x], lambda m, x: m(x))
        c["params"] = {rename.get(k, k): v for k, v in c["params"].items()}
        c["after"] = {rename[k]: enc(v.to(torch.int32) if k == "num_batches_tracked" else v)
                      for k, v in m.state_dict().items() if k in rename}
        c["params"]["numBatchesTracked"] = enc(torch.tensor(2 if momentum is None else 0, dtype=torch.int32))
        m.eval()
        with torch.no_grad():
            c["eval"] = {"input": enc(x_eval), "out": enc(m(x_eval))}
        cases.append(c)

    # GLU
    for label, shape, dim in [("dim-1", (2, 3, 8), -1), ("dim1", (2, 4, 3), 1)]:
        n = f"GLU/{label}"
        g = gen_for(n)
        cases.append(module_case(n, "GLU", {"dim": dim}, torch.nn.GLU(dim), [randn(g, shape)], lambda m, x: m(x)))

    # Feed-forward layers
    for label, cls, bias in [("gelu_bias", RefFeedForward, True), ("gelu_nobias", RefFeedForward, False),
                             ("swiglu_nobias", RefSwiGLU, False), ("swiglu_bias", RefSwiGLU, True)]:
        n = f"FeedForward/{label}"
        g = gen_for(n)
        m = cls(6, 10, bias=bias)
        randomize(m, g, scale=1.0)
        cases.append(module_case(n, "SwiGLU" if cls is RefSwiGLU else "FeedForward", {"dModel": 6, "dFF": 10, "bias": bias},
                                 m, [randn(g, (2, 3, 6))], lambda m, x: m(x)))

    # RoPE on its own: x [B, H, T, D] at an offset
    for label, pairing, theta, offset in [("half_theta1e4_offset3", "half", 10000.0, 3),
                                          ("interleaved_theta1e4_offset3", "interleaved", 10000.0, 3),
                                          ("half_theta500_offset0", "half", 500.0, 0)]:
        n = f"RotaryEmbedding/{label}"
        g = gen_for(n)
        cos, sin = rope_tables(12, 8, theta)
        cases.append(module_case(n, "RotaryEmbedding", {"headDim": 8, "maxSeqLen": 12, "theta": theta, "pairing": pairing, "offset": offset},
                                 torch.nn.Module(), [randn(g, (2, 2, 5, 8))],
                                 lambda m, x, c=cos, s=sin, p=pairing, o=offset: apply_rope(x, c[o:o + 5], s[o:o + 5], p)))

    # Sinusoidal table and its forward
    n = "SinusoidalPositionalEncoding/8x6_offset2"
    g = gen_for(n)
    pe = sinusoid_table(8, 6)
    cases.append(module_case(n, "SinusoidalPositionalEncoding", {"maxSeqLen": 8, "dModel": 6, "offset": 2},
                             torch.nn.Module(), [randn(g, (2, 4, 6))], lambda m, x: x + pe[2:6],
                             extra={"table": enc(pe)}))
    n = "LearnedPositionalEmbedding/8x6_offset1"
    g = gen_for(n)
    m = RefLearnedPos(8, 6)
    randomize(m, g)
    cases.append(module_case(n, "LearnedPositionalEmbedding", {"maxSeqLen": 8, "dModel": 6, "offset": 1},
                             m, [randn(g, (2, 4, 6))], lambda m, x: x + m.weight[1:5]))

    # MultiHeadAttention
    for label, h, kv, bias, causal, rope, mask in [
        ("mha_bias_causal", 2, 2, True, True, None, False),
        ("gqa_nobias_causal", 4, 2, False, True, None, False),
        ("mqa_causal", 4, 1, True, True, None, False),
        ("mha_noncausal", 2, 2, True, False, None, False),
        ("gqa_rope_half", 4, 2, False, True, "half", False),
        ("mha_rope_interleaved", 2, 2, False, True, "interleaved", False),
        ("gqa_bool_mask", 4, 2, True, False, None, True),
    ]:
        n = f"MultiHeadAttention/{label}"
        g = gen_for(n)
        ropet = None
        if rope:
            cos, sin = rope_tables(8, 8 // h, 10000.0)
            ropet = (cos, sin, rope)
        m = RefMHA(8, h, kv, bias=bias, causal=causal, rope=ropet)
        randomize(m, g, scale=1.5)
        x = randn(g, (2, 5, 8))
        extra = {}
        fwd = lambda m, x: m(x)
        if mask:
            mk = torch.rand((5, 5), generator=g) < 0.6
            mk[:, 0] = True
            extra["mask"] = enc(mk)
            fwd = lambda m, x, mk=mk: m(x, mask=mk)
        cases.append(module_case(n, "MultiHeadAttention",
                                 {"dModel": 8, "nHeads": h, "nKvHeads": kv, "bias": bias, "causal": causal,
                                  "rope": rope, "maxSeqLen": 8},
                                 m, [x], fwd, extra=extra))

    # TransformerBlock
    for label, cfg in [
        ("pre_layer_gelu", {"norm": "layer", "mlp": "gelu", "bias": True, "normPlacement": "pre", "nKvHeads": 2, "pos": None}),
        ("post_rms_swiglu_rope", {"norm": "rms", "mlp": "swiglu", "bias": False, "normPlacement": "post", "nKvHeads": 1, "pos": "rope"}),
    ]:
        n = f"TransformerBlock/{label}"
        g = gen_for(n)
        c = {"dModel": 8, "nHeads": 2, "dFF": 12, **cfg}
        rope = None
        if cfg["pos"] == "rope":
            cos, sin = rope_tables(8, 4, 10000.0)
            rope = (cos, sin, "half")
        m = RefBlock(c, rope)
        randomize(m, g)
        args = {k: v for k, v in c.items() if k != "pos"}
        args["rope"] = "half" if rope else None
        args["maxSeqLen"] = 8
        cases.append(module_case(n, "TransformerBlock", args, m, [randn(g, (2, 5, 8))], lambda m, x: m(x)))
    return cases


LM_BASE = {"vocabSize": 9, "dModel": 8, "nLayers": 2, "nHeads": 2, "nKvHeads": 1, "dFF": 8, "maxSeqLen": 8,
           "ropeTheta": 10000.0, "dropout": 0.0}


def lm_base_case(name, overrides):
    """A TransformerLM case of models.json: LM_BASE with `overrides`, batch 2 × 6 tokens."""
    return lm_case(name, {**LM_BASE, **overrides}, 2, 6, ignored=(1, 2))


def lm_cases():
    cases = []
    k = 0
    for norm in ("layer", "rms"):
        for mlp in ("gelu", "swiglu"):
            for pos in ("learned", "sinusoidal", "rope"):
                tie = k % 2 == 0
                bias = (k // 2) % 2 == 0
                cases.append(lm_base_case(f"TransformerLM/{norm}_{mlp}_{pos}", {
                    "norm": norm, "mlp": mlp, "pos": pos, "tieWeights": tie, "bias": bias}))
                k += 1
    cases.append(lm_base_case("TransformerLM/post_layer_gelu_learned_mha", {
        "norm": "layer", "mlp": "gelu", "pos": "learned", "tieWeights": True, "bias": True,
        "normPlacement": "post", "nKvHeads": 2}))
    cases.append(lm_base_case("TransformerLM/rms_swiglu_rope_interleaved_mqa4", {
        "norm": "rms", "mlp": "swiglu", "pos": "rope", "ropePairing": "interleaved", "tieWeights": False,
        "bias": False, "nHeads": 4, "nKvHeads": 1, "normEps": 1e-5}))
    return cases


SAFETENSORS_NAME = "tiny-lm.safetensors"


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format by hand: u64 header length, JSON header, raw little-endian bytes."""
    import struct
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        assert t.dtype == torch.float32
        data = struct.pack(f"<{t.numel()}f", *t.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text.encode()) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def safetensors_case():
    """A small Llama-style model exported as safetensors; the test loads it and compares logits."""
    name = "safetensors/llama_style"
    g = gen_for(name)
    c = {**LM_BASE, "norm": "rms", "mlp": "swiglu", "pos": "rope", "tieWeights": False, "bias": False,
         "nHeads": 2, "nKvHeads": 1, "normEps": 1e-5}
    m = RefLM(c)
    randomize(m, g)
    write_safetensors(os.path.join(OUT_DIR, SAFETENSORS_NAME), m.state_dict(), {"format": "pt"})
    ids = randint(g, (2, 7), 0, c["vocabSize"])
    with torch.no_grad():
        logits, _ = m(ids)
    return {"name": name, "file": SAFETENSORS_NAME, "config": c, "ids": enc(ids), "logits": enc(logits)}


def models_data():
    return {"modules": module_cases(), "models": lm_cases(), "safetensors": safetensors_case()}


def validate_models_file(path):
    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"modules", "models", "safetensors"}
    for c in doc["modules"]:
        w = c["name"]
        assert {"name", "module", "args", "params", "inputs", "out", "gradOut", "grads"} <= set(c), w
        for t in list(c["params"].values()) + c["inputs"] + [c["out"], c["gradOut"]]:
            check_tensor(t, w)
        assert len(c["grads"]["inputs"]) == len(c["inputs"]), w
        for x, gr in zip(c["inputs"], c["grads"]["inputs"]):
            assert (gr is None) == (x["dtype"] != "float32"), w
            if gr is not None:
                check_tensor(gr, w, x["shape"])
        for pn, gr in c["grads"]["params"].items():
            check_tensor(gr, w, c["params"][pn]["shape"])
    for c in doc["models"]:
        w = c["name"]
        assert set(c) == {"name", "config", "params", "ids", "targets", "logits", "loss", "grads"}, w
        for t in list(c["params"].values()) + list(c["grads"].values()) + [c["ids"], c["targets"], c["logits"]]:
            check_tensor(t, w)
        assert set(c["grads"]) <= set(c["params"]), w
    s = doc["safetensors"]
    assert os.path.exists(os.path.join(OUT_DIR, s["file"]))
    check_tensor(s["logits"], s["name"])
    return len(doc["modules"]), len(doc["models"])


# ---------------------------------------------------------------------------

def write(name, obj):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def check_unique(cases):
    names = [c["name"] for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"duplicate case names: {sorted(dup)}")


# ---------------------------------------------------------------------------
# Validation of the written files against SPEC.md
# ---------------------------------------------------------------------------

def check_tensor(t, where, expect_shape=None):
    assert set(t) <= {"shape", "dtype", "data", "view"}, where
    assert t["dtype"] in ("float32", "int32", "bool"), where
    n = 1
    for s in t["shape"]:
        n *= s
    assert len(t["data"]) == n, f"{where}: data length"
    for v in t["data"]:
        assert isinstance(v, (int, float)) and math.isfinite(v), where
    if t["dtype"] == "float32":
        for v in t["data"]:
            # 9 significant digits round-trip float32 exactly
            f32 = torch.tensor(v, dtype=torch.float32).item()
            assert float(f"{f32:.9g}") == v, f"{where}: {v} is not a float32 in 9 digits"
    else:
        assert all(isinstance(v, int) for v in t["data"]), where
        if t["dtype"] == "bool":
            assert all(v in (0, 1) for v in t["data"]), where
    if expect_shape is not None:
        assert t["shape"] == list(expect_shape), f"{where}: shape {t['shape']} != {expect_shape}"


def viewed_shape(t):
    x = torch.zeros(t["shape"])
    return list(apply_views(x, t.get("view")).shape)


def validate_op_file(path):
    with open(path) as f:
        doc = json.load(f)
    cases = doc["cases"]
    for c in cases:
        w = c["name"]
        assert {"name", "op", "inputs", "args", "out"} <= set(c), w
        assert set(c) <= {"name", "op", "inputs", "args", "out", "gradOut", "grads"}, w
        for t in c["inputs"]:
            check_tensor(t, w)
        outs = c["out"] if isinstance(c["out"], list) else [c["out"]]
        for t in outs:
            check_tensor(t, w)
        assert ("gradOut" in c) == ("grads" in c), w
        if "gradOut" in c:
            check_tensor(c["gradOut"], w, outs[0]["shape"])
            assert len(c["grads"]) == len(c["inputs"]), w
            for t, gr in zip(c["inputs"], c["grads"]):
                if gr is None:
                    continue
                assert t["dtype"] == "float32", w
                check_tensor(gr, w, viewed_shape(t))
        for v in c["args"].values():
            if isinstance(v, dict):
                check_tensor(v, w)
    return len(cases)


def validate_optim_file(path):
    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"optimizers", "clipGradNorm", "schedules"}
    for c in doc["optimizers"]:
        w = c["name"]
        assert set(c) == {"name", "optimizer", "options", "params", "grads", "trajectory"}, w
        assert c["optimizer"] in ("SGD", "Adam", "AdamW"), w
        shapes = [p["shape"] for p in c["params"]]
        for p in c["params"]:
            check_tensor(p, w)
        assert len(c["grads"]) == len(c["trajectory"]) == STEPS, w
        for step in c["grads"] + c["trajectory"]:
            assert [t["shape"] for t in step] == shapes, w
            for t in step:
                check_tensor(t, w)
    for c in doc["clipGradNorm"]:
        w = c["name"]
        assert set(c) == {"name", "grads", "maxNorm", "normType", "totalNorm", "clipped"}, w
        assert c["normType"] in (2, "inf"), w
        for t in c["grads"] + c["clipped"]:
            check_tensor(t, w)
    for c in doc["schedules"]:
        w = c["name"]
        assert set(c) == {"name", "schedule", "baseLr", "options", "lrs"}, w
        assert len(c["lrs"]) == SCHED_STEPS, w
    return len(doc["optimizers"]), len(doc["clipGradNorm"]), len(doc["schedules"])



def lm_case(name, config, batch, t, ignored=(0, 3), attend=None, build=None, init=None, objective=None):
    """A whole RefLM case (config, parameters, ids, targets with the one at `ignored` set to −100,
    logits, loss, every gradient): the golden of a model (models.json) or of a variant. `build(m)` swaps the variant's modules into the model
    before the weights are drawn; `init(m, g)` then redraws what the generic draw should not set
    (no grad); `attend(attn, x)` replaces the attention computation; `objective(m, ce)` returns the
    loss to backpropagate and extra fields to record (default: the cross-entropy, nothing)."""
    g = gen_for(name)
    m = RefLM(config)
    if build is not None:
        build(m)
    randomize(m, g)
    if init is not None:
        with torch.no_grad():
            init(m, g)
    ids = randint(g, (batch, t), 0, config["vocabSize"])
    targets = randint(g, (batch, t), 0, config["vocabSize"])
    targets[ignored] = -100
    logits, ce = m(ids, targets, attend)
    loss, extra = objective(m, ce) if objective is not None else (ce, {})
    loss.backward()
    return {
        "name": name,
        "config": config,
        "params": enc_state(m),
        "ids": enc(ids),
        "targets": enc(targets),
        "logits": enc(logits),
        "loss": fnum(loss),
        **extra,
        "grads": {n: enc(p.grad) for n, p in m.named_parameters()},
    }


def attention_variant_case(name, config, batch, t, attend):
    """The golden of an attention variant: a RefLM whose attention is `attend(attn, x)`."""
    return lm_case(name, config, batch, t, attend=attend)


def write_cases(file, cases, what):
    path = os.path.join(OUT_DIR, file)
    with open(path, "w") as f:
        json.dump({"cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(cases)} {what} cases")

def main():
    ops = ops_cases()
    check_unique(ops)
    nn = nn_cases()
    check_unique(nn)
    optim = optim_data()
    for group in optim.values():
        check_unique(group)
    write("ops.json", {"cases": ops})
    write("nn.json", {"cases": nn})
    write("optim.json", optim)
    n_ops = validate_op_file(os.path.join(OUT_DIR, "ops.json"))
    n_nn = validate_op_file(os.path.join(OUT_DIR, "nn.json"))
    n_opt = validate_optim_file(os.path.join(OUT_DIR, "optim.json"))
    print(f"validated: ops {n_ops} cases, nn {n_nn} cases, "
          f"optim {n_opt[0]} optimizers / {n_opt[1]} clipGradNorm / {n_opt[2]} schedules")
    # Last, and from per-case generators only, so the files above are unchanged by it.
    models = models_data()
    check_unique(models["modules"])
    check_unique(models["models"])
    write("models.json", models)
    n_mod = validate_models_file(os.path.join(OUT_DIR, "models.json"))
    print(f"validated: models {n_mod[0]} module cases, {n_mod[1]} TransformerLM cases, {SAFETENSORS_NAME}")


if __name__ == "__main__":
    main()
