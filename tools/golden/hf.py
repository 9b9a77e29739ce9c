#!/usr/bin/env python3
"""PyTorch references for Hugging Face model folders: LlamaForCausalLM and GPT2LMHeadModel.

Hugging Face `transformers` is not needed (nor installed): both forwards are written here in plain
torch from the equations of HF's modeling code (modeling_llama.py, modeling_gpt2.py), logits only,
no cache, float32, and read the parameters under HF's own names. Run from the repository root with
Debian's Python (it has python3-torch):

    /usr/bin/python3 tools/golden/hf.py
        writes tests/golden/hf.json (format: tools/golden/SPEC.md, "hf.json"): a tiny random Llama
        and a tiny random GPT-2, each with its config.json dict, its tensors, token ids and logits.

    /usr/bin/python3 tools/golden/hf.py check <folder> <ids.json>
        loads an exported folder (config.json + model.safetensors, or shards listed by
        model.safetensors.index.json), runs the model its config names on the ids (a JSON list of
        lists of ints, [B, T]) and prints {"logits": [[[...]]]} ([B, T, vocab]) to stdout. A folder
        or config it cannot run exactly is reported on one line to stderr, exit status 1.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# generate.py runs its main() only as a script: importing it reuses its encoding and seeding.
from generate import OUT_DIR, check_tensor, enc, fnum, gen_for, randint, randn, write  # noqa: E402

torch.set_default_dtype(torch.float32)


class Unsupported(Exception):
    """A folder, config or input this reference cannot run exactly (one line to stderr, exit 1)."""


# ---------------------------------------------------------------------------
# safetensors: u64 little-endian header length, JSON header, raw little-endian bytes
# ---------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    """name -> float32 tensor (F32, F16 and BF16 are read; F16/BF16 widen exactly)."""
    assert sys.byteorder == "little", "torch.frombuffer reads native byte order"
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise Unsupported(f"{path}: too short for a safetensors file")
    n = int.from_bytes(blob[:8], "little")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise Unsupported(f"{path}: bad safetensors header ({e})")
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise Unsupported(f"{path}: tensor {name} has dtype {info['dtype']} (F32, F16 or BF16 only)")
        dtype, size = SAFETENSORS_DTYPES[info["dtype"]]
        shape, (start, end) = info["shape"], info["data_offsets"]
        numel = math.prod(shape)
        if end - start != numel * size or end > len(data):
            raise Unsupported(f"{path}: tensor {name}: data_offsets {info['data_offsets']} do not fit shape {shape}")
        if numel == 0:
            t = torch.zeros(shape)
        else:
            t = torch.frombuffer(bytearray(data[start:end]), dtype=dtype).to(torch.float32)
        tensors[name] = t.reshape(shape)
    return tensors


def load_folder(folder):
    """(config dict, name -> float32 tensor) from an HF model folder."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(single):
        return config, read_safetensors(single)
    if not os.path.exists(index):
        raise Unsupported(f"{folder}: neither model.safetensors nor model.safetensors.index.json")
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        for name, t in read_safetensors(os.path.join(folder, shard)).items():
            if weight_map.get(name) != shard:
                raise Unsupported(f"{shard} holds {name}, which the index maps to {weight_map.get(name)}")
            tensors[name] = t
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise Unsupported(f"the index maps {missing[0]} to {weight_map[missing[0]]}, which does not hold it")
    return config, tensors


class Params:
    """The model's tensors by name; checks shapes and remembers which were read."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.used = set()

    def __call__(self, name, shape):
        if name not in self.tensors:
            raise Unsupported(f"missing tensor {name}")
        t = self.tensors[name]
        if list(t.shape) != list(shape):
            raise Unsupported(f"tensor {name} has shape {list(t.shape)}, expected {list(shape)}")
        self.used.add(name)
        return t

    def head(self, embedding, tied, shape):
        """The output projection: the embedding when tied (a stored lm_head.weight must equal it)."""
        if not tied:
            return self("lm_head.weight", shape)
        if "lm_head.weight" in self.tensors and not torch.equal(self("lm_head.weight", shape), embedding):
            raise Unsupported("tie_word_embeddings is true but lm_head.weight differs from the embedding")
        return embedding

    def finish(self, buffers=()):
        """Every tensor must have been read, except HF's non-parameter buffers."""
        left = sorted(n for n in self.tensors if n not in self.used and not n.endswith(tuple(buffers)))
        if left:
            raise Unsupported(f"unexpected tensor {left[0]} ({len(left)} unused)")


