#!/usr/bin/python3
"""tests/test_python_torch.py: mhc_torch.MHCLayerRef's gradients against central finite
differences in float64 (torch.autograd.gradcheck). Skipped without torch."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
try:
    import torch
except ImportError:
    print("test_python_torch: skipped (torch not installed)")
    sys.exit(0)
import mhc_torch  # noqa: E402

torch.manual_seed(0)
T, n, C = 3, 4, 5
lay = mhc_torch.MHCLayerRef(n, C)
with torch.no_grad():
    lay.base.normal_()
x = torch.randn(T, n, C, dtype=torch.float64, requires_grad=True)
f = torch.randn(T, C, dtype=torch.float64, requires_grad=True)
fnc = lambda x_, fn, sc, ba, f_: mhc_torch.MHCLayerFunction.apply(x_, fn, sc, ba, f_, lay.knobs)  # noqa: E731
ok = torch.autograd.gradcheck(fnc, (x, lay.fn, lay.scale, lay.base, f), eps=1e-6, atol=1e-7, rtol=1e-6)
print("test_python_torch: gradcheck (FD, float64) of MHCLayerRef:", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
