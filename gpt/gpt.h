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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- inference: the forward pass without the tape, with a key/value cache ----------------
 * gpt_infer runs Tq new tokens of each of B sequences at positions len .. len + Tq - 1 through the
 * raw kernels that gpt_forward's tape ops run (the embedding, expand, the mHC pre step
 * mhc_hc_pre_forward, RMSNorm, the matmuls, GELU, the post step mhc_k_hc_post_forward, the head
 * mhc_hc_head_forward), with attention against the cached keys and values of the earlier
 * positions (mhc_k_attention_kv_forward), and records nothing: no tape, no gradients, no saved
 * activations. It appends the new keys and values to the cache, so generating token t costs O(t)
 * attention and O(1) everything else, and the mHC pre and post steps run on the new tokens only.
 * The logits equal gpt_forward's on the whole sequence to rounding (tests/test_infer.c, every
 * position of a generated sequence, every residual variant: within 1e-12 of the largest logit in
 * the double build, 2e-5 in float). The cache holds at most cfg.seq positions (the learned position
 * embeddings end there). */
typedef struct gpt_cache {
    int batch;          /* sequences B */
    int cap;            /* positions it holds: cfg.seq */
    int len;            /* positions filled: the next token's position */
    int C, n, H, L, V;  /* the model's sizes (checked on every call) */
    mhc_real *k, *v;    /* per attention sublayer l and sequence b: [cap, C] at ((l * B + b) * cap) * C */
    /* scratch for up to B * cap tokens at once */
    mhc_real *x, *x2;   /* streams [B*cap, n, C] */
    mhc_real *li, *h, *ao, *f;        /* [B*cap, C] */
    mhc_real *hpre, *hpost, *hres;    /* [B*cap, n], [B*cap, n], [B*cap, n, n] */
    mhc_real *a;        /* [B*cap, 4C] (qkv uses 3C) */
    mhc_real *att;      /* attention scratch [cap*H, cap] */
    mhc_real *mem;      /* the one allocation */
} gpt_cache;

