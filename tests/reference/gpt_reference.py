#!/usr/bin/python3
"""PyTorch reference of the GPT in gpt/gpt.h, in float64, checked as llm.c checks GPT-2.

Usage: /usr/bin/python3 tests/reference/gpt_reference.py DIR [DIR ...]

Each DIR was written by `build/mhc gpt-export DIR ...` and holds config.txt, params/<name>.npy
(the C model's initial weights), tokens.npy and targets.npy. This script rebuilds the same model
from the spec (docs/MHC_SPEC.md) and gpt/gpt.h's description, loads those weights, and writes
DIR/expected/: logits.npy, loss.npy, d_<param>.npy (every parameter gradient at the initial
weights) and losses10.npy (the losses of 10 AdamW steps on the same batch, with
torch.optim.AdamW and torch.nn.utils.clip_grad_norm_). `make test` compares the C model with these
files without Python (tests/test_gpt.c).
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vectors import PRESETS, mixing_logits, project  # noqa: E402  (the spec's mHC layer)
import make_projection_vectors as mpv  # noqa: E402  (the KromHC and orthostochastic transcriptions)

NORM_EPS = 1e-5  # GPT_NORM_EPS in gpt/gpt.h
ADAM = dict(betas=(0.9, 0.95), eps=1e-8)  # mhc_adamw_config defaults


def read_config(path):
    cfg = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.split("=", 1)
                cfg[k.strip()] = v.strip()
    return cfg


def rmsnorm(x, w, eps=NORM_EPS):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def attention(qkv, B, T, H):
    C = qkv.shape[-1] // 3
    hs = C // H
    q, k, v = qkv.view(B, T, 3 * C).split(C, dim=-1)
    q = q.view(B, T, H, hs).transpose(1, 2)
    k = k.view(B, T, H, hs).transpose(1, 2)
    v = v.view(B, T, H, hs).transpose(1, 2)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return (att @ v).transpose(1, 2).reshape(B * T, C)


def hc_unconstrained(x, theta, scale, base, n, norm_eps):
    """Hyper-Connections as the mHC paper restates them (spec Sec. 6): per-stream RMSNorm over C,
    theta [n+2, C] = [theta_pre; theta_post; theta_res (n rows)], base = [b_pre | b_post | b_res]:
    H_pre[i] = a_pre tanh(theta_pre . xn_i) + b_pre[i], H_post likewise,
    A[i][j] = a_res tanh(theta_res[i] . xn_j) + b_res[i][j]."""
    xn = x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + norm_eps)      # [T, n, C]
    dots = torch.einsum("tic,kc->tik", xn, theta)                              # [T, n, n+2]
    h_pre = scale[0] * torch.tanh(dots[:, :, 0]) + base[:n]
    h_post = scale[1] * torch.tanh(dots[:, :, 1]) + base[n:2 * n]
    a = scale[2] * torch.tanh(dots[:, :, 2:].transpose(1, 2)) + base[2 * n:].reshape(n, n)
    return h_pre, h_post, a


def forward(P, cfg, tokens, targets):
    B, T = tokens.shape
    C, L, H, n = int(cfg["dim"]), int(cfg["layers"]), int(cfg["heads"]), int(cfg["n"])
    residual = cfg["residual"]
    hcfg = PRESETS[cfg["preset"]] if cfg["preset"] in PRESETS else mpv.PRESETS[cfg["preset"]]
    tok = tokens.reshape(-1)
    pos = torch.arange(T).repeat(B)
    x = P["wte"][tok] + P["wpe"][pos]
    if residual != "none":
        x = x[:, None, :].expand(B * T, n, C)
    for s in range(2 * L):
        kind = "attn" if s % 2 == 0 else "mlp"
        pre = "l%d.%s" % (s // 2, kind)

        def inner(h):
            a = h @ P[pre + ".w1"].T + P[pre + ".b1"]
            a = attention(a, B, T, H) if kind == "attn" else torch.nn.functional.gelu(a, approximate="tanh")
            return a @ P[pre + ".w2"].T + P[pre + ".b2"]

        if residual == "none":
            x = x + inner(rmsnorm(x, P[pre + ".norm"]))
            continue
        fn, scale, base = P[pre + ".hc.fn"], P[pre + ".hc.scale"], P[pre + ".hc.base"]
        if residual == "hc":
            h_pre, h_post, a = hc_unconstrained(x, fn, scale, base, n, hcfg["norm_eps"])
        else:
            mix = mixing_logits(x, fn, None, hcfg["norm_eps"])
            h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + hcfg["pre_eps"]
            h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * hcfg["post_mult"]
            z = mix[:, 2 * n:] * scale[2] + base[2 * n:]
            if residual == "kromhc":   # the peer's H of the default factors, mixed as H^T (2x2 factors: = H)
                factors = mpv.default_factors(n)
                a = mpv.kromhc_build_hres(z, torch.zeros(z.shape[-1]), torch.tensor(1.0), factors)
                a = a.transpose(-1, -2) if all(f == 2 for f in factors) else a
            elif residual == "ortho":   # the peer's orthostochastic projection, mixed as H^T (orient comb_t)
                a = mpv.ortho_tokens(z.reshape(-1, n, n), hcfg["ns_iters"]).transpose(-1, -2)
            else:
                comb = project(z, n, hcfg)
                a = comb if (hcfg["projection"] == "perm" or hcfg["orient"] == "h") else comb.transpose(-1, -2)
        li = torch.einsum("ti,tic->tc", h_pre, x)
        f = inner(rmsnorm(li, P[pre + ".norm"]))
        x = torch.einsum("tij,tjc->tic", a, x) + h_post[:, :, None] * f[:, None, :]
    if residual != "none":
        mix = mixing_logits(x, P["head.hc.fn"], None, hcfg["norm_eps"])
        h = torch.sigmoid(mix * P["head.hc.scale"][0] + P["head.hc.base"]) + hcfg["pre_eps"]
        x = torch.einsum("ti,tic->tc", h, x)
    logits = rmsnorm(x, P["final_norm"]) @ P["lm_head"].T
    loss = torch.nn.functional.cross_entropy(logits, targets.reshape(-1))
    return logits, loss


def run(d):
    cfg = read_config(os.path.join(d, "config.txt"))
    names = cfg["params"].split()
    decay = [int(v) for v in cfg["decay"].split()]
    P = {nm: torch.tensor(np.load(os.path.join(d, "params", nm + ".npy")), dtype=torch.float64, requires_grad=True)
         for nm in names}
    tokens = torch.tensor(np.load(os.path.join(d, "tokens.npy")), dtype=torch.int64)
    targets = torch.tensor(np.load(os.path.join(d, "targets.npy")), dtype=torch.int64)
    out = os.path.join(d, "expected")
    os.makedirs(out, exist_ok=True)
    logits, loss = forward(P, cfg, tokens, targets)
    loss.backward()
    np.save(os.path.join(out, "logits.npy"), logits.detach().numpy())
    np.save(os.path.join(out, "loss.npy"), np.array([loss.item()]))
    for nm in names:
        np.save(os.path.join(out, "d_" + nm + ".npy"), P[nm].grad.numpy())
    # 10 AdamW steps on the same batch: constant lr, decay groups, clipping, as mhc_trainer_step
    for p in P.values():
        p.grad = None
    groups = [dict(params=[P[nm] for nm, dk in zip(names, decay) if dk], weight_decay=float(cfg["weight_decay"])),
              dict(params=[P[nm] for nm, dk in zip(names, decay) if not dk], weight_decay=0.0)]
    opt = torch.optim.AdamW(groups, lr=float(cfg["lr"]), **ADAM)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        _, loss = forward(P, cfg, tokens, targets)
        loss.backward()
        losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(list(P.values()), float(cfg["grad_clip"]))
        opt.step()
    np.save(os.path.join(out, "losses10.npy"), np.array(losses))
    print("%s: loss %.6f, after 10 AdamW steps %.6f" % (d, losses[0], losses[-1]))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    for d in sys.argv[1:]:
        run(d)
