"""mhc_torch.py - mhc.h as the reference mHC layer inside a PyTorch model (needs torch; also reached
as mhc.torch after `import mhc`). MHCLayerRef runs the layer through mhc.h (python/mhc.py, float64
by default, on the CPU) in forward and backward, so a model's tests can swap their own layer for
the reference:

    layer = mhc.torch.MHCLayerRef(n, C, preset="dsv4", norm_weight=True, sinkhorn_iters=10)
    layer_input, out = layer(x, f_out)            # x [T,n,C], f_out [T,C] (None: zeros)
    layer_input, out = layer(x, branch=F)         # f_out = F(layer_input): F's gradients flow too

The parameters are fn, scale, base (and norm_weight [n*C], the RMSNorm weight, with
norm_weight=True), shaped for the preset and knobs by mhc.param_shapes (variant hc: fn [n+2, C],
norm_weight [C]; lite / kromhc: 2n + n! / 2n + sum_k a_k! rows; variant none: no parameters).
Every keyword of mhc.layer (preset, dtype, sinkhorn_iters, orient, projection, variant,
kron_factors, ...) is passed through; an unknown or bad one raises ValueError at construction.
"""
import numpy as np
import torch
from torch.autograd.function import once_differentiable

import mhc

__all__ = ["MHCLayerFunction", "MHCLayerRef"]


class MHCLayerFunction(torch.autograd.Function):
    """apply(x, fn, scale, base, f_out, knobs, norm_weight=None) -> (layer_input, out), gradients
    from mhc.h's backward for every tensor input (f_out and norm_weight may be None; fn, scale,
    base are None for variant none). knobs: mhc.layer's keywords (preset, dtype, ...)."""

    @staticmethod
    def forward(ctx, x, fn, scale, base, f_out, knobs, norm_weight=None):
        ctx.knobs = dict(knobs)
        ctx.save_for_backward(x, fn, scale, base, f_out, norm_weight)
        r = mhc.layer(x, fn, scale, base, f_out, norm_weight=norm_weight, **ctx.knobs)
        t = lambda k: torch.from_numpy(r[k]).to(device=x.device, dtype=x.dtype)  # noqa: E731
        return t("layer_input"), t("out")

    @staticmethod
    @once_differentiable
    def backward(ctx, g_li, g_out):
        x, fn, scale, base, f_out, nw = ctx.saved_tensors
        r = mhc.layer(x, fn, scale, base, f_out, d_out=g_out, d_layer_input=g_li, norm_weight=nw, **ctx.knobs)

        def g(k, like):
            if like is None:
                return None
            return torch.from_numpy(np.ascontiguousarray(r[k])).to(device=like.device, dtype=like.dtype)
        return (g("d_x", x), g("d_fn", fn), g("d_scale", scale), g("d_base", base), g("d_f_out", f_out), None,
                g("d_norm_weight", nw))


class MHCLayerRef(torch.nn.Module):
    """The mHC layer's parameters with mhc.h computing forward in float64 (dtype="float32": in
    float32) on the CPU; the outputs have x's dtype and device.

    MHCLayerRef(n, C, preset="dsv4", norm_weight=False, fn_std=0.05, **knobs): fn ~ N(0, fn_std),
    scale = 0.5, 0.5, 1 (pre, post, res), base = 0, norm_weight = 1 (float64 parameters; copy a
    model's own values in with layer.fn.data.copy_(...) to compare). knobs: every other keyword of
    mhc.layer (dtype, sinkhorn_iters, orient, projection, variant, kron_factors, ...)."""

    def __init__(self, n, C, preset="dsv4", norm_weight=False, fn_std=0.05, **knobs):
        super().__init__()
        self.n, self.C = int(n), int(C)
        self.knobs = dict(knobs, preset=preset)
        self.knobs.setdefault("dtype", "float64")
        shapes = mhc.param_shapes(self.n, self.C, op="layer", **self.knobs)   # ValueError on a bad knob
        f64 = dict(dtype=torch.float64)
        if shapes:
            self.fn = torch.nn.Parameter(torch.randn(*shapes["fn"], **f64) * fn_std)
            sc = torch.ones(*shapes["scale"], **f64)
            sc[:2] = 0.5
            self.scale = torch.nn.Parameter(sc)
            self.base = torch.nn.Parameter(torch.zeros(*shapes["base"], **f64))
        else:
            if norm_weight:
                raise ValueError("norm_weight=True: variant none (the plain residual) has no parameters")
            for k in ("fn", "scale", "base"):
                self.register_parameter(k, None)
        if norm_weight:
            self.norm_weight = torch.nn.Parameter(torch.ones(*shapes["norm_weight"], **f64))
        else:
            self.register_parameter("norm_weight", None)

    def extra_repr(self):
        return "n=%d, C=%d, norm_weight=%s, %s" % (self.n, self.C, self.norm_weight is not None,
                                                   ", ".join("%s=%r" % kv for kv in sorted(self.knobs.items())))

    def forward(self, x, f_out=None, branch=None):
        """(layer_input [T,C], out [T,n,C]) of x [T,n,C] with f_out [T,C] (None: zeros), or with
        f_out = branch(layer_input) when branch (a callable, e.g. a torch module) is given: the
        layer then runs twice through mhc.h (layer_input first, then out with branch's f_out)."""
        p = (self.fn, self.scale, self.base)
        if branch is None:
            return MHCLayerFunction.apply(x, *p, f_out, self.knobs, self.norm_weight)
        if f_out is not None:
            raise ValueError("give f_out or branch, not both")
        li, _ = MHCLayerFunction.apply(x, *p, None, self.knobs, self.norm_weight)
        _, out = MHCLayerFunction.apply(x, *p, branch(li), self.knobs, self.norm_weight)
        return li, out
