"""mhc_torch.py - mhc.h as the reference mHC layer inside a PyTorch model (import mhc_torch; needs
torch). MHCLayerRef runs the layer through mhc.h (python/mhc.py, float64, CPU) in forward and
backward, so a model's tests can swap their own layer for the reference:

    layer = mhc_torch.MHCLayerRef(n, C, preset="dsv4")    # parameters fn, scale, base
    layer_input, out_fn = layer(x)  ->  see forward()
"""
import numpy as np
import torch

import mhc


class MHCLayerFunction(torch.autograd.Function):
    """(x, fn, scale, base, f_out) -> (layer_input, out); gradients from mhc.h's backward."""

    @staticmethod
    def forward(ctx, x, fn, scale, base, f_out, knobs):
        ctx.knobs = knobs
        ctx.save_for_backward(x, fn, scale, base, f_out)
        r = mhc.layer(x.detach(), fn.detach(), scale.detach(), base.detach(), f_out.detach(), **knobs)
        return (torch.from_numpy(r["layer_input"]).to(x.dtype), torch.from_numpy(r["out"]).to(x.dtype))

    @staticmethod
    def backward(ctx, g_li, g_out):
        x, fn, scale, base, f_out = ctx.saved_tensors
        r = mhc.layer(x.detach(), fn.detach(), scale.detach(), base.detach(), f_out.detach(),
                      d_out=g_out.detach(), d_layer_input=g_li.detach(), **ctx.knobs)
        t = lambda k: torch.from_numpy(np.ascontiguousarray(r[k])).to(x.dtype)  # noqa: E731
        return t("d_x"), t("d_fn"), t("d_scale"), t("d_base"), t("d_f_out"), None


class MHCLayerRef(torch.nn.Module):
    """The mHC layer's parameters (fn [2n+n*n, n*C], scale [3], base [2n+n*n]) with mhc.h computing
    forward(x, f_out) -> (layer_input [T,C], out [T,n,C]) in float64 on the CPU."""

    def __init__(self, n, C, preset="dsv4", **knobs):
        super().__init__()
        m = 2 * n + n * n
        self.fn = torch.nn.Parameter(torch.randn(m, n * C, dtype=torch.float64) * 0.05)
        self.scale = torch.nn.Parameter(torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))
        self.base = torch.nn.Parameter(torch.zeros(m, dtype=torch.float64))
        self.knobs = dict(knobs, preset=preset, dtype="float64")

    def forward(self, x, f_out):
        return MHCLayerFunction.apply(x, self.fn, self.scale, self.base, f_out, self.knobs)
