/* gpt/gpt_cuda.h - the GPT of gpt/gpt.h trained on a CUDA device (float32).
 *
 * Plain C on top of mhc.h's CUDA API (define MHC_CUDA before including mhc.h, link mhc_cuda.o,
 * -lcublas -lcudart; `make cuda`). Include it after gpt/gpt.h. The forward pass is exactly
 * gpt_forward's (the same ops, in the same order, on device pointers) and the backward pass is
 * written out by hand in reverse; the optimizer step is mhc_trainer_step's (global-norm
 * clipping, AdamW with decay only on MHC_PARAM_DECAY tensors) on the device copies.
 *
 *     gpt_cuda gc;
 *     gpt_cuda_create(&cu, &gc, &model);          copies the parameters (and AdamW moments) over
 *     gpt_cuda_step(&gc, &trainer, inputs, targets, B, T, &loss);   forward + backward + AdamW
 *     gpt_cuda_download(&gc);                     parameters and moments back into the host model
 *     gpt_cuda_destroy(&gc);
 *
 * Supported variants: none, mhc and lite (the device has no HC kernels). */
#ifndef GPT_CUDA_H
#define GPT_CUDA_H

#ifndef MHC_CUDA
#error "gpt/gpt_cuda.h needs MHC_CUDA defined before mhc.h is included"
#endif

#include <stdlib.h>

typedef struct gpt_cuda_layer {
    float *li, *hn, *rstd, *hpost, *hres, *a1, *ain, *att, *f;
} gpt_cuda_layer;

typedef struct gpt_cuda {
    mhc_cuda *cu;
    gpt_model *m;                     /* the host model: configuration and parameter layout */
    float *p, *g, *mom, *vel;         /* device copies of params.data / grad / m / v */
    int cap;                          /* tokens (B*T) the activation buffers hold */
    int B, T;
    float *act;                       /* one allocation for every activation below */
    int *ints;                        /* ids, targets, positions [3 * cap] */
    float *xs[2 * GPT_MAX_LAYERS + 1];
    gpt_cuda_layer L[2 * GPT_MAX_LAYERS];
    float *e, *epos, *h, *hf, *rstdf, *logits, *losses, *dlosses;
    float *dxa, *dxb, *dA, *dhp, *df, *dain, *da1, *dhn, *dli, *de, *dlogits, *dh, *dhf;
} gpt_cuda;

#define GPT_CU_P(gc, idx) ((gc)->p + (gc)->m->params.offset[(idx)])
#define GPT_CU_G(gc, idx) ((gc)->g + (gc)->m->params.offset[(idx)])
#define GPT_CU_PO(gc, idx) ((idx) >= 0 ? GPT_CU_P(gc, idx) : NULL)
#define GPT_CU_GO(gc, idx) ((idx) >= 0 ? GPT_CU_G(gc, idx) : NULL)

GPT_FN void gpt_cuda_destroy(gpt_cuda *gc) {
    if (!gc || !gc->cu) return;
    mhc_cuda_release(gc->cu, gc->p);
    mhc_cuda_release(gc->cu, gc->g);
    mhc_cuda_release(gc->cu, gc->mom);
    mhc_cuda_release(gc->cu, gc->vel);
    mhc_cuda_release(gc->cu, gc->act);
    mhc_cuda_release(gc->cu, gc->ints);
    memset(gc, 0, sizeof *gc);
}

/* Copy the model's parameters and AdamW moments to the device (the host model must outlive gc). */
GPT_FN mhc_result gpt_cuda_create(mhc_cuda *cu, gpt_cuda *gc, gpt_model *m) {
    size_t bytes;
    mhc_result r;
    if (!cu) return MHC_ERR_NULL;
    if (!gc || !m) return mhc_fail(cu->ctx, MHC_ERR_NULL, "gpt_cuda_create: NULL argument (gc %s, model %s)",
                                   gc ? "given" : "NULL", m ? "given" : "NULL");
    memset(gc, 0, sizeof *gc);
    if (m->spec.variant == MHC_VARIANT_HC)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "gpt_cuda_create: variant hc has no device kernels (none, mhc, lite do)");
    if (!m->params.data || m->params.size == 0)
        return mhc_fail(cu->ctx, MHC_ERR_STATE, "gpt_cuda_create: the model's parameters are not allocated");
    gc->cu = cu;
    gc->m = m;
    bytes = m->params.size * sizeof(float);
    if ((r = mhc_cuda_alloc(cu, (void **)&gc->p, bytes)) != MHC_OK ||
        (r = mhc_cuda_alloc(cu, (void **)&gc->g, bytes)) != MHC_OK ||
        (r = mhc_cuda_alloc(cu, (void **)&gc->mom, bytes)) != MHC_OK ||
        (r = mhc_cuda_alloc(cu, (void **)&gc->vel, bytes)) != MHC_OK ||
        (r = mhc_cuda_upload(cu, gc->p, m->params.data, bytes)) != MHC_OK ||
        (r = mhc_cuda_upload(cu, gc->mom, m->params.m, bytes)) != MHC_OK ||
        (r = mhc_cuda_upload(cu, gc->vel, m->params.v, bytes)) != MHC_OK) {
        gpt_cuda_destroy(gc);
        return r;
    }
    return MHC_OK;
}

