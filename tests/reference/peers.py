"""Float64 transcriptions of the mHC layers of four public implementations, written for this
project from reading their code (nothing is copied; each function cites the file, snapshot and
lines it transcribes). tests/reference/make_vectors.py makes the golden vectors of the presets
megatron, liger, lucidrains and mhc_cu with them: the parameters are drawn in the peer's own
layout, the peer's formulas give the expected outputs, and the case's inputs are the peer's
tensors mapped onto x, fn, scale, base (norm_weight) as README.md's conventions table says.

Every function takes one token batch: x [T, n, C] (the peer's n streams of C channels per token,
stream-major as every peer stores them), f_out [T, C] (the sublayer's output, which the layer never
looks inside), and the peer's parameters; it returns the tensors the golden vectors hold:
layer_input [T, C], h_pre [T, n], h_post [T, n], h_res [T, n, n] (the matrix A with
out = A x + h_post f_out), out [T, n, C]; with `extra` the intermediates the mapped gradients need.
The Sinkhorn projections alone (op = sinkhorn) take the logits [T, n, n] as the peer holds them
and return the peer's matrix before any orientation.

Snapshots (git log -1 of each mirror, read for this transcription):
  NVIDIA/Megatron-LM               d98e8a64ddf34856e74b24714e3bedb2f5a39553
  linkedin/Liger-Kernel            ead96b618e5c67bddc6a6e9bcb99bfe6b5ab661c
  lucidrains/hyper-connections     47751035f6e92f73121f1da56603f0d410115799
  AndreSlavescu/mHC.cu             3595c86b30453c9e001ff65591e299c91ec11b02
"""
import math

import torch

SNAPSHOTS = {
    "megatron": ("NVIDIA/Megatron-LM", "d98e8a64ddf34856e74b24714e3bedb2f5a39553",
                 "megatron/core/transformer/hyper_connection.py"),
    "liger": ("linkedin/Liger-Kernel", "ead96b618e5c67bddc6a6e9bcb99bfe6b5ab661c",
              "src/liger_kernel/ops/mhc.py, src/liger_kernel/transformers/mhc.py"),
    "lucidrains": ("lucidrains/hyper-connections", "47751035f6e92f73121f1da56603f0d410115799",
                   "hyper_connections/mHCv2.py (and manifold_constrained_hyper_connections.py)"),
    "mhc_cu": ("AndreSlavescu/mHC.cu", "3595c86b30453c9e001ff65591e299c91ec11b02",
               "src/csrc/kernels/mhc_layer.cuh, sinkhorn_knopp.cuh, fused_rmsnorm_matmul.cuh, stream_ops.cuh"),
}


# ----------------------------------------------------------------------------------------------
# NVIDIA Megatron-LM, megatron/core/transformer/hyper_connection.py
# Parameters (HyperConnectionModule.__init__, lines 182-194): mapping_proj.weight [n*n + 2n, n*C]
# (nn.Linear without bias: proj = x @ weight^T), alpha_pre, alpha_post, alpha_res [1] each,
# bias [n*n + 2n]; norm_eps 1e-6, SinkhornKnopp.eps 1e-6, mhc_sinkhorn_iterations (default 20,
# transformer_config.py line 1148).
# ----------------------------------------------------------------------------------------------

def megatron_sinkhorn(h_res_logits, iters=20, eps=1e-6):
    """SinkhornKnopp.forward (lines 89-115) and _sinkhorn_normalize (lines 67-86): M_init =
    exp(H - rowmax(H)) (line 108; the custom backward, lines 118-146, multiplies by M_init, i.e.
    the max is a constant: detached here), then iters times a row step and a column step, each
    sum clamp(min = eps) (lines 81-85)."""
    m = torch.exp(h_res_logits - h_res_logits.max(dim=-1, keepdim=True).values.detach())
    for _ in range(iters):
        m = m / m.sum(dim=-1, keepdim=True).clamp(min=eps)
        m = m / m.sum(dim=-2, keepdim=True).clamp(min=eps)
    return m