def expect_architecture(config, model_type, architecture):
    if config.get("model_type") != model_type:
        raise Unsupported(f"model_type {config.get('model_type')!r}, expected {model_type!r}")
    if (config.get("architectures") or [architecture]) != [architecture]:
        raise Unsupported(f"architectures {config['architectures']}, expected [{architecture!r}]")


def causal_attention(scores, v):
    """softmax over keys j <= i of scores [B, H, T, T], then @ v."""
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v


# ---------------------------------------------------------------------------
# LlamaForCausalLM
# ---------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    x = x.float()
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, positions, theta):
    """HF's rotate_half RoPE: dimension d pairs with d + head_dim/2, both at frequency index d mod head_dim/2."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def llama_shapes(c):
    D, I, V, H = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_attention_heads"]
    KV = c.get("num_key_value_heads") or H
    hd = c.get("head_dim") or D // H
    s = {"model.embed_tokens.weight": [V, D]}
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        s[pre + "input_layernorm.weight"] = [D]
        s[pre + "self_attn.q_proj.weight"] = [H * hd, D]
        s[pre + "self_attn.k_proj.weight"] = [KV * hd, D]
        s[pre + "self_attn.v_proj.weight"] = [KV * hd, D]
        s[pre + "self_attn.o_proj.weight"] = [D, H * hd]
        s[pre + "post_attention_layernorm.weight"] = [D]
        s[pre + "mlp.gate_proj.weight"] = [I, D]
        s[pre + "mlp.up_proj.weight"] = [I, D]
        s[pre + "mlp.down_proj.weight"] = [D, I]
    s["model.norm.weight"] = [D]
    if not c.get("tie_word_embeddings", False):
        s["lm_head.weight"] = [V, D]
    return s


def llama_forward(c, tensors, ids):
    expect_architecture(c, "llama", "LlamaForCausalLM")
    if c.get("hidden_act", "silu") != "silu":
        raise Unsupported(f"hidden_act {c['hidden_act']!r} (silu only)")
    if c.get("rope_scaling"):
        raise Unsupported(f"rope_scaling {c['rope_scaling']} (plain RoPE only)")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise Unsupported("attention_bias / mlp_bias (bias-free projections only)")
    D, I, V, H = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_attention_heads"]
    KV = c.get("num_key_value_heads") or H
    hd = c.get("head_dim") or D // H
    if H % KV:
        raise Unsupported(f"num_attention_heads {H} is not a multiple of num_key_value_heads {KV}")
    eps, theta = c.get("rms_norm_eps", 1e-6), c.get("rope_theta", 10000.0)
    p = Params(tensors)
    B, T = ids.shape
    pos = torch.arange(T)
    embedding = p("model.embed_tokens.weight", [V, D])
    h = embedding[ids]
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p(pre + "input_layernorm.weight", [D]), eps)
        q = F.linear(x, p(pre + "self_attn.q_proj.weight", [H * hd, D])).view(B, T, H, hd).transpose(1, 2)
        k = F.linear(x, p(pre + "self_attn.k_proj.weight", [KV * hd, D])).view(B, T, KV, hd).transpose(1, 2)
        v = F.linear(x, p(pre + "self_attn.v_proj.weight", [KV * hd, D])).view(B, T, KV, hd).transpose(1, 2)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        # grouped-query attention (HF's repeat_kv): query head j reads key/value head j // (H / KV)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        a = causal_attention((q @ k.transpose(-1, -2)) * hd ** -0.5, v)
        h = h + F.linear(a.transpose(1, 2).reshape(B, T, H * hd), p(pre + "self_attn.o_proj.weight", [D, H * hd]))
        x = rms_norm(h, p(pre + "post_attention_layernorm.weight", [D]), eps)
        gate = F.silu(F.linear(x, p(pre + "mlp.gate_proj.weight", [I, D])))
        up = F.linear(x, p(pre + "mlp.up_proj.weight", [I, D]))
        h = h + F.linear(gate * up, p(pre + "mlp.down_proj.weight", [D, I]))
    h = rms_norm(h, p("model.norm.weight", [D]), eps)
    head = p.head(embedding, c.get("tie_word_embeddings", False), [V, D])
    p.finish(buffers=["rotary_emb.inv_freq"])
    return F.linear(h, head)


# ---------------------------------------------------------------------------
# GPT2LMHeadModel
# ---------------------------------------------------------------------------

def gelu_new(x):
    """HF's NewGELUActivation: the tanh approximation."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


