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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (tests/reference/peers.py: the peers' formulas, transcribed)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "vectors")

# Spec Sec. 4 and 8. projection: softmax (softmax start), exp (exp start), log (log domain), perm.
# The convention knobs of Sec. 8 (defaults: inside, flat, add, col_first, none).
DEFAULT_CONV = dict(norm_eps_mode="inside", norm_scope="flat", sinkhorn_eps_mode="add", sinkhorn_order="col_first",
                    exp_shift="none")
PRESETS = {
    "dsv4": dict(norm_eps=1e-6, pre_eps=1e-6, post_mult=2.0, projection="softmax",
                 sinkhorn_iters=20, sinkhorn_eps=1e-6, orient="comb_t", **DEFAULT_CONV),
    "tilekernels": dict(norm_eps=1e-6, pre_eps=1e-6, post_mult=1.0, projection="softmax",
                        sinkhorn_iters=10, sinkhorn_eps=1e-6, orient="comb_t", **DEFAULT_CONV),
    "paper": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, projection="exp",
                  sinkhorn_iters=20, sinkhorn_eps=0.0, orient="h", **DEFAULT_CONV),
    "lite": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, projection="perm",
                 sinkhorn_iters=None, sinkhorn_eps=None, orient=None, **DEFAULT_CONV),
    # the peers (Sec. 8; tests/reference/peers.py transcribes each one)
    "megatron": dict(norm_eps=1e-6, pre_eps=0.0, post_mult=2.0, projection="exp", sinkhorn_iters=20,
                     sinkhorn_eps=1e-6, orient="h", norm_eps_mode="outside", norm_scope="flat",
                     sinkhorn_eps_mode="clamp", sinkhorn_order="row_first", exp_shift="row_max"),
    "liger": dict(norm_eps=1e-6, pre_eps=0.0, post_mult=2.0, projection="softmax", sinkhorn_iters=20,
                  sinkhorn_eps=1e-6, orient="h", **DEFAULT_CONV),
    "lucidrains": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, projection="exp", sinkhorn_iters=20,
                       sinkhorn_eps=1e-12, orient="comb_t", norm_eps_mode="outside", norm_scope="stream",
                       sinkhorn_eps_mode="clamp", sinkhorn_order="col_first", exp_shift="col_max"),
    "mhc_cu": dict(norm_eps=1e-5, pre_eps=0.0, post_mult=2.0, projection="exp", sinkhorn_iters=20,
                   sinkhorn_eps=1e-5, orient="h", norm_eps_mode="inside", norm_scope="flat",
                   sinkhorn_eps_mode="zero", sinkhorn_order="row_first", exp_shift="none"),
}
KNOBS = ["sinkhorn_iters", "sinkhorn_eps", "norm_eps", "pre_eps", "post_mult", "orient", "projection",
         "norm_eps_mode", "norm_scope", "sinkhorn_eps_mode", "sinkhorn_order", "exp_shift"]


# ----------------------------------------------------------------------------------------------
# The mathematics (spec Sec. 2, 3, 5). z: [T, n, n] logits (or [T, n!] for perm).
# ----------------------------------------------------------------------------------------------

# The eps mode of every normalising division (Sec. 8) and the branch statistics the case search
# needs (how many lines took the eps branch, how close any sum came to eps).
MARGIN = dict(active=0, margin=math.inf)


def _note(s, eps):
    """Track the lines whose sum s is at or below eps, and the smallest |s - eps| / eps."""
    if eps > 0:
        sd = s.detach()
        MARGIN["active"] += int((sd <= eps).sum())
        MARGIN["margin"] = min(MARGIN["margin"], float(((sd - eps).abs() / eps).min()))


def _norm_step(m, dim, eps, mode):
    """m divided along dim by its sums s: add m/(s + eps); clamp m/max(s, eps) (torch.clamp passes the
    gradient at s == eps: the branch m/s); threshold m/s if s > eps else m; zero m/s if s > eps else 0."""
    s = m.sum(dim=dim, keepdim=True)
    if mode == "add":
        return m / (s + eps)
    _note(s, eps)
    if mode == "clamp":
        return m / s.clamp(min=eps)
    safe = torch.where(s > eps, s, torch.ones_like(s))       # (no division by a small s in the other branch)
    if mode == "threshold":
        return torch.where(s > eps, m / safe, m)
    if mode == "zero":
        return torch.where(s > eps, m / safe, torch.zeros_like(m))
    raise ValueError(mode)


def sinkhorn_softmax_start(z, iters, eps, mode="add"):
    """S = softmax_row(z) + eps; S /= colsum + eps; then iters-1 times: row step, column step."""
    s = torch.softmax(z, dim=-1) + eps
    s = _norm_step(s, -2, eps, mode)
    for _ in range(iters - 1):
        s = _norm_step(s, -1, eps, mode)
        s = _norm_step(s, -2, eps, mode)
    return s


def sinkhorn_exp_start(z, iters, eps, mode="add"):
    """M = exp(z); iters times: column step, then row step (T_r(T_c(M)))."""
    m = torch.exp(z)
    for _ in range(iters):
        m = _norm_step(m, -2, eps, mode)
        m = _norm_step(m, -1, eps, mode)
    return m


def _log_norm(lm, dim, eps):
    """log(sum(exp(lm)) + eps) along dim: logsumexp, and log(exp(lse) + eps) = logaddexp(lse, log eps)
    when eps > 0. This is the exp-start step M / (sum M + eps) carried out on log M exactly."""
    lse = torch.logsumexp(lm, dim=dim, keepdim=True)
    if eps == 0:
        return lse
    return torch.logaddexp(lse, torch.full_like(lse, math.log(eps)))


