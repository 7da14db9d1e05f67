"""mhc.py - verify an mHC layer against mhc.h from Python, in one call (ctypes + NumPy only).

    import mhc
    ref = mhc.layer(x, fn, scale, base, f_out, d_out=g, d_layer_input=gl, preset="dsv4")
    mhc.check(mine, ref)          # AssertionError with `mhc compare`'s table when they differ

It loads build/libmhc_f64.so / libmhc_f32.so (`make python`), found next to this file, in
$MHC_BUILD, or in ../build. They run the same parser and computation as `mhc verify`, so the
results are bit-identical to the CLI's. Bad input (a shape, a dtype, NaN/Inf, an unknown knob)
raises ValueError with the library's message. Every key of case.txt (tests/vectors/README.md)
is a keyword: sinkhorn_iters, sinkhorn_eps, norm_eps, pre_eps, post_mult, orient, projection,
variant, kron_factors, ns_iters, norm_eps_mode, norm_scope, sinkhorn_eps_mode, sinkhorn_order,
exp_shift (0 is an actual 0). mhc.param_shapes(n, C, preset=...) gives the parameter shapes a
preset (and knobs) takes.

mhc.torch (python/mhc_torch.py, imported on first access; needs PyTorch, else ImportError):
MHCLayerRef, the layer through mhc.h in float64 as a torch.nn.Module with gradients, and
MHCLayerFunction, its torch.autograd.Function. `import mhc` itself never imports torch.
"""
import ctypes
import importlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile

import numpy as np

__all__ = ["layer", "sinkhorn", "head", "check", "compare", "make_case", "param_shapes", "library_version"]   # not torch

# The release this module belongs to; tests/test_version.sh checks it against mhc.h's
# MHC_VERSION_STRING, and library_version() reads the loaded library's own.
__version__ = "0.2.0"

_IN = ["x", "fn", "scale", "base", "norm_weight", "f_out", "d_out", "d_layer_input", "logits"]
_OUT = ["layer_input", "h_pre", "h_post", "h_res", "out", "d_x", "d_fn", "d_scale", "d_base",
        "d_norm_weight", "d_f_out", "d_logits"]
_LIBS = {}
_HERE = os.path.dirname(os.path.abspath(__file__))


def _lib_dirs():
    dirs = [_HERE]
    if os.environ.get("MHC_BUILD"):
        dirs.append(os.path.abspath(os.environ["MHC_BUILD"]))
    dirs.append(os.path.join(os.path.dirname(_HERE), "build"))
    return dirs


def _lib(dtype):
    tag = {"float64": "f64", "float32": "f32"}.get(dtype)
    if tag is None:
        raise ValueError("dtype %r: expected 'float64' or 'float32' (the precision mhc.h computes in)" % (dtype,))
    if tag in _LIBS:
        return _LIBS[tag]
    name = "libmhc_%s.so" % tag
    for d in _lib_dirs():
        p = os.path.join(d, name)
        if os.path.exists(p):
            lib = ctypes.CDLL(p)
            break
    else:
        raise ImportError("%s not found in %s; build it with: make -C %s python" %
                          (name, " or ".join(_lib_dirs()), os.path.dirname(_HERE)))
    dp = ctypes.POINTER(ctypes.c_double)
    lib.mhc_py_run.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int),
                               ctypes.POINTER(dp), ctypes.POINTER(dp), ctypes.POINTER(ctypes.c_int),
                               ctypes.c_char_p, ctypes.c_size_t]
    lib.mhc_py_run.restype = ctypes.c_int
    lib.mhc_py_compare_dirs.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_double,
                                        ctypes.c_char_p, ctypes.c_size_t]
    lib.mhc_py_compare_dirs.restype = ctypes.c_int
    lib.mhc_py_make_case.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_int, ctypes.c_ulonglong, ctypes.c_double, ctypes.c_int,
                                     ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.mhc_py_make_case.restype = ctypes.c_int
    lib.mhc_py_param_shapes.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                        ctypes.c_char_p, ctypes.c_size_t]
    lib.mhc_py_param_shapes.restype = ctypes.c_int
    lib.mhc_version.argtypes = []
    lib.mhc_version.restype = ctypes.c_char_p
    _LIBS[tag] = lib
    return lib