GPT2_ACTIVATIONS = {
    "gelu": F.gelu,  # exact erf GELU
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def gpt2_shapes(c):
    D, V = c["n_embd"], c["vocab_size"]
    I = c.get("n_inner") or 4 * D
    s = {"transformer.wte.weight": [V, D], "transformer.wpe.weight": [c["n_positions"], D]}
    for i in range(c["n_layer"]):
        pre = f"transformer.h.{i}."
        for name, shape in [("ln_1", [D]), ("attn.c_attn", [D, 3 * D]), ("attn.c_proj", [D, D]),
                            ("ln_2", [D]), ("mlp.c_fc", [D, I]), ("mlp.c_proj", [I, D])]:
            s[pre + name + ".weight"] = shape
            s[pre + name + ".bias"] = [shape[-1]]
    s["transformer.ln_f.weight"] = [D]
    s["transformer.ln_f.bias"] = [D]
    if not c.get("tie_word_embeddings", True):
        s["lm_head.weight"] = [V, D]
    return s


def gpt2_forward(c, tensors, ids):
    expect_architecture(c, "gpt2", "GPT2LMHeadModel")
    act = GPT2_ACTIVATIONS.get(c.get("activation_function", "gelu_new"))
    if act is None:
        raise Unsupported(f"activation_function {c['activation_function']!r} ({', '.join(GPT2_ACTIVATIONS)})")
    if c.get("add_cross_attention"):
        raise Unsupported("add_cross_attention")
    D, V, H, P = c["n_embd"], c["vocab_size"], c["n_head"], c["n_positions"]
    I = c.get("n_inner") or 4 * D
    hd = D // H
    eps = c.get("layer_norm_epsilon", 1e-5)
    B, T = ids.shape
    if T > P:
        raise Unsupported(f"{T} tokens, n_positions is {P}")
    if "transformer.wte.weight" not in tensors and "wte.weight" in tensors:  # saved from GPT2Model
        tensors = {(n if n.startswith("lm_head.") else "transformer." + n): t for n, t in tensors.items()}
    p = Params(tensors)

    def conv1d(x, name, n_in, n_out):  # HF's Conv1D: weight stored [in, out]
        return x @ p(name + ".weight", [n_in, n_out]) + p(name + ".bias", [n_out])

    def layer_norm(x, name):
        return F.layer_norm(x, (D,), p(name + ".weight", [D]), p(name + ".bias", [D]), eps)

    def heads(x):
        return x.view(B, T, H, hd).transpose(1, 2)

    embedding = p("transformer.wte.weight", [V, D])
    h = embedding[ids] + p("transformer.wpe.weight", [P, D])[torch.arange(T)]
    for i in range(c["n_layer"]):
        pre = f"transformer.h.{i}."
        q, k, v = conv1d(layer_norm(h, pre + "ln_1"), pre + "attn.c_attn", D, 3 * D).split(D, dim=2)
        scores = heads(q) @ heads(k).transpose(-1, -2)
        if c.get("scale_attn_weights", True):
            scores = scores / math.sqrt(hd)
        if c.get("scale_attn_by_inverse_layer_idx", False):
            scores = scores / float(i + 1)
        a = causal_attention(scores, heads(v)).transpose(1, 2).reshape(B, T, D)
        h = h + conv1d(a, pre + "attn.c_proj", D, D)
        x = layer_norm(h, pre + "ln_2")
        h = h + conv1d(act(conv1d(x, pre + "mlp.c_fc", D, I)), pre + "mlp.c_proj", I, D)
    h = layer_norm(h, "transformer.ln_f")
    head = p.head(embedding, c.get("tie_word_embeddings", True), [V, D])
    p.finish(buffers=[".attn.bias", ".attn.masked_bias"])
    return h @ head.t()


MODELS = {"llama": llama_forward, "gpt2": gpt2_forward}


def forward(config, tensors, ids):
    """logits [B, T, vocab] for int64 ids [B, T]."""
    fn = MODELS.get(config.get("model_type"))
    if fn is None:
        raise Unsupported(f"model_type {config.get('model_type')!r} ({', '.join(MODELS)} only)")
    if ids.dim() != 2 or ids.numel() == 0:
        raise Unsupported(f"ids must be a non-empty [B, T] list of lists, got shape {list(ids.shape)}")
    if int(ids.min()) < 0 or int(ids.max()) >= config["vocab_size"]:
        raise Unsupported(f"token ids must lie in [0, {config['vocab_size']})")
    with torch.no_grad():
        return fn(config, tensors, ids)


# ---------------------------------------------------------------------------
# Golden file
# ---------------------------------------------------------------------------

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 40, "hidden_size": 16,
    "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "hidden_act": "silu",
}
GPT2_CONFIG = {
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 40, "n_positions": 32,
    "n_embd": 16, "n_layer": 2, "n_head": 4, "n_inner": 48, "activation_function": "gelu",
    "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
}
CASES = [("llama", LLAMA_CONFIG, llama_shapes), ("gpt2", GPT2_CONFIG, gpt2_shapes)]
IDS_SHAPE = (2, 10)
# Weights are rounded to multiples of 1/GRID: exact float32 values with short decimals, which keeps
# hf.json small (9 significant digits per random float would make it ~40% larger).
GRID = 64


