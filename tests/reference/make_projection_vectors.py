#!/usr/bin/python3
"""Golden vectors for mhc.h's two exactly doubly stochastic parameterizations (MHC_SPEC.md Sec. 8),
computed in float64 (PyTorch autograd) from my own transcription of each peer's formulas:

  KromHC        wz1119/KromHC, hyper_conn/Kromhc.py at 7b15834 ("Update README.md")
  orthostochastic  tokenbender/mHC-manifold-constrained-hyper-connections,
                hyper_connections/hyper_connections.py at 088310e ("Lower 48l batch size ...")

The functions below follow the peers' code step by step (the line numbers cited are those
files'); they are written here, not copied. No peer code is imported or committed.

    /usr/bin/python3 tests/reference/make_projection_vectors.py          # (re)write the cases
    /usr/bin/python3 tests/reference/make_projection_vectors.py --check  # self-checks, writes nothing

It writes tests/vectors/{sinkhorn,layer,head}_{kromhc,ortho}_* (case.txt starts with a comment
naming this script; tests/reference/make_vectors.py leaves those directories alone) and then
tests/vectors/README.md through make_vectors.write_readme(), whose last section is
readme_section() below. Deterministic: every case draws from a numpy Generator seeded with
crc32(case name).
"""
import math
import os
import shutil
import sys
import zlib
import itertools

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_vectors as mv  # noqa: E402  (the README writer and the compare rule)

OUT = mv.OUT
MARK = "# written by tests/reference/make_projection_vectors.py (do not edit)"

# ----------------------------------------------------------------------------------------------
# KromHC (wz1119/KromHC hyper_conn/Kromhc.py)
# ----------------------------------------------------------------------------------------------


def kromhc_factorize_into_twos(n):
    """Kromhc.py lines 59-81: every factor 2 of n, then the remainder if > 1 (n = 1: no factor)."""
    if n == 1:
        return []
    factors, remaining = [], n
    while remaining % 2 == 0:
        factors.append(2)
        remaining //= 2
    if remaining > 1:
        factors.append(remaining)
    return factors


def kromhc_all_permutations(n):
    """Kromhc.py lines 84-96: eye(n)[index] over itertools.permutations(range(n)), so
    P_r[i] = e_{p_r(i)}, i.e. P_r[i][p_r(i)] = 1, permutations in lexicographic order."""
    index = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)
    return torch.eye(n)[index]


def kromhc_build_hres(dynamic_coeffs, static_coeffs, residual_scale, factors, literal_2x2=False):
    """Kromhc.py _build_kronecker_hres, lines 381-451 (float64). dynamic_coeffs [..., R].
    The all-2x2 path's Kronecker step (lines 424-427) expands mat with unsqueeze(-4).unsqueeze(-2);
    its comment says the shape wanted, (..., 1, b1, 1, b2), which is unsqueeze(-3).unsqueeze(-2):
    the two agree when the batch is a single token (the peer's literal code, literal_2x2, is
    checked against this on one token at a time in --check) and the literal one fails with a size
    mismatch for a batch of more than one token (more than 2: see --check). This transcription
    follows the comment."""
    combined = residual_scale * dynamic_coeffs + static_coeffs              # line 401
    batch_shape = combined.shape[:-1]
    if all(f == 2 for f in factors):                                       # lines 404-429
        w = F.softmax(combined.reshape(*batch_shape, len(factors), 2), dim=-1)
        p = w[..., 0]
        one_minus_p = 1.0 - p
        row0 = torch.stack([p, one_minus_p], dim=-1)
        row1 = torch.stack([one_minus_p, p], dim=-1)
        mats = torch.stack([row0, row1], dim=-2)                           # [..., K, 2, 2]
        result = mats[..., 0, :, :]
        for k in range(1, len(factors)):
            mat = mats[..., k, :, :]
            result_exp = result.unsqueeze(-1).unsqueeze(-3)                # (..., a1, 1, a2, 1)
            mat_exp = mat.unsqueeze(-4 if literal_2x2 else -3).unsqueeze(-2)   # (..., 1, b1, 1, b2)
            result = (result_exp * mat_exp).reshape(*batch_shape, result.shape[-2] * 2, result.shape[-1] * 2)
        return result
    mats, idx = [], 0                                                       # lines 430-451
    for f in factors:
        nperm = math.factorial(f)
        w = F.softmax(combined[..., idx:idx + nperm], dim=-1)
        idx += nperm
        mats.append(torch.einsum("...r,rij->...ij", w, kromhc_all_permutations(f).to(w.dtype)))
    result = mats[0]
    for mat in mats[1:]:
        a1, a2 = result.shape[-2:]
        b1, b2 = mat.shape[-2:]
        kron = result[..., :, None, :, None] * mat[..., None, :, None, :]   # '... a1 1 a2 1' * '... 1 b1 1 b2'
        result = kron.reshape(*batch_shape, a1 * b1, a2 * b2)              # '... (a b) (c d)'
    return result