def _log_step(lm, dim, eps, mode):
    """The exp-start step in the log domain under the eps mode: add lm - logaddexp(lse, log eps);
    clamp lm - max(lse, log eps); threshold lm - lse if lse > log eps else lm; zero ... else -inf."""
    if mode == "add":
        return lm - _log_norm(lm, dim, eps)
    # logsumexp, -inf for a line the zero mode emptied (and no NaN in its gradient)
    dead = lm.detach().amax(dim=dim, keepdim=True) == -math.inf
    lse = torch.logsumexp(torch.where(dead, torch.zeros_like(lm), lm), dim=dim, keepdim=True)
    lse = torch.where(dead, torch.full_like(lse, -math.inf), lse)
    leps = math.log(eps) if eps > 0 else -math.inf
    if eps > 0:
        _note(torch.exp(lse), eps)
    if mode == "clamp":
        return lm - torch.clamp(lse, min=leps)
    keep = lse > leps
    if mode == "threshold":
        return torch.where(keep, lm - torch.where(keep, lse, torch.zeros_like(lse)), lm)
    if mode == "zero":
        return torch.where(keep, lm - torch.where(keep, lse, torch.zeros_like(lse)), torch.full_like(lm, -math.inf))
    raise ValueError(mode)


def sinkhorn_log_domain(z, iters, eps, mode="add"):
    """The exp-start iteration on L = log M: L -= log(colsum + eps); L -= log(rowsum + eps); exp(L)."""
    lm = z
    for _ in range(iters):
        lm = _log_step(lm, -2, eps, mode)
        lm = _log_step(lm, -1, eps, mode)
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
    """The projection's own result (before orientation). z: [T, n*n] or [T, n!]. Sec. 8: the exp
    and log starts from z minus each row's or column's max (exp_shift, taken on z itself, the max
    a function of z); row_first = the col_first projection of the transposed logits, transposed back."""
    t = z.shape[0]
    proj = cfg["projection"]
    if proj == "perm":
        return perm_mixture(z, n)
    zz = z.reshape(t, n, n)
    shift = cfg.get("exp_shift", "none")
    if proj in ("exp", "log") and shift == "row_max":
        zz = zz - zz.amax(dim=-1, keepdim=True)
    elif proj in ("exp", "log") and shift == "col_max":
        zz = zz - zz.amax(dim=-2, keepdim=True)
    row_first = cfg.get("sinkhorn_order", "col_first") == "row_first"
    if row_first:
        zz = zz.transpose(-1, -2)
    mode, iters, eps = cfg.get("sinkhorn_eps_mode", "add"), cfg["sinkhorn_iters"], cfg["sinkhorn_eps"]
    if proj == "softmax":
        out = sinkhorn_softmax_start(zz, iters, eps, mode)
    elif proj == "exp":
        out = sinkhorn_exp_start(zz, iters, eps, mode)
    elif proj == "log":
        out = sinkhorn_log_domain(zz, iters, eps, mode)
    else:
        raise ValueError(proj)
    return out.transpose(-1, -2) if row_first else out


def _rstd(xx, dim, eps, mode):
    """inside: 1/sqrt(mean(x^2) + eps); outside: 1/(sqrt(mean(x^2)) + eps), with the root as a norm
    (torch's norm backward takes the subgradient 0 at 0, as the spec does)."""
    if mode == "outside":
        return 1.0 / (torch.linalg.vector_norm(xx, dim=dim, keepdim=True) / math.sqrt(xx.shape[dim]) + eps)
    return torch.rsqrt((xx * xx).mean(dim=dim, keepdim=True) + eps)


def mixing_logits(x, fn, nw, norm_eps, mode="inside", scope="flat"):
    """flat: mix[t,k] = (sum_j xf[j] w[k][j]) * rstd(xf), w = fn * norm_weight; stream (Sec. 8):
    mix[t,k] = sum_i rstd(x_i) dot(w[k, iC:(i+1)C], x_i)."""
    t, n, c = x.shape
    xf = x.reshape(t, n * c)
    w = fn * nw[None, :] if nw is not None else fn
    if scope == "stream":
        r = _rstd(x, -1, norm_eps, mode)                       # [T, n, 1]
        return torch.einsum("tic,kic->tk", x * r, w.reshape(-1, n, c))
    r = _rstd(xf, -1, norm_eps, mode)
    return (xf @ w.T) * r


def layer_forward(x, fn, scale, base, nw, f_out, cfg):
    t, n, c = x.shape
    mix = mixing_logits(x, fn, nw, cfg["norm_eps"], cfg.get("norm_eps_mode", "inside"), cfg.get("norm_scope", "flat"))
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
    mix = mixing_logits(x, fn, nw, cfg["norm_eps"], cfg.get("norm_eps_mode", "inside"), cfg.get("norm_scope", "flat"))
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


def case(name, op, preset, n, T=4, C=8, dtype="float64", nw=False, special=None, desc="", peer=False, search=False,
         **over):
    """peer: the expected values come from tests/reference/peers.py's transcription of the preset's
    peer (its parameters drawn in the peer's layout, mapped onto the case's inputs). search: an eps
    mode case; its inputs are the first draw (seeds crc32(name) + k) where some line takes the eps
    branch and no line sum comes within 2% of eps (the branches switch there)."""
    for k in over:
        assert k in KNOBS, k
    assert not any(c["name"] == name for c in CASES), name
    CASES.append(dict(name=name, op=op, preset=preset, n=n, T=T, C=C, dtype=dtype, nw=nw,
                      special=special, desc=desc, over=over, peer=peer, search=search))


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
    build_knob_cases()
    build_peer_cases()