def random_tensor(name, shape):
    """Matrices 0.3·N, norm gains 1 + 0.1·N, biases 0.1·N; seeded by the tensor's name."""
    g = gen_for("hf/" + name)
    if len(shape) > 1:
        t = randn(g, shape, 0.3)
    elif name.endswith(".bias"):
        t = randn(g, shape, 0.1)
    else:
        t = 1.0 + randn(g, shape, 0.1)
    return torch.round(t * GRID) / GRID


def golden_case(name, config, shapes):
    tensors = {n: random_tensor(f"{name}/{n}", s) for n, s in shapes(config).items()}
    ids = randint(gen_for(f"hf/{name}#ids"), IDS_SHAPE, 0, config["vocab_size"])
    logits = forward(config, tensors, ids)
    return {"name": name, "config": config, "tensors": {n: enc(t) for n, t in tensors.items()},
            "ids": enc(ids), "logits": enc(logits)}


def dec(t):
    dtype = torch.float32 if t["dtype"] == "float32" else torch.int64
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def validate(path):
    """Format checks, then every case's logits recomputed from the file's own values."""
    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"cases"} and [c["name"] for c in doc["cases"]] == [n for n, _, _ in CASES]
    for c, (name, config, shapes) in zip(doc["cases"], CASES):
        assert set(c) == {"name", "config", "tensors", "ids", "logits"}, name
        assert c["config"] == config, name
        assert list(c["tensors"]) == list(shapes(config)), name
        for n, s in shapes(config).items():
            check_tensor(c["tensors"][n], f"{name}/{n}", s)
            assert c["tensors"][n]["dtype"] == "float32", name
        check_tensor(c["ids"], name, IDS_SHAPE)
        assert c["ids"]["dtype"] == "int32", name
        check_tensor(c["logits"], name, list(IDS_SHAPE) + [config["vocab_size"]])
        logits = forward(c["config"], {n: dec(t) for n, t in c["tensors"].items()}, dec(c["ids"]))
        assert torch.equal(logits, dec(c["logits"])), f"{name}: logits do not reproduce"
    return len(doc["cases"])


