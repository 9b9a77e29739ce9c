#!/usr/bin/env python3
"""Golden values of the post-training losses (src/posttrain/losses.ts) from PyTorch.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 tools/golden/posttrain.py          # or: npm run golden

It writes tests/golden/posttrain.json (format: tools/golden/SPEC.md, "posttrain.json"). Every
loss is written here from its paper's equation in plain torch, not through TensorLM's choices
(no fused cross-entropy, no BCE identity for DPO), so the tests compare two derivations:

- masked cross-entropy: sum(mask * -log_softmax(logits).gather(targets)) / sum(mask);
- token/sequence log-probs: mask * log_softmax(logits).gather(targets), summed over T;
- DPO (Rafailov et al. 2023, eq. 7) with cDPO label smoothing (TRL's 'sigmoid' loss):
  -(1-eps) logsigmoid(beta*delta) - eps logsigmoid(-beta*delta), mean over the batch;
- GRPO advantages (Shao et al. 2024, section 4.1.2): (r - mean) / (std + eps) per group, sample
  std (torch.std, Bessel's correction, as TRL), in float64;
- GRPO loss (eq. 3 with the k3 KL of eq. 4): per-token -(min(r A, clip(r) A) - beta KL), mean over
  each sequence's mask tokens (length clamped to 1), mean over sequences.

Gradients are those of the inputs that carry a graph in training: the logits, the policy's
sequence log-probs (DPO), the policy's token log-probs (GRPO). Each case draws from its own
torch.Generator seeded from its name (generate.py's gen_for).
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import OUT_DIR, check_tensor, enc, fnum, gen_for, write  # noqa: E402

FILE = "posttrain.json"


def masked_positions(g, shape, p_keep):
    return torch.rand(shape, generator=g) < p_keep


def mask_tensor(bits, kind):
    """The mask as the test will get it: bool, or float 0/1."""
    return bits.clone() if kind == "bool" else bits.float()


# ---------------------------------------------------------------------------
# SFT and sequence scores
# ---------------------------------------------------------------------------

def lm_inputs(name, b, t, v, scale, p_keep, mask_kind, pad_masked_targets, empty_rows=()):
    g = gen_for(name)
    logits = torch.randn((b, t, v), generator=g) * scale
    targets = torch.randint(0, v, (b, t), generator=g)
    bits = masked_positions(g, (b, t), p_keep)
    bits[0, 0] = False  # at least one masked position per case...
    bits[-1, -1] = True  # ...and one selected
    for r in empty_rows:
        bits[r, :] = False
    if pad_masked_targets:
        # Padding at masked positions: never read (the losses must not reject it).
        targets = torch.where(bits, targets, torch.full_like(targets, -100))
    return logits, targets, bits, mask_tensor(bits, mask_kind)


def token_logp(logits, targets, bits):
    """mask * log p(target): the gather reads a valid index at masked positions, then is zeroed."""
    safe = torch.where(bits, targets, torch.zeros_like(targets))
    lp = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(bits, lp, torch.zeros_like(lp))


def masked_ce_case(name, b, t, v, scale=1.0, p_keep=0.6, mask_kind="bool", pad=False):
    logits, targets, bits, mask = lm_inputs(name, b, t, v, scale, p_keep, mask_kind, pad)
    x = logits.clone().requires_grad_(True)
    # Σ m·(−log p) / Σ m: the SFT loss on the selected (assistant) tokens only.
    loss = -token_logp(x, targets, bits).sum() / bits.sum()
    loss.backward()
    return {"name": name, "logits": enc(logits), "targets": enc(targets.int()), "mask": enc(mask),
            "loss": fnum(loss.item()), "grad": enc(x.grad)}


def logprob_case(name, b, t, v, scale=1.0, p_keep=0.6, mask_kind="bool", pad=False, empty_rows=()):
    logits, targets, bits, mask = lm_inputs(name, b, t, v, scale, p_keep, mask_kind, pad, empty_rows)
    g = gen_for(name + "/gradOut")
    token_grad_out = torch.randn((b, t), generator=g)
    seq_grad_out = torch.randn((b,), generator=g)
    out = {"name": name, "logits": enc(logits), "targets": enc(targets.int()), "mask": enc(mask)}
    for key, reduce, grad_out in (("token", lambda lp: lp, token_grad_out), ("sequence", lambda lp: lp.sum(-1), seq_grad_out)):
        x = logits.clone().requires_grad_(True)
        y = reduce(token_logp(x, targets, bits))
        y.backward(grad_out)
        out[key] = {"out": enc(y), "gradOut": enc(grad_out), "grad": enc(x.grad)}
    return out


# ---------------------------------------------------------------------------
# DPO
# ---------------------------------------------------------------------------

def dpo_case(name, b, beta, label_smoothing, spread=1.0):
    g = gen_for(name)
    # Sequence log-probs of a few dozen tokens: around −30, chosen/rejected apart by ~spread.
    base = -torch.rand((b,), generator=g) * 30 - 5
    pc = base + torch.randn((b,), generator=g) * spread
    pr = base + torch.randn((b,), generator=g) * spread
    rc = pc + torch.randn((b,), generator=g) * spread * 0.5
    rr = pr + torch.randn((b,), generator=g) * spread * 0.5
    pcx, prx = pc.clone().requires_grad_(True), pr.clone().requires_grad_(True)
    # Eq. 7's logit: policy log-ratio minus reference log-ratio (TRL's order of operations).
    delta = (pcx - prx) - (rc - rr)
    eps = label_smoothing
    losses = -(1 - eps) * F.logsigmoid(beta * delta) - eps * F.logsigmoid(-beta * delta)
    loss = losses.mean()
    loss.backward()
    chosen = beta * (pc - rc)
    rejected = beta * (pr - rr)
    return {"name": name, "options": {"beta": beta, "labelSmoothing": label_smoothing},
            "policyChosen": enc(pc), "policyRejected": enc(pr), "referenceChosen": enc(rc), "referenceRejected": enc(rr),
            "loss": fnum(loss.item()), "chosenRewards": enc(chosen), "rejectedRewards": enc(rejected),
            "margins": enc(chosen - rejected), "accuracy": fnum((chosen > rejected).float().mean().item()),
            "grads": {"policyChosen": enc(pcx.grad), "policyRejected": enc(prx.grad)}}


# ---------------------------------------------------------------------------
# GRPO
# ---------------------------------------------------------------------------

def advantages_case(name, rewards, group_size, eps):
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, group_size)
    # torch.std: the sample std (divisor G − 1), TRL's choice.
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + eps)
    return {"name": name, "rewards": [fnum(v) for v in rewards], "groupSize": group_size, "eps": eps,
            "advantages": enc(adv.reshape(-1).float())}


def grpo_case(name, b, t, clip_eps, kl_beta, old_scale, ref_scale, p_keep=0.75, mask_kind="bool", empty_rows=()):
    """old_scale None: no oldLogProbs (the detached current policy); ref_scale None: no reference."""
    g = gen_for(name)
    logp = -torch.rand((b, t), generator=g) * 3 - 0.05
    old = None if old_scale is None else logp + torch.randn((b, t), generator=g) * old_scale
    ref = None if ref_scale is None else logp + torch.randn((b, t), generator=g) * ref_scale
    adv = torch.randn((b,), generator=g)
    bits = masked_positions(g, (b, t), p_keep)
    bits[0, -1] = False
    bits[-1, 0] = True
    for r in empty_rows:
        bits[r, :] = False
    m = bits.float()

    x = logp.clone().requires_grad_(True)
    old_used = x.detach() if old is None else old
    ratio = torch.exp(x - old_used)
    a = adv.unsqueeze(1)
    per_token = -torch.min(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)  # eq. 3
    kl = None
    if ref is not None:
        kl = torch.exp(ref - x) - (ref - x) - 1  # eq. 4 (k3)
        per_token = per_token + kl_beta * kl
    # 1/|o_i| per sequence (clamped to 1 for an empty row), then the mean over the B sequences.
    loss = ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    loss.backward()
    with torch.no_grad():
        clipped = ((ratio < 1 - clip_eps) & (a < 0)) | ((ratio > 1 + clip_eps) & (a > 0))
        clip_fraction = (clipped.float() * m).sum() / m.sum()
        kl_mean = None if kl is None else fnum(((kl * m).sum() / m.sum()).item())
    return {"name": name, "options": {"clipEps": clip_eps, "klBeta": kl_beta},
            "logProbs": enc(logp), "oldLogProbs": None if old is None else enc(old),
            "referenceLogProbs": None if ref is None else enc(ref), "advantages": enc(adv),
            "mask": enc(mask_tensor(bits, mask_kind)), "loss": fnum(loss.item()),
            "clipFraction": fnum(clip_fraction.item()), "kl": kl_mean, "grad": enc(x.grad)}


# ---------------------------------------------------------------------------

def build():
    return {
        "maskedCrossEntropy": [
            masked_ce_case("maskedCrossEntropy/b2_t5_v7_bool", 2, 5, 7),
            masked_ce_case("maskedCrossEntropy/b3_t4_v11_float_padded", 3, 4, 11, mask_kind="float", pad=True),
            masked_ce_case("maskedCrossEntropy/b1_t6_v5_sparse", 1, 6, 5, p_keep=0.3),
            masked_ce_case("maskedCrossEntropy/b2_t3_v9_logits_x30", 2, 3, 9, scale=30.0),
        ],
        "logProbs": [
            logprob_case("logProbs/b3_t5_v7_bool_empty_row", 3, 5, 7, empty_rows=(1,)),
            logprob_case("logProbs/b2_t4_v9_float_padded", 2, 4, 9, mask_kind="float", pad=True),
            logprob_case("logProbs/b2_t3_v6_logits_x30", 2, 3, 6, scale=30.0, p_keep=0.8),
        ],
        "dpo": [
            dpo_case("dpo/b4_beta0.1", 4, 0.1, 0.0),
            dpo_case("dpo/b4_beta0.1_smooth0.1", 4, 0.1, 0.1),
            dpo_case("dpo/b6_beta0.5", 6, 0.5, 0.0, spread=3.0),
            dpo_case("dpo/b5_beta2_smooth0.1_large_margins", 5, 2.0, 0.1, spread=8.0),
            dpo_case("dpo/b1_beta0.05_smooth0.3", 1, 0.05, 0.3),
        ],
        "groupAdvantages": [
            advantages_case("groupAdvantages/binary_g4_one_uniform_group", [1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0], 4, 1e-4),
            advantages_case("groupAdvantages/continuous_g3", [0.3, -1.2, 2.5, 0.7, 0.71, 0.69, 5.0, 1.0, -3.0], 3, 1e-4),
            advantages_case("groupAdvantages/g2_eps1e-6", [0.25, 0.5, -1.0, 1.0], 2, 1e-6),
        ],
        "grpo": [
            grpo_case("grpo/ratio1_kl0.04", 4, 6, 0.2, 0.04, None, 0.3),
            grpo_case("grpo/clipped_no_reference", 4, 6, 0.2, 0.04, 0.5, None),
            grpo_case("grpo/clipped_eps0.1_kl0.1_empty_row", 5, 4, 0.1, 0.1, 0.4, 0.5, empty_rows=(2,)),
            grpo_case("grpo/small_ratios_float_mask", 3, 5, 0.2, 0.04, 0.05, 0.2, mask_kind="float"),
            grpo_case("grpo/clipped_kl_beta0_monitored", 3, 4, 0.3, 0.0, 0.6, 0.4),
        ],
    }


def validate(doc):
    """The written file against tools/golden/SPEC.md ("posttrain.json")."""
    assert set(doc) == {"maskedCrossEntropy", "logProbs", "dpo", "groupAdvantages", "grpo"}
    names = [c["name"] for cases in doc.values() for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    for c in doc["maskedCrossEntropy"]:
        w = c["name"]
        assert set(c) == {"name", "logits", "targets", "mask", "loss", "grad"}, w
        b, t, v = c["logits"]["shape"]
        check_tensor(c["logits"], w)
        check_tensor(c["targets"], w, [b, t])
        check_tensor(c["mask"], w, [b, t])
        check_tensor(c["grad"], w, [b, t, v])
    for c in doc["logProbs"]:
        w = c["name"]
        assert set(c) == {"name", "logits", "targets", "mask", "token", "sequence"}, w
        b, t, v = c["logits"]["shape"]
        for key, shape in (("token", [b, t]), ("sequence", [b])):
            assert set(c[key]) == {"out", "gradOut", "grad"}, w
            check_tensor(c[key]["out"], w, shape)
            check_tensor(c[key]["gradOut"], w, shape)
            check_tensor(c[key]["grad"], w, [b, t, v])
    for c in doc["dpo"]:
        w = c["name"]
        b = c["policyChosen"]["shape"][0]
        for k in ("policyChosen", "policyRejected", "referenceChosen", "referenceRejected", "chosenRewards", "rejectedRewards", "margins"):
            check_tensor(c[k], w, [b])
        for k in ("policyChosen", "policyRejected"):
            check_tensor(c["grads"][k], w, [b])
    for c in doc["groupAdvantages"]:
        check_tensor(c["advantages"], c["name"], [len(c["rewards"])])
    for c in doc["grpo"]:
        w = c["name"]
        b, t = c["logProbs"]["shape"]
        for k in ("logProbs", "oldLogProbs", "referenceLogProbs", "mask", "grad"):
            if c[k] is not None:
                check_tensor(c[k], w, [b, t])
        check_tensor(c["advantages"], w, [b])
        assert (c["kl"] is None) == (c["referenceLogProbs"] is None), w
    return {k: len(v) for k, v in doc.items()}


def main():
    doc = build()
    write(FILE, doc)
    with open(os.path.join(OUT_DIR, FILE)) as f:
        counts = validate(json.load(f))
    print("posttrain.json:", ", ".join(f"{k} {n}" for k, n in counts.items()))


if __name__ == "__main__":
    main()