def kromhc_layer(x, f_out, gamma, dynamic_alpha_fn, dynamic_beta_fn, static_alpha, static_beta,
                 pre_branch_scale, residual_scale, h_post_scale, factors, mix_with_transpose=True):
    """KromHC.width_connection (lines 453-530) and depth_connection (lines 532-557) for one input
    view, no fractions, x [T, n, C] (the peer's '(b s) d' residuals as 'b s d'). Returns
    branch_input [T, C], the pre gates [T, n], the post gates beta [T, n], H [T, n, n] and the new
    residual stream [T, n, C]. The peer mixes the streams as einsum('s t, s d -> t d'), i.e. with
    A = H^T (mix_with_transpose); for the factor lists the peer cannot run (its constructor,
    line 281, asserts a power-of-2 n, and it only ever forms 2x2 factors) mhc.h follows
    MHC_SPEC.md Sec. 8, A = H, and so do these vectors (mix_with_transpose = False)."""
    t, n, c = x.shape
    normed = x.reshape(t, n * c)
    normed = F.normalize(normed, dim=-1) * (n * c) ** 0.5 * (gamma + 1)    # RMSNorm, lines 155-162
    fused = torch.cat([dynamic_alpha_fn, dynamic_beta_fn], dim=-1)         # line 476
    combined = normed @ fused                                              # line 479
    alpha_size = dynamic_alpha_fn.shape[-1]
    wc_weight = combined[:, :alpha_size]                                   # line 483
    dynamic_pre, dynamic_residual = wc_weight[:, :n], wc_weight[:, n:]     # lines 485-486
    static_pre, static_residual = static_alpha[:n], static_alpha[n:]       # line 487
    h = kromhc_build_hres(dynamic_residual, static_residual, residual_scale, factors)   # line 491
    alpha_pre = torch.sigmoid(pre_branch_scale * dynamic_pre + static_pre)  # lines 494-496
    dc_weight = combined[:, alpha_size:]                                   # line 503
    beta = torch.sigmoid(dc_weight * h_post_scale + static_beta) * 2       # lines 506-511
    # line 513, alpha = cat(alpha_pre, H) along the last axis: 'b s t, b s d -> b t d'
    alpha = torch.cat([alpha_pre[:, :, None], h if mix_with_transpose else h.transpose(-1, -2)], dim=-1)
    mix_h = torch.einsum("bst,bsd->btd", alpha, x)
    branch_input, residuals = mix_h[:, 0], mix_h[:, 1:]                    # line 516
    out = beta[:, :, None] * f_out[:, None, :] + residuals                 # lines 546-555
    return branch_input, alpha_pre, beta, h, out


def kromhc_from_mhc(fn, scale, base, nw, n, R):
    """mhc.h's parameters (fn [2n + R, nC] rows [pre | post | res], base, scale [pre, post, res],
    norm_weight) as the peer's: dynamic_alpha_fn = [pre | res] columns, dynamic_beta_fn = post
    columns, static_alpha = [pre | res], static_beta = post, pre_branch_scale / h_post_scale /
    residual_scale = scale[0] / scale[1] / scale[2], gamma = norm_weight - 1 (0 without)."""
    dynamic_alpha_fn = torch.cat([fn[:n], fn[2 * n:]], dim=0).T
    dynamic_beta_fn = fn[n:2 * n].T
    static_alpha = torch.cat([base[:n], base[2 * n:]])
    static_beta = base[n:2 * n]
    gamma = nw - 1 if nw is not None else torch.zeros(fn.shape[1], dtype=fn.dtype)
    return gamma, dynamic_alpha_fn, dynamic_beta_fn, static_alpha, static_beta, scale[0], scale[2], scale[1]