def build_knob_cases():
    """Every value of the convention knobs of Sec. 8, on the spec alone."""
    # norm_eps_mode, norm_scope (layer and head)
    case("layer_dsv4_n4_norm_eps_mode_outside", "layer", "dsv4", 4, nw=True, norm_eps_mode="outside", norm_eps=0.5,
         desc="rstd = 1/(sqrt(mean x^2) + 0.5): eps outside the root")
    case("layer_dsv4_n4_norm_eps_mode_inside", "layer", "dsv4", 4, norm_eps_mode="inside", norm_eps=0.5,
         desc="the default, asked for by name")
    case("layer_paper_n4_norm_scope_stream", "layer", "paper", 4, nw=True, norm_scope="stream",
         desc="one rstd per stream over its C values")
    case("layer_dsv4_n3_norm_scope_flat", "layer", "dsv4", 3, norm_scope="flat", desc="the default, asked for by name")
    case("layer_dsv4_n3_norm_stream_outside", "layer", "dsv4", 3, nw=True, norm_scope="stream", norm_eps_mode="outside",
         norm_eps=0.25, desc="per-stream rstd with eps outside the root")
    case("layer_dsv4_n4_norm_outside_tiny_and_zero_tokens", "layer", "dsv4", 4, T=3, special="tiny_zero",
         norm_eps_mode="outside", desc="eps outside: a zero token has rstd 1/eps, its d rstd/dx is taken as 0")
    case("head_dsv4_n4_norm_eps_mode_outside", "head", "dsv4", 4, nw=True, norm_eps_mode="outside", norm_eps=0.5,
         desc="the head with eps outside the root")
    case("head_paper_n4_norm_scope_stream", "head", "paper", 4, nw=True, norm_scope="stream",
         desc="the head with one rstd per stream")
    case("head_dsv4_n2_norm_stream_outside", "head", "dsv4", 2, norm_scope="stream", norm_eps_mode="outside",
         norm_eps=0.25, desc="the head, both norm knobs")
    # sinkhorn_eps_mode: each mode where its eps branch is taken (the search picks such inputs)
    for mode in ["add", "clamp", "threshold", "zero"]:
        case(f"sinkhorn_paper_n4_eps_mode_{mode}", "sinkhorn", "paper", 4, search=mode != "add", sinkhorn_eps_mode=mode,
             sinkhorn_eps=0.5 if mode != "add" else 0.1, desc=f"exp start, every division {mode} (eps 0.5)")
        case(f"sinkhorn_paper_n3_log_eps_mode_{mode}", "sinkhorn", "paper", 3, search=mode != "add", projection="log",
             sinkhorn_eps_mode=mode, sinkhorn_eps=0.5 if mode != "add" else 0.1,
             desc=f"log domain, {mode}: the same rules on logsumexp against log eps")
        case(f"sinkhorn_dsv4_n4_eps_mode_{mode}", "sinkhorn", "dsv4", 4, search=mode != "add", sinkhorn_eps_mode=mode,
             sinkhorn_eps=2.0 if mode != "add" else 0.1,
             desc=f"softmax start, {mode} (eps 2: the start's entries are at least eps, its column sums 4 eps)")
    case("layer_paper_n4_eps_mode_clamp", "layer", "paper", 4, nw=True, search=True, sinkhorn_eps_mode="clamp",
         sinkhorn_eps=0.5, desc="the layer with v/max(s, eps)")
    case("layer_paper_n3_eps_mode_threshold", "layer", "paper", 3, search=True, sinkhorn_eps_mode="threshold",
         sinkhorn_eps=0.5, desc="the layer with v/s only when s > eps")
    case("layer_dsv4_n4_eps_mode_zero", "layer", "dsv4", 4, search=True, sinkhorn_eps_mode="zero", sinkhorn_eps=2.0,
         desc="the layer, softmax start, lines with s <= eps zeroed")
    # sinkhorn_order
    for proj, preset in [("softmax", "dsv4"), ("exp", "paper"), ("log", "paper")]:
        case(f"sinkhorn_{preset}_n4_{proj}_row_first", "sinkhorn", preset, 4, projection=proj, sinkhorn_order="row_first",
             desc=f"{proj}: the col_first projection of z^T, transposed back")
    case("sinkhorn_paper_n3_col_first", "sinkhorn", "paper", 3, sinkhorn_order="col_first",
         desc="the default, asked for by name")
    case("layer_paper_n4_row_first", "layer", "paper", 4, nw=True, sinkhorn_order="row_first", desc="exp start, rows first")
    case("layer_dsv4_n3_row_first", "layer", "dsv4", 3, sinkhorn_order="row_first", desc="softmax start, rows first")
    # exp_shift
    for shift in ["none", "row_max", "col_max"]:
        case(f"sinkhorn_paper_n4_exp_shift_{shift}", "sinkhorn", "paper", 4, exp_shift=shift, sinkhorn_eps=1e-3,
             desc=f"exp start from exp(z - {shift}) (eps 1e-3: the shift is not a no-op)")
        case(f"sinkhorn_paper_n3_log_exp_shift_{shift}", "sinkhorn", "paper", 3, projection="log", exp_shift=shift,
             sinkhorn_eps=1e-3, desc=f"log start from z - {shift}")
    case("sinkhorn_paper_n4_exp_shift_row_max_row_first_eps0", "sinkhorn", "paper", 4, exp_shift="row_max",
         sinkhorn_order="row_first", desc="a row shift before a row step, eps 0: the shift cancels exactly")
    case("sinkhorn_paper_n4_exp_shift_col_max_logits715", "sinkhorn", "paper", 4, special="logits715",
         exp_shift="col_max", desc="logits 715 + N(0, 1.5): exp(z) overflows; exp(z - colmax) does not")
    case("sinkhorn_megatron_n4_logits715", "sinkhorn", "megatron", 4, special="logits715",
         desc="the megatron preset (row_max) at logits ~715")
    case("layer_paper_n4_exp_shift_row_max", "layer", "paper", 4, exp_shift="row_max", sinkhorn_eps=1e-3,
         desc="the layer from exp(z - rowmax)")
    case("layer_paper_n4_exp_shift_col_max_res715", "layer", "paper", 4, special="res715", exp_shift="col_max",
         desc="res logits 715 + N(0, 1.5) (base): only the shifted start stays finite")
    # all together; float32
    case("layer_dsv4_n4_all_convention_knobs", "layer", "dsv4", 4, nw=True, search=True, norm_eps_mode="outside",
         norm_scope="stream", sinkhorn_eps_mode="threshold", sinkhorn_eps=2.0, sinkhorn_order="row_first",
         desc="softmax start: every norm and Sinkhorn knob at once")
    case("layer_paper_n3_all_convention_knobs", "layer", "paper", 3, search=True, norm_eps_mode="outside",
         norm_scope="stream", sinkhorn_eps_mode="clamp", sinkhorn_eps=0.5, sinkhorn_order="row_first",
         exp_shift="col_max", norm_eps=0.1, desc="exp start: every knob at once")
    case("layer_paper_n4_knobs_f32", "layer", "paper", 4, dtype="float32", norm_eps_mode="outside", norm_scope="stream",
         sinkhorn_order="row_first", exp_shift="row_max", norm_eps=1e-3, desc="float32, several knobs")
    case("sinkhorn_paper_n4_knobs_f32", "sinkhorn", "paper", 4, dtype="float32", exp_shift="col_max",
         sinkhorn_order="row_first", sinkhorn_eps=1e-3, desc="float32")


