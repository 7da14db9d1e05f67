#!/usr/bin/python3
"""A float32 PyTorch mHC layer (examples/python/verify_my_layer.py's) verified against mhc.h in one
call through python/mhc.py (make python first):

    /usr/bin/python3 examples/python/verify_with_mhc_py.py [--wrong-orientation]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import mhc  # noqa: E402

WRONG = "--wrong-orientation" in sys.argv
T, n, C = 16, 4, 64
m = 2 * n + n * n
g = torch.Generator().manual_seed(0)
x = torch.randn(T, n, C, generator=g).requires_grad_()
fn = (torch.randn(m, n * C, generator=g) * 0.05).requires_grad_()
scale = torch.tensor([0.5, 0.5, 1.0]).requires_grad_()
base = torch.randn(m, generator=g).requires_grad_()
f_out = torch.randn(T, C, generator=g).requires_grad_()
d_out, d_li = torch.randn(T, n, C, generator=g), torch.randn(T, C, generator=g)

# your layer (DeepSeek-V4 conventions: softmax-start Sinkhorn, 20 iterations, A = comb^T)
xf = x.reshape(T, n * C)
mix = (xf @ fn.T) * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + 1e-6
h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * 2.0
s = torch.softmax((mix[:, 2 * n:] * scale[2] + base[2 * n:]).reshape(T, n, n), -1) + 1e-6
s = s / (s.sum(-2, keepdim=True) + 1e-6)
for _ in range(19):
    s = s / (s.sum(-1, keepdim=True) + 1e-6)
    s = s / (s.sum(-2, keepdim=True) + 1e-6)
a = s if WRONG else s.transpose(-1, -2)
layer_input = (h_pre.unsqueeze(-1) * x).sum(1)
out = a @ x + h_post.unsqueeze(-1) * f_out.unsqueeze(1)
((out * d_out).sum() + (layer_input * d_li).sum()).backward()
mine = dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=a, out=out, d_x=x.grad, d_fn=fn.grad,
            d_scale=scale.grad, d_base=base.grad, d_f_out=f_out.grad)

# the three lines that verify it
ref = mhc.layer(x, fn, scale, base, f_out, d_out=d_out, d_layer_input=d_li, preset="dsv4", dtype="float32")
try:
    print(mhc.check(mine, ref, dtype="float32"))
except AssertionError as e:
    print(e)
    sys.exit(1)