# ----------------------------------------------------------------------------------------------
# orthostochastic (tokenbender/mHC-manifold-constrained-hyper-connections hyper_connections.py)
# ----------------------------------------------------------------------------------------------


def ortho_zeropower_via_newtonschulz(X, steps=5, eps=1e-7, coeffs=(3.0, -3.2, 1.2)):
    """hyper_connections.py lines 67-85 (one matrix)."""
    a, b, c = coeffs
    X = X / (X.norm() + eps)
    transpose = False
    if X.shape[0] > X.shape[1]:
        X = X.T
        transpose = True
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    if transpose:
        X = X.T
    return X


def ortho_project(logits, ns_steps=5):
    """orthostochastic_project, lines 88-92: the elementwise square."""
    return ortho_zeropower_via_newtonschulz(logits, steps=ns_steps).square()


def ortho_tokens(z, ns_steps):
    """The projection of every token's n x n logits z [T, n, n]."""
    return torch.stack([ortho_project(z[t], ns_steps) for t in range(z.shape[0])])


def ortho_layer(x, fn, scale, base, nw, f_out, cfg):
    """The mHC layer of MHC_SPEC.md Sec. 2 (mix, sigmoid gates) with the peer's projection. The peer
    mixes as einsum(H_res, x, 's t, ... s d -> ... t d') (lines 407-409): A = H^T, orient comb_t.
    (Its H_pre / H_post are softmaxes of static logits, lines 401-405, which no mHC gate is: the
    ortho preset keeps mHC's gates, so they come from the spec here.)"""
    t, n, c = x.shape
    mix = mv.mixing_logits(x, fn, nw, cfg["norm_eps"])
    h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + cfg["pre_eps"]
    h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * cfg["post_mult"]
    z = (mix[:, 2 * n:] * scale[2] + base[2 * n:]).reshape(t, n, n)
    h = ortho_tokens(z, cfg["ns_iters"])
    a = h.transpose(-1, -2) if cfg["orient"] == "comb_t" else h
    layer_input = torch.einsum("ti,tic->tc", h_pre, x)
    out = torch.einsum("tij,tjc->tic", a, x) + h_post[:, :, None] * f_out[:, None, :]
    return layer_input, h_pre, h_post, a, out


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

PRESETS = {
    "kromhc": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0),
    "ortho": dict(norm_eps=1e-20, pre_eps=0.0, post_mult=2.0, ns_iters=5, orient="comb_t"),
}
KEYS = ["ns_iters", "kron_factors", "orient"]
CASES = []


def case(name, op, preset, n, T=4, C=8, dtype="float64", nw=False, special=None, desc="", **over):
    for k in over:
        assert k in KEYS, k
    CASES.append(dict(name=name, op=op, preset=preset, n=n, T=T, C=C, dtype=dtype, nw=nw, special=special,
                      desc=desc, over=over))


