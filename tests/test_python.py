#!/usr/bin/python3
"""tests/test_python.py (make test-python): python/mhc.py against `mhc verify` on every golden
vector of tests/vectors/ (op layer, sinkhorn, head): every output bit-identical (same library),
then the error paths (ValueError with the library's message) and check()'s AssertionError."""
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import mhc  # noqa: E402

BUILD = os.environ.get("MHC_BUILD", os.path.join(ROOT, "build"))
VEC = os.path.join(ROOT, "tests", "vectors")
passed = failed = 0


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def case_of(d):
    kv = {}
    for ln in open(os.path.join(d, "case.txt")):
        ln = ln.split("#")[0].strip()
        if ln:
            k, v = [s.strip() for s in ln.split("=", 1)]
            kv[k] = v
    return kv


cases = 0
with tempfile.TemporaryDirectory() as tmp:
    for name in sorted(os.listdir(VEC)):
        d = os.path.join(VEC, name)
        if not os.path.isfile(os.path.join(d, "case.txt")):
            continue
        kv = case_of(d)
        op, preset, dtype, n = kv.pop("op"), kv.pop("preset"), kv.pop("dtype"), int(kv.pop("n"))
        inp = {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".npy")}
        od = os.path.join(tmp, name)
        r = subprocess.run([os.path.join(BUILD, "mhc"), "verify", d, "--out", od], capture_output=True, text=True)
        ok(r.returncode == 0, "%s: mhc verify: %s" % (name, r.stderr))
        if r.returncode:
            continue
        knobs = dict(kv, preset=preset, dtype=dtype, n=n)
        if op == "layer":
            got = mhc.layer(inp["x"], inp.get("fn"), inp.get("scale"), inp.get("base"), inp.get("f_out"),
                            d_out=inp.get("d_out"), d_layer_input=inp.get("d_layer_input"),
                            norm_weight=inp.get("norm_weight"), **knobs)
            if "d_out" not in inp and "d_layer_input" not in inp:   # the CLI always writes the gradients
                got = mhc.layer(inp["x"], inp.get("fn"), inp.get("scale"), inp.get("base"), inp.get("f_out"),
                                d_out=np.zeros(inp["x"].shape), norm_weight=inp.get("norm_weight"), **knobs)
        elif op == "sinkhorn":
            got = mhc.sinkhorn(inp["logits"], d_out=inp["d_out"], **knobs)
        else:
            got = mhc.head(inp["x"], inp["fn"], inp["scale"], inp["base"], d_out=inp["d_out"],
                           norm_weight=inp.get("norm_weight"), **knobs)
        cli = {f[:-4]: np.load(os.path.join(od, f)) for f in os.listdir(od)}
        ok(sorted(cli) == sorted(got), "%s: outputs %s vs the CLI's %s" % (name, sorted(got), sorted(cli)))
        for k in cli:
            ok(k in got and got[k].shape == cli[k].shape and np.array_equal(got[k], cli[k]),
               "%s/%s: not bit-identical to mhc verify" % (name, k))
        exp = os.path.join(d, "expected")
        ref = {f[:-4]: np.load(os.path.join(exp, f)) for f in os.listdir(exp)}
        try:
            mhc.check(got, ref, dtype=dtype)
            ok(True, "")
        except AssertionError as e:
            ok(False, "%s: check against expected: %s" % (name, e))
        cases += 1

# error paths: each raises ValueError carrying the library's message
rng = np.random.default_rng(0)
T, n, C = 3, 4, 5
m = 2 * n + n * n
x, fn, sc, ba = rng.normal(size=(T, n, C)), rng.normal(size=(m, n * C)) * 0.1, np.array([.5, .5, 1.]), rng.normal(size=m)


def raises(fn_, want, what):
    try:
        fn_()
    except ValueError as e:
        ok(want in str(e), "%s: message %r lacks %r" % (what, str(e), want))
        return
    ok(False, "%s: no ValueError" % what)


