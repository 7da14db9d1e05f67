/* tools/verify_impl.c - the computation of `mhc verify`, compiled twice (see the Makefile):
 * with -DMHC_DOUBLE it defines tool_verify_run_f64, without it tool_verify_run_f32. Each copy
 * includes the implementation static, so both live in one program next to the float
 * implementation of tools/impl.c. Inputs and outputs are double; everything in between is mhc_real.
 * It uses the raw-array layer functions of mhc.h: pre forward, post forward, post backward, pre
 * backward (sinkhorn: the standalone projection of the spec, mhc_hc_proj_*; head: the head). */
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "tools/verify.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MHC_DOUBLE
#define TOOL_VERIFY_RUN tool_verify_run_f64
#else
#define TOOL_VERIFY_RUN tool_verify_run_f32
#endif

#define VI_MAXBUF 32

typedef struct vi_bufs {
    mhc_real *p[VI_MAXBUF];
    int count, failed;
} vi_bufs;

/* A zeroed mhc_real array of count elements, filled from src when src is given. */
static mhc_real *vi_alloc(vi_bufs *b, const double *src, size_t count) {
    mhc_real *r;
    size_t i;
    if (b->count == VI_MAXBUF) { b->failed = 1; return NULL; }
    r = (mhc_real *)calloc(count ? count : 1, sizeof(mhc_real));
    if (!r) { b->failed = 1; return NULL; }
    if (src)
        for (i = 0; i < count; i++) r[i] = (mhc_real)src[i];
    b->p[b->count++] = r;
    return r;
}

static void vi_store(double *dst, const mhc_real *src, size_t count) {
    size_t i;
    if (!dst || !src) return;
    for (i = 0; i < count; i++) dst[i] = (double)src[i];
}