/* Parameters and moments back to the host model (e.g. to save a checkpoint). */
GPT_FN mhc_result gpt_cuda_download(gpt_cuda *gc) {
    mhc_result r;
    size_t bytes;
    if (!gc || !gc->cu || !gc->m) return MHC_ERR_NULL;
    bytes = gc->m->params.size * sizeof(float);
    if ((r = mhc_cuda_download(gc->cu, gc->m->params.data, gc->p, bytes)) != MHC_OK) return r;
    if ((r = mhc_cuda_download(gc->cu, gc->m->params.m, gc->mom, bytes)) != MHC_OK) return r;
    return mhc_cuda_download(gc->cu, gc->m->params.v, gc->vel, bytes);
}

/* Lay out the activation buffers for BT tokens from base (base NULL: only count); returns floats. */
GPT_FN size_t gpt_cuda__layout(gpt_cuda *gc, float *base, int B, int T) {
    const gpt_config *c = &gc->m->cfg;
    const size_t BT = (size_t)B * T, C = (size_t)c->dim, n = (size_t)c->n, V = (size_t)c->vocab;
    size_t off = 0;
    int l;
#define GPT_CU_TAKE(ptr, cnt) do { if (base) (ptr) = base + off; off += ((size_t)(cnt) + 63) / 64 * 64; } while (0)
    for (l = 0; l <= 2 * c->layers; l++) GPT_CU_TAKE(gc->xs[l], BT * n * C);
    for (l = 0; l < 2 * c->layers; l++) {
        gpt_cuda_layer *y = &gc->L[l];
        size_t hid = l % 2 == 0 ? 3 * C : 4 * C;
        GPT_CU_TAKE(y->li, BT * C);
        GPT_CU_TAKE(y->hn, BT * C);
        GPT_CU_TAKE(y->rstd, BT);
        GPT_CU_TAKE(y->hpost, BT * n);
        GPT_CU_TAKE(y->hres, BT * n * n);
        GPT_CU_TAKE(y->a1, BT * hid);
        GPT_CU_TAKE(y->ain, l % 2 == 0 ? BT * C : BT * 4 * C);
        GPT_CU_TAKE(y->att, l % 2 == 0 ? (size_t)B * c->heads * T * T : 1);
        GPT_CU_TAKE(y->f, BT * C);
    }
    GPT_CU_TAKE(gc->e, BT * C);
    GPT_CU_TAKE(gc->epos, BT * C);
    GPT_CU_TAKE(gc->h, BT * C);
    GPT_CU_TAKE(gc->hf, BT * C);
    GPT_CU_TAKE(gc->rstdf, BT);
    GPT_CU_TAKE(gc->logits, BT * V);
    GPT_CU_TAKE(gc->losses, BT);
    GPT_CU_TAKE(gc->dlosses, BT);
    GPT_CU_TAKE(gc->dxa, BT * n * C);
    GPT_CU_TAKE(gc->dxb, BT * n * C);
    GPT_CU_TAKE(gc->dA, BT * n * n);
    GPT_CU_TAKE(gc->dhp, BT * n);
    GPT_CU_TAKE(gc->df, BT * C);
    GPT_CU_TAKE(gc->dain, BT * 4 * C);
    GPT_CU_TAKE(gc->da1, BT * 4 * C);
    GPT_CU_TAKE(gc->dhn, BT * C);
    GPT_CU_TAKE(gc->dli, BT * C);
    GPT_CU_TAKE(gc->de, BT * C);
    GPT_CU_TAKE(gc->dlogits, BT * V);
    GPT_CU_TAKE(gc->dh, BT * C);
    GPT_CU_TAKE(gc->dhf, BT * C);
#undef GPT_CU_TAKE
    return off;
}

