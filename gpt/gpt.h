/* gpt/gpt.h - a small GPT with hyper-connection streams, built from mhc.h's ops.
 *
 * Shared by the command-line tool (build/mhc train / demo), the tests and the benchmarks.
 * Include it after mhc.h (with or without the implementation). Everything here is static.
 *
 * The model (byte-level, vocab 256 by default):
 *   e      = wte[tokens] + wpe[positions]                       [B*T, C]
 *   x      = expand(e)                                          [B*T, n, C]   (none: x = e)
 *   for each of L blocks, two sublayers F in (attention, MLP):
 *     (li, h_pre, h_post, A) = mhc_pre(x)                       the fused pre step
 *     f      = F(rmsnorm(li) * w_norm)
 *     x      = A x + h_post f                                   the post step
 *                       (none: x = x + F(rmsnorm(x)); hc: the unconstrained H's instead)
 *   h      = head(x)                                            [B*T, C]      (none: h = x)
 *   logits = rmsnorm(h) * w_final  W_lm^T                       [B*T, V]
 *   loss   = mean cross-entropy(logits, targets)
 *   attention: qkv = h W_qkv^T + b_qkv; causal multi-head attention; out W_o^T + b_o
 *   MLP:       gelu(h W_fc^T + b_fc) W_proj^T + b_proj   (hidden 4C)
 */
#ifndef GPT_H
#define GPT_H

#include <stdio.h>
#include <string.h>

#define GPT_MAX_LAYERS 64
#if defined(__GNUC__) || defined(__clang__)
#define GPT_FN static __attribute__((unused))
#else
#define GPT_FN static
#endif

/* The model configuration (tools/train.c writes it into its checkpoints field by field). */
typedef struct gpt_config {
    int vocab;        /* 256 for bytes */
    int seq;          /* context length T */
    int dim;          /* width C */
    int heads;        /* attention heads H (divides C) */
    int layers;       /* blocks L (2 sublayers each) */
    int n;            /* streams (1 for none) */
    mhc_hc_config hc; /* the residual (variant, preset, knobs): mhc_hc_resolve(hc, n) decides what
                         runs, gpt_create keeps the result in gpt_model.spec */
} gpt_config;

typedef struct gpt_sublayer {
    int hc_ids[4];                 /* mixing parameters (fn, scale, base, norm_weight) */
    int norm;                      /* RMSNorm weight [C] */
    int w1, b1, w2, b2;            /* attn: W_qkv [3C,C], b_qkv, W_o [C,C], b_o; mlp: W_fc [4C,C], b_fc, W_proj [C,4C], b_proj */
    mhc_hc_params hc;
} gpt_sublayer;

typedef struct gpt_model {
    gpt_config cfg;
    mhc_hc_spec spec;
    mhc_params params;
    int wte, wpe, final_norm, lm_head;
    int head_ids[4];
    mhc_hc_params head;
    gpt_sublayer sub[2 * GPT_MAX_LAYERS];
    /* diagnostics of the last forward pass (pointers into the tape's arena) */
    const mhc_real *A[2 * GPT_MAX_LAYERS];
    int nA;
} gpt_model;

/* Checks the model's own sizes; returns MHC_OK or an error naming the problem. The residual
   (n and cfg.hc) is the library's to check: gpt_create passes it to mhc_hc_resolve. */
