#!/usr/bin/python3
"""Why a verification case needs power: a float32 PyTorch mHC layer (DeepSeek-V4 conventions) with
one slip, 19 Sinkhorn iterations instead of 20, checked against mhc.h at float32's tolerance
(rtol 1e-4, atol 1e-6) twice (make python first):

    /usr/bin/python3 examples/python/verify_on_power_case.py [--iters K]

1. on inputs drawn the usual way (fn ~ N(0, 0.05), as in verify_with_mhc_py.py): the slip is
   a little over the tolerance, in two gradients;
2. on the inputs of mhc.make_case (tokens built so that every common slip shows): it fails by
   thousands of tolerances in most tensors, while the correct layer passes it (the case
   is fair to float32). With --iters 20 (no slip) both pass. Exit code 0 when the second
   check's verdict is right (fails with a slip, passes without).
"""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import mhc  # noqa: E402

ITERS = int(sys.argv[sys.argv.index("--iters") + 1]) if "--iters" in sys.argv else 19


def my_layer(inp, iters):
    """The layer under test: inputs (NumPy) -> outputs and gradients (NumPy), in torch float32."""
    t = {k: torch.tensor(v, dtype=torch.float32, requires_grad=k in ("x", "fn", "scale", "base", "f_out",
                                                                          "norm_weight")) for k, v in inp.items()}
    x, fn, scale, base, f_out = t["x"], t["fn"], t["scale"], t["base"], t["f_out"]
    T, n, C = x.shape
    w = fn * t["norm_weight"] if "norm_weight" in t else fn
    xf = x.reshape(T, n * C)
    mix = (xf @ w.T) * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + 1e-6
    h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * 2.0
    s = torch.softmax((mix[:, 2 * n:] * scale[2] + base[2 * n:]).reshape(T, n, n), -1) + 1e-6
    s = s / (s.sum(-2, keepdim=True) + 1e-6)
    for _ in range(iters - 1):
        s = s / (s.sum(-1, keepdim=True) + 1e-6)
        s = s / (s.sum(-2, keepdim=True) + 1e-6)
    a = s.transpose(-1, -2)
    layer_input = (h_pre.unsqueeze(-1) * x).sum(1)
    out = a @ x + h_post.unsqueeze(-1) * f_out.unsqueeze(1)
    ((out * t["d_out"]).sum() + (layer_input * t["d_layer_input"]).sum()).backward()
    res = dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=a, out=out)
    res.update({"d_" + k: t[k].grad for k in ("x", "fn", "scale", "base", "f_out", "norm_weight") if k in t})
    return {k: v.detach().double().numpy() for k, v in res.items()}


def verdict(mine, ref):
    """mhc.check's verdict and the worst err/tol of compare's table."""
    r, table = mhc.compare(mine, ref, dtype="float32")
    worst = max(float(ln.split()[4]) for ln in table.splitlines()[1:] if ln and not ln.startswith("compare:"))
    if r:
        bad = [ln.split()[0] for ln in table.splitlines()[1:] if ln and not ln.startswith("compare:")
               and not ln.rstrip().endswith(" ok")]
        return "FAILS (worst err/tol %8.3g): %s" % (worst, ", ".join(bad))
    return "passes (worst err/tol %8.3g)" % worst


# 1. the usual inputs
rng = np.random.default_rng(0)
T, n, C = 16, 4, 64
m = 2 * n + n * n
usual = dict(x=rng.standard_normal((T, n, C)), fn=rng.standard_normal((m, n * C)) * 0.05,
             scale=np.array([0.5, 0.5, 1.0]), base=rng.standard_normal(m), f_out=rng.standard_normal((T, C)),
             d_out=rng.standard_normal((T, n, C)), d_layer_input=rng.standard_normal((T, C)))
usual = {k: v.astype(np.float32).astype(np.float64) for k, v in usual.items()}   # float32 values
ref = mhc.layer(**usual, preset="dsv4")   # float64, as every golden vector's expected
print("sinkhorn_iters = %d, usual inputs:          %s" % (ITERS, verdict(my_layer(usual, ITERS), ref)))

# 2. a case with power
with tempfile.TemporaryDirectory() as d:
    case = mhc.make_case(os.path.join(d, "case"), "dsv4", 4, dtype="float32")
    inp = {f[:-4]: np.load(os.path.join(d, "case", f)) for f in os.listdir(os.path.join(d, "case")) if f.endswith(".npy")}
exp = mhc.layer(**inp, preset="dsv4")
v = verdict(my_layer(inp, ITERS), exp)
print("sinkhorn_iters = %d, mhc.make_case inputs:  %s" % (ITERS, v))
print("(power.txt: 19 vs 20 iterations moves some tensor by %.3g x float32's tolerance)"
      % [s[1] for s in case["slips"] if s[0] == "sinkhorn_iters 20 -> 19"][0])
sys.exit(0 if v.startswith("passes") == (ITERS == 20) else 1)