raises(lambda: mhc.layer(x, fn[:-1], sc, ba), "fn: shape [23,20], expected [24,20]", "short fn")
raises(lambda: mhc.layer(x, fn, sc[:2], ba), "scale: shape [2]", "short scale")
raises(lambda: mhc.layer(x, fn, sc, ba, f_out=np.zeros((T, C + 1))), "f_out: shape", "f_out shape")
xb = x.copy(); xb[1, 2, 3] = np.nan
raises(lambda: mhc.layer(xb, fn, sc, ba), "x: element 33 (flat index) is NaN", "NaN")
xb[1, 2, 3] = np.inf
raises(lambda: mhc.layer(xb, fn, sc, ba), "is +Inf", "Inf")
raises(lambda: mhc.layer(x, fn, sc, ba, sinkhorn_iterz=3), "unknown key 'sinkhorn_iterz'", "unknown knob")
raises(lambda: mhc.layer(x, fn, sc, ba, orient="sideways"), "sideways", "bad orient")
raises(lambda: mhc.layer(x, fn, sc, ba, preset="nope"), "nope", "bad preset")
raises(lambda: mhc.layer(x, fn, sc, ba, dtype="float16"), "float16", "bad dtype")
raises(lambda: mhc.layer(x.astype(complex), fn, sc, ba), "complex128 is not a real number type", "complex")
raises(lambda: mhc.layer(x * 1e39, fn, sc, ba, dtype="float32"), "beyond float32's range", "f32 range")
raises(lambda: mhc.sinkhorn(rng.normal(size=(T, 3, 4))), "logits: shape [3,3,4]", "sinkhorn shape")
raises(lambda: mhc.head(x, fn, sc, ba), "fn: shape [24,20], expected [4,20]", "head fn")
raises(lambda: mhc.layer(x, fn, sc, ba, sinkhorn_iters="1\nop = head"), "newlines", "injection")
# a torch-like / list input is accepted and equals the array result
o1 = mhc.layer(x, fn, sc, ba, d_out=np.ones((T, n, C)))
o2 = mhc.layer(x.tolist(), fn.tolist(), list(sc), list(ba), d_out=np.ones((T, n, C)).tolist())
ok(all(np.array_equal(o1[k], o2[k]) for k in o1), "lists give the same result")
ok("d_x" not in mhc.layer(x, fn, sc, ba) and "d_x" in o1, "gradients only with upstream gradients")
# check: every disagreeing tensor is named, the table is compare's
bad = dict(o1, h_res=o1["h_res"].transpose(0, 2, 1).copy(), d_fn=o1["d_fn"] * 1.001)
try:
    mhc.check(bad, o1)
    ok(False, "check: no AssertionError")
except AssertionError as e:
    s = str(e)
    ok("h_res" in s.splitlines()[0] and "d_fn" in s.splitlines()[0] and "tensor               shape" in s
       and "compare: 10 tensors, 2 mismatched" in s, "check's message: %s" % s)
ok(mhc.check(o1, o1).count(" ok") == len(o1), "check passes on itself")
# param_shapes: mhc_hc_param_shapes for a preset and knobs, and mhc.layer accepts those shapes
ok(mhc.param_shapes(4, 5) == {"fn": (24, 20), "scale": (3,), "base": (24,), "norm_weight": (20,)}, "param_shapes dsv4")
ok(mhc.param_shapes(4, 5, variant="hc")["fn"] == (6, 5), "param_shapes hc: fn [n+2, C]")
ok(mhc.param_shapes(4, 5, op="head")["fn"] == (4, 20), "param_shapes head: fn [n, n*C]")
ok(mhc.param_shapes(1, 5, variant="none") == {}, "param_shapes none: no parameters")
for pre in ("lite", "kromhc", "lucidrains"):
    ps = mhc.param_shapes(4, 5, preset=pre)
    o = mhc.layer(x, *[rng.normal(size=ps[k]) for k in ("fn", "scale", "base")], norm_weight=np.ones(ps["norm_weight"]),
                  d_out=np.ones((T, n, C)), preset=pre)
    ok(o["d_fn"].shape == ps["fn"] and o["d_norm_weight"].shape == ps["norm_weight"], "param_shapes %s: %s" % (pre, ps))
raises(lambda: mhc.param_shapes(4, 5, sinkhorn_iterz=3), "unknown key 'sinkhorn_iterz'", "param_shapes unknown knob")
raises(lambda: mhc.param_shapes(4, 0), "C = 0", "param_shapes C = 0")
raises(lambda: mhc.param_shapes(4, 2 ** 40), "C = 1099511627776", "param_shapes C = 2^40")
raises(lambda: mhc.param_shapes(4, 2 ** 30), "overflows", "param_shapes n*C overflow")
raises(lambda: mhc.param_shapes(4, 5, op="sinkhorn"), "sinkhorn has no parameters", "param_shapes op")
# mhc.torch is looked up lazily (test_python_torch.py checks it); other names are AttributeError
try:
    mhc.no_such_name
    ok(False, "mhc.no_such_name: no AttributeError")
except AttributeError as e:
    ok("no_such_name" in str(e), "mhc.no_such_name: AttributeError")