def build_peer_cases():
    """The peers' presets: expected values from tests/reference/peers.py (the peer's formulas and
    parameter layout); the case's inputs are the peer's tensors mapped as README's table says."""
    for peer in ["megatron", "liger", "lucidrains", "mhc_cu"]:
        for n in [2, 3, 4]:
            case(f"layer_{peer}_n{n}", "layer", peer, n, peer=True, nw=peer == "lucidrains",
                 desc=f"{peer}'s layer (peers.py), n={n}")
        case(f"layer_{peer}_n4_T8_C16", "layer", peer, 4, T=8, C=16, peer=True, nw=peer == "lucidrains",
             desc=f"{peer}, T = 8, C = 16")
        case(f"layer_{peer}_n4_f32", "layer", peer, 4, dtype="float32", peer=True, nw=peer == "lucidrains",
             desc=f"{peer}, float32")
        for n in [3, 4]:
            case(f"sinkhorn_{peer}_n{n}", "sinkhorn", peer, n, peer=True, desc=f"{peer}'s projection alone, n={n}")
    case("layer_megatron_n8", "layer", "megatron", 8, C=4, peer=True, desc="megatron, n = 8")
    case("layer_mhc_cu_n8", "layer", "mhc_cu", 8, C=4, peer=True, desc="mhc_cu, n = 8 (its general batched kernel)")
    case("layer_megatron_n4_tiny_and_zero_tokens", "layer", "megatron", 4, T=3, special="tiny_zero", peer=True,
         desc="Megatron's 1/(||x||/sqrt(nC) + 1e-6) at a tiny and an all-zero token")
    case("layer_lucidrains_n4_init", "layer", "lucidrains", 4, nw=True, special="peer_init", peer=True,
         desc="lucidrains' initial values (static_alpha = [onehot | I], scales 1e-2, zero dynamic weights plus noise)")


def huge_offsets(rng, n):
    """Offsets c_j in +-1000 added to column j of the logits (z[i][j] += c_j). exp(z) overflows or
    underflows, so exp start fails, but M = K diag(exp(c)) gives exactly the same column-normalised
    matrix as K: with eps = 0 the exp-start / log-domain result does not depend on c at all, so the
    expected values are those of the N(0, 1.5) logits alone (--check verifies it), non-trivial."""
    return rng.uniform(-1000, 1000, size=(1, n))


def make_inputs(c):
    """The case's inputs as float64 numpy arrays (rounded through float32 for float32 cases). Peer
    cases keep the peer's own parameters in c["_P"] (for peer_expected)."""
    seed = zlib.crc32(c["name"].encode())
    if c["peer"]:
        P = peer_params(c, np.random.default_rng(seed))
        c["_P"] = P
        return peer_to_ours(c, P)
    if not c["search"]:
        return _make_inputs(c, np.random.default_rng(seed))
    for k in range(200):
        inp = _make_inputs(c, np.random.default_rng(seed + k))
        MARGIN["active"], MARGIN["margin"] = 0, math.inf
        run_case(c["op"], config(c), inp, c["n"])
        if MARGIN["active"] > 0 and MARGIN["margin"] > 0.02:
            c["_draw"] = k
            return inp
    raise RuntimeError(f"{c['name']}: no draw takes the eps branch 2% away from eps")


def _make_inputs(c, rng):
    op, n, T, C, sp = c["op"], c["n"], c["T"], c["C"], c["special"]
    perm = (c["over"].get("projection", PRESETS[c["preset"]]["projection"]) == "perm")
    nres = math.factorial(n) if perm else n * n
    inp = {}
    if op == "sinkhorn":
        if sp == "large_logits":
            logits = rng.uniform(-30, 30, size=(T, nres))
        elif sp == "huge_logits":   # N(0, 1.5) plus a column offset in +-1000 (see huge_offsets)
            logits = (rng.normal(0, 1.5, size=(T, n, n)) + huge_offsets(rng, n)).reshape(T, nres)
        elif sp == "logits715":     # above log(DBL_MAX) ~ 709.78: exp(z) overflows
            logits = 715.0 + rng.normal(0, 1.5, size=(T, nres))
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
        elif sp == "res715":
            base[2 * n:] = 715.0 + rng.normal(0, 1.5, size=(nres,))
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


# ----------------------------------------------------------------------------------------------
# The peers' cases: parameters in the peer's own layout, mapped onto the case's inputs (README.md,
# "Conventions"), expected values from the peer's formulas (tests/reference/peers.py).
# ----------------------------------------------------------------------------------------------

