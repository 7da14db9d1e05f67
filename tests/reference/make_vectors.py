#!/usr/bin/python3
"""Golden vectors for mhc.h, computed with PyTorch in float64 from /work/shared/MHC_SPEC.md.

    /usr/bin/python3 tests/reference/make_vectors.py            # (re)write tests/vectors/
    /usr/bin/python3 tests/reference/make_vectors.py --check    # self-checks, writes nothing

Every case directory tests/vectors/<case>/ holds case.txt (`key = value` lines), the input .npy
files and expected/<output>.npy (always float64). Gradients come from torch.autograd through
the truncated iteration that was run (no implicit fixed-point gradients). Deterministic: every
case draws from its own numpy Generator seeded with crc32(case name); rerunning gives identical
bytes. See tests/vectors/README.md (written by this script) for the format and the case list.
"""
import itertools
import math
import os
import shutil
import sys
import zlib

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "vectors")

# Spec Sec. 4. projection: softmax (softmax start), exp (exp start), log (log domain), perm.
PRESETS = {
    "dsv4": dict(norm_eps=1e-6, pre_eps=1e-6, post_mult=2.0, projection="softmax",
                 sinkhorn_iters=20, sinkhorn_eps=1e-6, orient="comb_t"),
    "tilekernels": dict(norm_eps=1e-6, pre_eps=1e-6, post_mult=1.0, projection="softmax",
                        sinkhorn_iters=10, sinkhorn_eps=1e-6, orient="comb_t"),
    "paper": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, projection="exp",
                  sinkhorn_iters=20, sinkhorn_eps=0.0, orient="h"),
    "lite": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, projection="perm",
                 sinkhorn_iters=None, sinkhorn_eps=None, orient=None),
}
KNOBS = ["sinkhorn_iters", "sinkhorn_eps", "norm_eps", "pre_eps", "post_mult", "orient", "projection"]


# ----------------------------------------------------------------------------------------------
# The mathematics (spec Sec. 2, 3, 5). z: [T, n, n] logits (or [T, n!] for perm).
# ----------------------------------------------------------------------------------------------