# one version: the module's and each loaded library's mhc_version()
for dt in ("float64", "float32"):
    lv = mhc.library_version(dt)
    ok(lv == mhc.__version__, "library_version(%s) = %r, module %s" % (dt, lv, mhc.__version__))

# make_case: the same bytes as `mhc make-case`, the table parsed, ok only when every slip is strong
with tempfile.TemporaryDirectory() as t:
    for preset, n, op, dt in (("dsv4", 4, "layer", "float64"), ("paper", 1, "layer", "float64"),
                              ("megatron", 3, "head", "float64"), ("lite", 4, "layer", "float32")):
        pd, cd = os.path.join(t, "py_%s_%d_%s" % (preset, n, op)), os.path.join(t, "cli_%s_%d_%s" % (preset, n, op))
        r = mhc.make_case(pd, preset, n, op=op, dtype=dt)
        c = subprocess.run([os.path.join(BUILD, "mhc"), "make-case", "--preset", preset, "--n", str(n), "--op", op,
                            "--dtype", dt, "--out", cd], capture_output=True, text=True)
        ok(r["ok"] and c.returncode == 0, "make_case %s n=%d %s %s: ok %s, CLI exit %d" % (preset, n, op, dt, r["ok"],
                                                                                         c.returncode))
        same = all(open(os.path.join(pd, f), "rb").read() == open(os.path.join(cd, f), "rb").read()
                   for f in ["power.txt"] + [os.path.join("expected", e) for e in os.listdir(os.path.join(cd, "expected"))]
                   + [e for e in os.listdir(cd) if e.endswith(".npy")])
        ok(same, "make_case %s n=%d %s: the files differ from the CLI's" % (preset, n, op))
        nlines = sum(1 for ln in open(os.path.join(pd, "power.txt")) if not ln.startswith(("#", "minimum")))
        ok(len(r["slips"]) == nlines and nlines > 0, "make_case %s: %d slips parsed of %d" % (preset, len(r["slips"]),
                                                                                             nlines))
        strong = [s for s in r["slips"] if not s[3].startswith("n/a")]
        ok(strong and min(s[1] for s in strong) == r["minimum"] and r["minimum"] >= 100,
           "make_case %s: minimum %r against the slips' %r" % (preset, r["minimum"], [s[1] for s in strong]))
        if n == 1:
            ok(any(s[3].startswith("n/a (n = 1") for s in r["slips"]), "make_case %s n=1: no n/a slip" % preset)
        # the case verifies through mhc.layer/head + check, like any golden vector
        kv = case_of(pd)
        inp = {f[:-4]: np.load(os.path.join(pd, f)) for f in os.listdir(pd) if f.endswith(".npy")}
        exp = {f[:-4]: np.load(os.path.join(pd, "expected", f)) for f in os.listdir(os.path.join(pd, "expected"))}
        fn_ = mhc.layer if op == "layer" else mhc.head
        got = fn_(preset=kv["preset"], dtype=kv["dtype"], **inp)
        try:
            mhc.check(got, exp, dtype=dt)
            ok(True, "")
        except AssertionError as e:
            ok(False, "make_case %s: the case does not check: %s" % (preset, e))
    r = mhc.make_case(os.path.join(t, "f32"), "dsv4", 4, dtype="float32")
    weak = [s[0] for s in r["slips"] if s[3] == "WEAK"]
    ok(not r["ok"] and weak and all(w.startswith("sinkhorn_eps") for w in weak),
       "make_case dsv4 float32: ok %s, weak %r (expected only the Sinkhorn eps rules)" % (r["ok"], weak))
    raises(lambda: mhc.make_case(os.path.join(t, "e"), "nosuch", 4), "unknown preset", "make_case bad preset")
    raises(lambda: mhc.make_case(os.path.join(t, "e"), "lite", 9), "n = 9", "make_case lite n = 9")
    raises(lambda: mhc.make_case(os.path.join(t, "e"), "dsv4", 4, op="conv"), "expected 'layer'", "make_case op")
    raises(lambda: mhc.make_case(os.path.join(t, "e"), "dsv4", 4.5), "expected an integer", "make_case n float")
    raises(lambda: mhc.make_case(os.path.join(t, "f32"), "dsv4", 4), "not empty", "make_case non-empty dir")
    ok(mhc.make_case(os.path.join(t, "f32"), "dsv4", 4, force=True)["ok"], "make_case force")

print("test_python: %d cases bit-identical to mhc verify; %d passed, %d failed" % (cases, passed, failed))
sys.exit(1 if failed else 0)