def megatron_layer(x, weight, alpha_pre, alpha_post, alpha_res, bias, f_out, iters=20, extra=False):
    t, n, c = x.shape
    hidden = x.reshape(t, n * c)                                   # [s, b, n*C] with s*b = T
    # _projection_and_get_norm, lines 217-228
    r = hidden.norm(dim=-1, keepdim=True) / math.sqrt(n * c)
    r = 1.0 / (r + 1e-6)
    proj = hidden @ weight.T
    # _compute_h, lines 231-259
    alpha_ = torch.cat([alpha_pre.expand(n), alpha_post.expand(n), alpha_res.expand(n * n)], dim=-1)
    h = r * proj * alpha_ + bias
    h_pre = h[:, :n].sigmoid()
    h_post = h[:, n:2 * n].sigmoid() * 2
    h_res = megatron_sinkhorn(h[:, 2 * n:].reshape(t, n, n), iters)        # compute_mappings, line 281
    # aggregate (lines 371-393), apply_h_res (bmm, lines 396-418), _apply_h_post (lines 288-318),
    # bias-dropout-add without bias or dropout (lines 600-642)
    layer_input = (x * h_pre.unsqueeze(-1)).sum(dim=1)
    mixed = torch.bmm(h_res, x)
    out = h_post.unsqueeze(-1) * f_out.unsqueeze(1) + mixed
    return dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=h_res, out=out)


# ----------------------------------------------------------------------------------------------
# linkedin Liger-Kernel, src/liger_kernel/ops/mhc.py (Triton kernels) with the defaults of
# src/liger_kernel/transformers/mhc.py (LigerMHC, lines 80-126: tmax 20, rms_eps 1e-6, pre_eps 0,
# sinkhorn_eps 1e-6, post_mult 2; phi [HC*C, HC*HC + 2*HC], b [HC*HC + 2*HC], alpha_pre,
# alpha_post, alpha_res scalars).
# ----------------------------------------------------------------------------------------------

def liger_sinkhorn(logits, tmax=20, eps=1e-6):
    """_mhc_split_sinkhorn_fwd_kernel, lines 471-490: a stable row softmax plus eps, a column
    step, then tmax - 1 times a row step and a column step, each sum + eps."""
    row_max = logits.max(dim=-1, keepdim=True).values
    e = torch.exp(logits - row_max)
    mat = e / e.sum(dim=-1, keepdim=True) + eps
    mat = mat / (mat.sum(dim=-2, keepdim=True) + eps)
    for _ in range(tmax - 1):
        mat = mat / (mat.sum(dim=-1, keepdim=True) + eps)
        mat = mat / (mat.sum(dim=-2, keepdim=True) + eps)
    return mat


def liger_layer(x, phi, b, alpha_pre, alpha_post, alpha_res, f_out, tmax=20, rms_eps=1e-6, pre_eps=0.0,
                sinkhorn_eps=1e-6, post_mult=2.0, extra=False):
    t, hc, c = x.shape
    xf = x.reshape(t, hc * c)
    # _mhc_mm_norm_fwd_kernel, lines 85-111: mix = (x @ phi) * rsqrt(sum(x^2)/K + eps)
    invr = torch.rsqrt((xf * xf).sum(dim=-1, keepdim=True) / (hc * c) + rms_eps)
    mix = (xf @ phi) * invr
    # _mhc_split_sinkhorn_fwd_kernel, lines 445-469
    pre = torch.sigmoid(mix[:, :hc] * alpha_pre + b[:hc]) + pre_eps
    post = torch.sigmoid(mix[:, hc:2 * hc] * alpha_post + b[hc:2 * hc]) * post_mult
    logits = mix[:, 2 * hc:].reshape(t, hc, hc) * alpha_res + b[2 * hc:].reshape(hc, hc)
    h_res = liger_sinkhorn(logits, tmax, sinkhorn_eps)
    # _mhc_pre_fwd_kernel, lines 878-890: x_in = sum_s h_pre[s] x[s]
    x_in = (x * pre.unsqueeze(-1)).sum(dim=1)
    # _mhc_post_res_fwd_kernel, lines 1083-1110: out[o] = f h_post[o] + sum_i h_res[o, i] x[i]
    out = f_out.unsqueeze(1) * post.unsqueeze(-1) + torch.einsum("toi,tic->toc", h_res, x)
    return dict(layer_input=x_in, h_pre=pre, h_post=post, h_res=h_res, out=out)


# ----------------------------------------------------------------------------------------------
# lucidrains hyper-connections, hyper_connections/mHCv2.py, ManifoldConstrainedHyperConnections
# with one fraction, one input view and one proposal (the defaults), no stream mixing before the
# norm, no dropout: parameters (lines 305-326) static_alpha [s, 1 + s] (init: a one-hot column and
# the identity), dynamic_alpha_fn [1, d, 1 + s], pre_branch_scale [1], residual_scale [1],
# static_beta [s, 1, 1], dynamic_beta_fn [d, 1], h_post_scale [], the RMSNorm's gamma [d].
# manifold_constrained_hyper_connections.py computes the same numbers for this configuration
# (lines 328-469 there; its static_beta is [s] and dynamic_beta_fn [d]).
# ----------------------------------------------------------------------------------------------