def sinkhorn_softmax_start(z, iters, eps):
    """S = softmax_row(z) + eps; S /= colsum + eps; then iters-1 times: row step, column step."""
    s = torch.softmax(z, dim=-1) + eps
    s = s / (s.sum(dim=-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        s = s / (s.sum(dim=-1, keepdim=True) + eps)
        s = s / (s.sum(dim=-2, keepdim=True) + eps)
    return s


def sinkhorn_exp_start(z, iters, eps):
    """M = exp(z); iters times: column step, then row step (T_r(T_c(M)))."""
    m = torch.exp(z)
    for _ in range(iters):
        m = m / (m.sum(dim=-2, keepdim=True) + eps)
        m = m / (m.sum(dim=-1, keepdim=True) + eps)
    return m


def _log_norm(lm, dim, eps):
    """log(sum(exp(lm)) + eps) along dim: logsumexp, and log(exp(lse) + eps) = logaddexp(lse, log eps)
    when eps > 0. This is the exp-start step M / (sum M + eps) carried out on log M exactly."""
    lse = torch.logsumexp(lm, dim=dim, keepdim=True)
    if eps == 0:
        return lse
    return torch.logaddexp(lse, torch.full_like(lse, math.log(eps)))


def sinkhorn_log_domain(z, iters, eps):
    """The exp-start iteration on L = log M: L -= log(colsum + eps); L -= log(rowsum + eps); exp(L)."""
    lm = z
    for _ in range(iters):
        lm = lm - _log_norm(lm, -2, eps)
        lm = lm - _log_norm(lm, -1, eps)
    return torch.exp(lm)


def permutations(n):
    """All permutations of range(n) in lexicographic order of (p(0), ..., p(n-1))."""
    return list(itertools.permutations(range(n)))


def perm_mixture(z, n):
    """a = softmax(z) over n! logits; A = sum_k a[k] P_k with P_k[i][p_k(i)] = 1."""
    perms = permutations(n)
    p = torch.zeros(len(perms), n, n, dtype=z.dtype)
    for k, perm in enumerate(perms):
        for i in range(n):
            p[k, i, perm[i]] = 1.0
    a = torch.softmax(z, dim=-1)
    return torch.einsum("tk,kij->tij", a, p)


def project(z, n, cfg):
    """The projection's own result (before orientation). z: [T, n*n] or [T, n!]."""
    t = z.shape[0]
    proj = cfg["projection"]
    if proj == "perm":
        return perm_mixture(z, n)
    zz = z.reshape(t, n, n)
    if proj == "softmax":
        return sinkhorn_softmax_start(zz, cfg["sinkhorn_iters"], cfg["sinkhorn_eps"])
    if proj == "exp":
        return sinkhorn_exp_start(zz, cfg["sinkhorn_iters"], cfg["sinkhorn_eps"])
    if proj == "log":
        return sinkhorn_log_domain(zz, cfg["sinkhorn_iters"], cfg["sinkhorn_eps"])
    raise ValueError(proj)


def mixing_logits(x, fn, nw, norm_eps):
    """mix[t,k] = (sum_j xf[j] w[k][j]) * rsqrt(mean_j xf[j]^2 + norm_eps), w = fn * norm_weight."""
    t, n, c = x.shape
    xf = x.reshape(t, n * c)
    w = fn * nw[None, :] if nw is not None else fn
    r = torch.rsqrt((xf * xf).mean(dim=-1, keepdim=True) + norm_eps)
    return (xf @ w.T) * r


def layer_forward(x, fn, scale, base, nw, f_out, cfg):
    t, n, c = x.shape
    mix = mixing_logits(x, fn, nw, cfg["norm_eps"])
    h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + cfg["pre_eps"]
    h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * cfg["post_mult"]
    z = mix[:, 2 * n:] * scale[2] + base[2 * n:]
    comb = project(z, n, cfg)
    if cfg["projection"] == "perm":
        a = comb                      # built directly, no orientation step
    elif cfg["orient"] == "h":
        a = comb
    else:
        a = comb.transpose(-1, -2)    # comb_t
    layer_input = torch.einsum("ti,tic->tc", h_pre, x)
    out = torch.einsum("tij,tjc->tic", a, x) + h_post[:, :, None] * f_out[:, None, :]
    return dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=a, out=out)


def head_forward(x, fn, scale, base, nw, cfg):
    mix = mixing_logits(x, fn, nw, cfg["norm_eps"])
    h = torch.sigmoid(mix * scale[0] + base) + cfg["pre_eps"]
    return dict(out=torch.einsum("ti,tic->tc", h, x), h_pre=h)


# ----------------------------------------------------------------------------------------------
# Running one case: inputs (numpy float64, already rounded to float32 for float32 cases) ->
# expected outputs (numpy float64).
# ----------------------------------------------------------------------------------------------

def run_case(op, cfg, inp, n, dtype=torch.float64):
    """Forward + autograd. Returns {name: np.ndarray}. dtype: the torch precision to run in
    (float64 for the vectors; float32 only in the --check simulation of a float32 build)."""
    def leaf(name):
        return torch.tensor(inp[name], dtype=dtype, requires_grad=True)

    def const(name):
        return torch.tensor(inp[name], dtype=dtype)

    res = {}
    if op == "sinkhorn":
        z = leaf("logits")
        t = z.shape[0]
        out = project(z.reshape(t, -1), n, cfg)
        loss = (const("d_out") * out).sum()
        (g,) = torch.autograd.grad(loss, [z])
        res["out"] = out
        res["d_logits"] = g
    else:
        names = ["x", "fn", "scale", "base"] + (["norm_weight"] if "norm_weight" in inp else [])
        if op == "layer":
            names.append("f_out")
        leaves = {k: leaf(k) for k in names}
        nw = leaves.get("norm_weight")
        if op == "layer":
            fw = layer_forward(leaves["x"], leaves["fn"], leaves["scale"], leaves["base"], nw, leaves["f_out"], cfg)
            loss = (const("d_out") * fw["out"]).sum() + (const("d_layer_input") * fw["layer_input"]).sum()
        else:
            fw = head_forward(leaves["x"], leaves["fn"], leaves["scale"], leaves["base"], nw, cfg)
            loss = (const("d_out") * fw["out"]).sum()
        grads = torch.autograd.grad(loss, [leaves[k] for k in names])
        res.update(fw)
        for k, g in zip(names, grads):
            res["d_" + k] = g
    return {k: v.detach().to(torch.float64).numpy() for k, v in res.items()}


# ----------------------------------------------------------------------------------------------
# The cases.
# ----------------------------------------------------------------------------------------------

CASES = []


def case(name, op, preset, n, T=4, C=8, dtype="float64", nw=False, special=None, desc="", **over):
    for k in over:
        assert k in KNOBS, k
    assert not any(c["name"] == name for c in CASES), name
    CASES.append(dict(name=name, op=op, preset=preset, n=n, T=T, C=C, dtype=dtype, nw=nw,
                      special=special, desc=desc, over=over))


def build_cases():
    # --- layer: every preset, n in {1,2,3,4,8} (lite: 1..5), with and without norm weight ---
    for preset in ["dsv4", "tilekernels", "paper"]:
        for n in [1, 2, 3, 4, 8]:
            C = 4 if n == 8 else 8
            nw = (n % 2 == 0) if preset != "tilekernels" else (n % 2 == 1)
            case(f"layer_{preset}_n{n}", "layer", preset, n, C=C, nw=nw,
                 desc=f"{preset} preset, n={n}" + (", with norm_weight" if nw else ""))
    for n in [1, 2, 3, 4, 5]:
        case(f"layer_lite_n{n}", "layer", "lite", n, C=4 if n == 5 else 8, nw=(n % 2 == 1),
             desc=f"mHC-lite permutation mixture, n={n} ({math.factorial(n)} logits)")
    case("layer_dsv4_n4_T1_C1", "layer", "dsv4", 4, T=1, C=1, nw=True, desc="T = 1, C = 1")
    case("layer_paper_n3_T1_C1", "layer", "paper", 3, T=1, C=1, desc="T = 1, C = 1")
    case("layer_lite_n3_T1_C1", "layer", "lite", 3, T=1, C=1, desc="T = 1, C = 1")
    case("layer_dsv4_n1_T1_C1", "layer", "dsv4", 1, T=1, C=1, desc="the plain-residual size, T = 1, C = 1")
    case("layer_dsv4_n4_T8_C16", "layer", "dsv4", 4, T=8, C=16, nw=True, desc="the largest layer case")
    # --- knob overrides on top of presets ---
    case("layer_dsv4_n4_iters1", "layer", "dsv4", 4, sinkhorn_iters=1,
         desc="softmax start with one iteration: softmax + eps and one column step only")
    case("layer_paper_n4_iters3", "layer", "paper", 4, nw=True, sinkhorn_iters=3, desc="exp start, 3 iterations")
    case("layer_dsv4_n4_sinkhorn_eps0", "layer", "dsv4", 4, sinkhorn_eps=0.0, desc="softmax start with eps 0")
    case("layer_paper_n4_sinkhorn_eps1e-3", "layer", "paper", 4, sinkhorn_eps=1e-3, desc="exp start with eps 1e-3")
    case("layer_dsv4_n4_norm_eps0.5", "layer", "dsv4", 4, nw=True, norm_eps=0.5,
         desc="a large norm_eps (0.5, tokens of rms ~1) so its placement matters")
    case("layer_paper_n4_pre_eps0.25", "layer", "paper", 4, pre_eps=0.25, desc="h_pre = sigmoid(.) + 0.25")
    case("layer_tilekernels_n4_post_mult3", "layer", "tilekernels", 4, nw=True, post_mult=3.0,
         desc="h_post = sigmoid(.) * 3")
    case("layer_dsv4_n4_orient_h", "layer", "dsv4", 4, orient="h", desc="softmax start with A = comb")
    case("layer_paper_n4_orient_comb_t", "layer", "paper", 4, orient="comb_t", desc="exp start with A = comb^T")
    case("layer_dsv4_n3_projection_exp", "layer", "dsv4", 3, projection="exp",
         desc="exp start with the dsv4 eps (1e-6), iters and orientation")
    case("layer_paper_n4_projection_softmax", "layer", "paper", 4, projection="softmax",
         desc="softmax start with the paper eps (0) and orientation (h)")
    case("layer_paper_n4_projection_log", "layer", "paper", 4, nw=True, projection="log",
         desc="log domain with eps 0: must equal exp start (layer_paper_n4 uses other inputs)")
    case("layer_paper_n8_projection_log", "layer", "paper", 8, C=4, projection="log", desc="log domain, n = 8")
    case("layer_dsv4_n4_all_knobs", "layer", "dsv4", 4, nw=True, sinkhorn_iters=7, sinkhorn_eps=1e-4,
         norm_eps=1e-3, pre_eps=0.1, post_mult=1.5, orient="h", projection="exp",
         desc="every Sinkhorn knob overridden at once")
    case("layer_paper_n4_init_scale", "layer", "paper", 4, special="init_scale",
         desc="scale = 0.01 (the paper's gating init), base = paper-style init (pre: onehot-ish, res: I)")
    # --- near-degenerate inputs ---
    case("layer_dsv4_n4_tiny_and_zero_tokens", "layer", "dsv4", 4, T=3, nw=True, special="tiny_zero",
         desc="token 0 normal, token 1 scaled by 1e-8, token 2 all zero (norm_eps 1e-6 keeps rsqrt finite)")
    case("layer_paper_n4_tiny_tokens", "layer", "paper", 4, T=2, special="tiny",
         desc="every token scaled by 1e-8: mean(x^2) ~ 1e-16 >> norm_eps 1e-20, mix is O(1), d_x ~ 1e8")
    case("layer_paper_n2_zero_token_T1", "layer", "paper", 2, T=1, C=4, special="zero",
         desc="one all-zero token with norm_eps 1e-20: rsqrt(1e-20) = 1e10 is finite and mix = 0 * 1e10 = 0; "
              "d_x ~ 1e10 (finite); T = 1 so no other token shares the tensor scale")
    case("layer_dsv4_n4_large_res_logits", "layer", "dsv4", 4, special="large_res_base",
         desc="res logits ~ +-30 (base): the softmax start saturates, Sinkhorn of near one-hot rows")
    case("layer_paper_n4_large_res_logits", "layer", "paper", 4, special="large_res_base",
         desc="res logits ~ +-30 (base) through exp start (exp(30) ~ 1e13, no overflow)")
    case("layer_paper_n4_log_huge_res_logits", "layer", "paper", 4, special="huge_res_base", projection="log",
         desc="res logits N(0,1.5) + column offsets in +-1000: exp start overflows, the log domain gives "
              "the offset-free result")
    # --- float32 cases: float32 inputs, expected in float64 from those values ---
    case("layer_dsv4_n4_f32", "layer", "dsv4", 4, dtype="float32", nw=True, desc="float32")
    case("layer_paper_n4_f32", "layer", "paper", 4, dtype="float32", desc="float32")
    case("layer_lite_n3_f32", "layer", "lite", 3, dtype="float32", desc="float32")

    # --- sinkhorn: the projection alone ---
    for preset in ["dsv4", "tilekernels", "paper"]:
        for n in [1, 2, 3, 4, 8]:
            case(f"sinkhorn_{preset}_n{n}", "sinkhorn", preset, n, desc=f"{preset} projection, n={n}")
    for n in [1, 2, 3, 4, 5]:
        case(f"sinkhorn_lite_n{n}", "sinkhorn", "lite", n, desc=f"permutation mixture, n={n}")
    case("sinkhorn_dsv4_n4_T1", "sinkhorn", "dsv4", 4, T=1, desc="T = 1")
    case("sinkhorn_paper_n4_iters1", "sinkhorn", "paper", 4, sinkhorn_iters=1, desc="exp start, 1 iteration")
    case("sinkhorn_tilekernels_n4_iters2", "sinkhorn", "tilekernels", 4, sinkhorn_iters=2,
         desc="softmax start, 2 iterations")
    case("sinkhorn_dsv4_n4_eps1e-2", "sinkhorn", "dsv4", 4, sinkhorn_eps=1e-2, desc="softmax start with eps 1e-2")
    case("sinkhorn_paper_n3_eps1e-2", "sinkhorn", "paper", 3, sinkhorn_eps=1e-2, desc="exp start with eps 1e-2")
    case("sinkhorn_paper_n4_log", "sinkhorn", "paper", 4, projection="log",
         desc="log domain, eps 0: equal to sinkhorn exp start on the same logits")
    case("sinkhorn_paper_n8_log", "sinkhorn", "paper", 8, projection="log", desc="log domain, n = 8")
    case("sinkhorn_paper_n3_log_eps1e-2", "sinkhorn", "paper", 3, projection="log", sinkhorn_eps=1e-2,
         desc="log domain WITH eps: assumes the rule L -= logaddexp(logsumexp(L), log eps) (see README)")
    case("sinkhorn_dsv4_n4_large_logits", "sinkhorn", "dsv4", 4, special="large_logits",
         desc="logits uniform in +-30: saturated softmax start")
    case("sinkhorn_paper_n4_large_logits", "sinkhorn", "paper", 4, special="large_logits",
         desc="logits uniform in +-30 through exp start (no overflow in float64 or float32)")
    case("sinkhorn_paper_n4_log_large_logits", "sinkhorn", "paper", 4, special="large_logits", projection="log",
         desc="logits uniform in +-30 through the log domain (eps 0)")
    case("sinkhorn_paper_n4_log_huge_logits", "sinkhorn", "paper", 4, special="huge_logits", projection="log",
         desc="logits N(0,1.5) + column offsets in +-1000: exp start overflows, the log domain gives the "
              "offset-free result")
    case("sinkhorn_lite_n4_large_logits", "sinkhorn", "lite", 4, special="large_logits",
         desc="24 logits uniform in +-30")
    case("sinkhorn_dsv4_n4_f32", "sinkhorn", "dsv4", 4, dtype="float32", desc="float32")
    case("sinkhorn_paper_n4_f32", "sinkhorn", "paper", 4, dtype="float32", desc="float32")

    # --- head ---
    for n in [1, 2, 4, 8]:
        case(f"head_dsv4_n{n}", "head", "dsv4", n, C=4 if n == 8 else 8, nw=(n % 2 == 0), desc=f"dsv4 head, n={n}")
    case("head_tilekernels_n4", "head", "tilekernels", 4, desc="tilekernels head (same eps as dsv4)")
    case("head_paper_n1", "head", "paper", 1, desc="paper eps (norm_eps 1e-20, pre_eps 0)")
    case("head_paper_n4", "head", "paper", 4, nw=True, desc="paper eps (norm_eps 1e-20, pre_eps 0)")
    case("head_lite_n3", "head", "lite", 3, desc="lite eps (= paper)")
    case("head_dsv4_n2_T1_C1", "head", "dsv4", 2, T=1, C=1, desc="T = 1, C = 1")
    case("head_dsv4_n4_pre_eps0.5", "head", "dsv4", 4, pre_eps=0.5, desc="h = sigmoid(.) + 0.5")
    case("head_dsv4_n4_norm_eps0.5", "head", "dsv4", 4, norm_eps=0.5, desc="norm_eps 0.5")
    case("head_dsv4_n4_tiny_and_zero_tokens", "head", "dsv4", 4, T=3, nw=True, special="tiny_zero",
         desc="token 1 scaled by 1e-8, token 2 all zero")
    case("head_dsv4_n4_f32", "head", "dsv4", 4, dtype="float32", nw=True, desc="float32")


def huge_offsets(rng, n):
    """Offsets c_j in +-1000 added to column j of the logits (z[i][j] += c_j). exp(z) overflows or
    underflows, so exp start fails, but M = K diag(exp(c)) gives exactly the same column-normalised
    matrix as K: with eps = 0 the exp-start / log-domain result does not depend on c at all, so the
    expected values are those of the N(0, 1.5) logits alone (--check verifies it), non-trivial."""
    return rng.uniform(-1000, 1000, size=(1, n))


def make_inputs(c):
    """The case's inputs as float64 numpy arrays (rounded through float32 for float32 cases)."""
    rng = np.random.default_rng(zlib.crc32(c["name"].encode()))
    op, n, T, C, sp = c["op"], c["n"], c["T"], c["C"], c["special"]
    perm = (c["over"].get("projection", PRESETS[c["preset"]]["projection"]) == "perm")
    nres = math.factorial(n) if perm else n * n
    inp = {}
    if op == "sinkhorn":
        if sp == "large_logits":
            logits = rng.uniform(-30, 30, size=(T, nres))
        elif sp == "huge_logits":   # N(0, 1.5) plus a column offset in +-1000 (see huge_offsets)
            logits = (rng.normal(0, 1.5, size=(T, n, n)) + huge_offsets(rng, n)).reshape(T, nres)
        else:
            logits = rng.normal(0, 1.5, size=(T, nres))
        inp["logits"] = logits if perm else logits.reshape(T, n, n)
        inp["d_out"] = rng.normal(0, 1, size=(T, n, n))
    else:
        m = n if op == "head" else 2 * n + nres
        std = min(0.5, max(0.02, 1.0 / math.sqrt(n * C)))
        x = rng.normal(0, 1, size=(T, n, C))
        if sp == "tiny_zero":
            x[1] *= 1e-8
            x[2] = 0.0
        elif sp == "tiny":
            x *= 1e-8
        elif sp == "zero":
            x[:] = 0.0
        inp["x"] = x
        inp["fn"] = rng.normal(0, std, size=(m, n * C))
        inp["scale"] = rng.uniform(0.1, 1.0, size=(1 if op == "head" else 3,))
        base = rng.normal(0, 1, size=(m,))
        if sp == "init_scale":
            inp["scale"][:] = 0.01
            base[:n] = -1.0
            base[n:2 * n] = 0.0
            res = np.full((n, n), -2.0)
            np.fill_diagonal(res, 2.0)
            base[2 * n:] = res.reshape(-1)
        elif sp == "large_res_base":
            base[2 * n:] = rng.uniform(-30, 30, size=(nres,))
        elif sp == "huge_res_base":
            base[2 * n:] = (rng.normal(0, 1.5, size=(n, n)) + huge_offsets(rng, n)).reshape(-1)
        inp["base"] = base
        if c["nw"]:
            inp["norm_weight"] = rng.uniform(0.5, 1.5, size=(n * C,))
        if op == "layer":
            inp["f_out"] = rng.normal(0, 1, size=(T, C))
            inp["d_out"] = rng.normal(0, 1, size=(T, n, C))
            inp["d_layer_input"] = rng.normal(0, 1, size=(T, C))
        else:
            inp["d_out"] = rng.normal(0, 1, size=(T, C))
    if c["dtype"] == "float32":
        inp = {k: v.astype(np.float32).astype(np.float64) for k, v in inp.items()}
    return inp


def config(c):
    cfg = dict(PRESETS[c["preset"]])
    cfg.update(c["over"])
    return cfg


def fmt(v):
    return repr(float(v)) if isinstance(v, float) else str(v)


def write_case(c, inp, exp):
    d = os.path.join(OUT, c["name"])
    os.makedirs(os.path.join(d, "expected"))
    lines = [f"op = {c['op']}", f"preset = {c['preset']}", f"n = {c['n']}", f"dtype = {c['dtype']}"]
    lines += [f"{k} = {fmt(c['over'][k])}" for k in KNOBS if k in c["over"]]
    with open(os.path.join(d, "case.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    in_dtype = np.float32 if c["dtype"] == "float32" else np.float64
    for k, v in inp.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(v.astype(in_dtype)))
    for k, v in exp.items():
        np.save(os.path.join(d, "expected", k + ".npy"), np.ascontiguousarray(v.astype(np.float64)))


# ----------------------------------------------------------------------------------------------
# --check: conditioning of every case, a float32 simulation, and invariants of the spec.
# ----------------------------------------------------------------------------------------------

def err_over_tol(out, exp, rtol, atol):
    """max over elements of |o - e| / (atol * max(1, max|e|) + rtol * |e|): the compare rule."""
    worst = 0.0
    for k, e in exp.items():
        o = out[k]
        assert np.all(np.isfinite(e)) and np.all(np.isfinite(o)), k
        tol = atol * max(1.0, float(np.max(np.abs(e)))) + rtol * np.abs(e)
        worst = max(worst, float(np.max(np.abs(o - e) / tol)))
    return worst


def check():
    ok = True
    print(f"{'case':42s} {'perturb/tol':>12s} {'f32/tol':>10s}  notes")
    for c in CASES:
        cfg = config(c)
        inp = make_inputs(c)
        exp = run_case(c["op"], cfg, inp, c["n"])
        notes = []
        # 1. conditioning: relative input perturbations of 4e-16 should move the outputs far less
        #    than the float64 tolerance (else the case cannot be met by a correct C implementation).
        rng = np.random.default_rng(1)
        pin = {k: v * (1 + 4e-16 * rng.choice([-1.0, 1.0], size=v.shape)) for k, v in inp.items()}
        pert = err_over_tol(run_case(c["op"], cfg, pin, c["n"]), exp, 1e-10, 1e-12)
        # 2. the same computation in float32 against the float32 tolerance
        f32 = err_over_tol(run_case(c["op"], cfg, inp, c["n"], torch.float32), exp, 1e-4, 1e-6)
        if pert > 0.05:
            notes.append("ILL-CONDITIONED for rtol 1e-10")
            ok = False
        if c["dtype"] == "float32" and f32 > 0.5:
            notes.append("float32 simulation too far from expected")
            ok = False
        # 3. invariants
        a = exp["h_res"] if c["op"] == "layer" else exp["out"] if c["op"] == "sinkhorn" else None
        if a is not None and cfg["projection"] == "perm":
            dev = max(np.max(np.abs(a.sum(-1) - 1)), np.max(np.abs(a.sum(-2) - 1)))
            notes.append(f"perm doubly stochastic to {dev:.1e}")
            ok = ok and dev < 1e-13
        elif a is not None and c["op"] == "layer":
            rows = np.max(np.abs(a.sum(-1) - 1))
            notes.append(f"max|rowsum(A)-1| {rows:.1e}")
        if cfg["projection"] in ("log", "exp") and c["special"] not in ("huge_logits", "huge_res_base"):
            other = dict(cfg, projection="exp" if cfg["projection"] == "log" else "log")
            agree = err_over_tol(run_case(c["op"], other, inp, c["n"]), exp, 1e-10, 1e-12)
            notes.append(f"log vs exp {agree:.2g}")
            ok = ok and agree < 0.1
        if c["special"] == "huge_logits":   # the column offsets must not matter
            z = inp["logits"].reshape(c["T"], c["n"], c["n"])
            shifted = dict(inp, logits=z - z.mean(axis=1, keepdims=True))
            inv = err_over_tol(run_case(c["op"], cfg, shifted, c["n"]), exp, 1e-10, 1e-12)
            notes.append(f"column-offset invariance {inv:.2g}")
            ok = ok and inv < 0.1
        print(f"{c['name']:42s} {pert:12.3g} {f32:10.3g}  {'; '.join(notes)}")
    # 4. spot checks of the formulas against plain loops
    z = torch.tensor(np.random.default_rng(2).normal(size=(1, 3, 3)))
    s = (torch.softmax(z, -1) + 1e-6)
    s = s / (s.sum(-2, keepdim=True) + 1e-6)
    assert torch.allclose(sinkhorn_softmax_start(z, 1, 1e-6), s, rtol=0, atol=0)
    m = torch.exp(z)[0].numpy().copy()
    for _ in range(2):
        for j in range(3):
            m[:, j] /= m[:, j].sum()
        for i in range(3):
            m[i, :] /= m[i, :].sum()
    assert np.allclose(sinkhorn_exp_start(z, 2, 0.0)[0].numpy(), m, rtol=1e-14, atol=0)
    p = permutations(3)
    assert p[0] == (0, 1, 2) and p[1] == (0, 2, 1) and p[-1] == (2, 1, 0)
    e = perm_mixture(torch.tensor([[0.0, 50.0, 0.0, 0.0, 0.0, 0.0]]), 3)[0]
    assert abs(e[1, 2].item() - 1) < 1e-15 and abs(e[2, 1].item() - 1) < 1e-15 and abs(e[0, 0].item() - 1) < 1e-15
    print("check:", "ok" if ok else "PROBLEMS (see above)")
    return ok


# ----------------------------------------------------------------------------------------------
# README
# ----------------------------------------------------------------------------------------------

README_HEAD = """# Golden vectors

Written by `tests/reference/make_vectors.py` (PyTorch, float64, autograd) from `MHC_SPEC.md` alone;
do not edit by hand. Regenerate (idempotent, identical bytes) and self-check with

    /usr/bin/python3 tests/reference/make_vectors.py
    /usr/bin/python3 tests/reference/make_vectors.py --check

`make test` never needs Python: the vectors are committed.

## Format

Each `tests/vectors/<case>/` holds

- `case.txt`: `key = value` lines. Always `op` (layer, sinkhorn or head), `preset` (dsv4,
  tilekernels, paper or lite), `n`, `dtype` (float64 or float32: the precision the computation
  runs in). Optional overrides on top of the preset: `sinkhorn_iters`, `sinkhorn_eps`,
  `norm_eps`, `pre_eps`, `post_mult`, `orient` (h or comb_t), `projection` (softmax, exp, log
  or perm). Floats are written as Python's repr (e.g. `1e-06`, `0.25`).
- the inputs as `.npy` (`<f8`, or `<f4` for float32 cases), C order;
- `expected/<output>.npy`, always `<f8`. For float32 cases the expected values are computed in
  float64 from the float32 input values.

| op | inputs | expected |
|---|---|---|
| layer | x [T,n,C], fn [m,n*C], scale [3], base [m], norm_weight [n*C] (optional), f_out [T,C], d_out [T,n,C], d_layer_input [T,C] | layer_input [T,C], h_pre [T,n], h_post [T,n], h_res [T,n,n] (A, after orientation), out [T,n,C], d_x, d_fn, d_scale, d_base, d_norm_weight (if given), d_f_out |
| sinkhorn | logits [T,n,n] ([T,n!] for perm), d_out [T,n,n] | out [T,n,n] (the projection's result, before orientation), d_logits |
| head | x [T,n,C], fn [n,n*C], scale [1], base [n], norm_weight (optional), d_out [T,C] | out [T,C], h_pre [T,n], d_x, d_fn, d_scale, d_base, d_norm_weight (if given) |

m = 2n + n*n for the Sinkhorn projections, m = 2n + n! for perm. Gradients are of
L = sum(d_out * out) + sum(d_layer_input * layer_input) (layer), L = sum(d_out * out) (sinkhorn,
head), exact for the truncated iteration that was run.

## Readings of the spec these vectors assume (for the lead to check)

- **Log domain with a nonzero eps.** The spec defines the log-domain projection only as "the same
  iteration [as exp start] carried out on log M with logsumexp". These vectors use the exact
  log-space image of the exp-start step M / (colsum(M) + eps):
  `L -= log(exp(logsumexp_i L) + eps) = logaddexp(logsumexp_i L, log eps)` (column step), then the
  same over j (row step); the result is exp(L). With eps = 0 this is plain logsumexp and agrees
  with exp start wherever exp start does not overflow. Only one case has projection = log with a
  nonzero eps: `sinkhorn_paper_n3_log_eps1e-2`; drop it if another rule is chosen.
- **perm ignores orient.** A = sum_k a_k P_k is built directly (spec: "no orientation step");
  the sinkhorn op's `out` for perm is that A. No case combines perm with an orient override.
- **sinkhorn_iters >= 1.** Softmax start with iters = 1 is softmax + eps followed by one column
  step (cases `layer_dsv4_n4_iters1`).
- **head** uses the preset's norm_eps and pre_eps (h = sigmoid(mix * scale[0] + base) + pre_eps).
- **Zero tokens.** With norm_eps 1e-20 (paper, lite) rsqrt(0 + 1e-20) = 1e10 is finite in float32
  and float64, so an all-zero token gives mix = 0 and finite (large, ~1e10) gradients
  (`layer_paper_n2_zero_token_T1`, T = 1 so no other token shares its tensors).

## Tolerances

Compare with `build/mhc compare OUT EXPECTED` (tools/compare.c): element k fails when
|out - exp| > atol * max(1, max|exp| over the tensor) + rtol * |exp|; defaults rtol 1e-10,
atol 1e-12 for float64 cases and rtol 1e-4, atol 1e-6 for float32 cases. `--check` reports, per
case, (a) how far a random 4e-16 relative perturbation of the inputs moves the outputs, as a
fraction of the float64 tolerance (it fails above 0.05: a case a correct float64 implementation
could miss), and (b) how far the same computation run in torch float32 (float32 sums, no double
accumulation) lands, as a fraction of the float32 tolerance (it fails above 0.5 for float32
cases). When these vectors were written: (a) at most 0.028 (layer_paper_n4_log_huge_res_logits;
every other case below 0.01), (b) at most 0.083 over the float32 cases (and below 0.25 over all
cases except the +-1000 logits one, which is float64 only). `--check` also verifies the perm
mixture is doubly stochastic, that exp start and log domain agree (eps 0 and the eps rule below),
and that the column offsets of the huge-logit case change nothing.

## Cases

| case | op | preset | n | T | C | dtype | overrides | norm_weight | what it covers |
|---|---|---|---|---|---|---|---|---|---|
"""


def projection_readme():
    """The section of tests/reference/make_projection_vectors.py (KromHC and orthostochastic cases)."""
    import make_projection_vectors as mpv
    if not mpv.CASES:
        mpv.build_cases()
    return mpv.readme_section()


def foreign_case(path):
    """A case directory another generator wrote (make_projection_vectors.py marks its case.txt)."""
    with open(os.path.join(path, "case.txt")) as f:
        return f.readline().startswith("# written by ")


def write_readme():
    rows = []
    for c in CASES:
        over = ", ".join(f"{k}={fmt(c['over'][k])}" for k in KNOBS if k in c["over"]) or "-"
        rows.append(f"| {c['name']} | {c['op']} | {c['preset']} | {c['n']} | {c['T']} | "
                    f"{'-' if c['op'] == 'sinkhorn' else c['C']} | {c['dtype']} | {over} | "
                    f"{'-' if c['op'] == 'sinkhorn' else ('yes' if c['nw'] else 'no')} | {c['desc']} |")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD + "\n".join(rows) + "\n")
        f.write(projection_readme())


def main():
    build_cases()
    if "--check" in sys.argv[1:]:
        return 0 if check() else 1
    os.makedirs(OUT, exist_ok=True)
    for entry in sorted(os.listdir(OUT)):   # remove every case this script wrote before
        p = os.path.join(OUT, entry)
        if os.path.isdir(p) and os.path.exists(os.path.join(p, "case.txt")) and not foreign_case(p):
            shutil.rmtree(p)
    for c in CASES:
        inp = make_inputs(c)
        exp = run_case(c["op"], config(c), inp, c["n"])
        for k, v in exp.items():
            assert np.all(np.isfinite(v)), (c["name"], k)
        write_case(c, inp, exp)
    write_readme()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {len(CASES)} cases to {OUT} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
