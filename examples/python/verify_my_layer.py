#!/usr/bin/python3
"""Worked example for README "Verifying your implementation": an mHC layer written in PyTorch
(standing in for *your* implementation: a training codebase, a CUDA kernel behind a torch op...)
is checked against mhc.h.

    /usr/bin/python3 examples/python/verify_my_layer.py build/mycase     # writes the case + your outputs
    ./build/mhc verify build/mycase --out build/mycase/ref             # mhc.h computes the reference
    ./build/mhc compare build/mycase/mine build/mycase/ref --rtol 1e-4 --atol 1e-6

With --wrong-orientation the layer uses A = comb (the paper's orientation) under the dsv4 preset,
and compare names the tensors that disagree.

The case runs in float32 (dtype = float32 below), the precision of the implementation under test.
"""
import os
import sys

import numpy as np
import torch

args = [a for a in sys.argv[1:] if not a.startswith("--")]
out = args[0] if args else "build/mycase"
WRONG = "--wrong-orientation" in sys.argv   # A = comb instead of comb^T: a classic slip
os.makedirs(os.path.join(out, "mine"), exist_ok=True)
T, n, C = 16, 4, 64
m = 2 * n + n * n
g = torch.Generator().manual_seed(0)
inp = {
    "x": torch.randn(T, n, C, generator=g),
    "fn": torch.randn(m, n * C, generator=g) * 0.05,
    "scale": torch.tensor([0.5, 0.5, 1.0]),
    "base": torch.randn(m, generator=g),
    "f_out": torch.randn(T, C, generator=g),
    "d_out": torch.randn(T, n, C, generator=g),
    "d_layer_input": torch.randn(T, C, generator=g),
}


def my_mhc_layer(x, fn, scale, base, f_out, iters=20, eps=1e-6):
    """Your implementation: DeepSeek-V4 conventions (softmax-start Sinkhorn, A = comb^T)."""
    xf = x.reshape(T, n * C)
    mix = (xf @ fn.T) * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + 1e-6
    h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * 2.0
    s = torch.softmax((mix[:, 2 * n:] * scale[2] + base[2 * n:]).reshape(T, n, n), -1) + eps
    s = s / (s.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        s = s / (s.sum(-1, keepdim=True) + eps)
        s = s / (s.sum(-2, keepdim=True) + eps)
    a = s if WRONG else s.transpose(-1, -2)
    layer_input = torch.einsum("ti,tic->tc", h_pre, x)
    y = torch.einsum("tij,tjc->tic", a, x) + h_post[:, :, None] * f_out[:, None, :]
    return dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=a, out=y)


leaves = {k: v.clone().requires_grad_(k not in ("d_out", "d_layer_input")) for k, v in inp.items()}
res = my_mhc_layer(leaves["x"], leaves["fn"], leaves["scale"], leaves["base"], leaves["f_out"])
loss = (leaves["d_out"] * res["out"]).sum() + (leaves["d_layer_input"] * res["layer_input"]).sum()
loss.backward()
for k, v in inp.items():                      # the case: inputs as float32 .npy
    np.save(os.path.join(out, k + ".npy"), v.numpy().astype(np.float32))
with open(os.path.join(out, "case.txt"), "w") as f:
    f.write("op = layer\npreset = dsv4\nn = %d\ndtype = float32\n" % n)
for k, v in res.items():                      # your outputs and gradients
    np.save(os.path.join(out, "mine", k + ".npy"), v.detach().numpy().astype(np.float64))
for k in ("x", "fn", "scale", "base", "f_out"):
    np.save(os.path.join(out, "mine", "d_" + k + ".npy"), leaves[k].grad.numpy().astype(np.float64))
print("wrote %s (case) and %s/mine (your outputs)" % (out, out))