def lucidrains_sinkhorn(log_alpha, iters=20):
    """sinkhorn_knopps, lines 51-69: subtract the (detached) max over dim -2 (each column), exp,
    then iters times l1norm over dim -2 and over dim -1; l1norm is F.normalize(p = 1), i.e.
    x / max(sum |x|, 1e-12) (lines 48-49)."""
    log_alpha = log_alpha - log_alpha.amax(dim=-2, keepdim=True).detach()
    alpha = log_alpha.exp()
    for _ in range(iters):
        alpha = alpha / alpha.abs().sum(dim=-2, keepdim=True).clamp(min=1e-12)
        alpha = alpha / alpha.abs().sum(dim=-1, keepdim=True).clamp(min=1e-12)
    return alpha


def lucidrains_layer(x, gamma, static_alpha, dynamic_alpha_fn, pre_branch_scale, residual_scale, static_beta,
                     dynamic_beta_fn, h_post_scale, f_out, iters=20, extra=False, gamma_streams=None):
    """width_connection (lines 372-470) and depth_connection (lines 472-499). gamma_streams: the
    norm weight gamma + 1 expanded to [s, d] (the same values in every stream), a separate leaf so
    that autograd gives the gradient per stream (our norm_weight [n*C]); None: gamma + 1."""
    t, s, d = x.shape
    # RMSNorm, lines 146-153: F.normalize(x, dim=-1) * sqrt(d) * (gamma + 1); F.normalize divides by
    # max(||x||_2, 1e-12)
    g = (gamma + 1) if gamma_streams is None else gamma_streams
    xhat = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12) * math.sqrt(d)
    normed = xhat * g
    # lines 406-417: wc_weight [.., s, 1 + s] (one proposal), alpha = wc * [pre_scale, res_scale x s] + static
    wc_weight = torch.einsum("tsd,pde->ptse", normed, dynamic_alpha_fn)[0]
    alpha_scale = torch.cat([pre_branch_scale, residual_scale.expand(s)])
    alpha = wc_weight * alpha_scale + static_alpha
    # lines 421-427: sigmoid pre weights, Sinkhorn residual weights
    alpha_pre = alpha[..., :1].sigmoid()
    alpha_residual = lucidrains_sinkhorn(alpha[..., 1:], iters)
    # lines 440-447: beta = 2 sigmoid(normed @ dynamic_beta_fn * h_post_scale + static_beta)
    dc_weight = normed @ dynamic_beta_fn                    # [t, s, 1]
    beta = (dc_weight * h_post_scale + static_beta[:, :, 0]).sigmoid() * 2
    # lines 449-456: mix_h[t'] = sum_s alpha[s, t'] x_s; branch input t' = 0, new streams t' = 1..
    full = torch.cat([alpha_pre, alpha_residual], dim=-1)
    mix_h = torch.einsum("tsu,tsd->tud", full, x)
    branch_input, residuals = mix_h[:, 0], mix_h[:, 1:]
    # depth_connection, line 489 and 497: out[s] = beta[s] * branch_output, added to the streams
    out = residuals + beta * f_out.unsqueeze(1)
    res = dict(layer_input=branch_input, h_pre=alpha_pre[..., 0], h_post=beta[..., 0],
               h_res=alpha_residual.transpose(-1, -2), out=out)
    if extra:
        res["_normed"] = normed
        res["_wc_weight"] = wc_weight
        res["_dc_weight"] = dc_weight
    return res


def lucidrains_v1_layer(x, gamma, static_alpha, dynamic_alpha_fn, pre_branch_scale, residual_scale, static_beta,
                        dynamic_beta_fn, h_post_scale, f_out, iters=20):
    """manifold_constrained_hyper_connections.py, width_connection (lines 328-432) and
    depth_connection (lines 434-469), one fraction and view: the streams are folded into the batch
    ('(b s) ... d'); static_beta [s], dynamic_beta_fn [d]. For --check: it must give the numbers of
    lucidrains_layer (mHCv2) on the same parameters."""
    t, s, d = x.shape
    normed = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12) * math.sqrt(d) * (gamma + 1)
    wc_weight = torch.einsum("tsd,pde->ptse", normed, dynamic_alpha_fn)              # line 361
    alpha_scale = torch.cat([pre_branch_scale, residual_scale.expand(s)])             # lines 363-367
    alpha = (wc_weight * alpha_scale + static_alpha)[0]                               # lines 369-373
    alpha_pre = alpha[..., :1].sigmoid()                                              # lines 377-379
    alpha_residual = lucidrains_sinkhorn(alpha[..., 1:], iters)                       # line 381 (sinkhorn_knopps, 49-61)
    alpha = torch.cat([alpha_pre, alpha_residual], dim=-1)                            # line 383
    dc_weight = normed @ dynamic_beta_fn                                              # line 397
    beta = (dc_weight * h_post_scale + static_beta).sigmoid() * 2                     # lines 400-408
    mix_h = torch.einsum("tsu,tsd->tud", alpha, x)                                    # line 410
    out = mix_h[:, 1:] + beta.unsqueeze(-1) * f_out.unsqueeze(1)                      # lines 454-467
    return dict(layer_input=mix_h[:, 0], h_pre=alpha_pre[..., 0], h_post=beta, h_res=alpha_residual.transpose(-1, -2),
                out=out)


