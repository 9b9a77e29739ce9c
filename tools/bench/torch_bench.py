"""PyTorch reference figures for `npm run bench` (run by the bench itself, not by hand).

Reads one JSON request on stdin, prints one JSON result on stdout:
  {"threads": 1, "gemm": [[m, n, k], ...], "models": [config, ...], "seconds": 1.0}
Each model config mirrors TensorLM's TransformerLM config (same shapes, same parameter count),
or, when it names an "arch", its RecurrentLM (nn.Embedding -> nn.LSTM / nn.GRU / nn.RNN -> head),
so both libraries train exactly the same network: forward, cross-entropy, backward, AdamW.
Run with Debian's python3-torch: /usr/bin/python3 tools/bench/torch_bench.py < request.json
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timeit(fn, seconds, stat="best"):
    """Seconds per call: the best repetition (gemm, generation), or the median (training steps),
    the same statistic TensorLM's side of the bench uses for each figure."""
    fn()  # warm-up
    fn()
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) > 10000:
            break
    times.sort()
    return times[0] if stat == "best" else times[len(times) // 2]


def gemm_gflops(m, n, k, seconds):
    a = torch.randn(m, k)
    b = torch.randn(k, n)
    c = torch.empty(m, n)
    t = timeit(lambda: torch.mm(a, b, out=c), seconds)
    return 2.0 * m * n * k / t / 1e9


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch 1.13's nn.LayerNorm always has one)."""

    def __init__(self, d, eps=1e-5, bias=True):
        super().__init__()
        self.d, self.eps = d, eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, (self.d,), self.weight, self.bias, self.eps)


def make_norm(c):
    # TensorLM's defaults: eps 1e-5 for LayerNorm, 1e-6 for RMSNorm; LayerNorm has a bias iff c["bias"].
    if c["norm"] == "layer":
        return LayerNorm(c["dModel"], c.get("normEps", 1e-5), c["bias"])
    return RMSNorm(c["dModel"], c.get("normEps", 1e-6))


def rope_cache(t, d, theta):
    inv = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    ang = torch.outer(torch.arange(t).float(), inv)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin, pairing="half"):
    if pairing == "half":
        # TensorLM's default, GPT-NeoX / Hugging Face Llama: pairs (i, i + d/2), "rotate_half".
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    # 'interleaved', GPT-J / Meta's original Llama: pairs (2i, 2i+1).
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