def peer_params(c, rng):
    """The peer's tensors (numpy float64; rounded through float32 for float32 cases)."""
    peer, op, n, T, C, sp = c["preset"], c["op"], c["n"], c["T"], c["C"], c["special"]
    m, nc = 2 * n + n * n, n * C
    std = min(0.5, max(0.02, 1.0 / math.sqrt(nc)))
    P = {}
    if op == "sinkhorn":
        P["logits"] = rng.normal(0, 1.5, size=(T, n, n))
        P["d_out"] = rng.normal(0, 1, size=(T, n, n))
    else:
        x = rng.normal(0, 1, size=(T, n, C))
        if sp == "tiny_zero":
            x[1] *= 1e-8
            x[2] = 0.0
        P["x"] = x
        P["f_out"] = rng.normal(0, 1, size=(T, C))
        P["d_out"] = rng.normal(0, 1, size=(T, n, C))
        P["d_layer_input"] = rng.normal(0, 1, size=(T, C))
        if peer == "megatron":       # hyper_connection.py lines 182-194
            P["weight"] = rng.normal(0, std, size=(m, nc))
            for a in ("alpha_pre", "alpha_post", "alpha_res"):
                P[a] = rng.uniform(0.1, 1.0, size=(1,))
            P["bias"] = rng.normal(0, 1, size=(m,))
        elif peer == "liger":        # transformers/mhc.py lines 122-126
            P["phi"] = rng.normal(0, std, size=(nc, m))
            P["b"] = rng.normal(0, 1, size=(m,))
            for a in ("alpha_pre", "alpha_post", "alpha_res"):
                P[a] = rng.uniform(0.1, 1.0, size=())
        elif peer == "mhc_cu":       # mhc_layer.cuh lines 29-82, python/mhc/layer.py lines 43-54
            P["phi_combined"] = rng.normal(0, std, size=(m, nc))
            P["b_pre"] = rng.normal(0, 1, size=(n,))
            P["b_post"] = rng.normal(0, 1, size=(n,))
            P["b_res"] = rng.normal(0, 1, size=(n, n))
            for a in ("alpha_pre", "alpha_post", "alpha_res"):
                P[a] = rng.uniform(0.1, 1.0, size=())
        elif peer == "lucidrains":   # mHCv2.py lines 305-326
            sd = min(0.5, max(0.02, 1.0 / math.sqrt(C)))
            P["gamma"] = rng.normal(0, 0.2, size=(C,))
            P["static_alpha"] = rng.normal(0, 1, size=(n, 1 + n))
            P["dynamic_alpha_fn"] = rng.normal(0, sd, size=(1, C, 1 + n))
            P["pre_branch_scale"] = rng.uniform(0.1, 1.0, size=(1,))
            P["residual_scale"] = rng.uniform(0.1, 1.0, size=(1,))
            P["static_beta"] = rng.normal(0, 1, size=(n, 1, 1))
            P["dynamic_beta_fn"] = rng.normal(0, sd, size=(C, 1))
            P["h_post_scale"] = rng.uniform(0.1, 1.0, size=())
            if sp == "peer_init":    # the peer's initial values (lines 307-326), small noise on the zero weights
                sa = np.zeros((n, 1 + n))
                sa[1 % n, 0] = 1.0   # init_residual_index = layer_index % n, layer_index 1
                sa[:, 1:] = np.eye(n)
                P["static_alpha"] = sa
                P["dynamic_alpha_fn"] *= 0.05
                P["dynamic_beta_fn"] *= 0.05
                P["gamma"][:] = 0.0
                P["pre_branch_scale"][:] = 1e-2
                P["residual_scale"][:] = 1e-2
                P["static_beta"][:] = 1.0
                P["h_post_scale"] = np.array(1e-2)
        else:
            raise ValueError(peer)
    if c["dtype"] == "float32":
        P = {k: np.asarray(v).astype(np.float32).astype(np.float64) for k, v in P.items()}
    return P


def peer_to_ours(c, P):
    """The mapping of README's conventions table: the peer's tensors as x, fn, scale, base
    (norm_weight)."""
    peer, op, n, C = c["preset"], c["op"], c["n"], c["C"]
    if op == "sinkhorn":
        return dict(logits=P["logits"], d_out=P["d_out"])
    inp = dict(x=P["x"])
    if peer == "megatron":           # fn = mapping_proj.weight; scale = alphas; base = bias
        inp["fn"] = P["weight"]
        inp["scale"] = np.concatenate([P["alpha_pre"], P["alpha_post"], P["alpha_res"]])
        inp["base"] = P["bias"]
    elif peer == "liger":            # fn = phi^T
        inp["fn"] = P["phi"].T.copy()
        inp["scale"] = np.array([P["alpha_pre"], P["alpha_post"], P["alpha_res"]], dtype=np.float64)
        inp["base"] = P["b"]
    elif peer == "mhc_cu":           # fn = phi_combined; base = [b_pre | b_post | b_res]
        inp["fn"] = P["phi_combined"]
        inp["scale"] = np.array([P["alpha_pre"], P["alpha_post"], P["alpha_res"]], dtype=np.float64)
        inp["base"] = np.concatenate([P["b_pre"], P["b_post"], P["b_res"].reshape(-1)])
    elif peer == "lucidrains":       # block sparse fn; norm_weight = gamma + 1 in every stream
        fn = np.zeros((2 * n + n * n, n * C))
        W, B = P["dynamic_alpha_fn"][0], P["dynamic_beta_fn"][:, 0]
        for si in range(n):
            cols = slice(si * C, (si + 1) * C)
            fn[si, cols] = W[:, 0]                    # pre gate of stream si
            fn[n + si, cols] = B                      # post gate of stream si
            for u in range(n):
                fn[2 * n + si * n + u, cols] = W[:, 1 + u]   # residual logit H[si][u]
        inp["fn"] = fn
        inp["scale"] = np.array([P["pre_branch_scale"][0], float(P["h_post_scale"]), P["residual_scale"][0]])
        inp["base"] = np.concatenate([P["static_alpha"][:, 0], P["static_beta"].reshape(-1),
                                      P["static_alpha"][:, 1:].reshape(-1)])
        inp["norm_weight"] = np.tile(P["gamma"] + 1.0, n)
    inp["f_out"] = P["f_out"]
    inp["d_out"] = P["d_out"]
    inp["d_layer_input"] = P["d_layer_input"]
    return inp