def library_version(dtype="float64"):
    """The release of the loaded library (its mhc_version() without the precision), e.g. '0.2.0'."""
    return _lib(dtype).mhc_version().decode().split(" ")[0]


def _array(name, a):
    """Any array-like (NumPy, a CPU torch tensor, a list) as a C-order float64 array."""
    if a is None:
        return None
    if hasattr(a, "detach") and hasattr(a, "numpy"):   # torch.Tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError("%s: dtype %s is not a real number type (float32 or float64 expected)" % (name, arr.dtype))
    if arr.ndim > 3:
        raise ValueError("%s: %d dimensions (at most 3)" % (name, arr.ndim))
    return np.ascontiguousarray(arr, dtype=np.float64)


def _knob_text(op, preset, n, dtype, knobs):
    lines = ["op = %s" % op, "preset = %s" % preset, "n = %d" % n, "dtype = %s" % dtype]
    for k, v in knobs.items():
        if isinstance(v, (list, tuple)):
            v = ",".join(str(int(e)) for e in v)
        elif isinstance(v, float):
            v = repr(v)
        v = str(v)
        if any(ch in v for ch in "\n\r#=") or any(ch in str(k) for ch in "\n\r#="):
            raise ValueError("knob %s = %r: newlines, '#' and '=' are not allowed" % (k, v))
        lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


def _run(op, inputs, n, preset, dtype, knobs):
    if not isinstance(preset, str):
        raise ValueError("preset must be a string, got %r" % (preset,))
    if "n" in knobs:
        n = int(knobs.pop("n"))
    lib = _lib(dtype)
    text = _knob_text(op, preset, n, dtype, knobs).encode()
    arrs = [_array(k, inputs.get(k)) for k in _IN]
    shp = (ctypes.c_int * (4 * len(_IN)))()
    dp = ctypes.POINTER(ctypes.c_double)
    ptrs = (dp * len(_IN))()
    for i, a in enumerate(arrs):
        if a is not None:
            shp[4 * i] = a.ndim if a.ndim > 0 else 1
            for d, s in enumerate(a.shape):
                shp[4 * i + 1 + d] = s
            if a.ndim == 0:
                shp[4 * i + 1] = 1
            ptrs[i] = a.ctypes.data_as(dp)
    oshp = (ctypes.c_int * (4 * len(_OUT)))()
    err = ctypes.create_string_buffer(2048)
    if lib.mhc_py_run(text, len(text), shp, ptrs, None, oshp, err, len(err)) != 0:
        raise ValueError(err.value.decode(errors="replace"))
    outs, optrs = {}, (dp * len(_OUT))()
    for i, name in enumerate(_OUT):
        nd = oshp[4 * i]
        if nd:
            outs[name] = np.zeros(tuple(oshp[4 * i + 1:4 * i + 1 + nd]), dtype=np.float64)
            optrs[i] = outs[name].ctypes.data_as(dp)
    if lib.mhc_py_run(text, len(text), shp, ptrs, optrs, oshp, err, len(err)) != 0:
        raise ValueError(err.value.decode(errors="replace"))
    return outs


def _n_of(name, a, axis):
    arr = _array(name, a)
    if arr is None or arr.ndim <= axis:
        raise ValueError("%s: shape %s, expected [T,n,C]" % (name, None if arr is None else list(arr.shape)))
    return arr, arr.shape[axis]


def layer(x, fn, scale, base, f_out=None, d_out=None, d_layer_input=None, norm_weight=None, preset="dsv4",
          dtype="float64", **knobs):
    """The mHC layer (op = layer): a dict with layer_input [T,C], h_pre, h_post [T,n], h_res [T,n,n],
    out [T,n,C] and the gradients of L = sum(d_out*out) + sum(d_layer_input*layer_input): d_x, d_fn,
    d_scale, d_base, d_f_out (d_norm_weight with norm_weight). Absent f_out / upstream gradients
    are zeros; the gradients are returned when d_out or d_layer_input is given."""
    x, n = _n_of("x", x, 1)
    o = _run("layer", dict(x=x, fn=fn, scale=scale, base=base, f_out=f_out, d_out=d_out,
                           d_layer_input=d_layer_input, norm_weight=norm_weight), n, preset, dtype, dict(knobs))
    if d_out is None and d_layer_input is None:
        o = {k: v for k, v in o.items() if not k.startswith("d_")}
    return o