def sinusoid_table(t, d):
    pe = torch.zeros(t, d)
    position = torch.arange(t).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def with_defaults(c):
    """TensorLM's config defaults (src/models/config.ts) for the fields a request may leave out."""
    c = dict(c)
    c.setdefault("nKvHeads", c["nHeads"])
    c.setdefault("dFF", 4 * c["dModel"])
    for k, v in (("norm", "layer"), ("mlp", "gelu"), ("pos", "learned"), ("ropeTheta", 10000.0),
                 ("ropePairing", "half"), ("tieWeights", True), ("bias", True), ("normPlacement", "pre")):
        c.setdefault(k, v)
    return c


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        c = with_defaults(c)
        d, h, kv = c["dModel"], c["nHeads"], c["nKvHeads"]
        self.h, self.kv, self.hd = h, kv, d // h
        self.n1, self.n2 = make_norm(c), make_norm(c)
        self.post = c["normPlacement"] == "post"
        self.pairing = c["ropePairing"]
        self.qkv = nn.Linear(d, (h + 2 * kv) * self.hd, bias=c["bias"])
        self.proj = nn.Linear(d, d, bias=c["bias"])
        self.mlp_kind = c["mlp"]
        if c["mlp"] == "swiglu":
            self.w1 = nn.Linear(d, c["dFF"], bias=c["bias"])
            self.w3 = nn.Linear(d, c["dFF"], bias=c["bias"])
            self.w2 = nn.Linear(c["dFF"], d, bias=c["bias"])
        else:
            self.fc = nn.Linear(d, c["dFF"], bias=c["bias"])
            self.out = nn.Linear(c["dFF"], d, bias=c["bias"])

    def attn(self, x, rope, cache=None):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split([self.h * self.hd, self.kv * self.hd, self.kv * self.hd], dim=-1)
        q = q.view(b, t, self.h, self.hd).transpose(1, 2)
        k = k.view(b, t, self.kv, self.hd).transpose(1, 2)
        v = v.view(b, t, self.kv, self.hd).transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            start = 0 if cache is None or cache.get("k") is None else cache["k"].shape[2]
            q = apply_rope(q, cos[start:start + t], sin[start:start + t], self.pairing)
            k = apply_rope(k, cos[start:start + t], sin[start:start + t], self.pairing)
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        causal = cache is None or t > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal) if hasattr(F, "scaled_dot_product_attention") else self.manual(q, k, v, causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def manual(self, q, k, v, causal):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if causal:
            t, u = s.shape[-2], s.shape[-1]
            s = s.masked_fill(torch.ones(t, u, dtype=torch.bool).tril(u - t).logical_not(), float("-inf"))
        return s.softmax(-1) @ v

    def mlp(self, x):
        if self.mlp_kind == "swiglu":
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        return self.out(F.gelu(self.fc(x)))

    def forward(self, x, rope, cache=None):
        if self.post:
            x = self.n1(x + self.attn(x, rope, cache))
            return self.n2(x + self.mlp(x))
        x = x + self.attn(self.n1(x), rope, cache)
        return x + self.mlp(self.n2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        c = with_defaults(c)
        self.c = c
        self.tok = nn.Embedding(c["vocabSize"], c["dModel"])
        self.pos = nn.Embedding(c["maxSeqLen"], c["dModel"]) if c["pos"] == "learned" else None
        self.register_buffer("pe", sinusoid_table(c["maxSeqLen"], c["dModel"]) if c["pos"] == "sinusoidal" else None, persistent=False)
        self.rope = rope_cache(c["maxSeqLen"], c["dModel"] // c["nHeads"], c["ropeTheta"]) if c["pos"] == "rope" else None
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["nLayers"])])
        # Post-norm blocks end with a norm already; TensorLM has no final norm then.
        self.norm = make_norm(c) if c["normPlacement"] == "pre" else nn.Identity()
        self.head = nn.Linear(c["dModel"], c["vocabSize"], bias=False)
        if c["tieWeights"]:
            self.head.weight = self.tok.weight

    def forward(self, idx, targets=None, caches=None, start=0):
        x = self.tok(idx)
        if self.pos is not None:
            x = x + self.pos(torch.arange(start, start + idx.shape[1]))
        if self.pe is not None:
            x = x + self.pe[start:start + idx.shape[1]]
        for i, blk in enumerate(self.blocks):
            x = blk(x, self.rope, None if caches is None else caches[i])
        logits = self.head(self.norm(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


class CharRNN(nn.Module):
    """TensorLM's RecurrentLM: embedding, stacked nn.LSTM/GRU/RNN (batch_first), dropout, head."""

    def __init__(self, c):
        super().__init__()
        self.tok_emb = nn.Embedding(c["vocabSize"], c["embedDim"])
        kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[c["arch"]]
        extra = {"nonlinearity": c.get("nonlinearity", "tanh")} if c["arch"] == "rnn" else {}
        self.rnn = kind(c["embedDim"], c["hiddenSize"], num_layers=c["nLayers"], batch_first=True, dropout=c.get("dropout", 0.0), **extra)
        self.drop = nn.Dropout(c.get("dropout", 0.0))
        self.tied = c.get("tieWeights", False)
        self.head = None if self.tied else nn.Linear(c["hiddenSize"], c["vocabSize"])

    def forward(self, idx, targets=None, state=None):
        y, state = self.rnn(self.drop(self.tok_emb(idx)), state)
        y = self.drop(y)
        logits = F.linear(y, self.tok_emb.weight) if self.tied else self.head(y)
        if targets is None:
            return logits, state
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make_model(c):
    return CharRNN(c) if "arch" in c else GPT(c)


def train_tokens_per_second(c, batch, seq, seconds):
    torch.manual_seed(0)
    model = make_model(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.randint(0, c["vocabSize"], (batch, seq))
    y = torch.randint(0, c["vocabSize"], (batch, seq))

    def step():
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t = timeit(step, seconds, stat="median")
    return batch * seq / t, sum(p.numel() for p in model.parameters())


@torch.no_grad()
def generate_tokens_per_second(c, tokens, seconds):
    torch.manual_seed(0)
    model = make_model(c).eval()

    def run_recurrent():
        # The carried state is the recurrent model's cache: one token in, one state update.
        state = None
        idx = torch.zeros(1, 1, dtype=torch.long)
        for _ in range(tokens):
            logits, state = model(idx, state=state)
            idx = logits[:, -1].argmax(-1, keepdim=True)

    if "arch" in c:
        return tokens / timeit(run_recurrent, seconds)

    def run():
        caches = [dict() for _ in c_range(c)]
        idx = torch.zeros(1, 1, dtype=torch.long)
        for i in range(tokens):
            logits, _ = model(idx, caches=caches, start=i)
            idx = logits[:, -1].argmax(-1, keepdim=True)

    t = timeit(run, seconds)
    return tokens / t


def c_range(c):
    return range(c["nLayers"])


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(int(req.get("threads", 1)))
    seconds = float(req.get("seconds", 1.0))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "gemm": [], "models": []}
    for m, n, k in req.get("gemm", []):
        out["gemm"].append({"shape": [m, n, k], "gflops": gemm_gflops(m, n, k, seconds)})
    for spec in req.get("models", []):
        c = spec["config"]
        tps, params = train_tokens_per_second(c, spec["batch"], spec["seq"], seconds * 3)
        entry = {"name": spec["name"], "trainTokensPerSecond": tps, "parameters": params}
        if spec.get("generateTokens"):
            entry["generateTokensPerSecond"] = generate_tokens_per_second(c, spec["generateTokens"], seconds)
        out["models"].append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