GPT_FN mhc_result gpt_config_check(mhc_ctx *ctx, const gpt_config *c) {
    if (c->vocab < 2) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: vocab is %d, expected >= 2", c->vocab);
    if (c->seq < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: seq is %d, expected >= 1", c->seq);
    if (c->dim < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: dim is %d, expected >= 1", c->dim);
    if (c->heads < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: heads is %d, expected >= 1", c->heads);
    if (c->dim % c->heads != 0)
        return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: %d heads do not divide dim %d", c->heads, c->dim);
    if (c->layers < 1 || c->layers > GPT_MAX_LAYERS)
        return mhc_fail(ctx, MHC_ERR_SIZE, "gpt: layers is %d, expected 1..%d", c->layers, GPT_MAX_LAYERS);
    if ((double)c->dim * 4 * c->dim > 2e9 || (double)c->vocab * c->dim > 2e9 || (double)c->seq * c->seq > 2e9)
        return mhc_fail(ctx, MHC_ERR_OVERFLOW, "gpt: sizes too large (dim %d, vocab %d, seq %d)", c->dim, c->vocab, c->seq);
    return MHC_OK;
}

GPT_FN int gpt__add(mhc_params *p, const char *name, int d0, int d1, int decay) {
    int shape[2];
    shape[0] = d0;
    shape[1] = d1;
    return mhc_params_add(p, name, d1 > 0 ? 2 : 1, shape, decay);
}

/* Declare and allocate the parameters; weights are zero until gpt_init. */
GPT_FN mhc_result gpt_create(mhc_ctx *ctx, gpt_model *m, const gpt_config *cfg) {
    mhc_result r;
    int l, s, C;
    char name[48];
    memset(m, 0, sizeof *m);
    if ((r = gpt_config_check(ctx, cfg)) != MHC_OK) return r;
    m->cfg = *cfg;
    C = cfg->dim;
    if ((r = mhc_hc_resolve(ctx, &cfg->hc, cfg->n, &m->spec)) != MHC_OK) return r;
    mhc_params_init(ctx, &m->params);
#define GPT__ADD(var, nm, d0, d1, decay) do { if (((var) = gpt__add(&m->params, (nm), (d0), (d1), (decay))) < 0) goto fail; } while (0)
    GPT__ADD(m->wte, "wte", cfg->vocab, C, MHC_PARAM_DECAY);
    GPT__ADD(m->wpe, "wpe", cfg->seq, C, MHC_PARAM_DECAY);
    for (l = 0; l < cfg->layers; l++)
        for (s = 0; s < 2; s++) {
            gpt_sublayer *sl = &m->sub[2 * l + s];
            const char *kind = s == 0 ? "attn" : "mlp";
            int hidden = s == 0 ? 3 * C : 4 * C;
            snprintf(name, sizeof name, "l%d.%s.hc", l, kind);
            if (m->spec.variant != MHC_VARIANT_NONE) {
                if (mhc_hc_params_declare(&m->params, &m->spec, C, 0, 0, name, sl->hc_ids) != MHC_OK) goto fail;
            }
            snprintf(name, sizeof name, "l%d.%s.norm", l, kind);
            GPT__ADD(sl->norm, name, C, 0, MHC_PARAM_NO_DECAY);
            snprintf(name, sizeof name, "l%d.%s.w1", l, kind);
            GPT__ADD(sl->w1, name, hidden, C, MHC_PARAM_DECAY);
            snprintf(name, sizeof name, "l%d.%s.b1", l, kind);
            GPT__ADD(sl->b1, name, hidden, 0, MHC_PARAM_NO_DECAY);
            snprintf(name, sizeof name, "l%d.%s.w2", l, kind);
            GPT__ADD(sl->w2, name, C, s == 0 ? C : 4 * C, MHC_PARAM_DECAY);
            snprintf(name, sizeof name, "l%d.%s.b2", l, kind);
            GPT__ADD(sl->b2, name, C, 0, MHC_PARAM_NO_DECAY);
        }
    if (m->spec.variant != MHC_VARIANT_NONE) {
        if (mhc_hc_params_declare(&m->params, &m->spec, C, 1, 0, "head.hc", m->head_ids) != MHC_OK) goto fail;
    }
    GPT__ADD(m->final_norm, "final_norm", C, 0, MHC_PARAM_NO_DECAY);
    GPT__ADD(m->lm_head, "lm_head", cfg->vocab, C, MHC_PARAM_DECAY);
#undef GPT__ADD
    if (mhc_params_alloc(&m->params) != MHC_OK) goto fail;
    if (m->spec.variant != MHC_VARIANT_NONE) {
        for (l = 0; l < 2 * cfg->layers; l++)
            if (mhc_hc_params_get(&m->params, m->sub[l].hc_ids, &m->sub[l].hc) != MHC_OK) goto fail;
        if (mhc_hc_params_get(&m->params, m->head_ids, &m->head) != MHC_OK) goto fail;
    }
    return MHC_OK;
fail:
    r = ctx->last != MHC_OK ? ctx->last : MHC_ERR_STATE;
    mhc_params_free(&m->params);
    return r;
}

GPT_FN void gpt_destroy(gpt_model *m) { mhc_params_free(&m->params); }

#define GPT_P(m, idx) (&(m)->params.tensors[(idx)])

/* GPT-2 style initialisation: N(0, 0.02), output projections scaled by 1/sqrt(2L), biases 0,
   norm weights 1; the mixing parameters by mhc_hc_params_init. */
GPT_FN mhc_result gpt_init(mhc_ctx *ctx, gpt_model *m, mhc_rng *rng) {
    const gpt_config *c = &m->cfg;
    const double std = 0.02, proj_std = 0.02 / sqrt(2.0 * c->layers);
    int l;
    size_t i;
    memset(m->params.data, 0, m->params.size * sizeof(mhc_real));
    mhc_rng_fill_normal(rng, GPT_P(m, m->wte)->data, GPT_P(m, m->wte)->size, 0, std);
    mhc_rng_fill_normal(rng, GPT_P(m, m->wpe)->data, GPT_P(m, m->wpe)->size, 0, std);
    for (l = 0; l < 2 * c->layers; l++) {
        gpt_sublayer *sl = &m->sub[l];
        mhc_tensor *nw = GPT_P(m, sl->norm);
        for (i = 0; i < nw->size; i++) nw->data[i] = 1;
        mhc_rng_fill_normal(rng, GPT_P(m, sl->w1)->data, GPT_P(m, sl->w1)->size, 0, std);
        mhc_rng_fill_normal(rng, GPT_P(m, sl->w2)->data, GPT_P(m, sl->w2)->size, 0, proj_std);
        if (m->spec.variant != MHC_VARIANT_NONE &&
            mhc_hc_params_init(ctx, &m->spec, 0, l, &sl->hc, rng, std) != MHC_OK) return ctx->last;
    }
    if (m->spec.variant != MHC_VARIANT_NONE &&
        mhc_hc_params_init(ctx, &m->spec, 1, 2 * c->layers, &m->head, rng, std) != MHC_OK) return ctx->last;
    {
        mhc_tensor *fw = GPT_P(m, m->final_norm);
        for (i = 0; i < fw->size; i++) fw->data[i] = 1;
    }
    mhc_rng_fill_normal(rng, GPT_P(m, m->lm_head)->data, GPT_P(m, m->lm_head)->size, 0, std);
    return MHC_OK;
}

/* One sublayer's F: attention (s = 0) or MLP (s = 1) on h [B*T, C]. */
GPT_FN mhc_tensor *gpt__inner(mhc_tape *tp, gpt_model *m, const gpt_sublayer *sl, int s, mhc_tensor *h, int B, int T) {
    mhc_tensor *a = mhc_add(tp, mhc_matmul_abt(tp, h, GPT_P(m, sl->w1)), GPT_P(m, sl->b1));
    if (s == 0) a = mhc_attention(tp, a, B, T, m->cfg.heads);
    else a = mhc_gelu(tp, a);
    return mhc_add(tp, mhc_matmul_abt(tp, a, GPT_P(m, sl->w2)), GPT_P(m, sl->b2));
}

#define GPT_NORM_EPS 1e-5

/* The forward pass for B sequences of T tokens (T <= cfg.seq): returns the mean loss (a
   1-element tensor on the tape) and, when logits_out is not NULL, the logits [B*T, V].
   targets may be NULL (then the loss is NULL and only logits are computed). Also records every
   sublayer's A (for gpt_gain). */
GPT_FN mhc_tensor *gpt_forward(mhc_tape *tp, gpt_model *m, const int *tokens, const int *targets, int B, int T,
                               mhc_tensor **logits_out) {
    const gpt_config *c = &m->cfg;
    const int BT = B * T, n = m->cfg.n;
    const int none = m->spec.variant == MHC_VARIANT_NONE;
    mhc_tensor *x, *e, *pos, *logits, *h;
    int *posids, t, l, sh[3];
    if (T < 1 || T > c->seq || B < 1) {
        mhc_fail(tp->ctx, MHC_ERR_SIZE, "gpt_forward: B=%d T=%d, expected B >= 1 and 1 <= T <= seq=%d", B, T, c->seq);
        return NULL;
    }
    posids = (int *)mhc_arena_alloc(tp->arena, (size_t)BT * sizeof(int));
    if (!posids) return NULL;
    for (t = 0; t < BT; t++) posids[t] = t % T;
    e = mhc_embedding(tp, GPT_P(m, m->wte), tokens, BT);
    pos = mhc_embedding(tp, GPT_P(m, m->wpe), posids, BT);
    e = mhc_add(tp, e, pos);
    x = none ? e : mhc_hc_expand(tp, e, n);
    m->nA = 0;
    for (l = 0; l < 2 * c->layers; l++) {
        gpt_sublayer *sl = &m->sub[l];
        if (none) {
            h = mhc_rmsnorm(tp, x, GPT_P(m, sl->norm), GPT_NORM_EPS);
            x = mhc_add(tp, x, gpt__inner(tp, m, sl, l % 2, h, B, T));
        } else {
            mhc_hc_pre_out po;
            if (!x || mhc_hc_pre(tp, &m->spec, x, &sl->hc, &po) != MHC_OK) return NULL;
            m->A[m->nA++] = po.h_res->data;
            h = mhc_rmsnorm(tp, po.layer_input, GPT_P(m, sl->norm), GPT_NORM_EPS);
            x = mhc_hc_post(tp, x, po.h_res, po.h_post, gpt__inner(tp, m, sl, l % 2, h, B, T));
        }
    }
    h = none ? x : mhc_hc_head(tp, &m->spec, x, &m->head);
    h = mhc_rmsnorm(tp, h, GPT_P(m, m->final_norm), GPT_NORM_EPS);
    logits = mhc_matmul_abt(tp, h, GPT_P(m, m->lm_head));
    if (logits_out) *logits_out = logits;
    (void)sh;
    if (!targets) return NULL;
    return mhc_cross_entropy(tp, logits, targets);
}

/* The largest distance of the last forward pass's mixing matrices from doubly stochastic, max over
   sublayers and tokens of max(|rowsum - 1|, |colsum - 1|) (MHC_SPEC.md Sec. 7; 0 for none). */
GPT_FN mhc_result gpt_ds_distance(mhc_ctx *ctx, const gpt_model *m, int BT, double *dist) {
    int l;
    *dist = 0.0;
    if (m->spec.variant == MHC_VARIANT_NONE) return MHC_OK;
    for (l = 0; l < m->nA; l++) {
        double re, ce;
        mhc_result r = mhc_hc_ds_distance(ctx, m->A[l], (size_t)BT, m->cfg.n, &re, &ce);
        if (r != MHC_OK) return r;
        if (re > *dist) *dist = re;
        if (ce > *dist) *dist = ce;
    }
    return MHC_OK;
}

/* The Amax gain of the composite residual map of the last forward pass (1 for none). */
GPT_FN mhc_result gpt_gain(mhc_ctx *ctx, const gpt_model *m, int BT, mhc_gain_stats *g) {
    if (m->spec.variant == MHC_VARIANT_NONE || m->nA == 0) {
        g->fwd_max = g->fwd_mean = g->bwd_max = g->bwd_mean = 1.0;
        return MHC_OK;
    }
    return mhc_hc_amax_gain(ctx, m->A, m->nA, BT, m->cfg.n, g);
}

#endif