def peer_expected(c, P, dtype=torch.float64):
    """The peer transcription's outputs and gradients, the gradients mapped onto the case's
    inputs (d_fn, d_scale, d_base, d_norm_weight in our layout)."""
    peer, op, n, C = c["preset"], c["op"], c["n"], c["C"]
    L = {k: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=True) for k, v in P.items()
         if k not in ("d_out", "d_layer_input")}
    K = {k: torch.tensor(np.asarray(P[k]), dtype=dtype) for k in ("d_out", "d_layer_input") if k in P}
    if op == "sinkhorn":
        z = L["logits"]
        if peer == "megatron":
            out = peers.megatron_sinkhorn(z)
        elif peer == "liger":
            out = peers.liger_sinkhorn(z)
        elif peer == "lucidrains":
            out = peers.lucidrains_sinkhorn(z)
        else:
            out = peers.mhc_cu_sinkhorn(torch.exp(z))
        (g,) = torch.autograd.grad((K["d_out"] * out).sum(), [z])
        return {"out": out.detach().to(torch.float64).numpy(), "d_logits": g.to(torch.float64).numpy()}
    if peer == "lucidrains":
        gs = (L["gamma"].detach() + 1).expand(n, C).clone().requires_grad_(True)
        fw = peers.lucidrains_layer(L["x"], L["gamma"], L["static_alpha"], L["dynamic_alpha_fn"], L["pre_branch_scale"],
                                    L["residual_scale"], L["static_beta"], L["dynamic_beta_fn"], L["h_post_scale"],
                                    L["f_out"], extra=True, gamma_streams=gs)
        fw["_wc_weight"].retain_grad()
        fw["_dc_weight"].retain_grad()
    elif peer == "megatron":
        fw = peers.megatron_layer(L["x"], L["weight"], L["alpha_pre"], L["alpha_post"], L["alpha_res"], L["bias"],
                                  L["f_out"])
    elif peer == "liger":
        fw = peers.liger_layer(L["x"], L["phi"], L["b"], L["alpha_pre"], L["alpha_post"], L["alpha_res"], L["f_out"])
    else:
        fw = peers.mhc_cu_layer(L["x"], L["phi_combined"], L["b_pre"], L["b_post"], L["b_res"], L["alpha_pre"],
                                L["alpha_post"], L["alpha_res"], L["f_out"])
    loss = (K["d_out"] * fw["out"]).sum() + (K["d_layer_input"] * fw["layer_input"]).sum()
    leaves = [L[k] for k in L] + ([gs] if peer == "lucidrains" else [])
    grads = dict(zip(list(L) + (["_gs"] if peer == "lucidrains" else []),
                     torch.autograd.grad(loss, leaves, allow_unused=True)))
    res = {k: fw[k] for k in ("layer_input", "h_pre", "h_post", "h_res", "out")}
    res["d_x"] = grads["x"]
    res["d_f_out"] = grads["f_out"]
    if peer == "megatron":
        res["d_fn"] = grads["weight"]
        res["d_scale"] = torch.cat([grads["alpha_pre"], grads["alpha_post"], grads["alpha_res"]])
        res["d_base"] = grads["bias"]
    elif peer == "liger":
        res["d_fn"] = grads["phi"].T
        res["d_scale"] = torch.stack([grads["alpha_pre"], grads["alpha_post"], grads["alpha_res"]])
        res["d_base"] = grads["b"]
    elif peer == "mhc_cu":
        res["d_fn"] = grads["phi_combined"]
        res["d_scale"] = torch.stack([grads["alpha_pre"], grads["alpha_post"], grads["alpha_res"]])
        res["d_base"] = torch.cat([grads["b_pre"], grads["b_post"], grads["b_res"].reshape(-1)])
    else:
        # our logit k = sum_j fn[k][j] normed[j] over all n*C columns: d fn[k] = sum_t d logit[t][k] normed[t]
        normed = fw["_normed"].detach().reshape(-1, n * C)
        dwc, ddc = fw["_wc_weight"].grad, fw["_dc_weight"].grad           # [T, s, 1 + s], [T, s, 1]
        dlog = torch.cat([dwc[:, :, 0], ddc[:, :, 0], dwc[:, :, 1:].reshape(-1, n * n)], dim=1)
        res["d_fn"] = dlog.T @ normed
        res["d_scale"] = torch.cat([grads["pre_branch_scale"], grads["h_post_scale"].reshape(1), grads["residual_scale"]])
        res["d_base"] = torch.cat([grads["static_alpha"][:, 0], grads["static_beta"].reshape(-1),
                                   grads["static_alpha"][:, 1:].reshape(-1)])
        res["d_norm_weight"] = grads["_gs"].reshape(-1)
        res["_d_gamma"] = grads["gamma"] if grads["gamma"] is not None else torch.zeros(C, dtype=dtype)
    return {k: v.detach().to(torch.float64).numpy() for k, v in res.items()}