def build_cases():
    # the Kronecker mixture alone: the peer's default factors (n = 1, 2, 4, 8 and 6 = 2*3, 3) and
    # explicit lists
    for n, nw in [(1, False), (2, False), (3, False), (4, False), (6, False), (8, False)]:
        case(f"sinkhorn_kromhc_n{n}", "sinkhorn", "kromhc", n,
             desc=f"KromHC, the default factors of n = {n} ({','.join(map(str, default_factors(n)))})")
    case("sinkhorn_kromhc_n8_f2x4", "sinkhorn", "kromhc", 8, kron_factors=(2, 4), desc="KromHC, factors 2,4 (26 logits)")
    case("sinkhorn_kromhc_n8_f4x2", "sinkhorn", "kromhc", 8, kron_factors=(4, 2), desc="KromHC, factors 4,2")
    case("sinkhorn_kromhc_n6_f3x2", "sinkhorn", "kromhc", 6, kron_factors=(3, 2), desc="KromHC, factors 3,2")
    case("sinkhorn_kromhc_n4_large_logits", "sinkhorn", "kromhc", 4, special="large_logits",
         desc="logits uniform in +-30: saturated factors")
    case("sinkhorn_kromhc_n4_f32", "sinkhorn", "kromhc", 4, dtype="float32", desc="float32")
    case("sinkhorn_kromhc_n6_f32", "sinkhorn", "kromhc", 6, dtype="float32", desc="float32, factors 2,3")
    # the orthostochastic projection alone
    for k in [1, 5, 20]:
        case(f"sinkhorn_ortho_n4_ns{k}", "sinkhorn", "ortho", 4, ns_iters=k,
             desc=f"Newton-Schulz, {k} iteration{'s' if k > 1 else ''}")
    case("sinkhorn_ortho_n1", "sinkhorn", "ortho", 1, desc="n = 1: X = z / (|z| + 1e-7), H = X^2")
    case("sinkhorn_ortho_n2", "sinkhorn", "ortho", 2, desc="n = 2")
    case("sinkhorn_ortho_n3_ns20", "sinkhorn", "ortho", 3, ns_iters=20, desc="n = 3, 20 iterations")
    case("sinkhorn_ortho_n8", "sinkhorn", "ortho", 8, special="diag", desc="n = 8 (logits with a diagonal of +3)")
    case("sinkhorn_ortho_n4_f32", "sinkhorn", "ortho", 4, dtype="float32", special="diag",
         desc="float32 (logits with a diagonal of +3: well conditioned)")
    # the layer: KromHC's full layer (the peer's width and depth connection, parameters mapped)
    case("layer_kromhc_n2", "layer", "kromhc", 2, desc="KromHC layer, n = 2 (2)")
    case("layer_kromhc_n4", "layer", "kromhc", 4, nw=True, desc="KromHC layer, n = 4 (2,2), with norm_weight")
    case("layer_kromhc_n8", "layer", "kromhc", 8, C=4, desc="KromHC layer, n = 8 (2,2,2)")
    case("layer_kromhc_n8_f2x4", "layer", "kromhc", 8, C=4, nw=True, kron_factors=(2, 4),
         desc="factors 2,4: A = kron(U_1, U_2) as the spec says (see the readings)")
    case("layer_kromhc_n6", "layer", "kromhc", 6, C=4, desc="n = 6 (2,3): A = kron(U_1, U_2) (see the readings)")
    case("layer_kromhc_n4_peer_init", "layer", "kromhc", 4, special="peer_init",
         desc="the peer's initialisation: dynamic weights 0, static_alpha pre -1 (+1 at stream 1), res -8 "
              "(0 at each identity), static_beta -1 (+1 at stream 1), scales 0.01")
    case("layer_kromhc_n4_f32", "layer", "kromhc", 4, dtype="float32", nw=True, desc="float32")
    # the layer with the orthostochastic projection
    for k in [1, 5, 20]:
        case(f"layer_ortho_n4_ns{k}", "layer", "ortho", 4, nw=(k == 5), special="diag", ns_iters=k,
             desc=f"mHC layer with the peer's projection, {k} iteration{'s' if k > 1 else ''}")
    case("layer_ortho_n3", "layer", "ortho", 3, desc="n = 3, generic logits")
    case("layer_ortho_n4_orient_h", "layer", "ortho", 4, special="diag", orient="h", desc="A = H (orient h)")
    case("layer_ortho_n4_peer_static", "layer", "ortho", 4, special="peer_static",
         desc="fn = 0: the residual logits are base, the peer's H_res_logits (init: 0 diagonal, -8 elsewhere, "
              "plus N(0, 0.5)): A = H^T exactly as the peer mixes")
    case("layer_ortho_n4_f32", "layer", "ortho", 4, dtype="float32", special="diag", desc="float32")
    # the head (the same for every variant: the presets' norm_eps and pre_eps)
    case("head_kromhc_n4", "head", "kromhc", 4, nw=True, desc="kromhc head (norm_eps 1e-20, pre_eps 0)")
    case("head_ortho_n4", "head", "ortho", 4, desc="ortho head (norm_eps 1e-20, pre_eps 0)")