def param_shapes(n, C, op="layer", preset="dsv4", **knobs):
    """The parameter shapes op (layer or head) takes for n streams of C channels under a preset and
    knobs, as mhc.h's mhc_hc_param_shapes gives them: a dict fn (rows, columns), scale, base,
    norm_weight (1-tuples), or {} for variant none (no parameters). E.g. dsv4, n = 4, C = 8:
    fn (24, 32), scale (3,), base (24,), norm_weight (32,); variant hc: fn (n + 2, C)."""
    if not isinstance(preset, str):
        raise ValueError("preset must be a string, got %r" % (preset,))
    if op not in ("layer", "head"):
        raise ValueError("op %r: expected 'layer' or 'head' (sinkhorn has no parameters)" % (op,))
    if not 1 <= int(C) <= 2 ** 31 - 1:
        raise ValueError("C = %r: expected an integer in 1..2^31-1" % (C,))
    knobs = dict(knobs)
    dtype = knobs.pop("dtype", "float64")
    text = _knob_text(op, preset, int(n), dtype, knobs).encode()
    sh, err = (ctypes.c_int * 5)(), ctypes.create_string_buffer(2048)
    if _lib("float64").mhc_py_param_shapes(text, len(text), int(C), sh, err, len(err)) != 0:
        raise ValueError(err.value.decode(errors="replace"))
    if sh[0] == 0:
        return {}
    return {"fn": (sh[0], sh[1]), "scale": (sh[2],), "base": (sh[3],), "norm_weight": (sh[4],)}


def sinkhorn(logits, d_out=None, preset="dsv4", dtype="float64", **knobs):
    """The projection (op = sinkhorn): out [T,n,n] and, with d_out, d_logits. logits is [T,n,n],
    or [T,nres] for projection perm / kron (then pass n=...)."""
    logits = _array("logits", logits)
    n = logits.shape[1] if logits is not None and logits.ndim >= 2 else 0
    o = _run("sinkhorn", dict(logits=logits, d_out=d_out), n, preset, dtype, dict(knobs))
    if d_out is None:
        o.pop("d_logits", None)
    return o


def head(x, fn, scale, base, d_out=None, norm_weight=None, preset="dsv4", dtype="float64", **knobs):
    """The head (op = head): out [T,C], h_pre [T,n] and, with d_out, d_x, d_fn, d_scale, d_base
    (d_norm_weight with norm_weight)."""
    x, n = _n_of("x", x, 1)
    o = _run("head", dict(x=x, fn=fn, scale=scale, base=base, d_out=d_out, norm_weight=norm_weight), n, preset,
             dtype, dict(knobs))
    if d_out is None:
        o = {k: v for k, v in o.items() if not k.startswith("d_")}
    return o