def expected(c, inp, dtype=torch.float64):
    """The case's expected outputs: the peer transcription for peer cases, else the spec."""
    if c["peer"]:
        e = peer_expected(c, c["_P"], dtype)
        return {k: v for k, v in e.items() if not k.startswith("_")}
    return run_case(c["op"], config(c), inp, c["n"], dtype)


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
    peer_worst = {}
    for c in CASES:
        cfg = config(c)
        inp = make_inputs(c)
        exp = expected(c, inp)
        notes = []
        # 1. conditioning: relative input perturbations of 4e-16 should move the outputs far less
        #    than the float64 tolerance (else the case cannot be met by a correct C implementation).
        #    Peer cases perturb the peer's own tensors.
        rng = np.random.default_rng(1)
        if c["peer"]:
            P0 = c["_P"]
            c["_P"] = {k: np.asarray(v) * (1 + 4e-16 * rng.choice([-1.0, 1.0], size=np.shape(v))) for k, v in P0.items()}
            pert = err_over_tol(expected(c, inp), exp, 1e-10, 1e-12)
            c["_P"] = P0
        else:
            pin = {k: v * (1 + 4e-16 * rng.choice([-1.0, 1.0], size=v.shape)) for k, v in inp.items()}
            pert = err_over_tol(run_case(c["op"], cfg, pin, c["n"]), exp, 1e-10, 1e-12)
        # 2. the same computation in float32 against the float32 tolerance
        f32 = err_over_tol(expected(c, inp, torch.float32), exp, 1e-4, 1e-6)
        # peers: the spec with the preset's knobs on the mapped inputs against the transcription
        if c["peer"]:
            agree = err_over_tol(run_case(c["op"], cfg, inp, c["n"]), exp, 1e-10, 1e-12)
            notes.append(f"spec vs {c['preset']} transcription {agree:.2g}")
            peer_worst[c["preset"]] = max(peer_worst.get(c["preset"], 0.0), agree)
            ok = ok and agree < 0.5
            if c["preset"] == "lucidrains" and c["op"] == "layer":
                # the peer's own d gamma (gamma a leaf, as the peer has it) is the sum over the streams
                # of the expected d_norm_weight; and the v1 file gives the v2 file's numbers
                L = {k: torch.tensor(np.asarray(v), requires_grad=k == "gamma") for k, v in c["_P"].items()}
                fw = peers.lucidrains_layer(L["x"], L["gamma"], L["static_alpha"], L["dynamic_alpha_fn"],
                                            L["pre_branch_scale"], L["residual_scale"], L["static_beta"],
                                            L["dynamic_beta_fn"], L["h_post_scale"], L["f_out"])
                lossg = (L["d_out"] * fw["out"]).sum() + (L["d_layer_input"] * fw["layer_input"]).sum()
                (dgam,) = torch.autograd.grad(lossg, [L["gamma"]])
                dg = np.abs(dgam.numpy() - exp["d_norm_weight"].reshape(c["n"], c["C"]).sum(0)).max()
                v1 = peers.lucidrains_v1_layer(L["x"], L["gamma"], L["static_alpha"], L["dynamic_alpha_fn"],
                                               L["pre_branch_scale"], L["residual_scale"], L["static_beta"][:, 0, 0],
                                               L["dynamic_beta_fn"][:, 0], L["h_post_scale"], L["f_out"])
                dv = max(float((v1[k] - torch.tensor(exp[k])).abs().max()) for k in ("out", "h_res", "layer_input"))
                notes.append(f"d_gamma = sum over streams of d_norm_weight to {dg:.1e}; v1 file = v2 to {dv:.1e}")
                ok = ok and dg < 1e-12 and dv < 1e-13
        # (logits of 715: a relative 4e-16 moves each logit by 3e-13 absolute, far more than the
        # rounding of a correct implementation, which subtracts the max exactly: allowed 0.2)
        if pert > (0.2 if c["special"] in ("logits715", "res715") else 0.05):
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
        if cfg["projection"] in ("log", "exp") and not c["peer"] and \
                c["special"] not in ("huge_logits", "huge_res_base", "logits715", "res715"):
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
    for k, v in peer_worst.items():
        print(f"peer {k}: the spec with the {k} preset against the transcription (peers.py), worst err/tol {v:.3g}")
    print("check:", "ok" if ok else "PROBLEMS (see above)")
    return ok


# ----------------------------------------------------------------------------------------------
# README
# ----------------------------------------------------------------------------------------------

README_HEAD = """# Golden vectors

Written by `tests/reference/make_vectors.py` (PyTorch, float64, autograd) from `MHC_SPEC.md` alone,
except the peer cases (below), whose expected values come from `tests/reference/peers.py`; do not
edit by hand. Regenerate (idempotent, identical bytes) and self-check with

    /usr/bin/python3 tests/reference/make_vectors.py
    /usr/bin/python3 tests/reference/make_vectors.py --check

`make test` never needs Python: the vectors are committed.

## Format

Each `tests/vectors/<case>/` holds

- `case.txt`: `key = value` lines. Always `op` (layer, sinkhorn or head), `preset` (dsv4,
  tilekernels, paper, lite, megatron, liger, lucidrains or mhc_cu), `n`, `dtype` (float64 or
  float32: the precision the computation runs in). Optional overrides on top of the preset:
  `sinkhorn_iters`, `sinkhorn_eps`, `norm_eps`, `pre_eps`, `post_mult`, `orient` (h or comb_t),
  `projection` (softmax, exp, log or perm), and the convention knobs of MHC_SPEC.md Sec. 8:
  `norm_eps_mode` (inside or outside), `norm_scope` (flat or stream), `sinkhorn_eps_mode` (add,
  clamp, threshold or zero), `sinkhorn_order` (col_first or row_first), `exp_shift` (none,
  row_max or col_max). Floats are written as Python's repr (e.g. `1e-06`, `0.25`).
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

- **The convention knobs (Sec. 8).** The eps modes divide by s + eps (add), max(s, eps) (clamp;
  torch.clamp passes the gradient at s == eps, i.e. the branch v/s, as mhc.h documents), s only
  when s > eps (threshold: else v; zero: else 0); in the log domain the same rules on logsumexp
  against log eps. The additive eps after the softmax start stays. The eps-mode cases (marked
  search in the generator) use the first draw where some line takes the eps branch and no line sum
  comes within 2% of eps. row_first is the col_first projection of z^T transposed back; exp_shift
  subtracts each row's or column's max of z itself (before any transposition), the max a function
  of z (torch.amax's gradient; no ties in these draws). The outside norm is 1/(||x||/sqrt(L) +
  eps), whose derivative torch takes as 0 at x = 0 (`layer_dsv4_n4_norm_outside_tiny_and_zero_tokens`).

## The peer cases

`layer_<peer>_*` and `sinkhorn_<peer>_*` for peer = megatron, liger, lucidrains, mhc_cu: the
parameters are drawn in the peer's own layout and shapes, the expected values are the peer's own
formulas in float64 (tests/reference/peers.py: a transcription of each peer's file at the snapshot
named there, with the file's lines cited; no peer code), and the case's inputs are the peer's
tensors mapped onto `x`, `fn`, `scale`, `base` (`norm_weight`) as README.md's conventions table
says: megatron fn = mapping_proj.weight, scale = [alpha_pre, alpha_post, alpha_res], base = bias;
liger fn = phi^T, base = b; mhc_cu fn = phi_combined, base = [b_pre | b_post | b_res]; lucidrains
fn block sparse (stream s's pre, post and residual logits read stream s's columns:
dynamic_alpha_fn[:, 0], dynamic_beta_fn, dynamic_alpha_fn[:, 1 + u]), norm_weight = gamma + 1 in
every stream, scale = [pre_branch_scale, h_post_scale, residual_scale], base = [static_alpha[:, 0]
| static_beta | static_alpha[:, 1:]]. The gradients are the transcription's, mapped the same way
(lucidrains: d_fn[k] = sum over tokens of d logit[k] times the normed streams, the gradient of the
block-sparse fn including its zero blocks; d_norm_weight per stream, which sums to the peer's
d gamma: --check verifies it). `--check` also runs the spec with the preset's knobs on the mapped
inputs against the transcription (worst err/tol when these vectors were written: megatron 4.7e-05,
liger 1.1e-04, lucidrains 2.8e-04, mhc_cu 3.4e-04) and the lucidrains v1 file
(manifold_constrained_hyper_connections.py) against v2 (mHCv2.py).

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
and that the column offsets of the huge-logit case change nothing. The logits-715 cases are allowed
0.2 in (a): a relative 4e-16 moves a logit of 715 by 3e-13, more than a correct implementation's
own rounding (it subtracts the max exactly).

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


POWER_README = """
## Cases with power (`mhc make-case`)