def default_factors(n):
    return kromhc_factorize_into_twos(n) or [1]   # mhc.h: n = 1 is the one factor 1 (one logit)


def factors_of(c):
    return list(c["over"].get("kron_factors", default_factors(c["n"])))


def nres_of(c):
    if c["preset"] == "kromhc":
        return sum(math.factorial(f) for f in factors_of(c))
    return c["n"] * c["n"]


def config(c):
    cfg = dict(PRESETS[c["preset"]])
    cfg.update({k: v for k, v in c["over"].items() if k != "kron_factors"})
    return cfg


def make_inputs(c):
    rng = np.random.default_rng(zlib.crc32(c["name"].encode()))
    op, n, T, C, sp = c["op"], c["n"], c["T"], c["C"], c["special"]
    nres, inp = nres_of(c), {}
    if op == "sinkhorn":
        if sp == "large_logits":
            z = rng.uniform(-30, 30, size=(T, nres))
        else:
            z = rng.normal(0, 1.5, size=(T, nres))
        if sp == "diag":
            z = (z.reshape(T, n, n) + 3.0 * np.eye(n)).reshape(T, nres)
        inp["logits"] = z if c["preset"] == "kromhc" else z.reshape(T, n, n)
        inp["d_out"] = rng.normal(0, 1, size=(T, n, n))
    else:
        m = n if op == "head" else 2 * n + nres
        std = min(0.5, max(0.02, 1.0 / math.sqrt(n * C)))
        inp["x"] = rng.normal(0, 1, size=(T, n, C))
        inp["fn"] = rng.normal(0, std, size=(m, n * C))
        inp["scale"] = rng.uniform(0.1, 1.0, size=(1 if op == "head" else 3,))
        base = rng.normal(0, 1, size=(m,))
        if sp == "diag":
            base[2 * n:] += (3.0 * np.eye(n)).reshape(-1)
        elif sp == "peer_init":   # KromHC.__init__, lines 315-361 (init_residual_index = 1)
            inp["fn"][:] = 0.0
            inp["scale"][:] = 0.01
            base[:n] = -1.0
            base[1] = 1.0
            base[n:2 * n] = -1.0
            base[n + 1] = 1.0
            res, o = np.full(nres, -8.0), 0
            for f in factors_of(c):
                res[o] = 0.0
                o += math.factorial(f)
            base[2 * n:] = res
        elif sp == "peer_static":   # HyperConnections.__init__, lines 346-348, plus noise
            inp["fn"][2 * n:] = 0.0
            res = np.full((n, n), -8.0)
            np.fill_diagonal(res, 0.0)
            base[2 * n:] = (res + rng.normal(0, 0.5, size=(n, n))).reshape(-1)
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


