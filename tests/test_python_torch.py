#!/usr/bin/python3
"""tests/test_python_torch.py: mhc.torch (python/mhc_torch.py). Always (NumPy only): `import mhc`
does not import torch, and mhc.torch without torch raises ImportError naming torch. With torch:
MHCLayerRef's gradients (without and with norm_weight, other presets and variants, knobs, the
branch= form) against central finite differences in float64 (torch.autograd.gradcheck, and the
largest |analytic - FD| Jacobian entry printed), the knobs reaching mhc.h, and the two-process
DDP example (examples/python/ddp_reference_layer.py). Skipped without torch."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYDIR = os.path.join(ROOT, "python")
sys.path.insert(0, PYDIR)
FAILS = []


def check(ok, what):
    print("test_python_torch: %s: %s" % (what, "ok" if ok else "FAILED"))
    if not ok:
        FAILS.append(what)


def sub(code):
    r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n" % PYDIR + code],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


# ---- import mhc without torch -------------------------------------------------------------
rc, txt = sub("import mhc\nprint('torch' in sys.modules)")
check(rc == 0 and txt == "False", "import mhc does not import torch ('torch' in sys.modules: %s)" % txt[-200:])
rc, txt = sub("sys.modules['torch'] = None   # import torch now raises ImportError\nimport mhc\n"
              "try:\n    mhc.torch\nexcept ImportError as e:\n    print('ImportError:', e)\n")
check(rc == 0 and txt.startswith("ImportError: mhc.torch needs PyTorch"), "mhc.torch without torch: %s" % txt[:47])
try:
    import torch
except ImportError:
    print("test_python_torch: skipped (torch not installed)")
    sys.exit(1 if FAILS else 0)
import mhc  # noqa: E402
import mhc_torch  # noqa: E402

check(mhc.torch is mhc_torch and mhc.torch.MHCLayerRef is mhc_torch.MHCLayerRef, "mhc.torch is mhc_torch")


def jac_err(f, inputs, eps=1e-6):
    """max |analytic Jacobian - central FD| over every input and output entry, and max |J|."""
    outs = f(*inputs)
    flat = torch.cat([o.reshape(-1) for o in outs])
    rows = []
    for i in range(flat.numel()):   # analytic: one backward per output entry
        g = torch.autograd.grad(flat[i], inputs, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(a)).reshape(-1) for gi, a in zip(g, inputs)]))
    ja = torch.stack(rows)
    cols = []
    with torch.no_grad():
        for a in inputs:
            for j in range(a.numel()):
                v = a.view(-1)
                old = v[j].item()
                v[j] = old + eps
                p = torch.cat([o.reshape(-1) for o in f(*inputs)])
                v[j] = old - eps
                m = torch.cat([o.reshape(-1) for o in f(*inputs)])
                v[j] = old
                cols.append((p - m) / (2 * eps))
    jn = torch.stack(cols, 1)
    return (ja - jn).abs().max().item(), ja.abs().max().item()


def grad_case(name, f, inputs):
    ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, raise_exception=False)
    err, big = jac_err(f, inputs)
    n_in = sum(a.numel() for a in inputs)
    check(ok and err < 1e-7, "gradcheck %s: %d inputs, max |analytic - FD| = %.2e (max |J| %.2f)" % (name, n_in, err, big))


torch.manual_seed(0)
T, n, C = 3, 4, 5
x = torch.randn(T, n, C, dtype=torch.float64, requires_grad=True)
fo = torch.randn(T, C, dtype=torch.float64, requires_grad=True)


def layer_case(name, norm_weight, **kw):
    lay = mhc.torch.MHCLayerRef(n, C, norm_weight=norm_weight, **kw)
    with torch.no_grad():
        lay.base.normal_()
        if norm_weight:
            lay.norm_weight.uniform_(0.5, 1.5)
    ps = [p for p in (lay.fn, lay.scale, lay.base)]
    if norm_weight:
        f = lambda x_, fn, sc, ba, f_, nw: mhc_torch.MHCLayerFunction.apply(x_, fn, sc, ba, f_, lay.knobs, nw)  # noqa: E731
        grad_case(name, f, (x, *ps, fo, lay.norm_weight))
    else:
        f = lambda x_, fn, sc, ba, f_: mhc_torch.MHCLayerFunction.apply(x_, fn, sc, ba, f_, lay.knobs)  # noqa: E731
        grad_case(name, f, (x, *ps, fo))
    return lay


layer_case("dsv4", False)
lay = layer_case("dsv4 + norm_weight", True)
check(tuple(lay.norm_weight.shape) == (n * C,), "norm_weight is [n*C] = %s" % (list(lay.norm_weight.shape),))
hc = layer_case("variant hc + norm_weight", True, variant="hc")
check(tuple(hc.fn.shape) == (n + 2, C) and tuple(hc.norm_weight.shape) == (C,),
      "variant hc: fn %s, norm_weight %s" % (list(hc.fn.shape), list(hc.norm_weight.shape)))
kr = layer_case("kromhc + norm_weight", True, preset="kromhc")
check(tuple(kr.fn.shape) == tuple(mhc.param_shapes(n, C, preset="kromhc")["fn"]) and kr.fn.shape[0] != 2 * n + n * n,
      "kromhc: fn %s (2n + sum_k a_k! rows)" % (list(kr.fn.shape),))
layer_case("paper, sinkhorn_iters=7, orient=h", True, preset="paper", sinkhorn_iters=7, orient="h")

# the branch form: f_out = W layer_input + b, gradients through both outputs
br = mhc.torch.MHCLayerRef(n, C, norm_weight=True)
with torch.no_grad():
    br.base.normal_()
lin = torch.nn.Linear(C, C, dtype=torch.float64)
W, b = lin.weight.detach().clone().requires_grad_(), lin.bias.detach().clone().requires_grad_()
fcall = torch.nn.utils.stateless.functional_call


def fbr(x_, fn, sc, ba, nw, W_, b_):
    return fcall(br, {"fn": fn, "scale": sc, "base": ba, "norm_weight": nw}, (x_,),
                 {"branch": lambda li: li @ W_.T + b_})


grad_case("branch=F (f_out = F(layer_input))", fbr, (x, br.fn, br.scale, br.base, br.norm_weight, W, b))
with torch.no_grad():
    li, out = br(x, branch=lambda li_: li_ @ W.T + b)
    li2, out2 = br(x, li @ W.T + b)
check(torch.equal(li, li2) and torch.equal(out, out2), "branch=F equals f_out = F(layer_input) given")

# the knobs reach mhc.h: the same outputs as mhc.layer with them, other outputs without them
p7 = mhc.torch.MHCLayerRef(n, C, preset="paper", norm_weight=True, sinkhorn_iters=7, orient="h")
with torch.no_grad():
    p7.base.normal_()
    p7.norm_weight.uniform_(0.5, 1.5)
    li, out = p7(x, fo)
r7 = mhc.layer(x, p7.fn, p7.scale, p7.base, fo, norm_weight=p7.norm_weight, preset="paper", sinkhorn_iters=7,
               orient="h")
r20 = mhc.layer(x, p7.fn, p7.scale, p7.base, fo, norm_weight=p7.norm_weight, preset="paper")
r_nw = mhc.layer(x, p7.fn, p7.scale, p7.base, fo, preset="paper", sinkhorn_iters=7, orient="h")
d20 = (out - torch.from_numpy(r20["out"])).abs().max().item()
dnw = (out - torch.from_numpy(r_nw["out"])).abs().max().item()
check(torch.equal(out, torch.from_numpy(r7["out"])) and torch.equal(li, torch.from_numpy(r7["layer_input"]))
      and d20 > 1e-6 and dnw > 1e-6,
      "knobs passed through: out bit-identical to mhc.layer(preset=paper, sinkhorn_iters=7, orient=h); "
      "differs by %.2e from the preset's defaults and by %.2e without norm_weight" % (d20, dnw))
try:
    mhc.torch.MHCLayerRef(n, C, bogus=1)
    check(False, "unknown knob raises ValueError")
except ValueError as e:
    check("bogus" in str(e), "unknown knob raises ValueError (%s)" % str(e)[:40])

# ---- the two-process DDP example -------------------------------------------------------------
ex = os.path.join(ROOT, "examples", "python", "ddp_reference_layer.py")
r = subprocess.run([sys.executable, ex], capture_output=True, text=True, timeout=300)
lines = (r.stdout + r.stderr).strip().splitlines()
summary = [ln for ln in lines if "max |DDP gradient" in ln]
check(r.returncode == 0 and summary and lines[-1].endswith("passed"),
      "examples/python/ddp_reference_layer.py (rc %d): %s" % (r.returncode, summary[0].split(": ", 1)[1] if summary
                                                              else "\n".join(lines[-15:])))

# ---- examples/python/verify_on_power_case.py: the 19-iteration slip fails a make_case case by far
# more than the usual inputs; the correct float32 layer passes the float32 case -------------------
ex = os.path.join(ROOT, "examples", "python", "verify_on_power_case.py")
for it in ("19", "20"):
    r = subprocess.run([sys.executable, ex, "--iters", it], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ))
    out = r.stdout.strip().splitlines()
    pw = [ln for ln in out if "make_case inputs" in ln]
    good = r.returncode == 0 and pw and (("FAILS" in pw[0]) == (it == "19"))
    if good and it == "19":
        worst = [float(ln.split("err/tol")[1].split(")")[0]) for ln in out if "err/tol" in ln]
        good = len(worst) == 2 and worst[1] >= 100 and worst[1] > 100 * worst[0]
    check(good, "examples/python/verify_on_power_case.py --iters %s (rc %d): %s" % (it, r.returncode,
                                                                                   " | ".join(out[:2]) or r.stderr[-300:]))

print("test_python_torch: %s" % ("passed" if not FAILS else "%d FAILED: %s" % (len(FAILS), "; ".join(FAILS))))
sys.exit(1 if FAILS else 0)