# ----------------------------------------------------------------------------------------------
# AndreSlavescu mHC.cu, the dynamic-H layer (src/csrc/kernels/mhc_layer.cuh, MHCLayer with
# use_dynamic_h, lines 558-629): parameters (MHCLayerWeights, lines 29-82; src/python/mhc/layer.py
# lines 43-54) phi_combined = [phi_pre; phi_post; phi_res] [n + n + n*n, n*C], b_pre [n], b_post [n],
# b_res [n, n], alpha_pre, alpha_post, alpha_res scalars; config eps 1e-5 and sinkhorn_iters 20
# (MHCLayerConfig, lines 24-26; FusedRMSNormMatmul::init's eps 1e-5, fused_rmsnorm_matmul.cuh
# line 317). The layer's RMSNorm of the aggregated input (mhc_layer.cuh lines 609-611) is the
# sublayer F here: its output is f_out.
# ----------------------------------------------------------------------------------------------

def mhc_cu_sinkhorn(m, iters=20, eps=1e-5):
    """sinkhorn_knopp_forward_batched (sinkhorn_knopp.cuh lines 986-1046): the n = 4 kernel (lines
    847-902) and the general one (lines 940-972) alike: iters times, each row then each column
    multiplied by 1/s when s > eps, else by 0. m is exp(logits) (apply_exp, mhc_layer.cuh line 571)."""
    for _ in range(iters):
        s = m.sum(dim=-1, keepdim=True)
        m = m * torch.where(s > eps, 1.0 / s, torch.zeros_like(s))
        s = m.sum(dim=-2, keepdim=True)
        m = m * torch.where(s > eps, 1.0 / s, torch.zeros_like(s))
    return m


def mhc_cu_layer(x, phi_combined, b_pre, b_post, b_res, alpha_pre, alpha_post, alpha_res, f_out, iters=20, eps=1e-5,
                 extra=False):
    t, n, c = x.shape
    xf = x.reshape(t, n * c)
    # FusedRMSNormMatmul::forward (fused_rmsnorm_matmul.cuh lines 336-341): rms = sqrt(sum(x^2)/K + eps)
    # (compute_rms_kernel, line 51), out = x @ phi^T (cuBLASLt, TRANSB, lines 254-270), out *= 1/rms (lines 162-166)
    rms = torch.sqrt((xf * xf).sum(dim=-1, keepdim=True) / (n * c) + eps)
    proj = (xf @ phi_combined.T) * (1.0 / rms)
    # apply_dynamic_h_activations_kernel (mhc_layer.cuh lines 387-400); fast_sigmoid(x) = 1/(1 + exp(-x)),
    # utils.cuh lines 45-47
    h_pre = torch.sigmoid(alpha_pre * proj[:, :n] + b_pre)
    h_post = 2.0 * torch.sigmoid(alpha_post * proj[:, n:2 * n] + b_post)
    h_res = torch.exp(alpha_res * proj[:, 2 * n:].reshape(t, n, n) + b_res)
    m = mhc_cu_sinkhorn(h_res, iters, eps)
    # stream_aggregate_bf16_dynamic: sum_i h_pre[i] x_i; stream_distribute_mix_add_dynamic_kernel
    # (stream_ops.cuh lines 504-526): out_i = sum_j M[i][j] x_j + h_post[i] y
    layer_input = (x * h_pre.unsqueeze(-1)).sum(dim=1)
    out = torch.einsum("tij,tjc->tic", m, x) + h_post.unsqueeze(-1) * f_out.unsqueeze(1)
    return dict(layer_input=layer_input, h_pre=h_pre, h_post=h_post, h_res=m, out=out)