The `power_*` cases are written by `build/mhc make-case` (tools/make_case.c), not by this script
(their case.txt starts with `# written by mhc make-case`, so `make_vectors.py` leaves them alone).
Their inputs are built so that every common convention slip (Sinkhorn iterations +-1, the other
orientation, start, order, eps rule or max shift, eps inside/outside the RMS or dropped, the
per-stream RMS, pre_eps, post_mult, the norm weight ignored, Newton-Schulz steps) moves some
tensor by at least 100 x `mhc compare`'s tolerance; each `power.txt` lists every slip with the
err/tol it produces, and `mhc compare` prints its minimum. Their expected values come from mhc.h
in float64; `tests/reference/check_power.py` recomputes them with this script's PyTorch
transcription of the spec (make_projection_vectors.py's for ortho; the kromhc one is skipped, its
transcription being the peer's F.normalize) and applies every slip there too. Remake them with

    for p in dsv4 tilekernels paper lite kromhc ortho megatron liger lucidrains mhc_cu; do
      build/mhc make-case --preset $p --n 4 --out tests/vectors/power_${p}_n4 --force; done
    build/mhc make-case --preset lite --n 4 --dtype float32 --out tests/vectors/power_lite_n4_f32 --force
    build/mhc make-case --op head --preset dsv4 --n 4 --out tests/vectors/power_head_dsv4_n4 --force
    build/mhc make-case --op sinkhorn --preset dsv4 --n 4 --out tests/vectors/power_sinkhorn_dsv4_n4 --force

| case | op | preset | n | T | C | dtype | weakest slip (err/tol) |
|---|---|---|---|---|---|---|---|
"""


def power_readme():
    """The section on the power_* cases of `mhc make-case`, with each one's weakest slip."""
    rows = []
    for d in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, d, "power.txt")
        if not d.startswith("power_") or not os.path.exists(p):
            continue
        kv, mins = {}, "-"
        for ln in open(os.path.join(OUT, d, "case.txt")):
            ln = ln.split("#")[0].strip()
            if ln:
                k, v = [s.strip() for s in ln.split("=", 1)]
                kv[k] = v
        head = open(p).readline()
        for ln in open(p):
            if ln.startswith("minimum "):
                mins = ln.split()[1] + " (" + ln.split("(", 1)[1].rsplit(")", 1)[0] + ")"
        t = head.split("--T ")[1].split()[0]
        c = head.split("--C ")[1].split()[0]
        rows.append(f"| {d} | {kv['op']} | {kv['preset']} | {kv['n']} | {t} | {c} | {kv['dtype']} | {mins} |")
    return POWER_README + "\n".join(rows) + "\n"


def foreign_case(path):
    """A case directory another generator wrote (make_projection_vectors.py marks its case.txt)."""
    with open(os.path.join(path, "case.txt")) as f:
        return f.readline().startswith("# written by ")


def write_readme():
    rows = []
    for c in CASES:
        over = ", ".join(f"{k}={fmt(c['over'][k])}" for k in KNOBS if k in c["over"]) or "-"
        if c["peer"]:
            over += " (peer transcription)"
        rows.append(f"| {c['name']} | {c['op']} | {c['preset']} | {c['n']} | {c['T']} | "
                    f"{'-' if c['op'] == 'sinkhorn' else c['C']} | {c['dtype']} | {over} | "
                    f"{'-' if c['op'] == 'sinkhorn' else ('yes' if c['nw'] else 'no')} | {c['desc']} |")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD + "\n".join(rows) + "\n")
        f.write(projection_readme())
        f.write(power_readme())


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
        exp = expected(c, inp)
        for k, v in exp.items():
            assert np.all(np.isfinite(v)), (c["name"], k)
        write_case(c, inp, exp)
    write_readme()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {len(CASES)} cases to {OUT} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