GPT_FN mhc_result gpt_cuda__buffers(gpt_cuda *gc, int B, int T) {
    mhc_result r;
    size_t floats;
    if (B * T <= gc->cap && B == gc->B && T == gc->T) return MHC_OK;
    mhc_cuda_release(gc->cu, gc->act);
    mhc_cuda_release(gc->cu, gc->ints);
    gc->act = NULL; gc->ints = NULL; gc->cap = 0;
    floats = gpt_cuda__layout(gc, NULL, B, T);
    if ((r = mhc_cuda_alloc(gc->cu, (void **)&gc->act, floats * sizeof(float))) != MHC_OK) return r;
    if ((r = mhc_cuda_alloc(gc->cu, (void **)&gc->ints, (size_t)3 * B * T * sizeof(int))) != MHC_OK) return r;
    gpt_cuda__layout(gc, gc->act, B, T);
    gc->cap = B * T; gc->B = B; gc->T = T;
    return MHC_OK;
}

#define GPT_CU_TRY(call) do { if ((r = (call)) != MHC_OK) return r; } while (0)

/* One training step: forward (gpt_forward's ops), backward, clipping and AdamW as
   mhc_trainer_step (tr->step and tr->last_* are updated like there). *loss: the mean loss. */
GPT_FN mhc_result gpt_cuda_step(gpt_cuda *gc, mhc_trainer *tr, const int *tokens, const int *targets, int B, int T,
                                double *loss) {
    mhc_cuda *cu;
    gpt_model *m;
    const gpt_config *c;
    const mhc_hc_spec *s;
    mhc_result r;
    int BT, C, n, V, H, l, i, none, *ids, *tgt, *pos;
    float *hbuf;
    double sum, ss, norm, scale = 1.0, lr;
    long t;
    if (!gc || !gc->cu || !gc->m) return MHC_ERR_NULL;
    cu = gc->cu; m = gc->m; c = &m->cfg; s = &m->spec;
    if (!tr || !tokens || !targets || !loss)
        return mhc_fail(cu->ctx, MHC_ERR_NULL, "gpt_cuda_step: trainer, tokens, targets and loss are required");
    if (!tr->ready) return mhc_fail(cu->ctx, MHC_ERR_STATE, "gpt_cuda_step: the trainer is not initialised");
    if (B < 1 || T < 1 || T > c->seq || (double)B * T > 1e8)
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "gpt_cuda_step: B=%d T=%d, expected B >= 1 and 1 <= T <= seq=%d", B, T, c->seq);
    BT = B * T; C = c->dim; n = c->n; V = c->vocab; H = c->heads;
    none = s->variant == MHC_VARIANT_NONE;
    for (i = 0; i < BT; i++)
        if (tokens[i] < 0 || tokens[i] >= V || targets[i] < 0 || targets[i] >= V)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "gpt_cuda_step: token %d: input %d / target %d, expected 0..%d", i,
                            tokens[i], targets[i], V - 1);
    GPT_CU_TRY(gpt_cuda__buffers(gc, B, T));
    ids = gc->ints; tgt = ids + BT; pos = tgt + BT;
    hbuf = (float *)malloc((size_t)BT * sizeof(float) + (size_t)BT * sizeof(int));
    if (!hbuf) return mhc_fail(cu->ctx, MHC_ERR_NOMEM, "gpt_cuda_step: cannot allocate host staging");
    {
        int *hp = (int *)(hbuf + BT);
        for (i = 0; i < BT; i++) hp[i] = i % T;
        r = mhc_cuda_upload(cu, ids, tokens, (size_t)BT * sizeof(int));
        if (r == MHC_OK) r = mhc_cuda_upload(cu, tgt, targets, (size_t)BT * sizeof(int));
        if (r == MHC_OK) r = mhc_cuda_upload(cu, pos, hp, (size_t)BT * sizeof(int));
        for (i = 0; i < BT; i++) hbuf[i] = (float)(1.0 / BT);   /* d mean / d loss_i */
        if (r == MHC_OK) r = mhc_cuda_upload(cu, gc->dlosses, hbuf, (size_t)BT * sizeof(float));
        if (r != MHC_OK) { free(hbuf); return r; }
    }

    free(hbuf);

    /* ---- forward (gpt_forward) ---- */
    GPT_CU_TRY(mhc_cuda_memset0(cu, gc->g, m->params.size * sizeof(float)));
    GPT_CU_TRY(mhc_cuda_embedding_forward(cu, gc->e, ids, GPT_CU_P(gc, m->wte), BT, C));
    GPT_CU_TRY(mhc_cuda_embedding_forward(cu, gc->epos, pos, GPT_CU_P(gc, m->wpe), BT, C));
    GPT_CU_TRY(mhc_cuda_add(cu, gc->e, gc->e, gc->epos, (size_t)BT * C));
    GPT_CU_TRY(mhc_cuda_hc_expand_forward(cu, gc->xs[0], gc->e, BT, n, C));   /* none (n = 1): a copy */
    for (l = 0; l < 2 * c->layers; l++) {
        gpt_sublayer *sl = &m->sub[l];
        gpt_cuda_layer *y = &gc->L[l];
        const int *id = sl->hc_ids;
        int hid1 = l % 2 == 0 ? 3 * C : 4 * C, hid2 = l % 2 == 0 ? C : 4 * C;
        float *li = none ? gc->xs[l] : y->li;
        if (!none)
            GPT_CU_TRY(mhc_cuda_hc_pre_forward(cu, s, y->li, NULL, y->hpost, y->hres, gc->xs[l], GPT_CU_P(gc, id[0]),
                                               GPT_CU_P(gc, id[1]), GPT_CU_P(gc, id[2]), GPT_CU_PO(gc, id[3]), BT, C));
        GPT_CU_TRY(mhc_cuda_rmsnorm_forward(cu, y->hn, y->rstd, li, GPT_CU_P(gc, sl->norm), BT, C, GPT_NORM_EPS));
        GPT_CU_TRY(mhc_cuda_matmul_abt(cu, y->a1, y->hn, GPT_CU_P(gc, sl->w1), BT, C, hid1, 0));
        GPT_CU_TRY(mhc_cuda_add_bias_forward(cu, y->a1, y->a1, GPT_CU_P(gc, sl->b1), BT, hid1));
        if (l % 2 == 0) GPT_CU_TRY(mhc_cuda_attention_forward(cu, y->ain, y->att, y->a1, B, T, C, H));
        else GPT_CU_TRY(mhc_cuda_gelu_forward(cu, y->ain, y->a1, (size_t)BT * hid1));
        GPT_CU_TRY(mhc_cuda_matmul_abt(cu, y->f, y->ain, GPT_CU_P(gc, sl->w2), BT, hid2, C, 0));
        GPT_CU_TRY(mhc_cuda_add_bias_forward(cu, y->f, y->f, GPT_CU_P(gc, sl->b2), BT, C));
        if (none) GPT_CU_TRY(mhc_cuda_add(cu, gc->xs[l + 1], gc->xs[l], y->f, (size_t)BT * C));
        else GPT_CU_TRY(mhc_cuda_hc_post_forward(cu, gc->xs[l + 1], gc->xs[l], y->hres, y->hpost, y->f, BT, n, C));
    }
    {
        const int *id = m->head_ids;
        float *xl = gc->xs[2 * c->layers], *h = none ? xl : gc->h;
        if (!none)
            GPT_CU_TRY(mhc_cuda_hc_head_forward(cu, s, gc->h, NULL, xl, GPT_CU_P(gc, id[0]), GPT_CU_P(gc, id[1]),
                                                GPT_CU_P(gc, id[2]), GPT_CU_PO(gc, id[3]), BT, C));
        GPT_CU_TRY(mhc_cuda_rmsnorm_forward(cu, gc->hf, gc->rstdf, h, GPT_CU_P(gc, m->final_norm), BT, C, GPT_NORM_EPS));
        GPT_CU_TRY(mhc_cuda_matmul_abt(cu, gc->logits, gc->hf, GPT_CU_P(gc, m->lm_head), BT, C, V, 0));
        GPT_CU_TRY(mhc_cuda_crossentropy_forward(cu, gc->losses, gc->logits, tgt, BT, V));

        /* ---- backward, in reverse ---- */
        GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dlogits, (size_t)BT * V * sizeof(float)));
        GPT_CU_TRY(mhc_cuda_crossentropy_backward(cu, gc->dlogits, gc->dlosses, gc->logits, tgt, BT, V));
        GPT_CU_TRY(mhc_cuda_matmul_atb(cu, GPT_CU_G(gc, m->lm_head), gc->dlogits, gc->hf, V, BT, C, 1));
        GPT_CU_TRY(mhc_cuda_matmul_ab(cu, gc->dhf, gc->dlogits, GPT_CU_P(gc, m->lm_head), BT, V, C, 0));
        GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dh, (size_t)BT * C * sizeof(float)));
        GPT_CU_TRY(mhc_cuda_rmsnorm_backward(cu, gc->dh, GPT_CU_G(gc, m->final_norm), gc->dhf, h,
                                             GPT_CU_P(gc, m->final_norm), gc->rstdf, BT, C));
        GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dxa, (size_t)BT * n * C * sizeof(float)));
        if (none) GPT_CU_TRY(mhc_cuda_accumulate(cu, gc->dxa, gc->dh, (size_t)BT * C));
        else
            GPT_CU_TRY(mhc_cuda_hc_head_backward(cu, s, gc->dxa, GPT_CU_G(gc, id[0]), GPT_CU_G(gc, id[1]),
                                                 GPT_CU_G(gc, id[2]), GPT_CU_GO(gc, id[3]), gc->dh, NULL, xl,
                                                 GPT_CU_P(gc, id[0]), GPT_CU_P(gc, id[1]), GPT_CU_P(gc, id[2]),
                                                 GPT_CU_PO(gc, id[3]), BT, C));
    }
    {
        float *dcur = gc->dxa, *dnext = gc->dxb, *tmp;
        for (l = 2 * c->layers - 1; l >= 0; l--) {
            gpt_sublayer *sl = &m->sub[l];
            gpt_cuda_layer *y = &gc->L[l];
            const int *id = sl->hc_ids;
            int hid1 = l % 2 == 0 ? 3 * C : 4 * C, hid2 = l % 2 == 0 ? C : 4 * C;
            float *li = none ? gc->xs[l] : y->li, *df = none ? dcur : gc->df;
            if (!none) {
                /* x_{l+1} = A x_l + h_post f */
                GPT_CU_TRY(mhc_cuda_memset0(cu, dnext, (size_t)BT * n * C * sizeof(float)));
                GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dA, (size_t)BT * n * n * sizeof(float)));
                GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dhp, (size_t)BT * n * sizeof(float)));
                GPT_CU_TRY(mhc_cuda_memset0(cu, gc->df, (size_t)BT * C * sizeof(float)));
                GPT_CU_TRY(mhc_cuda_hc_post_backward(cu, dnext, gc->dA, gc->dhp, gc->df, dcur, gc->xs[l], y->hres,
                                                     y->hpost, y->f, BT, n, C));
            }
            /* f = F(rmsnorm(li)) */
            GPT_CU_TRY(mhc_cuda_add_bias_backward(cu, GPT_CU_G(gc, sl->b2), df, BT, C));
            GPT_CU_TRY(mhc_cuda_matmul_atb(cu, GPT_CU_G(gc, sl->w2), df, y->ain, C, BT, hid2, 1));
            GPT_CU_TRY(mhc_cuda_matmul_ab(cu, gc->dain, df, GPT_CU_P(gc, sl->w2), BT, C, hid2, 0));
            GPT_CU_TRY(mhc_cuda_memset0(cu, gc->da1, (size_t)BT * hid1 * sizeof(float)));
            if (l % 2 == 0) GPT_CU_TRY(mhc_cuda_attention_backward(cu, gc->da1, gc->dain, y->att, y->a1, B, T, C, H));
            else GPT_CU_TRY(mhc_cuda_gelu_backward(cu, gc->da1, gc->dain, y->a1, (size_t)BT * hid1));
            GPT_CU_TRY(mhc_cuda_add_bias_backward(cu, GPT_CU_G(gc, sl->b1), gc->da1, BT, hid1));
            GPT_CU_TRY(mhc_cuda_matmul_atb(cu, GPT_CU_G(gc, sl->w1), gc->da1, y->hn, hid1, BT, C, 1));
            GPT_CU_TRY(mhc_cuda_matmul_ab(cu, gc->dhn, gc->da1, GPT_CU_P(gc, sl->w1), BT, hid1, C, 0));
            if (none) {
                /* x_{l+1} = x_l + f: dx_l = dx_{l+1} (df was dcur) + the norm path, in place */
                GPT_CU_TRY(mhc_cuda_rmsnorm_backward(cu, dcur, GPT_CU_G(gc, sl->norm), gc->dhn, li,
                                                     GPT_CU_P(gc, sl->norm), y->rstd, BT, C));
            } else {
                GPT_CU_TRY(mhc_cuda_memset0(cu, gc->dli, (size_t)BT * C * sizeof(float)));
                GPT_CU_TRY(mhc_cuda_rmsnorm_backward(cu, gc->dli, GPT_CU_G(gc, sl->norm), gc->dhn, li,
                                                     GPT_CU_P(gc, sl->norm), y->rstd, BT, C));
                GPT_CU_TRY(mhc_cuda_hc_pre_backward(cu, s, dnext, GPT_CU_G(gc, id[0]), GPT_CU_G(gc, id[1]),
                                                    GPT_CU_G(gc, id[2]), GPT_CU_GO(gc, id[3]), gc->dli, NULL, gc->dhp,
                                                    gc->dA, gc->xs[l], GPT_CU_P(gc, id[0]), GPT_CU_P(gc, id[1]),
                                                    GPT_CU_P(gc, id[2]), GPT_CU_PO(gc, id[3]), BT, C));
                tmp = dcur; dcur = dnext; dnext = tmp;
            }
        }
        GPT_CU_TRY(mhc_cuda_memset0(cu, gc->de, (size_t)BT * C * sizeof(float)));
        GPT_CU_TRY(mhc_cuda_hc_expand_backward(cu, gc->de, dcur, BT, n, C));
        GPT_CU_TRY(mhc_cuda_embedding_backward(cu, GPT_CU_G(gc, m->wte), gc->de, ids, BT, C));
        GPT_CU_TRY(mhc_cuda_embedding_backward(cu, GPT_CU_G(gc, m->wpe), gc->de, pos, BT, C));
    }

    /* ---- the loss (mean, in double on the host) ---- */
    hbuf = (float *)malloc((size_t)BT * sizeof(float));
    if (!hbuf) return mhc_fail(cu->ctx, MHC_ERR_NOMEM, "gpt_cuda_step: cannot allocate host staging");
    r = mhc_cuda_download(cu, hbuf, gc->losses, (size_t)BT * sizeof(float));
    sum = 0.0;
    for (i = 0; i < BT; i++) sum += (double)hbuf[i];
    free(hbuf);
    if (r != MHC_OK) return r;
    *loss = sum / BT;

    /* ---- the optimizer step (mhc_trainer_step) ---- */
    t = tr->step + 1;
    lr = mhc_lr_at(&tr->cfg.schedule, t);
    GPT_CU_TRY(mhc_cuda_sumsq(cu, &ss, gc->g, m->params.size));
    norm = sqrt(ss);
    if (!(norm < HUGE_VAL))
        return mhc_fail(cu->ctx, MHC_ERR_NONFINITE, "gpt_cuda_step: step %ld: the gradient norm is not finite (%g); "
                        "parameters not updated", t, norm);
    if (tr->cfg.grad_clip > 0.0) {
        double coef = tr->cfg.grad_clip / (norm + 1e-6);
        if (coef < 1.0) scale = coef;
    }
    for (i = 0; i < m->params.count; i++) {
        size_t off = m->params.offset[i];
        double wd = m->params.decay[i] == MHC_PARAM_DECAY ? tr->cfg.weight_decay : 0.0;
        GPT_CU_TRY(mhc_cuda_adamw_step(cu, gc->p + off, gc->g + off, gc->mom + off, gc->vel + off,
                                       m->params.tensors[i].size, lr, tr->cfg.beta1, tr->cfg.beta2, tr->cfg.eps, wd,
                                       scale, t));
    }
    GPT_CU_TRY(mhc_cuda_sync(cu));
    tr->step = t;
    tr->last_grad_norm = norm;
    tr->last_clip_scale = scale;
    tr->last_lr = lr;
    return MHC_OK;
}

#undef GPT_CU_TRY
#endif