int TOOL_VERIFY_RUN(const tool_verify_io *io, char *err, size_t cap) {
    mhc_ctx ctx;
    mhc_hc_spec s;
    vi_bufs b;
    int i, rc = 0, fs[2] = {0, 0}, ns = 0, nb = 0, nw = 0;
    size_t T, n, C, D, nn, nres;
    mhc_ctx_init(&ctx);
    memset(&b, 0, sizeof b);
    if (mhc_hc_resolve(&ctx, &io->cfg, io->n, &s) != MHC_OK) {
        snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
        return 1;
    }
    T = (size_t)io->T; n = (size_t)io->n; C = (size_t)io->C; D = n * C; nn = n * n;
    if (io->op != TOOL_VERIFY_SINKHORN &&
        mhc_hc_param_shapes(&ctx, &s, io->C, io->op == TOOL_VERIFY_HEAD, fs, &ns, &nb, &nw) != MHC_OK) {
        snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
        return 1;
    }
    if (io->op == TOOL_VERIFY_SINKHORN) {
        mhc_real *z, *o, *g, *dz;
        nres = (size_t)s.nres;
        z = vi_alloc(&b, io->logits, T * nres);
        g = vi_alloc(&b, io->d_out, T * nn);
        o = vi_alloc(&b, NULL, T * nn);
        dz = vi_alloc(&b, NULL, T * nres);
        if (b.failed) goto nomem;
        if (mhc_hc_proj_forward(&ctx, &s, o, z, io->T) != MHC_OK || mhc_hc_proj_backward(&ctx, &s, dz, g, z, io->T) != MHC_OK)
            goto fail;
        vi_store(io->out, o, T * nn);
        vi_store(io->d_logits, dz, T * nres);
    } else if (io->op == TOOL_VERIFY_HEAD) {
        mhc_real *x, *fn, *sc, *ba, *nwt, *g, *o, *h, *dx, *dfn, *dsc, *dba, *dnw;
        x = vi_alloc(&b, io->x, T * D);
        fn = vi_alloc(&b, io->fn, (size_t)fs[0] * fs[1]);
        sc = vi_alloc(&b, io->scale, (size_t)ns);
        ba = vi_alloc(&b, io->base, (size_t)nb);
        nwt = io->norm_weight ? vi_alloc(&b, io->norm_weight, (size_t)nw) : NULL;
        g = vi_alloc(&b, io->d_out, T * C);
        o = vi_alloc(&b, NULL, T * C);
        h = vi_alloc(&b, NULL, T * n);
        dx = vi_alloc(&b, NULL, T * D);
        dfn = vi_alloc(&b, NULL, (size_t)fs[0] * fs[1]);
        dsc = vi_alloc(&b, NULL, (size_t)ns);
        dba = vi_alloc(&b, NULL, (size_t)nb);
        dnw = vi_alloc(&b, NULL, (size_t)nw);
        if (b.failed) goto nomem;
        if (mhc_hc_head_forward(&ctx, &s, o, h, x, fn, sc, ba, nwt, io->T, io->C) != MHC_OK ||
            mhc_hc_head_backward(&ctx, &s, dx, dfn, dsc, dba, dnw, g, NULL, x, fn, sc, ba, nwt, io->T, io->C) != MHC_OK)
            goto fail;
        vi_store(io->out, o, T * C);
        vi_store(io->h_pre, h, T * n);
        vi_store(io->d_x, dx, T * D);
        vi_store(io->d_fn, dfn, (size_t)fs[0] * fs[1]);
        vi_store(io->d_scale, dsc, (size_t)ns);
        vi_store(io->d_base, dba, (size_t)nb);
        if (nwt) vi_store(io->d_norm_weight, dnw, (size_t)nw);
    } else {
        mhc_real *x, *fn, *sc, *ba, *nwt, *f, *gout, *gli, *li, *hpre, *hpost, *A, *out;
        mhc_real *dx, *dfn, *dsc, *dba, *dnw, *df, *dA, *dhpost;
        int params = s.variant != MHC_VARIANT_NONE;
        x = vi_alloc(&b, io->x, T * D);
        fn = params ? vi_alloc(&b, io->fn, (size_t)fs[0] * fs[1]) : NULL;
        sc = params ? vi_alloc(&b, io->scale, (size_t)ns) : NULL;
        ba = params ? vi_alloc(&b, io->base, (size_t)nb) : NULL;
        nwt = params && io->norm_weight ? vi_alloc(&b, io->norm_weight, (size_t)nw) : NULL;
        f = vi_alloc(&b, io->f_out, T * C);
        gout = vi_alloc(&b, io->d_out, T * D);
        gli = vi_alloc(&b, io->d_layer_input, T * C);
        li = vi_alloc(&b, NULL, T * C);
        hpre = vi_alloc(&b, NULL, T * n);
        hpost = vi_alloc(&b, NULL, T * n);
        A = vi_alloc(&b, NULL, T * nn);
        out = vi_alloc(&b, NULL, T * D);
        dx = vi_alloc(&b, NULL, T * D);
        dfn = params ? vi_alloc(&b, NULL, (size_t)fs[0] * fs[1]) : NULL;
        dsc = params ? vi_alloc(&b, NULL, (size_t)ns) : NULL;
        dba = params ? vi_alloc(&b, NULL, (size_t)nb) : NULL;
        dnw = params ? vi_alloc(&b, NULL, (size_t)nw) : NULL;
        df = vi_alloc(&b, NULL, T * C);
        dA = vi_alloc(&b, NULL, T * nn);
        dhpost = vi_alloc(&b, NULL, T * n);
        if (b.failed) goto nomem;
        if (mhc_hc_pre_forward(&ctx, &s, li, hpre, hpost, A, x, fn, sc, ba, nwt, io->T, io->C) != MHC_OK) goto fail;
        mhc_k_hc_post_forward(out, x, A, hpost, f, io->T, io->n, io->C);
        mhc_k_hc_post_backward(dx, dA, dhpost, df, gout, x, A, hpost, f, io->T, io->n, io->C);
        if (mhc_hc_pre_backward(&ctx, &s, dx, dfn, dsc, dba, dnw, gli, NULL, dhpost, dA, x, fn, sc, ba, nwt, io->T,
                                io->C) != MHC_OK)
            goto fail;
        vi_store(io->layer_input, li, T * C);
        vi_store(io->h_pre, hpre, T * n);
        vi_store(io->h_post, hpost, T * n);
        vi_store(io->h_res, A, T * nn);
        vi_store(io->out, out, T * D);
        vi_store(io->d_x, dx, T * D);
        vi_store(io->d_f_out, df, T * C);
        if (params) {
            vi_store(io->d_fn, dfn, (size_t)fs[0] * fs[1]);
            vi_store(io->d_scale, dsc, (size_t)ns);
            vi_store(io->d_base, dba, (size_t)nb);
            if (nwt) vi_store(io->d_norm_weight, dnw, (size_t)nw);
        }
    }
    goto done;
nomem:
    snprintf(err, cap, "out of memory");
    rc = 1;
    goto done;
fail:
    snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
    rc = 1;
done:
    for (i = 0; i < b.count; i++) free(b.p[i]);
    return rc;
}