def main():
    write("hf.json", {"cases": [golden_case(*case) for case in CASES]})
    n = validate(os.path.join(OUT_DIR, "hf.json"))
    print(f"validated: hf {n} cases")


def check(folder, ids_path):
    try:
        with open(ids_path) as f:
            ids = json.load(f)
        if not (isinstance(ids, list) and ids and all(isinstance(r, list) and r for r in ids)
                and len({len(r) for r in ids}) == 1 and all(type(v) is int for r in ids for v in r)):
            raise Unsupported(f"{ids_path}: expected a JSON list of equally long, non-empty lists of ints")
        config, tensors = load_folder(folder)
        logits = forward(config, tensors, torch.tensor(ids, dtype=torch.int64))
    except (Unsupported, OSError, ValueError, KeyError) as e:
        msg = str(e).replace("\n", " ")
        sys.exit(f"hf.py: {type(e).__name__ + ': ' if not isinstance(e, Unsupported) else ''}{msg}")
    out = [[[fnum(v) for v in row] for row in seq] for seq in logits.tolist()]
    json.dump({"logits": out}, sys.stdout, separators=(",", ":"), allow_nan=False)
    sys.stdout.write("\n")


def write_random_folder(folder, config_path, dtype, shards):
    """A random checkpoint in a Hugging Face layout (e.g. TinyLlama's config.json): config.json, the
    weights in `dtype` over `shards` safetensors files with their index, a vocabulary-only
    tokenizer.json. Matrices 0.02·N, norm gains 1 (TinyLlama's init), seeded by tensor name.
    (Tensor.numpy() needs python3-numpy, which Debian's python3-torch depends on.)"""
    with open(config_path) as f:
        config = json.load(f)
    shapes = {"llama": llama_shapes, "gpt2": gpt2_shapes}[config["model_type"]](config)
    torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    st_dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[dtype]
    os.makedirs(folder, exist_ok=False)
    names = list(shapes)
    per = (len(names) + shards - 1) // shards
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
        for name in names[k * per:(k + 1) * per]:
            shape = shapes[name]
            g = gen_for("hf-random/" + name)
            t = torch.ones(shape) if len(shape) == 1 else torch.randn(shape, generator=g) * 0.02
            t = t.to(torch_dtype).contiguous()
            raw = (t.view(torch.int16) if dtype != "f32" else t).numpy().tobytes()
            header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
            weight_map[name] = file
        text = json.dumps(header, separators=(",", ":"))
        text += " " * ((8 - len(text.encode()) % 8) % 8)
        with open(os.path.join(folder, file), "wb") as f:
            f.write(len(text.encode()).to_bytes(8, "little"))
            f.write(text.encode())
            for b in blobs:
                f.write(b)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    chars = [chr(c) for c in range(0x21, 0x7f)]
    tokenizer = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None, "post_processor": None,
                 "decoder": {"type": "Fuse"}, "model": {"type": "BPE", "unk_token": None, "merges": [],
                                                          "vocab": {ch: i for i, ch in enumerate(chars)}}}
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    print(f"wrote {folder}: {len(names)} tensors in {shards} {st_dtype} shards")


if __name__ == "__main__":
    if len(sys.argv) == 1:
        main()
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "random":
        write_random_folder(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit("usage: hf.py                          (write tests/golden/hf.json)\n"
                 "       hf.py check <folder> <ids.json>  (print the folder's logits as JSON)\n"
                 "       hf.py random <folder> <config.json> f32|f16|bf16 <shards>  (a random checkpoint in that layout)")