def compare(mine, ref, rtol=None, atol=None, dtype="float64"):
    """(mismatches, table): `mhc compare`'s rule and table for every tensor of ref (a dict of arrays)."""
    if rtol is None:
        rtol = 1e-4 if dtype == "float32" else 1e-10
    if atol is None:
        atol = 1e-6 if dtype == "float32" else 1e-12
    lib = _lib("float64")
    tmp = tempfile.mkdtemp(prefix="mhc_check_")
    try:
        od, ed = os.path.join(tmp, "mine"), os.path.join(tmp, "ref")
        os.mkdir(od)
        os.mkdir(ed)
        for name, v in ref.items():
            np.save(os.path.join(ed, name + ".npy"), _array(name, v))
        for name, v in mine.items():
            if name in ref and v is not None:
                np.save(os.path.join(od, name + ".npy"), _array(name, v))
        buf = ctypes.create_string_buffer(1 << 16)
        r = lib.mhc_py_compare_dirs(od.encode(), ed.encode(), float(rtol), float(atol), buf, len(buf))
        table = buf.value.decode(errors="replace").replace(od + "/", "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if r < 0:
        raise ValueError(table.strip())
    return r, table


def check(mine, ref, rtol=None, atol=None, dtype="float64"):
    """Raise AssertionError with `mhc compare`'s table when a tensor of ref disagrees with mine
    (or is missing there). Defaults: rtol 1e-10, atol 1e-12; dtype="float32": 1e-4, 1e-6.
    Returns the table when everything matches."""
    r, table = compare(mine, ref, rtol, atol, dtype)
    if r:
        bad = [ln.split()[0] for ln in table.splitlines()[1:-1] if ln.split() and not ln.rstrip().endswith(" ok")
               and not ln.startswith("compare:")]
        raise AssertionError("%d tensor(s) disagree with mhc.h: %s\n%s" % (r, ", ".join(bad), table))
    return table


def make_case(out, preset, n, op="layer", T=18, C=8, dtype="float64", seed=1, min_power=100.0, force=False):
    """`mhc make-case`: write a case (out/case.txt, the inputs, out/expected/) whose inputs make every
    common convention slip move some tensor by >= min_power x compare's tolerance, and out/power.txt.
    Returns {"ok": every slip that applies reached min_power, "minimum": the smallest err/tol,
    "slips": [(slip, err/tol, tensor, status), ...], "message": make-case's closing line}.
    Raises ValueError when nothing could be written (a bad preset, n, option or directory)."""
    if op not in ("layer", "sinkhorn", "head"):
        raise ValueError("op %r: expected 'layer', 'sinkhorn' or 'head'" % (op,))
    if dtype not in ("float64", "float32"):
        raise ValueError("dtype %r: expected 'float64' or 'float32'" % (dtype,))
    for name, v in (("n", n), ("T", T), ("C", C), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError("%s = %r: expected an integer" % (name, v))
    if int(seed) < 0:
        raise ValueError("seed = %r: expected a non-negative integer" % (seed,))
    lib = _lib("float64")
    err = ctypes.create_string_buffer(4096)
    rc = lib.mhc_py_make_case(op.encode(), str(preset).encode(), int(n), int(T), int(C), int(dtype == "float32"),
                              ctypes.c_ulonglong(int(seed)), float(min_power), int(bool(force)),
                              os.fsencode(out), err, len(err))
    msg = err.value.decode(errors="replace")
    if rc == 2:
        raise ValueError(msg)
    slips, minimum = [], None
    with open(os.path.join(out, "power.txt")) as f:
        for ln in f:
            if ln.startswith("#") or not ln.strip():
                continue
            if ln.startswith("minimum "):
                w = ln.split()[1]
                minimum = None if w == "-" else float(w)
                continue
            # "<slip>  <err/tol>  <tensor>  <status>": the first split that leaves a known status
            m = re.match(r"^(.*?)\s+(inf|-|[-+0-9.e]+)\s+(\S+)\s+(ok|WEAK|FAILED.*|n/a \(.*\))$", ln.rstrip("\n"))
            if m:
                w = m.group(2)
                slips.append((m.group(1), -1.0 if w == "-" else float(w), m.group(3), m.group(4)))
    return {"ok": rc == 0, "minimum": minimum, "slips": slips, "message": msg}


def __getattr__(name):
    """mhc.torch: python/mhc_torch.py, imported on first access (PEP 562) so that `import mhc`
    works without PyTorch."""
    if name != "torch":
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ImportError("mhc.torch needs PyTorch (import torch failed: %s); install torch "
                          "(pip install torch, or apt-get install python3-torch). mhc.layer, mhc.head, "
                          "mhc.sinkhorn and mhc.check work without it." % (e,)) from e
    mod = sys.modules.get("mhc_torch")
    if mod is None:
        path = os.path.join(_HERE, "mhc_torch.py")
        if os.path.exists(path):   # the copy next to this file, even when python/ is not on sys.path
            spec = importlib.util.spec_from_file_location("mhc_torch", path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules["mhc_torch"] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules["mhc_torch"]
                raise
        else:
            mod = importlib.import_module("mhc_torch")
    globals()["torch"] = mod
    return mod