/* Make a cache for `batch` sequences of model m (empty: len 0). */
GPT_FN mhc_result gpt_cache_init(mhc_ctx *ctx, gpt_cache *c, const gpt_model *m, int batch) {
    const gpt_config *g = &m->cfg;
    const int n = m->spec.variant == MHC_VARIANT_NONE ? 1 : g->n;
    double rows, total;
    size_t R, C, off = 0, nreal;
    memset(c, 0, sizeof *c);
    if (batch < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt_cache_init: batch is %d, expected >= 1", batch);
    rows = (double)batch * g->seq;
    total = 2.0 * g->layers * rows * g->dim + 2.0 * rows * n * g->dim + 4.0 * rows * g->dim + rows * (2.0 * n + n * n) +
            rows * 4.0 * g->dim + (double)g->seq * g->heads * g->seq;
    if (total > 1e12 || rows * 4.0 * g->dim > 2e9 || rows * n * (double)g->dim > 2e9)
        return mhc_fail(ctx, MHC_ERR_OVERFLOW, "gpt_cache_init: %d sequences of %d positions are too large for a cache",
                        batch, g->seq);
    nreal = (size_t)total;
    c->mem = (mhc_real *)malloc(nreal * sizeof(mhc_real));
    if (!c->mem) return mhc_fail(ctx, MHC_ERR_NOMEM, "gpt_cache_init: cannot allocate %zu bytes", nreal * sizeof(mhc_real));
    R = (size_t)batch * g->seq;
    C = (size_t)g->dim;
#define GPT__TAKE(ptr, count) do { (ptr) = c->mem + off; off += (count); } while (0)
    GPT__TAKE(c->k, (size_t)g->layers * R * C);
    GPT__TAKE(c->v, (size_t)g->layers * R * C);
    GPT__TAKE(c->x, R * n * C);
    GPT__TAKE(c->x2, R * n * C);
    GPT__TAKE(c->li, R * C);
    GPT__TAKE(c->h, R * C);
    GPT__TAKE(c->ao, R * C);
    GPT__TAKE(c->f, R * C);
    GPT__TAKE(c->hpre, R * n);
    GPT__TAKE(c->hpost, R * n);
    GPT__TAKE(c->hres, R * n * n);
    GPT__TAKE(c->a, R * 4 * C);
    GPT__TAKE(c->att, (size_t)g->seq * g->heads * g->seq);
#undef GPT__TAKE
    (void)off;
    c->batch = batch;
    c->cap = g->seq;
    c->C = g->dim; c->n = n; c->H = g->heads; c->L = g->layers; c->V = g->vocab;
    return MHC_OK;
}

GPT_FN void gpt_cache_free(gpt_cache *c) {
    free(c->mem);
    memset(c, 0, sizeof *c);
}

/* Forget every cached position (len = 0); the memory stays. */
GPT_FN void gpt_cache_reset(gpt_cache *c) { c->len = 0; }

/* y[r, :] = x[r, :] W^T + b for N rows (out may not alias x). */
GPT_FN void gpt__linear(mhc_real *y, const mhc_real *x, const mhc_tensor *W, const mhc_tensor *b, int N) {
    const int out = W->shape[0], in = W->shape[1];
    mhc_k_matmul_abt(y, x, W->data, N, in, out, 0);
    if (b) mhc_k_add(y, y, b->data, (size_t)N * out, (size_t)out);
}

/* Run tokens [B, Tq] (row b holds sequence b's next Tq tokens) at positions c->len ..
   c->len + Tq - 1, append their keys and values, and advance c->len by Tq. logits [B*Tq, V] (row
   b*Tq + i: after token i of sequence b) receives the next-token logits; NULL skips the head
   (a prefill whose logits are not needed). */
GPT_FN mhc_result gpt_infer(mhc_ctx *ctx, gpt_model *m, gpt_cache *c, const int *tokens, int Tq, mhc_real *logits) {
    const gpt_config *g = &m->cfg;
    const int B = c->batch, C = g->dim, n = c->n, H = g->heads, V = g->vocab, p0 = c->len, N = B * Tq;
    const int none = m->spec.variant == MHC_VARIANT_NONE;
    const mhc_tensor *wte = GPT_P(m, m->wte), *wpe = GPT_P(m, m->wpe);
    mhc_real *x = c->x, *x2 = c->x2;
    int b, i, l, j;
    mhc_result r;
    if (!c->mem || c->C != C || c->n != n || c->H != H || c->L != g->layers || c->V != V || c->cap != g->seq)
        return mhc_fail(ctx, MHC_ERR_STATE, "gpt_infer: the cache was not made for this model (gpt_cache_init)");
    if (!tokens) return mhc_fail(ctx, MHC_ERR_NULL, "gpt_infer: tokens is NULL");
    if (Tq < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "gpt_infer: Tq is %d, expected >= 1", Tq);
    if (Tq > c->cap - p0)
        return mhc_fail(ctx, MHC_ERR_SIZE, "gpt_infer: the cache holds %d positions (seq), %d are filled and %d more "
                        "do not fit; reset it (gpt_cache_reset) and run the last tokens again", c->cap, p0, Tq);
    for (i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return mhc_fail(ctx, MHC_ERR_VALUE, "gpt_infer: token %d (sequence %d, position %d) is %d, outside [0, %d)",
                            i % Tq, i / Tq, p0 + i % Tq, tokens[i], V);
    /* e = wte[token] + wpe[position]; x = expand(e) */
    for (b = 0; b < B; b++)
        for (i = 0; i < Tq; i++) {
            const int row = b * Tq + i;
            const mhc_real *te = wte->data + (size_t)tokens[row] * C, *pe = wpe->data + (size_t)(p0 + i) * C;
            mhc_real *e = none ? x + (size_t)row * C : c->h + (size_t)row * C;
            for (j = 0; j < C; j++) e[j] = te[j] + pe[j];
        }
    if (!none) mhc_k_hc_expand_forward(x, c->h, N, n, C);
    for (l = 0; l < 2 * g->layers; l++) {
        const gpt_sublayer *sl = &m->sub[l];
        const mhc_real *in;
        if (none) {
            in = x;
        } else {
            const mhc_hc_params *w = &sl->hc;
            r = mhc_hc_pre_forward(ctx, &m->spec, c->li, c->hpre, c->hpost, c->hres, x, w->fn->data, w->scale->data,
                                   w->base->data, w->norm_weight ? w->norm_weight->data : NULL, N, C);
            if (r != MHC_OK) return r;
            in = c->li;
        }
        mhc_k_rmsnorm_forward(c->h, NULL, in, GPT_P(m, sl->norm)->data, N, C, GPT_NORM_EPS);
        gpt__linear(c->a, c->h, GPT_P(m, sl->w1), GPT_P(m, sl->b1), N);
        if (l % 2 == 0) {   /* attention: append k, v to the cache, attend over positions 0 .. p0 + i */
            const int al = l / 2;
            for (b = 0; b < B; b++) {
                mhc_real *kc = c->k + ((size_t)al * B + b) * c->cap * C, *vc = c->v + ((size_t)al * B + b) * c->cap * C;
                const mhc_real *qkv = c->a + (size_t)b * Tq * 3 * C;
                for (i = 0; i < Tq; i++) {
                    memcpy(kc + (size_t)(p0 + i) * C, qkv + (size_t)i * 3 * C + C, (size_t)C * sizeof(mhc_real));
                    memcpy(vc + (size_t)(p0 + i) * C, qkv + (size_t)i * 3 * C + 2 * C, (size_t)C * sizeof(mhc_real));
                }
                mhc_k_attention_kv_forward(c->ao + (size_t)b * Tq * C, c->att, qkv, 3 * C, kc, vc, C, Tq, p0, C, H);
            }
            gpt__linear(c->f, c->ao, GPT_P(m, sl->w2), GPT_P(m, sl->b2), N);
        } else {            /* MLP */
            mhc_k_act_forward(MHC_ACT_GELU, c->a, c->a, (size_t)N * 4 * C);
            gpt__linear(c->f, c->a, GPT_P(m, sl->w2), GPT_P(m, sl->b2), N);
        }
        if (none) {
            mhc_k_add(x, x, c->f, (size_t)N * C, (size_t)N * C);
        } else {
            mhc_real *tmp;
            mhc_k_hc_post_forward(x2, x, c->hres, c->hpost, c->f, N, n, C);
            tmp = x; x = x2; x2 = tmp;
        }
    }
    c->len = p0 + Tq;
    if (!logits) return MHC_OK;
    if (none) {
        mhc_k_rmsnorm_forward(c->h, NULL, x, GPT_P(m, m->final_norm)->data, N, C, GPT_NORM_EPS);
    } else {
        const mhc_hc_params *w = &m->head;
        r = mhc_hc_head_forward(ctx, &m->spec, c->li, NULL, x, w->fn->data, w->scale->data, w->base->data,
                                w->norm_weight ? w->norm_weight->data : NULL, N, C);
        if (r != MHC_OK) return r;
        mhc_k_rmsnorm_forward(c->h, NULL, c->li, GPT_P(m, m->final_norm)->data, N, C, GPT_NORM_EPS);
    }
    mhc_k_matmul_abt(logits, c->h, GPT_P(m, m->lm_head)->data, N, C, V, 0);
    return MHC_OK;
}

/* Merge sort of idx[0..n) by logits, largest first; equal logits keep the lower index first. */
GPT_FN void gpt__sort_desc(int *idx, int *tmp, int n, const mhc_real *logits) {
    int w, lo;
    for (w = 1; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = logits[idx[b]] > logits[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof(int));
    }
}

/* The next token from logits[V]. temperature 0: the argmax (the lowest index among equal maxima;
   rng untouched). Otherwise p_j proportional to exp((logit_j - max) / temperature) over the top_k
   largest logits (top_k 0 or >= V: all; equal logits rank by index), in double; one
   mhc_rng_uniform draw picks the token, walking the kept ones from the most likely. The same
   logits and rng state give the same token. scratch: 2V ints. Returns -1 when a logit is not
   finite or an argument is out of range (temperature < 0 or not finite, V < 1). */
GPT_FN int gpt_sample_logits(const mhc_real *logits, int V, double temperature, int top_k, mhc_rng *rng, int *scratch) {
    int j, best = 0, kept;
    double mx, sum = 0, u, acc = 0;
    if (V < 1 || !(temperature >= 0) || temperature > 1e300 || top_k < 0) return -1;
    for (j = 0; j < V; j++) {
        double x = (double)logits[j];
        if (x != x || x > 1e300 || x < -1e300) return -1;
        if (logits[j] > logits[best]) best = j;
    }
    if (temperature == 0) return best;
    mx = (double)logits[best];
    for (j = 0; j < V; j++) scratch[j] = j;
    gpt__sort_desc(scratch, scratch + V, V, logits);
    kept = top_k == 0 || top_k > V ? V : top_k;
    for (j = 0; j < kept; j++) sum += exp(((double)logits[scratch[j]] - mx) / temperature);
    u = mhc_rng_uniform(rng) * sum;
    for (j = 0; j < kept - 1; j++) {
        acc += exp(((double)logits[scratch[j]] - mx) / temperature);
        if (u < acc) break;
    }
    return scratch[j];
}

/* An upper bound of the memory (bytes) that training this model on batches of B sequences of T
   tokens takes, for a program to check before it allocates anything (build/mhc train does):
     parameters:  4 P R (data, gradients, the two AdamW moments; P parameters, R = sizeof(mhc_real))
     one step's arena, counted four times (it grows by blocks of twice the last one before it settles
     at the step's peak: the blocks of the first step add up to less than four times the peak),
     with N = B T tokens, m = the rows of fn (2n + n^2 for mHC), L blocks (2 L sublayers):
       embeddings, expand:        N (R (6 + 2n) C + 12)
       each mHC sublayer:         N (R (2 (C + 2n + n^2) + 2m + 2C + 1 + 2nC) + 8 (3m + 4))
                                  (the pre step's outputs, saved logits and scratch; the norm; post)
       its attention or MLP:      N R 18 C + R B H T^2 (saved probabilities), or N R 28 C
       head, norm, logits, loss:  N (R (2 (C + n) + 2n + 2C + 2V + 2) + 8 (3n + 4) + 4)
       the projection's scratch:  threads x (G (P + 4 n^2) + 4 m) doubles (mhc.h, MEMORY; P the
                                  projection's own: its iterates for Sinkhorn, 2 n! + 8 for perm,
                                  2 R + 2 sum a_k^2 + 8 for kron, (K + 8) n^2 + 8 for ortho, plus
                                  3 n^2 + n + 8 for the knobs; G = 8 tokens at a time for n <= 8
                                  with the softmax or exp start, else 1)
     plus 64 KiB per sublayer for tensor and node records and alignment.
   (none: the sublayers hold only the norm, the add and F.) s is the resolved residual. */
GPT_FN double gpt_memory_bytes(const gpt_config *c, const mhc_hc_spec *s, int B, int T, int threads) {
    const double R = (double)sizeof(mhc_real), N = (double)B * T, C = c->dim, V = c->vocab, L = c->layers;
    const double n = s->n, none = s->variant == MHC_VARIANT_NONE;
    const double m = none ? 0 : s->variant == MHC_VARIANT_HC ? n + 2 : s->m;
    double P, hcp, headp, step, sub, proj = 0;
    /* parameters: embeddings, per block the two sublayers' hc parameters, norms, weights, biases */
    hcp = none ? 0 : s->variant == MHC_VARIANT_HC ? (n + 2) * C + 3 + 2 * n + n * n : m * n * C + 3 + m;
    headp = none ? 0 : n * n * C + 1 + n;
    P = V * C + (double)c->seq * C + L * (2 * hcp + 2 * C + (3 * C * C + 3 * C + C * C + C) + (8 * C * C + 5 * C)) +
        headp + C + V * C;
    step = N * (R * (6 + 2 * n) * C + 12);
    sub = none ? N * R * (4 * C + 1)
               : N * (R * (2 * (C + 2 * n + n * n) + 2 * m + 2 * C + 1 + 2 * n * C) + 8 * (3 * m + 4));
    step += 2 * L * sub + L * (N * R * 18 * C + R * (double)B * c->heads * (double)T * T) + L * N * R * 28 * C;
    step += N * (R * (2 * (C + n) + 2 * n + 2 * C + 2 * V + 2) + 8 * (3 * n + 4) + 4);
    if (!none && s->variant != MHC_VARIANT_HC) {
        double S = s->projection == MHC_PROJ_SOFTMAX ? 2.0 * s->iters - 1 : 2.0 * s->iters;
        double pj = s->projection == MHC_PROJ_PERM ? 2.0 * (double)mhc_perm_count(s->n) + 8
                  : s->projection == MHC_PROJ_KRON ? 2.0 * s->nres + 2 * n * n + 8
                  : s->projection == MHC_PROJ_ORTHO ? (s->ns_iters + 8.0) * n * n + 8
                  : (S + 4) * n * n + S * n + 8;
        double lanes = s->n <= 8 && (s->projection == MHC_PROJ_SOFTMAX || s->projection == MHC_PROJ_EXP) ? 8 : 1;
        pj += 3 * n * n + n + 8;   /* the convention knobs' prepared logits (mhc__proj_doubles) */
        proj = (threads > 0 ? threads : 1) * 8.0 * (lanes * (pj + 4 * n * n) + 4 * m);
    }
    step += proj + 2 * L * 65536.0;
    return 4 * P * R + 4 * step + (1 << 20);
}

#endif