def run_case(c, inp, dtype=torch.float64):
    """Forward with the transcriptions, gradients by autograd. {name: np.ndarray}."""
    def leaf(name):
        return torch.tensor(inp[name], dtype=dtype, requires_grad=True)

    def const(name):
        return torch.tensor(inp[name], dtype=dtype)

    cfg, n, res = config(c), c["n"], {}
    factors = factors_of(c)
    peer_layout = all(f == 2 for f in factors) or factors == [1]   # 2x2 factors: H symmetric, the peer's H^T
    if c["op"] == "sinkhorn":
        z = leaf("logits")
        t = z.shape[0]
        if c["preset"] == "kromhc":   # the projection alone: residual_scale 1, static coefficients 0
            out = kromhc_build_hres(z, torch.zeros(z.shape[-1], dtype=dtype), torch.tensor(1.0, dtype=dtype), factors)
        else:
            out = ortho_tokens(z.reshape(t, n, n), cfg["ns_iters"])
        (g,) = torch.autograd.grad((const("d_out") * out).sum(), [z])
        res["out"], res["d_logits"] = out, g
    else:
        names = ["x", "fn", "scale", "base"] + (["norm_weight"] if "norm_weight" in inp else [])
        if c["op"] == "layer":
            names.append("f_out")
        lv = {k: leaf(k) for k in names}
        nw = lv.get("norm_weight")
        if c["op"] == "head":
            mix = mv.mixing_logits(lv["x"], lv["fn"], nw, cfg["norm_eps"])
            h = torch.sigmoid(mix * lv["scale"][0] + lv["base"]) + cfg["pre_eps"]
            fw = dict(out=torch.einsum("ti,tic->tc", h, lv["x"]), h_pre=h)
            loss = (const("d_out") * fw["out"]).sum()
        elif c["preset"] == "kromhc":
            params = kromhc_from_mhc(lv["fn"], lv["scale"], lv["base"], nw, n, nres_of(c))
            li, hp, hq, h, out = kromhc_layer(lv["x"], lv["f_out"], *params, factors, mix_with_transpose=peer_layout)
            fw = dict(layer_input=li, h_pre=hp, h_post=hq, h_res=h.transpose(-1, -2) if peer_layout else h, out=out)
            loss = (const("d_out") * out).sum() + (const("d_layer_input") * li).sum()
        else:
            li, hp, hq, a, out = ortho_layer(lv["x"], lv["fn"], lv["scale"], lv["base"], nw, lv["f_out"], cfg)
            fw = dict(layer_input=li, h_pre=hp, h_post=hq, h_res=a, out=out)
            loss = (const("d_out") * out).sum() + (const("d_layer_input") * li).sum()
        grads = torch.autograd.grad(loss, [lv[k] for k in names])
        res.update(fw)
        for k, g in zip(names, grads):
            res["d_" + k] = g
    return {k: v.detach().to(torch.float64).numpy() for k, v in res.items()}


def fmt(v):
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return mv.fmt(v)


def write_case(c, inp, exp):
    d = os.path.join(OUT, c["name"])
    os.makedirs(os.path.join(d, "expected"))
    lines = [MARK, f"op = {c['op']}", f"preset = {c['preset']}", f"n = {c['n']}", f"dtype = {c['dtype']}"]
    lines += [f"{k} = {fmt(c['over'][k])}" for k in KEYS if k in c["over"]]
    with open(os.path.join(d, "case.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    in_dtype = np.float32 if c["dtype"] == "float32" else np.float64
    for k, v in inp.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(v.astype(in_dtype)))
    for k, v in exp.items():
        np.save(os.path.join(d, "expected", k + ".npy"), np.ascontiguousarray(v.astype(np.float64)))


def is_mine(path):
    """A case directory this script wrote (its case.txt starts with MARK)."""
    try:
        with open(os.path.join(path, "case.txt")) as f:
            return f.readline().rstrip("\n") == MARK
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# --check
# ----------------------------------------------------------------------------------------------

def ds_distance(a):
    return max(float(np.max(np.abs(a.sum(-1) - 1))), float(np.max(np.abs(a.sum(-2) - 1))))


def check():
    ok = True
    print(f"{'case':36s} {'perturb/tol':>12s} {'f32/tol':>10s}  notes")
    for c in CASES:
        inp = make_inputs(c)
        exp = run_case(c, inp)
        notes = []
        rng = np.random.default_rng(1)
        pin = {k: v * (1 + 4e-16 * rng.choice([-1.0, 1.0], size=v.shape)) for k, v in inp.items()}
        pert = mv.err_over_tol(run_case(c, pin), exp, 1e-10, 1e-12)
        f32 = mv.err_over_tol(run_case(c, inp, torch.float32), exp, 1e-4, 1e-6)
        if pert > 0.05:
            notes.append("ILL-CONDITIONED for rtol 1e-10")
            ok = False
        if c["dtype"] == "float32" and f32 > 0.5:
            notes.append("float32 simulation too far from expected")
            ok = False
        a = exp.get("h_res", exp["out"] if c["op"] == "sinkhorn" else None)
        if a is not None:
            dist = ds_distance(a)
            notes.append(f"ds distance {dist:.2g}")
            if c["preset"] == "kromhc":
                ok = ok and dist < 1e-13
                # the peer's H against numpy.kron of the factors (an independent construction)
                if c["op"] == "sinkhorn":
                    z, o = inp["logits"], 0
                    ref = np.ones((z.shape[0], 1, 1))
                    for f in factors_of(c):
                        w = np.exp(z[:, o:o + math.factorial(f)])
                        w /= w.sum(-1, keepdims=True)
                        P = np.zeros((math.factorial(f), f, f))
                        for r, p in enumerate(itertools.permutations(range(f))):
                            P[r, np.arange(f), list(p)] = 1
                        U = np.einsum("tr,rij->tij", w, P)
                        ref = np.stack([np.kron(ref[t], U[t]) for t in range(z.shape[0])])
                        o += math.factorial(f)
                    e = float(np.max(np.abs(ref - a)))
                    notes.append(f"vs numpy.kron {e:.1e}")
                    ok = ok and e < 1e-14
        if c["preset"] == "kromhc" and c["op"] != "head":
            f = factors_of(c)
            if all(q == 2 for q in f):
                sym = float(np.max(np.abs(a - np.swapaxes(a, -1, -2))))
                notes.append(f"|H - H^T| {sym:.1e}")
                ok = ok and sym < 1e-15
        print(f"{c['name']:36s} {pert:12.3g} {f32:10.3g}  {'; '.join(notes)}")
    # the peer's literal all-2x2 Kronecker step, one token at a time (where it runs), against this
    # transcription on a batch; and the literal step on a batch of 3 tokens: a size mismatch
    z = torch.tensor(np.random.default_rng(4).normal(size=(3, 6)))
    zero, one = torch.zeros(6), torch.tensor(1.0)
    batched = kromhc_build_hres(z, zero, one, [2, 2, 2])
    lit = torch.cat([kromhc_build_hres(z[t:t + 1], zero, one, [2, 2, 2], literal_2x2=True) for t in range(3)])
    e = float((batched - lit).abs().max())
    print(f"KromHC 2x2 path: this transcription vs the peer's literal code per token: {e:.1e}")
    ok = ok and e == 0.0
    try:
        kromhc_build_hres(z, zero, one, [2, 2, 2], literal_2x2=True)
        print("KromHC 2x2 path: the literal code ran on a batch of 3 tokens")
        ok = False
    except RuntimeError as ex:
        print(f"KromHC 2x2 path: the literal code on a batch of 3 tokens: RuntimeError ({str(ex)[:60]}...)")
    # the Newton-Schulz iteration converges to the orthogonal polar factor: K = 100 against the SVD
    rng = np.random.default_rng(3)
    worst = 0.0
    for n in [2, 3, 4, 6]:
        for _ in range(20):
            z = rng.normal(size=(n, n)) + 2 * n * np.eye(n)
            u, _, vt = np.linalg.svd(z)
            h = ortho_project(torch.tensor(z), 100).numpy()
            worst = max(worst, float(np.max(np.abs(h - (u @ vt) ** 2))), ds_distance(h))
    print(f"ortho at 100 iterations vs the SVD's polar factor squared, and its ds distance: {worst:.1e}")
    ok = ok and worst < 1e-12
    print("check:", "ok" if ok else "PROBLEMS (see above)")
    return ok


# ----------------------------------------------------------------------------------------------
# README section (appended by make_vectors.write_readme)
# ----------------------------------------------------------------------------------------------

README_SECTION = """
## KromHC and orthostochastic cases (tests/reference/make_projection_vectors.py)

Written by `tests/reference/make_projection_vectors.py` from my own float64 transcription of each
peer's formulas (PyTorch autograd; the peers' files are cited by line there, none of their code is
copied): KromHC, `hyper_conn/Kromhc.py` of wz1119/KromHC at 7b15834 (`factorize_into_twos`,
`get_all_permutations`, `_build_kronecker_hres`, `width_connection`, `depth_connection`, its
`RMSNorm`), and the orthostochastic projection, `hyper_connections/hyper_connections.py` of
tokenbender/mHC-manifold-constrained-hyper-connections at 088310e
(`zeropower_via_newtonschulz`, `orthostochastic_project`, the `einsum('s t, ... s d -> ... t d')`
mix). Their `case.txt` starts with a comment naming the script (`make_vectors.py` leaves those
directories alone). Regenerate and self-check with

    /usr/bin/python3 tests/reference/make_projection_vectors.py
    /usr/bin/python3 tests/reference/make_projection_vectors.py --check

Extra keys: `kron_factors = a,b,...` (the Kronecker factors; absent: the preset's, KromHC's
`factorize_into_twos`, and the one factor 1 for n = 1) and `ns_iters` (the Newton-Schulz
iterations; absent: 5). Shapes: kron takes `logits [T, sum_k a_k!]` (flat, like perm) and
`fn [2n + sum_k a_k!, n*C]`; ortho takes `logits [T,n,n]` and `fn [2n + n*n, n*C]`.

Readings (for the lead to check):

- **KromHC layer = the peer's layer.** The layer cases run the peer's whole width and depth
  connection on mhc.h's parameters mapped as: `dynamic_alpha_fn = [fn pre rows | fn res rows]^T`,
  `dynamic_beta_fn = (fn post rows)^T`, `static_alpha = [base pre | base res]`,
  `static_beta = base post`, `pre_branch_scale, h_post_scale, residual_scale = scale[0], scale[1],
  scale[2]`, `gamma = norm_weight - 1`. The peer's `F.normalize(x) * sqrt(nC)` is mhc.h's RMS
  with norm_eps 1e-20 to rounding (the kromhc preset's value).
- **Orientation of KromHC.** The peer mixes with H^T (`einsum('s t, s d -> t d')`). With 2x2
  factors (the only ones the peer forms: its constructor asserts a power-of-2 n and
  `factorize_into_twos` gives 2s) every factor is symmetric, so H = H^T (checked). A factor of 3
  or 4 is not symmetric: for `kron_factors = 2,4`, `3,2` and n = 6 (2,3), which the peer cannot
  run, mhc.h and these vectors use A = kron(U_1, ..., U_K) as MHC_SPEC.md Sec. 8 says (built
  directly, like perm); the peer's code, forced onto those factors, would mix with its transpose.
- **ortho layer.** The peer's H_pre and H_post are softmaxes of static logits, not mHC gates: the
  layer cases use the mHC layer of the spec (mix, sigmoid gates, the preset's norm_eps 1e-20,
  pre_eps 0, post_mult 2) with the peer's projection and mixing orientation (A = H^T, orient
  comb_t). `layer_ortho_n4_peer_static` sets the residual rows of fn to 0, so z = base: the peer's
  static `H_res_logits`.
- **ortho is doubly stochastic only as the iteration converges.** The `ds distance` column of
  `--check` shows it; `--check` also compares 100 iterations with the SVD's polar factor squared.
- **Conditioning.** Newton-Schulz magnifies perturbations of small singular values of Z (about 3x
  per iteration), so some ortho cases add 3 to the diagonal of the logits (`diag`) to keep them
  well conditioned for the float64 tolerance and for float32; `--check`'s perturbation column
  shows each case's margin.
"""


def readme_section():
    rows = []
    for c in CASES:
        over = ", ".join(f"{k}={fmt(c['over'][k])}" for k in KEYS if k in c["over"]) or "-"
        rows.append(f"| {c['name']} | {c['op']} | {c['preset']} | {c['n']} | {c['T']} | "
                    f"{'-' if c['op'] == 'sinkhorn' else c['C']} | {c['dtype']} | {over} | "
                    f"{'-' if c['op'] == 'sinkhorn' else ('yes' if c['nw'] else 'no')} | {c['desc']} |")
    head = ("\n| case | op | preset | n | T | C | dtype | overrides | norm_weight | what it covers |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return README_SECTION + head + "\n".join(rows) + "\n"


def main():
    build_cases()
    if "--check" in sys.argv[1:]:
        return 0 if check() else 1
    os.makedirs(OUT, exist_ok=True)
    for entry in sorted(os.listdir(OUT)):   # remove every case this script wrote before
        p = os.path.join(OUT, entry)
        if os.path.isdir(p) and is_mine(p):
            shutil.rmtree(p)
    for c in CASES:
        inp = make_inputs(c)
        exp = run_case(c, inp)
        for k, v in exp.items():
            assert np.all(np.isfinite(v)), (c["name"], k)
        write_case(c, inp, exp)
    mv.build_cases()
    mv.write_readme()
    print(f"wrote {len(CASES)} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
